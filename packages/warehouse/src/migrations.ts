import { createHash, randomBytes } from 'node:crypto';
import { errorMessage } from '@dwell/runtime';
import type { Warehouse } from './client.js';

/**
 * Versioned schema changes. A migration is never edited once released: add a new one instead.
 * Statements use `{db}` for the database; each must be idempotent on its own (IF NOT EXISTS), so
 * two processes migrating at once, or a crash between a statement and its record, is harmless.
 */
export interface Migration {
  readonly version: number;
  readonly name: string;
  readonly statements: readonly string[];
  /** A table rebuilt with a definition ALTER cannot reach (a new partition key), after the statements. */
  readonly rebuild?: TableRebuild;
}

/**
 * A table copied into a new definition and swapped in by name (EXCHANGE TABLES, atomic): readers
 * and writers see the old table until the copy is complete, the new one after. A crash anywhere
 * leaves the old table in place and a copy that the next run drops; a finished rebuild is
 * recognised by its partition key, so running it again does nothing. Writes that land in the old
 * table while it is copied are not carried over: stop whatever writes the table first
 * (docs/deployment.md, "Upgrades").
 */
export interface TableRebuild {
  readonly table: string;
  /** The new definition: `CREATE TABLE {db}.{table} (…) …`. */
  readonly create: string;
  /** `system.tables.partition_key` of the new definition. */
  readonly partitionKey: string;
}

/**
 * The columns of exposure_minutes, as migration 2 created them and migration 5 rebuilt them: both
 * statements are frozen text (their checksums are recorded), so this text never changes either.
 */
const EXPOSURE_MINUTES_COLUMNS = `      (
          site_id LowCardinality(String),
          page_view_id String,
          impression_id String,
          minute DateTime('UTC'),
          user_id String,
          ad_id String,
          campaign_id String,
          viewable_ms UInt32,
          rules_version UInt16,
          version UInt64
      )
`;

/** The dimensions of the billing views (migration 6), each with its key over a time column. */
const BILLING_VIEW_DIMENSIONS: ReadonlyArray<readonly [string, (time: string) => string]> = [
  ['ad', () => 'ad_id'],
  ['campaign', () => 'campaign_id'],
  ['site', () => "CAST(site_id, 'String')"],
  ['user', () => 'user_id'],
  ['day', (time) => `formatDateTime(toStartOfDay(${time}), '%Y-%m-%dT00:00:00Z')`],
  ['hour', (time) => `formatDateTime(toStartOfHour(${time}), '%Y-%m-%dT%H:00:00Z')`],
];

/**
 * `billing_by_<dimension>(from, to, ad, campaign, site, user)`: the billing report as a
 * parameterized view for SQL (docs/billing.md), the figures `dwell billing` gives (a test holds
 * them equal): billed time from the minute rows of [from, to), counts and time in view from the
 * impressions that started in it, both read with FINAL, so right before merges. An empty ad /
 * campaign / site / user means any. One view per dimension, its key a plain expression: a key
 * chosen by a parameter (multiIf, or a chain of if) cost up to 1.4 times the report. The inner
 * counts are named apart from the columns they count (n_…): an alias would shadow its column.
 * `withoutRetractions` (migration 7 on): zeroed rows that overwrite an impression or a minute
 * which no longer holds are left out, as `dwell billing` leaves them out; migration 6's text is
 * the same without it.
 */
