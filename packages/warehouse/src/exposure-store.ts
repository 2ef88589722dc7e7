import { mkdirSync, rmSync } from 'node:fs';
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import type { ClickHouseClient } from '@clickhouse/client';
import type { Warehouse } from './client.js';
import { sqlString } from './audit.js';
import { readRowBinary, RowBinaryWriter, type RowBinaryType } from './row-binary.js';

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
  /**
   * A zeroed row overwriting an impression the page view no longer has (PageViewReport's
   * `retracted_impressions`); reports leave it out. Absent: false.
   */
  readonly retracted?: boolean;
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
 * Rows encoded for an insert, as RowBinary in the column order of {@link IMPRESSION_COLUMNS} or
 * {@link MINUTE_COLUMNS}: the processor encodes them where it computes them (possibly another
 * thread), and a write only passes the bytes on.
 */
export interface EncodedRows {
  readonly rows: number;
  readonly body: Uint8Array;
}

export const NO_ROWS: EncodedRows = Object.freeze({ rows: 0, body: new Uint8Array(0) });

/** A result table's columns: name, RowBinary encoding, and the type `file()` reads it as. */
type ColumnSpec = readonly [name: string, encoding: RowBinaryType, readAs?: string];

const IMPRESSION_SPEC = [
  ['site_id', 'String'],
  ['page_view_id', 'String'],
  ['impression_id', 'String'],
  ['user_id', 'String'],
  ['ad_id', 'String'],
  ['campaign_id', 'String'],
  ['media', 'String'],
  ['width', 'UInt32'],
  ['height', 'UInt32'],
  ['measurable', 'UInt8'],
  ['viewable', 'UInt8'],
  ['billable', 'UInt8'],
  ['viewable_ms', 'UInt64'],
  ['credited_ms', 'UInt64'],
  ['longest_run_ms', 'UInt64'],
  ['flags', 'Array(String)'],
  // Milliseconds as Int64 are a DateTime64(3); read as a plain Int64 they would be cast as seconds.
  ['first_server_ms', 'Int64', 'DateTime64(3)'],
  ['last_server_ms', 'Int64', 'DateTime64(3)'],
  ['final', 'UInt8'],
  ['retracted', 'UInt8'],
  ['rules_version', 'UInt16'],
  ['version', 'UInt64'],
] as const satisfies readonly (readonly [keyof ImpressionRow, RowBinaryType, string?])[];

/** `minute` is the minute's start in Unix seconds. */
const MINUTE_SPEC = [
  ['site_id', 'String'],
  ['page_view_id', 'String'],
  ['impression_id', 'String'],
  ['minute', 'UInt32', 'DateTime'],
  ['user_id', 'String'],
  ['ad_id', 'String'],
  ['campaign_id', 'String'],
  ['viewable_ms', 'UInt32'],
  ['rules_version', 'UInt16'],
  ['version', 'UInt64'],
] as const satisfies readonly ColumnSpec[];

export const IMPRESSION_COLUMNS = IMPRESSION_SPEC.map(([name]) => name);
export const MINUTE_COLUMNS = MINUTE_SPEC.map(([name]) => name);
/** The RowBinary types of an encoded body's columns, for {@link readRowBinary}. */
export const IMPRESSION_TYPES: readonly RowBinaryType[] = IMPRESSION_SPEC.map(([, type]) => type);
export const MINUTE_TYPES: readonly RowBinaryType[] = MINUTE_SPEC.map(([, type]) => type);

/** What an insert into a result table needs, computed once: its column list and the `file()` structure. */
interface ResultTable {
  readonly name: string;
  readonly columns: string;
  /** The structure argument of `file()` that reads a body of these columns, as a SQL literal. */
  readonly structure: string;
}

function resultTable(name: string, spec: readonly ColumnSpec[]): ResultTable {
  return {
    name,
    columns: spec.map(([column]) => column).join(', '),
    structure: sqlString(spec.map(([column, encoding, readAs]) => `${column} ${readAs ?? encoding}`).join(', ')),
  };
}

const IMPRESSIONS_TABLE = resultTable('impressions', IMPRESSION_SPEC);
const MINUTES_TABLE = resultTable('exposure_minutes', MINUTE_SPEC);

/**
 * A snapshot row. Snapshots go in and out as RowBinary, never JSON: a partition's snapshot under
 * steady traffic is hundreds of MB of one string, which ClickHouse refuses as a JSON row beyond
 * about 100 MB, and which escaping would copy twice more on the way.
 */
