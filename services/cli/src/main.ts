#!/usr/bin/env node
import { parseArgs } from 'node:util';
import { ConfigError, createLogger, describeConfig, onShutdownSignal, type LogLevel } from '@dwell/runtime';

// Each command loads only what it needs (the gateway's native module, embedded ClickHouse, Kafka):
// a quick command such as `dwell command` or `dwell token` starts in a fraction of the time.

const USAGE = `dwell: server-side ad exposure measurement

usage: dwell <command> [options]

commands:
  up                     the whole pipeline on this machine: local Kafka (unless KAFKA_BROKERS),
                         gateway, processor with embedded ClickHouse (unless CLICKHOUSE_URL)
                         --data-dir DIR (default .data)  --kafka-port N (default 9092)
  gateway                one gateway (configuration from the environment): GATEWAY_WORKERS
                         processes sharing its port, default one per core
  processor              one processor process (configuration from the environment)
  token --site S --user U [--secret X] [--ttl SECONDS]
                         mint a connection token (secret: from DWELL_SITES, or the development one)
  demo                   send a demo page view through a running pipeline and show it billed
                         --gateway ws://127.0.0.1:$GATEWAY_PORT  --processor http://127.0.0.1:$PROCESSOR_HTTP_PORT (8080, 8081)
  billing [--ad ID] [--campaign ID] [--site ID] [--user ID] [--from T] [--to T]
          [--by ad|campaign|site|user|day|hour] [--format table|json|csv] [--processor URL]
                         billable exposure from ClickHouse (the server in CLICKHOUSE_URL, else the
                         running processor's billing API, else the embedded database);
                         T: ISO date or date-time, or Unix ms; default the last 30 days
  compute --in FILE [--format table|json]
                         recompute exposure offline from a file of events (an Avro container file
                         or NDJSON from \`dwell export\`, or NDJSON wire events with optional
                         recv_ms/site_id/user_id); '-' = NDJSON on stdin
  replay --from T --to T [--ad ID | --campaign ID | --site ID] [--into shadow] [--report FILE]
         [--format table|json] [--processor URL] [--workers N]
                         audit: recompute the page views that began in [from, to) from the Kafka
                         log and compare with what ClickHouse bills; exit 0 equal, 3 different,
                         4 range gone from the log, 5 not all comparable yet (docs/audit.md)
  export --from T --to T [--ad ID | --campaign ID | --site ID] --out FILE [--format avro|ndjson]
         [--workers N]
                         the raw events of those page views, as evidence for \`dwell compute\`
                         (an Avro container; NDJSON for a FILE named .ndjson or .jsonl)
  command <user> <name> [--args JSON] [--timeout MS] [--id KEY] [--site ID]
                         send a command to one connected user through Kafka and print the outcome
                         as JSON; exit 0 replied, 3 expired, 4 offline, 5 rejected (docs/commands.md)
  config                 every environment variable, its default and meaning
  help                   this text
`;

