/**
 * Nothing is acknowledged before Kafka stored it, and nothing is lost when Kafka goes away: the
 * broker is stopped mid-stream and restarted; the client follows the protocol (resend what was
 * nacked); afterwards every event it sent is on the topic, and no frame sent during the outage was
 * acknowledged before the broker was back.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, startLocalKafka, type LocalKafka } from '@dwell/kafka';
import { encodeJsonFrame, type ClientEvent, type PageEvent } from '@dwell/protocol';
import { pageView } from '../../../test/events.js';
import { TestClient, readEvents, startTestGateway, token, type TestGateway, type TopicReader } from '../../../test/gateway-harness.js';
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

describe('Kafka outage', () => {
  it('acks only stored events, keeps the connection, and loses nothing across a broker restart', async () => {
    const client = await TestClient.connect(gw.port, `token=${token('user-outage')}`);
    const frames: ClientEvent[][] = [];
    const ackTimes = new Map<number, number>();
    let highestAck = 0;
    client.socket.on('message', (data) => {
      const frame = JSON.parse(String(data)) as { t: string; n: number };
      if (frame.t === 'ack') {
        for (let n = highestAck + 1; n <= frame.n; n++) ackTimes.set(n, Date.now());
        highestAck = Math.max(highestAck, frame.n);
      }
    });
    const sendFrame = (events: ClientEvent[]): number => {
      frames.push(events);
      client.send(encodeJsonFrame(events));
      return frames.length;
    };

    // Before: 20 frames, all acknowledged.
    for (let i = 0; i < 20; i++) sendFrame(pageView(2));
    await client.acked(20);

    // The broker goes away; the client keeps sending.
    await broker.stop();
    const outageStarted = Date.now();
    const duringOutage: number[] = [];
    for (let i = 0; i < 20; i++) {
      duringOutage.push(sendFrame(pageView(2)));
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    await new Promise((resolve) => setTimeout(resolve, 2000));
    const ackedDuringOutage = duringOutage.filter((n) => ackTimes.has(n));
    expect(ackedDuringOutage, 'frames acknowledged while the broker was down').toEqual([]);
    expect(client.closed, 'the connection is kept').toBeUndefined();

    // The broker comes back on the same port with the same data.
    const restartAt = Date.now();
    broker = await startLocalKafka({ dataDir, port });

    // The client resends every frame that was nacked (the protocol), until all are settled.
    const settled = new Set<number>();
    const resent: ClientEvent[][] = [];
    client.socket.on('message', (data) => {
      const frame = JSON.parse(String(data)) as { t: string; n: number };
      if (frame.t === 'nack') {
        const events = frames[frame.n - 1] ?? [];
        resent.push(events);
        sendFrame(events);
      }
    });
    await eventually(
      'every frame acknowledged',
      async () => {
        for (let n = 1; n <= frames.length; n++) if (ackTimes.has(n)) settled.add(n);
        return settled.size === frames.length ? true : undefined;
      },
      120_000,
      100,
    );
    for (const n of duringOutage) {
      const ackedAt = ackTimes.get(n) ?? 0;
      // Acked after the broker came back, or nacked and resent (a later frame carries its events).
      expect(ackedAt >= restartAt || resent.includes(frames[n - 1] ?? [])).toBe(true);
    }
    expect(outageStarted).toBeLessThan(restartAt);

    // Every event the client sent is on the topic (duplicates are the processor's job).
    const reader: TopicReader<PageEvent> = await readEvents(gw.kafka, gw.topic);
    const wanted = new Set(frames.flat().map((e) => `${e.page_view_id}/${e.seq}`));
    await reader.waitFor(`all ${wanted.size} events on the topic`, (records) => {
      const have = new Set(records.map((r) => `${r.event.page_view_id}/${r.event.seq}`));
      return [...wanted].every((key) => have.has(key));
    }, 60_000);
    await reader.close();
    client.close();
  });
});
