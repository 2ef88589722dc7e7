import net from 'node:net';
import tls from 'node:tls';
import {
  Kafka,
  logLevel,
  type Admin,
  type ISocketFactory,
  type ITopicConfig,
  type LogEntry,
  type Producer,
  type ProducerConfig,
  type logCreator,
} from 'kafkajs';
import type { Logger } from '@dwell/runtime';
import { JavaCompatiblePartitioner } from './partitioner.js';

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
  /rebalanc|group coordinator is not available|coordinator is loading|not the correct coordinator|leadership election|There is no leader|not the leader for that topic-partition|does not host this topic-partition/i;

export function createKafka(connection: KafkaConnection): Kafka {
  const logger = connection.logger?.child({ component: 'kafkajs' });
  const toLogger: logCreator = () => (entry: LogEntry) => {
    if (logger === undefined) return;
    const { message, ...fields } = entry.log;
    const line = `${entry.namespace}: ${String(message)}`;
    // Rebalances, coordinator moves and partitions still moving to their leader are routine; KafkaJS
    // retries them and logs them as errors. A final failure still reaches the caller as an error.
    if (entry.level === logLevel.ERROR && TRANSIENT.test(`${line} ${String(fields['error'] ?? '')}`)) logger.debug(line, fields);
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
    socketFactory: noDelaySocketFactory,
  });
}

/**
 * KafkaJS's own socket factory plus TCP_NODELAY, which the Java client sets as well. Without it
 * Nagle's algorithm holds the last, partial segment of a request until the broker has acknowledged
 * the segments before it, which the broker's kernel may delay (delayed ACK, 40 ms and more): a
 * produce request stalls for that long although the broker is idle.
 */
const noDelaySocketFactory: ISocketFactory = ({ host, port, ssl, onConnect }) => {
  const socket = ssl
    ? tls.connect({ host, port, ...(net.isIP(host) === 0 ? { servername: host } : {}), ...ssl }, onConnect)
    : net.connect({ host, port }, onConnect);
  socket.setNoDelay(true);
  socket.setKeepAlive(true, 60_000);
  return socket;
};

export interface TopicSpec {
  readonly topic: string;
  readonly numPartitions?: number;
  readonly replicationFactor?: number;
  readonly configEntries?: Readonly<Record<string, string>>;
}

/** How long ensureTopics waits for every partition's leader to serve the topic. */
const TOPIC_READY_TIMEOUT_MS = 30_000;

/**
 * Creates the topics that do not exist yet (existing ones are left as they are), then waits until
 * every partition's leader answers for it: right after a create, metadata may already name a
 * leader that does not host the partition yet, and a produce or fetch then fails with
 * UNKNOWN_TOPIC_OR_PARTITION.
 */
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
        // Not waitForLeaders: KafkaJS then retries only LEADER_NOT_AVAILABLE, and a fresh topic can also
        // answer UNKNOWN_TOPIC_OR_PARTITION for a moment. waitUntilServed below covers both.
        await admin.createTopics({ topics: missing, waitForLeaders: false });
      } catch (error) {
        // Another process created them between our list and our create: that is the goal anyway.
        if (!onlyAlreadyExists(error)) throw error;
      }
    }
    await waitUntilServed(admin, specs.map((spec) => spec.topic));
    return missing.map((spec) => spec.topic);
  } finally {
    await admin.disconnect();
  }
}

async function waitUntilServed(admin: Admin, topics: readonly string[]): Promise<void> {
  const deadline = Date.now() + TOPIC_READY_TIMEOUT_MS;
  for (const topic of topics) {
    for (let attempt = 1; ; attempt++) {
      try {
        // ListOffsets goes to each partition's leader: it answers only once it hosts the partition.
        await admin.fetchTopicOffsets(topic);
        break;
      } catch (error) {
        if ((error as { retriable?: unknown }).retriable !== true && !notServedYet(error)) throw error;
        if (Date.now() >= deadline)
          throw new Error(`topic ${topic} exists but its partitions are not served after ${TOPIC_READY_TIMEOUT_MS / 1000} s; is every broker up?`, { cause: error });
        await new Promise((resolve) => setTimeout(resolve, Math.min(1000, 25 * 2 ** attempt)));
      }
    }
  }
}

function notServedYet(error: unknown): boolean {
  const type = (error as { type?: unknown }).type;
  return type === 'UNKNOWN_TOPIC_OR_PARTITION' || type === 'LEADER_NOT_AVAILABLE' || type === 'NOT_LEADER_FOR_PARTITION';
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
 * A producer with the Java client's murmur2 partitioner: a page view's key maps to the same
 * partition as any other Kafka client would put it. KafkaJS's own `DefaultPartitioner` gives the
 * same partitions but hashes with 64-bit `Long` objects, about 50 times slower per key; ours
 * (`partitioner.ts`) uses 32-bit integer arithmetic.
 */
export function createProducer(kafka: Kafka, config: Omit<ProducerConfig, 'createPartitioner'> = {}): Producer {
  return kafka.producer({ allowAutoTopicCreation: false, ...config, createPartitioner: JavaCompatiblePartitioner });
}

function onlyAlreadyExists(error: unknown): boolean {
  const nested = (error as { errors?: unknown }).errors;
  if (!Array.isArray(nested) || nested.length === 0) return (error as { type?: unknown }).type === 'TOPIC_ALREADY_EXISTS';
  return nested.every((inner) => (inner as { type?: unknown }).type === 'TOPIC_ALREADY_EXISTS');
}
