/** A processor under test with its own topics, consumer group, database and data folder. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inject } from 'vitest';
import { createKafka, createProducer, ensureTopics, type Kafka } from '../packages/kafka/src/index.js';
import { encodePageEvent, type PageEvent } from '../packages/protocol/src/index.js';
import { createLogger } from '../packages/runtime/src/index.js';
import { processorConfigFromEnv, startProcessor, type Processor, type ProcessorHooks } from '../services/processor/src/index.js';
import { dropTestDatabase, eventually, testBrokers, uniqueName } from './support.js';

export interface ProcessorEnv {
  readonly env: Record<string, string>;
  readonly topic: string;
  readonly database: string;
  readonly dataDir: string;
  readonly kafka: Kafka;
  cleanup(): Promise<void>;
}

/** Environment for a processor (in-process or a child `dwell processor`), with fresh names. */
export async function processorEnv(partitions = 4, extra: Record<string, string> = {}): Promise<ProcessorEnv> {
  const topic = uniqueName('events');
  const database = uniqueName('db');
  const dataDir = mkdtempSync(join(tmpdir(), 'dwell-proc-'));
  const kafka = createKafka({ brokers: testBrokers(), clientId: uniqueName('test') });
  await ensureTopics(kafka, [{ topic, numPartitions: partitions }]);
  const env = {
    KAFKA_BROKERS: testBrokers().join(','),
    DWELL_EVENTS_TOPIC: topic,
    DWELL_REJECTED_TOPIC: uniqueName('rejected'),
    PROCESSOR_GROUP_ID: uniqueName('group'),
    PROCESSOR_HTTP_PORT: '0',
    CLICKHOUSE_URL: inject('clickhouseUrl'),
    CLICKHOUSE_USER: inject('clickhouseUser'),
    CLICKHOUSE_PASSWORD: inject('clickhousePassword'),
    CLICKHOUSE_DATABASE: database,
    CLICKHOUSE_DATA_DIR: dataDir,
    PROCESSOR_FLUSH_INTERVAL_MS: '100',
    LOG_LEVEL: 'warn',
    ...extra,
  };
  return {
    env,
    topic,
    database,
    dataDir,
    kafka,
    cleanup: async () => {
      await dropTestDatabase(database);
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

export function startTestProcessor(env: Record<string, string>, hooks: ProcessorHooks = {}): Promise<Processor> {
  return startProcessor(processorConfigFromEnv(env), createLogger({ level: env['LOG_LEVEL'] === 'silent' ? 'silent' : 'warn' }), hooks);
}

export type Rows = Array<Record<string, unknown>>;

/** Per-impression and per-minute results, normalised for comparison between runs. */
export async function resultsOf(query: (sql: string) => Promise<Rows>, db: string): Promise<{ impressions: string[]; minutes: string[] }> {
  const normalise = (rows: Rows): string[] => rows.map((r) => JSON.stringify(Object.values(r).map((v) => (typeof v === 'number' ? String(v) : v))));
  const impressions = await query(
    `SELECT page_view_id, impression_id, ad_id, user_id, measurable, viewable, billable, viewable_ms, credited_ms, flags
     FROM ${db}.impressions FINAL ORDER BY page_view_id, impression_id`,
  );
  const minutes = await query(
    `SELECT page_view_id, impression_id, toUnixTimestamp(minute) AS minute, viewable_ms
     FROM ${db}.exposure_minutes FINAL WHERE viewable_ms > 0 ORDER BY page_view_id, impression_id, minute`,
  );
  return { impressions: normalise(impressions), minutes: normalise(minutes) };
}

/**
 * Waits until the audit trail of `db` covers every offset of the topic and the processors at
 * `processorUrls` hold no impression rows back (their `dwell_processor_impressions_held`): then
 * every row of every event is written.
 */
export async function caughtUp(
  query: (sql: string) => Promise<Rows>,
  db: string,
  end: Map<number, bigint>,
  processorUrls: string | readonly string[],
  timeoutMs = 180_000,
): Promise<void> {
  await auditCovers(query, db, end, timeoutMs);
  const urls = typeof processorUrls === 'string' ? [processorUrls] : processorUrls;
  await eventually(
    `the processors writing ${db} to hold no impression rows back`,
    async () => ((await Promise.all(urls.map(impressionsHeld))).every((held) => held === 0) ? true : undefined),
    timeoutMs,
    100,
  );
}

/** Waits until the audit trail of `db` covers every offset of the topic: the minute rows of every record are written. */
export async function auditCovers(query: (sql: string) => Promise<Rows>, db: string, end: Map<number, bigint>, timeoutMs = 180_000): Promise<void> {
  await eventually(
    `${db} to process every offset`,
    async () => {
      const rows = await query(`SELECT partition, max(last_offset) AS last FROM ${db}.processed_ranges GROUP BY partition`);
      const last = new Map(rows.map((r) => [Number(r['partition']), BigInt(String(r['last']))]));
      return [...end].every(([partition, high]) => high === 0n || last.get(partition) === high - 1n) ? true : undefined;
    },
    timeoutMs,
    250,
  );
}

/** The processor's `dwell_processor_impressions_held`, summed over its partitions. */
export async function impressionsHeld(processorUrl: string): Promise<number> {
  const text = await (await fetch(`${processorUrl}/metrics`)).text();
  let held = 0;
  for (const line of text.split('\n')) {
    const match = /^dwell_processor_impressions_held(?:\{[^}]*\})? (\S+)$/.exec(line);
    if (match !== null) held += Number(match[1]);
  }
  return held;
}

/** Queries through a processor's own ClickHouse client. */
export function sqlOf(processor: Processor): (sql: string) => Promise<Rows> {
  return async (sql) => (await (await processor.warehouse.client.query({ query: sql, format: 'JSONEachRow' })).json<Record<string, unknown>>());
}

/** Produces stored events keyed by page view, in the given order, acks=all. */
export async function produceEvents(kafka: Kafka, topic: string, events: readonly PageEvent[]): Promise<void> {
  const producer = createProducer(kafka);
  await producer.connect();
  try {
    for (let i = 0; i < events.length; i += 2000) {
      await producer.send({
        topic,
        acks: -1,
        messages: events.slice(i, i + 2000).map((e) => ({ key: e.event.page_view_id, value: encodePageEvent(e) })),
      });
    }
  } finally {
    await producer.disconnect();
  }
}

/** The topic's end offsets, summed: how many records the processor must have applied. */
export async function topicEnd(kafka: Kafka, topic: string): Promise<Map<number, bigint>> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    return new Map((await admin.fetchTopicOffsets(topic)).map((o) => [o.partition, BigInt(o.high)]));
  } finally {
    await admin.disconnect();
  }
}
