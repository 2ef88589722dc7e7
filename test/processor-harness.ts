/** A processor under test with its own topics, consumer group, database and data folder. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inject } from 'vitest';
import { createKafka, createProducer, ensureTopics, type Kafka } from '../packages/kafka/src/index.js';
import { encodePageEvent, type PageEvent } from '../packages/protocol/src/index.js';
import { createLogger } from '../packages/runtime/src/index.js';
import { processorConfigFromEnv, startProcessor, type Processor } from '../services/processor/src/index.js';
import { dropTestDatabase, testBrokers, uniqueName } from './support.js';

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

export function startTestProcessor(env: Record<string, string>): Promise<Processor> {
  return startProcessor(processorConfigFromEnv(env), createLogger({ level: 'warn' }));
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
