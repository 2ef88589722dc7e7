/**
 * What a partition hands its caller for one page view: the complete current results, plus
 * retractions of rows reported earlier that no longer hold, so that upserting reports in order
 * always leaves exactly the current results in the tables.
 */
import type { Media } from '@dwell/protocol';
import type { PageViewState } from './page-view-state.js';
import type { ExposureFlag, ImpressionResult, MinuteBucketRow } from './results.js';

/**
 * The complete current results of one page view. To upsert: `impressions`, `buckets`, and the
 * retractions, which overwrite rows reported earlier that no longer hold.
 */
export interface PageViewReport {
  readonly page_view_id: string;
  readonly site_id: string;
  readonly user_id: string;
  readonly flags: readonly ExposureFlag[];
  /** The page view is closed and evicted; these results are final and reported this once. */
  readonly final: boolean;
  /** Current results, as PageViewState.results gives them. */
  readonly impressions: readonly ImpressionResult[];
  /** Current billable minute rows. */
  readonly buckets: readonly MinuteBucketRow[];
  /**
   * Zeroed rows (not measurable, not viewable, 0 ms) for impressions reported earlier that no
   * longer appear: only after a conflicting copy with another impression list became the kept one.
   */
  readonly retracted_impressions: readonly ImpressionResult[];
  /**
   * Rows with `viewable_ms: 0` for each (impression, minute) reported earlier that no longer
   * bills: a flag appeared, or an earlier event moved the anchor to other minutes.
   */
  readonly retracted_buckets: readonly MinuteBucketRow[];
}

/**
 * What was last reported of an impression, enough to retract it: `[impression_id, ad_id,
 * campaign_id, media, width, height, first_server_ms, last_server_ms, billed minute starts]`.
 */
export type ReportedImpression = readonly [
  impressionId: string,
  adId: string,
  campaignId: string,
  media: Media,
  width: number,
  height: number,
  firstServerMs: number,
  lastServerMs: number,
  minutes: readonly number[],
];

/**
 * The report of a page view: its complete current results, and retractions of what was reported
 * before (`reported`) and no longer holds. Returns the report and what it reports now.
 */
export function reportPageView(
  state: PageViewState,
  previous: readonly ReportedImpression[],
  final: boolean,
  rules_version: number,
): { report: PageViewReport; reported: ReportedImpression[] } {
  const { identity, flags, impressions, buckets } = state.results();
  const { page_view_id, site_id, user_id } = identity;
  // Bucket rows come grouped by impression, in impression order: one walk pairs them up.
  const reported: ReportedImpression[] = [];
  let b = 0;
  for (const i of impressions) {
    const minutes: number[] = [];
    for (let row = buckets[b]; row !== undefined && row.impression_id === i.impression_id; row = buckets[++b])
      minutes.push(row.minute_start_ms);
    reported.push([
      i.impression_id,
      i.ad_id,
      i.campaign_id,
      i.media,
      i.width,
      i.height,
      i.first_server_ms,
      i.last_server_ms,
      minutes,
    ]);
  }
  const retracted_impressions: ImpressionResult[] = [];
  const retracted_buckets: MinuteBucketRow[] = [];
  if (previous.length > 0) {
    const now = previous.length > 16 ? new Map(reported.map((r) => [r[0], r])) : undefined;
    for (const [
      impression_id,
      ad_id,
      campaign_id,
      media,
      width,
      height,
      first_server_ms,
      last_server_ms,
      minutes,
    ] of previous) {
      const current =
        now !== undefined ? now.get(impression_id) : reported.find((r) => r[0] === impression_id);
      if (current === undefined) {
        retracted_impressions.push({
          rules_version,
          page_view_id,
          site_id,
          user_id,
          impression_id,
          ad_id,
          campaign_id,
          media,
          width,
          height,
          measurable: false,
          viewable: false,
          billable: false,
          viewable_ms: 0,
          credited_ms: 0,
          longest_run_ms: 0,
          flags,
          first_server_ms,
          last_server_ms,
        });
      }
      const still = current?.[8] ?? [];
      for (const minute_start_ms of minutes) {
        if (!still.includes(minute_start_ms))
          retracted_buckets.push({
            rules_version,
            page_view_id,
            site_id,
            user_id,
            impression_id,
            ad_id,
            campaign_id,
            minute_start_ms,
            viewable_ms: 0,
          });
      }
    }
  }
  return {
    report: {
      page_view_id,
      site_id,
      user_id,
      flags,
      final,
      impressions,
      buckets,
      retracted_impressions,
      retracted_buckets,
    },
    reported,
  };
}
