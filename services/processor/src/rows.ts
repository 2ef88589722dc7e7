import type { ImpressionResult, MinuteBucketRow, PageViewReport } from '@dwell/exposure';
import type { ImpressionRow, MinuteRow, RowsEncoder } from '@dwell/warehouse';

/**
 * Encodes page view reports as table rows. `version` is the offset the partition had reached when
 * the rows were computed: a later computation of the same key always carries a higher version, so
 * ClickHouse keeps the latest state, whatever order inserts land in.
 */
export function encodeReports(
  reports: readonly PageViewReport[],
  version: number,
  impressions: RowsEncoder,
  minutes: RowsEncoder,
): void {
  for (const report of reports) {
    for (const result of report.impressions)
      impressions.impression(impressionRow(result, report.final, version));
    for (const result of report.retracted_impressions)
      impressions.impression(impressionRow(result, report.final, version));
    for (const bucket of report.buckets) minutes.minute(minuteRow(bucket, version));
    for (const bucket of report.retracted_buckets) minutes.minute(minuteRow(bucket, version));
  }
}

/** An impression's table row: the result's fields in the table's shape (also the replay's shadow rows). */
export function impressionRow(r: Omit<ImpressionRow, 'final' | 'version'> | ImpressionResult, final: boolean, version: number): ImpressionRow {
  return {
    site_id: r.site_id,
    page_view_id: r.page_view_id,
    impression_id: r.impression_id,
    user_id: r.user_id,
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
    flags: r.flags,
    first_server_ms: r.first_server_ms,
    last_server_ms: r.last_server_ms,
    final,
    rules_version: r.rules_version,
    version,
  };
}

/** A minute bucket's table row (also the replay's shadow rows). */
export function minuteRow(b: Omit<MinuteRow, 'version'> | MinuteBucketRow, version: number): MinuteRow {
  return {
    site_id: b.site_id,
    page_view_id: b.page_view_id,
    impression_id: b.impression_id,
    minute_start_ms: b.minute_start_ms,
    user_id: b.user_id,
    ad_id: b.ad_id,
    campaign_id: b.campaign_id,
    viewable_ms: b.viewable_ms,
    rules_version: b.rules_version,
    version,
  };
}
