/**
 * Properties of a partition over generated logs of interleaved page views: decisions depend only
 * on the log (not on when changes are taken, nor on snapshots), lateness follows rule 8 as an
 * unbounded-memory model states it, and final reports equal the reference model.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { PageEvent } from '@dwell/protocol';
import { ReportCollector, type PageViewReport, type ReportSink } from './page-view-report.js';
import { PartitionExposure } from './partition-exposure.js';
import { referencePageView } from './reference-model.js';
import type { EventOutcome, ExposureFlag, ImpressionResult, MinuteBucketRow, PageViewIdentity } from './results.js';
import { createRulesConfig, DEFAULT_RULES_CONFIG, type RulesConfig } from './rules-config.js';
import { arbConflicts, arbPageView, arbResends } from './test-support/arbitraries.js';
import { BASE_MS } from './test-support/events.js';

const MIN = 60_000;
/** A short lateness and memory so that closing, late resends and re-opened ids all happen. */
const SHORT = createRulesConfig({ rulesVersion: 1001, allowedLatenessMs: 90_000, closedMemoryMs: 60_000 });

/** Up to 6 page views starting within 40 minutes, with resends up to 15 minutes late, in a jittered log order. */
const arbLog = fc
  .array(fc.integer({ min: 0, max: 40 * MIN }), { minLength: 1, maxLength: 6 })
  .chain((starts) =>
    fc.tuple(
      ...starts.map((start, i) =>
        arbPageView({ pv: `pv-${i}`, startMs: BASE_MS + start, maxEvents: 20 }).chain((events) =>
          fc
            .tuple(fc.constant(events), arbResends(events, 15 * MIN), arbConflicts(events))
            .map(([e, r, c]) => [...e, ...r, ...c]),
        ),
      ),
    ),
  )
  .chain((perPageView) => {
    const events = perPageView.flat();
    return fc
      .tuple(
        fc.array(fc.integer({ min: 0, max: 3000 }), { minLength: events.length, maxLength: events.length }),
        fc.array(fc.integer({ min: 1, max: 100 }), { minLength: events.length, maxLength: events.length }),
      )
      .map(([noise, intruder]) =>
        events
          .map((e, i) => ({
            e: (intruder[i] ?? 100) <= 2 ? { ...e, user_id: 'intruder' } : e,
            key: e.recv_ms + (noise[i] ?? 0),
            i,
          }))
          .sort((a, b) => a.key - b.key || a.i - b.i)
          .map((x) => x.e),
      );
  });

/** Take points: after which log positions the caller asks for changes. */
const arbLogWithTakes = arbLog.chain((log) =>
  fc.tuple(
    fc.constant(log),
    fc.array(fc.boolean(), { minLength: log.length, maxLength: log.length }),
    fc.array(fc.boolean(), { minLength: log.length, maxLength: log.length }),
    fc.nat({ max: log.length }),
  ),
);

interface Run {
  outcomes: EventOutcome[];
  reports: PageViewReport[][];
}

/**
 * Applies the log, taking changes where `takes` says; where `heldBack` says, that write leaves the
 * open page views' impression rows for a later one (writeChanges without `impressions`).
 */
function run(
  log: readonly PageEvent[],
  takes: readonly boolean[],
  config: RulesConfig,
  cut = -1,
  heldBack: readonly boolean[] = [],
): Run {
  let p = new PartitionExposure(config);
  const outcomes: EventOutcome[] = [];
  const reports: PageViewReport[][] = [];
  log.forEach((e, i) => {
    if (i === cut) p = PartitionExposure.restore(JSON.parse(JSON.stringify(p.snapshot())), config);
    outcomes.push(p.apply(e));
    if (takes[i] === true) {
      const collector = new ReportCollector();
      p.writeChanges(collector, false, heldBack[i] !== true);
      reports.push([...collector.closed, ...collector.changed]);
    }
  });
  const { changed, closed } = p.takeChanges();
  reports.push([...closed, ...changed]);
  return { outcomes, reports };
}

