/**
 * EXPOSURE-RULES.md read as literally as possible: keep every event, and on each question sort
 * them by seq, deduplicate, and walk the segments. It shares no state machine with
 * PageViewState, which makes it the oracle of the property tests and the naive baseline of the
 * benchmark. Not for production: it recomputes a whole page view every time.
 */
import type { ImpressionState, PageEvent, PageState } from '@dwell/protocol';
import { eventContentHash } from './content-hash.js';
import { isValidPageEvent } from './event-record.js';
import type { PageViewResults } from './page-view-state.js';
import {
  MINUTE_MS,
  type ExposureFlag,
  type ImpressionResult,
  type MinuteBucketRow,
  type PageViewIdentity,
} from './results.js';
import { DEFAULT_RULES_CONFIG, type RulesConfig } from './rules-config.js';

interface Stored {
  readonly seq: number;
  readonly t: number;
  readonly recv: number;
  readonly page: PageState;
  readonly impressions: readonly ImpressionState[];
}

const BLOCKING = ['hidden', 'backgrounded', 'notFound', 'deviceLocked', 'unmeasurable'];
const KNOWN_REASONS = [
  'hidden',
  'backgrounded',
  'obstructed',
  'clipped',
  'notFound',
  'deviceLocked',
  'unmeasurable',
  'other',
];

/** Results of one page view computed from scratch from all of its events. */
export function referencePageView(
  identity: PageViewIdentity,
  events: readonly PageEvent[],
  config: RulesConfig = DEFAULT_RULES_CONFIG,
): PageViewResults {
  const own = events.filter(
    (e) =>
      isValidPageEvent(e) &&
      e.event.page_view_id === identity.page_view_id &&
      e.site_id === identity.site_id &&
      e.user_id === identity.user_id,
  );
  const bot = new RegExp(config.givtUserAgentPatterns.map((p) => `(?:${p})`).join('|'), 'i');
  const givt = [identity.user_agent, ...own.map((e) => e.user_agent)].some(
    (ua) => ua !== null && bot.test(ua),
  );

  // Rule 1: order by seq; one copy per seq (the smallest content hash), the earliest recv_ms.
  const bySeq = new Map<number, PageEvent[]>();
  for (const e of own) bySeq.set(e.event.seq, [...(bySeq.get(e.event.seq) ?? []), e]);
  let conflicting = false;
  const stored: Stored[] = [...bySeq.entries()]
    .sort((a, b) => a[0] - b[0])
    .map(([seq, copies]) => {
      if (new Set(copies.map((c) => canonical(c))).size > 1) conflicting = true;
      const winner = copies.reduce((best, c) =>
        eventContentHash(c.event) < eventContentHash(best.event) ? c : best,
      );
      const recv = Math.min(...copies.map((c) => c.recv_ms));
      return {
        seq,
        t: winner.event.t_mono_ms,
        recv,
        page: winner.event.page,
        impressions: winner.event.impressions,
      };
    });

  const first = stored[0];
  const last = stored[stored.length - 1];
  const recvs = stored.map((s) => s.recv);
  const flags: ExposureFlag[] = [];
  if (conflicting) flags.push('conflicting_duplicate');
  if (stored.some((s, i) => i > 0 && s.t < (stored[i - 1]?.t ?? s.t))) flags.push('clock_regression');
  if (
    first &&
    last &&
    last.t - first.t > Math.max(...recvs) - Math.min(...recvs) + config.plausibilitySlackMs
  )
    flags.push('implausible_timing');
  if (givt) flags.push('givt_user_agent');
  const serverTime = (t: number): number => (first ? first.recv + (t - first.t) : 0);

  const ids: string[] = [];
  for (const s of stored)
    for (const imp of s.impressions) if (!ids.includes(imp.impression_id)) ids.push(imp.impression_id);

  const impressions: ImpressionResult[] = [];
  const buckets: MinuteBucketRow[] = [];
  for (const id of ids) {
    const stateAt = (s: Stored): ImpressionState | undefined =>
      s.impressions.find((imp) => imp.impression_id === id);
    const seen = stored.filter((s) => stateAt(s) !== undefined);
    const meta = stateAt(seen[0] as Stored) as ImpressionState;
    let credited = 0;
    let run = 0;
    let longest = 0;
    const minutes = new Map<number, number>();
    for (let i = 0; i + 1 < stored.length; i++) {
      const a = stored[i] as Stored;
      const b = stored[i + 1] as Stored;
      const state = stateAt(a);
      const delta = b.t - a.t;
      const ok =
        state !== undefined &&
        qualifiesRef(a.page, state, config) &&
        b.seq === a.seq + 1 &&
        delta > 0 &&
        delta <= config.maxGapMs;
      if (!ok) {
        run = 0;
        continue;
      }
      credited += delta;
      run += delta;
      longest = Math.max(longest, run);
      // Rule 7: place the segment in server time and cut it at every minute boundary.
      const end = serverTime(b.t);
      for (let at = serverTime(a.t); at < end;) {
        const minute = Math.floor(at / MINUTE_MS) * MINUTE_MS;
        const stop = Math.min(end, minute + MINUTE_MS);
        minutes.set(minute, (minutes.get(minute) ?? 0) + (stop - at));
        at = stop;
      }
    }
    const viewable = longest >= (meta.media === 'video' ? config.minRunMsVideo : config.minRunMsDisplay);
    const billable = viewable && flags.length === 0;
    // Literal objects, not spreads: V8 builds a spread followed by many keys very slowly.
    const { page_view_id, site_id, user_id } = identity;
    const { rulesVersion: rules_version } = config;
    impressions.push({
      rules_version,
      page_view_id,
      site_id,
      user_id,
      impression_id: id,
      ad_id: meta.ad_id,
      campaign_id: meta.campaign_id,
      media: meta.media,
      width: meta.width,
      height: meta.height,
      measurable: seen.some((s) => measurableRef(stateAt(s) as ImpressionState)),
      viewable,
      billable,
      viewable_ms: billable ? credited : 0,
      credited_ms: credited,
      longest_run_ms: longest,
      flags,
      first_server_ms: serverTime((seen[0] as Stored).t),
      last_server_ms: serverTime((seen[seen.length - 1] as Stored).t),
    });
    if (billable) {
      for (const [minute, ms] of [...minutes].sort((a, b) => a[0] - b[0])) {
        buckets.push({
          rules_version,
          page_view_id,
          site_id,
          user_id,
          impression_id: id,
          ad_id: meta.ad_id,
          campaign_id: meta.campaign_id,
          minute_start_ms: minute,
          viewable_ms: ms,
        });
      }
    }
  }
  return { identity, flags, impressions, buckets };
}

