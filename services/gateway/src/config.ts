import { hostname } from 'node:os';
import { env, parseConfig, type ConfigOf, LOG_LEVELS } from '@dwell/runtime';
import { parseSites } from './auth.js';
import { EVENT_LOG_DEFAULTS } from './event-log.js';
import { parseServiceTokens } from './commands/service-auth.js';

/** Every setting the gateway reads from the environment, with its default. */
export const GATEWAY_SETTINGS = {
  GATEWAY_HOST: env.string('Address the gateway listens on.', '127.0.0.1'),
  GATEWAY_PORT: env.int('Port for WebSocket, HTTP events, health and metrics.', 8080, { min: 0, max: 65535 }),
  GATEWAY_ID: env.string('This gateway instance in logs and on every event it stamps.', `${hostname()}-${process.pid}`, '<hostname>-<pid>'),
  KAFKA_BROKERS: env.list('Kafka bootstrap servers, host:port,… (unset under `dwell up`: the local broker).', undefined),
  DWELL_EVENTS_TOPIC: env.string('Topic of accepted events (the ledger).', 'dwell.events.v1'),
  DWELL_REJECTED_TOPIC: env.string('Topic of rejected input (dead letters).', 'dwell.rejected.v1'),
  GATEWAY_WORKERS: env.int('Gateway processes sharing the port (SO_REUSEPORT); 0 = one per core.', 0, { min: 0, max: 256 }),
  GATEWAY_OLD_SPACE_FLOOR_MB: env.int(
    'Old-generation heap below which V8 skips full garbage collections in each gateway process (node --initial-old-space-size), MB; 0 = V8\'s own sizing. With V8\'s sizing a busy gateway runs a full collection about twice a second, each stalling acks for several ms; a process may hold up to this much heap before its first one. `dwell gateway` starts its worker processes with the flag (and runs even a single process as a worker unless node was started with it).',
    256,
    { min: 0, max: 65_536 },
  ),
  DWELL_SITES: env.json(
    'JSON map site_id → {"secret": "…(≥16 chars)", "origins": ["https://…" or "*"]}.',
    undefined,
    parseSites,
  ),
  GATEWAY_MAX_FRAME_BYTES: env.int('Largest accepted WebSocket frame or HTTP body, bytes.', 65_536, { min: 1024 }),
  GATEWAY_MAX_EVENTS_PER_FRAME: env.int('Events per frame or HTTP body.', 100, { min: 1 }),
  GATEWAY_RATE_EVENTS_PER_S: env.int('Sustained events per second per connection (token bucket rate).', 50, { min: 1 }),
  GATEWAY_RATE_BURST: env.int('Token bucket size per connection, events.', 200, { min: 1 }),
  GATEWAY_TRUSTED_PROXIES: env.list(
    'Addresses of load balancers whose X-Forwarded-For names the real client (for per-address limits and dead letters).',
    undefined,
  ),
  GATEWAY_MAX_CONNECTIONS_PER_IP: env.int('Concurrent WebSocket connections per client address.', 256, { min: 1 }),
  GATEWAY_IDLE_TIMEOUT_S: env.int('Close a WebSocket silent for this long (pings keep it alive), seconds.', 120, { min: 8 }),
  GATEWAY_MAX_BACKPRESSURE_BYTES: env.int('Unsent bytes per socket before a slow client is closed.', 1_048_576, { min: 16_384 }),
  GATEWAY_LINGER_MS: env.int('How long events wait to share a Kafka produce request when none is in flight (while one is, they gather until it returns), ms. Longer: fewer, larger requests (less CPU for the gateway and the broker) for that much more latency at low rates.', EVENT_LOG_DEFAULTS.lingerMs, { min: 0, max: 1000 }),
  GATEWAY_MAX_BUFFERED_BYTES: env.int('Event bytes waiting for Kafka before frames are refused (resend later).', EVENT_LOG_DEFAULTS.maxBufferedBytes, { min: 65_536 }),
  GATEWAY_MAX_WAIT_MS: env.int('Age of the oldest event waiting for a Kafka produce request beyond which frames are refused (resend later), ms.', EVENT_LOG_DEFAULTS.maxWaitMs, { min: 10, max: 60_000 }),
  GATEWAY_DRAIN_TIMEOUT_MS: env.int('On SIGTERM, how long to wait for Kafka to store what is in flight, ms.', 10_000, { min: 0 }),
  GATEWAY_COMMANDS: env.boolean('Deliver commands to this gateway\'s connections, publish presence, serve /v1/stream and /v1/replies.', true),
  DWELL_COMMANDS_TOPIC: env.string('Topic of commands to users (key user_id), settle records and forwarded replies.', 'dwell.commands.v1'),
  DWELL_REPLIES_TOPIC: env.string('Topic of command outcomes (key requester).', 'dwell.replies.v1'),
  DWELL_PRESENCE_TOPIC: env.string('Compacted topic of which gateway holds which users.', 'dwell.presence.v1'),
  DWELL_SERVICE_TOKENS: env.json(
    'JSON map service name → bearer token (≥32 chars) allowed to send commands with POST /v1/commands; unset: nobody.',
    undefined,
    parseServiceTokens,
  ),
  GATEWAY_COMMAND_MAX_TIMEOUT_MS: env.int('Longest command timeout honoured, ms; a starting gateway reads back this much of the commands topic.', 60_000, { min: 1000, max: 3_600_000 }),
  GATEWAY_MAX_REPLY_BYTES: env.int('Largest reply result a client may send to a command, bytes (JSON).', 16_384, { min: 256, max: 1_048_576 }),
  GATEWAY_PRESENCE_HEARTBEAT_MS: env.int('Presence heartbeat period, ms; a gateway silent for three periods counts as gone.', 5_000, { min: 100, max: 600_000 }),
  LOG_LEVEL: env.oneOf('debug, info, warn, error or silent.', LOG_LEVELS, 'info'),
} as const;

export type GatewayConfig = ConfigOf<typeof GATEWAY_SETTINGS>;

export function gatewayConfigFromEnv(source: Readonly<Record<string, string | undefined>>): GatewayConfig {
  return parseConfig(GATEWAY_SETTINGS, source);
}
