import type { ClickHouseClient } from '@clickhouse/client';
import { errorMessage } from '@dwell/runtime';
import { WarehouseError } from './client.js';

/** What a billing report groups by. */
export const BILLING_DIMENSIONS = ['ad', 'campaign', 'site', 'user', 'day', 'hour'] as const;
export type BillingDimension = (typeof BILLING_DIMENSIONS)[number];

export interface BillingQuery {
  /** Inclusive start, Unix ms. */
  readonly fromMs: number;
  /** Exclusive end, Unix ms. */
  readonly toMs: number;
  readonly by: BillingDimension;
  readonly ad?: string | undefined;
  readonly campaign?: string | undefined;
  readonly site?: string | undefined;
  readonly user?: string | undefined;
}

/** Time-in-view buckets of viewable, billable impressions (seconds). */
export const TIME_IN_VIEW_BUCKETS = ['lt_1s', '1_2s', '2_5s', '5_10s', '10_15s', '15_30s', '30_60s', 'ge_60s'] as const;
export type TimeInViewBucket = (typeof TIME_IN_VIEW_BUCKETS)[number];

/**
 * One line of a billing report. Billed figures exclude flagged traffic (it bills 0); the
 * `*_incl_flagged` figures show what flagged page views would have added, for review.
 */
export interface BillingRow {
  /** The ad, campaign, site or user id, or the day / hour start as ISO-8601 UTC. */
  readonly key: string;
  /** Billed viewable ms whose wall-clock minute lies in [from, to). */
  readonly billable_ms: number;
  readonly billable_seconds: number;
  /** Impressions that started in [from, to), flagged ones included; a row retracting an impression (ImpressionRow.retracted) is none. */
  readonly impressions: number;
  readonly flagged_impressions: number;
  readonly measurable_impressions: number;
  readonly viewable_impressions: number;
  /** viewable / measurable; null without measurable impressions. */
  readonly viewability_rate: number | null;
  /** Billed ms of the impressions started in the period / their count; null without any. */
  readonly avg_time_in_view_ms: number | null;
  readonly time_in_view: Readonly<Record<TimeInViewBucket, number>>;
  readonly measurable_impressions_incl_flagged: number;
  readonly viewable_impressions_incl_flagged: number;
  readonly viewable_ms_incl_flagged: number;
}

const KEY_SQL: Record<BillingDimension, (time: string) => string> = {
  ad: () => 'ad_id',
  campaign: () => 'campaign_id',
  site: () => 'site_id',
  user: () => 'user_id',
  day: (time) => `formatDateTime(toStartOfDay(${time}), '%Y-%m-%dT00:00:00Z')`,
  hour: (time) => `formatDateTime(toStartOfHour(${time}), '%Y-%m-%dT%H:00:00Z')`,
};

/** The filters a report may narrow to, and the column each reads. */
const FILTER_COLUMNS = [
  ['ad', 'ad_id'],
  ['campaign', 'campaign_id'],
  ['site', 'site_id'],
  ['user', 'user_id'],
] as const;

function filters(query: BillingQuery, time: string): { where: string; params: Record<string, unknown> } {
  const clauses = [`${time} >= fromUnixTimestamp64Milli({from:Int64}, 'UTC')`, `${time} < fromUnixTimestamp64Milli({to:Int64}, 'UTC')`];
  const params: Record<string, unknown> = { from: query.fromMs, to: query.toMs };
  for (const [field, column] of FILTER_COLUMNS) {
    const value = query[field];
    if (value !== undefined) {
      clauses.push(`${column} = {${field}:String}`);
      params[field] = value;
    }
  }
  return { where: clauses.join(' AND '), params };
}

/**
 * The billing report, correct before ClickHouse merges (FINAL collapses every key to its latest
 * version at read time; the conditions apply to that version). Retractions, whose existence
 * depends on when the processor wrote rather than on the log, are left out: 0 ms minute rows and
 * `retracted` impression rows, so a key with nothing else in the period is no line. Rows sorted by
 * key. Two queries run side by side, one per table; the
 * `billing_by_<dimension>` views (migrations 6 and 7) give SQL the same figures in one statement, a
 * little slower (BENCHMARKS.md, "The billing views").
 */
