/**
 * What the replay recomputed against what ClickHouse bills: which page views can be compared, the
 * differences, and both sides' checksums. Pure.
 */
import type { ImpressionRow, MinuteRow } from '@dwell/warehouse';
import {
  adDayKey,
  adDayTotals,
  AD_DAY_FIELDS,
  checksumsOf,
  IMPRESSION_FIELDS,
  impressionKey,
  isRetraction,
  MINUTE_FIELDS,
  minuteKey,
  type AdDayTotal,
  type AuditImpression,
  type AuditMinute,
  type Checksums,
} from './canonical.js';
import { diffRows, type Difference } from './diff.js';
import type { AuditScope, ReplayedPageView } from './replay-engine.js';

/** Why an in-scope page view (or a billed one) was left out of the comparison. */
export const UNCOMPARED_REASONS = {
  not_yet_processed: 'the log has events of the page view beyond the offset the processor had written results for',
  in_flux: 'the processor wrote newer results while the replay ran, and the page view was still open',
  impressions_held:
    'the page view is open and only its impression rows differ: the processor writes an open page view\'s impression rows every PROCESSOR_IMPRESSION_INTERVAL_MS, its minute rows (billed time) at every write',
} as const;
export type UncomparedReason = keyof typeof UNCOMPARED_REASONS;

export interface Uncompared {
  readonly page_view_id: string;
  readonly partition: number | null;
  readonly reason: UncomparedReason;
}

export interface ReplayRows {
  readonly impressions: Array<AuditImpression & { readonly partition: number; readonly final: boolean }>;
  readonly minutes: AuditMinute[];
}

/** The replay's rows of the in-scope page views, filtered by ad / campaign. Later openings of an id win. */
export function replayRows(pageViews: readonly ReplayedPageView[], scope: AuditScope): ReplayRows {
  const latest = new Map<string, ReplayedPageView>();
  for (const view of pageViews) {
    const before = latest.get(view.pageViewId);
    if (before === undefined || before.openedOffset < view.openedOffset) latest.set(view.pageViewId, view);
  }
  const impressions: ReplayRows['impressions'] = [];
  const minutes: AuditMinute[] = [];
  for (const view of latest.values()) {
    const report = view.report;
    if (report === undefined) continue;
    for (const r of report.impressions) {
      if (matches(r, scope)) impressions.push({ ...r, partition: view.partition, final: view.closed });
    }
    for (const m of report.buckets) if (matches(m, scope)) minutes.push(m);
  }
  return { impressions, minutes };
}

function matches(row: { ad_id: string; campaign_id: string; site_id: string }, scope: AuditScope): boolean {
  return (
    (scope.ad === undefined || row.ad_id === scope.ad) &&
    (scope.campaign === undefined || row.campaign_id === scope.campaign) &&
    (scope.site === undefined || row.site_id === scope.site)
  );
}

export interface ComparisonInput {
  readonly scope: AuditScope;
  readonly pageViews: readonly ReplayedPageView[];
  /** `replayRows(pageViews, scope)`. */
  readonly rows: ReplayRows;
  /** Every page view id the replay opened, in scope or not. */
  readonly seen: ReadonlySet<string>;
  readonly billedImpressions: readonly ImpressionRow[];
  readonly billedMinutes: readonly MinuteRow[];
  /** The processors' written position per partition before the read (processed_ranges). */
  readonly positionsBefore: ReadonlyMap<number, bigint>;
  /** The same after the billed rows were read. */
  readonly positionsAfter: ReadonlyMap<number, bigint>;
}

export interface Side {
  readonly impressions: number;
  readonly minutes: number;
  readonly billable_ms: number;
  readonly checksums: Checksums;
}

export interface Comparison {
  readonly differences: Difference[];
  readonly uncompared: Uncompared[];
  /** Page views compared (in scope, fully processed). */
  readonly comparedPageViews: number;
  /** Zeroed retraction rows in ClickHouse with no counterpart in the replay: bill nothing, not differences. */
  readonly retractionsIgnored: number;
  readonly replay: Side;
  readonly billed: Side;
  /** Per (ad, day) of every in-scope page view, as the replay computes them. */
  readonly replayTotals: AdDayTotal[];
}

