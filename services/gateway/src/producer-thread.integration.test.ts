/**
 * The producer on its own thread (GATEWAY_PRODUCER_THREAD) against a real broker: when the thread
 * dies mid-stream, the frames it had not stored are refused as unavailable, the client resends
 * them, a new thread takes over, and every event the client was acknowledged for is on the topic.
 * A graceful stop drains, disconnects and ends the thread.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { encodeJsonFrame, type ClientEvent, type PageEvent } from '@dwell/protocol';
import { pageView } from '../../../test/events.js';
import { TestClient, readEvents, startTestGateway, token, type TestGateway } from '../../../test/gateway-harness.js';
import { eventually, testBrokers } from '../../../test/support.js';
import type { ThreadProducer } from './producer-thread.js';

const key = (e: ClientEvent): string => `${e.page_view_id}/${e.seq}`;
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** A client that follows docs/protocol.md: nacked frames are resent after the hinted delay. */
class ResendingClient {
  readonly frames: ClientEvent[][] = [];
  readonly nacked = new Set<number>();
  /** Event key → frame number of the first frame carrying it that was confirmed. */
  readonly confirmed = new Map<string, number>();
  highestAck = 0;
  readonly client: TestClient;

  constructor(client: TestClient) {
    this.client = client;
    client.socket.on('message', (data) => {
      const frame = JSON.parse(String(data)) as { t: string; n: number; retry_after_ms?: number };
      if (frame.t === 'nack') {
        this.nacked.add(frame.n);
        const events = this.frames[frame.n - 1] ?? [];
        setTimeout(() => this.send(events), frame.retry_after_ms ?? 1000);
      } else if (frame.t === 'ack') {
        for (let n = this.highestAck + 1; n <= frame.n; n++) {
          if (this.nacked.has(n)) continue;
          for (const event of this.frames[n - 1] ?? []) if (!this.confirmed.has(key(event))) this.confirmed.set(key(event), n);
        }
        this.highestAck = Math.max(this.highestAck, frame.n);
      }
    });
  }

  send(events: ClientEvent[]): number {
    this.frames.push(events);
    this.client.send(encodeJsonFrame(events));
    return this.frames.length;
  }
}

/** Ends the producer's thread while a produce request is in flight there. */
async function crashWhileSending(thread: ThreadProducer): Promise<void> {
  await eventually('a send in flight on the producer thread', async () => (thread.inFlight > 0 ? true : undefined), 10_000, 0);
  await thread.terminateThread();
}

const gateways: TestGateway[] = [];
afterAll(async () => {
  for (const gw of gateways) await gw.gateway.stop();
});

describe('producer thread', () => {
  it('loses nothing when the thread dies mid-stream, and the gateway keeps serving', async () => {
    const gw = await startTestGateway(testBrokers(), {
      GATEWAY_RATE_EVENTS_PER_S: '100000',
      GATEWAY_RATE_BURST: '100000',
      GATEWAY_PRODUCER_THREAD: 'true',
    });
    gateways.push(gw);
    const thread = gw.gateway.producerThread;
    if (thread === undefined) throw new Error('the gateway runs no producer thread');
    const firstThread = thread.threadId;
    const stream = new ResendingClient(await TestClient.connect(gw.port, `token=${token('user-crash')}`));

    // A steady stream: a frame of 3 events every 2 ms, for 3 s, with two crashes on the way.
    let streaming = true;
    const sending = (async () => {
      while (streaming) {
        stream.send(pageView(3));
        await sleep(2);
      }
    })();
    await sleep(800);
    await crashWhileSending(thread);
    await sleep(1200);
    await crashWhileSending(thread);
    const afterCrashes = stream.frames.length;
    await sleep(1000);
    streaming = false;
    await sending;

    expect(thread.deaths).toBe(2);
    expect(thread.threadId, 'a new thread runs').toBeDefined();
    expect(thread.threadId).not.toBe(firstThread);
    expect(stream.nacked.size, 'frames in flight on a dead thread are refused').toBeGreaterThan(0);
    expect(gw.gateway.metricsText()).toMatch(/^dwell_gateway_producer_thread_deaths_total 2$/m);

    // Every event is confirmed in the end (resends included), frames sent after the crashes too.
    const sent = stream.frames.flat();
    await eventually('every event confirmed', async () => (sent.every((e) => stream.confirmed.has(key(e))) ? true : undefined), 60_000, 50);
    expect([...stream.confirmed.values()].some((n) => n > afterCrashes), 'frames after the crashes are acknowledged').toBe(true);
    expect(stream.client.closed, 'the connection is kept').toBeUndefined();

    // Every confirmed event is on the topic (duplicates of refused-but-stored ones are the processor's job).
    const reader = await readEvents(gw.kafka, gw.topic);
    const missing = (records: readonly PageEvent[]): string[] => {
      const have = new Set(records.map((r) => key(r.event)));
      return [...stream.confirmed.keys()].filter((k) => !have.has(k));
    };
    await reader
      .waitFor(`all ${stream.confirmed.size} confirmed events on the topic`, (records) => missing(records).length === 0, 60_000)
      .catch((error: unknown) => {
        throw new Error(`${String(error)}; ${missing(reader.records).length} missing of ${stream.confirmed.size}`);
      });
    await reader.close();
    stream.client.close();
  });

  it('drains, disconnects and ends the thread on a graceful stop', async () => {
    const gw = await startTestGateway(testBrokers(), {
      GATEWAY_RATE_EVENTS_PER_S: '100000',
      GATEWAY_RATE_BURST: '100000',
      GATEWAY_PRODUCER_THREAD: 'true',
    });
    const thread = gw.gateway.producerThread;
    if (thread === undefined) throw new Error('the gateway runs no producer thread');
    const stream = new ResendingClient(await TestClient.connect(gw.port, `token=${token('user-stop')}`));
    for (let i = 0; i < 50; i++) stream.send(pageView(4));
    await eventually('some frames acknowledged', async () => (stream.highestAck > 0 ? true : undefined), 20_000, 5);
    await gw.gateway.stop();

    expect(thread.threadId, 'the thread ended').toBeUndefined();
    expect(thread.inFlight).toBe(0);
    expect(thread.deaths).toBe(0);
    await expect(thread.send({ topic: gw.topic, messages: [{ key: 'k', value: Buffer.from('v') }] })).rejects.toThrow(/not running/);

    const reader = await readEvents(gw.kafka, gw.topic);
    await reader.waitFor(
      `all ${stream.confirmed.size} confirmed events on the topic`,
      (records) => {
        const have = new Set(records.map((r) => key(r.event)));
        return [...stream.confirmed.keys()].every((k) => have.has(k));
      },
      60_000,
    );
    await reader.close();
  });
});
