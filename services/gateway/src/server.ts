import { randomBytes } from 'node:crypto';
import type { HttpRequest, HttpResponse, TemplatedApp, WebSocket, us_listen_socket } from 'uWebSockets.js';
import {
  decodeBinaryFrame,
  encodeRejectedFrame,
  encodeStampedEvents,
  parseJsonFrame,
  type ClientEvent,
  type FrameLimits,
  type FrameOutcome,
  type RejectionReasonCode,
  type Transport,
} from '@dwell/protocol';
import type { Logger, MetricsRegistry } from '@dwell/runtime';
import { originAllowed, verifyToken, type Sites, type TokenClaims } from './auth.js';
import { CloseCode } from './close-codes.js';
import type { CommandChannel } from './commands/channel.js';
import type { CommandConnection } from './commands/router.js';
import type { AppendOutcome, EventLog, LogRecord } from './event-log.js';
import { GatewayMetrics } from './metrics.js';
import type { Uws } from './uws.js';

export interface GatewayOptions {
  readonly gatewayId: string;
  readonly host: string;
  readonly port: number;
  readonly sites: Sites;
  readonly limits: FrameLimits;
  readonly rateEventsPerSecond: number;
  readonly rateBurst: number;
  readonly maxConnectionsPerIp: number;
  /** Peers whose `X-Forwarded-For` is believed (load balancers). */
  readonly trustedProxies?: readonly string[];
  readonly idleTimeoutSeconds: number;
  readonly maxBackpressureBytes: number;
  /** Bytes of a refused input kept in its dead letter. */
  readonly maxDeadLetterBytes?: number;
  readonly now?: () => number;
}

export interface GatewayDeps {
  readonly uws: Uws;
  readonly events: EventLog;
  readonly rejected: EventLog;
  readonly logger: Logger;
  readonly metrics: MetricsRegistry;
  /** What `/metrics` serves; default: `metrics.render()`. */
  readonly metricsText?: () => Promise<string>;
  /** Command delivery and the command endpoints (docs/commands.md); none without it. */
  readonly commands?: CommandChannel;
}

/**
 * One WebSocket's state (the socket's user data holds it). It is also the socket as the command
 * channel knows it (a `CommandConnection`, attached from `open` on): `siteId`, `userId`,
 * `transport` and `send` live on the prototype, so the channel needs no object or closure of its
 * own per connection.
 */
interface Connection extends CommandConnection {
  readonly claims: TokenClaims;
  readonly remoteAddr: string;
  readonly origin: string | null;
  readonly userAgent: string | null;
  /** Frames received so far; frame n is the n-th message on this socket. */
  received: number;
  /** Every frame ≤ this has been settled (stored, refused or nacked); acknowledged by the next ack sent. */
  acked: number;
  /** The last `acked` sent to the client. */
  ackSent: number;
  /** Frames settled out of order (above `acked + 1`); only allocated once that happens. */
  settledAhead: Set<number> | undefined;
  tokens: number;
  tokensAt: number;
  closed: boolean;
  /** Attached to the command channel (from `open` on). */
  attached: boolean;
  /** The socket, from `open` on. */
  ws: WebSocket<SocketData> | undefined;
}

/**
 * What uWebSockets.js keeps per socket. It copies the own properties of the object given to
 * `upgrade` into a plain object of its own, so the connection (a class instance, methods on its
 * prototype) travels inside it.
 */
interface SocketData {
  readonly connection: Connection;
}

/** Server → client frames, JSON text. */
type ServerFrame =
  | { t: 'ack'; n: number }
  | { t: 'nack'; n: number; reason: 'unavailable' | 'overloaded'; retry_after_ms: number }
  | { t: 'error'; n: number; reason: RejectionReasonCode; detail: string; index?: number }
  | { t: 'hello'; gateway_id: string; connection_id: string; heartbeat_s: number };

export interface RunningGateway {
  readonly port: number;
  readonly connections: number;
  /** Stop accepting, store what is in flight, close every socket with a reconnect hint. */
  drain(timeoutMs: number): Promise<void>;
}

/**
 * The ingest edge: WebSocket `/v1/ws` (JSON text or Avro binary frames), `POST /v1/events`
 * (JSON, also as a `sendBeacon` text/plain body), `/healthz`, `/readyz`, `/metrics`.
 */