/** What a ReplacingMergeTree holds after upserting every report in order, zero rows dropped. */
function tables(reports: readonly PageViewReport[][]) {
  const impressions = new Map<string, ImpressionResult>();
  const buckets = new Map<string, number>();
  for (const r of reports.flat()) {
    for (const i of [...r.impressions, ...r.retracted_impressions])
      impressions.set(`${i.page_view_id}/${i.impression_id}`, i);
    for (const b of [...r.buckets, ...r.retracted_buckets])
      buckets.set(`${b.page_view_id}/${b.impression_id}/${b.minute_start_ms}`, b.viewable_ms);
  }
  // A retraction overwrites a row that one caller saw and another never did: both end up billing nothing.
  const retraction = (i: ImpressionResult) =>
    !i.measurable && i.credited_ms === 0 && i.flags.includes('conflicting_duplicate');
  return {
    impressions: new Map([...impressions].filter(([, i]) => !retraction(i))),
    buckets: new Map([...buckets].filter(([, ms]) => ms > 0)),
  };
}

/** A ReplacingMergeTree's rows, upserted in write order: each key holds its last row. */
class Tables implements ReportSink {
  readonly impressions = new Map<string, string>();
  readonly minutes = new Map<string, string>();
  /** Keys of `impressions` whose last row is a retraction. */
  readonly retracted = new Set<string>();
  written = 0;
  private final = false;

  pageView(_identity: PageViewIdentity, _flags: readonly ExposureFlag[], final: boolean): void {
    this.final = final;
  }

  impression(row: ImpressionResult, retracted: boolean): void {
    const key = `${row.page_view_id}/${row.impression_id}`;
    this.impressions.set(key, JSON.stringify([row, this.final]));
    if (retracted) this.retracted.add(key);
    else this.retracted.delete(key);
    this.written++;
  }

  /** The impression rows that are not retractions: a retraction of a row never written is the same as no row. */
  standing(): Map<string, string> {
    return new Map([...this.impressions].filter(([key]) => !this.retracted.has(key)));
  }

  minute(row: MinuteBucketRow): void {
    this.minutes.set(`${row.page_view_id}/${row.impression_id}/${row.minute_start_ms}`, JSON.stringify(row));
    this.written++;
  }
}

