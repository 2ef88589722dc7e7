/** Rule 7: credited segments placed in server time through the anchor and cut at minute boundaries. */
import { describe, expect, it } from 'vitest';
import type { PageEvent } from '@dwell/protocol';
import { splitIntoMinutes } from './impression-track.js';
import { PageViewState } from './page-view-state.js';
import { createRulesConfig, type RulesConfig } from './rules-config.js';
import { BASE_MS, ev, identity, N, Q } from './test-support/events.js';

const M = 60_000;

function rows(events: readonly PageEvent[], config?: RulesConfig): [number, number][] {
  const state = new PageViewState(identity, config);
  for (const e of events) state.apply(e);
  return state.results().buckets.map((r) => [r.minute_start_ms - BASE_MS, r.viewable_ms]);
}

/** Events at client times `ts` (last one N), all received `anchor` ms after BASE_MS plus t. */
function anchored(anchor: number, ts: readonly number[]): PageEvent[] {
  return ts.map((t, i) =>
    ev({ seq: i + 1, t, recv: BASE_MS + anchor + t, imps: [i < ts.length - 1 ? Q() : N()] }),
  );
}

describe('splitIntoMinutes', () => {
  it.each([
    { start: 0, ms: 1000, expected: [[0, 1000]] },
    { start: 59_000, ms: 1000, expected: [[0, 1000]] },
    {
      start: 59_001,
      ms: 1000,
      expected: [
        [0, 999],
        [M, 1],
      ],
    },
    { start: 60_000, ms: 1, expected: [[M, 1]] },
    {
      start: 30_000,
      ms: 130_000,
      expected: [
        [0, 30_000],
        [M, 60_000],
        [2 * M, 40_000],
      ],
    },
    {
      start: -500,
      ms: 1000,
      expected: [
        [-M, 500],
        [0, 500],
      ],
    },
    { start: 10, ms: 0, expected: [] },
  ])('[$start, +$ms) → $expected', ({ start, ms, expected }) => {
    expect(splitIntoMinutes(BASE_MS + start, ms).map(([m, part]) => [m - BASE_MS, part])).toEqual(expected);
  });
});

describe('minute rows of a page view', () => {
  it.each([
    { name: 'inside one minute', anchor: 0, ts: [0, 1000, 2000], expected: [[0, 2000]] },
    {
      name: 'a segment crossing the boundary is split exactly',
      anchor: 59_500,
      ts: [0, 1000, 2000],
      expected: [
        [0, 500],
        [M, 1500],
      ],
    },
    {
      name: 'a segment ending on the boundary stays in its minute',
      anchor: 59_000,
      ts: [0, 1000],
      expected: [[0, 1000]],
    },
    { name: 'a segment starting on the boundary', anchor: 60_000, ts: [0, 1000], expected: [[M, 1000]] },
    {
      name: 'one row per minute over three minutes',
      anchor: 0,
      ts: Array.from({ length: 151 }, (_, i) => i * 1000),
      expected: [
        [0, 60_000],
        [M, 60_000],
        [2 * M, 30_000],
      ],
    },
  ])('$name', ({ anchor, ts, expected }) => {
    expect(rows(anchored(anchor, ts))).toEqual(expected);
  });

  it('a segment spanning several minutes (a config with a long MAX_GAP)', () => {
    const config = createRulesConfig({ rulesVersion: 1001, maxGapMs: 200_000, minRunMsDisplay: 1000 });
    expect(rows(anchored(30_000, [0, 130_000]), config)).toEqual([
      [0, 30_000],
      [M, 60_000],
      [2 * M, 40_000],
    ]);
  });

  it('places time by the first event’s recv_ms, not by each event’s delivery', () => {
    // Seq 2 and 3 were delivered late; the segments still follow the page clock from the anchor.
    const events = [
      ev({ seq: 1, t: 0, recv: BASE_MS + 59_000 }),
      ev({ seq: 2, t: 1000, recv: BASE_MS + 70_000 }),
      ev({ seq: 3, t: 2000, recv: BASE_MS + 70_001, imps: [N()] }),
    ];
    expect(rows(events)).toEqual([
      [0, 1000],
      [M, 1000],
    ]);
  });

  it('the anchor is the first event by seq even when it arrives last', () => {
    const events = anchored(59_500, [0, 1000, 2000]);
    const state = new PageViewState(identity);
    for (const e of [...events].reverse()) state.apply(e);
    expect(state.results().buckets.map((r) => [r.minute_start_ms - BASE_MS, r.viewable_ms])).toEqual([
      [0, 500],
      [M, 1500],
    ]);
  });

  it('an impression that is not viewable has no rows; one that is has rows summing to viewable_ms', () => {
    const a = (v: boolean) => ({ ...Q(), impression_id: 'a', visible_px: v ? 75_000 : 0 });
    const b = (v: boolean) => ({ ...Q(), impression_id: 'b', visible_px: v ? 75_000 : 0 });
    const events = [
      ev({ seq: 1, t: 0, recv: BASE_MS + 59_800, imps: [a(true), b(true)] }),
      ev({ seq: 2, t: 600, recv: BASE_MS + 60_400, imps: [a(true), b(false)] }),
      ev({ seq: 3, t: 1200, recv: BASE_MS + 61_000, imps: [a(false), b(false)] }),
    ];
    const state = new PageViewState(identity);
    for (const e of events) state.apply(e);
    const { impressions, buckets } = state.results();
    expect(impressions.map((i) => [i.impression_id, i.credited_ms, i.viewable_ms])).toEqual([
      ['a', 1200, 1200],
      ['b', 600, 0],
    ]);
    expect(buckets.map((r) => [r.impression_id, r.minute_start_ms - BASE_MS, r.viewable_ms])).toEqual([
      ['a', 0, 200],
      ['a', M, 1000],
    ]);
    expect(buckets[0]).toMatchObject({
      page_view_id: 'pv-0001',
      site_id: 'site-1',
      user_id: 'user-1',
      ad_id: 'ad-1',
      campaign_id: 'camp-1',
      rules_version: 1,
    });
  });
});
