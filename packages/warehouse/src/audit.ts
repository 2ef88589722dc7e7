import type { ClickHouseClient } from '@clickhouse/client';
import type { ImpressionRow, MinuteRow } from './exposure-store.js';

/**
 * Runs one read-only SQL statement and returns its rows. Audit queries go through this rather than
 * a client, because in embedded mode the only way into a running processor's database is its
 * `/v1/sql` endpoint, which takes plain SQL text: values are inlined as literals (see sqlString).
 */
export type SqlReader = (sql: string) => Promise<Array<Record<string, unknown>>>;

/** A SqlReader over a ClickHouse client (server mode, or an embedded database this process owns). */
export function clientReader(client: ClickHouseClient): SqlReader {
  return async (sql) => (await client.query({ query: sql, format: 'JSONEachRow' })).json<Record<string, unknown>>();
}

/** A ClickHouse string literal: backslash and quote escaped. */
export function sqlString(value: string): string {
  return `'${value.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

/** Which billed rows an audit looks at, besides the time window. */
export interface AuditFilter {
  readonly ad?: string | undefined;
  readonly campaign?: string | undefined;
  readonly site?: string | undefined;
}

/** Inclusive start, exclusive end, Unix ms. */
export interface AuditWindow {
  readonly fromMs: number;
  readonly toMs: number;
}

// Output names differ from column names: ClickHouse lets a SELECT alias shadow a column in WHERE.
const IMPRESSION_COLUMNS = `site_id AS o_site_id, page_view_id AS o_page_view_id, impression_id AS o_impression_id, user_id AS o_user_id,
  ad_id AS o_ad_id, campaign_id AS o_campaign_id, toString(media) AS o_media, width AS o_width, height AS o_height,
  measurable AS o_measurable, viewable AS o_viewable, billable AS o_billable, viewable_ms AS o_viewable_ms, credited_ms AS o_credited_ms,
  longest_run_ms AS o_longest_run_ms, flags AS o_flags, toUnixTimestamp64Milli(first_server_ms) AS o_first_server_ms,
  toUnixTimestamp64Milli(last_server_ms) AS o_last_server_ms, final AS o_final, rules_version AS o_rules_version, version AS o_version`;

const MINUTE_COLUMNS = `site_id AS o_site_id, page_view_id AS o_page_view_id, impression_id AS o_impression_id,
  toInt64(toUnixTimestamp(minute)) * 1000 AS o_minute_start_ms, user_id AS o_user_id, ad_id AS o_ad_id, campaign_id AS o_campaign_id,
  viewable_ms AS o_viewable_ms, rules_version AS o_rules_version, version AS o_version`;

function filterSql(filter: AuditFilter): string {
  const clauses: string[] = [];
  if (filter.ad !== undefined) clauses.push(`ad_id = ${sqlString(filter.ad)}`);
  if (filter.campaign !== undefined) clauses.push(`campaign_id = ${sqlString(filter.campaign)}`);
  if (filter.site !== undefined) clauses.push(`site_id = ${sqlString(filter.site)}`);
  return clauses.map((c) => ` AND ${c}`).join('');
}

function whole(value: number, what: string): number {
  if (!Number.isSafeInteger(value)) throw new RangeError(`${what} must be an integer, got ${value}`);
  return value;
}

function timeRange(column: string, window: AuditWindow): string {
  return `${column} >= fromUnixTimestamp64Milli(toInt64(${whole(window.fromMs, 'fromMs')}), 'UTC')
      AND ${column} < fromUnixTimestamp64Milli(toInt64(${whole(window.toMs, 'toMs')}), 'UTC')`;
}

function idList(ids: readonly string[]): string {
  return ids.map(sqlString).join(', ');
}

/** Billed impressions (latest version of each, `FINAL`) whose first server time lies in the window. */
export async function billedImpressions(read: SqlReader, database: string, window: AuditWindow, filter: AuditFilter = {}): Promise<ImpressionRow[]> {
  const rows = await read(
    `SELECT ${IMPRESSION_COLUMNS} FROM ${database}.impressions FINAL WHERE ${timeRange('first_server_ms', window)}${filterSql(filter)}`,
  );
  return rows.map(impressionOf);
}

/** Billed impressions of the given page views, whatever their time. Ids go in batches of `batch`. */
export async function billedImpressionsOfPageViews(
  read: SqlReader,
  database: string,
  pageViewIds: readonly string[],
  filter: AuditFilter = {},
  batch = 100,
): Promise<ImpressionRow[]> {
  const out: ImpressionRow[] = [];
  for (let i = 0; i < pageViewIds.length; i += batch) {
    const rows = await read(
      `SELECT ${IMPRESSION_COLUMNS} FROM ${database}.impressions FINAL WHERE page_view_id IN (${idList(pageViewIds.slice(i, i + batch))})${filterSql(filter)}`,
    );
    out.push(...rows.map(impressionOf));
  }
  return out;
}

/** Billed minute rows (latest version, retractions included) whose minute lies in the window. */
export async function billedMinutes(read: SqlReader, database: string, window: AuditWindow, filter: AuditFilter = {}): Promise<MinuteRow[]> {
  const rows = await read(
    `SELECT ${MINUTE_COLUMNS} FROM ${database}.exposure_minutes FINAL WHERE ${timeRange('toDateTime64(minute, 3)', window)}${filterSql(filter)}`,
  );
  return rows.map(minuteOf);
}

/** Billed minute rows of the given page views, whatever their time. */
export async function billedMinutesOfPageViews(
  read: SqlReader,
  database: string,
  pageViewIds: readonly string[],
  filter: AuditFilter = {},
  batch = 100,
): Promise<MinuteRow[]> {
  const out: MinuteRow[] = [];
  for (let i = 0; i < pageViewIds.length; i += batch) {
    const rows = await read(
      `SELECT ${MINUTE_COLUMNS} FROM ${database}.exposure_minutes FINAL WHERE page_view_id IN (${idList(pageViewIds.slice(i, i + batch))})${filterSql(filter)}`,
    );
    out.push(...rows.map(minuteOf));
  }
  return out;
}

/**
 * How far the processors have written results, per partition of `topic`: the last offset of the
 * audit trail (`processed_ranges`). Every result of the events up to it is in ClickHouse.
 */
export async function processedPositions(read: SqlReader, database: string, topic: string): Promise<Map<number, bigint>> {
  const rows = await read(
    `SELECT partition, toString(max(last_offset)) AS last FROM ${database}.processed_ranges WHERE topic = ${sqlString(topic)} GROUP BY partition`,
  );
  return new Map(rows.map((r) => [Number(r['partition']), BigInt(String(r['last']))]));
}

/** A recomputed impression as `shadow_impressions` stores it. */
export type ShadowImpressionRow = Omit<ImpressionRow, 'version'> & { readonly partition: number };
/** A recomputed minute row as `shadow_exposure_minutes` stores it. */
export type ShadowMinuteRow = Omit<MinuteRow, 'version'>;

/** What `replay_runs` keeps of one replay. */
export interface ReplayRun {
  readonly replayId: string;
  readonly startedAtMs: number;
  readonly finishedAtMs: number;
  readonly fromMs: number;
  readonly toMs: number;
  readonly scope: string;
  readonly verdict: string;
  readonly differences: number;
  readonly impressionsChecksum: string;
  readonly adDayChecksum: string;
  /** The report manifest, JSON. */
  readonly manifest: string;
}

/**
 * Writes a replay's recomputed rows to the shadow tables (migration 3), then its run record. Inserts
 * carry deduplication tokens derived from the replay id, so a retried write stores nothing twice.
 */
export async function writeShadowReplay(
  client: ClickHouseClient,
  database: string,
  run: ReplayRun,
  impressions: readonly ShadowImpressionRow[],
  minutes: readonly ShadowMinuteRow[],
  chunk = 50_000,
): Promise<void> {
  const replayedAt = run.finishedAtMs;
  for (let i = 0; i < impressions.length; i += chunk) {
    await client.insert({
      table: `${database}.shadow_impressions`,
      values: impressions.slice(i, i + chunk).map((row) => ({ replay_id: run.replayId, ...row, replayed_at: replayedAt })),
      format: 'JSONEachRow',
      clickhouse_settings: { insert_deduplication_token: `${run.replayId}/impressions/${i}` },
    });
  }
  for (let i = 0; i < minutes.length; i += chunk) {
    await client.insert({
      table: `${database}.shadow_exposure_minutes`,
      values: minutes.slice(i, i + chunk).map(({ minute_start_ms, ...row }) => ({
        replay_id: run.replayId,
        ...row,
        minute: Math.floor(minute_start_ms / 1000),
        replayed_at: replayedAt,
      })),
      format: 'JSONEachRow',
      clickhouse_settings: { insert_deduplication_token: `${run.replayId}/minutes/${i}` },
    });
  }
  await client.insert({
    table: `${database}.replay_runs`,
    values: [
      {
        replay_id: run.replayId,
        started_at: run.startedAtMs,
        finished_at: run.finishedAtMs,
        from_ms: run.fromMs,
        to_ms: run.toMs,
        scope: run.scope,
        verdict: run.verdict,
        differences: run.differences,
        impressions_checksum: run.impressionsChecksum,
        ad_day_checksum: run.adDayChecksum,
        manifest: run.manifest,
      },
    ],
    format: 'JSONEachRow',
    clickhouse_settings: { insert_deduplication_token: `${run.replayId}/run` },
  });
}

const num = (value: unknown): number => Number(value);
const bool = (value: unknown): boolean => value === true || Number(value) === 1;

function impressionOf(r: Record<string, unknown>): ImpressionRow {
  return {
    site_id: String(r['o_site_id']),
    page_view_id: String(r['o_page_view_id']),
    impression_id: String(r['o_impression_id']),
    user_id: String(r['o_user_id']),
    ad_id: String(r['o_ad_id']),
    campaign_id: String(r['o_campaign_id']),
    media: String(r['o_media']),
    width: num(r['o_width']),
    height: num(r['o_height']),
    measurable: bool(r['o_measurable']),
    viewable: bool(r['o_viewable']),
    billable: bool(r['o_billable']),
    viewable_ms: num(r['o_viewable_ms']),
    credited_ms: num(r['o_credited_ms']),
    longest_run_ms: num(r['o_longest_run_ms']),
    flags: Array.isArray(r['o_flags']) ? (r['o_flags'] as unknown[]).map(String) : [],
    first_server_ms: num(r['o_first_server_ms']),
    last_server_ms: num(r['o_last_server_ms']),
    final: bool(r['o_final']),
    rules_version: num(r['o_rules_version']),
    version: num(r['o_version']),
  };
}

function minuteOf(r: Record<string, unknown>): MinuteRow {
  return {
    site_id: String(r['o_site_id']),
    page_view_id: String(r['o_page_view_id']),
    impression_id: String(r['o_impression_id']),
    minute_start_ms: num(r['o_minute_start_ms']),
    user_id: String(r['o_user_id']),
    ad_id: String(r['o_ad_id']),
    campaign_id: String(r['o_campaign_id']),
    viewable_ms: num(r['o_viewable_ms']),
    rules_version: num(r['o_rules_version']),
    version: num(r['o_version']),
  };
}
