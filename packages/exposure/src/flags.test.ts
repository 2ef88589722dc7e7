/** Rule 1 (duplicates, clock regression) and rule 6 (plausibility, GIVT): each flag bills 0. */
import { describe, expect, it } from 'vitest';
import type { PageEvent } from '@dwell/protocol';
import { PageViewState } from './page-view-state.js';
import { BASE_MS, CHROME_UA, ev, identity, imp, N, Q, timeline } from './test-support/events.js';

function stateOf(events: readonly PageEvent[], id = identity) {
  const state = new PageViewState(id);
  const outcomes = events.map((e) => state.apply(e));
  return { state, outcomes };
}

describe('duplicates', () => {
  it('an exact copy is ignored, whatever the server stamped on it', () => {
    const [first, second, third] = timeline([
      [0, 'Q'],
      [1000, 'Q'],
      [2000, 'N'],
    ]);
    if (!first || !second || !third) throw new Error('fixture');
    const resent = {
      ...second,
      recv_ms: second.recv_ms + 30_000,
      gateway_id: 'gw-9',
      transport: 'beacon' as const,
    };
    const { state, outcomes } = stateOf([first, second, third, resent]);
    expect(outcomes).toEqual(['accepted', 'accepted', 'accepted', 'duplicate']);
    expect(state.flags()).toEqual([]);
    expect(state.results().impressions[0]?.viewable_ms).toBe(2000);
  });

  it('reasons listed in another order are the same content', () => {
    const a = ev({ seq: 1, t: 0, imps: [imp({ reasons: ['obstructed', 'clipped'] })] });
    const b = ev({ seq: 1, t: 0, imps: [imp({ reasons: ['clipped', 'obstructed'] })] });
    expect(stateOf([a, b]).outcomes).toEqual(['accepted', 'duplicate']);
  });

  it.each([
    { name: 't_mono_ms', change: { t: 1200 } },
    { name: 't_wall_ms', change: { wall: 99 } },
    { name: 'kind', change: { kind: 'change' as const } },
    { name: 'page focus', change: { page: { focused: false } } },
    { name: 'visible_px', change: { imps: [imp({ visible: 74_999 })] } },
    { name: 'an extra impression', change: { imps: [Q(), imp({ id: 'imp-2' })] } },
  ])('a copy with other $name flags conflicting_duplicate and bills 0', ({ change }) => {
    const events = timeline([
      [0, 'Q'],
      [1000, 'Q'],
      [2000, 'N'],
    ]);
    const conflicting = ev({ seq: 2, t: 1000, ...change });
    const { state, outcomes } = stateOf([...events, conflicting]);
    expect(outcomes[3]).toBe('conflicting_duplicate');
    expect(state.flags()).toEqual(['conflicting_duplicate']);
    expect(state.results().impressions[0]).toMatchObject({
      billable: false,
      viewable_ms: 0,
      flags: ['conflicting_duplicate'],
    });
    expect(state.results().buckets).toEqual([]);
  });

  it('the kept copy does not depend on which copy came first', () => {
    const events = timeline([
      [0, 'Q'],
      [1000, 'Q'],
      [2000, 'N'],
    ]);
    const other = ev({ seq: 2, t: 1400, imps: [N()] });
    const one = stateOf([...events, other]).state.results();
    const two = stateOf([other, ...events]).state.results();
    expect(one).toEqual(two);
    // Keeping the first copy credits 1000 + 1000; keeping the other credits 1400 + 0.
    expect([2000, 1400]).toContain(one.impressions[0]?.credited_ms);
  });
});

describe('clock_regression', () => {
  it.each([
    {
      name: 't_mono falls between consecutive seqs',
      steps: [
        [0, 'Q', 1],
        [1000, 'Q', 2],
        [900, 'Q', 3],
        [1900, 'N', 4],
      ],
      flagged: true,
    },
    {
      name: 't_mono falls across a lost seq',
      steps: [
        [5000, 'Q', 1],
        [100, 'Q', 3],
      ],
      flagged: true,
    },
    {
      name: 'equal t_mono is not a regression',
      steps: [
        [0, 'Q', 1],
        [0, 'Q', 2],
        [1000, 'N', 3],
      ],
      flagged: false,
    },
    {
      name: 'rising t_mono',
      steps: [
        [0, 'Q', 1],
        [1000, 'N', 2],
      ],
      flagged: false,
    },
  ] as const)('$name → $flagged', ({ steps, flagged }) => {
    const { state } = stateOf(timeline(steps));
    expect(state.flags()).toEqual(flagged ? ['clock_regression'] : []);
    if (flagged) expect(state.results().impressions[0]).toMatchObject({ billable: false, viewable_ms: 0 });
  });
});

