/** Rule 8 (lateness) and the partition's bookkeeping: changes, closing, eviction, retractions. */
import { describe, expect, it } from 'vitest';
import type { PageEvent } from '@dwell/protocol';
import { eventContentHash } from './content-hash.js';
import { ReportCollector, type ReportSink } from './page-view-report.js';
import { PartitionExposure } from './partition-exposure.js';
import { createRulesConfig } from './rules-config.js';
import type { ImpressionResult } from './results.js';
import { BASE_MS, ev, imp, N, Q } from './test-support/events.js';

const L = 600_000;
const HOUR = 3_600_000;

/** An event of page view `pv` received at BASE_MS + `at`. */
const at = (pv: string, seq: number, atMs: number, extra: Partial<Parameters<typeof ev>[0]> = {}) =>
  ev({ pv, seq, t: seq * 1000, recv: BASE_MS + atMs, ...extra });

describe('watermark', () => {
  it('is the highest recv_ms applied, in log order; invalid events do not move it', () => {
    const p = new PartitionExposure();
    expect(p.watermarkMs).toBeNull();
    p.apply(at('a', 1, 500));
    p.apply(at('b', 1, 300));
    expect(p.watermarkMs).toBe(BASE_MS + 500);
    expect(p.apply(ev({ pv: 'a', seq: 0, t: 0, recv: BASE_MS + 9_999_999 }))).toBe('invalid_event');
    expect(p.watermarkMs).toBe(BASE_MS + 500);
  });
});

describe('lateness of an open page view', () => {
  it.each([
    { name: 'watermark exactly ALLOWED_LATENESS past its last event', gap: L, expected: 'accepted' },
    { name: 'one ms more', gap: L + 1, expected: 'late' },
  ])('other traffic: $name → $expected', ({ gap, expected }) => {
    const p = new PartitionExposure();
    p.apply(at('a', 1, 0));
    p.apply(at('b', 1, gap));
    expect(p.apply(at('a', 2, gap))).toBe(expected);
  });

  it.each([
    { gap: L, expected: 'accepted' },
    { gap: L + 1, expected: 'late' },
  ])('its own next event $gap ms later, in a quiet partition → $expected', ({ gap, expected }) => {
    const p = new PartitionExposure();
    p.apply(at('a', 1, 0));
    expect(p.apply(at('a', 2, gap))).toBe(expected);
  });

  it('a duplicate keeps a page view alive, a late event does not', () => {
    const p = new PartitionExposure();
    p.apply(at('a', 1, 0));
    expect(p.apply(at('a', 1, 400_000))).toBe('duplicate');
    p.apply(at('b', 1, 900_000));
    expect(p.apply(at('a', 2, 900_000))).toBe('accepted');
  });
});

describe('closing', () => {
  it('closes a page view once the watermark passes its last event by more than ALLOWED_LATENESS, reported final once', () => {
    const p = new PartitionExposure();
    p.apply(at('a', 1, 0, { imps: [Q()] }));
    p.apply(at('a', 2, 1000, { imps: [N()] }));
    expect(p.takeChanges().changed.map((r) => r.page_view_id)).toEqual(['a']);
    p.apply(at('b', 1, 1000 + L));
    expect(p.takeChanges().closed).toEqual([]);
    p.apply(at('b', 2, 1001 + L));
    const { changed, closed } = p.takeChanges();
    expect(changed.map((r) => r.page_view_id)).toEqual(['b']);
    expect(closed.map((r) => [r.page_view_id, r.final, r.impressions[0]?.viewable_ms])).toEqual([
      ['a', true, 1000],
    ]);
    expect(p.takeChanges()).toEqual({ closed: [], changed: [] });
    expect(p.pageViewsInMemory).toBe(1);
  });

  it('a page view changed and closed between two calls is reported once, as closed', () => {
    const p = new PartitionExposure();
    p.apply(at('a', 1, 0));
    p.apply(at('b', 1, L + 1));
    const { changed, closed } = p.takeChanges();
    expect(changed.map((r) => r.page_view_id)).toEqual(['b']);
    expect(closed.map((r) => r.page_view_id)).toEqual(['a']);
  });

  it('closes in order of last event, then id', () => {
    const p = new PartitionExposure();
    p.apply(at('c', 1, 20));
    p.apply(at('b', 1, 10));
    p.apply(at('a', 1, 20));
    p.apply(at('c', 2, 5));
    p.apply(at('z', 1, 21 + L));
    expect(p.takeChanges().closed.map((r) => r.page_view_id)).toEqual(['b', 'a', 'c']);
  });

  it('memory stays bounded: page views come and go with the watermark', () => {
    const p = new PartitionExposure();
    for (let i = 0; i < 2000; i++) {
      p.apply(at(`pv-${i}`, 1, i * 1000));
      if (i % 100 === 0) p.takeChanges();
    }
    p.takeChanges();
    // Open: those with a last event within ALLOWED_LATENESS of the watermark (601 of them).
    expect(p.pageViewsInMemory).toBe(601);
  });
});

