import type { ImpressionResult, MinuteBucketRow, PageViewReport } from '@dwell/exposure';
import type { ImpressionRow, MinuteRow, RowsEncoder } from '@dwell/warehouse';

/**
 * Encodes page view reports as table rows. `version` is the offset the partition had reached when
 * the rows were computed: a later computation of the same key always carries a higher version, so
 * ClickHouse keeps the latest state, whatever order inserts land in.
 *
 * With `written`, a row whose values equal what was last written for its key is left out (see
 * {@link WrittenRows}); without it, every row of every report is encoded.
 */
export function encodeReports(
  reports: readonly PageViewReport[],
  version: number,
  impressions: RowsEncoder,
  minutes: RowsEncoder,
  written?: WrittenRows,
): void {
  for (const report of reports) {
    const last = written?.lastOf(report);
    for (const result of report.impressions)
      if (last === undefined || last.impressionChanged(result, report.final))
        impressions.impression(result, report.final, version);
    for (const result of report.retracted_impressions)
      if (last === undefined || last.impressionChanged(result, report.final))
        impressions.impression(result, report.final, version);
    for (const bucket of report.buckets)
      if (last === undefined || last.minuteChanged(bucket, report.final)) minutes.minute(bucket, version);
    for (const bucket of report.retracted_buckets)
      if (last === undefined || last.minuteChanged(bucket, report.final)) minutes.minute(bucket, version);
    if (report.final) written?.forget(report.page_view_id);
  }
}

/**
 * What one processor last wrote of each open page view's rows, so that a write carries only the
 * rows whose values changed. While a page view streams, most of its rows stay as they were between
 * two writes (past minutes, impressions out of view); writing them again only costs ClickHouse.
 *
 * Skipping a row is safe when no other write of the same key, at a version between the one this
 * processor last wrote and the current one, can exist. So:
 * - the rows of a page view's final report are always written in full, and its entry forgotten:
 *   whatever happened before, a closed page view's rows end exact;
 * - after a partition is (re)started, nothing is remembered until the partition's versions pass
 *   every offset an earlier owner could have written (the log end at the restart): before that, a
 *   skipped row could leave an earlier owner's row of a higher version standing.
 * A processor that goes on writing after losing its partitions (fenced out of the group but still
 * running) can still leave an open page view's row one value behind until the row changes again
 * or the page view closes; its final rows are exact whatever happened before.
 */
export class WrittenRows {
  private readonly pageViews = new Map<string, LastWritten>();
  /** Writes of versions below this write everything and remember nothing. */
  private readonly trustFrom: number;
  private trusted = false;

  /** `trustFrom`: the last offset an earlier owner of the partition may have written rows for. */
  constructor(trustFrom: number) {
    this.trustFrom = trustFrom;
  }

  /** Call before each write: whether rows of `version` may be skipped and remembered. */
  begin(version: number): boolean {
    if (!this.trusted && version >= this.trustFrom) this.trusted = true;
    return this.trusted;
  }

  /** The page view's last written rows, created empty on first use. */
  lastOf(report: PageViewReport): LastWritten {
    let last = this.pageViews.get(report.page_view_id);
    if (last === undefined) {
      last = new LastWritten();
      this.pageViews.set(report.page_view_id, last);
    }
    return last;
  }

  forget(pageViewId: string): void {
    this.pageViews.delete(pageViewId);
  }

  /** Page views remembered. */
  get size(): number {
    return this.pageViews.size;
  }
}

/** One page view's last written rows. Pages hold a handful of impressions: arrays, linear scans. */
export class LastWritten {
  private readonly impressions: ImpressionResult[] = [];
  private readonly minutes: MinuteBucketRow[] = [];

  /** Whether the row differs from the last one written for its impression; remembers it. */
  impressionChanged(row: ImpressionResult, final: boolean): boolean {
    const list = this.impressions;
    for (let i = 0; i < list.length; i++) {
      const before = list[i] as ImpressionResult;
      if (before.impression_id !== row.impression_id) continue;
      list[i] = row;
      return final || !sameImpression(before, row);
    }
    list.push(row);
    return true;
  }

  /** Whether the row differs from the last one written for its minute; remembers it. */
  minuteChanged(row: MinuteBucketRow, final: boolean): boolean {
    const list = this.minutes;
    for (let i = 0; i < list.length; i++) {
      const before = list[i] as MinuteBucketRow;
      if (before.minute_start_ms !== row.minute_start_ms || before.impression_id !== row.impression_id) continue;
      list[i] = row;
      return final || !sameMinute(before, row);
    }
    list.push(row);
    return true;
  }
}

/** Every column of the row but its version (`final` is decided by the caller). */
function sameImpression(a: ImpressionResult, b: ImpressionResult): boolean {
  return (
    a.viewable_ms === b.viewable_ms &&
    a.credited_ms === b.credited_ms &&
    a.longest_run_ms === b.longest_run_ms &&
    a.last_server_ms === b.last_server_ms &&
    a.first_server_ms === b.first_server_ms &&
    a.measurable === b.measurable &&
    a.viewable === b.viewable &&
    a.billable === b.billable &&
    a.ad_id === b.ad_id &&
    a.campaign_id === b.campaign_id &&
    a.media === b.media &&
    a.width === b.width &&
    a.height === b.height &&
    a.site_id === b.site_id &&
    a.user_id === b.user_id &&
    a.rules_version === b.rules_version &&
    sameFlags(a.flags, b.flags)
  );
}

function sameFlags(a: readonly string[], b: readonly string[]): boolean {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function sameMinute(a: MinuteBucketRow, b: MinuteBucketRow): boolean {
  return (
    a.viewable_ms === b.viewable_ms &&
    a.ad_id === b.ad_id &&
    a.campaign_id === b.campaign_id &&
    a.site_id === b.site_id &&
    a.user_id === b.user_id &&
    a.rules_version === b.rules_version
  );
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
