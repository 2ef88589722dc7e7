import { monitorEventLoopDelay } from 'node:perf_hooks';
import { createKafka, createProducer, ensureTopics, type Producer } from '@dwell/kafka';
import { DEFAULT_FRAME_LIMITS } from '@dwell/protocol';
import { MetricsRegistry, type Logger } from '@dwell/runtime';
import { startCommands } from './commands/start.js';
import type { GatewayConfig } from './config.js';
import { EventLog } from './event-log.js';
import { startGatewayServer, type RunningGateway } from './server.js';
import { loadNativeUws } from './uws.js';

/** Buckets of the latency histograms that decompose the ack latency, ms. */
const LATENCY_BOUNDS_MS = [1, 2, 3, 5, 7.5, 10, 15, 20, 30, 50, 75, 100, 250, 500, 1000, 5000];

export interface Gateway {
  readonly url: string;
  /** This process's metrics in the Prometheus text format. */
  metricsText(): string;
  readonly port: number;
  readonly server: RunningGateway;
  /** Graceful: stop accepting, flush to Kafka, close sockets with a reconnect hint, disconnect. */
  stop(): Promise<void>;
}

/** Starts one gateway process: Kafka producers, the uWebSockets.js server, metrics. */
export interface GatewayHooks {
  /** What `/metrics` serves; default: this process's metrics. Workers serve all workers' metrics. */
  readonly metricsText?: () => Promise<string>;
}

export async function startGateway(config: GatewayConfig, logger: Logger, hooks: GatewayHooks = {}): Promise<Gateway> {
  const uws = loadNativeUws();
  if (config.KAFKA_BROKERS === undefined) throw new Error('KAFKA_BROKERS is required to start the gateway');
  if (config.DWELL_SITES === undefined || config.DWELL_SITES.size === 0) {
    throw new Error('DWELL_SITES must name at least one site, e.g. {"my-site": {"secret": "…16+ chars…", "origins": ["*"]}}');
  }
  const log = logger.child({ component: 'gateway', gateway_id: config.GATEWAY_ID });
  const kafka = createKafka({ brokers: config.KAFKA_BROKERS, clientId: `dwell-gateway-${config.GATEWAY_ID}`, logger: log });
  await ensureTopics(kafka, [{ topic: config.DWELL_EVENTS_TOPIC }, { topic: config.DWELL_REJECTED_TOPIC }]);

  const producer: Producer = createProducer(kafka, { maxInFlightRequests: 5 });
  await producer.connect();

  const metrics = new MetricsRegistry().withProcessMetrics('dwell_gateway');
  // How late the event loop runs its callbacks: every frame, ack and produce waits behind this.
  // Node records each sample as the whole timer interval, the resolution included: subtract it, so
  // an idle loop reads about 0, not 10 ms.
  const LOOP_DELAY_RESOLUTION_MS = 10;
  const loopDelay = monitorEventLoopDelay({ resolution: LOOP_DELAY_RESOLUTION_MS });
  const lateMs = (ns: number): number => Math.max(0, ns / 1e6 - LOOP_DELAY_RESOLUTION_MS);
  loopDelay.enable();
  metrics.gauge(
    'dwell_gateway_event_loop_delay_ms',
    'Event-loop delay since the previous scrape of this process, ms, by quantile (1 = the largest).',
    () => {
      const quantiles: Array<readonly [{ quantile: string }, number]> = [
        [{ quantile: '0.5' }, loopDelay.count > 0 ? lateMs(loopDelay.percentile(50)) : 0],
        [{ quantile: '0.99' }, loopDelay.count > 0 ? lateMs(loopDelay.percentile(99)) : 0],
        [{ quantile: '1' }, loopDelay.count > 0 ? lateMs(loopDelay.max) : 0],
      ];
      loopDelay.reset();
      return quantiles;
    },
  );
  const produceMs = metrics.histogram('dwell_gateway_produce_duration_ms', 'Kafka produce (acks=all) latency, ms.', LATENCY_BOUNDS_MS);
  const eventWaitMs = metrics.histogram(
    'dwell_gateway_event_wait_ms',
    'How long accepted events waited for the Kafka produce request that carried them (linger, or a request in flight), ms; one sample per frame.',
    LATENCY_BOUNDS_MS,
  );
  const events = new EventLog(producer, {
    topic: config.DWELL_EVENTS_TOPIC,
    lingerMs: config.GATEWAY_LINGER_MS,
    maxBufferedBytes: config.GATEWAY_MAX_BUFFERED_BYTES,
    maxWaitMs: config.GATEWAY_MAX_WAIT_MS,
    onProduced: (ms) => produceMs.observe(ms),
    onWaited: (ms) => eventWaitMs.observe(ms),
    onAvailability: (available, error) =>
      available ? log.info('kafka available again') : log.error('kafka unavailable: refusing new events until it returns', { error }),
  });
  const rejected = new EventLog(producer, { topic: config.DWELL_REJECTED_TOPIC, lingerMs: 20, maxBufferedBytes: 16 * 1024 * 1024 });
  const commands = await startCommands(config, kafka, log, metrics);

  let server: RunningGateway;
  try {
    server = await startGatewayServer(
      {
        gatewayId: config.GATEWAY_ID,
        host: config.GATEWAY_HOST,
        port: config.GATEWAY_PORT,
        sites: config.DWELL_SITES,
        limits: {
          ...DEFAULT_FRAME_LIMITS,
          maxFrameBytes: config.GATEWAY_MAX_FRAME_BYTES,
          maxEventsPerFrame: config.GATEWAY_MAX_EVENTS_PER_FRAME,
        },
        rateEventsPerSecond: config.GATEWAY_RATE_EVENTS_PER_S,
        rateBurst: config.GATEWAY_RATE_BURST,
        maxConnectionsPerIp: config.GATEWAY_MAX_CONNECTIONS_PER_IP,
        trustedProxies: config.GATEWAY_TRUSTED_PROXIES ?? [],
        idleTimeoutSeconds: config.GATEWAY_IDLE_TIMEOUT_S,
        maxBackpressureBytes: config.GATEWAY_MAX_BACKPRESSURE_BYTES,
      },
      { uws, events, rejected, logger: log, metrics, commands: commands.channel, ...(hooks.metricsText ? { metricsText: hooks.metricsText } : {}) },
    );
  } catch (error) {
    await commands.stop();
    await producer.disconnect();
    throw error;
  }
  const url = `http://${config.GATEWAY_HOST}:${server.port}`;
  log.info('listening', { url, ws: `${url.replace('http', 'ws')}/v1/ws`, topic: config.DWELL_EVENTS_TOPIC });

  let stopping: Promise<void> | undefined;
  return {
    url,
    metricsText: () => metrics.render(),
    port: server.port,
    server,
    stop: () =>
      (stopping ??= (async () => {
        log.info('draining', { connections: server.connections });
        await server.drain(config.GATEWAY_DRAIN_TIMEOUT_MS);
        await commands.stop();
        await producer.disconnect();
        loopDelay.disable();
        log.info('stopped');
      })()),
  };
}
