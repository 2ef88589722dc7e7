/**
 * The command endpoints of the gateway (docs/commands.md, docs/protocol.md):
 * - `POST /v1/commands`: a backend with a service token sends a command and waits for its outcome.
 * - `GET /v1/stream`: Server-Sent Events, the downlink for clients without WebSocket.
 * - `POST /v1/replies`: a client's reply to a command it received (over SSE, or any transport).
 */
import { randomBytes } from 'node:crypto';
import type { HttpRequest, HttpResponse, TemplatedApp } from 'uWebSockets.js';
import {
  parseCommandRequest,
  type CommandBus,
  type CommandLimits,
  type CommandOutcome,
} from '@dwell/commands';
import type { RejectionReasonCode } from '@dwell/protocol';
import type { Logger } from '@dwell/runtime';
import { originAllowed, verifyToken, type Sites, type TokenClaims } from '../auth.js';
import type { CommandRouter, HttpReplyOutcome } from './router.js';
import { serviceFor, type ServiceTokens } from './service-auth.js';
import { SseStream } from './sse.js';

/** What the HTTP server lends the command routes. */
export interface RouteContext {
  readonly draining: () => boolean;
  /** The client's address (X-Forwarded-For from trusted proxies). Call before returning from the handler. */
  readonly clientAddress: (res: HttpResponse, req: HttpRequest) => string;
  /** Keeps a refused input on the dead-letter topic. */
  readonly deadLetter: (
    reason: RejectionReasonCode,
    detail: string,
    raw: Uint8Array,
    transport: string,
    facts: { remoteAddr: string; origin: string | null; claims?: TokenClaims },
  ) => void;
}

export interface CommandHttpOptions {
  readonly gatewayId: string;
  readonly sites: Sites;
  /** Undefined: no service may send commands through this gateway. */
  readonly serviceTokens: ServiceTokens | undefined;
  readonly limits: CommandLimits;
  readonly maxStreamsPerIp: number;
  /** Unsent bytes per SSE stream before it is closed as a slow client. */
  readonly maxBackpressureBytes: number;
  /** SSE comment lines keep proxies from closing an idle stream, s. */
  readonly keepAliveS: number;
}

export class CommandHttp {
  private readonly options: CommandHttpOptions;
  private readonly router: CommandRouter | undefined;
  private readonly bus: CommandBus | undefined;
  private readonly logger: Logger;
  private readonly streams = new Set<SseStream>();
  private readonly perIp = new Map<string, number>();
  private keepAlive: NodeJS.Timeout | undefined;

  constructor(
    options: CommandHttpOptions,
    deps: { router: CommandRouter | undefined; bus: CommandBus | undefined; logger: Logger },
  ) {
    this.options = options;
    this.router = deps.router;
    this.bus = deps.bus;
    this.logger = deps.logger;
  }

  get streamCount(): number {
    return this.streams.size;
  }

  register(app: TemplatedApp, context: RouteContext): void {
    app.post('/v1/commands', (res, req) => this.postCommand(res, req, context));
    if (this.router !== undefined) {
      const router = this.router;
      app.get('/v1/stream', (res, req) => this.openStream(res, req, context, router));
      app.post('/v1/replies', (res, req) => this.postReply(res, req, context, router));
      app.options('/v1/replies', (res, req) => preflight(res, req.getHeader('origin')));
      this.keepAlive = setInterval(() => {
        for (const stream of this.streams) stream.comment('ping');
      }, this.options.keepAliveS * 1000);
      this.keepAlive.unref();
    }
  }

  /** Ends every SSE stream with a reconnect hint (the node is going away). */
  closeStreams(): void {
    if (this.keepAlive !== undefined) clearInterval(this.keepAlive);
    for (const stream of [...this.streams]) {
      stream.send(JSON.stringify({ t: 'reconnect', retry_after_ms: 500 + Math.floor(Math.random() * 4500) }));
      stream.end();
    }
  }