function billingViewStatement([dimension, key]: readonly [string, (time: string) => string], withoutRetractions = false): string {
  const filters = (time: string): string => `${time} >= {from:DateTime64(3, 'UTC')} AND ${time} < {to:DateTime64(3, 'UTC')}
                AND ({ad:String} = '' OR ad_id = {ad:String}) AND ({campaign:String} = '' OR campaign_id = {campaign:String})
                AND ({site:String} = '' OR site_id = {site:String}) AND ({user:String} = '' OR user_id = {user:String})`;
  const minute = 'toDateTime64(minute, 3)';
  return `CREATE OR REPLACE VIEW {db}.billing_by_${dimension} AS
      SELECT key,
             sum(billable_ms) AS billable_ms,
             sum(impressions) AS impressions,
             sum(n_flagged) AS flagged_impressions,
             sum(n_measurable) AS measurable_impressions,
             sum(n_viewable) AS viewable_impressions,
             if(measurable_impressions = 0, NULL, viewable_impressions / measurable_impressions) AS viewability_rate,
             if(viewable_impressions = 0, NULL, sum(billed_ms) / viewable_impressions) AS avg_time_in_view_ms,
             sum(lt_1s) AS tiv_lt_1s, sum(b_1_2s) AS tiv_1_2s, sum(b_2_5s) AS tiv_2_5s, sum(b_5_10s) AS tiv_5_10s,
             sum(b_10_15s) AS tiv_10_15s, sum(b_15_30s) AS tiv_15_30s, sum(b_30_60s) AS tiv_30_60s, sum(ge_60s) AS tiv_ge_60s,
             sum(measurable_incl_flagged) AS measurable_impressions_incl_flagged,
             sum(viewable_incl_flagged) AS viewable_impressions_incl_flagged,
             sum(viewable_ms_incl_flagged) AS viewable_ms_incl_flagged
      FROM
      (
          SELECT ${key(minute)} AS key,
                 sum(viewable_ms) AS billable_ms,
                 0 AS impressions, 0 AS n_flagged, 0 AS n_measurable, 0 AS n_viewable, 0 AS billed_ms,
                 0 AS lt_1s, 0 AS b_1_2s, 0 AS b_2_5s, 0 AS b_5_10s, 0 AS b_10_15s, 0 AS b_15_30s, 0 AS b_30_60s, 0 AS ge_60s,
                 0 AS measurable_incl_flagged, 0 AS viewable_incl_flagged, 0 AS viewable_ms_incl_flagged
          FROM {db}.exposure_minutes FINAL
          WHERE ${filters(minute)}${withoutRetractions ? ' AND viewable_ms > 0' : ''}
          GROUP BY key
          UNION ALL
          SELECT ${key('first_server_ms')} AS key,
                 0 AS billable_ms,
                 count() AS impressions,
                 countIf(notEmpty(flags)) AS n_flagged,
                 countIf(measurable AND empty(flags)) AS n_measurable,
                 countIf(billable) AS n_viewable,
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
          FROM {db}.impressions FINAL
          WHERE ${filters('first_server_ms')}${withoutRetractions ? ' AND NOT retracted' : ''}
          GROUP BY key
      )
      GROUP BY key`;
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'page_events',
    statements: [
      // Every accepted event as the processor read it from the log, with its log position: the
      // operator's view of raw traffic. The ledger itself stays the Kafka topic.
      `CREATE TABLE IF NOT EXISTS {db}.page_events
      (
          page_view_id String,
          seq UInt64,
          kind LowCardinality(String),
          site_id LowCardinality(String),
          user_id String,
          recv_ms DateTime64(3, 'UTC'),
          t_mono_ms Int64,
          t_wall_ms Int64,
          gateway_id LowCardinality(String),
          transport LowCardinality(String),
          impressions UInt16,
          topic LowCardinality(String),
          partition UInt32,
          offset UInt64
      )
      ENGINE = ReplacingMergeTree
      PARTITION BY toYYYYMM(recv_ms)
      ORDER BY (site_id, page_view_id, seq)
      SETTINGS non_replicated_deduplication_window = 10000`,
    ],
  },
  {
    version: 2,
    name: 'exposure',
    statements: [
      // One row per impression: its complete current result, replaced by later versions (the
      // log offset the processor had reached when it computed the row). Never deltas.
      `CREATE TABLE IF NOT EXISTS {db}.impressions
      (
          site_id LowCardinality(String),
          page_view_id String,
          impression_id String,
          user_id String,
          ad_id String,
          campaign_id String,
          media LowCardinality(String),
          width UInt32,
          height UInt32,
          measurable UInt8,
          viewable UInt8,
          billable UInt8,
          viewable_ms UInt64,
          credited_ms UInt64,
          longest_run_ms UInt64,
          flags Array(LowCardinality(String)),
          first_server_ms DateTime64(3, 'UTC'),
          last_server_ms DateTime64(3, 'UTC'),
          final UInt8,
          rules_version UInt16,
          version UInt64
      )
      ENGINE = ReplacingMergeTree(version)
      ORDER BY (site_id, page_view_id, impression_id)
      SETTINGS non_replicated_deduplication_window = 10000`,
      // Billed milliseconds per impression per wall-clock minute. A minute that stops billing gets
      // a row with viewable_ms = 0 and a higher version (a retraction), never a delete.
      `CREATE TABLE IF NOT EXISTS {db}.exposure_minutes
${EXPOSURE_MINUTES_COLUMNS}      ENGINE = ReplacingMergeTree(version)
      PARTITION BY toYYYYMM(minute)
      ORDER BY (site_id, page_view_id, impression_id, minute)
      SETTINGS non_replicated_deduplication_window = 10000`,
      // The audit trail: which offsets of which partition produced which writes.
      `CREATE TABLE IF NOT EXISTS {db}.processed_ranges
      (
          topic LowCardinality(String),
          partition UInt32,
          first_offset UInt64,
          last_offset UInt64,
          events UInt32,
          rejected UInt32,
          impression_rows UInt32,
          minute_rows UInt32,
          rules_version UInt16,
          processor_id String,
          processed_at DateTime64(3, 'UTC')
      )
      ENGINE = ReplacingMergeTree
      ORDER BY (topic, partition, first_offset, last_offset)
      SETTINGS non_replicated_deduplication_window = 10000`,
      // Raw events are kept in Kafka, the ledger; the early landing table of version 1 goes.
      `DROP TABLE IF EXISTS {db}.page_events`,
      // Partition state snapshots, each valid exactly at next_offset: where a restarted or newly
      // assigned processor resumes.
      `CREATE TABLE IF NOT EXISTS {db}.processor_snapshots
      (
          topic LowCardinality(String),
          partition UInt32,
          next_offset UInt64,
          rules_version UInt16,
          rules_fingerprint String,
          page_views UInt32,
          snapshot String CODEC(ZSTD(3)),
          processor_id String,
          created_at DateTime64(3, 'UTC')
      )
      ENGINE = ReplacingMergeTree
      ORDER BY (topic, partition, next_offset)`,
    ],
  },
  {
    version: 3,
    name: 'audit_shadow',
    statements: [
      // `dwell replay --into shadow`: what a replay recomputed from the log, beside the billed rows,
      // so an auditor can compare in SQL. One replay's rows share its replay_id; plain MergeTree,
      // nothing is ever replaced (drop a replay with ALTER TABLE … DELETE WHERE replay_id = …).
      `CREATE TABLE IF NOT EXISTS {db}.shadow_impressions
      (
          replay_id String,
          site_id LowCardinality(String),
          page_view_id String,
          impression_id String,
          user_id String,
          ad_id String,
          campaign_id String,
          media LowCardinality(String),
          width UInt32,
          height UInt32,
          measurable UInt8,
          viewable UInt8,
          billable UInt8,
          viewable_ms UInt64,
          credited_ms UInt64,
          longest_run_ms UInt64,
          flags Array(LowCardinality(String)),
          first_server_ms DateTime64(3, 'UTC'),
          last_server_ms DateTime64(3, 'UTC'),
          final UInt8,
          rules_version UInt16,
          partition UInt32,
          replayed_at DateTime64(3, 'UTC')
      )
      ENGINE = MergeTree
      ORDER BY (replay_id, site_id, page_view_id, impression_id)`,
      `CREATE TABLE IF NOT EXISTS {db}.shadow_exposure_minutes
      (
          replay_id String,
          site_id LowCardinality(String),
          page_view_id String,
          impression_id String,
          minute DateTime('UTC'),
          user_id String,
          ad_id String,
          campaign_id String,
          viewable_ms UInt32,
          rules_version UInt16,
          replayed_at DateTime64(3, 'UTC')
      )
      ENGINE = MergeTree
      ORDER BY (replay_id, site_id, page_view_id, impression_id, minute)`,
      // One row per replay written to the shadow tables: its range, verdict and full manifest.
      `CREATE TABLE IF NOT EXISTS {db}.replay_runs
      (
          replay_id String,
          started_at DateTime64(3, 'UTC'),
          finished_at DateTime64(3, 'UTC'),
          from_ms DateTime64(3, 'UTC'),
          to_ms DateTime64(3, 'UTC'),
          scope String,
          verdict LowCardinality(String),
          differences UInt64,
          impressions_checksum String,
          ad_day_checksum String,
          manifest String CODEC(ZSTD(3))
      )
      ENGINE = MergeTree
      ORDER BY (replay_id)`,
    ],
  },
  {
    version: 4,
    name: 'snapshot_codec',
    statements: [
      // Under steady traffic a partition snapshot is hundreds of MB, stored every few minutes:
      // ZSTD level 1 compresses its JSON twice as fast as level 3, and smaller (26 against 30 MB
      // for a 123 MB snapshot). New parts take it; merges rewrite the old ones.
      `ALTER TABLE {db}.processor_snapshots MODIFY COLUMN snapshot String CODEC(ZSTD(1))`,
    ],
  },
  {
    version: 5,
    name: 'minutes_by_day',
    statements: [],
    // exposure_minutes partitioned by day instead of month: billing reads it with FINAL, which
    // merges every row of the partitions the period touches, so a one-day report read the whole
    // month (657 against 30 ms over 10M rows; BENCHMARKS.md "Billing over a short period"). The
    // partition is a function of the sorting key's `minute`, so every version of a row still
    // lands in the same partition and FINAL still collapses it.
    rebuild: {
      table: 'exposure_minutes',
      partitionKey: 'toYYYYMMDD(minute)',
      create: `CREATE TABLE {db}.{table}
${EXPOSURE_MINUTES_COLUMNS}      ENGINE = ReplacingMergeTree(version)
      PARTITION BY toYYYYMMDD(minute)
      ORDER BY (site_id, page_view_id, impression_id, minute)
      SETTINGS non_replicated_deduplication_window = 10000`,
    },
  },
  {
    version: 6,
    name: 'billing_views',
    // Never edit these statements (nor billingViewStatement above) once released: add a migration.
    statements: BILLING_VIEW_DIMENSIONS.map((dimension) => billingViewStatement(dimension)),
  },
  {
    version: 7,
    name: 'impression_retractions',
    statements: [
      // A zeroed impression row that overwrites one the page view no longer has (a conflicting
      // copy of an event became the kept one; see PageViewReport) is marked, and reports leave it
      // out: whether such a row exists depends on when the processor happened to write, not on the
      // log, and it is no impression. Rows written before this migration read 0.
      `ALTER TABLE {db}.impressions ADD COLUMN IF NOT EXISTS retracted UInt8 DEFAULT 0`,
      ...BILLING_VIEW_DIMENSIONS.map((dimension) => billingViewStatement(dimension, true)),
    ],
  },
  {
    version: 8,
    name: 'snapshot_chains',
    statements: [
      // A snapshot is a full one or a delta: what changed since the snapshot at previous_offset,
      // on the chain of deltas that starts at the full snapshot at base_offset. Rows written before
      // this migration are full ones (both offsets their own).
      `ALTER TABLE {db}.processor_snapshots ADD COLUMN IF NOT EXISTS kind LowCardinality(String) DEFAULT 'full'`,
      `ALTER TABLE {db}.processor_snapshots ADD COLUMN IF NOT EXISTS previous_offset UInt64 DEFAULT next_offset`,
      `ALTER TABLE {db}.processor_snapshots ADD COLUMN IF NOT EXISTS base_offset UInt64 DEFAULT next_offset`,
    ],
  },
  {
    version: 9,
    name: 'snapshot_chain_partitions',
    statements: [],
    // One ClickHouse partition per chain of snapshots, and no merges: background merges rewrote
    // every stored snapshot's text again and again (hundreds of MB of a partition under steady
    // traffic), and pruning a chain with DELETE rewrote the parts it was merged into (2 s of CPU
    // for five chains of 25 MB snapshots). Now a chain is dropped whole, at once, and a part is
    // never rewritten; FINAL still picks one row where a snapshot was stored twice.
    rebuild: {
      table: 'processor_snapshots',
      partitionKey: '(topic, partition, base_offset)',
      create: `CREATE TABLE {db}.{table}
      (
          topic LowCardinality(String),
          partition UInt32,
          next_offset UInt64,
          rules_version UInt16,
          rules_fingerprint String,
          page_views UInt32,
          snapshot String CODEC(ZSTD(1)),
          processor_id String,
          created_at DateTime64(3, 'UTC'),
          kind LowCardinality(String) DEFAULT 'full',
          previous_offset UInt64 DEFAULT next_offset,
          base_offset UInt64 DEFAULT next_offset
      )
      ENGINE = ReplacingMergeTree
      PARTITION BY (topic, partition, base_offset)
      ORDER BY (topic, partition, next_offset)
      SETTINGS max_bytes_to_merge_at_max_space_in_pool = 1`,
    },
  },
];

