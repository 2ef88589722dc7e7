import { randomBytes } from 'node:crypto';
import {
  createCommandBus,
  commandTopicSpecs,
  DEFAULT_COMMAND_LIMITS,
  type CommandBus,
  type CommandLimits,
  type CommandTopics,
} from '@dwell/commands';
import { createProducer, ensureTopics, retrying, type Kafka, type Producer } from '@dwell/kafka';
import type { Logger, MetricsRegistry } from '@dwell/runtime';
import type { GatewayConfig } from '../config.js';
import { commandChannel, type CommandChannel } from './channel.js';
import { CommandHttp } from './http.js';
import { CommandRouter } from './router.js';

export interface RunningCommands {
  readonly channel: CommandChannel;
  /** After the WebSockets closed: ends SSE streams, withdraws presence, stops the bus. */
  stop(): Promise<void>;
}

/**
 * The command side of one gateway process: delivery to its connections (GATEWAY_COMMANDS), and a
 * command bus for `POST /v1/commands` when service tokens are configured.
 */
export async function startCommands(
  config: GatewayConfig,
  kafka: Kafka,
  logger: Logger,
  metrics: MetricsRegistry,
): Promise<RunningCommands> {
  const topics: CommandTopics = {
    commands: config.DWELL_COMMANDS_TOPIC,
    replies: config.DWELL_REPLIES_TOPIC,
    presence: config.DWELL_PRESENCE_TOPIC,
  };
  const limits: CommandLimits = {
    ...DEFAULT_COMMAND_LIMITS,
    maxReplyBytes: config.GATEWAY_MAX_REPLY_BYTES,
    maxTimeoutMs: config.GATEWAY_COMMAND_MAX_TIMEOUT_MS,
  };
  const log = logger.child({ component: 'commands' });
  const tokens = config.DWELL_SERVICE_TOKENS;
  // Gateways starting together may race to create the topics: the loser retries until they exist.
  if (config.GATEWAY_COMMANDS || tokens !== undefined)
    await retrying(() => ensureTopics(kafka, commandTopicSpecs(topics)));

  let producer: Producer | undefined;
  let router: CommandRouter | undefined;
  let bus: CommandBus | undefined;
  const stop = async (): Promise<void> => {
    await router?.stop();
    await bus?.close();
    await producer?.disconnect();
  };
  try {
    if (config.GATEWAY_COMMANDS) {
      // Its own producer: replies never queue behind event batches.
      producer = createProducer(kafka, { maxInFlightRequests: 5 });
      await producer.connect();
      router = await CommandRouter.start(kafka, producer, {
        gatewayId: config.GATEWAY_ID,
        topics,
        limits,
        heartbeatMs: config.GATEWAY_PRESENCE_HEARTBEAT_MS,
        logger: log,
        metrics,
      });
    }
    if (tokens !== undefined && tokens.size > 0) {
      bus = await createCommandBus({
        brokers: config.KAFKA_BROKERS ?? [],
        clientId: `dwell-gateway-${config.GATEWAY_ID}-bus`,
        requesterId: `gateway-${config.GATEWAY_ID}-${randomBytes(4).toString('hex')}`,
        topics,
        limits,
        createTopics: false,
        logger: log,
      });
    }
  } catch (error) {
    await stop().catch(() => undefined);
    throw error;
  }
  const http = new CommandHttp(
    {
      gatewayId: config.GATEWAY_ID,
      sites: config.DWELL_SITES ?? new Map(),
      serviceTokens: tokens,
      limits,
      maxStreamsPerIp: config.GATEWAY_MAX_CONNECTIONS_PER_IP,
      maxBackpressureBytes: config.GATEWAY_MAX_BACKPRESSURE_BYTES,
      keepAliveS: 15,
    },
    { router, bus, logger: log },
  );
  return {
    channel: commandChannel(router, http),
    stop: async () => {
      http.closeStreams();
      await stop();
    },
  };
}