  private postCommand(res: HttpResponse, req: HttpRequest, context: RouteContext): void {
    const authorization = req.getHeader('authorization');
    const origin = req.getHeader('origin');
    const remoteAddr = context.clientAddress(res, req);
    const answer = responder(res);
    if (context.draining())
      return answer.json(
        '503 Service Unavailable',
        { reason: 'unavailable', detail: 'draining' },
        { 'retry-after': '1' },
      );
    const tokens = this.options.serviceTokens;
    const service = tokens === undefined ? undefined : serviceFor(authorization, tokens);
    if (service === undefined || this.bus === undefined) {
      const detail =
        tokens === undefined
          ? 'this gateway has no service tokens (DWELL_SERVICE_TOKENS)'
          : 'Authorization: Bearer <service token> is missing or wrong';
      context.deadLetter('unauthorized_service', detail, Buffer.alloc(0), 'http_command', {
        remoteAddr,
        origin: origin || null,
      });
      return answer.json('401 Unauthorized', { outcome: 'rejected', reason: 'unauthorized_service', detail });
    }
    const bus = this.bus;
    const limit = this.options.limits.maxArgsBytes + 4096;
    readBody(res, limit, answer, {
      tooLarge: (head) => {
        const detail = `body exceeds ${limit} bytes`;
        context.deadLetter('command_too_large', detail, head, 'http_command', {
          remoteAddr,
          origin: origin || null,
        });
        answer.json(
          '413 Payload Too Large',
          { outcome: 'rejected', reason: 'command_too_large', detail },
          {},
          true,
        );
      },
      done: (body) => {
        const checked = parseCommandRequest(body.toString('utf8'), this.options.limits);
        if (!checked.ok) {
          context.deadLetter(checked.reason, checked.detail, body, 'http_command', {
            remoteAddr,
            origin: origin || null,
          });
          const status = checked.reason === 'command_too_large' ? '413 Payload Too Large' : '400 Bad Request';
          return answer.json(status, { outcome: 'rejected', reason: checked.reason, detail: checked.detail });
        }
        void bus.sendRequest(checked.value).then((outcome) => {
          const status =
            outcome.outcome === 'rejected' && outcome.reason === 'unavailable'
              ? '503 Service Unavailable'
              : '200 OK';
          answer.json(status, outcomeJson(outcome));
        });
      },
    });
  }

  private openStream(
    res: HttpResponse,
    req: HttpRequest,
    context: RouteContext,
    router: CommandRouter,
  ): void {
    const origin = req.getHeader('origin');
    const token = req.getQuery('token') ?? bearer(req.getHeader('authorization'));
    const remoteAddr = context.clientAddress(res, req);
    // Refusals are written before this handler returns, so nothing can abort them meanwhile.
    const answer = {
      json: (status: string, body: unknown, headers: Record<string, string> = {}) =>
        respondNow(res, status, body, headers),
    };
    if (context.draining())
      return answer.json(
        '503 Service Unavailable',
        { reason: 'unavailable', detail: 'draining' },
        { 'retry-after': '1' },
      );
    const check = verifyToken(token === '' ? undefined : token, this.options.sites, Date.now());
    if (!check.ok) {
      context.deadLetter(check.reason, check.detail, Buffer.alloc(0), 'sse', {
        remoteAddr,
        origin: origin || null,
      });
      return answer.json('401 Unauthorized', { reason: check.reason, detail: check.detail }, cors(origin));
    }
    const claims = check.claims;
    const site = this.options.sites.get(claims.site_id);
    if (site === undefined || !originAllowed(site, origin)) {
      const detail = `origin ${origin} is not allowed for site ${claims.site_id}`;
      context.deadLetter('forbidden_origin', detail, Buffer.alloc(0), 'sse', { remoteAddr, origin, claims });
      return answer.json('403 Forbidden', { reason: 'forbidden_origin', detail });
    }
    if ((this.perIp.get(remoteAddr) ?? 0) >= this.options.maxStreamsPerIp) {
      const detail = `more than ${this.options.maxStreamsPerIp} streams from ${remoteAddr}`;
      context.deadLetter('too_many_connections', detail, Buffer.alloc(0), 'sse', {
        remoteAddr,
        origin: origin || null,
        claims,
      });
      return answer.json('429 Too Many Requests', { reason: 'too_many_connections', detail }, cors(origin));
    }
    // The id doubles as a capability for POST /v1/replies, so it is long and random.
    const id = randomBytes(16).toString('hex');
    const stream = new SseStream(res, {
      maxBackpressureBytes: this.options.maxBackpressureBytes,
      onClose: () => {
        this.streams.delete(stream);
        const left = (this.perIp.get(remoteAddr) ?? 1) - 1;
        if (left === 0) this.perIp.delete(remoteAddr);
        else this.perIp.set(remoteAddr, left);
        router.detach(connection);
      },
      onSlow: () => this.logger.info('sse stream closed: the client does not read', { connection_id: id }),
    });
    const connection = {
      id,
      siteId: claims.site_id,
      userId: claims.user_id,
      transport: 'sse' as const,
      send: (text: string) => stream.send(text),
    };
    this.streams.add(stream);
    this.perIp.set(remoteAddr, (this.perIp.get(remoteAddr) ?? 0) + 1);
    stream.open(cors(origin));
    stream.send(
      JSON.stringify({
        t: 'hello',
        gateway_id: this.options.gatewayId,
        connection_id: id,
        heartbeat_s: this.options.keepAliveS,
        transport: 'sse',
      }),
    );
    router.attach(connection);
  }

