/**
 * Every worked example of EXPOSURE-RULES.md, with the expected numbers worked out by hand from
 * the rules (not from the code): billed ms, credited ms, longest run and the minute rows.
 */
import { describe, expect, it } from 'vitest';
import type { PageEvent } from '@dwell/protocol';
import { PageViewState } from './page-view-state.js';
import { referencePageView } from './reference-model.js';
import { BASE_MS, Q, ev, identity, timeline } from './test-support/events.js';

function compute(events: readonly PageEvent[]) {
  const state = new PageViewState(identity);
  for (const e of events) expect(state.apply(e)).toBe('accepted');
  return state.results();
}

// Example 8: 61 ticks one second apart (60 s claimed) that the server saw arrive over 10 s.
const sixtySecondsInTen = Array.from({ length: 61 }, (_, i) =>
  ev({ seq: i + 1, t: i * 1000, recv: BASE_MS + Math.floor((i * 1000) / 6), imps: [Q()] }),
);

const EXAMPLES: readonly {
  name: string;
  events: PageEvent[];
  billed: number;
  credited: number;
  longest: number;
  flags: string[];
}[] = [
  {
    name: '#1 0/1:Q, 1000/2:N (exactly TMIN)',
    events: timeline([
      [0, 'Q'],
      [1000, 'N'],
    ]),
    billed: 1000,
    credited: 1000,
    longest: 1000,
    flags: [],
  },
  {
    name: '#1 variant: N at 999',
    events: timeline([
      [0, 'Q'],
      [999, 'N'],
    ]),
    billed: 0,
    credited: 999,
    longest: 999,
    flags: [],
  },
  {
    name: '#2 two runs of 600 (a naive sum says 1200)',
    events: timeline([
      [0, 'Q'],
      [600, 'N'],
      [800, 'Q'],
      [1400, 'N'],
    ]),
    billed: 0,
    credited: 1200,
    longest: 600,
    flags: [],
  },
  {
    name: '#3 run of 1500 then 400',
    events: timeline([
      [0, 'Q'],
      [1000, 'Q'],
      [1500, 'N'],
      [5000, 'Q'],
      [5400, 'N'],
    ]),
    billed: 1900,
    credited: 1900,
    longest: 1500,
    flags: [],
  },
  {
    name: '#4 tab hidden for 10 s, then a run of 1200',
    events: timeline([
      [0, 'Q'],
      [800, 'H'],
      [10_800, 'Q'],
      [11_800, 'Q'],
      [12_000, 'N'],
    ]),
    billed: 2000,
    credited: 2000,
    longest: 1200,
    flags: [],
  },
  {
    name: '#5 seq 4–7 lost: the gap is not credited',
    events: timeline([
      [0, 'Q'],
      [1000, 'Q'],
      [2000, 'Q'],
      [7000, 'Q', 8],
      [7600, 'N', 9],
    ]),
    billed: 2600,
    credited: 2600,
    longest: 2000,
    flags: [],
  },
  {
    name: '#6 ticks then nothing: the tail is never credited',
    events: timeline([
      [0, 'Q'],
      [1000, 'Q'],
      [2000, 'Q'],
      [3000, 'Q'],
    ]),
    billed: 3000,
    credited: 3000,
    longest: 3000,
    flags: [],
  },
  {
    name: '#7 starts obstructed at 40%',
    events: timeline([
      [0, 'N'],
      [2000, 'Q'],
      [3000, 'Q'],
      [3200, 'N'],
    ]),
    billed: 1200,
    credited: 1200,
    longest: 1200,
    flags: [],
  },
  {
    name: '#8 60 s of ticks seen live for 10 s',
    events: sixtySecondsInTen,
    billed: 0,
    credited: 60_000,
    longest: 60_000,
    flags: ['implausible_timing'],
  },
];

describe('worked examples of EXPOSURE-RULES.md', () => {
  it.each(EXAMPLES)('$name → $billed ms', ({ events, billed, credited, longest, flags }) => {
    const { impressions, flags: pageFlags } = compute(events);
    expect(impressions).toHaveLength(1);
    expect(impressions[0]).toMatchObject({
      viewable_ms: billed,
      credited_ms: credited,
      longest_run_ms: longest,
      flags,
      rules_version: 1,
    });
    expect(pageFlags).toEqual(flags);
  });

  it.each(EXAMPLES)('$name: arrival in reverse order gives the same result', ({ events }) => {
    const state = new PageViewState(identity);
    for (const e of [...events].reverse()) state.apply(e);
    expect(state.results()).toEqual(compute(events));
  });

  it.each(EXAMPLES)('$name: the reference model agrees', ({ events }) => {
    expect(referencePageView(identity, events)).toEqual(compute(events));
  });

  it('#8 is still viewable by rule 4; only billing is withheld', () => {
    const [result] = compute(sixtySecondsInTen).impressions;
    expect(result).toMatchObject({ viewable: true, billable: false, measurable: true });
  });

  // Every example starts at BASE_MS, a minute boundary, and lasts under a minute.
  it.each([
    {
      name: '#1',
      events: timeline([
        [0, 'Q'],
        [1000, 'N'],
      ]),
      rows: [[BASE_MS, 1000]],
    },
    {
      name: '#2',
      events: timeline([
        [0, 'Q'],
        [600, 'N'],
        [800, 'Q'],
        [1400, 'N'],
      ]),
      rows: [],
    },
    {
      name: '#3',
      events: timeline([
        [0, 'Q'],
        [1000, 'Q'],
        [1500, 'N'],
        [5000, 'Q'],
        [5400, 'N'],
      ]),
      rows: [[BASE_MS, 1900]],
    },
    { name: '#8', events: sixtySecondsInTen, rows: [] },
  ])('$name minute rows', ({ events, rows }) => {
    expect(compute(events).buckets.map((r) => [r.minute_start_ms, r.viewable_ms])).toEqual(rows);
  });
});
