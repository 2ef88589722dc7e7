import { describe, expect, it } from 'vitest';
import { eventContentHash } from '@dwell/exposure';
import { compute } from './compute.js';

const BASE = 1_800_000_000_000;

/** A wire event line: one 300×250 display impression, Q = fully visible, N = not visible. */
function line(pv: string, seq: number, t: number, q: boolean, extra: Record<string, unknown> = {}): string {
  return JSON.stringify({
    page_view_id: pv,
    seq,
    kind: seq === 1 ? 'render' : 'change',
    t_mono_ms: t,
    t_wall_ms: BASE + t,
    page: { visible: true, focused: true, foreground: true },
    impressions: [
      { impression_id: `${pv}-i`, ad_id: 'ad-1', campaign_id: 'c-1', width: 300, height: 250, media: 'display', visible_px: q ? 75_000 : 0, total_px: 75_000, playing: false, reasons: [] },
    ],
    recv_ms: BASE + t,
    user_id: 'u-1',
    site_id: 's-1',
    ...extra,
  });
}

async function* from(lines: readonly string[]): AsyncIterable<string> {
  yield* lines;
}

describe('dwell compute', () => {
  it('bills the worked examples exactly', async () => {
    const report = await compute(
      from([
        // Example 1: exactly TMIN.
        line('ex1', 1, 0, true),
        line('ex1', 2, 1000, false),
        // Example 2: two runs of 600 ms: nothing.
        line('ex2', 1, 0, true),
        line('ex2', 2, 600, false),
        line('ex2', 3, 800, true),
        line('ex2', 4, 1400, false),
        // Example 3: 1500 + 400 = 1900.
        line('ex3', 1, 0, true),
        line('ex3', 2, 1000, true),
        line('ex3', 3, 1500, false),
        line('ex3', 4, 5000, true),
        line('ex3', 5, 5400, false),
      ]),
    );
    expect(report.problems).toEqual([]);
    expect(Object.fromEntries(report.impressions.map((r) => [r.page_view_id, r.viewable_ms]))).toEqual({ ex1: 1000, ex2: 0, ex3: 1900 });
    expect(report.byAdAndUser).toEqual([
      { ad_id: 'ad-1', user_id: 'u-1', viewable_ms: 2900, viewable_impressions: 2, measurable_impressions: 3, viewability_rate: 2 / 3, avg_time_in_view_ms: 1450 },
    ]);
  });

  it('accepts stored events as export writes them, and orders by seq, not by line', async () => {
    const stored = (pv: string, seq: number, t: number, q: boolean): string => {
      const { recv_ms, user_id, site_id, ...event } = JSON.parse(line(pv, seq, t, q)) as Record<string, unknown>;
      return JSON.stringify({ recv_ms, user_id, site_id, user_agent: null, gateway_id: 'g', transport: 'ws_json', event });
    };
    const report = await compute(from([stored('p', 2, 1200, false), stored('p', 1, 0, true)]));
    expect(report.impressions.map((r) => r.viewable_ms)).toEqual([1200]);
  });

  it('reports refused lines with their reason and keeps going', async () => {
    const report = await compute(from(['{"nope"', line('ok', 1, 0, true), JSON.stringify({ page_view_id: 'x' }), line('ok', 2, 1000, false)]));
    expect(report.problems.map((p) => [p.line, p.reason])).toEqual([
      [1, 'malformed_json'],
      [3, 'missing_field'],
    ]);
    expect(report.impressions.map((r) => r.viewable_ms)).toEqual([1000]);
  });

  it('lists no impression that a kept conflicting copy took away, wherever its rows were taken', async () => {
    const keep = { impression_id: 'keep', ad_id: 'ad-1', campaign_id: 'c-1', width: 300, height: 250, media: 'display', visible_px: 75_000, total_px: 75_000, playing: false, reasons: [] };
    const gone = { ...keep, impression_id: 'gone' };
    const at = (seq: number, impressions: unknown[], tWall = BASE + seq * 1000): Record<string, unknown> => ({
      page_view_id: 'r', seq, kind: 'tick', t_mono_ms: seq * 1000, t_wall_ms: tWall,
      page: { visible: true, focused: true, foreground: true }, impressions, recv_ms: BASE + seq * 1000, user_id: 'u-1', site_id: 's-1',
    });
    const original = at(2, [keep, gone]);
    // The copy without `gone` is kept: its content hash is the smaller.
    let copy = at(2, [keep]);
    for (let nudge = 1; eventContentHash(copy as never) >= eventContentHash(original as never); nudge++) copy = at(2, [keep], BASE + 2000 + nudge);
    // 10,000 other events between the two: results are taken every 10,000 events, so `gone`'s rows are taken before the copy arrives.
    const others = Array.from({ length: 10_000 }, (_, i) => line(`f${i >> 1}`, (i & 1) + 1, (i & 1) * 1000, true, { recv_ms: BASE + 2000 }));
    const lines = [JSON.stringify(at(1, [keep])), JSON.stringify(original), ...others, JSON.stringify({ ...copy, recv_ms: BASE + 2500 }), JSON.stringify(at(3, [keep]))];
    const report = await compute(from(lines));
    expect(report.outcomes['conflicting_duplicate']).toBe(1);
    expect(report.impressions.filter((r) => r.page_view_id === 'r').map((r) => [r.impression_id, r.flags])).toEqual([['keep', ['conflicting_duplicate']]]);
  });

  it('flags a page view whose client time outruns what the server saw', async () => {
    // Example 8 in small: ticks claim 10 s of viewing, all received within one instant.
    const lines = Array.from({ length: 11 }, (_, i) => line('fast', i + 1, i * 1000, true, { recv_ms: BASE }));
    const report = await compute(from(lines));
    expect(report.impressions[0]?.viewable_ms).toBe(0);
    expect(report.impressions[0]?.flags).toEqual(['implausible_timing']);
  });
});
