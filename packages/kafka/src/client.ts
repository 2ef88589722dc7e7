import { Kafka, Partitioners, logLevel, type ITopicConfig, type LogEntry, type Producer, type ProducerConfig, type logCreator } from 'kafkajs';
import type { Logger } from '@dwell/runtime';

/** How to reach a Kafka cluster. Built from `KAFKA_BROKERS` by the services' config. */
export interface KafkaConnection {
  /** `host:port` seeds. */
  readonly brokers: readonly string[];
  /** Identifies this process in broker logs and quotas. */
  readonly clientId: string;
  /** Where KafkaJS's own log lines go (warn and above). Default: dropped. */
  readonly logger?: Logger;
  /** Socket connect timeout, ms. Default 3000. */
  readonly connectionTimeoutMs?: number;
  /** Request timeout, ms. Default 30000. */
  readonly requestTimeoutMs?: number;
}

const TRANSIENT =
  /rebalanc|group coordinator is not available|coordinator is loading|not the correct coordinator|leadership election|There is no leader/i;

export function createKafka(connection: KafkaConnection): Kafka {
  const logger = connection.logger?.child({ component: 'kafkajs' });
  const toLogger: logCreator = () => (entry: LogEntry) => {
    if (logger === undefined) return;
    const { message, ...fields } = entry.log;
    const line = `${entry.namespace}: ${String(message)}`;
    // Rebalances and coordinator moves are routine; KafkaJS retries them and logs them as errors.
    if (entry.level === logLevel.ERROR && TRANSIENT.test(String(fields['error'] ?? ''))) logger.debug(line, fields);
    else if (entry.level === logLevel.ERROR) logger.error(line, fields);
    else if (entry.level === logLevel.WARN) logger.warn(line, fields);
    else logger.debug(line, fields);
  };
  return new Kafka({
    clientId: connection.clientId,
    brokers: [...connection.brokers],
    connectionTimeout: connection.connectionTimeoutMs ?? 3000,
    requestTimeout: connection.requestTimeoutMs ?? 30_000,
    logLevel: logger === undefined ? logLevel.NOTHING : logLevel.WARN,
    logCreator: toLogger,
    // Retries with backoff for transient broker errors; callers decide what a final failure means.
    retry: { initialRetryTime: 100, maxRetryTime: 5_000, retries: 8 },
  });
}

export interface TopicSpec {
  readonly topic: string;
  readonly numPartitions?: number;
  readonly replicationFactor?: number;
  readonly configEntries?: Readonly<Record<string, string>>;
}

/** Creates the topics that do not exist yet; existing ones are left as they are. */
export async function ensureTopics(kafka: Kafka, specs: readonly TopicSpec[]): Promise<string[]> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const existing = new Set(await admin.listTopics());
    const missing: ITopicConfig[] = specs
      .filter((spec) => !existing.has(spec.topic))
      .map((spec) => ({
        topic: spec.topic,
        numPartitions: spec.numPartitions ?? -1,
        replicationFactor: spec.replicationFactor ?? -1,
        configEntries: Object.entries(spec.configEntries ?? {}).map(([name, value]) => ({ name, value })),
      }));
    if (missing.length > 0) {
      try {
        await admin.createTopics({ topics: missing, waitForLeaders: true });
      } catch (error) {
        // Another process created them between our list and our create: that is the goal anyway.
        if (!onlyAlreadyExists(error)) throw error;
      }
    }
    return missing.map((spec) => spec.topic);
  } finally {
    await admin.disconnect();
  }
}

/** Per partition: the earliest offset whose timestamp is ≥ `timestampMs` (the high watermark if none). */
export async function offsetsAtTime(
  kafka: Kafka,
  topic: string,
  timestampMs: number,
): Promise<Array<{ partition: number; offset: string }>> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    return await admin.fetchTopicOffsetsByTimestamp(topic, timestampMs);
  } finally {
    await admin.disconnect();
  }
}

/**
 * A producer with the Java client's murmur2 partitioner (KafkaJS's default since 2.0, set
 * explicitly so the choice is visible): a page view's key maps to the same partition as any other
 * Kafka client would put it.
 */
export function createProducer(kafka: Kafka, config: Omit<ProducerConfig, 'createPartitioner'> = {}): Producer {
  return kafka.producer({ allowAutoTopicCreation: false, ...config, createPartitioner: Partitioners.DefaultPartitioner });
}

function onlyAlreadyExists(error: unknown): boolean {
  const nested = (error as { errors?: unknown }).errors;
  if (!Array.isArray(nested) || nested.length === 0) return (error as { type?: unknown }).type === 'TOPIC_ALREADY_EXISTS';
  return nested.every((inner) => (inner as { type?: unknown }).type === 'TOPIC_ALREADY_EXISTS');
}
