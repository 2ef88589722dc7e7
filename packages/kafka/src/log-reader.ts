import { randomBytes } from 'node:crypto';
import type { Kafka } from 'kafkajs';

/** One partition's retained offsets: `low` is the earliest still stored, `high` the next to be written. */
export interface PartitionOffsets {
  readonly partition: number;
  readonly low: bigint;
  readonly high: bigint;
}

/** The earliest retained and the next offset of every partition of a topic, by partition. */
export async function topicOffsets(kafka: Kafka, topic: string): Promise<PartitionOffsets[]> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const offsets = await admin.fetchTopicOffsets(topic);
    return offsets
      .map((o) => ({ partition: o.partition, low: BigInt(o.low), high: BigInt(o.high) }))
      .sort((a, b) => a.partition - b.partition);
  } finally {
    await admin.disconnect();
  }
}

/** Offsets `[start, end)` of one partition to read. */
export interface PartitionRange {
  readonly partition: number;
  readonly start: bigint;
  /** Exclusive. */
  readonly end: bigint;
}

/** A record as the reader hands it over: KafkaJS's message, with its offset as a number. */
export interface LogRecord {
  readonly offset: number;
  /** The record's Kafka timestamp, Unix ms (CreateTime: the producer's clock). */
  readonly timestampMs: number;
  readonly key: Buffer | null;
  readonly value: Buffer | null;
}

export interface ReadLogOptions {
  readonly topic: string;
  readonly ranges: readonly PartitionRange[];
  /**
   * Receives each partition's records in log order, a batch at a time, never outside the range.
   * Returns whether to go on: `false` stops reading that partition before its end. A promise is awaited before the
   * next batch (backpressure).
   */
  readonly onRecords: (partition: number, records: readonly LogRecord[]) => boolean | Promise<boolean>;
  /** Default: `dwell-audit-<random>`, deleted when the read ends. Never pass a service's group. */
  readonly groupId?: string;
  /**
   * Bytes fetched per partition per request. Default 256 KiB: KafkaJS keeps every record of a
   * fetch alive until it is handed over, and larger fetches cost more in garbage collection than
   * the round trips they save (see BENCHMARKS.md, Replay).
   */
  readonly maxBytesPerPartition?: number;
  /** Called when the throwaway group could not be deleted (the read itself succeeded). */
  readonly onWarning?: (message: string) => void;
}

export interface ReadLogResult {
  readonly groupId: string;
  /** The offset after the last record handed over, per partition. */
  readonly nextOffsets: ReadonlyMap<number, bigint>;
}

/**
 * Reads offset ranges of a topic with a consumer of its own: a fresh, randomly named consumer
 * group (KafkaJS has no group-free manual assignment) that seeks every partition to its start once
 * joined, never commits anything, and is deleted afterwards. It shares nothing with the
 * processors' group, so reading never moves or rebalances them. Records outside a range (a fetch
 * that raced the seek) are never handed over.
 */
export async function readLog(kafka: Kafka, options: ReadLogOptions): Promise<ReadLogResult> {
  const { topic } = options;
  const groupId = options.groupId ?? `dwell-audit-${randomBytes(6).toString('hex')}`;
  const next = new Map<number, bigint>();
  const pending = new Map<number, PartitionRange>();
  for (const range of options.ranges) {
    if (range.end > BigInt(Number.MAX_SAFE_INTEGER)) throw new RangeError(`partition ${range.partition}: offset ${range.end} is beyond 2^53`);
    next.set(range.partition, range.start);
    if (range.end > range.start) pending.set(range.partition, range);
  }
  if (pending.size === 0) return { groupId, nextOffsets: next };

  const consumer = kafka.consumer({
    groupId,
    allowAutoTopicCreation: false,
    maxWaitTimeInMs: 100,
    maxBytesPerPartition: options.maxBytesPerPartition ?? 256 * 1024,
    maxBytes: 16 * 1024 * 1024,
    sessionTimeout: 30_000,
    heartbeatInterval: 3_000,
  });
  let finish: (error?: unknown) => void = () => undefined;
  const finished = new Promise<void>((resolve, reject) => {
    finish = (error?: unknown) => (error === undefined ? resolve() : reject(error instanceof Error ? error : new Error(String(error))));
  });
  const settle = (partition: number): void => {
    if (!pending.delete(partition)) return;
    consumer.pause([{ topic, partitions: [partition] }]);
    if (pending.size === 0) finish();
  };
  // Puts every unfinished partition at its next offset: once joined, and again after any rejoin
  // (a rejoin resumes from committed offsets, and this group never commits any).
  const seekAll = (): void => {
    for (const partition of pending.keys()) consumer.seek({ topic, partition, offset: (next.get(partition) ?? 0n).toString() });
  };
  let running = false;
  try {
    await consumer.connect();
    // A retriable failure (e.g. the group coordinator still loading on a fresh broker) restarts
    // the consumer by itself; the rejoin then seeks again (GROUP_JOIN below).
    consumer.on(consumer.events.CRASH, ({ payload }) => {
      if (!payload.restart) finish(payload.error);
    });
    consumer.on(consumer.events.GROUP_JOIN, ({ payload }) => {
      // This member gets every partition of the topic: hold still the ones not asked for.
      const idle = (payload.memberAssignment[topic] ?? []).filter((partition) => !pending.has(partition));
      if (idle.length > 0) consumer.pause([{ topic, partitions: idle }]);
      if (running) seekAll();
    });
    await consumer.subscribe({ topic, fromBeginning: true });
    await consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: false,
      partitionsConsumedConcurrently: 1,
      eachBatch: async ({ batch, heartbeat, resolveOffset }) => {
        const partition = batch.partition;
        const range = pending.get(partition);
        if (range === undefined) {
          // Not asked for, or done: hold it still (new records keep arriving on a live topic).
          consumer.pause([{ topic, partitions: [partition] }]);
          return;
        }
        // Offsets as numbers in the loop: a BigInt per record costs more than the rest of it.
        let expected = Number(next.get(partition) ?? range.start);
        const end = Number(range.end);
        const records: LogRecord[] = [];
        let reachedEnd = false;
        for (const message of batch.messages) {
          const offset = Number(message.offset);
          if (offset < expected) continue;
          if (offset >= end) {
            reachedEnd = true;
            break;
          }
          records.push({ offset, timestampMs: Number(message.timestamp), key: message.key ?? null, value: message.value ?? null });
          expected = offset + 1;
        }
        next.set(partition, BigInt(expected));
        if (records.length > 0) {
          let goOn: boolean;
          try {
            goOn = await options.onRecords(partition, records);
          } catch (error) {
            finish(error);
            settle(partition);
            return;
          }
          if (!goOn) reachedEnd = true;
        }
        if (!batch.isEmpty()) resolveOffset(batch.lastOffset());
        if (reachedEnd || expected >= end) settle(partition);
        await heartbeat();
      },
    });
    // `run` returns once the group is joined: seek before the first fetches come back (records of a
    // fetch that raced the seek lie before the range and are skipped above).
    running = true;
    seekAll();
    await finished;
    return { groupId, nextOffsets: next };
  } finally {
    await consumer.disconnect().catch(() => undefined);
    const admin = kafka.admin();
    try {
      await admin.connect();
      await admin.deleteGroups([groupId]);
    } catch (error) {
      // Nothing was committed: an empty group without offsets also expires on its own.
      options.onWarning?.(`could not delete the throwaway consumer group ${groupId}: ${String(error)}`);
    } finally {
      await admin.disconnect().catch(() => undefined);
    }
  }
}

