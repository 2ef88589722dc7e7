import type { Producer } from '@dwell/kafka';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { EventLog, type AppendOutcome, type LogRecord } from './event-log.js';

/** A producer whose sends stay in flight until the test settles them. */
class HeldProducer {
  readonly sends: Array<{ keys: string[]; done: () => void; fail: (error: Error) => void }> = [];
  send = ({ messages }: { messages: LogRecord[] }): Promise<unknown> =>
    new Promise((resolve, reject) => {
      this.sends.push({ keys: messages.map((m) => m.key), done: () => resolve([]), fail: reject });
    });
  asProducer(): Producer {
    return this as unknown as Producer;
  }
}

const records = (prefix: string, count: number): LogRecord[] =>
  Array.from({ length: count }, (_, i) => ({ key: `${prefix}${i}`, value: Buffer.alloc(10) }));

/** Lets pending promise callbacks run (no timers advance). */
const settleMicrotasks = async (): Promise<void> => {
  for (let i = 0; i < 5; i++) await Promise.resolve();
};

/** True while `promise` has not settled after pending callbacks ran. */
const isPending = async (promise: Promise<unknown>): Promise<boolean> => {
  let settled = false;
  void promise.then(() => (settled = true));
  await settleMicrotasks();
  return !settled;
};