export interface MigrationReport {
  readonly applied: readonly number[];
  readonly alreadyApplied: readonly number[];
}

export class MigrationError extends Error {
  override readonly name = 'MigrationError';
}

/** What `schema_migrations` records of a migration: a released migration must keep it forever. */
export function migrationChecksum(migration: Migration): string {
  const hash = createHash('sha256').update(migration.statements.join('\n;\n'));
  const rebuild = migration.rebuild;
  if (rebuild !== undefined) hash.update(`\n;\nrebuild ${rebuild.table} ${rebuild.partitionKey}\n${rebuild.create}`);
  return hash.digest('hex').slice(0, 16);
}

/** Applies the migrations not yet recorded in `{db}.schema_migrations`, in version order. */
export async function migrate(
  warehouse: Warehouse,
  migrations: readonly Migration[] = MIGRATIONS,
  onProgress: (message: string) => void = () => {},
): Promise<MigrationReport> {
  const db = warehouse.database;
  const { client } = warehouse;
  await client.command({
    query: `CREATE TABLE IF NOT EXISTS ${db}.schema_migrations
      (version UInt32, name String, checksum String, applied_at DateTime64(3, 'UTC'))
      ENGINE = ReplacingMergeTree ORDER BY version`,
  });
  const result = await client.query({
    query: `SELECT version, checksum FROM ${db}.schema_migrations FINAL`,
    format: 'JSONEachRow',
  });
  const recorded = new Map((await result.json<{ version: number; checksum: string }>()).map((r) => [Number(r.version), r.checksum]));

  const applied: number[] = [];
  const alreadyApplied: number[] = [];
  for (const migration of [...migrations].sort((a, b) => a.version - b.version)) {
    const sum = migrationChecksum(migration);
    const previous = recorded.get(migration.version);
    if (previous !== undefined) {
      if (previous !== sum) {
        throw new MigrationError(
          `migration ${migration.version} (${migration.name}) changed after it was applied (checksum ${previous} → ${sum}); add a new migration instead`,
        );
      }
      alreadyApplied.push(migration.version);
      continue;
    }
    for (const statement of migration.statements) {
      await client.command({ query: statement.replaceAll('{db}', db) });
    }
    if (migration.rebuild !== undefined) await rebuildTable(warehouse, migration.rebuild, onProgress);
    await client.insert({
      table: `${db}.schema_migrations`,
      values: [{ version: migration.version, name: migration.name, checksum: sum, applied_at: Date.now() }],
      format: 'JSONEachRow',
    });
    applied.push(migration.version);
  }
  return { applied, alreadyApplied };
}

