#!/usr/bin/env node
import { parseArgs } from 'node:util';
import { ConfigError, createLogger, describeConfig, onShutdownSignal, type LogLevel } from '@dwell/runtime';
import { GATEWAY_SETTINGS, gatewayConfigFromEnv, mintToken, runGatewayCluster } from '@dwell/gateway';
import { PROCESSOR_SETTINGS, processorConfigFromEnv, startProcessor } from '@dwell/processor';
import { up } from './commands/up.js';
import { DEMO_DEFAULTS, demo } from './commands/demo.js';

const USAGE = `dwell: server-side ad exposure measurement

usage: dwell <command> [options]

commands:
  up                     the whole pipeline on this machine: local Kafka (unless KAFKA_BROKERS),
                         gateway, processor with embedded ClickHouse (unless CLICKHOUSE_URL)
                         --data-dir DIR (default .data)  --kafka-port N (default 9092)
  gateway                one gateway process (configuration from the environment)
  processor              one processor process (configuration from the environment)
  token --site S --user U [--secret X] [--ttl SECONDS]
                         mint a connection token (secret: from DWELL_SITES, or the development one)
  demo                   send a demo page view through a running pipeline and show it in ClickHouse
                         --gateway ws://127.0.0.1:8080  --processor http://127.0.0.1:8081
  config                 every environment variable, its default and meaning
  help                   this text
`;

async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  const logger = createLogger({ level: (process.env['LOG_LEVEL'] as LogLevel | undefined) ?? 'info' });
  switch (command) {
    case 'up': {
      const { values } = parseArgs({ args: rest, options: { 'data-dir': { type: 'string' }, 'kafka-port': { type: 'string' } } });
      await up({ dataDir: values['data-dir'] ?? '.data', kafkaPort: Number(values['kafka-port'] ?? process.env['DWELL_LOCAL_KAFKA_PORT'] ?? 9092) });
      return;
    }
    case 'gateway': {
      const cluster = await runGatewayCluster(gatewayConfigFromEnv(process.env), logger, ['gateway', ...rest]);
      onShutdownSignal(() => cluster.stop(), { logger });
      return;
    }
    case 'processor': {
      const processor = await startProcessor(processorConfigFromEnv(process.env), logger);
      onShutdownSignal(() => processor.stop(), { logger });
      return;
    }
    case 'token': {
      const { values } = parseArgs({
        args: rest,
        options: { site: { type: 'string' }, user: { type: 'string' }, secret: { type: 'string' }, ttl: { type: 'string' } },
      });
      if (values.site === undefined || values.user === undefined) throw new UsageError('token needs --site and --user');
      const secret = values.secret ?? siteSecret(values.site);
      const ttl = Number(values.ttl ?? 86_400);
      if (!Number.isSafeInteger(ttl) || ttl <= 0) throw new UsageError('--ttl must be a positive number of seconds');
      process.stdout.write(`${mintToken({ site_id: values.site, user_id: values.user, exp: Math.floor(Date.now() / 1000) + ttl }, secret)}\n`);
      return;
    }
    case 'demo': {
      const { values } = parseArgs({
        args: rest,
        options: { gateway: { type: 'string' }, processor: { type: 'string' }, user: { type: 'string' } },
      });
      await demo(
        {
          ...DEMO_DEFAULTS,
          ...(values.gateway === undefined ? {} : { gateway: values.gateway }),
          ...(values.processor === undefined ? {} : { processor: values.processor }),
          ...(values.user === undefined ? {} : { user: values.user }),
        },
        (line) => process.stdout.write(`${line}\n`),
      );
      return;
    }
    case 'config': {
      const rows = new Map<string, string>();
      for (const row of [...describeConfig(GATEWAY_SETTINGS), ...describeConfig(PROCESSOR_SETTINGS)]) rows.set(row.split('|')[1] ?? row, row);
      process.stdout.write(['| variable | default | meaning |', '|---|---|---|', ...rows.values()].join('\n') + '\n');
      return;
    }
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(USAGE);
      return;
    default:
      throw new UsageError(`unknown command ${JSON.stringify(command)}`);
  }
}

class UsageError extends Error {
  override readonly name = 'UsageError';
}

function siteSecret(site: string): string {
  const raw = process.env['DWELL_SITES'];
  if (raw === undefined || raw === '') {
    if (site === 'demo') return 'dwell-dev-secret-change-me';
    throw new UsageError(`no secret for site ${site}: pass --secret or set DWELL_SITES`);
  }
  const config = gatewayConfigFromEnv({ DWELL_SITES: raw });
  const entry = config.DWELL_SITES?.get(site);
  if (entry === undefined) throw new UsageError(`site ${site} is not in DWELL_SITES`);
  return entry.secret;
}

main(process.argv.slice(2)).catch((error: unknown) => {
  if (error instanceof UsageError) {
    process.stderr.write(`dwell: ${error.message}\n\n${USAGE}`);
    process.exit(2);
  }
  if (error instanceof ConfigError) {
    process.stderr.write(`dwell: ${error.message}\n`);
    process.exit(78);
  }
  process.stderr.write(`dwell: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
});