export function startGatewayServer(options: GatewayOptions, deps: GatewayDeps): Promise<RunningGateway> {
  const { uws, logger } = deps;
  const now = options.now ?? Date.now;
  const metrics = new GatewayMetrics(deps.metrics, () => ({
    eventsBuffered: deps.events.bufferedBytes,
    oldestWaitMs: deps.events.oldestWaitMs,
    kafkaAvailable: deps.events.available,
  }));
  const sockets = new Set<WebSocket<SocketData>>();
  const perIp = new Map<string, number>();
  let draining = false;
  const maxDeadLetterBytes = options.maxDeadLetterBytes ?? 16_384;
  const trusted = addressMatcher(options.trustedProxies ?? []);
  const headerValues = new StringInterner(1024);

  const deadLetter = (
    reason: RejectionReasonCode,
    detail: string,
    raw: Uint8Array,
    transport: string,
    facts: { remoteAddr?: string; origin?: string | null; claims?: TokenClaims; event?: ClientEvent | undefined },
  ): void => {
    metrics.rejected(reason);
    const truncated = raw.length > maxDeadLetterBytes;
    const value = encodeRejectedFrame({
      recv_ms: now(),
      gateway_id: options.gatewayId,
      reason,
      detail,
      raw: Buffer.from(truncated ? raw.subarray(0, maxDeadLetterBytes) : raw),
      raw_truncated: truncated,
      transport,
      remote_addr: facts.remoteAddr ?? null,
      origin: facts.origin ?? null,
      site_id: facts.claims?.site_id ?? null,
      user_id: facts.claims?.user_id ?? null,
      page_view_id: facts.event?.page_view_id ?? null,
      seq: facts.event?.seq ?? null,
    });
    void deps.rejected.append([{ key: facts.claims?.site_id ?? facts.remoteAddr ?? 'unknown', value }]).then((outcome) => {
      if (!outcome.stored) logger.error('dead letter not stored', { reason, detail, because: outcome.reason });
    });
  };

  /** Stamps and encodes accepted events; the key keeps a page view's events on one partition, in order. */
  const toRecords = (events: readonly ClientEvent[], claims: TokenClaims, userAgent: string | null, transport: Transport): LogRecord[] => {
    // The stamp is the same for every event of the frame: encoded once, not once per event.
    const values = encodeStampedEvents(
      { recv_ms: now(), gateway_id: options.gatewayId, site_id: claims.site_id, user_id: claims.user_id, user_agent: userAgent, transport },
      events,
    );
    return events.map((event, i) => ({ key: event.page_view_id, value: values[i] as Buffer }));
  };

  /** Takes `count` events from the connection's token bucket; false when the bucket is empty. */
  const takeTokens = (connection: Connection, count: number): boolean => {
    const at = now();
    connection.tokens = Math.min(
      options.rateBurst,
      connection.tokens + ((at - connection.tokensAt) / 1000) * options.rateEventsPerSecond,
    );
    connection.tokensAt = at;
    if (connection.tokens < count) return false;
    connection.tokens -= count;
    return true;
  };

  const send = (ws: WebSocket<SocketData>, frame: ServerFrame): void => sendText(ws, JSON.stringify(frame));

  /**
   * Sockets whose settled prefix grew since their last ack. Acks go out once the frames settled
   * together (one produce request settles many frames, often several of one socket) have all been
   * counted: one cumulative ack per socket instead of one per frame.
   */
  let ackDue: Array<WebSocket<SocketData>> = [];
  const sendDueAcks = (): void => {
    const due = ackDue;
    ackDue = [];
    for (const ws of due) {
      const connection = ws.getUserData().connection;
      if (connection.closed || connection.ackSent === connection.acked) continue;
      connection.ackSent = connection.acked;
      ws.cork(() => sendText(ws, `{"t":"ack","n":${connection.acked}}`));
    }
  };

  const sendText = (ws: WebSocket<SocketData>, text: string): void => {
    const connection = ws.getUserData().connection;
    if (connection.closed) return;
    const status = ws.send(text, false);
    if (status === 2 || ws.getBufferedAmount() > options.maxBackpressureBytes) {
      // The client is not reading its acks: it cannot be kept in step, close it (it will resend).
      metrics.slowClientClosed();
      connection.closed = true;
      ws.end(CloseCode.slow_client.code, CloseCode.slow_client.reason);
    }
  };

  /** Per-socket state; see `Connection`. */
  class WsConnection implements Connection {
    readonly id: string;
    readonly claims: TokenClaims;
    readonly remoteAddr: string;
    readonly origin: string | null;
    readonly userAgent: string | null;
    received = 0;
    acked = 0;
    ackSent = 0;
    settledAhead: Set<number> | undefined = undefined;
    tokens: number;
    tokensAt: number;
    closed = false;
    attached = false;
    ws: WebSocket<SocketData> | undefined = undefined;
    constructor(id: string, claims: TokenClaims, remoteAddr: string, origin: string | null, userAgent: string | null, at: number) {
      this.id = id;
      this.claims = claims;
      this.remoteAddr = remoteAddr;
      this.origin = origin;
      this.userAgent = userAgent;
      this.tokens = options.rateBurst;
      this.tokensAt = at;
    }
    get siteId(): string {
      return this.claims.site_id;
    }
    get userId(): string {
      return this.claims.user_id;
    }
    get transport(): 'ws' {
      return 'ws';
    }
    /** A command frame. Commands arrive from Kafka callbacks, outside any uWebSockets.js handler: corked. */
    send(text: string): void {
      const ws = this.ws;
      if (ws !== undefined) ws.cork(() => sendText(ws, text));
    }
  }

  /** Marks frame n settled; if the settled prefix grew, the cumulative ack goes out with the others due. */
  const settle = (ws: WebSocket<SocketData>, n: number): void => {
    const connection = ws.getUserData().connection;
    if (connection.closed) return;
    if (n !== connection.acked + 1) {
      (connection.settledAhead ??= new Set()).add(n);
      return;
    }
    connection.acked = n;
    const ahead = connection.settledAhead;
    if (ahead !== undefined) {
      while (ahead.delete(connection.acked + 1)) connection.acked += 1;
      if (ahead.size === 0) connection.settledAhead = undefined;
    }
    if (ackDue.length === 0) queueMicrotask(sendDueAcks);
    ackDue.push(ws);
  };

  /** An error frame for frame n, which this settles. */
  const answerError = (ws: WebSocket<SocketData>, n: number, reason: RejectionReasonCode, detail: string): void => {
    ws.cork(() => {
      send(ws, { t: 'error', n, reason, detail });
      settle(ws, n);
    });
  };

  const onFrame = (ws: WebSocket<SocketData>, message: ArrayBuffer, isBinary: boolean): void => {
    const connection = ws.getUserData().connection;
    if (connection.claims.exp * 1000 <= now()) {
      // The token expired while the socket was open; nothing of this frame is taken.
      connection.closed = true;
      ws.end(CloseCode.token_expired.code, CloseCode.token_expired.reason);
      return;
    }
    const n = ++connection.received;
    const transport: Transport = isBinary ? 'ws_avro' : 'ws_json';
    metrics.frameIn(message.byteLength);
    if (!isBinary && connection.attached && deps.commands?.isControlFrame(message) === true) {
      // A reply costs one token of the connection's event budget, so replies cannot flood either.
      if (!takeTokens(connection, 1)) {
        send(ws, { t: 'error', n, reason: 'rate_limited', detail: `more than ${options.rateEventsPerSecond} frames/s sustained` });
        settle(ws, n);
        return;
      }
      onControlFrame(ws, connection, n, Buffer.from(message.slice(0)));
      return;
    }
    // A view, not a copy: uWebSockets.js neuters `message` after this callback returns, and
    // nothing below keeps it past that (parsing copies what it keeps, dead letters copy the bytes).
    const raw = new Uint8Array(message);
    const parsed: FrameOutcome = isBinary
      ? decodeBinaryFrame(raw, options.limits)
      : parseJsonFrame(raw, options.limits);
    const facts = { remoteAddr: connection.remoteAddr, origin: connection.origin, claims: connection.claims };
    if (!parsed.ok) {
      deadLetter(parsed.reason, parsed.detail, raw, transport, facts);
      // Not a closure over `parsed`: a variable any closure here captures lives in the frame's
      // context, which the Kafka callback below keeps until the frame settles (every parsed
      // event object would then survive the garbage collections during the produce).
      answerError(ws, n, parsed.reason, parsed.detail);
      return;
    }
    let events = parsed.events;
    if (events.length > 0 && !takeTokens(connection, events.length)) {
      deadLetter('rate_limited', `more than ${options.rateEventsPerSecond} events/s`, raw, transport, facts);
      send(ws, { t: 'error', n, reason: 'rate_limited', detail: `more than ${options.rateEventsPerSecond} events/s sustained` });
      events = [];
    }
    for (const rejected of parsed.rejected) {
      deadLetter(rejected.reason, rejected.detail, rejected.raw, transport, { ...facts, event: undefined });
      send(ws, {
        t: 'error',
        n,
        reason: rejected.reason,
        detail: rejected.detail,
        index: rejected.index,
      });
    }
    if (events.length === 0) {
      settle(ws, n);
      return;
    }
    metrics.eventsIn(events.length, transport);
    const readAt = performance.now();
    const count = events.length;
    deps.events.submit(toRecords(events, connection.claims, connection.userAgent, transport), (outcome: AppendOutcome) => {
      // Counted whether or not the client is still there to hear it.
      if (outcome.stored) metrics.eventsStored(count);
      else metrics.eventsRefused(count, outcome.reason);
      if (connection.closed) return;
      if (outcome.stored) {
        metrics.frameStored(performance.now() - readAt);
        // The ack is written by `sendDueAcks`, corked there.
        settle(ws, n);
        return;
      }
      ws.cork(() => {
        send(ws, { t: 'nack', n, reason: outcome.reason, retry_after_ms: outcome.retryAfterMs });
        settle(ws, n);
      });
    });
  };

  /** A reply to a command: settled (acked) once stored, refused with an error, or nacked when Kafka is down. */
  const onControlFrame = (ws: WebSocket<SocketData>, connection: Connection, n: number, raw: Buffer): void => {
    void (deps.commands as CommandChannel).replyFrame(connection, raw.toString('utf8')).then((outcome) => {
      if (connection.closed) return;
      if (!outcome.ok && outcome.reason !== 'unavailable') {
        deadLetter(outcome.reason, outcome.detail, raw, 'ws_json', { remoteAddr: connection.remoteAddr, origin: connection.origin, claims: connection.claims });
      }
      ws.cork(() => {
        if (!outcome.ok && outcome.reason === 'unavailable') send(ws, { t: 'nack', n, reason: 'unavailable', retry_after_ms: 1000 });
        else if (!outcome.ok) send(ws, { t: 'error', n, reason: outcome.reason, detail: outcome.detail });
        settle(ws, n);
      });
    });
  };

  const app: TemplatedApp = uws.App();

  app.ws<SocketData>('/v1/ws', {
    // uWebSockets.js closes frames above this hard limit itself (1009); frames between the
    // configured limit and this one get a typed error and a dead letter instead.
    maxPayloadLength: Math.max(options.limits.maxFrameBytes * 4, 1 << 20),
    idleTimeout: options.idleTimeoutSeconds,
    sendPingsAutomatically: true,
    maxBackpressure: options.maxBackpressureBytes,
    closeOnBackpressureLimit: 0,
    compression: uws.DISABLED,
    upgrade: (res: HttpResponse, req: HttpRequest, context) => {
      // Everything needed from `req` is copied now: it is invalid after this function returns.
      const key = req.getHeader('sec-websocket-key');
      const protocol = req.getHeader('sec-websocket-protocol');
      const extensions = req.getHeader('sec-websocket-extensions');
      const origin = req.getHeader('origin');
      const userAgent = req.getHeader('user-agent');
      const token = req.getQuery('token') ?? bearer(req.getHeader('authorization'));
      const remoteAddr = clientAddress(res, req.getHeader('x-forwarded-for'), trusted);
      const refuse = (status: string, reason: RejectionReasonCode, detail: string, claims?: TokenClaims): void => {
        deadLetter(reason, detail, Buffer.alloc(0), 'ws_upgrade', { remoteAddr, origin: origin || null, ...(claims ? { claims } : {}) });
        res.cork(() => {
          res.writeStatus(status).writeHeader('content-type', 'application/json').end(JSON.stringify({ reason, detail }));
        });
      };
      if (draining) {
        res.cork(() => res.writeStatus('503 Service Unavailable').writeHeader('retry-after', '1').end('draining'));
        return;
      }
      const check = verifyToken(token === '' ? undefined : token, options.sites, now());
      if (!check.ok) return refuse('401 Unauthorized', check.reason, check.detail);
      const site = options.sites.get(check.claims.site_id);
      if (site === undefined || !originAllowed(site, origin)) {
        return refuse('403 Forbidden', 'forbidden_origin', `origin ${origin} is not allowed for site ${check.claims.site_id}`, check.claims);
      }
      if ((perIp.get(remoteAddr) ?? 0) >= options.maxConnectionsPerIp) {
        return refuse('429 Too Many Requests', 'too_many_connections', `more than ${options.maxConnectionsPerIp} connections from ${remoteAddr}`, check.claims);
      }
      const connection = new WsConnection(
        randomBytes(8).toString('hex'),
        check.claims,
        remoteAddr,
        origin === '' ? null : headerValues.intern(origin),
        userAgent === '' ? null : headerValues.intern(userAgent),
        now(),
      );
      const data: SocketData = { connection };
      res.cork(() => res.upgrade(data, key, protocol, extensions, context));
    },
    open: (ws) => {
      const connection = ws.getUserData().connection;
      sockets.add(ws);
      perIp.set(connection.remoteAddr, (perIp.get(connection.remoteAddr) ?? 0) + 1);
      metrics.connectionOpened();
      send(ws, { t: 'hello', gateway_id: options.gatewayId, connection_id: connection.id, heartbeat_s: options.idleTimeoutSeconds });
      connection.ws = ws;
      if (deps.commands !== undefined) {
        connection.attached = true;
        deps.commands.attach(connection);
      }
    },
    message: (ws, message, isBinary) => {
      if (message.byteLength > options.limits.maxFrameBytes) {
        const connection = ws.getUserData().connection;
        const n = ++connection.received;
        const detail = `frame of ${message.byteLength} bytes exceeds ${options.limits.maxFrameBytes}`;
        deadLetter('frame_too_large', detail, new Uint8Array(message.slice(0, maxDeadLetterBytes)), isBinary ? 'ws_avro' : 'ws_json', {
          remoteAddr: connection.remoteAddr,
          origin: connection.origin,
          claims: connection.claims,
        });
        ws.cork(() => {
          send(ws, { t: 'error', n, reason: 'frame_too_large', detail });
          settle(ws, n);
        });
        return;
      }
      onFrame(ws, message, isBinary);
    },
    drain: (ws) => {
      metrics.drained();
      void ws;
    },
    close: (ws) => {
      const connection = ws.getUserData().connection;
      connection.closed = true;
      sockets.delete(ws);
      if (connection.attached) deps.commands?.detach(connection);
      connection.ws = undefined;
      const left = (perIp.get(connection.remoteAddr) ?? 1) - 1;
      if (left === 0) perIp.delete(connection.remoteAddr);
      else perIp.set(connection.remoteAddr, left);
      metrics.connectionClosed();
    },
  });

  app.post('/v1/events', (res, req) => {
    const origin = req.getHeader('origin');
    const userAgent = req.getHeader('user-agent');
    const contentType = req.getHeader('content-type');
    const token = req.getQuery('token') ?? bearer(req.getHeader('authorization'));
    const remoteAddr = clientAddress(res, req.getHeader('x-forwarded-for'), trusted);
    const transport: Transport = contentType.startsWith('text/plain') ? 'beacon' : 'http';
    let aborted = false;
    res.onAborted(() => {
      aborted = true;
    });
    let answered = false;
    const reply = (status: string, body: unknown, headers: Record<string, string> = {}, closeConnection = false): void => {
      if (aborted || answered) return;
      answered = true;
      res.cork(() => {
        res.writeStatus(status).writeHeader('content-type', 'application/json');
        if (origin !== '') res.writeHeader('access-control-allow-origin', origin);
        for (const [name, value] of Object.entries(headers)) res.writeHeader(name, value);
        res.end(JSON.stringify(body), closeConnection);
      });
    };
    if (draining) return reply('503 Service Unavailable', { reason: 'unavailable', detail: 'draining' }, { 'retry-after': '1' });
    const check = verifyToken(token === '' ? undefined : token, options.sites, now());
    if (!check.ok) {
      deadLetter(check.reason, check.detail, Buffer.alloc(0), transport, { remoteAddr, origin: origin || null });
      return reply('401 Unauthorized', { reason: check.reason, detail: check.detail });
    }
    const claims = check.claims;
    const site = options.sites.get(claims.site_id);
    if (site === undefined || !originAllowed(site, origin)) {
      deadLetter('forbidden_origin', `origin ${origin} not allowed`, Buffer.alloc(0), transport, { remoteAddr, origin, claims });
      return reply('403 Forbidden', { reason: 'forbidden_origin', detail: `origin ${origin} is not allowed for site ${claims.site_id}` });
    }
    if (!deps.events.available) {
      return reply('503 Service Unavailable', { reason: 'unavailable', detail: 'the event log is unavailable; retry' }, { 'retry-after': '2' });
    }
    // The size limit is enforced while the body streams in, never after buffering all of it.
    const chunks: Buffer[] = [];
    let size = 0;
    let tooLarge = false;
    res.onData((chunk, isLast) => {
      if (tooLarge) return;
      size += chunk.byteLength;
      if (size > options.limits.maxFrameBytes) {
        tooLarge = true;
        const detail = `body exceeds ${options.limits.maxFrameBytes} bytes`;
        deadLetter('frame_too_large', detail, Buffer.concat(chunks).subarray(0, maxDeadLetterBytes), transport, { remoteAddr, origin, claims });
        // Answer now and close: the rest of the body is never read.
        reply('413 Payload Too Large', { reason: 'frame_too_large', detail }, {}, true);
        return;
      }
      chunks.push(Buffer.from(chunk.slice(0)));
      if (!isLast) return;
      const raw = Buffer.concat(chunks);
      metrics.frameIn(raw.length);
      const parsed = parseJsonFrame(raw, options.limits);
      if (!parsed.ok) {
        deadLetter(parsed.reason, parsed.detail, raw, transport, { remoteAddr, origin, claims });
        return reply('400 Bad Request', { reason: parsed.reason, detail: parsed.detail });
      }
      const rejected = parsed.rejected.map((r) => {
        deadLetter(r.reason, r.detail, r.raw, transport, { remoteAddr, origin, claims });
        return { index: r.index, reason: r.reason, detail: r.detail };
      });
      metrics.eventsIn(parsed.events.length, transport);
      void deps.events.append(toRecords(parsed.events, claims, userAgent === '' ? null : userAgent, transport)).then((outcome) => {
        if (!outcome.stored) {
          metrics.eventsRefused(parsed.events.length, outcome.reason);
          return reply('503 Service Unavailable', { reason: outcome.reason, detail: 'not stored; retry', rejected }, {
            'retry-after': String(Math.ceil(outcome.retryAfterMs / 1000)),
          });
        }
        metrics.eventsStored(parsed.events.length);
        reply('200 OK', { accepted: parsed.events.length, rejected });
      });
    });
  });

  app.options('/v1/events', (res, req) => {
    const origin = req.getHeader('origin');
    res.cork(() => {
      res
        .writeStatus('204 No Content')
        .writeHeader('access-control-allow-origin', origin === '' ? '*' : origin)
        .writeHeader('access-control-allow-methods', 'POST')
        .writeHeader('access-control-allow-headers', 'authorization, content-type')
        .writeHeader('access-control-max-age', '86400')
        .end();
    });
  });

  app.get('/healthz', (res) => {
    res.cork(() => res.writeHeader('content-type', 'text/plain').end('ok'));
  });
  app.get('/readyz', (res) => {
    const ready = !draining && deps.events.available;
    res.cork(() => {
      res.writeStatus(ready ? '200 OK' : '503 Service Unavailable').writeHeader('content-type', 'text/plain');
      res.end(draining ? 'draining' : deps.events.available ? 'ready' : 'kafka unavailable');
    });
  });
  app.get('/metrics', (res) => {
    if (deps.metricsText === undefined) {
      const body = deps.metrics.render();
      res.cork(() => res.writeHeader('content-type', 'text/plain; version=0.0.4').end(body));
      return;
    }
    let aborted = false;
    res.onAborted(() => (aborted = true));
    void deps.metricsText().then((body) => {
      if (!aborted) res.cork(() => res.writeHeader('content-type', 'text/plain; version=0.0.4').end(body));
    });
  });
  deps.commands?.routes(app, {
    draining: () => draining,
    clientAddress: (res, req) => clientAddress(res, req.getHeader('x-forwarded-for'), trusted),
    deadLetter: (reason, detail, raw, transport, facts) => deadLetter(reason, detail, raw, transport, facts),
  });
  app.any('/*', (res) => {
    res.cork(() => res.writeStatus('404 Not Found').writeHeader('content-type', 'text/plain').end('not found'));
  });

  return new Promise((resolve, reject) => {
    app.listen(options.host, options.port, (listenSocket: us_listen_socket | false) => {
      if (listenSocket === false) {
        reject(new Error(`could not listen on ${options.host}:${options.port} (in use, or not allowed)`));
        return;
      }
      const port = uws.us_socket_local_port(listenSocket);
      resolve({
        port,
        get connections() {
          return sockets.size;
        },
        drain: async (timeoutMs: number) => {
          draining = true;
          uws.us_listen_socket_close(listenSocket);
          const deadline = new Promise<void>((done) => setTimeout(done, timeoutMs).unref());
          await Promise.race([Promise.all([deps.events.drain(), deps.rejected.drain()]), deadline]);
          for (const ws of [...sockets]) {
            const connection = ws.getUserData().connection;
            if (connection.closed) continue;
            connection.closed = true;
            // Spread reconnects over a few seconds so the remaining nodes are not stampeded.
            const hint = JSON.stringify({ reason: CloseCode.reconnect.reason, retry_after_ms: 500 + Math.floor(Math.random() * 4500) });
            ws.end(CloseCode.reconnect.code, hint);
          }
        },
      });
    });
  });
}