const SNAPSHOT_SPEC = [
  ['topic', 'String'],
  ['partition', 'UInt32'],
  ['next_offset', 'UInt64'],
  ['rules_version', 'UInt16'],
  ['rules_fingerprint', 'String'],
  ['page_views', 'UInt32'],
  ['snapshot', 'String'],
  ['processor_id', 'String'],
  ['created_at', 'Int64', 'DateTime64(3)'],
  ['kind', 'String'],
  ['previous_offset', 'UInt64'],
  ['base_offset', 'UInt64'],
] as const satisfies readonly ColumnSpec[];
const SNAPSHOTS_TABLE = resultTable('processor_snapshots', SNAPSHOT_SPEC);

/**
 * The nice value of the ClickHouse threads that store a snapshot: far below the event processing
 * and the result writes (a tenth of their weight in Linux's scheduler), not the lowest, which on
 * saturated cores left a 245 MB snapshot's store 87 s to finish (7 s at 10), and so the offsets'
 * commits that wait for it.
 */
export const SNAPSHOT_THREAD_NICE = 10;

/** An insert's own ClickHouse settings. */
type InsertSettings = Readonly<Record<string, string | number>>;

const STORED_SNAPSHOT_TYPES: readonly RowBinaryType[] = ['UInt64', 'String', 'String'];

/** `full`: a partition's whole state; `delta`: what changed since the snapshot before it. */
export type SnapshotKind = 'full' | 'delta';

/** Appends rows to an {@link EncodedRows} body; one per table per write. */
export class RowsEncoder {
  private readonly out = new RowBinaryWriter();
  private count = 0;

  get rows(): number {
    return this.count;
  }

  /** An impression row; `final`, `version` and `retracted` apart, so a computed result needs no copy first. */
  impression(r: Omit<ImpressionRow, 'final' | 'version' | 'retracted'>, final: boolean, version: number, retracted = false): void {
    const out = this.out;
    out.string(r.site_id);
    out.string(r.page_view_id);
    out.string(r.impression_id);
    out.string(r.user_id);
    out.string(r.ad_id);
    out.string(r.campaign_id);
    out.string(r.media);
    out.uint32(r.width);
    out.uint32(r.height);
    out.bool(r.measurable);
    out.bool(r.viewable);
    out.bool(r.billable);
    out.uint64(r.viewable_ms);
    out.uint64(r.credited_ms);
    out.uint64(r.longest_run_ms);
    out.strings(r.flags);
    out.int64(r.first_server_ms);
    out.int64(r.last_server_ms);
    out.bool(final);
    out.bool(retracted);
    out.uint16(r.rules_version);
    out.uint64(version);
    this.count++;
  }

  /** A minute row; `version` apart, so a computed bucket needs no copy first. */
  minute(r: Omit<MinuteRow, 'version'>, version: number): void {
    const out = this.out;
    out.string(r.site_id);
    out.string(r.page_view_id);
    out.string(r.impression_id);
    out.uint32(Math.floor(r.minute_start_ms / 1000));
    out.string(r.user_id);
    out.string(r.ad_id);
    out.string(r.campaign_id);
    out.uint32(r.viewable_ms);
    out.uint16(r.rules_version);
    out.uint64(version);
    this.count++;
  }

  finish(): EncodedRows {
    return this.count === 0 ? NO_ROWS : { rows: this.count, body: this.out.finish() };
  }
}

/** Bodies of the same table joined into one (the rows of several encoders, in order). */
export function joinEncodedRows(parts: readonly EncodedRows[]): EncodedRows {
  const nonEmpty = parts.filter((part) => part.rows > 0);
  if (nonEmpty.length === 0) return NO_ROWS;
  if (nonEmpty.length === 1) return nonEmpty[0] as EncodedRows;
  return {
    rows: nonEmpty.reduce((sum, part) => sum + part.rows, 0),
    body: Buffer.concat(nonEmpty.map((part) => part.body)),
  };
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
  /** The full snapshot the chain starts from. */
  readonly snapshot: string;
  /** The deltas on it up to `next_offset`, in order (none when that is the full snapshot's). */
  readonly deltas: readonly string[];
}

/** Where a stored snapshot sits on its chain. */
export interface SnapshotLink {
  readonly next_offset: string;
  readonly kind: string;
  readonly previous_offset: string;
  readonly base_offset: string;
}

