import type { Message, Producer } from '@dwell/kafka';

/** One record bound for a topic: the partition key and the encoded value. */
export interface LogRecord {
  readonly key: string;
  readonly value: Buffer;
}

/** The defaults of {@link EventLogOptions}; the gateway's settings take theirs from here. */
export const EVENT_LOG_DEFAULTS = Object.freeze({
  lingerMs: 4,
  maxBatchRecords: 2000,
  maxInFlight: 2,
  maxBufferedBytes: 64 * 1024 * 1024,
  maxWaitMs: 500,
});

export interface EventLogOptions {
  readonly topic: string;
  /** How long records wait to join a batch when no produce request is in flight, ms. Default 4. */
  readonly lingerMs?: number;
  /** Records per produce request. Default 2000. */
  readonly maxBatchRecords?: number;
  /**
   * Produce requests in flight at once. Default 2. A second request leaves only with a full batch
   * (`maxBatchRecords`): below that, records gather while one request is in flight.
   */
  readonly maxInFlight?: number;
  /** Bytes waiting or in flight before `append` refuses more. Default 64 MiB. */
  readonly maxBufferedBytes?: number;
  /** Age of the oldest record still waiting for a produce request beyond which `append` refuses more, ms. Default 500. */
  readonly maxWaitMs?: number;
  /** Called with each produce's duration, ms. */
  readonly onProduced?: (ms: number, records: number) => void;
  /** Called once per `append` when its records leave in a produce request, with how long they waited for it, ms. */
  readonly onWaited?: (ms: number) => void;
  /** Called when the log becomes unavailable or available again. */
  readonly onAvailability?: (available: boolean, error?: unknown) => void;
  readonly now?: () => number;
}

export type AppendOutcome =
  | { readonly stored: true }
  | { readonly stored: false; readonly reason: 'unavailable' | 'overloaded'; readonly retryAfterMs: number };

interface Waiting {
  readonly records: readonly LogRecord[];
  readonly bytes: number;
  /** When `append` took the records. */
  readonly since: number;
  readonly settle: (outcome: AppendOutcome) => void;
}

const STORED: AppendOutcome = Object.freeze({ stored: true });
const OVERLOADED: AppendOutcome = Object.freeze({ stored: false, reason: 'overloaded', retryAfterMs: 1000 });
const UNAVAILABLE: AppendOutcome = Object.freeze({ stored: false, reason: 'unavailable', retryAfterMs: 2000 });

/**
 * Appends records to a Kafka topic with acks=all, gathering the records of many frames into one
 * produce request. With nothing in flight, records wait `lingerMs` for company; while a request is
 * in flight, they gather until it returns (or until a batch is full and a second request may
 * leave), so a busier log sends fewer, larger requests instead of one per linger. `append`
 * resolves only once Kafka has stored every record of the call, or with a refusal the caller
 * turns into a "resend later" answer: nothing is ever acknowledged that was not stored, and nothing
 * waits beyond `maxWaitMs` or `maxBufferedBytes`.
 */
export class EventLog {
  private readonly producer: Producer;
  private readonly topic: string;
  private readonly lingerMs: number;
  private readonly maxBatchRecords: number;
  private readonly maxInFlight: number;
  private readonly maxBufferedBytes: number;
  private readonly maxWaitMs: number;
  private readonly options: EventLogOptions;
  private readonly now: () => number;
  private waiting: Waiting[] = [];
  private waitingRecords = 0;
  private timer: NodeJS.Timeout | undefined;
  private inFlight = 0;
  /** Called once after the next produce request settles (drain waits on it). */
  private settledListeners: Array<() => void> = [];
  private buffered = 0;
  private isAvailable = true;

  constructor(producer: Producer, options: EventLogOptions) {
    this.producer = producer;
    this.options = options;
    this.topic = options.topic;
    this.lingerMs = options.lingerMs ?? EVENT_LOG_DEFAULTS.lingerMs;
    this.maxBatchRecords = options.maxBatchRecords ?? EVENT_LOG_DEFAULTS.maxBatchRecords;
    this.maxInFlight = Math.max(1, options.maxInFlight ?? EVENT_LOG_DEFAULTS.maxInFlight);
    this.maxBufferedBytes = options.maxBufferedBytes ?? EVENT_LOG_DEFAULTS.maxBufferedBytes;
    this.maxWaitMs = options.maxWaitMs ?? EVENT_LOG_DEFAULTS.maxWaitMs;
    this.now = options.now ?? Date.now;
  }

  /** Bytes accepted by `append` and not yet stored or refused. */
  get bufferedBytes(): number {
    return this.buffered;
  }

  /** How long the oldest record still waiting for a produce request has waited, ms (0: none waits). */
  get oldestWaitMs(): number {
    const oldest = this.waiting[0];
    return oldest === undefined ? 0 : Math.max(0, this.now() - oldest.since);
  }

  /** False after a produce failed, until one succeeds again. */
  get available(): boolean {
    return this.isAvailable;
  }

