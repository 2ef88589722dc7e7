import type { ExposureFlag, ImpressionResult, MinuteBucketRow, PageViewIdentity, ReportSink } from '@dwell/exposure';
import type { ImpressionRow, MinuteRow, RowsEncoder } from '@dwell/warehouse';

/**
 * Encodes the rows of page view reports (PartitionExposure.writeChanges) into the two tables'
 * encoders. `version` is the offset the partition had reached when the rows were computed: a
 * later computation of the same key always carries a higher version, so ClickHouse keeps the
 * latest state, whatever order inserts land in.
 */
export class RowsSink implements ReportSink {
  version = 0;
  private final = false;
  private readonly impressions: RowsEncoder;
  private readonly minutes: RowsEncoder;

  constructor(impressions: RowsEncoder, minutes: RowsEncoder) {
    this.impressions = impressions;
    this.minutes = minutes;
  }

  pageView(_identity: PageViewIdentity, _flags: readonly ExposureFlag[], final: boolean): void {
    this.final = final;
  }

  impression(row: ImpressionResult, retracted: boolean): void {
    this.impressions.impression(row, this.final, this.version, retracted);
  }

  minute(row: MinuteBucketRow): void {
    this.minutes.minute(row, this.version);
  }
}

/**
 * Whether a partition's writes may leave out rows equal to what this processor last wrote for
 * their keys. While a page view streams, most of its rows stay as they were between two writes
 * (past minutes, impressions out of view); writing them again only costs ClickHouse.
 *
 * Leaving a row out is safe when no other write of the same key, at a version between the one this
 * processor last wrote and the current one, can exist. So after a partition is (re)started, every
 * write is complete until the partition's versions pass every offset an earlier owner could have
 * written (the log end at the restart), and the exposure core only skips by values a skipping
 * write recorded; the rows of a closed page view are always complete (PageViewState.report).
 * A processor that goes on writing after losing its partitions (fenced out of the group but still
 * running) can still leave an open page view's row one value behind until the row changes again
 * or the page view closes; its final rows are exact whatever happened before.
 */
export class WriteTrust {
  private readonly trustFrom: number;
  private trusted = false;

  /** `trustFrom`: the last offset an earlier owner of the partition may have written rows for. */
  constructor(trustFrom: number) {
    this.trustFrom = trustFrom;
  }

  /** Call before each write: whether rows of `version` may be left out when unchanged. */
  begin(version: number): boolean {
    if (!this.trusted && version >= this.trustFrom) this.trusted = true;
    return this.trusted;
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