  private postReply(res: HttpResponse, req: HttpRequest, context: RouteContext, router: CommandRouter): void {
    const origin = req.getHeader('origin');
    const token = req.getQuery('token') ?? bearer(req.getHeader('authorization'));
    const remoteAddr = context.clientAddress(res, req);
    const answer = responder(res, origin);
    if (context.draining())
      return answer.json(
        '503 Service Unavailable',
        { reason: 'unavailable', detail: 'draining' },
        { 'retry-after': '1' },
      );
    const check = verifyToken(token === '' ? undefined : token, this.options.sites, Date.now());
    if (!check.ok) {
      context.deadLetter(check.reason, check.detail, Buffer.alloc(0), 'http_reply', {
        remoteAddr,
        origin: origin || null,
      });
      return answer.json('401 Unauthorized', { reason: check.reason, detail: check.detail });
    }
    const claims = check.claims;
    const site = this.options.sites.get(claims.site_id);
    if (site === undefined || !originAllowed(site, origin)) {
      const detail = `origin ${origin} is not allowed for site ${claims.site_id}`;
      context.deadLetter('forbidden_origin', detail, Buffer.alloc(0), 'http_reply', {
        remoteAddr,
        origin,
        claims,
      });
      return answer.json('403 Forbidden', { reason: 'forbidden_origin', detail });
    }
    const limit = this.options.limits.maxReplyBytes + 2048;
    readBody(res, limit, answer, {
      tooLarge: (head) => {
        const detail = `body exceeds ${limit} bytes`;
        context.deadLetter('reply_too_large', detail, head, 'http_reply', { remoteAddr, origin, claims });
        answer.json('413 Payload Too Large', { reason: 'reply_too_large', detail }, {}, true);
      },
      done: (body) => {
        void router.replyOverHttp(claims, body.toString('utf8')).then((outcome: HttpReplyOutcome) => {
          if (outcome.ok)
            return answer.json('forwarded' in outcome ? '202 Accepted' : '200 OK', {
              status: 'forwarded' in outcome ? 'forwarded' : 'accepted',
            });
          if (outcome.reason !== 'unavailable')
            context.deadLetter(outcome.reason, outcome.detail, body, 'http_reply', {
              remoteAddr,
              origin,
              claims,
            });
          const [status, headers] = REPLY_STATUS[outcome.reason];
          answer.json(status, { reason: outcome.reason, detail: outcome.detail }, headers);
        });
      },
    });
  }
}

const REPLY_STATUS: Record<
  Exclude<HttpReplyOutcome, { ok: true }>['reason'],
  [string, Record<string, string>]
