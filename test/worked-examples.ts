/**
 * The worked examples of the exposure rules (display 300×250 unless stated) as stored events,
 * with the billable milliseconds the rules give. `recv_ms` follows the client clock unless an
 * example is about the two disagreeing.
 */
import type { ClientEvent, EventKind, PageEvent } from '../packages/protocol/src/index.js';

type State = 'Q' | 'N' | 'hidden' | 'obstructed40';

interface Step {
  readonly t: number;
  readonly seq: number;
  readonly state: State;
  readonly kind?: EventKind;
  /** Server receive time relative to the page view's start; default = t. */
  readonly recv?: number;
}

export interface WorkedExample {
  readonly name: string;
  readonly steps: readonly Step[];
  readonly billableMs: number;
  readonly flags?: readonly string[];
}

const s = (t: number, seq: number, state: State, kind?: EventKind, recv?: number): Step => ({
  t,
  seq,
  state,
  ...(kind === undefined ? {} : { kind }),
  ...(recv === undefined ? {} : { recv }),
});

export const WORKED_EXAMPLES: readonly WorkedExample[] = [
  { name: '1: exactly TMIN', steps: [s(0, 1, 'Q'), s(1000, 2, 'N')], billableMs: 1000 },
  { name: '1: one ms short of TMIN', steps: [s(0, 1, 'Q'), s(999, 2, 'N')], billableMs: 0 },
  { name: '2: two runs of 600', steps: [s(0, 1, 'Q'), s(600, 2, 'N'), s(800, 3, 'Q'), s(1400, 4, 'N')], billableMs: 0 },
  {
    name: '3: a viewable run, then a short one',
    steps: [s(0, 1, 'Q'), s(1000, 2, 'Q', 'tick'), s(1500, 3, 'N'), s(5000, 4, 'Q'), s(5400, 5, 'N')],
    billableMs: 1900,
  },
  {
    name: '4: tab hidden in between',
    steps: [s(0, 1, 'Q'), s(800, 2, 'hidden'), s(10800, 3, 'Q'), s(11800, 4, 'Q', 'tick'), s(12000, 5, 'N')],
    billableMs: 2000,
  },
  {
    name: '5: lost events stop the meter',
    steps: [s(0, 1, 'Q'), s(1000, 2, 'Q', 'tick'), s(2000, 3, 'Q', 'tick'), s(7000, 8, 'Q', 'tick'), s(7600, 9, 'N')],
    billableMs: 2600,
  },
  {
    name: '6: nothing after the last tick',
    steps: [s(0, 1, 'Q'), s(1000, 2, 'Q', 'tick'), s(2000, 3, 'Q', 'tick'), s(3000, 4, 'Q', 'tick')],
    billableMs: 3000,
  },
  {
    name: '7: obstructed, then in view',
    steps: [s(0, 1, 'obstructed40'), s(2000, 2, 'Q'), s(3000, 3, 'Q', 'tick'), s(3200, 4, 'N')],
    billableMs: 1200,
  },
  {
    name: '8: ticks claim 60 s, the server saw 10 s',
    steps: Array.from({ length: 61 }, (_, i) => s(i * 1000, i + 1, 'Q', i === 0 ? 'render' : 'tick', Math.round((i * 10_000) / 60))),
    billableMs: 0,
    flags: ['implausible_timing'],
  },
];

/** The stored events of one example for page view `pageViewId`, starting at server time `baseMs`. */
export function exampleEvents(example: WorkedExample, pageViewId: string, adId: string, baseMs: number, user = 'user-1'): PageEvent[] {
  return example.steps.map((step) => {
    const event: ClientEvent = {
      page_view_id: pageViewId,
      seq: step.seq,
      kind: step.kind ?? (step.seq === 1 ? 'render' : 'change'),
      t_mono_ms: step.t,
      t_wall_ms: baseMs + step.t,
      page: { visible: step.state !== 'hidden', focused: true, foreground: true },
      impressions: [
        {
          impression_id: `${pageViewId}-imp`,
          ad_id: adId,
          campaign_id: 'campaign-worked',
          width: 300,
          height: 250,
          media: 'display',
          visible_px: step.state === 'Q' || step.state === 'hidden' ? 75_000 : step.state === 'obstructed40' ? 30_000 : 0,
          total_px: 75_000,
          playing: false,
          reasons: step.state === 'obstructed40' ? ['obstructed'] : step.state === 'hidden' ? ['hidden'] : [],
        },
      ],
    };
    return {
      recv_ms: baseMs + (step.recv ?? step.t),
      gateway_id: 'gw-worked',
      site_id: 'site-worked',
      user_id: user,
      user_agent: 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/140 Safari/537.36',
      transport: 'ws_json',
      event,
    };
  });
}
