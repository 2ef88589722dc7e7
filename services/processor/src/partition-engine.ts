/**
 * Where a processor's PartitionWork runs: in the consumer's own thread, or in a worker thread so
 * that reading records and the exposure core run on another core while the consumer thread
 * fetches from Kafka (KafkaJS decodes every fetch in JavaScript) and writes to ClickHouse.
 *
 * Both serve requests strictly in call order: a `take` or `snapshot` sees exactly the batches
 * applied before it was called, whichever thread does the work. The worker thread answers a
 * snapshot once its text is encoded, a slice at a time between the requests after it, so a large
 * one holds up the partitions of that thread only while it is taken. A worker that fails fails
 * every pending and later request; the processor then stops consuming (its partitions resume
 * elsewhere, or after a restart, from their last snapshot).
 */
import { existsSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import type { RulesConfig } from '@dwell/exposure';
import {
  PartitionWork,
  type AppliedBatch,
  type SnapshotBytes,
  type StoredState,
  type TakeRequest,
  type TakenResults,
} from './partition-work.js';
import { joinEncodedRows, type EncodedRows } from '@dwell/warehouse';

export interface PartitionEngine {
  /** `trustFrom`: see PartitionWork.restore. */
  restore(partition: number, stored: StoredState | null, trustFrom: number): Promise<number>;
  drop(partition: number): void;
  /** Applies a partition's next records; the batch may be copied, never kept. */
  apply(partition: number, values: ReadonlyArray<Buffer | null>): Promise<AppliedBatch>;
  take(versions: ReadonlyArray<TakeRequest>): Promise<TakenResults>;
  /** See PartitionWork.snapshot; a later request may be answered before it. */
  snapshot(partition: number, delta: boolean): Promise<SnapshotBytes>;
  /**
   * Says a snapshot's bytes are no longer read (it is stored, or given up): its buffer may hold a
   * later snapshot. Never read them after.
   */
  release(partition: number, snapshot: SnapshotBytes): void;
  /**
   * The operating system's ids of the worker threads doing the work, one entry per thread in the
   * order partitions are spread over them (undefined: not known, or not started yet); empty when
   * the work runs in the calling thread.
   */
  workerThreadIds(): ReadonlyArray<number | undefined>;
  close(): Promise<void>;
}

/** Runs the work in the calling thread: every request is done when it returns. */
export class InThreadEngine implements PartitionEngine {
  private readonly work: PartitionWork;
  /** Makes snapshot texts ahead between requests (PartitionWork.prepare). */
  private readonly preparing: NodeJS.Timeout;

  constructor(rules?: RulesConfig) {
    this.work = new PartitionWork(rules);
    this.preparing = this.work.prepareWhileIdle();
  }

  restore(partition: number, stored: StoredState | null, trustFrom: number): Promise<number> {
    return settle(() => this.work.restore(partition, stored, trustFrom));
  }

  drop(partition: number): void {
    this.work.drop(partition);
  }

  apply(partition: number, values: ReadonlyArray<Buffer | null>): Promise<AppliedBatch> {
    return settle(() => this.work.apply(partition, values));
  }

  take(versions: ReadonlyArray<TakeRequest>): Promise<TakenResults> {
    return settle(() => this.work.take(versions));
  }

  snapshot(partition: number, delta: boolean): Promise<SnapshotBytes> {
    return settle(() => this.work.snapshot(partition, delta));
  }

  release(): void {
    // Each snapshot's buffer is its own here.
  }

  workerThreadIds(): ReadonlyArray<number | undefined> {
    return [];
  }

  close(): Promise<void> {
    clearInterval(this.preparing);
    return Promise.resolve();
  }
}

function settle<T>(work: () => T): Promise<T> {
  try {
    return Promise.resolve(work());
  } catch (error) {
    return Promise.reject(error instanceof Error ? error : new Error(String(error)));
  }
}

/**
 * A request to the worker thread, served in order and answered with a {@link WorkerAnswer} of the
 * same id (a snapshot's after the requests served while its text is encoded).
 */
export type WorkerRequest = WorkerOp & { readonly id: number };

export type WorkerOp =
  | {
      readonly op: 'restore';
      readonly partition: number;
      readonly stored: StoredState | null;
      readonly trustFrom: number;
    }
  | { readonly op: 'drop'; readonly partition: number }
  /** `lengths[i]` is record i's length in `bytes` (-1: no value). */
  | {
      readonly op: 'apply';
      readonly partition: number;
      readonly bytes: Uint8Array;
      readonly lengths: Int32Array;
    }
  | { readonly op: 'take'; readonly versions: ReadonlyArray<TakeRequest> }
  | { readonly op: 'snapshot'; readonly partition: number; readonly delta: boolean }
  /** A lent snapshot buffer given back (SnapshotBytes.lent). */
  | { readonly op: 'release'; readonly lent: number };

export type WorkerAnswer =
  | { readonly id: number; readonly ok: true; readonly value: unknown }
  | { readonly id: number; readonly ok: false; readonly error: string };

/**
 * Runs the work in a worker thread. Requests are posted at once and served in order, so the
 * consumer thread goes on fetching while the worker computes.
 */
export class WorkerThreadEngine implements PartitionEngine {
  private readonly worker: Worker;
  private readonly pending = new Map<number, { resolve: (value: unknown) => void; reject: (error: Error) => void }>();
  private nextId = 0;
  private failure: Error | undefined;
  /** Where the worker writes its operating-system thread id once it runs (0 until then, or where unknown). */
  private readonly threadId = new Int32Array(new SharedArrayBuffer(4));

  constructor(rules?: RulesConfig) {
    this.worker = new Worker(workerEntry(), { workerData: { rules: rules ?? null, threadId: this.threadId } });
    this.worker.on('message', (answer: WorkerAnswer) => {
      const waiting = this.pending.get(answer.id);
      if (waiting === undefined) return;
      this.pending.delete(answer.id);
      if (answer.ok) waiting.resolve(answer.value);
      else waiting.reject(new Error(answer.error));
    });
    const fail = (error: Error): void => {
      this.failure ??= error;
      for (const waiting of this.pending.values()) waiting.reject(error);
      this.pending.clear();
    };
    this.worker.on('error', fail);
    this.worker.on('exit', (code) => fail(new Error(`the partition worker thread exited (code ${code})`)));
  }

  restore(partition: number, stored: StoredState | null, trustFrom: number): Promise<number> {
    return this.request({ op: 'restore', partition, stored, trustFrom }) as Promise<number>;
  }

  drop(partition: number): void {
    void this.request({ op: 'drop', partition }).catch(() => undefined);
  }

  apply(partition: number, values: ReadonlyArray<Buffer | null>): Promise<AppliedBatch> {
    // One copy of the batch into a buffer the worker takes over (no copy on the way).
    let total = 0;
    for (const value of values) if (value !== null) total += value.length;
    const bytes = new Uint8Array(total);
    const lengths = new Int32Array(values.length);
    let at = 0;
    for (let i = 0; i < values.length; i++) {
      const value = values[i];
      if (value === null || value === undefined) {
        lengths[i] = -1;
        continue;
      }
      bytes.set(value, at);
      at += value.length;
      lengths[i] = value.length;
    }
    return this.request({ op: 'apply', partition, bytes, lengths }, [
      bytes.buffer,
      lengths.buffer,
    ]) as Promise<AppliedBatch>;
  }

  take(versions: ReadonlyArray<TakeRequest>): Promise<TakenResults> {
    return this.request({ op: 'take', versions }) as Promise<TakenResults>;
  }

  snapshot(partition: number, delta: boolean): Promise<SnapshotBytes> {
    return this.request({ op: 'snapshot', partition, delta }) as Promise<SnapshotBytes>;
  }

  release(_partition: number, snapshot: SnapshotBytes): void {
    if (snapshot.lent === undefined) return;
    void this.request({ op: 'release', lent: snapshot.lent }).catch(() => undefined);
  }

  workerThreadIds(): ReadonlyArray<number | undefined> {
    const id = Atomics.load(this.threadId, 0);
    return [id > 0 ? id : undefined];
  }

  async close(): Promise<void> {
    this.failure ??= new Error('the partition worker thread is closed');
    await this.worker.terminate();
  }

  private request(request: WorkerOp, transfer: ArrayBuffer[] = []): Promise<unknown> {
    if (this.failure !== undefined) return Promise.reject(this.failure);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage({ ...request, id } satisfies WorkerRequest, transfer);
    });
  }
}

