import {
  AssignerProtocol,
  Partitioners,
  type Consumer,
  type Kafka,
  type PartitionAssigner,
  type PartitionMetadata,
} from 'kafkajs';
import type { Logger } from '@dwell/runtime';

/** One record as a tail reader sees it. */
export interface TailRecord {
  readonly partition: number;
  readonly offset: number;
  readonly key: Buffer | null;
  /** null: a tombstone. */
  readonly value: Buffer | null;
  /** The record's timestamp (producer's clock unless the topic says otherwise), Unix ms. */
  readonly timestamp: number;
}

export type TailStart = 'earliest' | 'latest' | { readonly timestampMs: number };

export interface TailOptions {
  readonly topic: string;
  /**
   * A group id no other process uses: a tail reads every record of its partitions on its own,
   * never sharing them with other members. Nothing is committed under it.
   */
  readonly groupId: string;
  /** Where reading starts: the oldest record (a compacted topic's state), the end, or a time. */
  readonly from: TailStart;
  /**
   * Read only the partition this key is produced to (murmur2, as every Kafka client places keyed
   * records), e.g. a requester reading its own replies. Default: every partition.
   */
  readonly onlyKey?: string;
  /**
   * Longest the broker holds a fetch open when there is nothing new, ms. Default 100. It does not
   * delay delivery: with minBytes 1 the broker answers a waiting fetch as soon as a record is
   * appended (measured: the same produce→consume latency at 5, 100 and 500 ms). It only sets how
   * often an idle reader polls, which costs the broker and this process CPU.
   */
  readonly maxWaitTimeInMs?: number;
  readonly sessionTimeoutMs?: number;
  /** Each batch of one partition, in offset order. Errors are logged; the records are not re-read. */
  readonly onRecords: (records: readonly TailRecord[]) => void | Promise<void>;
  readonly logger?: Logger;
}

export interface TailReader {
  /** Resolves once every record that existed when the tail started has been handed to `onRecords`. */
  readonly ready: Promise<void>;
  /** The partitions read. */
  readonly partitions: readonly number[];
  stop(): Promise<void>;
}

const keyed = Partitioners.DefaultPartitioner();

/** The partition a keyed record lands in on a topic with `partitionCount` partitions. */
export function partitionForKey(topic: string, key: string, partitionCount: number): number {
  const partitionMetadata: PartitionMetadata[] = Array.from({ length: partitionCount }, (_, partitionId) => ({
    partitionId,
    leader: 0,
    partitionErrorCode: 0,
    replicas: [],
    isr: [],
  }));
  return keyed({ topic, partitionMetadata, message: { key, value: null } });
}

/**
 * Reads a topic from a chosen position onward, with low latency, without sharing partitions and
 * without committing offsets: what a process needs to follow a control topic (commands to deliver,
 * replies addressed to it, presence). KafkaJS has no `assign()`; a group of one member gives the
 * same, and a fixed assigner narrows it to one partition when `onlyKey` is set.
 *
 * The position is kept here, not in Kafka: after any rejoin (a crash the consumer restarts from,
 * a coordinator move) the tail seeks back to where it was, so no record is skipped.
 */
