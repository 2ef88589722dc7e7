/** Rules 3–5: which segments are credited, what a run is, TMIN for display and video. */
import { describe, expect, it } from 'vitest';
import type { PageEvent } from '@dwell/protocol';
import { creditSegment } from './impression-track.js';
import { PageViewState } from './page-view-state.js';
import { ev, identity, imp, N, Q, timeline } from './test-support/events.js';

function results(events: readonly PageEvent[]) {
  const state = new PageViewState(identity);
  for (const e of events) state.apply(e);
  return state.results();
}

describe('creditSegment (rule 3)', () => {
  it.each([
    { name: 'a tick', from: [1, 0], to: [2, 1000], q: true, expected: 1000 },
    { name: 'exactly MAX_GAP', from: [1, 0], to: [2, 1500], q: true, expected: 1500 },
    { name: 'one ms over MAX_GAP', from: [1, 0], to: [2, 1501], q: true, expected: 0 },
    { name: 'Δ = 0', from: [1, 500], to: [2, 500], q: true, expected: 0 },
    { name: 'Δ < 0', from: [1, 500], to: [2, 400], q: true, expected: 0 },
    { name: 'a lost seq in between', from: [1, 0], to: [3, 1000], q: true, expected: 0 },
    { name: 'not qualifying at the start', from: [1, 0], to: [2, 1000], q: false, expected: 0 },
    { name: '1 ms', from: [7, 10], to: [8, 11], q: true, expected: 1 },
  ] as const)('$name → $expected', ({ from, to, q, expected }) => {
    expect(creditSegment(from[0], from[1], to[0], to[1], q, 1500)).toBe(expected);
  });
});

describe('credit through a page view', () => {
  it.each([
    {
      name: 'segment of exactly MAX_GAP',
      steps: [
        [0, 'Q'],
        [1500, 'N'],
      ],
      credited: 1500,
      billed: 1500,
    },
    {
      name: 'segment over MAX_GAP',
      steps: [
        [0, 'Q'],
        [1501, 'N'],
      ],
      credited: 0,
      billed: 0,
    },
    {
      name: 'Δ = 0 breaks the run',
      steps: [
        [0, 'Q'],
        [600, 'Q'],
        [600, 'Q'],
        [1200, 'N'],
      ],
      credited: 1200,
      billed: 0,
    },
    {
      name: 'a run of 999 + 1 across ticks',
      steps: [
        [0, 'Q'],
        [999, 'Q'],
        [1000, 'N'],
      ],
      credited: 1000,
      billed: 1000,
    },
    {
      name: 'over-long gap splits runs',
      steps: [
        [0, 'Q'],
        [800, 'Q'],
        [2400, 'Q'],
        [3000, 'N'],
      ],
      credited: 1400,
      billed: 0,
    },
    {
      name: 'last event qualifying earns nothing after it',
      steps: [
        [0, 'N'],
        [1000, 'Q'],
      ],
      credited: 0,
      billed: 0,
    },
  ] as const)('$name: credited $credited, billed $billed', ({ steps, credited, billed }) => {
    const [result] = results(timeline(steps)).impressions;
    expect(result).toMatchObject({ credited_ms: credited, viewable_ms: billed });
  });

  it('events before the render do not concern the impression', () => {
    const events = [
      ev({ seq: 1, t: 0, imps: [] }),
      ev({ seq: 2, t: 500, kind: 'render', imps: [Q()] }),
      ev({ seq: 3, t: 1500, imps: [Q()] }),
      ev({ seq: 4, t: 2000, imps: [N()] }),
    ];
    const [result] = results(events).impressions;
    // Credited: 500→1500 and 1500→2000. Seq 1 has no state for it: 0→500 is not its time.
    expect(result).toMatchObject({
      credited_ms: 1500,
      longest_run_ms: 1500,
      first_server_ms: events[1]?.recv_ms,
      last_server_ms: events[3]?.recv_ms,
    });
  });

  it('an impression that disappears keeps the segment it qualified for, and nothing after', () => {
    const events = [
      ev({ seq: 1, t: 0, imps: [Q()] }),
      ev({ seq: 2, t: 1000, imps: [] }),
      ev({ seq: 3, t: 2000, imps: [] }),
    ];
    expect(results(events).impressions[0]).toMatchObject({
      credited_ms: 1000,
      viewable_ms: 1000,
      last_server_ms: events[0]?.recv_ms,
    });
  });

  it('impressions of one page view are credited independently', () => {
    const a = (visible: number) => imp({ id: 'a', visible });
    const b = (visible: number) => imp({ id: 'b', ad: 'ad-2', visible });
    const events = [
      ev({ seq: 1, t: 0, imps: [a(75_000), b(0)] }),
      ev({ seq: 2, t: 1000, imps: [a(75_000), b(75_000)] }),
      ev({ seq: 3, t: 2000, imps: [a(0), b(75_000)] }),
      ev({ seq: 4, t: 2500, imps: [a(0), b(0)] }),
    ];
    const [ra, rb] = results(events).impressions;
    expect(ra).toMatchObject({ impression_id: 'a', credited_ms: 2000, viewable_ms: 2000 });
    expect(rb).toMatchObject({ impression_id: 'b', ad_id: 'ad-2', credited_ms: 1500, viewable_ms: 1500 });
  });

  it('an impression listed twice in one event counts as first listed', () => {
    const events = [
      ev({ seq: 1, t: 0, imps: [imp({ visible: 0 }), imp()] }),
      ev({ seq: 2, t: 1000, imps: [imp()] }),
    ];
    expect(results(events).impressions).toHaveLength(1);
    expect(results(events).impressions[0]).toMatchObject({ credited_ms: 0 });
  });
});

