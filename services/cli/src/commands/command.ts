/**
 * `dwell command <user> <name> [--args JSON] [--timeout MS] [--id KEY] [--site ID]`: sends one
 * command through Kafka with the @dwell/commands library (the same bus a Node backend uses, so no
 * gateway service token is needed, only access to Kafka) and prints the outcome as JSON, the
 * shape `POST /v1/commands` answers with.
 *
 * Exit codes: 0 replied, 2 usage, 3 expired, 4 offline, 5 rejected.
 */
import { parseArgs } from 'node:util';
import {
  createCommandBus,
  type CommandBus,
  type CommandBusConfig,
  type CommandOutcome,
} from '@dwell/commands';
import { gatewayConfigFromEnv, outcomeJson } from '@dwell/gateway';

export const COMMAND_EXIT = { replied: 0, usage: 2, expired: 3, offline: 4, rejected: 5 } as const;

export const COMMAND_USAGE = `usage: dwell command <user> <name> [--args JSON] [--timeout MS] [--id KEY] [--site ID]
  sends a command to one user through Kafka (KAFKA_BROKERS, default the local broker of \`dwell up\`)
  and prints its outcome as JSON; exit 0 replied, 3 expired, 4 offline, 5 rejected`;

export interface CommandIo {
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly stdout: { write(text: string): unknown };
  readonly stderr: { write(text: string): unknown };
  /** Tests inject the bus; default: one connected to the configured Kafka. */
  readonly openBus?: (config: CommandBusConfig) => Promise<CommandBus>;
}

export async function commandCommand(args: readonly string[], io: CommandIo): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...args],
      allowPositionals: true,
      options: {
        args: { type: 'string' },
        timeout: { type: 'string' },
        id: { type: 'string' },
        site: { type: 'string' },
      },
    });
  } catch (error) {
    return usage(io, error instanceof Error ? error.message : String(error));
  }
  const [user, name, ...extra] = parsed.positionals;
  if (user === undefined || name === undefined || extra.length > 0)
    return usage(io, 'command needs exactly <user> and <name>');
  let commandArgs: unknown = null;
  if (parsed.values.args !== undefined) {
    try {
      commandArgs = JSON.parse(parsed.values.args);
    } catch {
      return usage(io, '--args must be JSON, e.g. --args \'{"text":"hello"}\'');
    }
  }
  const timeoutMs = parsed.values.timeout === undefined ? undefined : Number(parsed.values.timeout);
  if (timeoutMs !== undefined && !Number.isSafeInteger(timeoutMs))
    return usage(io, '--timeout must be a whole number of milliseconds');

  const config = gatewayConfigFromEnv(io.env);
  const brokers = config.KAFKA_BROKERS ?? [`127.0.0.1:${io.env['DWELL_LOCAL_KAFKA_PORT'] ?? 9092}`];
  const openBus = io.openBus ?? createCommandBus;
  let bus: Awaited<ReturnType<typeof openBus>>;
  try {
    bus = await openBus({
      brokers,
      clientId: 'dwell-cli-command',
      topics: {
        commands: config.DWELL_COMMANDS_TOPIC,
        replies: config.DWELL_REPLIES_TOPIC,
        presence: config.DWELL_PRESENCE_TOPIC,
      },
      limits: { maxTimeoutMs: config.GATEWAY_COMMAND_MAX_TIMEOUT_MS },
    });
  } catch (error) {
    // Without this, a wrong or missing KAFKA_BROKERS ends in a bare KafkaJS stack trace.
    io.stderr.write(
      `dwell command: could not reach Kafka at ${brokers.join(',')} (set KAFKA_BROKERS to the cluster the gateways use): ${error instanceof Error ? error.message : String(error)}\n`,
    );
    return 1;
  }
  let outcome: CommandOutcome;
  try {
    outcome = await bus.send(
      user,
      { name, args: commandArgs },
      {
        ...(timeoutMs === undefined ? {} : { timeoutMs }),
        ...(parsed.values.id === undefined ? {} : { id: parsed.values.id }),
        ...(parsed.values.site === undefined ? {} : { siteId: parsed.values.site }),
      },
    );
  } finally {
    await bus.close();
  }
  io.stdout.write(`${JSON.stringify(outcomeJson(outcome))}\n`);
  return COMMAND_EXIT[outcome.outcome];
}

function usage(io: CommandIo, problem: string): number {
  io.stderr.write(`dwell: ${problem}\n\n${COMMAND_USAGE}\n`);
  return COMMAND_EXIT.usage;
}