describe.each([
  { name: 'rules version 1', config: DEFAULT_RULES_CONFIG },
  { name: 'short lateness and memory', config: SHORT },
])('partition properties ($name)', ({ config }) => {
  it('a snapshot through JSON anywhere in the log changes no outcome and no report', () => {
    fc.assert(
      fc.property(arbLogWithTakes, ([log, takes, , cut]) => {
        expect(run(log, takes, config, cut)).toEqual(run(log, takes, config));
      }),
      { numRuns: 150 },
    );
  });

  it('a snapshot through JSON anywhere changes no report while impression rows are held back', () => {
    fc.assert(
      fc.property(arbLogWithTakes, ([log, takes, heldBack, cut]) => {
        expect(run(log, takes, config, cut, heldBack)).toEqual(run(log, takes, config, -1, heldBack));
      }),
      { numRuns: 150 },
    );
  });

  it('impression rows held back: after every write the minute rows are current, after a write with impressions all rows are', () => {
    fc.assert(
      fc.property(arbLogWithTakes, ([log, takes, heldBack, cut]) => {
        const complete = new PartitionExposure(config);
        let held = new PartitionExposure(config);
        const full = new Tables();
        const lean = new Tables();
        const write = (impressions: boolean): void => {
          complete.writeChanges(full, false);
          held.writeChanges(lean, true, impressions);
          expect(lean.minutes).toEqual(full.minutes);
          if (impressions) {
            expect(lean.standing()).toEqual(full.standing());
            expect(held.impressionsDue).toBe(0);
          }
        };
        log.forEach((e, i) => {
          // A restart forgets the values written, not what is held back.
          if (i === cut) held = PartitionExposure.restore(JSON.parse(held.snapshotText()), config);
          complete.apply(e);
          held.apply(e);
          if (takes[i] === true) write(heldBack[i] !== true);
        });
        write(false);
        write(true);
      }),
      { numRuns: 300 },
    );
  });

  it('rows left out as unchanged leave the tables exactly as complete reports do, after every write', () => {
    fc.assert(
      fc.property(arbLogWithTakes, ([log, takes, , cut]) => {
        const complete = new PartitionExposure(config);
        let changedOnly = new PartitionExposure(config);
        const full = new Tables();
        const lean = new Tables();
        const write = (): void => {
          complete.writeChanges(full, false);
          changedOnly.writeChanges(lean, true);
          expect(lean.impressions).toEqual(full.impressions);
          expect(lean.minutes).toEqual(full.minutes);
        };
        log.forEach((e, i) => {
          // A restart forgets what was written: the next write is complete again.
          if (i === cut) changedOnly = PartitionExposure.restore(JSON.parse(JSON.stringify(changedOnly.snapshot())), config);
          complete.apply(e);
          changedOnly.apply(e);
          if (takes[i] === true) write();
        });
        write();
        expect(lean.written).toBeLessThanOrEqual(full.written);
      }),
      { numRuns: 150 },
    );
  });

  it('the snapshot text, each page view\'s kept from call to call until it changes, is always the snapshot as JSON', () => {
    fc.assert(
      fc.property(arbLogWithTakes, ([log, takes, snapshots, cut]) => {
        let p = new PartitionExposure(config);
        const sink = new Tables();
        log.forEach((e, i) => {
          if (i === cut) p = PartitionExposure.restore(JSON.parse(p.snapshotText()), config);
          p.apply(e);
          if (takes[i] === true) p.writeChanges(sink, i % 2 === 0, i % 3 !== 0);
          if (snapshots[i] === true) expect(p.snapshotText()).toBe(JSON.stringify(p.snapshot()));
        });
        p.writeChanges(sink, true);
        expect(p.snapshotText()).toBe(JSON.stringify(p.snapshot()));
      }),
      { numRuns: 150 },
    );
  });

  it('a full snapshot and the deltas after it restore exactly the state, anywhere, and continuing changes nothing', () => {
    // Per log position: 0 nothing, 1 a snapshot text (a new chain), 2 a delta on the chain, 3 texts
    // made ahead of the next one (of page views quiet for 0 or 60 s).
    const arbChained = arbLogWithTakes.chain(([log, takes, heldBack, cut]) =>
      fc.tuple(
        fc.constant([log, takes, heldBack, cut] as const),
        fc.array(fc.constantFrom(0, 1, 2, 2, 2, 3, 3), { minLength: log.length, maxLength: log.length }),
      ),
    );
    fc.assert(
      fc.property(arbChained, ([[log, takes, heldBack, cut], points]) => {
        let p = new PartitionExposure(config);
        let chain: { base: string; deltas: string[] } | undefined;
        const restored = () =>
          PartitionExposure.restore(
            JSON.parse((chain as { base: string }).base),
            config,
            (chain as { deltas: string[] }).deltas.map((d) => JSON.parse(d) as unknown),
          );
        const outcomes: EventOutcome[] = [];
        const reports: PageViewReport[][] = [];
        log.forEach((e, i) => {
          // A restart from the chain brought up to here; the deltas after it continue the same chain.
          if (i === cut && chain !== undefined) {
            chain.deltas.push(p.deltaText() as string);
            p = restored();
          }
          outcomes.push(p.apply(e));
          if (takes[i] === true) {
            const collector = new ReportCollector();
            p.writeChanges(collector, false, heldBack[i] !== true);
            reports.push([...collector.closed, ...collector.changed]);
          }
          if (points[i] === 1) chain = { base: p.snapshotText(), deltas: [] };
          if (points[i] === 2) {
            const delta = p.deltaText();
            // Without a base (no snapshot text yet, and no restore) there is nothing to add to.
            expect(delta === undefined).toBe(chain === undefined);
            if (delta !== undefined && chain !== undefined) chain.deltas.push(delta);
          }
          if (points[i] === 3) p.prepareTexts(i % 2 === 0 ? 0 : 60_000, () => true);
          // Right after a snapshot text or a delta, the chain is the state.
          if ((points[i] === 1 || points[i] === 2) && chain !== undefined) expect(restored().snapshot()).toEqual(p.snapshot());
        });
        const { changed, closed } = p.takeChanges();
        reports.push([...closed, ...changed]);
        expect({ outcomes, reports }).toEqual(run(log, takes, config, -1, heldBack));
      }),
      { numRuns: 300 },
    );
  });

  it('when changes are taken changes no outcome and not what the tables end up holding', () => {
    fc.assert(
      fc.property(arbLogWithTakes, ([log, takesA, takesB]) => {
        const a = run(log, takesA, config);
        const b = run(log, takesB, config);
        expect(a.outcomes).toEqual(b.outcomes);
        expect(tables(a.reports)).toEqual(tables(b.reports));
      }),
      { numRuns: 150 },
    );
  });
});