describe('video: 50% while playing for 2 continuous seconds', () => {
  const V = (playing = true) => imp({ media: 'video', playing, width: 640, height: 360 });
  it.each([
    {
      name: 'plays 2000 ms',
      states: [V(), V(), V(false)],
      times: [0, 1000, 2000],
      billed: 2000,
      viewable: true,
    },
    {
      name: 'plays 1999 ms',
      states: [V(), V(), V(false)],
      times: [0, 1000, 1999],
      billed: 0,
      viewable: false,
    },
    {
      name: 'paused in view',
      states: [V(false), V(false), V(false)],
      times: [0, 1000, 2000],
      billed: 0,
      viewable: false,
    },
    {
      name: 'pause splits runs of 1500',
      states: [V(), V(), V(false), V(), V(), V(false)],
      times: [0, 1000, 1500, 1600, 2600, 3100],
      billed: 0,
      viewable: false,
    },
  ])('$name → $billed', ({ states, times, billed, viewable }) => {
    const events = states.map((s, i) => ev({ seq: i + 1, t: times[i] ?? 0, imps: [s] }));
    expect(results(events).impressions[0]).toMatchObject({ media: 'video', viewable, viewable_ms: billed });
  });

  it('display needs only 1000 ms for the same timeline', () => {
    const events = [0, 1000, 1999].map((t, i) => ev({ seq: i + 1, t, imps: [i < 2 ? Q() : N()] }));
    expect(results(events).impressions[0]).toMatchObject({ viewable: true, viewable_ms: 1999 });
  });
});

describe('large ads: 30% on the declared area', () => {
  it.each([
    { name: '970×250 at 31% for 1 s', width: 970, height: 250, visible: 75_175, billed: 1000 },
    { name: '300×250 at 31% for 1 s', width: 300, height: 250, visible: 23_250, billed: 0 },
  ])('$name → $billed', ({ width, height, visible, billed }) => {
    const events = [0, 1000].map((t, i) => ev({ seq: i + 1, t, imps: [imp({ width, height, visible })] }));
    expect(results(events).impressions[0]?.viewable_ms).toBe(billed);
  });
});

describe('identity fields', () => {
  it('come from the first appearance by seq, whatever arrives first', () => {
    const state = new PageViewState(identity);
    state.apply(
      ev({ seq: 2, t: 1000, imps: [imp({ ad: 'ad-late', campaign: 'camp-late', width: 728, height: 90 })] }),
    );
    state.apply(ev({ seq: 1, t: 0, imps: [imp({ ad: 'ad-first', campaign: 'camp-first' })] }));
    expect(state.results().impressions[0]).toMatchObject({
      ad_id: 'ad-first',
      campaign_id: 'camp-first',
      width: 300,
      height: 250,
      site_id: 'site-1',
      user_id: 'user-1',
    });
  });
});
