import { createServer, type Server } from 'node:http';
import { createKafka, ensureTopics, type Consumer, type EachBatchPayload } from '@dwell/kafka';
import { decodePageEvent, type PageEvent } from '@dwell/protocol';
import { MetricsRegistry, type Logger } from '@dwell/runtime';
import { migrate, openWarehouse, type Warehouse } from '@dwell/warehouse';
import type { ProcessorConfig } from './config.js';

export interface Processor {
  readonly httpUrl: string;
  readonly warehouse: Warehouse;
  stop(): Promise<void>;
}

/**
 * Consumes the ledger topic in a consumer group and lands what it reads in ClickHouse. Offsets are
 * committed only after ClickHouse acknowledged the insert, and every insert carries a
 * deduplication token derived from its exact offset range, so a redelivered batch is stored once.
 */
export async function startProcessor(config: ProcessorConfig, logger: Logger): Promise<Processor> {
  if (config.KAFKA_BROKERS === undefined) throw new Error('KAFKA_BROKERS is required to start the processor');
  const log = logger.child({ component: 'processor', processor_id: config.PROCESSOR_ID });
  const warehouse = await openWarehouse({
    url: config.CLICKHOUSE_URL,
    username: config.CLICKHOUSE_USER,
    password: config.CLICKHOUSE_PASSWORD,
    database: config.CLICKHOUSE_DATABASE,
    dataDir: config.CLICKHOUSE_DATA_DIR,
  });
  const migrations = await migrate(warehouse);
  log.info('clickhouse ready', { mode: warehouse.mode, location: warehouse.location, database: warehouse.database, applied: migrations.applied });

  const metrics = new MetricsRegistry().withProcessMetrics('dwell_processor');
  const eventsProcessed = metrics.counter('dwell_processor_events_total', 'Events read from the log and stored.').labels();
  const undecodable = metrics.counter('dwell_processor_undecodable_total', 'Log records that did not decode.').labels();
  const insertMs = metrics.histogram('dwell_processor_insert_duration_ms', 'ClickHouse insert latency, ms.', [5, 10, 25, 50, 100, 250, 500, 1000, 5000]);

  const kafka = createKafka({ brokers: config.KAFKA_BROKERS, clientId: `dwell-processor-${config.PROCESSOR_ID}`, logger: log });
  await ensureTopics(kafka, [{ topic: config.DWELL_EVENTS_TOPIC }, { topic: config.DWELL_REJECTED_TOPIC }]);
  const consumer: Consumer = kafka.consumer({ groupId: config.PROCESSOR_GROUP_ID, allowAutoTopicCreation: false });
  await consumer.connect();
  await consumer.subscribe({ topic: config.DWELL_EVENTS_TOPIC, fromBeginning: true });

  const table = `${warehouse.database}.page_events`;
  await consumer.run({
    autoCommit: false,
    eachBatchAutoResolve: false,
    eachBatch: async ({ batch, heartbeat, isRunning, isStale }: EachBatchPayload) => {
      if (batch.messages.length === 0 || !isRunning() || isStale()) return;
      const rows: Record<string, unknown>[] = [];
      for (const message of batch.messages) {
        if (message.value === null) continue;
        let event: PageEvent;
        try {
          event = decodePageEvent(message.value);
        } catch (error) {
          undecodable.inc();
          log.error('undecodable record on the ledger topic', { partition: batch.partition, offset: message.offset, error });
          continue;
        }
        rows.push({
          page_view_id: event.event.page_view_id,
          seq: event.event.seq,
          kind: event.event.kind,
          site_id: event.site_id,
          user_id: event.user_id,
          recv_ms: event.recv_ms,
          t_mono_ms: event.event.t_mono_ms,
          t_wall_ms: event.event.t_wall_ms,
          gateway_id: event.gateway_id,
          transport: event.transport,
          impressions: event.event.impressions.length,
          topic: batch.topic,
          partition: batch.partition,
          offset: message.offset,
        });
      }
      const first = batch.firstOffset() ?? '0';
      const last = batch.lastOffset();
      const started = Date.now();
      await warehouse.client.insert({
        table,
        values: rows,
        format: 'JSONEachRow',
        clickhouse_settings: { insert_deduplication_token: `${batch.topic}:${batch.partition}:${first}-${last}:v1` },
      });
      insertMs.observe(Date.now() - started);
      eventsProcessed.inc(rows.length);
      await consumer.commitOffsets([
        { topic: batch.topic, partition: batch.partition, offset: (BigInt(last) + 1n).toString() },
      ]);
      await heartbeat();
    },
  });

  const http: Server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://processor');
    const path = url.pathname;
    if (path === '/v1/sql' && req.method === 'GET') {
      void readOnlyQuery(warehouse, url.searchParams.get('query') ?? '').then(
        (rows) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(rows)),
        (error: unknown) =>
          res.writeHead(400, { 'content-type': 'application/json' }).end(JSON.stringify({ error: String(error) })),
      );
      return;
    }
    if (path === '/healthz') return void res.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
    if (path === '/readyz') return void res.writeHead(200, { 'content-type': 'text/plain' }).end('ready');
    if (path === '/metrics') {
      return void res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' }).end(metrics.render());
    }
    res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
  });
  await new Promise<void>((resolve, reject) => {
    http.once('error', reject);
    http.listen(config.PROCESSOR_HTTP_PORT, config.PROCESSOR_HTTP_HOST, resolve);
  });
  const address = http.address();
  const port = typeof address === 'object' && address !== null ? address.port : config.PROCESSOR_HTTP_PORT;
  const httpUrl = `http://${config.PROCESSOR_HTTP_HOST}:${port}`;
  log.info('consuming', { topic: config.DWELL_EVENTS_TOPIC, group: config.PROCESSOR_GROUP_ID, http: httpUrl });

  let stopping: Promise<void> | undefined;
  return {
    httpUrl,
    warehouse,
    stop: () =>
      (stopping ??= (async () => {
        await consumer.disconnect();
        await new Promise<void>((resolve) => http.close(() => resolve()));
        http.closeAllConnections();
        await warehouse.close();
        log.info('stopped');
      })()),
  };
}

/**
 * Read-only SQL for operators and `dwell sql` while the processor owns the embedded database
 * (one process per chDB data folder). ClickHouse enforces `readonly = 1`: no writes, no settings.
 */
async function readOnlyQuery(warehouse: Warehouse, query: string): Promise<unknown[]> {
  if (query.trim() === '') throw new Error('pass ?query=SELECT …');
  const result = await warehouse.readOnly().query({ query, format: 'JSONEachRow' });
  return result.json();
}
