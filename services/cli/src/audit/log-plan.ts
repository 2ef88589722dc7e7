/**
 * Where a replay or export reads the ledger: per partition, from the offset at `from − lead-in`
 * (Kafka's time index: the first record whose timestamp is at or after it) to the end of the log,
 * after checking that retention has not deleted any of it.
 */
import { offsetsAtTime, topicOffsets, type Kafka, type PartitionOffsets } from '@dwell/kafka';

export interface PartitionPlan extends PartitionOffsets {
  /** First offset to read: the first record at or after `readFromMs`. */
  readonly start: bigint;
}

export interface LogPlan {
  readonly topic: string;
  /** `from − lead-in`, Unix ms. */
  readonly readFromMs: number;
  readonly partitions: readonly PartitionPlan[];
}

/** The range asked for is (partly) gone from the log: retention deleted it. */
export class RetentionError extends Error {
  override readonly name = 'RetentionError';
  readonly partitions: readonly PartitionPlan[];
  constructor(message: string, partitions: readonly PartitionPlan[]) {
    super(message);
    this.partitions = partitions;
  }
}

export class TopicMissingError extends Error {
  override readonly name = 'TopicMissingError';
}

/**
 * Partitions whose records from `readFromMs` on are not all retained: some records were deleted
 * (`low > 0`) and the first record at or after the start time is the earliest one kept, so the
 * deleted ones may have belonged to the range. When a record older than the start time is still
 * kept (`start > low`), everything after it is too: Kafka deletes whole segments, oldest first.
 */
export function retentionGaps(partitions: readonly PartitionPlan[]): PartitionPlan[] {
  return partitions.filter((p) => p.low > 0n && p.start <= p.low);
}

export async function planRead(kafka: Kafka, topic: string, readFromMs: number): Promise<LogPlan> {
  let offsets: PartitionOffsets[];
  try {
    offsets = await topicOffsets(kafka, topic);
  } catch (error) {
    throw new TopicMissingError(`cannot read the offsets of topic ${topic}: ${String(error)}`);
  }
  if (offsets.length === 0) throw new TopicMissingError(`topic ${topic} has no partitions`);
  const atTime = new Map((await offsetsAtTime(kafka, topic, readFromMs)).map((o) => [o.partition, BigInt(o.offset)]));
  const partitions = offsets.map((p) => {
    const at = atTime.get(p.partition) ?? p.high;
    // Kafka answers the high watermark when no record is that recent; never start below `low`.
    const start = at < p.low ? p.low : at > p.high ? p.high : at;
    return { ...p, start };
  });
  const plan = { topic, readFromMs, partitions };
  const gaps = retentionGaps(partitions);
  if (gaps.length > 0) {
    const detail = gaps.map((p) => `partition ${p.partition}: offsets before ${p.low} deleted, first kept record is not older than the start`).join('; ');
    throw new RetentionError(
      `the log no longer holds the range: reading must start at ${new Date(readFromMs).toISOString()} (from − lead-in), but retention has already deleted records there (${detail}). The dispute window has passed for this range; see docs/audit.md "Retention".`,
      gaps,
    );
  }
  return plan;
}
