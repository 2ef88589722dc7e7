/**
 * Properties of one page view over generated streams: arrival order and duplication do not
 * matter, snapshots are transparent, and the incremental state equals the reference model.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { PageEvent } from '@dwell/protocol';
import { PageViewState } from './page-view-state.js';
import { referencePageView } from './reference-model.js';
import { MINUTE_MS } from './results.js';
import { arbConflicts, arbPageView, arbPermutation, arbResends } from './test-support/arbitraries.js';
import { identity } from './test-support/events.js';

const pvIdentity = { ...identity, page_view_id: 'pv-prop' };
const RUNS = { numRuns: 300 };

function fold(events: readonly PageEvent[]): PageViewState {
  const state = new PageViewState(pvIdentity);
  for (const e of events) state.apply(e);
  return state;
}

/** A stream with exact resends and conflicting copies, in two independent arrival orders. */
const arbTwoOrders = arbPageView()
  .chain((events) => fc.tuple(fc.constant(events), arbResends(events), arbConflicts(events)))
  .chain(([events, resends, conflicts]) => {
    const all = [...events, ...resends, ...conflicts];
    return fc.tuple(fc.constant(events), arbPermutation(all), arbPermutation(all));
  });

describe('page view properties', () => {
  it('exact duplicates in any order give the results of the clean stream', () => {
    const arb = arbPageView()
      .chain((events) => fc.tuple(fc.constant(events), arbResends(events)))
      .chain(([events, resends]) => fc.tuple(fc.constant(events), arbPermutation([...events, ...resends])));
    fc.assert(
      fc.property(arb, ([clean, arrived]) => {
        expect(fold(arrived).results()).toEqual(fold(clean).results());
      }),
      RUNS,
    );
  });

  it('any two arrival orders of the same events, conflicting copies included, agree', () => {
    fc.assert(
      fc.property(arbTwoOrders, ([, one, two]) => {
        expect(fold(one).results()).toEqual(fold(two).results());
      }),
      RUNS,
    );
  });

  it('the incremental state equals the reference model after every event', () => {
    const arb = arbTwoOrders.chain(([, arrived]) =>
      fc.tuple(
        fc.constant(arrived),
        fc.array(fc.boolean(), { minLength: arrived.length, maxLength: arrived.length }),
      ),
    );
    fc.assert(
      fc.property(arb, ([arrived, observe]) => {
        const state = new PageViewState(pvIdentity);
        arrived.forEach((e, i) => {
          state.apply(e);
          // Reading at some points and not others exercises both the incremental and the recompute path.
          if (observe[i] === true || i === arrived.length - 1)
            expect(state.results()).toEqual(referencePageView(pvIdentity, arrived.slice(0, i + 1)));
        });
      }),
      { numRuns: 200 },
    );
  });

  it('a snapshot through JSON at any point, restored and continued, changes nothing', () => {
    const arb = arbTwoOrders.chain(([, arrived]) =>
      fc.tuple(
        fc.constant(arrived),
        fc.nat({ max: arrived.length }),
        fc.array(fc.boolean(), { minLength: arrived.length, maxLength: arrived.length }),
      ),
    );
    fc.assert(
      fc.property(arb, ([arrived, cut, observe]) => {
        const whole = fold(arrived);
        let state = new PageViewState(pvIdentity);
        arrived.forEach((e, i) => {
          if (i === cut) state = PageViewState.restore(JSON.parse(JSON.stringify(state.snapshot())));
          state.apply(e);
          if (observe[i] === true) state.results();
        });
        if (cut === arrived.length)
          state = PageViewState.restore(JSON.parse(JSON.stringify(state.snapshot())));
        expect(state.results()).toEqual(whole.results());
        expect(state.lastRecvMs).toBe(whole.lastRecvMs);
      }),
      RUNS,
    );
  });

  it('results are internally consistent', () => {
    fc.assert(
      fc.property(arbTwoOrders, ([, arrived]) => {
        const { impressions, buckets, flags } = fold(arrived).results();
        for (const r of impressions) {
          const rows = buckets.filter((b) => b.impression_id === r.impression_id);
          expect(rows.reduce((sum, b) => sum + b.viewable_ms, 0)).toBe(r.viewable_ms);
          expect(r.billable).toBe(r.viewable && flags.length === 0);
          expect(r.viewable_ms).toBe(r.billable ? r.credited_ms : 0);
          expect(r.longest_run_ms).toBeLessThanOrEqual(r.credited_ms);
          expect(r.viewable).toBe(r.longest_run_ms >= (r.media === 'video' ? 2000 : 1000));
          if (!r.measurable) expect(r.credited_ms).toBe(0);
          for (const b of rows) {
            expect(b.minute_start_ms % MINUTE_MS).toBe(0);
            expect(b.viewable_ms).toBeGreaterThan(0);
            expect(b.viewable_ms).toBeLessThanOrEqual(MINUTE_MS);
            expect(b.minute_start_ms + MINUTE_MS).toBeGreaterThan(r.first_server_ms);
            expect(b.minute_start_ms).toBeLessThanOrEqual(r.last_server_ms);
          }
        }
      }),
      RUNS,
    );
  });
});
