/**
 * What a partition hands its caller for one page view: the complete current results, plus
 * retractions of rows reported earlier that no longer hold, so that upserting reports in order
 * always leaves exactly the current results in the tables. Either as rows streamed into a
 * {@link ReportSink} (no objects per report), or collected into {@link PageViewReport}s.
 */
import type { Media } from '@dwell/protocol';
import type { ExposureFlag, ImpressionResult, MinuteBucketRow, PageViewIdentity } from './results.js';

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
 * Which rows a report holds: a page view's impression rows and its minute rows can be reported
 * apart (PageViewState.report), so that a caller may write the minute rows, which carry billed
 * time, more often than the impression rows, which carry counts and totals.
 */
export type ReportParts = 'both' | 'impressions' | 'minutes';

/**
 * Receives page view reports as rows (PartitionExposure.writeChanges): `pageView`, then that page
 * view's rows. Per page view, the impression rows come first (retracted ones, then current ones in
 * impression order), then the minute rows the same way; a report may hold only one of the two
 * (ReportParts). The row objects are reused from call to call: read them before returning, keep none.
 */
export interface ReportSink {
  pageView(identity: PageViewIdentity, flags: readonly ExposureFlag[], final: boolean): void;
  /** `retracted`: a zeroed row for an impression reported earlier that no longer appears. */
  impression(row: ImpressionResult, retracted: boolean): void;
  /** `retracted`: a 0 ms row for a minute reported earlier that no longer bills. */
  minute(row: MinuteBucketRow, retracted: boolean): void;
}

type Collected = {
  -readonly [K in keyof PageViewReport]: PageViewReport[K] extends readonly (infer T)[] ? T[] : PageViewReport[K];
};

/** A sink that keeps every report as a {@link PageViewReport}, closed and open apart. */
export class ReportCollector implements ReportSink {
  readonly closed: PageViewReport[] = [];
  readonly changed: PageViewReport[] = [];
  private current: Collected | undefined;

  pageView(identity: PageViewIdentity, flags: readonly ExposureFlag[], final: boolean): void {
    const report: Collected = {
      page_view_id: identity.page_view_id,
      site_id: identity.site_id,
      user_id: identity.user_id,
      flags: [...flags],
      final,
      impressions: [],
      buckets: [],
      retracted_impressions: [],
      retracted_buckets: [],
    };
    (final ? this.closed : this.changed).push(report);
    this.current = report;
  }

  impression(r: ImpressionResult, retracted: boolean): void {
    const report = this.open();
    (retracted ? report.retracted_impressions : report.impressions).push({
      rules_version: r.rules_version,
      page_view_id: r.page_view_id,
      site_id: r.site_id,
      user_id: r.user_id,
      impression_id: r.impression_id,
      ad_id: r.ad_id,
      campaign_id: r.campaign_id,
      media: r.media,
      width: r.width,
      height: r.height,
      measurable: r.measurable,
      viewable: r.viewable,
      billable: r.billable,
      viewable_ms: r.viewable_ms,
      credited_ms: r.credited_ms,
      longest_run_ms: r.longest_run_ms,
      // The report's own list: every row of a report shares it.
      flags: report.flags,
      first_server_ms: r.first_server_ms,
      last_server_ms: r.last_server_ms,
    });
  }

  minute(b: MinuteBucketRow, retracted: boolean): void {
    const report = this.open();
    (retracted ? report.retracted_buckets : report.buckets).push({
      rules_version: b.rules_version,
      page_view_id: b.page_view_id,
      site_id: b.site_id,
      user_id: b.user_id,
      impression_id: b.impression_id,
      ad_id: b.ad_id,
      campaign_id: b.campaign_id,
      minute_start_ms: b.minute_start_ms,
      viewable_ms: b.viewable_ms,
    });
  }

  private open(): Collected {
    if (this.current === undefined) throw new Error('a row came before its page view');
    return this.current;
  }
}
