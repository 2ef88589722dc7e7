/**
 * A Kafka producer whose work runs on a worker thread: encoding produce requests, writing them to
 * the brokers' sockets and decoding the answers (all JavaScript in KafkaJS) leave the thread that
 * serves the WebSockets. The gateway's thread only packs each batch into one buffer and moves it
 * over (see produce-batch.ts).
 *
 * Same contract as the producer it replaces, as far as EventLog uses it: `send` resolves once
 * Kafka stored every record (acks as asked), and rejects when it could not, which the caller
 * treats as "Kafka unavailable". If the thread dies, every send it had not answered rejects (the
 * records may or may not be stored; the clients resend, and duplicates are the processor's job),
 * the death is logged, and a new thread starts.
 */
import { existsSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import type { Producer, ProducerConfig, RecordMetadata } from '@dwell/kafka';
import type { LogFields, Logger, LogLevel } from '@dwell/runtime';
import { packBatch, type PackedBatch } from './produce-batch.js';

type ProducerRecord = Parameters<Producer['send']>[0];

/** What the thread is started with (`workerData`). */
export interface ProducerThreadData {
  readonly brokers: readonly string[];
  readonly clientId: string;
  readonly producer: Omit<ProducerConfig, 'createPartitioner'>;
  readonly logLevel: LogLevel;
}

/** An error as it crosses between threads. */
export interface SerialisedError {
  readonly name: string;
  readonly message: string;
  readonly stack?: string;
  readonly type?: string;
  readonly retriable?: boolean;
}

export type ToProducerThread =
  | {
      readonly op: 'send';
      readonly id: number;
      readonly batch: PackedBatch;
      readonly timeout?: number;
      readonly compression?: number;
    }
  | { readonly op: 'disconnect' };

export type FromProducerThread =
  | { readonly op: 'connected' }
  | { readonly op: 'connect-failed'; readonly error: SerialisedError }
  | { readonly op: 'sent'; readonly id: number; readonly metadata: RecordMetadata[] }
  | { readonly op: 'failed'; readonly id: number; readonly error: SerialisedError }
  | { readonly op: 'log'; readonly level: Exclude<LogLevel, 'silent'>; readonly message: string; readonly fields?: LogFields }
  | { readonly op: 'disconnected'; readonly error?: SerialisedError };

export function serialiseError(error: unknown): SerialisedError {
  if (!(error instanceof Error)) return { name: 'Error', message: String(error) };
  const { type, retriable } = error as { type?: unknown; retriable?: unknown };
  return {
    name: error.name,
    message: error.message,
    ...(error.stack !== undefined ? { stack: error.stack } : {}),
    ...(typeof type === 'string' ? { type } : {}),
    ...(typeof retriable === 'boolean' ? { retriable } : {}),
  };
}

export function deserialiseError(error: SerialisedError): Error {
  const rebuilt = new Error(error.message) as Error & { type?: string; retriable?: boolean };
  rebuilt.name = error.name;
  if (error.stack !== undefined) rebuilt.stack = error.stack;
  if (error.type !== undefined) rebuilt.type = error.type;
  if (error.retriable !== undefined) rebuilt.retriable = error.retriable;
  return rebuilt;
}

export interface ThreadProducerOptions {
  readonly brokers: readonly string[];
  readonly clientId: string;
  /** The KafkaJS producer's options, as for `createProducer`. */
  readonly producer?: Omit<ProducerConfig, 'createPartitioner'>;
  /** Receives the thread's log lines (KafkaJS's included) and its deaths. */
  readonly logger: Logger;
  /** Called when a thread died unasked, before its successor starts. */
  readonly onThreadDeath?: (error: Error) => void;
}

interface Pending {
  readonly resolve: (metadata: RecordMetadata[]) => void;
  readonly reject: (error: Error) => void;
}

/** A thread that dies within this long of its start counts as a crash loop: its successor waits. */
const QUICK_DEATH_MS = 1000;
const RESTART_BACKOFF_MS = [0, 200, 1000, 5000] as const;
/** How long a graceful stop waits for the thread to disconnect its producer before ending it. */
const DISCONNECT_TIMEOUT_MS = 10_000;

export class ThreadProducer {
  private readonly options: ThreadProducerOptions;
  private worker: Worker | undefined;
  private startedAt = 0;
  private quickDeaths = 0;
  private restartTimer: NodeJS.Timeout | undefined;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private state: 'new' | 'running' | 'stopping' | 'stopped' = 'new';
  /** Settles the first `connect` with the first thread's answer. */
  private firstConnect: { resolve: () => void; reject: (error: Error) => void } | undefined;
  private disconnected: (() => void) | undefined;
  private threadDeaths = 0;

  constructor(options: ThreadProducerOptions) {
    this.options = options;
  }

  /** Threads that died unasked since this producer connected. */
  get deaths(): number {
    return this.threadDeaths;
  }

  /** The current thread's id; undefined while none runs (restarting, or stopped). */
  get threadId(): number | undefined {
    return this.worker?.threadId;
  }

  /** Sends waiting for the thread's answer. */
  get inFlight(): number {
    return this.pending.size;
  }

  /** Starts the thread; resolves once its producer connected, rejects (thread ended) if it could not. */
  connect(): Promise<void> {
    if (this.state !== 'new') return Promise.reject(new Error('the producer thread was already started'));
    this.state = 'running';
    return new Promise<void>((resolve, reject) => {
      this.firstConnect = { resolve, reject };
      this.startThread();
    });
  }

  send(record: ProducerRecord): Promise<RecordMetadata[]> {
    const worker = this.worker;
    if (this.state !== 'running') return Promise.reject(new Error('the producer thread is not running'));
    if (worker === undefined) return Promise.reject(new Error('the producer thread is restarting'));
    const id = this.nextId++;
    let request: ToProducerThread;
    let transfer: ArrayBuffer[];
    try {
      const packed = packBatch(record.topic, record.acks ?? -1, record.messages);
      request = {
        op: 'send',
        id,
        batch: packed.batch,
        ...(record.timeout !== undefined ? { timeout: record.timeout } : {}),
        ...(record.compression !== undefined ? { compression: record.compression } : {}),
      };
      transfer = packed.transfer;
    } catch (error) {
      return Promise.reject(error instanceof Error ? error : new Error(String(error)));
    }
    return new Promise<RecordMetadata[]>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      worker.postMessage(request, transfer);
    });
  }

  /**
   * Graceful: the thread finishes the sends it holds, disconnects its producer and ends. Sends
   * after this reject. Call it after the callers drained (EventLog.drain).
   */
  async disconnect(): Promise<void> {
    if (this.state === 'stopped' || this.state === 'stopping') return;
    this.state = 'stopping';
    if (this.restartTimer !== undefined) clearTimeout(this.restartTimer);
    this.restartTimer = undefined;
    const worker = this.worker;
    if (worker === undefined) {
      this.state = 'stopped';
      return;
    }
    const done = new Promise<void>((resolve) => (this.disconnected = resolve));
    worker.postMessage({ op: 'disconnect' } satisfies ToProducerThread);
    // A thread that dies meanwhile settles `done` through its exit; one that hangs is ended.
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<void>((resolve) => (timer = setTimeout(resolve, DISCONNECT_TIMEOUT_MS)));
    await Promise.race([done, timeout]);
    clearTimeout(timer);
    await worker.terminate();
    this.worker = undefined;
    this.failPending(new Error('the producer thread stopped'));
    this.state = 'stopped';
  }

  /**
   * Ends the current thread at once, as a crash would: the sends it had not answered reject and a
   * new thread starts. For fault drills and tests.
   */
  async terminateThread(): Promise<void> {
    await this.worker?.terminate();
  }

  private startThread(): void {
    const data: ProducerThreadData = {
      brokers: this.options.brokers,
      clientId: this.options.clientId,
      producer: this.options.producer ?? {},
      logLevel: this.options.logger.level,
    };
    const worker = new Worker(workerEntry(), { workerData: data });
    this.worker = worker;
    this.startedAt = Date.now();
    worker.on('message', (message: FromProducerThread) => this.onMessage(worker, message));
    let error: Error | undefined;
    worker.on('error', (thrown) => (error ??= thrown));
    worker.on('exit', (code) => this.onExit(worker, error ?? new Error(`the producer thread exited (code ${code})`)));
  }

  private onMessage(worker: Worker, message: FromProducerThread): void {
    switch (message.op) {
      case 'sent': {
        const pending = this.pending.get(message.id);
        this.pending.delete(message.id);
        pending?.resolve(message.metadata);
        return;
      }
      case 'failed': {
        const pending = this.pending.get(message.id);
        this.pending.delete(message.id);
        pending?.reject(deserialiseError(message.error));
        return;
      }
      case 'log': {
        const { logger } = this.options;
        if (message.fields === undefined) logger[message.level](message.message);
        else logger[message.level](message.message, message.fields);
        return;
      }
      case 'connected':
        this.quickDeaths = 0;
        if (this.firstConnect !== undefined) {
          this.firstConnect.resolve();
          this.firstConnect = undefined;
        } else {
          this.options.logger.info('producer thread connected');
        }
        return;
      case 'connect-failed': {
        const error = deserialiseError(message.error);
        if (this.firstConnect !== undefined) {
          // The caller fails to start: end the thread, or it would keep the process alive.
          const { reject } = this.firstConnect;
          this.firstConnect = undefined;
          this.state = 'stopped';
          this.worker = undefined;
          void worker.terminate().then(() => reject(error));
        } else {
          // A restarted thread retries connecting on its next send.
          this.options.logger.warn('producer thread could not connect yet', { error });
        }
        return;
      }
      case 'disconnected':
        if (message.error !== undefined) {
          this.options.logger.warn('producer thread: disconnecting failed', { error: deserialiseError(message.error) });
        }
        this.disconnected?.();
        return;
    }
  }

  private onExit(worker: Worker, error: Error): void {
    if (this.worker === worker) this.worker = undefined;
    this.failPending(error);
    if (this.disconnected !== undefined) {
      this.disconnected();
      return;
    }
    if (this.state !== 'running') return;
    this.threadDeaths += 1;
    this.options.logger.error('producer thread died: its unanswered sends are refused, starting a new one', { error });
    this.options.onThreadDeath?.(error);
    if (this.firstConnect !== undefined) {
      const { reject } = this.firstConnect;
      this.firstConnect = undefined;
      this.state = 'stopped';
      reject(error);
      return;
    }
    this.quickDeaths = Date.now() - this.startedAt < QUICK_DEATH_MS ? this.quickDeaths + 1 : 0;
    const delay = RESTART_BACKOFF_MS[Math.min(this.quickDeaths, RESTART_BACKOFF_MS.length - 1)] as number;
    if (delay === 0) {
      this.startThread();
      return;
    }
    this.restartTimer = setTimeout(() => {
      this.restartTimer = undefined;
      if (this.state === 'running') this.startThread();
    }, delay);
  }

  private failPending(error: Error): void {
    const pending = [...this.pending.values()];
    this.pending.clear();
    for (const waiting of pending) waiting.reject(error);
  }
}

/**
 * The thread's compiled module. Run from TypeScript sources (tests), this module sits in src/ and
 * the thread is taken from the build in dist/.
 */
function workerEntry(): URL {
  const here = new URL('./producer-worker.js', import.meta.url);
  if (import.meta.url.endsWith('.js') || existsSync(here)) return here;
  return new URL('../dist/producer-worker.js', import.meta.url);
}
