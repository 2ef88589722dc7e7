/** PageViewState: per-event outcomes, results at any time, snapshots. */
import { describe, expect, it } from 'vitest';
import type { PageEvent } from '@dwell/protocol';
import { fitsEntryLimits } from './event-record.js';
import { PageViewState } from './page-view-state.js';
import { createRulesConfig } from './rules-config.js';
import { SnapshotError } from './snapshot.js';
import { BASE_MS, ev, identity, imp, N, Q, timeline } from './test-support/events.js';

describe('outcomes', () => {
  const base = ev({ seq: 1, t: 0 });
  it.each([
    {
      name: 'another page view',
      event: ev({ seq: 2, t: 1000, pv: 'pv-other' }),
      expected: 'identity_mismatch',
    },
    { name: 'another user', event: ev({ seq: 2, t: 1000, user: 'user-2' }), expected: 'identity_mismatch' },
    { name: 'another site', event: ev({ seq: 2, t: 1000, site: 'site-2' }), expected: 'identity_mismatch' },
    {
      name: 'another user agent (same page view)',
      event: ev({ seq: 2, t: 1000, ua: 'Other/1.0' }),
      expected: 'accepted',
    },
    { name: 'seq 0', event: ev({ seq: 0, t: 1000 }), expected: 'invalid_event' },
    { name: 'fractional seq', event: ev({ seq: 1.5, t: 1000 }), expected: 'invalid_event' },
    { name: 'fractional t_mono_ms', event: ev({ seq: 2, t: 1000.5 }), expected: 'invalid_event' },
    { name: 'NaN recv_ms', event: ev({ seq: 2, t: 1000, recv: Number.NaN }), expected: 'invalid_event' },
    {
      name: 'unknown media',
      event: ev({ seq: 2, t: 1000, imps: [{ ...Q(), media: 'audio' as 'video' }] }),
      expected: 'invalid_event',
    },
    {
      name: 'fractional width',
      event: ev({ seq: 2, t: 1000, imps: [imp({ width: 300.5 })] }),
      expected: 'invalid_event',
    },
    {
      name: 'huge visible_px',
      event: ev({ seq: 2, t: 1000, imps: [imp({ visible: 2 ** 60 })] }),
      expected: 'invalid_event',
    },
    { name: 'same seq, same content', event: ev({ seq: 1, t: 0, recv: BASE_MS + 5 }), expected: 'duplicate' },
    { name: 'same seq, other content', event: ev({ seq: 1, t: 7 }), expected: 'conflicting_duplicate' },
    { name: 'a later seq', event: ev({ seq: 9, t: 1000 }), expected: 'accepted' },
  ] as const)('$name → $expected', ({ event, expected }) => {
    const state = new PageViewState(identity);
    expect(state.apply(base)).toBe('accepted');
    expect(state.apply(event)).toBe(expected);
  });

  it('rejected events change nothing', () => {
    const state = new PageViewState(identity);
    state.apply(ev({ seq: 1, t: 0 }));
    const before = state.snapshot();
    state.apply(ev({ seq: 2, t: 1000, user: 'user-2' }));
    state.apply(ev({ seq: 0, t: 1000 }));
    expect(state.snapshot()).toEqual(before);
    expect(state.results().impressions[0]?.credited_ms).toBe(0);
  });

  it('revision moves exactly when results may change', () => {
    const state = new PageViewState(identity);
    const seen: number[] = [];
    for (const e of [
      ev({ seq: 1, t: 0 }),
      ev({ seq: 1, t: 0 }),
      ev({ seq: 2, t: 1000 }),
      ev({ seq: 2, t: 1000, recv: BASE_MS + 9999 }),
      ev({ seq: 2, t: 1001 }),
    ]) {
      state.apply(e);
      seen.push(state.revision);
    }
    // accepted +1, duplicate +0, accepted +1, later duplicate +0, conflicting: flag +1 (and maybe the kept copy +1).
    expect(seen.slice(0, 4)).toEqual([1, 1, 2, 2]);
    expect(seen[4]).toBeGreaterThan(2);
  });

  it('lastRecvMs is the highest recv_ms taken in, duplicates included', () => {
    const state = new PageViewState(identity);
    expect(state.lastRecvMs).toBeNull();
    state.apply(ev({ seq: 2, t: 1000, recv: 500 }));
    state.apply(ev({ seq: 1, t: 0, recv: 400 }));
    state.apply(ev({ seq: 1, t: 0, recv: 900 }));
    expect(state.lastRecvMs).toBe(900);
    expect(state.eventCount).toBe(2);
  });
});