/**
 * The processor's ClickHouse side: idempotent result writes, the audit trail of processed offset
 * ranges, and partition state snapshots.
 */
export class ExposureStore {
  private readonly client: ClickHouseClient;
  /**
   * Snapshots go through a connection of their own: storing one takes seconds where a partition's
   * state is large, and result writes must not wait behind it (see {@link Warehouse.writer}).
   */
  private readonly snapshots: ClickHouseClient;
  private readonly db: string;
  /** Embedded mode: where result bodies wait for `file()` to read them. */
  private readonly spool: Spool | undefined;
  private readonly snapshotThreadNice: number;

  /**
   * `snapshotThreadNice`: the nice value snapshots are stored at (default
   * {@link SNAPSHOT_THREAD_NICE}; 0 stores them like any other statement, a baseline for benchmarks).
   */
  constructor(warehouse: Warehouse, options: { readonly snapshotThreadNice?: number } = {}) {
    this.snapshotThreadNice = options.snapshotThreadNice ?? SNAPSHOT_THREAD_NICE;
    this.client = warehouse.client;
    this.snapshots = warehouse.writer('snapshots');
    this.db = warehouse.database;
    this.spool = warehouse.mode === 'embedded' ? Spool.in(join(warehouse.location, 'dwell-inserts')) : undefined;
  }