describe('lateness of a page view that is not open', () => {
  it('an evicted page view is still late, even for a fresh resend', () => {
    const p = new PartitionExposure();
    p.apply(at('a', 1, 0));
    p.apply(at('b', 1, L + 1));
    // The client was offline; it resends seq 2 now, with a fresh recv_ms.
    expect(p.apply(at('a', 2, L + 2))).toBe('late');
    expect(p.apply(at('a', 1, L + 3))).toBe('late');
    expect(p.takeChanges().changed.map((r) => r.page_view_id)).toEqual(['b']);
  });

  it('forgets a closed id once the watermark is past its last event by ALLOWED_LATENESS + closed memory', () => {
    const p = new PartitionExposure();
    p.apply(at('a', 1, 0));
    p.apply(at('b', 1, L + 1));
    expect(p.closedIdsRemembered).toBe(1);
    // 'b' closes too; 'a' (last event at 0) is remembered up to a watermark of L + HOUR.
    p.apply(at('c', 1, L + HOUR));
    expect(p.closedIdsRemembered).toBe(2);
    p.apply(at('c', 2, L + HOUR + 1));
    expect(p.closedIdsRemembered).toBe(1);
  });

  it('an id that closes and opens again between two calls reports the closed one first', () => {
    const config = createRulesConfig({ rulesVersion: 1001, closedMemoryMs: 0 });
    const p = new PartitionExposure(config);
    p.apply(at('a', 1, 0, { imps: [Q()] }));
    p.apply(at('a', 2, 1000, { imps: [N()] }));
    p.apply(at('b', 1, L + 1001));
    expect(p.apply(at('a', 7, L + 1001, { imps: [N()] }))).toBe('accepted');
    const { closed, changed } = p.takeChanges();
    expect(closed.map((r) => [r.page_view_id, r.impressions[0]?.viewable_ms])).toEqual([['a', 1000]]);
    expect(changed.map((r) => [r.page_view_id, r.impressions[0]?.viewable_ms])).toEqual([
      ['b', 0],
      ['a', 0],
    ]);
  });

  it.each([
    { name: 'within the closed memory', after: L + HOUR, expected: 'late' },
    { name: 'past the closed memory: a new page view', after: L + HOUR + 1, expected: 'accepted' },
  ])('$name → $expected', ({ after, expected }) => {
    const p = new PartitionExposure();
    p.apply(at('a', 1, 0));
    p.apply(at('b', 1, L + 1));
    p.apply(at('c', 1, after));
    expect(p.apply(at('a', 2, after))).toBe(expected);
  });

  it.each([
    { name: 'its own recv_ms within ALLOWED_LATENESS of the watermark', behind: L, expected: 'accepted' },
    { name: 'its own recv_ms further behind', behind: L + 1, expected: 'late' },
  ])('never seen, $name → $expected', ({ behind, expected }) => {
    const p = new PartitionExposure();
    p.apply(at('a', 1, 2 * L));
    expect(p.apply(at('new', 1, 2 * L - behind))).toBe(expected);
  });

  it('a closed memory of 0 forgets at once', () => {
    const p = new PartitionExposure(createRulesConfig({ rulesVersion: 1001, closedMemoryMs: 0 }));
    p.apply(at('a', 1, 0));
    p.apply(at('b', 1, L + 1));
    expect(p.apply(at('a', 2, L + 1))).toBe('accepted');
  });
});

