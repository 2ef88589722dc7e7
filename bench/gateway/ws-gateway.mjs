#!/usr/bin/env node
// The baseline for the gateway benchmark: a minimal gateway on `ws` (Node's http server) doing the
// same work per connection and per frame as dwell's uWebSockets.js gateway, with the same
// libraries: token check (verifyToken), per-connection state and a hello frame, parseJsonFrame,
// stamp + encodeStampedEvents, the same EventLog (linger, batching, acks=all) on a kafkajs producer
// with the same options, and a cumulative ack once the append resolved.
//
// Environment (same names as the real gateway): KAFKA_BROKERS, DWELL_SITES, GATEWAY_PORT,
// GATEWAY_HOST (127.0.0.1), DWELL_EVENTS_TOPIC, DWELL_REJECTED_TOPIC, GATEWAY_WORKERS (1; more =
// node:cluster workers sharing the port), GATEWAY_LINGER_MS (the gateway's default), GATEWAY_MAX_BUFFERED_BYTES,
// GATEWAY_RATE_EVENTS_PER_S / GATEWAY_RATE_BURST, GATEWAY_IDLE_TIMEOUT_S (120).
// Prints `listening <port>` on stdout per worker when it accepts connections.
import cluster from 'node:cluster';
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { WebSocketServer } from 'ws';
import { EventLog, GATEWAY_SETTINGS, originAllowed, parseSites, verifyToken } from '@dwell/gateway';
import { createKafka, createProducer, ensureTopics } from '@dwell/kafka';
import {
  DEFAULT_FRAME_LIMITS,
  encodeRejectedFrame,
  encodeStampedEvents,
  parseJsonFrame,
} from '@dwell/protocol';

const env = process.env;
const int = (name, fallback) => (env[name] === undefined || env[name] === '' ? fallback : Number(env[name]));
const config = {
  brokers: (env.KAFKA_BROKERS ?? '').split(',').filter(Boolean),
  sites: parseSites(JSON.parse(env.DWELL_SITES ?? '{}')),
  host: env.GATEWAY_HOST ?? '127.0.0.1',
  port: int('GATEWAY_PORT', 8080),
  workers: int('GATEWAY_WORKERS', 1),
  gatewayId: env.GATEWAY_ID ?? `ws-baseline-${process.pid}`,
  eventsTopic: env.DWELL_EVENTS_TOPIC ?? 'dwell.events.v1',
  rejectedTopic: env.DWELL_REJECTED_TOPIC ?? 'dwell.rejected.v1',
  // The real gateway's default, so that both do the same work unless a run sets it.
  lingerMs: GATEWAY_SETTINGS.GATEWAY_LINGER_MS.parse(env.GATEWAY_LINGER_MS),
  maxBufferedBytes: int('GATEWAY_MAX_BUFFERED_BYTES', 67_108_864),
  rate: int('GATEWAY_RATE_EVENTS_PER_S', 50),
  burst: int('GATEWAY_RATE_BURST', 200),
  idleTimeoutS: int('GATEWAY_IDLE_TIMEOUT_S', 120),
  maxBackpressureBytes: int('GATEWAY_MAX_BACKPRESSURE_BYTES', 1_048_576),
  limits: {
    ...DEFAULT_FRAME_LIMITS,
    maxFrameBytes: int('GATEWAY_MAX_FRAME_BYTES', 65_536),
    maxEventsPerFrame: int('GATEWAY_MAX_EVENTS_PER_FRAME', 100),
  },
};