async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  if (rest.includes('--help') || rest.includes('-h')) {
    process.stdout.write(USAGE);
    return;
  }
  const logger = createLogger({ level: (process.env['LOG_LEVEL'] as LogLevel | undefined) ?? 'info' });
  switch (command) {
    case 'up': {
      const { up } = await import('./commands/up.js');
      const { values } = parseArgs({ args: rest, options: { 'data-dir': { type: 'string' }, 'kafka-port': { type: 'string' } } });
      await up({ dataDir: values['data-dir'] ?? '.data', kafkaPort: Number(values['kafka-port'] ?? process.env['DWELL_LOCAL_KAFKA_PORT'] ?? 9092) });
      return;
    }
    case 'gateway': {
      const { gatewayConfigFromEnv, runGatewayCluster } = await import('@dwell/gateway');
      const cluster = await runGatewayCluster(gatewayConfigFromEnv(process.env), logger, ['gateway', ...rest]);
      onShutdownSignal(() => cluster.stop(), { logger });
      return;
    }
    case 'processor': {
      const { processorConfigFromEnv, startProcessor } = await import('@dwell/processor');
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
      const { mintToken } = await import('@dwell/gateway');
      const secret = values.secret ?? (await siteSecret(values.site));
      const ttl = Number(values.ttl ?? 86_400);
      if (!Number.isSafeInteger(ttl) || ttl <= 0) throw new UsageError('--ttl must be a positive number of seconds');
      process.stdout.write(`${mintToken({ site_id: values.site, user_id: values.user, exp: Math.floor(Date.now() / 1000) + ttl }, secret)}\n`);
      return;
    }
    case 'demo': {
      const { DEMO_DEFAULTS, demo } = await import('./commands/demo.js');
      const { values } = parseArgs({
        args: rest,
        options: { gateway: { type: 'string' }, processor: { type: 'string' }, user: { type: 'string' } },
      });
      // The defaults follow the ports `npm start` was given, as `dwell billing` does.
      const gatewayPort = process.env['GATEWAY_PORT'];
      const processorPort = process.env['PROCESSOR_HTTP_PORT'];
      await demo(
        {
          ...DEMO_DEFAULTS,
          ...(gatewayPort ? { gateway: `ws://127.0.0.1:${gatewayPort}` } : {}),
          ...(processorPort ? { processor: `http://127.0.0.1:${processorPort}` } : {}),
          ...(values.gateway === undefined ? {} : { gateway: values.gateway }),
          ...(values.processor === undefined ? {} : { processor: values.processor }),
          ...(values.user === undefined ? {} : { user: values.user }),
        },
        (line) => process.stdout.write(`${line}\n`),
      );
      return;
    }
    case 'billing': {
      const { BillingUsageError, OUTPUT_FORMATS, billingQueryFrom, fetchBilling, formatBilling } = await import('./commands/billing.js');
      const { processorConfigFromEnv } = await import('@dwell/processor');
      const { values } = parseArgs({
        args: rest,
        options: Object.fromEntries(
          ['ad', 'campaign', 'site', 'user', 'from', 'to', 'by', 'format', 'processor'].map((name) => [name, { type: 'string' }]),
        ) as Record<string, { type: 'string' }>,
      });
      const strings = values as Record<string, string | undefined>;
      const format = (strings['format'] ?? 'table') as (typeof OUTPUT_FORMATS)[number];
      if (!OUTPUT_FORMATS.includes(format)) throw new UsageError(`--format must be one of ${OUTPUT_FORMATS.join(', ')}`);
      let query;
      try {
        query = billingQueryFrom(strings, Date.now());
      } catch (error) {
        if (error instanceof BillingUsageError) throw new UsageError(error.message);
        throw error;
      }
      const processorConfig = processorConfigFromEnv(process.env);
      const rows = await fetchBilling(
        query,
        {
          clickhouseUrl: processorConfig.CLICKHOUSE_URL,
          clickhouseUser: processorConfig.CLICKHOUSE_USER,
          clickhousePassword: processorConfig.CLICKHOUSE_PASSWORD,
          database: processorConfig.CLICKHOUSE_DATABASE,
          dataDir: processorConfig.CLICKHOUSE_DATA_DIR,
          processorUrl: strings['processor'] ?? `http://127.0.0.1:${processorConfig.PROCESSOR_HTTP_PORT}`,
        },
        (line) => process.stderr.write(`${line}\n`),
      );
      process.stdout.write(formatBilling(rows, format, query.by));
      return;
    }
    case 'compute': {
      const { values } = parseArgs({ args: rest, options: { in: { type: 'string' }, format: { type: 'string' } } });
      if (values.in === undefined) throw new UsageError('compute needs --in FILE (or --in - for stdin)');
      const format = values.format ?? 'table';
      if (format !== 'table' && format !== 'json') throw new UsageError('--format must be table or json');
      const { computeFile, formatCompute } = await import('./commands/compute.js');
      const report = await computeFile(values.in);
      process.stdout.write(formatCompute(report, format));
      return;
    }
    case 'replay':
    case 'export': {
      const { AuditUsageError } = await import('./audit/exit-codes.js');
      const run = command === 'replay' ? (await import('./commands/replay.js')).replayCommand : (await import('./commands/export.js')).exportCommand;
      try {
        process.exitCode = await run(rest, { env: process.env, stdout: process.stdout, stderr: process.stderr });
      } catch (error) {
        if (error instanceof AuditUsageError) throw new UsageError(error.message);
        throw error;
      }
      return;
    }
    case 'command': {
      const { commandCommand } = await import('./commands/command.js');
      process.exitCode = await commandCommand(rest, { env: process.env, stdout: process.stdout, stderr: process.stderr });
      return;
    }
    case 'config': {
      const { GATEWAY_SETTINGS } = await import('@dwell/gateway');
      const { PROCESSOR_SETTINGS } = await import('@dwell/processor');
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

async function siteSecret(site: string): Promise<string> {
  const raw = process.env['DWELL_SITES'];
  if (raw === undefined || raw === '') {
    if (site === 'demo') return 'dwell-dev-secret-change-me';
    throw new UsageError(`no secret for site ${site}: pass --secret or set DWELL_SITES`);
  }
  const { gatewayConfigFromEnv } = await import('@dwell/gateway');
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
  if ((error as { code?: unknown }).code?.toString().startsWith('ERR_PARSE_ARGS_') === true) {
    // An unknown or malformed option: say which, then how to call.
    process.stderr.write(`dwell: ${(error as Error).message}\n\n${USAGE}`);
    process.exit(2);
  }
  // The message says what went wrong and what to do; the stack is for LOG_LEVEL=debug.
  const debug = process.env['LOG_LEVEL'] === 'debug';
  const text = error instanceof Error ? (debug ? (error.stack ?? error.message) : error.message) : String(error);
  process.stderr.write(`dwell: ${text}${debug ? '' : ' (LOG_LEVEL=debug shows where)'}\n`);
  process.exit(1);
});