describe('changes', () => {
  it('only page views whose results changed are reported', () => {
    const p = new PartitionExposure();
    p.apply(at('a', 1, 0));
    p.apply(at('b', 1, 0));
    p.takeChanges();
    expect(p.apply(at('a', 1, 10))).toBe('duplicate');
    expect(p.apply(at('b', 2, 10, { user: 'intruder' }))).toBe('identity_mismatch');
    expect(p.takeChanges().changed).toEqual([]);
    p.apply(at('b', 2, 20));
    p.apply(at('a', 2, 30));
    p.apply(at('b', 3, 40));
    expect(p.takeChanges().changed.map((r) => r.page_view_id)).toEqual(['b', 'a']);
  });

  it('retracts minute rows that no longer bill when a flag appears', () => {
    const p = new PartitionExposure();
    p.apply(ev({ pv: 'a', seq: 1, t: 0, recv: BASE_MS + 59_500 }));
    p.apply(ev({ pv: 'a', seq: 2, t: 1000, recv: BASE_MS + 60_500 }));
    p.apply(ev({ pv: 'a', seq: 3, t: 2000, recv: BASE_MS + 61_500, imps: [N()] }));
    const first = p.takeChanges().changed[0];
    expect(first?.buckets.map((r) => [r.minute_start_ms - BASE_MS, r.viewable_ms])).toEqual([
      [0, 500],
      [60_000, 1500],
    ]);
    p.apply(ev({ pv: 'a', seq: 2, t: 1000, recv: BASE_MS + 61_600, imps: [imp({ visible: 1 })] }));
    const second = p.takeChanges().changed[0];
    expect(second?.flags).toEqual(['conflicting_duplicate']);
    expect(second?.buckets).toEqual([]);
    expect(
      second?.retracted_buckets.map((r) => [r.impression_id, r.minute_start_ms - BASE_MS, r.viewable_ms]),
    ).toEqual([
      ['imp-1', 0, 0],
      ['imp-1', 60_000, 0],
    ]);
    expect(second?.retracted_buckets[0]).toMatchObject({
      page_view_id: 'a',
      site_id: 'site-1',
      user_id: 'user-1',
      ad_id: 'ad-1',
      campaign_id: 'camp-1',
      rules_version: 1,
    });
    // Retracted once; later reports do not repeat them.
    p.apply(ev({ pv: 'a', seq: 4, t: 3000, recv: BASE_MS + 62_500 }));
    expect(p.takeChanges().changed[0]).toMatchObject({ buckets: [], retracted_buckets: [] });
  });

  it('retracts a minute the anchor moved away from when an earlier seq arrives', () => {
    const p = new PartitionExposure();
    // Seq 2 and 3 arrive first: anchored at seq 2, the run sits in minute 1.
    p.apply(ev({ pv: 'a', seq: 2, t: 1000, recv: BASE_MS + 60_100 }));
    p.apply(ev({ pv: 'a', seq: 3, t: 2000, recv: BASE_MS + 61_100, imps: [N()] }));
    expect(
      p.takeChanges().changed[0]?.buckets.map((r) => [r.minute_start_ms - BASE_MS, r.viewable_ms]),
    ).toEqual([[60_000, 1000]]);
    // Seq 1 (received first, logged last) moves the anchor: the whole run now falls in minute 0.
    p.apply(ev({ pv: 'a', seq: 1, t: 0, recv: BASE_MS + 57_000 }));
    const { buckets, retracted_buckets } = p.takeChanges().changed[0] ?? {
      buckets: [],
      retracted_buckets: [],
    };
    expect(buckets.map((r) => [r.minute_start_ms - BASE_MS, r.viewable_ms])).toEqual([[0, 2000]]);
    expect(retracted_buckets.map((r) => [r.minute_start_ms - BASE_MS, r.viewable_ms])).toEqual([[60_000, 0]]);
  });
});

/**
 * Three copies of page view `a`'s first event, each replacing the one before (the smaller content
 * hash is kept): with impressions `x` and `y`, with `y` alone, with both again. They differ in
 * t_wall_ms alone.
 */
function copiesInHashOrder(x: ReturnType<typeof imp>): { first: PageEvent; without: PageEvent; later: PageEvent } {
  const y = imp({ id: 'y', ad: 'ad-y' });
  const copy = (wall: number, imps: ReturnType<typeof imp>[]) => ev({ pv: 'a', seq: 1, t: 0, wall, imps });
  const hash = (e: PageEvent) => eventContentHash(e.event);
  const without = copy(0, [y]);
  const walls = Array.from({ length: 200 }, (_, i) => i + 1);
  const firstWall = walls.find((w) => hash(copy(w, [x, y])) > hash(without));
  const laterWall = walls.find((w) => hash(copy(w, [x, y])) < hash(without));
  if (firstWall === undefined || laterWall === undefined) throw new Error('no copies with the needed hash order');
  return { first: copy(firstWall, [x, y]), without, later: copy(laterWall, [x, y]) };
}

