import { Readable } from 'node:stream';
import type { ClickHouseClient } from '@clickhouse/client';
import type { Warehouse } from './client.js';

/** A row of `impressions`, as the processor computes it. Times are Unix ms. */
export interface ImpressionRow {
  readonly site_id: string;
  readonly page_view_id: string;
  readonly impression_id: string;
  readonly user_id: string;
  readonly ad_id: string;
  readonly campaign_id: string;
  readonly media: string;
  readonly width: number;
  readonly height: number;
  readonly measurable: boolean;
  readonly viewable: boolean;
  readonly billable: boolean;
  readonly viewable_ms: number;
  readonly credited_ms: number;
  readonly longest_run_ms: number;
  readonly flags: readonly string[];
  readonly first_server_ms: number;
  readonly last_server_ms: number;
  readonly final: boolean;
  readonly rules_version: number;
  readonly version: number;
}

/** A row of `exposure_minutes`. `minute_start_ms` is a whole minute, Unix ms. */
export interface MinuteRow {
  readonly site_id: string;
  readonly page_view_id: string;
  readonly impression_id: string;
  readonly minute_start_ms: number;
  readonly user_id: string;
  readonly ad_id: string;
  readonly campaign_id: string;
  readonly viewable_ms: number;
  readonly rules_version: number;
  readonly version: number;
}

/** One partition's share of a write: which offsets produced it. */
export interface ProcessedRange {
  readonly topic: string;
  readonly partition: number;
  readonly first_offset: string;
  readonly last_offset: string;
  readonly events: number;
  readonly rejected: number;
}

/**
 * Rows encoded for an insert, as `JSONCompactEachRow` lines in the column order of
 * {@link IMPRESSION_COLUMNS} or {@link MINUTE_COLUMNS}: the processor encodes them where it computes
 * them (possibly another thread), and a write only passes the text on.
 */
export interface EncodedRows {
  readonly rows: number;
  readonly body: string;
}

export const NO_ROWS: EncodedRows = Object.freeze({ rows: 0, body: '' });

export const IMPRESSION_COLUMNS = [
  'site_id',
  'page_view_id',
  'impression_id',
  'user_id',
  'ad_id',
  'campaign_id',
  'media',
  'width',
  'height',
  'measurable',
  'viewable',
  'billable',
  'viewable_ms',
  'credited_ms',
  'longest_run_ms',
  'flags',
  'first_server_ms',
  'last_server_ms',
  'final',
  'rules_version',
  'version',
] as const satisfies readonly (keyof ImpressionRow)[];

/** `minute` is the minute's start in Unix seconds. */
export const MINUTE_COLUMNS = [
  'site_id',
  'page_view_id',
  'impression_id',
  'minute',
  'user_id',
  'ad_id',
  'campaign_id',
  'viewable_ms',
  'rules_version',
  'version',
] as const;

/** Appends rows to an {@link EncodedRows} body; one per table per write. */
export class RowsEncoder {
  private readonly lines: string[] = [];

  get rows(): number {
    return this.lines.length;
  }

  /** An impression row; `final` and `version` apart, so a computed result needs no copy first. */
  impression(r: Omit<ImpressionRow, 'final' | 'version'>, final: boolean, version: number): void {
    this.lines.push(
      JSON.stringify([
        r.site_id,
        r.page_view_id,
        r.impression_id,
        r.user_id,
        r.ad_id,
        r.campaign_id,
        r.media,
        r.width,
        r.height,
        r.measurable,
        r.viewable,
        r.billable,
        r.viewable_ms,
        r.credited_ms,
        r.longest_run_ms,
        r.flags,
        r.first_server_ms,
        r.last_server_ms,
        final,
        r.rules_version,
        version,
      ]),
    );
  }

  /** A minute row; `version` apart, so a computed bucket needs no copy first. */
  minute(r: Omit<MinuteRow, 'version'>, version: number): void {
    this.lines.push(
      JSON.stringify([
        r.site_id,
        r.page_view_id,
        r.impression_id,
        Math.floor(r.minute_start_ms / 1000),
        r.user_id,
        r.ad_id,
        r.campaign_id,
        r.viewable_ms,
        r.rules_version,
        version,
      ]),
    );
  }

  finish(): EncodedRows {
    return this.lines.length === 0
      ? NO_ROWS
      : { rows: this.lines.length, body: `${this.lines.join('\n')}\n` };
  }
}

export interface ResultsWrite {
  readonly impressions: EncodedRows;
  readonly minutes: EncodedRows;
  readonly ranges: readonly ProcessedRange[];
  readonly rulesVersion: number;
  readonly processorId: string;
  /**
   * Identifies this exact write (offset ranges and rules version): a retry with the same token is
   * stored once, whatever happened to the first attempt.
   */
  readonly token: string;
}

