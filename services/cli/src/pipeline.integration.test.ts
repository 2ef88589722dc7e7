/**
 * End to end with the real parts: a page view sent over a WebSocket to the uWebSockets.js gateway is
 * stored in Kafka as Avro, computed by the processor and billed in ClickHouse (embedded chDB, or
 * the server the integration setup names).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import WebSocket from 'ws';
import { gatewayConfigFromEnv, mintToken, startGateway, type Gateway } from '@dwell/gateway';
import { createKafka } from '@dwell/kafka';
import { processorConfigFromEnv, startProcessor, type Processor } from '@dwell/processor';
import { decodePageEvent, type PageEvent } from '@dwell/protocol';
import { createLogger } from '@dwell/runtime';
import { DEMO_BILLABLE_MS, demoPageView, sendPaced } from './commands/demo.js';
import { uuidv7 } from './uuid.js';
import { dropTestDatabase, eventually, testBrokers, uniqueName } from '../../../test/support.js';
import { caughtUp, topicEnd, type Rows } from '../../../test/processor-harness.js';

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
    expect(await sql(`INSERT INTO ${database}.impressions (site_id) VALUES ('x')`)).toMatchObject({ error: expect.stringMatching(/readonly/) });
    const token = mintToken({ site_id: 'site-a', user_id: 'user-1', exp: Math.floor(Date.now() / 1000) + 60 }, secret);
    const socket = new WebSocket(`ws://127.0.0.1:${gateway.port}/v1/ws?token=${token}`);
    const frames: Array<{ t: string; n?: number }> = [];
    socket.on('message', (data) => frames.push(JSON.parse(String(data)) as { t: string; n?: number }));
    await new Promise<void>((resolve, reject) => {
      socket.once('open', () => resolve());
      socket.once('error', reject);
    });
    const before = Date.now();
    await sendPaced(socket, events);
    await eventually('the ack of every frame', async () => (frames.some((f) => f.t === 'ack' && f.n === events.length) ? true : undefined));
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

    // In ClickHouse: the impression, billed by the server from the events, once the audit trail
    // says every offset of the topic is processed (it is stored after the result rows).
    await caughtUp(async (query) => (await sql(query)) as Rows, database, await topicEnd(kafka, topic), processor.httpUrl, 60_000);
    const rows = await sql(
      `SELECT impression_id, ad_id, user_id, site_id, viewable_ms, billable FROM ${database}.impressions FINAL WHERE page_view_id = '${pageViewId}'`,
    );
    expect(rows).toEqual([
      { impression_id: `${pageViewId}-i1`, ad_id: 'demo-ad', user_id: 'user-1', site_id: 'site-a', viewable_ms: DEMO_BILLABLE_MS, billable: 1 },
    ]);
  });
});