describe('impression retractions', () => {
  it('zero an impression that vanished when a conflicting copy without it became the kept one', () => {
    const two = [imp({ id: 'x' }), imp({ id: 'y', ad: 'ad-y' })];
    const copies = [
      ev({ pv: 'a', seq: 1, t: 0, imps: two }),
      ev({ pv: 'a', seq: 1, t: 0, imps: [imp({ id: 'x' })] }),
    ];
    // Which copy is kept depends on content hashes: log the one listing 'y' first.
    for (const order of [copies, [...copies].reverse()]) {
      const p = new PartitionExposure();
      p.apply(order[0] as PageEvent);
      p.apply(ev({ pv: 'a', seq: 2, t: 1000, imps: [] }));
      const before = p.takeChanges().changed[0];
      p.apply(order[1] as PageEvent);
      const after = p.takeChanges().changed[0];
      const ids = (rows: readonly { impression_id: string }[] | undefined) =>
        rows?.map((r) => r.impression_id);
      const vanished = ids(before?.impressions)?.filter((id) => !ids(after?.impressions)?.includes(id));
      expect(ids(after?.retracted_impressions)).toEqual(vanished);
      for (const row of after?.retracted_impressions ?? []) {
        expect(row).toMatchObject({
          ad_id: 'ad-y',
          measurable: false,
          viewable: false,
          billable: false,
          viewable_ms: 0,
          credited_ms: 0,
          flags: ['conflicting_duplicate'],
        });
      }
    }
  });
  it('writes an impression again when a later copy brings it back unchanged after a copy without it retracted it', () => {
    // x is never in view, so its row is the same whichever copy listed it; the copy without it
    // zeroes that row.
    const { first, without, later } = copiesInHashOrder(imp({ id: 'x', visible: 0 }));

    /** Impression rows upserted in write order, as a ReplacingMergeTree keeps them. */
    const rows = new Map<string, ImpressionResult>();
    const sink: ReportSink = {
      pageView: () => undefined,
      impression: (row) => void rows.set(row.impression_id, { ...row }),
      minute: () => undefined,
    };
    const p = new PartitionExposure();
    p.apply(first);
    p.writeChanges(sink, true);
    expect(rows.get('x')).toMatchObject({ measurable: true, viewable: false });
    expect(p.apply(without)).toBe('conflicting_duplicate');
    p.writeChanges(sink, true);
    expect(rows.get('x')).toMatchObject({ measurable: false, credited_ms: 0 });
    expect(p.apply(later)).toBe('conflicting_duplicate');
    p.writeChanges(sink, true);
    expect(rows.get('x')).toMatchObject({ measurable: true, viewable: false, flags: ['conflicting_duplicate'] });
  });
});

describe('a snapshot restored', () => {
  it('snapshots the same again when a copy brought an impression back and only the minute rows were written since', () => {
    const { first, without, later } = copiesInHashOrder(imp({ id: 'x' }));
    const sink: ReportSink = { pageView: () => undefined, impression: () => undefined, minute: () => undefined };
    const p = new PartitionExposure();
    p.apply(first);
    p.writeChanges(sink, true);
    p.apply(without);
    p.writeChanges(sink, true);
    p.apply(later);
    // Minute rows only: the last minute rows list x again, the last impression rows do not.
    p.writeChanges(sink, true, false);
    const snapshot = p.snapshot();
    expect(snapshot.open[0]?.reported_impressions?.map(([id]) => id)).toEqual(['y']);
    expect(PartitionExposure.restore(JSON.parse(JSON.stringify(snapshot)) as unknown).snapshot()).toEqual(snapshot);
  });
});