describe('partition against independent models (rules version 1)', () => {
  const L = DEFAULT_RULES_CONFIG.allowedLatenessMs;

  it('every page view is closed at most once, and only closed reports are final', () => {
    fc.assert(
      fc.property(arbLogWithTakes, ([log, takes]) => {
        const p = new PartitionExposure();
        const closedIds: string[] = [];
        log.forEach((e, i) => {
          p.apply(e);
          if (takes[i] !== true) return;
          const { changed, closed } = p.takeChanges();
          expect(changed.every((r) => !r.final)).toBe(true);
          expect(closed.every((r) => r.final)).toBe(true);
          closedIds.push(...closed.map((r) => r.page_view_id));
        });
        expect(new Set(closedIds).size).toBe(closedIds.length);
      }),
      { numRuns: 100 },
    );
  });

  it('late exactly when rule 8 says so, with unbounded memory of every page view', () => {
    fc.assert(
      fc.property(arbLog, (log) => {
        const { outcomes } = run(log, [], DEFAULT_RULES_CONFIG);
        const last = new Map<string, number>();
        let watermark = -Infinity;
        log.forEach((e, i) => {
          watermark = Math.max(watermark, e.recv_ms);
          const known = last.get(e.event.page_view_id);
          const late = watermark - (known ?? e.recv_ms) > L;
          expect(outcomes[i] === 'late').toBe(late);
          const applied =
            outcomes[i] === 'accepted' ||
            outcomes[i] === 'duplicate' ||
            outcomes[i] === 'conflicting_duplicate';
          if (applied) last.set(e.event.page_view_id, Math.max(known ?? -Infinity, e.recv_ms));
        });
      }),
      { numRuns: 200 },
    );
  });

  it('the last report of each page view equals the reference model over the events it took in', () => {
    fc.assert(
      fc.property(arbLogWithTakes, ([log, takes]) => {
        const { outcomes, reports } = run(log, takes, DEFAULT_RULES_CONFIG);
        const latest = new Map<string, PageViewReport>();
        for (const r of reports.flat()) latest.set(r.page_view_id, r);
        const taken = new Map<string, PageEvent[]>();
        log.forEach((e, i) => {
          if (
            outcomes[i] === 'accepted' ||
            outcomes[i] === 'duplicate' ||
            outcomes[i] === 'conflicting_duplicate'
          ) {
            taken.set(e.event.page_view_id, [...(taken.get(e.event.page_view_id) ?? []), e]);
          }
        });
        expect([...latest.keys()].sort()).toEqual([...taken.keys()].sort());
        for (const [id, events] of taken) {
          const first = events[0] as PageEvent;
          const expected = referencePageView(
            {
              page_view_id: id,
              site_id: first.site_id,
              user_id: first.user_id,
              user_agent: first.user_agent,
            },
            events,
          );
          const report = latest.get(id);
          expect(report?.impressions).toEqual(expected.impressions);
          expect(report?.buckets).toEqual(expected.buckets);
        }
      }),
      { numRuns: 150 },
    );
  });
});