export function compare(input: ComparisonInput): Comparison {
  const { scope } = input;
  const { rows } = input;
  const views = new Map(input.pageViews.map((v) => [v.pageViewId, v]));
  const moved = new Set<number>();
  for (const [partition, after] of input.positionsAfter) if (input.positionsBefore.get(partition) !== after) moved.add(partition);
  for (const partition of input.positionsBefore.keys()) if (!input.positionsAfter.has(partition)) moved.add(partition);

  const uncompared = new Map<string, Uncompared>();
  for (const view of views.values()) {
    const position = input.positionsBefore.get(view.partition) ?? -1n;
    if (BigInt(view.lastOffset) > position) uncompared.set(view.pageViewId, { page_view_id: view.pageViewId, partition: view.partition, reason: 'not_yet_processed' });
  }

  // Billed page views the log never opened, with rows in the range: billed without evidence.
  const inRange = (ms: number): boolean => ms >= scope.fromMs && ms < scope.toMs;
  const unknown = new Set<string>();
  for (const r of input.billedImpressions) if (!input.seen.has(r.page_view_id) && inRange(r.first_server_ms)) unknown.add(r.page_view_id);
  for (const m of input.billedMinutes) if (!input.seen.has(m.page_view_id) && inRange(m.minute_start_ms) && m.viewable_ms > 0) unknown.add(m.page_view_id);
  if (moved.size > 0) {
    // Their events may lie beyond the end the replay read to: not evidence of anything yet.
    for (const id of unknown) uncompared.set(id, { page_view_id: id, partition: null, reason: 'in_flux' });
  }

  const selected = (id: string): boolean => views.has(id) || unknown.has(id);
  const dedupe = <T>(list: readonly T[], keyOf: (row: T) => string): T[] => [...new Map(list.map((row) => [keyOf(row), row])).values()];
  const billedImpressions = dedupe(
    input.billedImpressions.filter((r) => selected(r.page_view_id) && matches(r, scope)),
    impressionKey,
  );
  const billedMinutes = dedupe(
    input.billedMinutes.filter((m) => selected(m.page_view_id) && matches(m, scope) && m.viewable_ms > 0),
    minuteKey,
  );
  const replayKeys = new Set(rows.impressions.map(impressionKey));
  const retractions = billedImpressions.filter((r) => isRetraction(r) && !replayKeys.has(impressionKey(r)));
  const retractionKeys = new Set(retractions.map(impressionKey));
  const billedLive = billedImpressions.filter((r) => !retractionKeys.has(impressionKey(r)));

  const compared = (id: string): boolean => !uncompared.has(id);
  const replayMinutes = rows.minutes.filter((m) => m.viewable_ms > 0);
  const pick = {
    replayImpressions: rows.impressions.filter((r) => compared(r.page_view_id)),
    replayMinutes: replayMinutes.filter((m) => compared(m.page_view_id)),
    billedImpressions: billedLive.filter((r) => compared(r.page_view_id)),
    billedMinutes: billedMinutes.filter((m) => compared(m.page_view_id)),
  };
  let differences = [
    ...diffRows({ kind: 'impression', keyFields: ['site_id', 'page_view_id', 'impression_id'], fields: IMPRESSION_FIELDS, keyOf: impressionKey }, pick.replayImpressions, pick.billedImpressions),
    ...diffRows({ kind: 'minute', keyFields: ['site_id', 'page_view_id', 'impression_id', 'minute_start_ms'], fields: MINUTE_FIELDS, keyOf: minuteKey }, pick.replayMinutes, pick.billedMinutes),
  ];
  // An open page view in a partition the processor moved on in may simply have newer results.
  const inFlux = new Set<string>();
  for (const d of differences) {
    const id = String(d.key['page_view_id']);
    const view = views.get(id);
    if (view !== undefined && !view.closed && moved.has(view.partition)) inFlux.add(id);
  }
  if (inFlux.size > 0) {
    for (const id of inFlux) uncompared.set(id, { page_view_id: id, partition: views.get(id)?.partition ?? null, reason: 'in_flux' });
    differences = differences.filter((d) => !inFlux.has(String(d.key['page_view_id'])));
  }
  // An open page view's impression rows may trail its minute rows by the processor's impression
  // interval: when they alone differ, there is nothing to compare yet (its billed minutes matched).
  const minutesDiffer = new Set(differences.filter((d) => d.kind === 'minute').map((d) => String(d.key['page_view_id'])));
  const held = new Set<string>();
  for (const d of differences) {
    const id = String(d.key['page_view_id']);
    const view = views.get(id);
    if (d.kind === 'impression' && view !== undefined && !view.closed && !minutesDiffer.has(id)) held.add(id);
  }
  if (held.size > 0) {
    for (const id of held) uncompared.set(id, { page_view_id: id, partition: views.get(id)?.partition ?? null, reason: 'impressions_held' });
    differences = differences.filter((d) => !held.has(String(d.key['page_view_id'])));
  }
  const comparedNow = (id: string): boolean => !uncompared.has(id);
  const replayTotalsCompared = adDayTotals(pick.replayImpressions.filter((r) => comparedNow(r.page_view_id)), pick.replayMinutes.filter((m) => comparedNow(m.page_view_id)));
  const billedTotalsCompared = adDayTotals(pick.billedImpressions.filter((r) => comparedNow(r.page_view_id)), pick.billedMinutes.filter((m) => comparedNow(m.page_view_id)));
  differences.push(...diffRows({ kind: 'ad_day', keyFields: ['ad_id', 'day'], fields: AD_DAY_FIELDS, keyOf: adDayKey }, replayTotalsCompared, billedTotalsCompared));

  const replayTotals = adDayTotals(rows.impressions, replayMinutes);
  const billedTotals = adDayTotals(billedLive, billedMinutes);
  const sum = (list: readonly { viewable_ms: number }[]): number => list.reduce((total, m) => total + m.viewable_ms, 0);
  return {
    differences,
    uncompared: [...uncompared.values()].sort((a, b) => (a.page_view_id < b.page_view_id ? -1 : a.page_view_id > b.page_view_id ? 1 : 0)),
    comparedPageViews: [...views.keys()].filter(comparedNow).length,
    retractionsIgnored: retractions.length,
    replay: { impressions: rows.impressions.length, minutes: replayMinutes.length, billable_ms: sum(replayMinutes), checksums: checksumsOf(rows.impressions, replayMinutes, replayTotals) },
    billed: { impressions: billedLive.length, minutes: billedMinutes.length, billable_ms: sum(billedMinutes), checksums: checksumsOf(billedLive, billedMinutes, billedTotals) },
    replayTotals,
  };
}