  append(records: readonly LogRecord[]): Promise<AppendOutcome> {
    return new Promise((settle) => this.submit(records, settle));
  }

  /**
   * `append` without a promise: `settle` is called exactly once, with what `append` would resolve
   * to, when Kafka stored the records or refused them; synchronously when they are refused at
   * once (or there are none). The busy path (one call per WebSocket frame) saves a promise, its
   * reaction and a microtask per frame.
   */
  submit(records: readonly LogRecord[], settle: (outcome: AppendOutcome) => void): void {
    if (records.length === 0) return settle(STORED);
    let bytes = 0;
    for (const record of records) bytes += record.value.length + record.key.length;
    const now = this.now();
    const oldest = this.waiting[0];
    if (this.buffered + bytes > this.maxBufferedBytes || (oldest !== undefined && now - oldest.since > this.maxWaitMs)) {
      return settle(OVERLOADED);
    }
    this.buffered += bytes;
    this.waiting.push({ records, bytes, since: now, settle });
    this.waitingRecords += records.length;
    this.pump(now, false);
  }

  /** Sends what waits now and resolves when every produce request has finished. */
  async drain(): Promise<void> {
    for (;;) {
      while (this.waiting.length > 0 && this.inFlight < this.maxInFlight) this.sendBatch();
      if (this.inFlight === 0) return;
      await new Promise<void>((resolve) => this.settledListeners.push(resolve));
    }
  }

  /**
   * Sends what is due: a full batch whenever a request may leave; otherwise, with nothing in
   * flight, the waiting records once the oldest has lingered (or `lingered`: its timer fired).
   * With a request in flight, its completion calls this again.
   */
  private pump(now: number, lingered: boolean): void {
    while (this.inFlight < this.maxInFlight) {
      const oldest = this.waiting[0];
      if (oldest === undefined) break;
      const full = this.waitingRecords >= this.maxBatchRecords;
      const due = this.inFlight === 0 && (lingered || now - oldest.since >= this.lingerMs);
      if (!full && !due) break;
      this.sendBatch();
    }
    const oldest = this.waiting[0];
    if (oldest === undefined || this.inFlight > 0) {
      if (this.timer !== undefined) {
        clearTimeout(this.timer);
        this.timer = undefined;
      }
    } else {
      this.timer ??= setTimeout(this.onLingered, Math.max(0, oldest.since + this.lingerMs - now));
    }
  }

  private readonly onLingered = (): void => {
    this.timer = undefined;
    this.pump(this.now(), true);
  };

  /** Takes up to `maxBatchRecords` from the head of the queue (at least one append) and sends it. */
  private sendBatch(): void {
    let take = 0;
    let count = 0;
    while (take < this.waiting.length) {
      const size = (this.waiting[take] as Waiting).records.length;
      if (take > 0 && count + size > this.maxBatchRecords) break;
      count += size;
      take += 1;
    }
    const batch = take === this.waiting.length ? this.waiting : this.waiting.slice(0, take);
    this.waiting = take === this.waiting.length ? [] : this.waiting.slice(take);
    this.waitingRecords -= count;
    this.inFlight += 1;
    void this.send(batch, count);
  }

  private async send(batch: readonly Waiting[], count: number): Promise<void> {
    const messages: Message[] = new Array<Message>(count);
    let i = 0;
    for (const waiting of batch) for (const record of waiting.records) messages[i++] = record;
    const started = this.now();
    const onWaited = this.options.onWaited;
    if (onWaited !== undefined) for (const waiting of batch) onWaited(started - waiting.since);
    let outcome: AppendOutcome;
    try {
      await this.producer.send({ topic: this.topic, acks: -1, messages });
      this.options.onProduced?.(this.now() - started, count);
      outcome = STORED;
      if (!this.isAvailable) {
        this.isAvailable = true;
        this.options.onAvailability?.(true);
      }
    } catch (error) {
      outcome = UNAVAILABLE;
      if (this.isAvailable) {
        this.isAvailable = false;
        this.options.onAvailability?.(false, error);
      }
    }
    this.inFlight -= 1;
    let settled: readonly Waiting[] = batch;
    if (!outcome.stored && this.waiting.length > 0) {
      // What gathered behind a failed request would only wait out the same retries: refuse it now
      // (the clients resend), and let the next append probe whether Kafka is back.
      settled = [...batch, ...this.waiting];
      this.waiting = [];
      this.waitingRecords = 0;
    }
    for (const waiting of settled) this.buffered -= waiting.bytes;
    for (const waiting of settled) {
      try {
        waiting.settle(outcome);
      } catch (error) {
        // A caller's callback failing must not keep the others of the batch from settling;
        // its error still surfaces as an uncaught exception.
        queueMicrotask(() => {
          throw error;
        });
      }
    }
    const listeners = this.settledListeners;
    this.settledListeners = [];
    for (const listener of listeners) listener();
    this.pump(this.now(), false);
  }
}