describe('impression rows held back', () => {
  /** Writes the partition's changes and says which rows each page view's report held. */
  const write = (p: PartitionExposure, impressions: boolean) => {
    const collector = new ReportCollector();
    p.writeChanges(collector, true, impressions);
    return [...collector.closed, ...collector.changed].map((r) => ({
      pv: r.page_view_id,
      final: r.final,
      impressions: r.impressions.map((i) => [i.impression_id, i.credited_ms, i.last_server_ms - BASE_MS]),
      minutes: r.buckets.map((b) => [b.impression_id, b.minute_start_ms - BASE_MS, b.viewable_ms]),
    }));
  };

  it('a write without impressions holds the minute rows; the next one with them reports every page view held back, changed since or not', () => {
    const p = new PartitionExposure();
    p.apply(at('a', 1, 0, { imps: [Q()] }));
    p.apply(at('b', 1, 0, { imps: [Q()] }));
    p.apply(at('a', 2, 1000, { imps: [Q()] }));
    expect(write(p, false)).toEqual([
      { pv: 'a', final: false, impressions: [], minutes: [['imp-1', 0, 1000]] },
      { pv: 'b', final: false, impressions: [], minutes: [] },
    ]);
    expect(p.impressionsDue).toBe(2);
    p.apply(at('b', 2, 1500, { imps: [Q()] }));
    // 'b' changed again: its report holds both; 'a' did not: its held-back impression row follows.
    expect(write(p, true)).toEqual([
      { pv: 'b', final: false, impressions: [['imp-1', 1000, 1000]], minutes: [['imp-1', 0, 1000]] },
      { pv: 'a', final: false, impressions: [['imp-1', 1000, 1000]], minutes: [] },
    ]);
    expect(p.impressionsDue).toBe(0);
    // Nothing held back and nothing changed: nothing reported.
    expect(write(p, true)).toEqual([]);
  });

  it('a page view that closes with its impression rows held back reports them in its final report', () => {
    const p = new PartitionExposure();
    p.apply(at('a', 1, 0, { imps: [Q()] }));
    p.apply(at('a', 2, 1000, { imps: [Q()] }));
    write(p, false);
    p.apply(at('b', 1, L + 1001));
    expect(write(p, false)).toEqual([
      { pv: 'a', final: true, impressions: [['imp-1', 1000, 1000]], minutes: [['imp-1', 0, 1000]] },
      { pv: 'b', final: false, impressions: [], minutes: [] },
    ]);
    expect(p.impressionsDue).toBe(1);
  });

  it('a snapshot keeps what is held back, and restores snapshots made before rows could be', () => {
    const p = new PartitionExposure();
    p.apply(at('a', 1, 0, { imps: [Q()] }));
    p.apply(at('a', 2, 1000, { imps: [Q()] }));
    write(p, false);
    const snapshot = JSON.parse(p.snapshotText()) as Record<string, unknown>;
    expect(snapshot['impressions_due']).toEqual(['a']);
    const restored = PartitionExposure.restore(snapshot);
    expect(restored.impressionsDue).toBe(1);
    expect(write(restored, true)).toEqual([
      { pv: 'a', final: false, impressions: [['imp-1', 1000, 1000]], minutes: [] },
    ]);
    // A snapshot without the field: nothing held back.
    const { impressions_due: _, ...older } = snapshot;
    expect(PartitionExposure.restore(older).impressionsDue).toBe(0);
    expect(() => PartitionExposure.restore({ ...snapshot, impressions_due: ['zz'] })).toThrow(
      expect.objectContaining({ field: 'impressions_due[0]' }),
    );
  });
});

describe('snapshot and restore', () => {
  it('continues exactly, including pending changes, closing reports and the closed memory', () => {
    const log = [
      at('a', 1, 0),
      at('a', 2, 1000, { imps: [N()] }),
      at('b', 1, 5000),
      at('c', 1, L + 1001),
      at('a', 3, L + 1002),
      at('b', 2, L + 1003),
      at('d', 1, L + 5001),
    ];
    for (let cut = 0; cut <= log.length; cut++) {
      const whole = new PartitionExposure();
      const wholeOutcomes = log.map((e) => whole.apply(e));
      const first = new PartitionExposure();
      const outcomes = log.slice(0, cut).map((e) => first.apply(e));
      const restored = PartitionExposure.restore(JSON.parse(JSON.stringify(first.snapshot())));
      outcomes.push(...log.slice(cut).map((e) => restored.apply(e)));
      expect(outcomes).toEqual(wholeOutcomes);
      expect(restored.takeChanges()).toEqual(whole.takeChanges());
      expect(restored.watermarkMs).toBe(whole.watermarkMs);
    }
  });

  it('refuses a page-view snapshot and other rules', () => {
    const p = new PartitionExposure();
    p.apply(at('a', 1, 0));
    const snapshot = JSON.parse(JSON.stringify(p.snapshot())) as Record<string, unknown>;
    expect(() => PartitionExposure.restore({ ...snapshot, kind: 'page_view' })).toThrow(
      expect.objectContaining({ field: 'kind' }),
    );
    expect(() =>
      PartitionExposure.restore(snapshot, createRulesConfig({ rulesVersion: 2, allowedLatenessMs: 1 })),
    ).toThrow(expect.objectContaining({ field: 'rules_fingerprint' }));
  });
});