if (config.workers > 1 && cluster.isPrimary) {
  // node:cluster: the primary accepts and hands sockets to the workers (round robin on Linux).
  for (let i = 0; i < config.workers; i++) cluster.fork({ ...env, GATEWAY_ID: `${config.gatewayId}-w${i}` });
  const stop = () => {
    for (const worker of Object.values(cluster.workers ?? {})) worker?.process.kill('SIGTERM');
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  let exited = 0;
  cluster.on('exit', () => {
    if (++exited === config.workers) process.exit(0);
  });
} else {
  await startWorker();
}

async function startWorker() {
  const kafka = createKafka({ brokers: config.brokers, clientId: `dwell-ws-baseline-${config.gatewayId}` });
  await ensureTopics(kafka, [{ topic: config.eventsTopic }, { topic: config.rejectedTopic }]);
  const producer = createProducer(kafka, { maxInFlightRequests: 5 });
  await producer.connect();
  // The same produce-latency histogram as the real gateway's /metrics, so run.mjs reads both alike.
  const bounds = [1, 2, 5, 10, 20, 50, 100, 250, 500, 1000, 5000];
  const produceBuckets = new Array(bounds.length + 1).fill(0);
  let produceSum = 0;
  const onProduced = (ms) => {
    produceSum += ms;
    let i = 0;
    while (i < bounds.length && ms > bounds[i]) i++;
    produceBuckets[i] += 1;
  };
  // The same event-loop delay gauge as the real gateway's (ms since the previous scrape, the
  // timer's resolution taken off), so that run.mjs reports both alike.
  const loopDelay = monitorEventLoopDelay({ resolution: 10 });
  loopDelay.enable();
  const lateMs = (ns) => Math.max(0, ns / 1e6 - 10);
  const metricsText = () => {
    const lines = [];
    if (loopDelay.count > 0) {
      lines.push(
        `dwell_gateway_event_loop_delay_ms{quantile="0.99"} ${lateMs(loopDelay.percentile(99))}`,
        `dwell_gateway_event_loop_delay_ms{quantile="1"} ${lateMs(loopDelay.max)}`,
      );
    }
    loopDelay.reset();
    let cumulative = 0;
    bounds.forEach((bound, i) => {
      cumulative += produceBuckets[i];
      lines.push(`dwell_gateway_produce_duration_ms_bucket{le="${bound}"} ${cumulative}`);
    });
    cumulative += produceBuckets[bounds.length];
    lines.push(`dwell_gateway_produce_duration_ms_bucket{le="+Inf"} ${cumulative}`);
    lines.push(
      `dwell_gateway_produce_duration_ms_sum ${produceSum}`,
      `dwell_gateway_produce_duration_ms_count ${cumulative}`,
    );
    lines.push(`dwell_gateway_connections ${sockets.size}`);
    return `${lines.join('\n')}\n`;
  };
  const events = new EventLog(producer, {
    topic: config.eventsTopic,
    lingerMs: config.lingerMs,
    maxBufferedBytes: config.maxBufferedBytes,
    onProduced,
  });
  const rejected = new EventLog(producer, {
    topic: config.rejectedTopic,
    lingerMs: 20,
    maxBufferedBytes: 16 * 1024 * 1024,
  });

  /** Open sockets → their connection state. */
  const sockets = new Map();
  const http = createServer((req, res) => {
    if (req.url === '/metrics')
      return res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' }).end(metricsText());
    res
      .writeHead(req.url === '/healthz' ? 200 : 404, { 'content-type': 'text/plain' })
      .end(req.url === '/healthz' ? 'ok' : 'not found');
  });
  const wss = new WebSocketServer({
    noServer: true,
    maxPayload: Math.max(config.limits.maxFrameBytes * 4, 1 << 20),
    perMessageDeflate: false,
    clientTracking: false,
  });

  const deadLetter = (reason, detail, raw, connection) => {
    const value = encodeRejectedFrame({
      recv_ms: Date.now(),
      gateway_id: config.gatewayId,
      reason,
      detail,
      raw: Buffer.from(raw.subarray(0, 16_384)),
      raw_truncated: raw.length > 16_384,
      transport: 'ws_json',
      remote_addr: connection?.remoteAddr ?? null,
      origin: connection?.origin ?? null,
      site_id: connection?.claims.site_id ?? null,
      user_id: connection?.claims.user_id ?? null,
      page_view_id: null,
      seq: null,
    });
    void rejected.append([{ key: connection?.claims.site_id ?? 'unknown', value }]);
  };

  const refuse = (socket, status, reason, detail) => {
    const body = JSON.stringify({ reason, detail });
    socket.end(
      `HTTP/1.1 ${status}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
    );
  };

  http.on('upgrade', (req, socket, head) => {
    const url = new URL(req.url ?? '/', 'http://x');
    if (url.pathname !== '/v1/ws') return refuse(socket, '404 Not Found', 'not_found', 'no such path');
    const auth = req.headers.authorization;
    const token =
      url.searchParams.get('token') ?? (auth?.startsWith('Bearer ') ? auth.slice(7).trim() : undefined);
    const check = verifyToken(token === '' || token === null ? undefined : token, config.sites, Date.now());
    if (!check.ok) return refuse(socket, '401 Unauthorized', check.reason, check.detail);
    const origin = req.headers.origin ?? '';
    const site = config.sites.get(check.claims.site_id);
    if (site === undefined || !originAllowed(site, origin))
      return refuse(socket, '403 Forbidden', 'forbidden_origin', 'origin not allowed');
    const connection = {
      id: randomBytes(8).toString('hex'),
      claims: check.claims,
      remoteAddr: socket.remoteAddress ?? '',
      origin: origin === '' ? null : origin,
      userAgent: req.headers['user-agent'] ?? null,
      received: 0,
      acked: 0,
      settledAhead: new Set(),
      tokens: config.burst,
      tokensAt: Date.now(),
      closed: false,
      alive: true,
    };
    wss.handleUpgrade(req, socket, head, (ws) => onOpen(ws, connection));
  });

  const send = (ws, connection, frame) => {
    if (connection.closed) return;
    ws.send(JSON.stringify(frame));
    if (ws.bufferedAmount > config.maxBackpressureBytes) {
      connection.closed = true;
      ws.close(1008, 'slow_client');
    }
  };

  const settle = (ws, connection, n) => {
    if (connection.closed) return;
    if (n !== connection.acked + 1) {
      connection.settledAhead.add(n);
      return;
    }
    connection.acked = n;
    while (connection.settledAhead.delete(connection.acked + 1)) connection.acked += 1;
    send(ws, connection, { t: 'ack', n: connection.acked });
  };

  const takeTokens = (connection, count) => {
    const at = Date.now();
    connection.tokens = Math.min(
      config.burst,
      connection.tokens + ((at - connection.tokensAt) / 1000) * config.rate,
    );
    connection.tokensAt = at;
    if (connection.tokens < count) return false;
    connection.tokens -= count;
    return true;
  };

  const onOpen = (ws, connection) => {
    sockets.set(ws, connection);
    ws.on('pong', () => (connection.alive = true));
    ws.on('close', () => {
      connection.closed = true;
      sockets.delete(ws);
    });
    ws.on('error', () => undefined);
    send(ws, connection, {
      t: 'hello',
      gateway_id: config.gatewayId,
      connection_id: connection.id,
      heartbeat_s: config.idleTimeoutS,
    });
    ws.on('message', (data, isBinary) => {
      if (connection.claims.exp * 1000 <= Date.now()) {
        connection.closed = true;
        ws.close(4001, 'token_expired');
        return;
      }
      const n = ++connection.received;
      // ws hands over a Buffer it no longer uses: no copy needed (uWS needs one, see server.ts).
      const raw = Buffer.isBuffer(data)
        ? data
        : Array.isArray(data)
          ? Buffer.concat(data)
          : Buffer.from(data);
      if (isBinary) {
        // The baseline does JSON only; the benchmark sends no binary frames.
        deadLetter('malformed_avro', 'binary frames not supported by the baseline', raw, connection);
        send(ws, connection, {
          t: 'error',
          n,
          reason: 'malformed_avro',
          detail: 'binary frames not supported by the baseline',
        });
        settle(ws, connection, n);
        return;
      }
      const parsed = parseJsonFrame(raw, config.limits);
      if (!parsed.ok) {
        deadLetter(parsed.reason, parsed.detail, raw, connection);
        send(ws, connection, { t: 'error', n, reason: parsed.reason, detail: parsed.detail });
        settle(ws, connection, n);
        return;
      }
      let accepted = parsed.events;
      if (accepted.length > 0 && !takeTokens(connection, accepted.length)) {
        deadLetter('rate_limited', 'rate limited', raw, connection);
        send(ws, connection, { t: 'error', n, reason: 'rate_limited', detail: 'rate limited' });
        accepted = [];
      }
      for (const r of parsed.rejected) {
        deadLetter(r.reason, r.detail, r.raw, connection);
        send(ws, connection, { t: 'error', n, reason: r.reason, detail: r.detail, index: r.index });
      }
      if (accepted.length === 0) return settle(ws, connection, n);
      const values = encodeStampedEvents(
        {
          recv_ms: Date.now(),
          gateway_id: config.gatewayId,
          site_id: connection.claims.site_id,
          user_id: connection.claims.user_id,
          user_agent: connection.userAgent,
          transport: 'ws_json',
        },
        accepted,
      );
      const records = accepted.map((event, i) => ({ key: event.page_view_id, value: values[i] }));
      void events.append(records).then((outcome) => {
        if (connection.closed) return;
        if (!outcome.stored)
          send(ws, connection, {
            t: 'nack',
            n,
            reason: outcome.reason,
            retry_after_ms: outcome.retryAfterMs,
          });
        settle(ws, connection, n);
      });
    });
  };

  // Heartbeat like the real gateway's idle timeout: ping everyone, drop those that never answered.
  const heartbeat = setInterval(() => {
    for (const [ws, connection] of sockets) {
      if (!connection.alive) {
        ws.terminate();
        continue;
      }
      connection.alive = false;
      ws.ping();
    }
  }, config.idleTimeoutS * 1000);
  heartbeat.unref();

  await new Promise((resolve, reject) => {
    http.once('error', reject);
    http.listen(config.port, config.host, () => resolve());
  });
  process.stdout.write(`listening ${http.address().port}\n`);

  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    http.close();
    await events.drain();
    for (const ws of sockets.keys())
      ws.close(1012, JSON.stringify({ reason: 'reconnect', retry_after_ms: 1000 }));
    await producer.disconnect().catch(() => undefined);
    process.exit(0);
  };
  process.once('SIGTERM', () => void stop());
  process.once('SIGINT', () => void stop());
  if (cluster.isWorker) process.on('disconnect', () => void stop());
}