export async function billingReport(client: ClickHouseClient, database: string, query: BillingQuery): Promise<BillingRow[]> {
  if (!(query.toMs > query.fromMs)) throw new RangeError('the report period is empty: --to must be after --from');
  if (!BILLING_DIMENSIONS.includes(query.by)) throw new RangeError(`by must be one of ${BILLING_DIMENSIONS.join(', ')}`);
  for (const [field] of FILTER_COLUMNS)
    if (query[field] === '') throw new RangeError(`the ${field} filter is empty: leave it out to report every ${field}`);
  // Minutes: exact billed time per period (an impression spanning midnight splits across days).
  const minuteTime = 'toDateTime64(minute, 3)';
  const minuteFilter = filters(query, minuteTime);
  const minutes = client.query({
    query: `SELECT ${KEY_SQL[query.by](minuteTime)} AS key, sum(viewable_ms) AS billable_ms
            FROM ${database}.exposure_minutes FINAL
            WHERE ${minuteFilter.where} AND viewable_ms > 0
            GROUP BY key`,
    query_params: minuteFilter.params,
    format: 'JSONEachRow',
  });
  // Impressions: counts, rates and time-in-view, attributed to the period they started in.
  const impressionFilter = filters(query, 'first_server_ms');
  const impressions = client.query({
    query: `SELECT ${KEY_SQL[query.by]('first_server_ms')} AS key,
              count() AS impressions,
              countIf(notEmpty(flags)) AS flagged_impressions,
              countIf(measurable AND empty(flags)) AS measurable_impressions,
              countIf(billable) AS viewable_impressions,
              sumIf(viewable_ms, billable) AS billed_ms,
              countIf(billable AND viewable_ms < 1000) AS lt_1s,
              countIf(billable AND viewable_ms >= 1000 AND viewable_ms < 2000) AS b_1_2s,
              countIf(billable AND viewable_ms >= 2000 AND viewable_ms < 5000) AS b_2_5s,
              countIf(billable AND viewable_ms >= 5000 AND viewable_ms < 10000) AS b_5_10s,
              countIf(billable AND viewable_ms >= 10000 AND viewable_ms < 15000) AS b_10_15s,
              countIf(billable AND viewable_ms >= 15000 AND viewable_ms < 30000) AS b_15_30s,
              countIf(billable AND viewable_ms >= 30000 AND viewable_ms < 60000) AS b_30_60s,
              countIf(billable AND viewable_ms >= 60000) AS ge_60s,
              countIf(measurable) AS measurable_incl_flagged,
              countIf(viewable) AS viewable_incl_flagged,
              sumIf(credited_ms, viewable) AS viewable_ms_incl_flagged
            FROM ${database}.impressions FINAL
            WHERE ${impressionFilter.where} AND NOT retracted
            GROUP BY key`,
    query_params: impressionFilter.params,
    format: 'JSONEachRow',
  });
  const [minuteRows, impressionRows] = await Promise.all([
    minutes.then((r) => r.json<Record<string, string | number>>()),
    impressions.then((r) => r.json<Record<string, string | number>>(), (error: unknown) => {
      throw olderSchema(error, database) ?? error;
    }),
  ]);
  const byKey = new Map<string, { m?: Record<string, string | number>; i?: Record<string, string | number> }>();
  for (const row of minuteRows) byKey.set(String(row['key']), { m: row });
  for (const row of impressionRows) byKey.set(String(row['key']), { ...byKey.get(String(row['key'])), i: row });
  const n = (row: Record<string, string | number> | undefined, field: string): number => Number(row?.[field] ?? 0);
  return [...byKey.entries()]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([key, { m, i }]) => {
      const billable = n(m, 'billable_ms');
      const measurable = n(i, 'measurable_impressions');
      const viewable = n(i, 'viewable_impressions');
      return {
        key,
        billable_ms: billable,
        billable_seconds: billable / 1000,
        impressions: n(i, 'impressions'),
        flagged_impressions: n(i, 'flagged_impressions'),
        measurable_impressions: measurable,
        viewable_impressions: viewable,
        viewability_rate: measurable === 0 ? null : viewable / measurable,
        avg_time_in_view_ms: viewable === 0 ? null : n(i, 'billed_ms') / viewable,
        time_in_view: {
          lt_1s: n(i, 'lt_1s'),
          '1_2s': n(i, 'b_1_2s'),
          '2_5s': n(i, 'b_2_5s'),
          '5_10s': n(i, 'b_5_10s'),
          '10_15s': n(i, 'b_10_15s'),
          '15_30s': n(i, 'b_15_30s'),
          '30_60s': n(i, 'b_30_60s'),
          ge_60s: n(i, 'ge_60s'),
        },
        measurable_impressions_incl_flagged: n(i, 'measurable_incl_flagged'),
        viewable_impressions_incl_flagged: n(i, 'viewable_incl_flagged'),
        viewable_ms_incl_flagged: n(i, 'viewable_ms_incl_flagged'),
      };
    });
}

/**
 * A report read from a database an older dwell made, where the impressions have no `retracted`
 * column yet (a ClickHouse server whose processors still run the older version, or an embedded
 * folder no processor of this version opened): what to do, instead of ClickHouse's unknown column.
 */
function olderSchema(error: unknown, database: string): WarehouseError | undefined {
  const message = errorMessage(error);
  if (!/\bretracted\b/.test(message) || !/unknown|missing/i.test(message)) return undefined;
  return new WarehouseError(
    `${database}.impressions has no column retracted: this database was made by an older dwell. ` +
      'Start a processor of this version once (it applies schema migration 7 before it consumes), then report again.',
  );
}