const REBUILD_SUFFIX = '_rebuild_';

/** See {@link TableRebuild}. */
async function rebuildTable(warehouse: Warehouse, rebuild: TableRebuild, onProgress: (message: string) => void): Promise<void> {
  const { client, database: db } = warehouse;
  const partitionKey = async (): Promise<string | undefined> => {
    const result = await client.query({
      query: `SELECT partition_key FROM system.tables WHERE database = {db:String} AND name = {table:String}`,
      query_params: { db, table: rebuild.table },
      format: 'JSONEachRow',
    });
    return (await result.json<{ partition_key: string }>())[0]?.partition_key;
  };
  const current = await partitionKey();
  if (current === undefined) throw new MigrationError(`cannot rebuild ${db}.${rebuild.table}: the table does not exist`);
  if (current !== rebuild.partitionKey) {
    const copy = `${rebuild.table}${REBUILD_SUFFIX}${randomBytes(4).toString('hex')}`;
    const rows = await client.query({ query: `SELECT count() AS n FROM ${db}.${rebuild.table}`, format: 'JSONEachRow' });
    const count = Number((await rows.json<{ n: string }>())[0]?.n ?? 0);
    // A new install rebuilds an empty table: nothing worth a line.
    const report = count > 0 ? onProgress : () => {};
    report(`rebuilding ${db}.${rebuild.table} (${count.toLocaleString('en-US')} rows) partitioned by ${rebuild.partitionKey}`);
    const started = Date.now();
    await client.command({ query: rebuild.create.replaceAll('{db}', db).replaceAll('{table}', copy) });
    // Every row as it is, superseded versions included (nothing collapsed on insert, no block
    // dropped as a duplicate of another); a block may span any number of the new partitions.
    await client.command({
      query: `INSERT INTO ${db}.${copy} SELECT * FROM ${db}.${rebuild.table}
              SETTINGS insert_deduplicate = 0, optimize_on_insert = 0, max_partitions_per_insert_block = 0`,
    });
    // Another process may have finished the same rebuild meanwhile: then its table stays.
    if ((await partitionKey()) !== rebuild.partitionKey) {
      try {
        await client.command({ query: `EXCHANGE TABLES ${db}.${rebuild.table} AND ${db}.${copy}` });
      } catch (error) {
        await client.command({ query: `DROP TABLE IF EXISTS ${db}.${copy} SYNC` }).catch(() => undefined);
        if (/only in Atomic databases/i.test(errorMessage(error)))
          throw new MigrationError(
            `cannot rebuild ${db}.${rebuild.table}: ClickHouse swaps tables only in Atomic databases, and ${db} is not one. ` +
              `Convert it (ClickHouse's convert_ordinary_to_atomic flag) or create ${db} anew with ENGINE = Atomic, the default since ClickHouse 20.10, then start the processor again`,
            { cause: error },
          );
        throw error;
      }
    }
    report(`rebuilt ${db}.${rebuild.table} in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  }
  // The old table, and copies left by a crash or by a process that lost the race.
  const leftovers = await client.query({
    query: `SELECT name FROM system.tables WHERE database = {db:String} AND startsWith(name, {prefix:String})`,
    query_params: { db, prefix: `${rebuild.table}${REBUILD_SUFFIX}` },
    format: 'JSONEachRow',
  });
  for (const { name } of await leftovers.json<{ name: string }>()) {
    await client.command({ query: `DROP TABLE IF EXISTS ${db}.${name} SYNC` });
  }
}
