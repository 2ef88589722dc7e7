/**
 * The replay spread over worker threads: Kafka is read on the main thread, and each partition's
 * records go, in log order, to the one worker that owns the partition, which decodes them and runs
 * its PartitionReplay. Partitions are independent, so the results are exactly ReplayEngine's
 * (tested by the integration tests, which run the CLI). Decoding and the exposure core are what a
 * replay spends its time on; the workers put every core on them.
 */
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import type { RulesConfig } from '@dwell/exposure';
import type { LogRecord } from '@dwell/kafka';
import type { AuditScope, PartitionSummary, ReplayCounts, ReplayedPageView } from './replay-engine.js';
import { batchBytes, packBatch } from './batch-layout.js';
import type { FromWorker, ToWorker } from './replay-worker.js';

/** Batches a worker may have queued before the reader waits for it. */
const MAX_QUEUED_BATCHES = 8;
/** Batch buffers kept for reuse: allocating large buffers is what makes V8 collect garbage. */
const MAX_POOLED_BUFFERS = 32;
const MIN_BUFFER_BYTES = 1024 * 1024;

export interface ReplayResult {
  readonly pageViews: ReplayedPageView[];
  readonly partitions: PartitionSummary[];
  readonly counts: ReplayCounts;
  /** Every page view id opened in the read, in scope or not. */
  readonly seen: ReadonlySet<string>;
}

/** Default workers: one per core, at most one per partition. */
export function defaultWorkers(partitions: number): number {
  return Math.max(1, Math.min(partitions, availableParallelism()));
}

interface WorkerSlot {
  readonly worker: Worker;
  queued: number;
  wake: (() => void) | undefined;
  result: { resolve: (message: WorkerResult) => void; reject: (error: Error) => void } | undefined;
}

type WorkerResult = Extract<FromWorker, { type: 'result' }>;

export class ParallelReplay {
  private readonly slots: WorkerSlot[];
  private readonly owner = new Map<number, WorkerSlot>();
  private readonly complete = new Set<number>();
  private failure: Error | undefined;
  private closing = false;
  private applied = 0;
  private readonly pool: ArrayBuffer[] = [];

  private constructor(slots: WorkerSlot[], partitions: readonly number[]) {
    this.slots = slots;
    partitions.forEach((partition, i) => {
      const slot = slots[i % slots.length];
      if (slot !== undefined) this.owner.set(partition, slot);
    });
  }

  static start(scope: AuditScope, partitions: readonly number[], options: { workers: number; rules?: RulesConfig; keepRefused?: boolean }): ParallelReplay {
    const count = Math.max(1, Math.min(options.workers, partitions.length));
    const slots: WorkerSlot[] = [];
    for (let i = 0; i < count; i++) {
      // A larger young generation: decoding allocates many short-lived strings.
      const worker = new Worker(new URL('./replay-worker.js', import.meta.url), { resourceLimits: { maxYoungGenerationSizeMb: 96 } });
      slots.push({ worker, queued: 0, wake: undefined, result: undefined });
    }
    const replay = new ParallelReplay(slots, partitions);
    for (const slot of slots) {
      slot.worker.on('message', (message: FromWorker) => replay.onMessage(slot, message));
      slot.worker.on('error', (error) => replay.fail(error));
      slot.worker.on('exit', (code) => {
        if (!replay.closing) replay.fail(new Error(`a replay worker exited (code ${code})`));
      });
      slot.worker.postMessage({ type: 'init', scope, rules: options.rules, keepRefused: options.keepRefused ?? false } satisfies ToWorker);
    }
    return replay;
  }

  /** Records acknowledged by the workers (for progress). */
  get recordsApplied(): number {
    return this.applied;
  }

  /**
   * Hands a partition's next records to its worker. Resolves to false once the partition is known
   * to be complete (the reader stops it); waits while the worker is too far behind.
   */
  async feed(partition: number, records: readonly LogRecord[]): Promise<boolean> {
    if (this.failure !== undefined) throw this.failure;
    if (this.complete.has(partition)) return false;
    const slot = this.owner.get(partition);
    if (slot === undefined) throw new Error(`partition ${partition} was not announced to the replay`);
    const bytes = batchBytes(records);
    const buffer = this.takeBuffer(bytes);
    packBatch(records, buffer);
    slot.queued += 1;
    slot.worker.postMessage({ type: 'batch', partition, count: records.length, buffer } satisfies ToWorker, [buffer]);
    while (slot.queued > MAX_QUEUED_BATCHES && this.failure === undefined) await new Promise<void>((resolve) => (slot.wake = resolve));
    if (this.failure !== undefined) throw this.failure;
    return !this.complete.has(partition);
  }