  /**
   * Writes result rows and their offset ranges. Each table's insert carries a deduplication token
   * derived from `write.token`, so retrying a write whose first attempt did land (a timeout after
   * the server stored it) stores nothing twice. Rows are complete values with a version, so even a
   * write recomputed from other batch boundaries only replaces what is there.
   */
  async writeResults(write: ResultsWrite): Promise<void> {
    const at = Date.now();
    // The two tables at once (a server parses and stores each in threads of its own; embedded,
    // one connection runs them one after the other); the audit trail only once both hold their rows.
    await Promise.all([
      this.insertEncoded(this.client, IMPRESSIONS_TABLE, write.impressions, {
        insert_deduplication_token: `${write.token}/impressions`,
      }),
      this.insertEncoded(this.client, MINUTES_TABLE, write.minutes, { insert_deduplication_token: `${write.token}/minutes` }),
    ]);
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

  /**
   * Passes encoded rows on as they are, through `client`: `rows.body`, or the parts given that
   * make it up, in order (a snapshot's text is not copied into one body with its other columns). A
   * server takes the RowBinary body over HTTP; embedded ClickHouse takes SQL text only, so there the
   * body goes through a file that `file()` reads.
   * `settings`: the insert's own, e.g. its deduplication token. Minute rows are partitioned by day,
   * and a write behind a sparse log may span more days than ClickHouse's default 100 partitions
   * per insert: no limit, a part per day.
   */
  private async insertEncoded(
    client: ClickHouseClient,
    table: ResultTable,
    rows: EncodedRows | { readonly rows: number; readonly parts: readonly Uint8Array[] },
    settings: InsertSettings,
  ): Promise<void> {
    if (rows.rows === 0) return;
    const parts = 'parts' in rows ? rows.parts : [rows.body];
    const into = `INSERT INTO ${this.db}.${table.name} (${table.columns})`;
    const all = { max_partitions_per_insert_block: 0, ...settings };
    if (this.spool === undefined) {
      const result = await client.exec({
        query: `${into} FORMAT RowBinary`,
        values: Readable.from(parts, { objectMode: false }),
        clickhouse_settings: Object.fromEntries(Object.entries(all).map(([name, value]) => [name, String(value)])),
      });
      // The answer of an insert is empty; reading it to the end frees the connection.
      for await (const chunk of result.stream) void chunk;
      return;
    }
    const file = this.spool.next();
    await writeFile(file, parts);
    try {
      // The settings in the statement itself: embedded, clickhouse_settings become a SET on the
      // connection, which another insert running at the same time would share.
      const text = Object.entries(all)
        .map(([name, value]) => `${name} = ${typeof value === 'number' ? String(value) : sqlString(value)}`)
        .join(', ');
      await client.command({
        query: `${into} SETTINGS ${text} SELECT * FROM file(${sqlString(file)}, 'RowBinary', ${table.structure})`,
      });
    } finally {
      await rm(file, { force: true });
    }
  }

  /**
   * Stores a partition's snapshot valid at `nextOffset`: a full one, or a delta on the snapshot at
   * `previousOffset` (whose chain starts at the full snapshot at `baseOffset`).
   */
  async saveSnapshot(snapshot: {
    topic: string;
    partition: number;
    nextOffset: string;
    rulesVersion: number;
    rulesFingerprint: string;
    pageViews: number;
    /** The JSON text, or its UTF-8 bytes. */
    snapshot: string | Uint8Array;
    processorId: string;
    /** Default `full`; a delta names the snapshot it follows and its chain's full one. */
    kind?: SnapshotKind;
    previousOffset?: string;
    baseOffset?: string;
  }): Promise<void> {
    const kind = snapshot.kind ?? 'full';
    const previous = kind === 'full' ? snapshot.nextOffset : snapshot.previousOffset;
    const base = kind === 'full' ? snapshot.nextOffset : snapshot.baseOffset;
    if (previous === undefined || base === undefined)
      throw new Error('a delta snapshot names the snapshot it follows (previousOffset) and its full one (baseOffset)');
    if (kind === 'delta' && !(BigInt(base) <= BigInt(previous) && BigInt(previous) < BigInt(snapshot.nextOffset)))
      throw new Error(
        `a delta at ${snapshot.nextOffset} follows an earlier snapshot (previousOffset ${previous}) on a chain that starts no later (baseOffset ${base})`,
      );
    // The row in three parts: the columns before the text, ending with its length; the text's
    // bytes as they are (hundreds of MB for a large partition: not copied); the columns after it.
    const text = typeof snapshot.snapshot === 'string' ? Buffer.from(snapshot.snapshot, 'utf8') : snapshot.snapshot;
    const head = new RowBinaryWriter(1024);
    head.string(snapshot.topic);
    head.uint32(snapshot.partition);
    head.uint64(Number(snapshot.nextOffset));
    head.uint16(snapshot.rulesVersion);
    head.string(snapshot.rulesFingerprint);
    head.uint32(snapshot.pageViews);
    head.stringLength(text.length);
    const tail = new RowBinaryWriter(1024);
    tail.string(snapshot.processorId);
    tail.int64(Date.now());
    tail.string(kind);
    tail.uint64(Number(previous));
    tail.uint64(Number(base));
    await this.insertEncoded(
      this.snapshots,
      SNAPSHOTS_TABLE,
      { rows: 1, parts: [head.finish(), text, tail.finish()] },
      // Storing a full snapshot of a large partition takes ClickHouse a second or more of CPU (its
      // compression mostly) that the result writes and the event processing need more urgently:
      // its threads run at a low priority (where ClickHouse may not change a thread's priority,
      // lacking CAP_SYS_NICE, the setting does nothing).
      { os_thread_priority: this.snapshotThreadNice },
    );
  }

  /**
   * The newest state of a partition stored at or before `atMostOffset`: a full snapshot and the
   * deltas on it up to there. A delta whose chain is broken (one before it missing, or its full
   * snapshot) is passed over for the newest one whose chain is whole.
   */
  async latestSnapshot(
    topic: string,
    partition: number,
    atMostOffset: string,
  ): Promise<StoredSnapshot | undefined> {
    const links = await (
      await this.snapshots.query({
        query: `SELECT toString(next_offset) AS at, kind, toString(previous_offset) AS previous, toString(base_offset) AS base
                FROM ${this.db}.processor_snapshots FINAL
                WHERE topic = {topic:String} AND partition = {partition:UInt32} AND next_offset <= {at:UInt64}
                ORDER BY next_offset DESC`,
        query_params: { topic, partition, at: atMostOffset },
        format: 'JSONEachRow',
      })
    ).json<{ at: string; kind: string; previous: string; base: string }>();
    const chain = newestWholeChain(
      links.map(({ at, kind, previous, base }) => ({ next_offset: at, kind, previous_offset: previous, base_offset: base })),
    );
    if (chain === undefined) return undefined;
    const texts = await this.snapshotTexts(topic, partition, chain);
    const [full, ...deltas] = chain.map((offset) => texts.get(offset));
    const newest = texts.get(chain[chain.length - 1] as string);
    if (full === undefined || newest === undefined || deltas.some((d) => d === undefined))
      throw new Error(`snapshots of ${topic}/${partition} went missing while being read; start again`);
    return {
      next_offset: chain[chain.length - 1] as string,
      rules_fingerprint: newest.fingerprint,
      snapshot: full.text,
      deltas: deltas.map((d) => (d as { text: string }).text),
    };
  }

  /** The texts of the snapshots at `offsets`, with their rules fingerprints. */
  private async snapshotTexts(
    topic: string,
    partition: number,
    offsets: readonly string[],
  ): Promise<Map<string, { fingerprint: string; text: string }>> {
    const result = await this.snapshots.exec({
      query: `SELECT s.next_offset, s.rules_fingerprint, s.snapshot
              FROM ${this.db}.processor_snapshots AS s FINAL
              WHERE s.topic = {topic:String} AND s.partition = {partition:UInt32} AND s.next_offset IN {offsets:Array(UInt64)}
              ORDER BY s.next_offset
              FORMAT RowBinary`,
      query_params: { topic, partition, offsets: offsets.map(Number) },
    });
    const chunks: Buffer[] = [];
    for await (const chunk of result.stream) chunks.push(chunk as Buffer);
    const texts = new Map<string, { fingerprint: string; text: string }>();
    for (const row of readRowBinary(Buffer.concat(chunks), STORED_SNAPSHOT_TYPES)) {
      const [offset, fingerprint, text] = row as [number, string, string];
      texts.set(offset.toString(), { fingerprint, text });
    }
    return texts;
  }

  /**
   * Keeps the newest `keep` full snapshots of a partition and the deltas on them (older ones can
   * never be needed again: a restore starts at the newest whole chain). Each chain is a
   * ClickHouse partition of its own, dropped whole.
   */
  async pruneSnapshots(topic: string, partition: number, keep: number): Promise<void> {
    const old = await (
      await this.snapshots.query({
        query: `SELECT DISTINCT toString(base_offset) AS base FROM ${this.db}.processor_snapshots
                WHERE topic = {topic:String} AND partition = {partition:UInt32} AND base_offset < (
                  SELECT min(next_offset) FROM (
                    SELECT next_offset FROM ${this.db}.processor_snapshots
                    WHERE topic = {topic:String} AND partition = {partition:UInt32} AND kind = 'full'
                    ORDER BY next_offset DESC LIMIT {keep:UInt32}))`,
        query_params: { topic, partition, keep },
        format: 'JSONEachRow',
      })
    ).json<{ base: string }>();
    for (const { base } of old) {
      if (!/^\d+$/.test(base)) throw new Error(`unexpected snapshot chain ${JSON.stringify(base)}`);
      await this.snapshots.command({
        query: `ALTER TABLE ${this.db}.processor_snapshots DROP PARTITION (${sqlString(topic)}, ${partition}, ${base})`,
      });
    }
  }
}

/**
 * The offsets of the newest whole chain among `links` (newest first): a full snapshot and the
 * deltas on it, each following the one before, in order.
 */
export function newestWholeChain(links: readonly SnapshotLink[]): string[] | undefined {
  const at = new Map(links.map((link) => [link.next_offset, link]));
  for (const newest of links) {
    const chain: string[] = [];
    let link: SnapshotLink | undefined = newest;
    while (link !== undefined && link.kind === 'delta' && link.base_offset === newest.base_offset) {
      chain.push(link.next_offset);
      // Offsets only go back along a chain, so this ends.
      link = BigInt(link.previous_offset) < BigInt(link.next_offset) ? at.get(link.previous_offset) : undefined;
    }
    if (link?.kind === 'full' && link.next_offset === newest.base_offset) {
      chain.push(link.next_offset);
      return chain.reverse();
    }
  }
  return undefined;
}

/**
 * Names the files result bodies pass through in embedded mode, one folder per data folder shared by
 * every store of the process. The folder is emptied when the process first uses it: files a
 * crashed process left behind were never acknowledged, and their rows are computed again from the
 * log.
 */
class Spool {
  private static readonly folders = new Map<string, Spool>();
  private readonly folder: string;
  private count = 0;

  private constructor(folder: string) {
    this.folder = folder;
    rmSync(folder, { recursive: true, force: true });
    mkdirSync(folder, { recursive: true });
  }

  static in(folder: string): Spool {
    let spool = Spool.folders.get(folder);
    if (spool === undefined) {
      spool = new Spool(folder);
      Spool.folders.set(folder, spool);
    }
    return spool;
  }

  next(): string {
    return join(this.folder, `${process.pid}-${++this.count}.rowbinary`);
  }
}