/**
 * Spreads partitions over several engines (worker threads), partition p on engine p mod n, so a
 * processor that owns several partitions computes them on as many cores. Each engine serves its own
 * requests in order; a `take` asks each engine for its partitions and puts the answers together in
 * the order asked (rows of different partitions never share a key, so their order does not matter).
 */
export class SpreadEngine implements PartitionEngine {
  private readonly engines: readonly PartitionEngine[];

  constructor(engines: readonly PartitionEngine[]) {
    if (engines.length === 0) throw new Error('SpreadEngine needs at least one engine');
    this.engines = engines;
  }

  private of(partition: number): PartitionEngine {
    return this.engines[partition % this.engines.length] as PartitionEngine;
  }

  restore(partition: number, stored: StoredState | null, trustFrom: number): Promise<number> {
    return this.of(partition).restore(partition, stored, trustFrom);
  }

  drop(partition: number): void {
    this.of(partition).drop(partition);
  }

  apply(partition: number, values: ReadonlyArray<Buffer | null>): Promise<AppliedBatch> {
    return this.of(partition).apply(partition, values);
  }

  async take(versions: ReadonlyArray<TakeRequest>): Promise<TakenResults> {
    const n = this.engines.length;
    const asked = this.engines.map((engine, i) => {
      const mine = versions.filter(([partition]) => partition % n === i);
      return mine.length === 0 ? undefined : engine.take(mine);
    });
    const answers = await Promise.all(asked);
    const impressions: EncodedRows[] = [];
    const minutes: EncodedRows[] = [];
    const byPartition = new Map<number, TakenResults['partitions'][number]>();
    for (const answer of answers) {
      if (answer === undefined) continue;
      impressions.push(answer.impressions);
      minutes.push(answer.minutes);
      for (const counted of answer.partitions) byPartition.set(counted.partition, counted);
    }
    const partitions = versions.map(([partition]) => {
      const counted = byPartition.get(partition);
      if (counted === undefined) throw new Error(`no results for partition ${partition}`);
      return counted;
    });
    return { impressions: joinEncodedRows(impressions), minutes: joinEncodedRows(minutes), partitions };
  }

  snapshot(partition: number, delta: boolean): Promise<SnapshotBytes> {
    return this.of(partition).snapshot(partition, delta);
  }

  release(partition: number, snapshot: SnapshotBytes): void {
    this.of(partition).release(partition, snapshot);
  }

  workerThreadIds(): ReadonlyArray<number | undefined> {
    return this.engines.flatMap((engine) => engine.workerThreadIds());
  }

  async close(): Promise<void> {
    await Promise.all(this.engines.map((engine) => engine.close()));
  }
}

/**
 * The worker's compiled module. Run from TypeScript sources (tests), this module sits in src/ and
 * the worker is taken from the build in dist/.
 */
function workerEntry(): URL {
  const here = new URL('./partition-worker.js', import.meta.url);
  if (import.meta.url.endsWith('.js') || existsSync(here)) return here;
  return new URL('../dist/partition-worker.js', import.meta.url);
}