/**
 * The client's address: the peer's, unless the peer is a trusted proxy, then the last address that
 * proxy appended to X-Forwarded-For (earlier entries are whatever the client claimed).
 */
function clientAddress(res: HttpResponse, forwardedFor: string, trusted: (address: string) => boolean): string {
  const peer = Buffer.from(res.getRemoteAddressAsText()).toString();
  if (forwardedFor === '' || !trusted(peer)) return peer;
  const last = forwardedFor.split(',').at(-1)?.trim();
  return last === undefined || last === '' ? peer : last;
}

/**
 * Keeps one copy of each header value seen recently: the connections of a few browser versions
 * then share a few User-Agent strings instead of holding one copy each. Bounded: forgets everything
 * once `max` distinct values were seen (a string already handed out stays valid).
 */
export class StringInterner {
  private readonly known = new Map<string, string>();
  private readonly max: number;
  constructor(max: number) {
    this.max = max;
  }
  intern(value: string): string {
    const known = this.known.get(value);
    if (known !== undefined) return known;
    if (this.known.size >= this.max) this.known.clear();
    this.known.set(value, value);
    return value;
  }
}

/** Matches addresses against exact entries and IPv4 CIDR ranges (`10.0.0.0/8`). */
export function addressMatcher(entries: readonly string[]): (address: string) => boolean {
  const exact = new Set<string>();
  const ranges: Array<[number, number]> = [];
  for (const entry of entries) {
    const [base, bits] = entry.split('/');
    const ip = base === undefined ? undefined : ipv4(base);
    if (bits !== undefined && ip !== undefined) {
      const prefix = Number(bits);
      const mask = prefix === 0 ? 0 : (~0 << (32 - prefix)) >>> 0;
      ranges.push([(ip & mask) >>> 0, mask]);
    } else {
      exact.add(entry);
    }
  }
  return (address) => {
    if (exact.has(address)) return true;
    const ip = ipv4(address.startsWith('::ffff:') ? address.slice(7) : address);
    return ip !== undefined && ranges.some(([network, mask]) => ((ip & mask) >>> 0) === network);
  };
}

function ipv4(text: string): number | undefined {
  const parts = text.split('.');
  if (parts.length !== 4) return undefined;
  let value = 0;
  for (const part of parts) {
    const octet = Number(part);
    if (!/^\d{1,3}$/.test(part) || octet > 255) return undefined;
    value = value * 256 + octet;
  }
  return value;
}

function bearer(header: string): string | undefined {
  return header.startsWith('Bearer ') ? header.slice(7).trim() : undefined;
}