function measurableRef(s: ImpressionState): boolean {
  return (
    s.total_px > 0 &&
    s.visible_px >= 0 &&
    s.visible_px <= s.total_px &&
    s.total_px <= Number.MAX_SAFE_INTEGER / 100 &&
    !s.reasons.includes('unmeasurable')
  );
}

function qualifiesRef(page: PageState, s: ImpressionState, config: RulesConfig): boolean {
  const large = s.width > 0 && s.height > 0 && s.width * s.height >= config.largeAdMinAreaPx;
  const thr = large ? config.largeAdThresholdPercent : config.thresholdPercent;
  return (
    measurableRef(s) &&
    page.visible &&
    page.foreground &&
    (page.focused || !config.strictFocus) &&
    !s.reasons.some((r) => BLOCKING.includes(r)) &&
    (s.media !== 'video' || s.playing) &&
    s.visible_px * 100 >= thr * s.total_px
  );
}

/** The content of an event as text; reasons as a sorted set, unknown reasons as `other`. */
function canonical(e: PageEvent): string {
  const { kind, t_mono_ms, t_wall_ms, page, impressions } = e.event;
  return JSON.stringify([
    kind,
    t_mono_ms,
    t_wall_ms,
    [page.visible, page.focused, page.foreground],
    impressions.map((i) => [
      i.impression_id,
      i.ad_id,
      i.campaign_id,
      i.width,
      i.height,
      i.media,
      i.visible_px,
      i.total_px,
      i.playing,
      [...new Set(i.reasons.map((r) => (KNOWN_REASONS.includes(r) ? r : 'other')))].sort(),
    ]),
  ]);
}