describe('EventLog', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('sends nothing before the linger, then everything that waited in one request', async () => {
    const producer = new HeldProducer();
    const log = new EventLog(producer.asProducer(), { topic: 't', lingerMs: 2, now: () => Date.now() });
    const first = log.append(records('a', 2));
    const second = log.append(records('b', 3));
    expect(producer.sends).toHaveLength(0);
    await vi.advanceTimersByTimeAsync(2);
    expect(producer.sends.map((s) => s.keys)).toEqual([['a0', 'a1', 'b0', 'b1', 'b2']]);
    producer.sends[0]?.done();
    expect(await first).toEqual({ stored: true });
    expect(await second).toEqual({ stored: true });
    expect(log.bufferedBytes).toBe(0);
  });

  it('gathers records while a request is in flight and sends them when it returns', async () => {
    const producer = new HeldProducer();
    const log = new EventLog(producer.asProducer(), { topic: 't', lingerMs: 2, now: () => Date.now() });
    const first = log.append(records('a', 1));
    await vi.advanceTimersByTimeAsync(2);
    expect(producer.sends).toHaveLength(1);
    // Arrivals during the flight wait for it, however long it takes, as long as no batch is full.
    const later: Array<Promise<AppendOutcome>> = [];
    for (let i = 0; i < 10; i++) {
      later.push(log.append(records(`b${i}-`, 1)));
      await vi.advanceTimersByTimeAsync(3);
    }
    expect(producer.sends).toHaveLength(1);
    producer.sends[0]?.done();
    await settleMicrotasks();
    // They lingered long enough already: one request leaves at once with all of them.
    expect(producer.sends).toHaveLength(2);
    expect(producer.sends[1]?.keys).toHaveLength(10);
    producer.sends[1]?.done();
    expect(await first).toEqual({ stored: true });
    for (const outcome of await Promise.all(later)) expect(outcome).toEqual({ stored: true });
  });

  it('lets a second request leave only with a full batch, and never more than maxInFlight', async () => {
    const producer = new HeldProducer();
    const log = new EventLog(producer.asProducer(), { topic: 't', lingerMs: 2, maxBatchRecords: 4, maxInFlight: 2, now: () => Date.now() });
    void log.append(records('a', 1));
    await vi.advanceTimersByTimeAsync(2);
    expect(producer.sends).toHaveLength(1);
    void log.append(records('b', 3));
    expect(producer.sends).toHaveLength(1);
    void log.append(records('c', 2));
    // 5 waiting ≥ 4: a full batch leaves; an append is never split, so the batch holds b0-b2.
    expect(producer.sends.map((s) => s.keys.length)).toEqual([1, 3]);
    void log.append(records('d', 3));
    expect(producer.sends).toHaveLength(2);
    producer.sends[0]?.done();
    await settleMicrotasks();
    // A slot is free and 5 records wait: the next full batch (c0, c1 and d0-d2 would be 5 > 4: c only).
    expect(producer.sends.map((s) => s.keys)).toEqual([['a0'], ['b0', 'b1', 'b2'], ['c0', 'c1']]);
  });

  it('refuses appends once the oldest waiting record is older than maxWaitMs, and accepts again when it left', async () => {
    const producer = new HeldProducer();
    const log = new EventLog(producer.asProducer(), { topic: 't', lingerMs: 2, maxWaitMs: 100, now: () => Date.now() });
    void log.append(records('a', 1));
    await vi.advanceTimersByTimeAsync(2);
    void log.append(records('b', 1));
    await vi.advanceTimersByTimeAsync(100);
    expect(log.oldestWaitMs).toBe(100);
    const c = log.append(records('c', 1));
    expect(await isPending(c)).toBe(true);
    await vi.advanceTimersByTimeAsync(1);
    expect(await log.append(records('d', 1))).toEqual({ stored: false, reason: 'overloaded', retryAfterMs: 1000 });
    producer.sends[0]?.done();
    await settleMicrotasks();
    expect(producer.sends[1]?.keys).toEqual(['b0', 'c0']);
    expect(log.oldestWaitMs).toBe(0);
    expect(await isPending(log.append(records('e', 1)))).toBe(true);
  });

  it('refuses appends beyond maxBufferedBytes', async () => {
    const producer = new HeldProducer();
    const log = new EventLog(producer.asProducer(), { topic: 't', maxBufferedBytes: 30, now: () => Date.now() });
    void log.append(records('a', 2)); // 2 × (10 + 2) bytes
    expect(await log.append(records('b', 1))).toEqual({ stored: false, reason: 'overloaded', retryAfterMs: 1000 });
    expect(log.bufferedBytes).toBe(24);
  });

  it('nacks a failed request and what waited behind it, then probes again with the next append', async () => {
    const producer = new HeldProducer();
    const availability: boolean[] = [];
    const log = new EventLog(producer.asProducer(), { topic: 't', lingerMs: 2, now: () => Date.now(), onAvailability: (a) => availability.push(a) });
    const first = log.append(records('a', 1));
    await vi.advanceTimersByTimeAsync(2);
    const behind = log.append(records('b', 1));
    producer.sends[0]?.fail(new Error('broker gone'));
    const unavailable = { stored: false, reason: 'unavailable', retryAfterMs: 2000 };
    expect(await first).toEqual(unavailable);
    expect(await behind).toEqual(unavailable);
    expect(producer.sends).toHaveLength(1);
    expect(log.available).toBe(false);
    expect(log.bufferedBytes).toBe(0);
    const next = log.append(records('c', 1));
    await vi.advanceTimersByTimeAsync(2);
    expect(producer.sends[1]?.keys).toEqual(['c0']);
    producer.sends[1]?.done();
    expect(await next).toEqual({ stored: true });
    expect(availability).toEqual([false, true]);
  });

  it('drain sends what waits at once and resolves when every request returned', async () => {
    const producer = new HeldProducer();
    const log = new EventLog(producer.asProducer(), { topic: 't', lingerMs: 1000, maxBatchRecords: 2, maxInFlight: 1, now: () => Date.now() });
    const appended = [log.append(records('a', 2)), log.append(records('b', 2)), log.append(records('c', 1))];
    let drained = false;
    const draining = log.drain().then(() => (drained = true));
    for (let i = 0; i < 3; i++) {
      await settleMicrotasks();
      expect(producer.sends).toHaveLength(i + 1);
      expect(drained).toBe(false);
      producer.sends[i]?.done();
    }
    await draining;
    expect(producer.sends.map((s) => s.keys)).toEqual([['a0', 'a1'], ['b0', 'b1'], ['c0']]);
    for (const outcome of await Promise.all(appended)) expect(outcome).toEqual({ stored: true });
  });
  it('submit settles each call exactly once: at once when refused, after Kafka stored it otherwise', async () => {
    const producer = new HeldProducer();
    const waited: number[] = [];
    const log = new EventLog(producer.asProducer(), {
      topic: 't',
      lingerMs: 2,
      maxBufferedBytes: 30,
      now: () => Date.now(),
      onWaited: (ms) => waited.push(ms),
    });
    const outcomes: Array<[string, AppendOutcome]> = [];
    log.submit(records('a', 2), (outcome) => outcomes.push(['a', outcome]));
    log.submit(records('b', 1), (outcome) => outcomes.push(['b', outcome]));
    // b would exceed maxBufferedBytes: refused before submit returns.
    expect(outcomes).toEqual([['b', { stored: false, reason: 'overloaded', retryAfterMs: 1000 }]]);
    log.submit([], (outcome) => outcomes.push(['empty', outcome]));
    expect(outcomes.at(-1)).toEqual(['empty', { stored: true }]);
    await vi.advanceTimersByTimeAsync(2);
    expect(waited).toEqual([2]);
    expect(outcomes).toHaveLength(2);
    producer.sends[0]?.done();
    await settleMicrotasks();
    expect(outcomes).toEqual([
      ['b', { stored: false, reason: 'overloaded', retryAfterMs: 1000 }],
      ['empty', { stored: true }],
      ['a', { stored: true }],
    ]);
    expect(log.bufferedBytes).toBe(0);
  });

  it('settles every record of a batch even when one caller\'s callback throws', async () => {
    const producer = new HeldProducer();
    const log = new EventLog(producer.asProducer(), { topic: 't', lingerMs: 2, now: () => Date.now() });
    const uncaught: unknown[] = [];
    const realQueueMicrotask = globalThis.queueMicrotask;
    globalThis.queueMicrotask = (task: () => void) =>
      realQueueMicrotask(() => {
        try {
          task();
        } catch (error) {
          uncaught.push(error);
        }
      });
    try {
      log.submit(records('a', 1), () => {
        throw new Error('caller bug');
      });
      const second = log.append(records('b', 1));
      await vi.advanceTimersByTimeAsync(2);
      producer.sends[0]?.done();
      expect(await second).toEqual({ stored: true });
      await settleMicrotasks();
      expect(uncaught).toEqual([new Error('caller bug')]);
      expect(log.bufferedBytes).toBe(0);
    } finally {
      globalThis.queueMicrotask = realQueueMicrotask;
    }
  });
});