export async function startTail(kafka: Kafka, options: TailOptions): Promise<TailReader> {
  const { topic } = options;
  const admin = kafka.admin();
  await admin.connect();
  let ends: Map<number, number>;
  let starts: Map<number, number>;
  let partitionCount: number;
  try {
    const offsets = await retrying(() => admin.fetchTopicOffsets(topic));
    partitionCount = offsets.length;
    ends = new Map(offsets.map((o) => [o.partition, Number(o.high)]));
    if (options.from === 'earliest') starts = new Map(offsets.map((o) => [o.partition, Number(o.low)]));
    else if (options.from === 'latest') starts = new Map(ends);
    else {
      const at = options.from.timestampMs;
      const byTime = await retrying(() => admin.fetchTopicOffsetsByTimestamp(topic, at));
      // No record at or after the time: the partition's end (-1 from some brokers means the same).
      starts = new Map(
        byTime.map((o) => [
          o.partition,
          Number(o.offset) < 0 ? (ends.get(o.partition) ?? 0) : Number(o.offset),
        ]),
      );
    }
  } finally {
    await admin.disconnect();
  }
  const partitions =
    options.onlyKey === undefined
      ? [...ends.keys()].sort((a, b) => a - b)
      : [partitionForKey(topic, options.onlyKey, partitionCount)];
  const positions = new Map(partitions.map((p) => [p, starts.get(p) ?? 0]));

  let markReady: () => void = () => undefined;
  const ready = new Promise<void>((resolve) => (markReady = resolve));
  const caughtUp = (): boolean => partitions.every((p) => (positions.get(p) ?? 0) >= (ends.get(p) ?? 0));
  if (caughtUp()) markReady();

  const consumer: Consumer = kafka.consumer({
    groupId: options.groupId,
    maxWaitTimeInMs: options.maxWaitTimeInMs ?? 100,
    minBytes: 1,
    sessionTimeout: options.sessionTimeoutMs ?? 10_000,
    heartbeatInterval: 1_000,
    allowAutoTopicCreation: false,
    ...(options.onlyKey === undefined ? {} : { partitionAssigners: [fixedAssigner(topic, partitions)] }),
  });
  consumer.on(consumer.events.GROUP_JOIN, () => {
    for (const [partition, offset] of positions) consumer.seek({ topic, partition, offset: String(offset) });
  });
  await consumer.connect();
  await consumer.subscribe({ topics: [topic], fromBeginning: false });
  await consumer.run({
    autoCommit: false,
    eachBatch: async ({ batch }) => {
      const records: TailRecord[] = batch.messages.map((m) => ({
        partition: batch.partition,
        offset: Number(m.offset),
        key: m.key,
        value: m.value,
        timestamp: Number(m.timestamp),
      }));
      try {
        if (records.length > 0) await options.onRecords(records);
      } catch (error) {
        options.logger?.error('tail reader: handler failed', { topic, partition: batch.partition, error });
      }
      positions.set(batch.partition, Number(batch.lastOffset()) + 1);
      if (caughtUp()) markReady();
    },
  });
  return {
    ready,
    partitions,
    stop: () => consumer.disconnect(),
  };
}

/** Assigns exactly `partitions` of `topic` to the group's single member. */
function fixedAssigner(topic: string, partitions: readonly number[]): PartitionAssigner {
  return () => ({
    name: 'DwellFixedAssigner',
    version: 0,
    assign: async ({ members }) =>
      members.map(({ memberId }, index) => ({
        memberId,
        memberAssignment: AssignerProtocol.MemberAssignment.encode({
          version: 0,
          // A tail group has one member; should a second ever join, it gets nothing.
          assignment: index === 0 ? { [topic]: [...partitions] } : {},
          userData: Buffer.alloc(0),
        }),
      })),
    protocol: ({ topics }) => ({
      name: 'DwellFixedAssigner',
      metadata: AssignerProtocol.MemberMetadata.encode({ version: 0, topics, userData: Buffer.alloc(0) }),
    }),
  });
}

/**
 * Retries while the broker answers with a retriable error: right after a topic is created its
 * partitions may not have a leader for a moment (NOT_LEADER_FOR_PARTITION, or
 * UNKNOWN_TOPIC_OR_PARTITION while two processes create it at once), and KafkaJS's admin calls pass
 * that on instead of retrying.
 */
export async function retrying<T>(lookup: () => Promise<T>, attempts = 20): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await lookup();
    } catch (error) {
      if (attempt >= attempts || (error as { retriable?: unknown }).retriable !== true) throw error;
      await new Promise((resolve) => setTimeout(resolve, Math.min(1000, 50 * 2 ** attempt)));
    }
  }
}
