/**
 * The thin slice, end to end with the real parts: an event sent over a WebSocket to the
 * uWebSockets.js gateway is stored in Kafka as Avro, consumed by the processor and queryable in
 * ClickHouse (embedded chDB, or the server the integration setup names).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import WebSocket from 'ws';
import { gatewayConfigFromEnv, mintToken, startGateway, type Gateway } from '@dwell/gateway';
import { createKafka } from '@dwell/kafka';
import { processorConfigFromEnv, startProcessor, type Processor } from '@dwell/processor';
import { decodePageEvent, encodeJsonFrame, type PageEvent } from '@dwell/protocol';
import { createLogger } from '@dwell/runtime';
import { demoPageView } from './commands/demo.js';
import { uuidv7 } from './uuid.js';
import { dropTestDatabase, eventually, testBrokers, uniqueName } from '../../../test/support.js';

const secret = 'integration-secret-0123456789';
const topic = uniqueName('events');
const rejectedTopic = uniqueName('rejected');
const database = uniqueName('pipeline');
const dataDir = mkdtempSync(join(tmpdir(), 'dwell-pipeline-'));
const logger = createLogger({ level: 'warn' });
let gateway: Gateway;
let processor: Processor;

beforeAll(async () => {
  const env = {
    KAFKA_BROKERS: testBrokers().join(','),
    DWELL_EVENTS_TOPIC: topic,
    DWELL_REJECTED_TOPIC: rejectedTopic,
    DWELL_SITES: JSON.stringify({ 'site-a': { secret, origins: ['*'] } }),
    GATEWAY_PORT: '0',
    GATEWAY_ID: 'gw-test',
    PROCESSOR_HTTP_PORT: '0',
    PROCESSOR_GROUP_ID: uniqueName('group'),
    CLICKHOUSE_URL: inject('clickhouseUrl'),
    CLICKHOUSE_USER: inject('clickhouseUser'),
    CLICKHOUSE_PASSWORD: inject('clickhousePassword'),
    CLICKHOUSE_DATABASE: database,
    CLICKHOUSE_DATA_DIR: dataDir,
  };
  processor = await startProcessor(processorConfigFromEnv(env), logger);
  gateway = await startGateway(gatewayConfigFromEnv(env), logger);
});

afterAll(async () => {
  await gateway?.stop();
  await processor?.stop();
  await dropTestDatabase(database);
  rmSync(dataDir, { recursive: true, force: true });
});

describe('thin slice: WebSocket → Kafka → processor → ClickHouse', () => {
  it('lands a page view sent over a WebSocket in ClickHouse, stamped by the gateway', async () => {
    const pageViewId = uuidv7();
    const events = demoPageView(pageViewId, Date.now());
    // A read-only query first: it must not make the processor's own writes read-only.
    const sql = async (query: string): Promise<unknown> =>
      (await fetch(`${processor.httpUrl}/v1/sql?query=${encodeURIComponent(query)}`)).json();
    expect(await sql('SELECT 1 AS one')).toEqual([{ one: 1 }]);
    expect(await sql(`INSERT INTO ${database}.page_events (seq) VALUES (1)`)).toMatchObject({ error: expect.stringMatching(/readonly/) });
    const token = mintToken({ site_id: 'site-a', user_id: 'user-1', exp: Math.floor(Date.now() / 1000) + 60 }, secret);
    const socket = new WebSocket(`ws://127.0.0.1:${gateway.port}/v1/ws?token=${token}`);
    const frames: Array<{ t: string; n?: number }> = [];
    socket.on('message', (data) => frames.push(JSON.parse(String(data)) as { t: string; n?: number }));
    await new Promise<void>((resolve, reject) => {
      socket.once('open', () => resolve());
      socket.once('error', reject);
    });
    const before = Date.now();
    socket.send(encodeJsonFrame(events));
    await eventually('the ack of frame 1', async () => (frames.some((f) => f.t === 'ack' && f.n === 1) ? true : undefined));
    socket.close();

    // On the topic: the same events, decoded from Avro, stamped with recv_ms and the gateway id.
    const kafka = createKafka({ brokers: testBrokers(), clientId: uniqueName('reader') });
    const consumer = kafka.consumer({ groupId: uniqueName('reader') });
    const logged: PageEvent[] = [];
    await consumer.connect();
    await consumer.subscribe({ topic, fromBeginning: true });
    await consumer.run({
      eachMessage: async ({ message }) => {
        if (message.value !== null) logged.push(decodePageEvent(message.value));
      },
    });
    await eventually('the events on the topic', async () => (logged.length >= events.length ? true : undefined));
    await consumer.disconnect();
    expect(logged.map((e) => e.event).sort((a, b) => a.seq - b.seq)).toEqual(events);
    for (const event of logged) {
      expect(event.gateway_id).toBe('gw-test');
      expect(event.site_id).toBe('site-a');
      expect(event.user_id).toBe('user-1');
      expect(event.recv_ms).toBeGreaterThanOrEqual(before);
      expect(event.recv_ms).toBeLessThanOrEqual(Date.now());
    }

    // In ClickHouse, through the processor.
    const rows = await eventually('the rows in ClickHouse', async () => {
      const result = await processor.warehouse.client.query({
        query: `SELECT seq, kind, user_id, site_id FROM ${database}.page_events FINAL WHERE page_view_id = {id:String} ORDER BY seq`,
        query_params: { id: pageViewId },
        format: 'JSONEachRow',
      });
      const found = await result.json<{ seq: number | string; kind: string; user_id: string; site_id: string }>();
      return found.length >= events.length ? found : undefined;
    });
    expect(rows.map((r) => [Number(r.seq), r.kind, r.user_id, r.site_id])).toEqual(
      events.map((e) => [e.seq, e.kind, 'user-1', 'site-a']),
    );
  });
});