describe('implausible_timing', () => {
  // Client-elapsed 3000 ms; the server life is last recv − first recv; slack 2000 ms.
  it.each([
    { name: 'elapsed = life + slack exactly', lastRecv: 1000, flagged: false },
    { name: 'elapsed = life + slack + 1', lastRecv: 999, flagged: true },
    { name: 'server saw longer than the client', lastRecv: 60_000, flagged: false },
  ])('$name → $flagged', ({ lastRecv, flagged }) => {
    const events = [0, 1000, 2000, 3000].map((t, i) =>
      ev({ seq: i + 1, t, recv: BASE_MS + (i === 3 ? lastRecv : 0), imps: [i < 3 ? Q() : N()] }),
    );
    const { state } = stateOf(events);
    expect(state.flags()).toEqual(flagged ? ['implausible_timing'] : []);
    expect(state.results().impressions[0]).toMatchObject({
      credited_ms: 3000,
      viewable: true,
      viewable_ms: flagged ? 0 : 3000,
    });
  });

  it('keeps the earliest recv_ms of a duplicated event: a late resend does not stretch the life', () => {
    const events = [0, 1000, 2000, 3000].map((t, i) =>
      ev({ seq: i + 1, t, recv: BASE_MS + (i === 3 ? 999 : 0) }),
    );
    const resent = ev({ seq: 4, t: 3000, recv: BASE_MS + 60_000 });
    expect(stateOf([...events, resent]).state.flags()).toEqual(['implausible_timing']);
    expect(stateOf([resent, ...events]).state.flags()).toEqual(['implausible_timing']);
  });
});

describe('givt_user_agent', () => {
  it.each([
    {
      ua: 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/120.0.0.0 Safari/537.36',
      flagged: true,
    },
    {
      ua: 'Mozilla/5.0 (Unknown; Linux x86_64) AppleWebKit/538.1 (KHTML, like Gecko) PhantomJS/2.1.1 Safari/538.1',
      flagged: true,
    },
    { ua: 'Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)', flagged: true },
    { ua: 'Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)', flagged: true },
    { ua: 'AdsBot-Google (+http://www.google.com/adsbot.html)', flagged: true },
    {
      ua: 'Mozilla/5.0 (Linux; Android 11; moto g power (2022)) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/119.0 Mobile Safari/537.36 Chrome-Lighthouse',
      flagged: true,
    },
    {
      ua: 'Mozilla/5.0 (Linux; Android 5.0) AppleWebKit/537.36 (KHTML, like Gecko) Mobile Safari/537.36 (compatible; Bytespider; spider-feedback@bytedance.com)',
      flagged: true,
    },
    { ua: 'Example-Crawler/1.0', flagged: true },
    { ua: CHROME_UA, flagged: false },
    {
      ua: 'Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1',
      flagged: false,
    },
    {
      ua: 'Mozilla/5.0 (Linux; Android 9; CUBOT P30) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Mobile Safari/537.36',
      flagged: false,
    },
    { ua: null, flagged: false },
  ])('$ua → $flagged', ({ ua, flagged }) => {
    const { state } = stateOf(
      timeline(
        [
          [0, 'Q'],
          [1000, 'N'],
        ],
        { ua },
      ),
      { ...identity, user_agent: ua },
    );
    expect(state.flags()).toEqual(flagged ? ['givt_user_agent'] : []);
    expect(state.results().impressions[0]).toMatchObject({ viewable: true, viewable_ms: flagged ? 0 : 1000 });
  });

  it('verdicts are per user agent, however similar and in whatever sequence', () => {
    const human = 'Mozilla/5.0 (compatible; Example/1.0)';
    const bot = 'Mozilla/5.0 (compatible; Googlebot/2)';
    expect(bot.length).toBe(human.length);
    for (const [first, second, flagged] of [
      [human, bot, true],
      [bot, human, true],
      [human, human, false],
      [human.toUpperCase(), human, false],
    ] as const) {
      const { state } = stateOf([ev({ seq: 1, t: 0, ua: first }), ev({ seq: 2, t: 1000, ua: second })]);
      expect(state.flags().includes('givt_user_agent')).toBe(flagged);
    }
  });

  it('a bot user agent on any event flags the page view, in any order', () => {
    const events = timeline([
      [0, 'Q'],
      [1000, 'Q'],
      [2000, 'N'],
    ]);
    const botEvent = { ...(events[1] as PageEvent), user_agent: 'HeadlessChrome' };
    expect(stateOf([events[0] as PageEvent, botEvent, events[2] as PageEvent]).state.flags()).toEqual([
      'givt_user_agent',
    ]);
    expect(
      stateOf([
        events[2] as PageEvent,
        events[0] as PageEvent,
        events[1] as PageEvent,
        botEvent,
      ]).state.flags(),
    ).toEqual(['givt_user_agent']);
  });
});

describe('several flags', () => {
  it('are all reported, in table order, on every impression', () => {
    const events = [
      ev({ seq: 1, t: 5000, ua: 'Googlebot', imps: [Q(), imp({ id: 'imp-2' })] }),
      ev({ seq: 2, t: 0, imps: [Q(), imp({ id: 'imp-2' })] }),
    ];
    const conflicting = ev({ seq: 2, t: 1, imps: [Q()] });
    const { state } = stateOf([...events, conflicting]);
    const expected = ['conflicting_duplicate', 'clock_regression', 'givt_user_agent'];
    expect(state.flags()).toEqual(expected);
    for (const result of state.results().impressions) expect(result.flags).toEqual(expected);
  });

  it('leave N-state impressions unaffected in credited_ms', () => {
    const { state } = stateOf(
      timeline(
        [
          [0, 'N'],
          [1000, 'N'],
        ],
        { ua: 'HeadlessChrome' },
      ),
    );
    expect(state.results().impressions[0]).toMatchObject({
      credited_ms: 0,
      viewable: false,
      billable: false,
    });
  });
});
