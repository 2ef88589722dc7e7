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
