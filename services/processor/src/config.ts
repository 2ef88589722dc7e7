import { hostname } from 'node:os';
import { env, parseConfig, type ConfigOf, LOG_LEVELS } from '@dwell/runtime';

/** Every setting the processor reads from the environment, with its default. */
export const PROCESSOR_SETTINGS = {
  KAFKA_BROKERS: env.list('Kafka bootstrap servers, host:port,… (unset under `dwell up`: the local broker).', undefined),
  DWELL_EVENTS_TOPIC: env.string('Topic of accepted events (the ledger).', 'dwell.events.v1'),
  DWELL_REJECTED_TOPIC: env.string('Topic of rejected input (dead letters), e.g. late events.', 'dwell.rejected.v1'),
  PROCESSOR_GROUP_ID: env.string('Kafka consumer group of the processors.', 'dwell-processor'),
  PROCESSOR_ID: env.string('This processor instance in logs.', `${hostname()}-${process.pid}`, '<hostname>-<pid>'),
  PROCESSOR_HTTP_HOST: env.string('Address of the billing API, health and metrics.', '127.0.0.1'),
  PROCESSOR_HTTP_PORT: env.int('Port of the billing API, health and metrics.', 8081, { min: 0, max: 65535 }),
  PROCESSOR_FLUSH_INTERVAL_MS: env.int('How often results are written to ClickHouse while the processor is caught up with the log, ms (freshness).', 500, { min: 10 }),
  PROCESSOR_MAX_FLUSH_INTERVAL_MS: env.int(
    'Longest interval between result writes while the processor is behind the log, ms: behind by L of more than ten PROCESSOR_FLUSH_INTERVAL_MS, it writes every L/2 up to this, so each write gathers more events per row and the backlog drains faster. Set it to PROCESSOR_FLUSH_INTERVAL_MS to always write at that interval.',
    10_000,
    { min: 10 },
  ),
  PROCESSOR_IMPRESSION_INTERVAL_MS: env.int(
    'How often the impression rows of open page views are written, ms. Every write carries the minute rows, which hold billed time; nearly every event changes its page view\'s impression rows too (last seen, milliseconds in view), and writing them at every write costs ClickHouse about twice the rows. So between these turns the impression rows (counts, viewability, time-in-view buckets) are held back and trail billed time by up to this much while a page view is open; a closed page view\'s rows are always written whole. At most PROCESSOR_FLUSH_INTERVAL_MS: every write carries both.',
    2000,
    { min: 0 },
  ),
  PROCESSOR_SNAPSHOT_INTERVAL_MS: env.int(
    'How often each partition\'s state is snapshotted and its offset committed, ms: at most this much of the log is processed again after a crash.',
    30_000,
    { min: 100 },
  ),
  PROCESSOR_SNAPSHOT_MAX_PERCENT: env.int(
    'Most of the time partition snapshots may take, percent. A full snapshot stores the whole state of its partition (under steady traffic about eleven minutes of its events), a delta what changed since the snapshot before it; a partition whose last snapshot took T ms is snapshotted again no sooner than T × partitions × 100 / this ms, when that is longer than PROCESSOR_SNAPSHOT_INTERVAL_MS; after a crash that much of the log is processed again.',
    10,
    { min: 1, max: 100 },
  ),
  PROCESSOR_SNAPSHOT_DELTA_PERCENT: env.int(
    'How large the deltas on a full snapshot may grow, percent of it, before a partition\'s next snapshot is full again. A full snapshot stores the partition\'s whole state; a delta only what changed since the snapshot before it. A restore reads the full snapshot and every delta on it, so this bounds it to (100 + this) percent of a full one. 0: every snapshot is full.',
    200,
    { min: 0 },
  ),
  PROCESSOR_WORKER_THREAD: env.boolean(
    'Read records and compute exposure in a worker thread, beside the thread that consumes Kafka and writes ClickHouse (false: one thread does all).',
    true,
  ),
  PROCESSOR_WORKER_THREADS: env.int(
    'How many worker threads compute exposure when PROCESSOR_WORKER_THREAD is on; the partitions a processor owns are spread over them (partition p on thread p mod n). 0: one per core, at most 8.',
    0,
    { min: 0, max: 64 },
  ),
  PROCESSOR_SESSION_TIMEOUT_MS: env.int(
    'Kafka consumer session timeout, ms: how long a dead processor holds its partitions.',
    30_000,
    { min: 6_000 },
  ),
  CLICKHOUSE_URL: env.optionalString('ClickHouse server HTTP URL. Unset: embedded ClickHouse (chDB) in the processor.'),
  CLICKHOUSE_USER: env.string('ClickHouse user (server mode).', 'default'),
  CLICKHOUSE_PASSWORD: env.string('ClickHouse password (server mode).', ''),
  CLICKHOUSE_DATABASE: env.string('Database of dwell tables.', 'dwell'),
  CLICKHOUSE_DATA_DIR: env.string('Embedded mode: chDB data folder (one process owns it).', '.data/clickhouse'),
  LOG_LEVEL: env.oneOf('debug, info, warn, error or silent.', LOG_LEVELS, 'info'),
} as const;

export type ProcessorConfig = ConfigOf<typeof PROCESSOR_SETTINGS>;

export function processorConfigFromEnv(source: Readonly<Record<string, string | undefined>>): ProcessorConfig {
  return parseConfig(PROCESSOR_SETTINGS, source);
}