export interface StoredSnapshot {
  readonly next_offset: string;
  readonly rules_fingerprint: string;
  readonly snapshot: string;
}

/**
 * The processor's ClickHouse side: idempotent result writes, the audit trail of processed offset
 * ranges, and partition state snapshots.
 */
export class ExposureStore {
  private readonly client: ClickHouseClient;
  private readonly db: string;

  constructor(warehouse: Warehouse) {
    this.client = warehouse.client;
    this.db = warehouse.database;
  }

  /**
   * Writes result rows and their offset ranges. Each table's insert carries a deduplication token
   * derived from `write.token`, so retrying a write whose first attempt did land (a timeout after
   * the server stored it) stores nothing twice. Rows are complete values with a version, so even a
   * write recomputed from other batch boundaries only replaces what is there.
   */
  async writeResults(write: ResultsWrite): Promise<void> {
    const at = Date.now();
    await this.insertEncoded(
      'impressions',
      IMPRESSION_COLUMNS,
      write.impressions,
      `${write.token}/impressions`,
    );
    await this.insertEncoded('exposure_minutes', MINUTE_COLUMNS, write.minutes, `${write.token}/minutes`);
    if (write.ranges.length > 0) {
      await this.client.insert({
        table: `${this.db}.processed_ranges`,
        values: write.ranges.map((range) => ({
          ...range,
          impression_rows: write.impressions.rows,
          minute_rows: write.minutes.rows,
          rules_version: write.rulesVersion,
          processor_id: write.processorId,
          processed_at: at,
        })),
        format: 'JSONEachRow',
        clickhouse_settings: { insert_deduplication_token: `${write.token}/ranges` },
      });
    }
  }

  /** Passes encoded rows on as they are (the client's insert would encode each row again). */
  private async insertEncoded(
    table: string,
    columns: readonly string[],
    rows: EncodedRows,
    token: string,
  ): Promise<void> {
    if (rows.rows === 0) return;
    const result = await this.client.exec({
      query: `INSERT INTO ${this.db}.${table} (${columns.join(', ')}) FORMAT JSONCompactEachRow`,
      values: Readable.from([rows.body], { objectMode: false }),
      clickhouse_settings: { insert_deduplication_token: token },
    });
    // The answer of an insert is empty; reading it to the end frees the connection.
    for await (const chunk of result.stream) void chunk;
  }

  async saveSnapshot(snapshot: {
    topic: string;
    partition: number;
    nextOffset: string;
    rulesVersion: number;
    rulesFingerprint: string;
    pageViews: number;
    snapshot: string;
    processorId: string;
  }): Promise<void> {
    await this.client.insert({
      table: `${this.db}.processor_snapshots`,
      values: [
        {
          topic: snapshot.topic,
          partition: snapshot.partition,
          next_offset: snapshot.nextOffset,
          rules_version: snapshot.rulesVersion,
          rules_fingerprint: snapshot.rulesFingerprint,
          page_views: snapshot.pageViews,
          snapshot: snapshot.snapshot,
          processor_id: snapshot.processorId,
          created_at: Date.now(),
        },
      ],
      format: 'JSONEachRow',
    });
  }

  /** The newest snapshot of a partition valid at or before `atMostOffset`. */
  async latestSnapshot(
    topic: string,
    partition: number,
    atMostOffset: string,
  ): Promise<StoredSnapshot | undefined> {
    const result = await this.client.query({
      query: `SELECT toString(s.next_offset) AS offset_text, s.rules_fingerprint AS rules_fingerprint, s.snapshot AS snapshot
              FROM ${this.db}.processor_snapshots AS s FINAL
              WHERE s.topic = {topic:String} AND s.partition = {partition:UInt32} AND s.next_offset <= {at:UInt64}
              ORDER BY s.next_offset DESC LIMIT 1`,
      query_params: { topic, partition, at: atMostOffset },
      format: 'JSONEachRow',
    });
    const [row] = await result.json<{ offset_text: string; rules_fingerprint: string; snapshot: string }>();
    return row === undefined
      ? undefined
      : { next_offset: row.offset_text, rules_fingerprint: row.rules_fingerprint, snapshot: row.snapshot };
  }

  /** Keeps the newest `keep` snapshots of a partition (older ones can never be needed again). */
  async pruneSnapshots(topic: string, partition: number, keep: number): Promise<void> {
    await this.client.command({
      query: `DELETE FROM ${this.db}.processor_snapshots
              WHERE topic = {topic:String} AND partition = {partition:UInt32} AND next_offset < (
                SELECT min(next_offset) FROM (
                  SELECT next_offset FROM ${this.db}.processor_snapshots
                  WHERE topic = {topic:String} AND partition = {partition:UInt32}
                  ORDER BY next_offset DESC LIMIT {keep:UInt32}))`,
      query_params: { topic, partition, keep },
    });
  }
}