describe('results at any time', () => {
  it('grow as events arrive, and agree with a fresh computation at each step', () => {
    const events = timeline([
      [0, 'Q'],
      [1000, 'Q'],
      [1500, 'N'],
      [5000, 'Q'],
      [5400, 'N'],
    ]);
    const expected = [0, 1000, 1500, 1500, 1900];
    const state = new PageViewState(identity);
    events.forEach((e, i) => {
      state.apply(e);
      expect(state.results().impressions[0]?.credited_ms).toBe(expected[i]);
    });
  });

  it('a page view without events or impressions has no results', () => {
    expect(new PageViewState(identity).results()).toEqual({
      identity,
      flags: [],
      impressions: [],
      buckets: [],
    });
    const state = new PageViewState(identity);
    state.apply(ev({ seq: 1, t: 0, imps: [] }));
    expect(state.results().impressions).toEqual([]);
  });

  it('orders impressions by first appearance', () => {
    const state = new PageViewState(identity);
    state.apply(ev({ seq: 3, t: 2000, imps: [imp({ id: 'c' }), imp({ id: 'b' })] }));
    state.apply(ev({ seq: 2, t: 1000, imps: [imp({ id: 'b' }), imp({ id: 'a' })] }));
    expect(state.results().impressions.map((i) => i.impression_id)).toEqual(['b', 'a', 'c']);
  });
});

describe('packing limits', () => {
  it.each([
    { impressions: 0, metas: 0, listed: 2 ** 20 - 1, fits: true },
    { impressions: 0, metas: 0, listed: 2 ** 20, fits: false },
    { impressions: 2 ** 27 - 3, metas: 0, listed: 2, fits: true },
    { impressions: 2 ** 27 - 2, metas: 0, listed: 2, fits: false },
    { impressions: 0, metas: 2 ** 24 - 3, listed: 2, fits: true },
    { impressions: 0, metas: 2 ** 24 - 2, listed: 2, fits: false },
  ])(
    '$impressions impressions, $metas metas, $listed listed → $fits',
    ({ impressions, metas, listed, fits }) => {
      expect(fitsEntryLimits(impressions, metas, listed)).toBe(fits);
    },
  );
});

describe('many impressions', () => {
  it('a page of 12 impressions listed in a changing order credits each on its own', () => {
    const ids = Array.from({ length: 12 }, (_, i) => `imp-${i}`);
    // Impression i is in view (full pixels) exactly when i is even; the listing order rotates.
    const listed = (seq: number) =>
      ids
        .map((_, i) => ids[(i + seq) % ids.length] as string)
        .map((id) => imp({ id, visible: Number(id.slice(4)) % 2 === 0 ? 75_000 : 0 }));
    const state = new PageViewState(identity);
    for (let seq = 1; seq <= 4; seq++) state.apply(ev({ seq, t: (seq - 1) * 1000, imps: listed(seq) }));
    const byId = new Map(state.results().impressions.map((r) => [r.impression_id, r.viewable_ms]));
    // Qualifying at seqs 1-3: segments 0→1000→2000→3000 credit 3000 ms to each even impression.
    expect(ids.map((id) => byId.get(id))).toEqual(ids.map((_, i) => (i % 2 === 0 ? 3000 : 0)));
    // First appearance: seq 1 lists them rotated by one.
    expect(state.results().impressions.map((r) => r.impression_id)).toEqual(
      listed(1).map((i) => i.impression_id),
    );
    const restored = PageViewState.restore(JSON.parse(JSON.stringify(state.snapshot())));
    restored.apply(ev({ seq: 5, t: 4000, imps: listed(5) }));
    state.apply(ev({ seq: 5, t: 4000, imps: listed(5) }));
    expect(restored.results()).toEqual(state.results());
  });
});

