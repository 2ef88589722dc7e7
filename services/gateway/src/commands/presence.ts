/**
 * This gateway's presence on the compacted presence topic: a heartbeat record with its epoch and
 * lease, a record per (site, user) it holds connections of, and a tombstone when the last one
 * closes (docs/commands.md, "Presence").
 */
import type { Message, Producer } from '@dwell/kafka';
import { encodePresence } from '@dwell/protocol';
import { presenceGatewayKey, presenceUserKey } from '@dwell/commands';
import type { Logger } from '@dwell/runtime';

export interface PresenceOptions {
  readonly topic: string;
  readonly gatewayId: string;
  readonly epoch: string;
  /** Heartbeat period, ms; the lease is three periods. */
  readonly heartbeatMs: number;
  readonly connections: () => number;
  readonly logger: Logger;
  /** How long records wait to share one produce request, ms. Default 2. */
  readonly lingerMs?: number;
}

export class PresencePublisher {
  private readonly producer: Producer;
  private readonly options: PresenceOptions;
  private readonly counts = new Map<string, number>();
  /** Waiting records by key: only the latest per key matters on a compacted topic. */
  private waiting = new Map<string, Buffer | null>();
  private timer: NodeJS.Timeout | undefined;
  private heartbeat: NodeJS.Timeout | undefined;
  private sending: Promise<void> = Promise.resolve();
  private stopped = false;

  constructor(producer: Producer, options: PresenceOptions) {
    this.producer = producer;
    this.options = options;
  }

  /** Writes the first heartbeat (and waits for Kafka to store it), then keeps beating. */
  async start(): Promise<void> {
    this.beat();
    await this.flush();
    this.heartbeat = setInterval(() => this.beat(), this.options.heartbeatMs);
    this.heartbeat.unref();
  }

  userConnected(siteId: string, userId: string): void {
    const key = presenceUserKey(siteId, userId, this.options.gatewayId);
    const count = (this.counts.get(key) ?? 0) + 1;
    this.counts.set(key, count);
    if (count === 1) this.enqueue(key, this.record('user', siteId, userId, 1));
  }

  userDisconnected(siteId: string, userId: string): void {
    const key = presenceUserKey(siteId, userId, this.options.gatewayId);
    const count = (this.counts.get(key) ?? 1) - 1;
    if (count > 0) {
      this.counts.set(key, count);
      return;
    }
    this.counts.delete(key);
    this.enqueue(key, null);
  }

  /** Announces the end of this gateway (lease 0: its users are offline at once) and stops beating. */
  async stop(): Promise<void> {
    if (this.heartbeat !== undefined) clearInterval(this.heartbeat);
    for (const key of this.counts.keys()) this.waiting.set(key, null);
    this.counts.clear();
    this.waiting.set(presenceGatewayKey(this.options.gatewayId), this.record('gateway', null, null, 0, 0));
    this.stopped = true;
    await this.flush();
  }

  private beat(): void {
    const key = presenceGatewayKey(this.options.gatewayId);
    this.enqueue(
      key,
      this.record('gateway', null, null, this.options.connections(), this.options.heartbeatMs * 3),
    );
  }

  private record(
    kind: 'gateway' | 'user',
    siteId: string | null,
    userId: string | null,
    connections: number,
    leaseMs = 0,
  ): Buffer {
    return encodePresence({
      kind,
      gateway_id: this.options.gatewayId,
      epoch: this.options.epoch,
      site_id: siteId,
      user_id: userId,
      connections,
      at_ms: Date.now(),
      lease_ms: leaseMs,
    });
  }

  private enqueue(key: string, value: Buffer | null): void {
    if (this.stopped) return;
    // Re-inserting moves the key to the end: records of one key leave in the order they were made.
    this.waiting.delete(key);
    this.waiting.set(key, value);
    this.timer ??= setTimeout(() => void this.flush(), this.options.lingerMs ?? 2);
  }

  /** Sends what waits, one request at a time, so records of one key reach Kafka in order. */
  private flush(): Promise<void> {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.waiting.size === 0) return this.sending;
    const batch = this.waiting;
    this.waiting = new Map();
    const messages: Message[] = [...batch].map(([key, value]) => ({ key, value }));
    this.sending = this.sending.then(async () => {
      try {
        await this.producer.send({ topic: this.options.topic, acks: -1, messages });
      } catch (error) {
        // Put them back unless newer records of the same keys were made meanwhile; the next beat retries.
        for (const [key, value] of batch) if (!this.waiting.has(key)) this.waiting.set(key, value);
        this.options.logger.warn('presence not stored; retrying with the next heartbeat', {
          records: messages.length,
          error,
        });
      }
    });
    return this.sending;
  }
}