describe('snapshot text', () => {
  // Page views of one event each, 100 a second: each closes a second after it, and its id is
  // remembered for three minutes more, so about 18,000 ids are remembered at once (several chunks
  // of the kept text), the oldest leaving as new ones join.
  const config = createRulesConfig({ rulesVersion: 3001, allowedLatenessMs: 1_000, closedMemoryMs: 180_000 });

  it('is the snapshot as JSON while thousands of remembered closed ids come and go', () => {
    const p = new PartitionExposure(config);
    let mostRemembered = 0;
    for (let i = 0; i < 30_000; i++) {
      p.apply(at(`pv-${i}`, 1, i * 10));
      if (i % 10 === 0) p.takeChanges();
      mostRemembered = Math.max(mostRemembered, p.closedIdsRemembered);
      // Irregular points, so that the front is pruned part-way into a chunk as often as not.
      if (i % 1_777 === 0 || i % 2_903 === 0) expect(p.snapshotText()).toBe(JSON.stringify(p.snapshot()));
    }
    expect(mostRemembered).toBeGreaterThan(3 * 4096);
    expect(p.snapshotText()).toBe(JSON.stringify(p.snapshot()));
  });

  it('is the snapshot as JSON when a remembered id closes again from the middle', () => {
    // A restored partition whose remembered ids are out of order: `b` (older) lingers behind `a`
    // after its three minutes, so it can open and close again while still remembered.
    const p = new PartitionExposure(config);
    p.apply(at('x', 1, 0));
    const snapshot = JSON.parse(JSON.stringify(p.snapshot())) as Record<string, unknown>;
    // Enough ids after them that `b` sits inside a full chunk of the kept text.
    const more = Array.from({ length: 5_000 }, (_, i) => [`m-${i}`, BASE_MS + 70_000 + i]);
    const restored = PartitionExposure.restore(
      { ...snapshot, closed_recently: [['a', BASE_MS + 60_000], ['b', BASE_MS + 1_000], ...more] },
      config,
    );
    expect(restored.snapshotText()).toBe(JSON.stringify(restored.snapshot()));
    expect(restored.apply(at('b', 1, 185_000))).toBe('accepted');
    restored.takeChanges();
    expect(restored.snapshotText()).toBe(JSON.stringify(restored.snapshot()));
    restored.apply(at('y', 1, 187_000));
    restored.takeChanges();
    const text = restored.snapshotText();
    expect(text).toBe(JSON.stringify(restored.snapshot()));
    expect(text).toContain(`["b",${BASE_MS + 185_000}]`);
  });
});