describe('snapshot and restore', () => {
  const events = timeline([
    [0, 'Q'],
    [1000, 'Q'],
    [1500, 'N'],
    [5000, 'Q'],
    [5400, 'N'],
  ]);

  it.each([0, 1, 2, 3, 4, 5])('cut after %i events, through JSON, continues to the same results', (cut) => {
    const whole = new PageViewState(identity);
    for (const e of events) whole.apply(e);
    const first = new PageViewState(identity);
    for (const e of events.slice(0, cut)) first.apply(e);
    const restored = PageViewState.restore(JSON.parse(JSON.stringify(first.snapshot())));
    for (const e of events.slice(cut)) restored.apply(e);
    expect(restored.results()).toEqual(whole.results());
    expect(restored.results().impressions[0]?.viewable_ms).toBe(1900);
  });

  it('keeps flags and duplicate detection across a restore', () => {
    const state = new PageViewState(identity);
    state.apply(ev({ seq: 1, t: 0, ua: 'Googlebot/2.1' }));
    const restored = PageViewState.restore(JSON.parse(JSON.stringify(state.snapshot())));
    expect(restored.apply(ev({ seq: 1, t: 0 }))).toBe('duplicate');
    expect(restored.apply(ev({ seq: 1, t: 1 }))).toBe('conflicting_duplicate');
    expect(restored.flags()).toEqual(['conflicting_duplicate', 'givt_user_agent']);
  });

  it.each([
    { name: 'another format', edit: (s: Record<string, unknown>) => ({ ...s, format: 2 }), field: 'format' },
    {
      name: 'another kind',
      edit: (s: Record<string, unknown>) => ({ ...s, kind: 'partition' }),
      field: 'kind',
    },
    {
      name: 'seqs out of order',
      edit: (s: Record<string, unknown>) => ({ ...s, events: [...(s['events'] as unknown[])].reverse() }),
      field: 'events[1][0]',
    },
    {
      name: 'an entry outside the tables',
      edit: (s: Record<string, unknown>) => ({ ...s, impressions: [] }),
      field: 'events[0][4]',
    },
    { name: 'not an object', edit: () => 'nope', field: 'snapshot' },
  ])('refuses $name', ({ edit, field }) => {
    const state = new PageViewState(identity);
    state.apply(ev({ seq: 1, t: 0 }));
    state.apply(ev({ seq: 2, t: 1000, imps: [N()] }));
    const bad = edit(JSON.parse(JSON.stringify(state.snapshot())) as Record<string, unknown>);
    expect(() => PageViewState.restore(bad)).toThrow(SnapshotError);
    expect(() => PageViewState.restore(bad)).toThrow(expect.objectContaining({ field }));
  });

  it('refuses a snapshot taken under other rules', () => {
    const state = new PageViewState(identity);
    state.apply(ev({ seq: 1, t: 0 }));
    const other = createRulesConfig({ rulesVersion: 2, maxGapMs: 2000 });
    expect(() => PageViewState.restore(state.snapshot(), other)).toThrow(
      expect.objectContaining({ field: 'rules_fingerprint' }),
    );
  });

  it('holds only plain JSON values', () => {
    const state = new PageViewState(identity);
    for (const e of events as PageEvent[]) state.apply(e);
    const snapshot = state.snapshot();
    expect(JSON.parse(JSON.stringify(snapshot))).toEqual(snapshot);
    expect(snapshot).toMatchObject({ format: 1, kind: 'page_view', rules_version: 1 });
  });
});
