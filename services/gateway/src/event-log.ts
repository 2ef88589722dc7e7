import type { Message, Producer } from '@dwell/kafka';

/** One record bound for a topic: the partition key and the encoded value. */
export interface LogRecord {
  readonly key: string;
  readonly value: Buffer;
}

export interface EventLogOptions {
  readonly topic: string;
  /** How long records wait to join a batch, ms. Default 2. */
  readonly lingerMs?: number;
  /** Records per produce request. Default 2000. */
  readonly maxBatchRecords?: number;
  /** Bytes waiting or in flight before `append` refuses more. Default 64 MiB. */
  readonly maxBufferedBytes?: number;
  /** Called with each produce's duration, ms. */
  readonly onProduced?: (ms: number, records: number) => void;
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
  readonly settle: (outcome: AppendOutcome) => void;
}

/**
 * Appends records to a Kafka topic with acks=all, gathering the records of many frames for a few
 * milliseconds into one produce request. `append` resolves only once Kafka has stored every record
 * of the call, or with a refusal the caller turns into a "resend later" answer: nothing is ever
 * acknowledged that was not stored, and nothing waits in memory beyond `maxBufferedBytes`.
 */
export class EventLog {
  private readonly producer: Producer;
  private readonly topic: string;
  private readonly lingerMs: number;
  private readonly maxBatchRecords: number;
  private readonly maxBufferedBytes: number;
  private readonly options: EventLogOptions;
  private waiting: Waiting[] = [];
  private waitingRecords = 0;
  private timer: NodeJS.Timeout | undefined;
  private inFlight = new Set<Promise<void>>();
  private buffered = 0;
  private isAvailable = true;

  constructor(producer: Producer, options: EventLogOptions) {
    this.producer = producer;
    this.options = options;
    this.topic = options.topic;
    this.lingerMs = options.lingerMs ?? 2;
    this.maxBatchRecords = options.maxBatchRecords ?? 2000;
    this.maxBufferedBytes = options.maxBufferedBytes ?? 64 * 1024 * 1024;
  }

  /** Bytes accepted by `append` and not yet stored or refused. */
  get bufferedBytes(): number {
    return this.buffered;
  }

  /** False after a produce failed, until one succeeds again. */
  get available(): boolean {
    return this.isAvailable;
  }

  append(records: readonly LogRecord[]): Promise<AppendOutcome> {
    if (records.length === 0) return Promise.resolve({ stored: true });
    let bytes = 0;
    for (const record of records) bytes += record.value.length + record.key.length;
    if (this.buffered + bytes > this.maxBufferedBytes) {
      return Promise.resolve({ stored: false, reason: 'overloaded', retryAfterMs: 1000 });
    }
    return new Promise((settle) => {
      this.buffered += bytes;
      this.waiting.push({ records, bytes, settle });
      this.waitingRecords += records.length;
      if (this.waitingRecords >= this.maxBatchRecords) this.flush();
      else this.timer ??= setTimeout(() => this.flush(), this.lingerMs);
    });
  }

  /** Sends what waits now and resolves when every produce in flight has finished. */
  async drain(): Promise<void> {
    this.flush();
    while (this.inFlight.size > 0) await Promise.allSettled([...this.inFlight]);
  }

  private flush(): void {
    if (this.timer !== undefined) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    while (this.waiting.length > 0) {
      const batch: Waiting[] = [];
      let count = 0;
      while (this.waiting.length > 0 && (count === 0 || count + (this.waiting[0] as Waiting).records.length <= this.maxBatchRecords)) {
        const next = this.waiting.shift() as Waiting;
        batch.push(next);
        count += next.records.length;
      }
      this.waitingRecords -= count;
      const sending = this.send(batch, count);
      this.inFlight.add(sending);
      void sending.finally(() => this.inFlight.delete(sending));
    }
  }

  private async send(batch: readonly Waiting[], count: number): Promise<void> {
    const messages: Message[] = new Array<Message>(count);
    let i = 0;
    for (const waiting of batch) for (const record of waiting.records) messages[i++] = record;
    const now = this.options.now ?? Date.now;
    const started = now();
    let outcome: AppendOutcome;
    try {
      await this.producer.send({ topic: this.topic, acks: -1, messages });
      this.options.onProduced?.(now() - started, count);
      outcome = { stored: true };
      if (!this.isAvailable) {
        this.isAvailable = true;
        this.options.onAvailability?.(true);
      }
    } catch (error) {
      outcome = { stored: false, reason: 'unavailable', retryAfterMs: 2000 };
      if (this.isAvailable) {
        this.isAvailable = false;
        this.options.onAvailability?.(false, error);
      }
    }
    for (const waiting of batch) {
      this.buffered -= waiting.bytes;
      waiting.settle(outcome);
    }
  }
}