describe('deltas', () => {
  const config = createRulesConfig({ rulesVersion: 3002, allowedLatenessMs: 1_000, closedMemoryMs: 10_000 });
  const parse = (text: string | undefined) => JSON.parse(text as string) as Record<string, unknown>;

  it('there is none before a snapshot text or a restore gives a base', () => {
    const p = new PartitionExposure(config);
    p.apply(at('a', 1, 0));
    expect(p.deltaText()).toBeUndefined();
    const restored = PartitionExposure.restore(JSON.parse(JSON.stringify(p.snapshot())), config);
    expect(parse(restored.deltaText())).toMatchObject({ kind: 'partition_delta', removed: [], updated: [], opened: [] });
    p.snapshotText();
    expect(p.deltaText()).toBeDefined();
  });

  it('holds only the page views that changed, opened or closed since the last one', () => {
    const p = new PartitionExposure(config);
    for (let i = 0; i < 500; i++) p.apply(at(`pv-${i}`, 1, 0));
    p.takeChanges();
    const base = p.snapshotText();
    p.apply(at('pv-7', 2, 500));
    p.apply(at('new', 1, 600));
    const first = parse(p.deltaText());
    const ids = (entries: unknown) =>
      (entries as { state: { identity: { page_view_id: string } } }[]).map((e) => e.state.identity.page_view_id);
    expect(ids(first['updated'])).toEqual(['pv-7']);
    expect((first['opened'] as unknown[]).length).toBe(1);
    expect(first['removed']).toEqual([]);
    // 1,001 ms later every page view but pv-7 and `new` closes; their ids are remembered.
    p.apply(at('pv-7', 3, 1_001));
    p.takeChanges();
    const second = parse(p.deltaText());
    expect((second['removed'] as string[]).length).toBe(499);
    expect((second['closed_added'] as unknown[]).length).toBe(499);
    // pv-7 took an event; `new` was reported since (what it last reported is part of its state).
    expect(ids(second['updated'])).toEqual(['pv-7', 'new']);
    expect(second['opened']).toEqual([]);
    // 10 s on they are forgotten.
    p.apply(at('pv-7', 4, 11_002));
    p.takeChanges();
    const third = parse(p.deltaText());
    expect((third['closed_dropped'] as string[]).length).toBe(499);
    const restored = PartitionExposure.restore(JSON.parse(base), config, [first, second, third]);
    expect(restored.snapshot()).toEqual(p.snapshot());
    expect(base.length).toBeGreaterThan(50 * JSON.stringify(first).length);
  });

  it('refuses a delta that does not follow what came before it, saying which one and where', () => {
    const p = new PartitionExposure(config);
    p.apply(at('a', 1, 0));
    p.apply(at('b', 1, 0));
    p.takeChanges();
    const base = JSON.parse(p.snapshotText()) as Record<string, unknown>;
    p.apply(at('a', 2, 500));
    p.apply(at('c', 1, 500));
    const delta = parse(p.deltaText());
    const entryOf = (list: string) => (delta[list] as unknown[])[0];
    const cases: [Record<string, unknown>, string][] = [
      [{ ...delta, kind: 'partition' }, 'deltas[0].kind'],
      [{ ...delta, removed: ['zz'] }, 'deltas[0].removed[0]'],
      [{ ...delta, updated: [entryOf('opened')] }, 'deltas[0].updated[0]'],
      [{ ...delta, opened: [entryOf('updated')] }, 'deltas[0].opened[0]'],
      [{ ...delta, closed_dropped: ['zz'] }, 'deltas[0].closed_dropped[0]'],
      [{ ...delta, changed: ['zz'] }, 'deltas[0].changed[0]'],
    ];
    for (const [bad, field] of cases)
      expect(() => PartitionExposure.restore(base, config, [bad])).toThrow(expect.objectContaining({ field }));
    // A delta applied twice: its page view is open already.
    expect(() => PartitionExposure.restore(base, config, [delta, delta])).toThrow(
      expect.objectContaining({ field: 'deltas[1].opened[0]' }),
    );
    expect(PartitionExposure.restore(base, config, [delta]).snapshot()).toEqual(p.snapshot());
  });

  it('makes ahead the texts of page views quiet for a while, with no report pending, and only once', () => {
    const p = new PartitionExposure(config);
    // Before a first snapshot text nothing is kept for one: nothing to make ahead.
    p.apply(at('early', 1, 0));
    expect(p.prepareTexts(0, () => true)).toBe(0);
    p.takeChanges();
    p.snapshotText();
    p.apply(at('quiet', 1, 100));
    p.apply(at('busy', 1, 100));
    p.apply(at('busy', 2, 700));
    // `quiet` changed but its report is pending.
    expect(p.prepareTexts(500, () => true)).toBe(0);
    p.takeChanges();
    // 600 ms quiet against 0.
    expect(p.prepareTexts(500, () => true)).toBe(1);
    expect(p.prepareTexts(500, () => true)).toBe(0);
    expect(p.prepareTexts(0, () => true)).toBe(1);
    // A deadline already passed makes none.
    p.apply(at('busy', 3, 900));
    p.takeChanges();
    expect(p.prepareTexts(0, () => false)).toBe(0);
    const delta = parse(p.deltaText());
    expect((delta['opened'] as unknown[]).length).toBe(2);
  });
});