  /** Waits for every worker to finish its queue and merges their results. */
  async finish(): Promise<ReplayResult> {
    try {
      const results = await Promise.all(
        this.slots.map(
          (slot) =>
            new Promise<WorkerResult>((resolve, reject) => {
              if (this.failure !== undefined) {
                reject(this.failure);
                return;
              }
              slot.result = { resolve, reject };
              slot.worker.postMessage({ type: 'finish' } satisfies ToWorker);
            }),
        ),
      );
      return merge(results);
    } finally {
      await this.abort();
    }
  }

  /** Stops the workers (after the results, or after a read failed). */
  async abort(): Promise<void> {
    this.closing = true;
    await Promise.all(this.slots.map((slot) => slot.worker.terminate()));
  }

  /** A pooled buffer of at least `bytes` (buffers come back with the acks), or a new one. */
  private takeBuffer(bytes: number): ArrayBuffer {
    for (let i = this.pool.length - 1; i >= 0; i--) {
      const buffer = this.pool[i] as ArrayBuffer;
      if (buffer.byteLength >= bytes) {
        this.pool.splice(i, 1);
        return buffer;
      }
    }
    return new ArrayBuffer(Math.max(bytes, MIN_BUFFER_BYTES));
  }

  private onMessage(slot: WorkerSlot, message: FromWorker): void {
    if (message.type === 'ack') {
      if (this.pool.length < MAX_POOLED_BUFFERS) this.pool.push(message.buffer);
      slot.queued -= 1;
      this.applied += message.records;
      if (message.complete) this.complete.add(message.partition);
      const wake = slot.wake;
      slot.wake = undefined;
      wake?.();
    } else {
      slot.result?.resolve(message);
    }
  }

  private fail(error: Error): void {
    this.failure ??= error;
    for (const slot of this.slots) {
      const wake = slot.wake;
      slot.wake = undefined;
      wake?.();
      slot.result?.reject(error);
    }
  }
}

function merge(results: readonly WorkerResult[]): ReplayResult {
  const seen = new Set<string>();
  const pageViews: ReplayedPageView[] = [];
  const partitions: PartitionSummary[] = [];
  const counts = {
    records: 0,
    nullValues: 0,
    undecodable: {} as Record<string, number>,
    writerVersions: {} as Record<string, number>,
    outcomes: {} as Record<string, number>,
    maxTimestampSkewMs: 0,
    pageViewsOpened: 0,
    pageViewsInScope: 0,
  };
  const add = (into: Record<string, number>, from: Readonly<Record<string, number>>): void => {
    for (const [key, n] of Object.entries(from)) into[key] = (into[key] ?? 0) + n;
  };
  for (const { result, seen: ids } of results) {
    for (const id of ids) seen.add(id);
    pageViews.push(...result.pageViews);
    partitions.push(...result.partitions);
    const c = result.counts;
    counts.records += c.records;
    counts.nullValues += c.nullValues;
    add(counts.undecodable, c.undecodable);
    add(counts.writerVersions, c.writerVersions);
    add(counts.outcomes, c.outcomes);
    counts.maxTimestampSkewMs = Math.max(counts.maxTimestampSkewMs, c.maxTimestampSkewMs);
    counts.pageViewsOpened += c.pageViewsOpened;
    counts.pageViewsInScope += c.pageViewsInScope;
  }
  pageViews.sort((a, b) => (a.pageViewId < b.pageViewId ? -1 : a.pageViewId > b.pageViewId ? 1 : a.partition - b.partition || a.openedOffset - b.openedOffset));
  partitions.sort((a, b) => a.partition - b.partition);
  const sorted = (o: Record<string, number>): Record<string, number> => Object.fromEntries(Object.entries(o).sort(([a], [b]) => (a < b ? -1 : 1)));
  return { pageViews, partitions, seen, counts: { ...counts, undecodable: sorted(counts.undecodable), writerVersions: sorted(counts.writerVersions), outcomes: sorted(counts.outcomes) } };
}
