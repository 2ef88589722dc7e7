import { join } from 'node:path';
import { startGateway, gatewayConfigFromEnv } from '@dwell/gateway';
import { startLocalKafka, type LocalKafka } from '@dwell/kafka';
import { startProcessor, processorConfigFromEnv } from '@dwell/processor';
import { createLogger, onShutdownSignal, type LogLevel } from '@dwell/runtime';
import { mintToken } from '@dwell/gateway';
import { DEV_SITE_ID, DEV_SITE_SECRET, DEV_SITES_JSON, withDevDefaults } from '../env.js';

/**
 * `dwell up`: the whole pipeline on one machine. A local Kafka broker unless `KAFKA_BROKERS` names
 * a cluster, the gateway, and the processor with embedded ClickHouse unless `CLICKHOUSE_URL` is set.
 * Ctrl-C or SIGTERM stops everything in reverse order; the broker's JVM never outlives us.
 */
export async function up(options: { dataDir: string; kafkaPort: number }): Promise<void> {
  const started = Date.now();
  const logger = createLogger({ level: (process.env['LOG_LEVEL'] as LogLevel | undefined) ?? 'info' });
  const say = (line: string): void => void process.stdout.write(`${line}\n`);
  const stops: Array<{ name: string; stop: () => Promise<void> }> = [];
  let stopping = false;
  const stopAll = async (): Promise<void> => {
    stopping = true;
    for (const { name, stop } of stops.reverse()) {
      say(`stopping ${name}…`);
      await stop().catch((error: unknown) => logger.error(`stopping ${name} failed`, { error }));
    }
    say('all stopped');
  };
  onShutdownSignal(stopAll, { logger, timeoutMs: 60_000 });

  try {
    let brokers = process.env['KAFKA_BROKERS'];
    let kafka: LocalKafka | undefined;
    if (brokers === undefined || brokers === '') {
      kafka = await startLocalKafka({
        dataDir: join(options.dataDir, 'kafka'),
        port: options.kafkaPort,
        onProgress: (line) => say(`kafka: ${line}`),
      });
      const localKafka = kafka;
      stops.push({ name: 'kafka', stop: () => localKafka.stop() });
      brokers = kafka.brokers;
    }
    if (stopping) return;

    const env = withDevDefaults(process.env, {
      KAFKA_BROKERS: brokers,
      DWELL_SITES: DEV_SITES_JSON,
      CLICKHOUSE_DATA_DIR: join(options.dataDir, 'clickhouse'),
    });
    const processor = await startProcessor(processorConfigFromEnv(env), logger);
    stops.push({ name: 'processor', stop: () => processor.stop() });
    if (stopping) return;
    // One in-process gateway here; `dwell gateway` runs one process per core in production.
    const gatewayConfig = { ...gatewayConfigFromEnv(env), GATEWAY_WORKERS: 1 };
    const gateway = await startGateway(gatewayConfig, logger);
    stops.push({ name: 'gateway', stop: () => gateway.stop() });

    const usingDevSite = env['DWELL_SITES'] === DEV_SITES_JSON;
    say('');
    say(`dwell is up in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    say(`  kafka      ${brokers}${kafka ? ` (local broker ${kafka.version}, data in ${kafka.dataDir})` : ''}`);
    say(`  gateway    ${gateway.url.replace('http', 'ws')}/v1/ws   POST ${gateway.url}/v1/events   ${gateway.url}/metrics`);
    say(`  processor  ${processor.httpUrl}/v1/sql   ${processor.httpUrl}/metrics`);
    say(`  clickhouse ${processor.warehouse.mode} (${processor.warehouse.location}), database ${processor.warehouse.database}`);
    if (usingDevSite) {
      const token = mintToken({ site_id: DEV_SITE_ID, user_id: 'demo-user', exp: Math.floor(Date.now() / 1000) + 86_400 }, DEV_SITE_SECRET);
      say('');
      say(`  development site "${DEV_SITE_ID}" (set DWELL_SITES for real ones); a token for user demo-user:`);
      say(`  ${token}`);
    }
    say('');
    say('  send a demo page view through the pipeline:  npx dwell demo');
    say('  Ctrl-C stops everything.');
  } catch (error) {
    logger.error('dwell up failed', { error });
    await stopAll();
    process.exitCode = 1;
    process.exit(1);
  }
}
