import { createHash } from 'node:crypto';
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
      (
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
      ENGINE = ReplacingMergeTree(version)
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
];

export interface MigrationReport {
  readonly applied: readonly number[];
  readonly alreadyApplied: readonly number[];
}

export class MigrationError extends Error {
  override readonly name = 'MigrationError';
}

function checksum(migration: Migration): string {
  return createHash('sha256').update(migration.statements.join('\n;\n')).digest('hex').slice(0, 16);
}

/** Applies the migrations not yet recorded in `{db}.schema_migrations`, in version order. */
export async function migrate(
  warehouse: Warehouse,
  migrations: readonly Migration[] = MIGRATIONS,
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
    const sum = checksum(migration);
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
    await client.insert({
      table: `${db}.schema_migrations`,
      values: [{ version: migration.version, name: migration.name, checksum: sum, applied_at: Date.now() }],
      format: 'JSONEachRow',
    });
    applied.push(migration.version);
  }
  return { applied, alreadyApplied };
}
