/**
 * Nothing is acknowledged before Kafka stored it, and nothing is lost when Kafka goes away: the
 * broker is stopped mid-stream and restarted. The client follows docs/protocol.md: an ack confirms
 * the frames it covers except those that were nacked, and nacked frames are resent after the
 * hinted delay. Afterwards every event the client sent is on the topic, and no frame sent during
 * the outage was confirmed before the broker was back.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, startLocalKafka, type LocalKafka } from '@dwell/kafka';
import { encodeJsonFrame, type ClientEvent, type PageEvent } from '@dwell/protocol';
import { pageView } from '../../../test/events.js';
import { TestClient, readEvents, startTestGateway, token, type TestGateway } from '../../../test/gateway-harness.js';
import { eventually } from '../../../test/support.js';

const dataDir = mkdtempSync(join(tmpdir(), 'dwell-outage-'));
let port: number;
let broker: LocalKafka;
let gw: TestGateway;

beforeAll(async () => {
  port = await freePort();
  broker = await startLocalKafka({ dataDir, port });
  gw = await startTestGateway([broker.brokers], { GATEWAY_RATE_EVENTS_PER_S: '10000', GATEWAY_RATE_BURST: '10000' });
});

afterAll(async () => {
  await gw?.gateway.stop();
  await broker?.stop();
  rmSync(dataDir, { recursive: true, force: true });
});

const key = (e: ClientEvent): string => `${e.page_view_id}/${e.seq}`;

describe('Kafka outage', () => {
  it('confirms only stored events, keeps the connection, and loses nothing across a broker restart', async () => {
    const client = await TestClient.connect(gw.port, `token=${token('user-outage')}`);
    const frames: ClientEvent[][] = [];
    const nacked = new Set<number>();
    /** Events of the nacked frames, by the reason given. */
    const refused = new Map<string, number>();
    /** Event key → when a frame carrying it was confirmed (acked and not nacked). */
    const confirmedAt = new Map<string, number>();
    let highestAck = 0;
    let resends = 0;
    const sendFrame = (events: ClientEvent[]): number => {
      frames.push(events);
      client.send(encodeJsonFrame(events));
      return frames.length;
    };
    client.socket.on('message', (data) => {
      const frame = JSON.parse(String(data)) as { t: string; n: number; reason?: string; retry_after_ms?: number };
      if (frame.t === 'nack') {
        nacked.add(frame.n);
        const events = frames[frame.n - 1] ?? [];
        refused.set(String(frame.reason), (refused.get(String(frame.reason)) ?? 0) + events.length);
        setTimeout(() => {
          resends += 1;
          sendFrame(events);
        }, frame.retry_after_ms ?? 1000);
      } else if (frame.t === 'ack') {
        for (let n = highestAck + 1; n <= frame.n; n++) {
          if (nacked.has(n)) continue;
          for (const event of frames[n - 1] ?? []) if (!confirmedAt.has(key(event))) confirmedAt.set(key(event), Date.now());
        }
        highestAck = Math.max(highestAck, frame.n);
      }
    });

    // Before: 20 frames, all confirmed.
    const before = Array.from({ length: 20 }, () => pageView(2));
    for (const events of before) sendFrame(events);
    await eventually('the first 20 frames confirmed', async () => (before.flat().every((e) => confirmedAt.has(key(e))) ? true : undefined));

    // The broker goes away; the client keeps sending.
    await broker.stop();
    const during = Array.from({ length: 20 }, () => pageView(2));
    for (const events of during) {
      sendFrame(events);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    await new Promise((resolve) => setTimeout(resolve, 3000));
    expect(during.flat().filter((e) => confirmedAt.has(key(e))), 'events confirmed while the broker was down').toEqual([]);
    expect(client.closed, 'the connection is kept').toBeUndefined();

    // The broker comes back on the same port with the same data.
    const restartAt = Date.now();
    broker = await startLocalKafka({ dataDir, port });
    const sent = [...before, ...during].flat();
    await eventually('every event confirmed', async () => (sent.every((e) => confirmedAt.has(key(e))) ? true : undefined), 120_000, 100);
    for (const event of during.flat()) expect(confirmedAt.get(key(event)) ?? 0).toBeGreaterThanOrEqual(restartAt);
    expect(client.closed).toBeUndefined();

    // The gateway counted exactly the events it nacked, by reason.
    expect([...refused.values()].reduce((a, b) => a + b, 0)).toBeGreaterThan(0);
    const metrics = await (await fetch(`http://127.0.0.1:${gw.port}/metrics`)).text();
    const counted = new Map([...metrics.matchAll(/^dwell_gateway_events_refused_total\{reason="(\w+)"\} (\d+)$/gm)].map((m) => [m[1], Number(m[2])]));
    expect(Object.fromEntries([...counted].filter(([, n]) => n > 0))).toEqual(Object.fromEntries(refused));

    // Every confirmed event is on the topic (duplicates are the processor's job).
    const reader = await readEvents(gw.kafka, gw.topic);
    const missing = (records: readonly PageEvent[]): string[] => {
      const have = new Set(records.map((r) => key(r.event)));
      return sent.map(key).filter((k) => !have.has(k));
    };
    await reader
      .waitFor(`all ${sent.length} events on the topic`, (records) => missing(records).length === 0, 60_000)
      .catch((error: unknown) => {
        throw new Error(`${String(error)}; ${reader.records.length} records read, ${missing(reader.records).length} missing; ${resends} resends`);
      });
    await reader.close();
    client.close();
  });
});