> = {
  invalid_reply: ['400 Bad Request', {}],
  reply_too_large: ['413 Payload Too Large', {}],
  unknown_command: ['404 Not Found', {}],
  already_settled: ['409 Conflict', {}],
  reply_late: ['410 Gone', {}],
  unavailable: ['503 Service Unavailable', { 'retry-after': '1' }],
};

/** The JSON body of `POST /v1/commands` for an outcome (snake_case, as on the wire elsewhere). */
export function outcomeJson(outcome: CommandOutcome): Record<string, unknown> {
  switch (outcome.outcome) {
    case 'replied':
      return {
        outcome: 'replied',
        id: outcome.id,
        payload: outcome.payload,
        gateway_id: outcome.gatewayId,
        connection_id: outcome.connectionId,
      };
    case 'expired':
      return { outcome: 'expired', id: outcome.id, delivered: outcome.delivered };
    case 'offline':
      return { outcome: 'offline', id: outcome.id };
    case 'rejected':
      return {
        outcome: 'rejected',
        id: outcome.id,
        reason: outcome.reason,
        detail: outcome.detail,
        ...(outcome.gatewayId === undefined ? {} : { gateway_id: outcome.gatewayId }),
        ...(outcome.connectionId === undefined ? {} : { connection_id: outcome.connectionId }),
      };
  }
}

interface Responder {
  readonly aborted: () => boolean;
  json(status: string, body: unknown, headers?: Record<string, string>, closeConnection?: boolean): void;
}

/** Answers a request once, corked, and never after the client went away. */
function responder(res: HttpResponse, origin = ''): Responder {
  let aborted = false;
  let answered = false;
  res.onAborted(() => (aborted = true));
  return {
    aborted: () => aborted,
    json: (status, body, headers = {}, closeConnection = false) => {
      if (aborted || answered) return;
      answered = true;
      res.cork(() => {
        res.writeStatus(status).writeHeader('content-type', 'application/json');
        if (origin !== '' && headers['access-control-allow-origin'] === undefined)
          res.writeHeader('access-control-allow-origin', origin);
        for (const [name, value] of Object.entries(headers)) res.writeHeader(name, value);
        res.end(JSON.stringify(body), closeConnection);
      });
    },
  };
}

/** Reads a request body, refusing it as soon as it grows past `limit` (never buffering more). */
function readBody(
  res: HttpResponse,
  limit: number,
  answer: Responder,
  handlers: { tooLarge: (head: Buffer) => void; done: (body: Buffer) => void },
): void {
  const chunks: Buffer[] = [];
  let size = 0;
  let refused = false;
  res.onData((chunk, isLast) => {
    if (refused || answer.aborted()) return;
    size += chunk.byteLength;
    if (size > limit) {
      refused = true;
      handlers.tooLarge(Buffer.concat(chunks).subarray(0, 1024));
      return;
    }
    // uWebSockets.js reuses `chunk` after this callback: copy it.
    chunks.push(Buffer.from(chunk.slice(0)));
    if (isLast) handlers.done(Buffer.concat(chunks));
  });
}

function respondNow(res: HttpResponse, status: string, body: unknown, headers: Record<string, string>): void {
  res.cork(() => {
    res.writeStatus(status).writeHeader('content-type', 'application/json');
    for (const [name, value] of Object.entries(headers)) res.writeHeader(name, value);
    res.end(JSON.stringify(body));
  });
}

function cors(origin: string): Record<string, string> {
  return origin === '' ? {} : { 'access-control-allow-origin': origin };
}

function preflight(res: HttpResponse, origin: string): void {
  res.cork(() => {
    res
      .writeStatus('204 No Content')
      .writeHeader('access-control-allow-origin', origin === '' ? '*' : origin)
      .writeHeader('access-control-allow-methods', 'POST')
      .writeHeader('access-control-allow-headers', 'authorization, content-type')
      .writeHeader('access-control-max-age', '86400')
      .end();
  });
}

function bearer(header: string): string | undefined {
  return header.startsWith('Bearer ') ? header.slice(7).trim() : undefined;
}
