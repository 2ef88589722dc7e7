import type { Server } from 'node:http';
import { availableParallelism } from 'node:os';
import { createKafka, createProducer, ensureTopics } from '@dwell/kafka';
import { MetricsRegistry, threadCpuSeconds, type Logger } from '@dwell/runtime';
import { ExposureStore, migrate, openWarehouse, type Warehouse } from '@dwell/warehouse';
import type { ProcessorConfig } from './config.js';
import { ExposureConsumer } from './exposure-consumer.js';
import { createProcessorHttp } from './http.js';
import { InThreadEngine, SpreadEngine, WorkerThreadEngine } from './partition-engine.js';

export interface Processor {
  readonly httpUrl: string;
  readonly warehouse: Warehouse;
  stop(): Promise<void>;
}

/**
 * One processor: a member of the consumer group on the events topic that computes exposure and
 * lands it in ClickHouse (see ExposureConsumer), plus its HTTP API.
 */
export interface ProcessorHooks {
  /** Wraps the ClickHouse result store, e.g. to inject faults in tests. */
  readonly store?: (store: ExposureStore) => ExposureStore;
}

export async function startProcessor(config: ProcessorConfig, logger: Logger, hooks: ProcessorHooks = {}): Promise<Processor> {
  if (config.KAFKA_BROKERS === undefined) throw new Error('KAFKA_BROKERS is required to start the processor');
  const log = logger.child({ component: 'processor', processor_id: config.PROCESSOR_ID });
  const warehouse = await openWarehouse({
    url: config.CLICKHOUSE_URL,
    username: config.CLICKHOUSE_USER,
    password: config.CLICKHOUSE_PASSWORD,
    database: config.CLICKHOUSE_DATABASE,
    dataDir: config.CLICKHOUSE_DATA_DIR,
  });
  const migrations = await migrate(warehouse, undefined, (message) => log.info('migrating', { step: message }));
  log.info('clickhouse ready', { mode: warehouse.mode, location: warehouse.location, database: warehouse.database, applied: migrations.applied });

  const metrics = new MetricsRegistry().withProcessMetrics('dwell_processor');
  const kafka = createKafka({ brokers: config.KAFKA_BROKERS, clientId: `dwell-processor-${config.PROCESSOR_ID}`, logger: log });
  await ensureTopics(kafka, [{ topic: config.DWELL_EVENTS_TOPIC }, { topic: config.DWELL_REJECTED_TOPIC }]);
  const producer = createProducer(kafka);
  await producer.connect();
  const consumer = kafka.consumer({
    groupId: config.PROCESSOR_GROUP_ID,
    allowAutoTopicCreation: false,
    maxWaitTimeInMs: 100,
    maxBytesPerPartition: 4 * 1024 * 1024,
    sessionTimeout: config.PROCESSOR_SESSION_TIMEOUT_MS,
    heartbeatInterval: Math.max(500, Math.floor(config.PROCESSOR_SESSION_TIMEOUT_MS / 10)),
  });
  await consumer.connect();
  let ready = false;
  consumer.on(consumer.events.GROUP_JOIN, () => (ready = true));
  const threads = config.PROCESSOR_WORKER_THREADS === 0 ? Math.min(8, availableParallelism()) : config.PROCESSOR_WORKER_THREADS;
  const engine = !config.PROCESSOR_WORKER_THREAD
    ? new InThreadEngine()
    : threads === 1
      ? new WorkerThreadEngine()
      : new SpreadEngine(Array.from({ length: threads }, () => new WorkerThreadEngine()));
  metrics.gauge(
    'dwell_processor_worker_cpu_seconds_total',
    'CPU seconds used by each partition worker thread (Linux; partition p computes on worker p mod the number of workers). A worker whose rate nears one second per second is what limits the processor.',
    () =>
      engine.workerThreadIds().flatMap((id, worker) => {
        const seconds = id === undefined ? undefined : threadCpuSeconds(id);
        return seconds === undefined ? [] : [[{ worker: String(worker) }, seconds] as const];
      }),
  );
  const exposure = new ExposureConsumer({
    kafka,
    consumer,
    producer,
    engine,
    store: (hooks.store ?? ((store) => store))(new ExposureStore(warehouse)),
    logger: log,
    metrics,
    options: {
      topic: config.DWELL_EVENTS_TOPIC,
      rejectedTopic: config.DWELL_REJECTED_TOPIC,
      processorId: config.PROCESSOR_ID,
      flushIntervalMs: config.PROCESSOR_FLUSH_INTERVAL_MS,
      maxFlushIntervalMs: config.PROCESSOR_MAX_FLUSH_INTERVAL_MS,
      impressionIntervalMs: config.PROCESSOR_IMPRESSION_INTERVAL_MS,
      snapshotIntervalMs: config.PROCESSOR_SNAPSHOT_INTERVAL_MS,
      snapshotMaxPercent: config.PROCESSOR_SNAPSHOT_MAX_PERCENT,
      snapshotDeltaPercent: config.PROCESSOR_SNAPSHOT_DELTA_PERCENT,
      keepSnapshots: 3,
    },
  });
  await exposure.start();

  const http: Server = createProcessorHttp({ warehouse, metrics, ready: () => ready });
  await new Promise<void>((resolve, reject) => {
    http.once('error', reject);
    http.listen(config.PROCESSOR_HTTP_PORT, config.PROCESSOR_HTTP_HOST, resolve);
  });
  const address = http.address();
  const port = typeof address === 'object' && address !== null ? address.port : config.PROCESSOR_HTTP_PORT;
  const httpUrl = `http://${config.PROCESSOR_HTTP_HOST}:${port}`;
  log.info('consuming', { topic: config.DWELL_EVENTS_TOPIC, group: config.PROCESSOR_GROUP_ID, http: httpUrl, workerThreads: config.PROCESSOR_WORKER_THREAD ? threads : 0 });

  let stopping: Promise<void> | undefined;
  return {
    httpUrl,
    warehouse,
    stop: () =>
      (stopping ??= (async () => {
        await exposure.stop();
        await engine.close();
        await producer.disconnect();
        await new Promise<void>((resolve) => {
          http.close(() => resolve());
          http.closeAllConnections();
        });
        await warehouse.close();
        log.info('stopped');
      })()),
  };
}
