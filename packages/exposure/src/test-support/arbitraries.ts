/** fast-check generators of realistic and hostile page-view event streams. */
import fc from 'fast-check';
import type { EventKind, ImpressionState, NotViewableReason, PageEvent } from '@dwell/protocol';
import { BASE_MS, CHROME_UA, SITE, USER } from './events.js';

const POOL = [
  { impression_id: 'imp-a', ad_id: 'ad-a', campaign_id: 'camp-1', width: 300, height: 250, media: 'display' },
  { impression_id: 'imp-b', ad_id: 'ad-b', campaign_id: 'camp-1', width: 970, height: 250, media: 'display' },
  { impression_id: 'imp-v', ad_id: 'ad-v', campaign_id: 'camp-2', width: 640, height: 360, media: 'video' },
] as const;

const REASONS: NotViewableReason[] = [
  'hidden',
  'backgrounded',
  'obstructed',
  'clipped',
  'notFound',
  'deviceLocked',
  'unmeasurable',
  'other',
];

const likely = (p: number) => fc.integer({ min: 1, max: 100 }).map((n) => n <= p);

function arbImpression(meta: (typeof POOL)[number]): fc.Arbitrary<ImpressionState | null> {
  return fc
    .record({
      present: likely(85),
      share: fc.constantFrom(0, 29, 30, 31, 49, 50, 51, 100, 100, 100),
      total: fc.constantFrom(meta.width * meta.height, meta.width * meta.height, 1001, 0),
      playing: likely(80),
      reasons: fc.oneof(
        { weight: 4, arbitrary: fc.constant([]) },
        { weight: 1, arbitrary: fc.subarray(REASONS, { maxLength: 2 }) },
      ),
    })
    .map(({ present, share, total, playing, reasons }) =>
      present
        ? {
            ...meta,
            visible_px: Math.floor((total * share) / 100),
            total_px: total,
            playing: meta.media === 'video' && playing,
            reasons,
          }
        : null,
    );
}

const arbStep = fc.record({
  dt: fc.oneof(
    { weight: 8, arbitrary: fc.constant(1000) },
    { weight: 4, arbitrary: fc.integer({ min: 1, max: 1500 }) },
    { weight: 1, arbitrary: fc.integer({ min: 1501, max: 4000 }) },
    { weight: 1, arbitrary: fc.integer({ min: -300, max: 0 }) },
  ),
  seqGap: fc.oneof(
    { weight: 12, arbitrary: fc.constant(1) },
    { weight: 1, arbitrary: fc.integer({ min: 2, max: 4 }) },
  ),
  visible: likely(90),
  focused: likely(70),
  foreground: likely(95),
  kind: fc.constantFrom<EventKind>('tick', 'tick', 'tick', 'change', 'render', 'end'),
  imps: fc.tuple(arbImpression(POOL[0]), arbImpression(POOL[1]), arbImpression(POOL[2])),
  jitter: fc.integer({ min: 0, max: 400 }),
});

export interface PageViewStreamOptions {
  readonly pv?: string;
  readonly startMs?: number;
  readonly maxEvents?: number;
}

/** One page view's events in seq order, each seq once. */
export function arbPageView(options: PageViewStreamOptions = {}): fc.Arbitrary<PageEvent[]> {
  const pv = options.pv ?? 'pv-prop';
  return fc
    .record({
      steps: fc.array(arbStep, { minLength: 1, maxLength: options.maxEvents ?? 30 }),
      t0: fc.integer({ min: 0, max: 5000 }),
      firstSeq: fc.constantFrom(1, 1, 1, 2),
      // Now and then the server sees the page view live for a fraction of the client's time.
      squash: fc.constantFrom(1, 1, 1, 1, 1, 1, 1, 5),
      // A few page views have a clock that may step back, or a bot user agent on one event.
      clockTrouble: likely(10),
      botAt: fc.oneof(
        { weight: 15, arbitrary: fc.constant(-1) },
        { weight: 1, arbitrary: fc.nat({ max: 29 }) },
      ),
    })
    .map(({ steps, t0, firstSeq, squash, clockTrouble, botAt }) => {
      let t = t0;
      let seq = firstSeq - 1;
      return steps.map((s, i) => {
        t = i === 0 ? t0 : t + (clockTrouble || s.dt > 0 ? s.dt : 1 - s.dt);
        seq += i === 0 ? 1 : s.seqGap;
        return {
          recv_ms: (options.startMs ?? BASE_MS) + Math.floor((t - t0) / squash) + s.jitter,
          gateway_id: 'gw-1',
          site_id: SITE,
          user_id: USER,
          user_agent: i === botAt ? 'Mozilla/5.0 (compatible; Googlebot/2.1)' : CHROME_UA,
          transport: 'ws_json' as const,
          event: {
            page_view_id: pv,
            seq,
            kind: i === 0 ? 'start' : s.kind,
            t_mono_ms: t,
            t_wall_ms: BASE_MS + t,
            page: { visible: s.visible, focused: s.focused, foreground: s.foreground },
            impressions: s.imps.filter((x): x is ImpressionState => x !== null),
          },
        };
      });
    });
}

/** Exact resends of some events, received later through another gateway. */
export function arbResends(events: readonly PageEvent[], maxDelayMs = 120_000): fc.Arbitrary<PageEvent[]> {
  return fc
    .array(fc.record({ index: fc.nat(), delay: fc.integer({ min: 0, max: maxDelayMs }) }), { maxLength: 8 })
    .map((picks) =>
      picks.map(({ index, delay }) => {
        const e = events[index % events.length] as PageEvent;
        return { ...e, recv_ms: e.recv_ms + delay, gateway_id: 'gw-2', transport: 'http' as const };
      }),
    );
}

/** Copies of some seqs with different content. */
export function arbConflicts(events: readonly PageEvent[]): fc.Arbitrary<PageEvent[]> {
  const pick = fc.record({
    index: fc.nat(),
    tweak: fc.constantFrom('t', 'visible', 'page', 'drop'),
    delay: fc.integer({ min: -500, max: 5000 }),
  });
  return fc
    .oneof(
      { weight: 3, arbitrary: fc.constant([]) },
      { weight: 1, arbitrary: fc.array(pick, { minLength: 1, maxLength: 3 }) },
    )
    .map((picks) =>
      picks.map(({ index, tweak, delay }) => {
        const e = events[index % events.length] as PageEvent;
        const x = e.event;
        const event =
          tweak === 't'
            ? { ...x, t_mono_ms: x.t_mono_ms + 1 + (delay % 700) }
            : tweak === 'visible'
              ? {
                  ...x,
                  impressions: x.impressions.map((i) => ({
                    ...i,
                    visible_px: i.visible_px === 0 ? i.total_px : 0,
                  })),
                }
              : tweak === 'page'
                ? { ...x, page: { ...x.page, visible: !x.page.visible } }
                : { ...x, impressions: x.impressions.slice(1), kind: 'change' as const };
        return { ...e, recv_ms: e.recv_ms + delay, event };
      }),
    );
}

/** A permutation of `items`. */
export function arbPermutation<T>(items: readonly T[]): fc.Arbitrary<T[]> {
  return fc.shuffledSubarray([...items], { minLength: items.length, maxLength: items.length });
}
