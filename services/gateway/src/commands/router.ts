/**
 * Command delivery on one gateway process: follows dwell.commands.v1, hands commands to this
 * process's connections of the addressed user, takes their replies, tells requesters, and keeps
 * this process's presence (docs/commands.md).
 */
import { randomBytes } from 'node:crypto';
import {
  startTail,
  type Kafka,
  type Message,
  type Producer,
  type TailReader,
  type TailRecord,
} from '@dwell/kafka';
import {
  decodeCommandLogRecord,
  encodeClientReply,
  encodeCommandReply,
  type ClientReply,
  type Command,
  type CommandReply,
} from '@dwell/protocol';
import {
  parseReply,
  type CommandLimits,
  type CommandTopics,
  type ReplyRejectionReason,
  type ReplyRequest,
} from '@dwell/commands';
import { errorMessage, type CounterChild, type Logger, type MetricsRegistry } from '@dwell/runtime';
import { EventLog } from '../event-log.js';
import { CommandBoard, type BoardConnection, type BoardEffect, type BoardEntry } from './board.js';
import { cancelFrame, commandFrame, replyErrorFrame } from './frames.js';
import { PresencePublisher } from './presence.js';

/** A connection of this process that can receive commands (a WebSocket or an SSE stream). */
export interface CommandConnection extends BoardConnection {
  readonly transport: 'ws' | 'sse';
  /** Sends one server frame (JSON text). The transport handles backpressure and slow clients. */
  send(text: string): void;
}

export type ReplyOutcome =
  | { readonly ok: true }
  | { readonly ok: false; readonly reason: ReplyRejectionReason; readonly detail: string };

/** What `POST /v1/replies` did with a reply. */
export type HttpReplyOutcome = ReplyOutcome | { readonly ok: true; readonly forwarded: true };

export interface CommandRouterOptions {
  readonly gatewayId: string;
  readonly topics: CommandTopics;
  readonly limits: CommandLimits;
  /** Presence heartbeat period, ms (the lease is three). */
  readonly heartbeatMs: number;
  readonly logger: Logger;
  readonly metrics: MetricsRegistry;
}

export class CommandRouter {
  private readonly options: CommandRouterOptions;
  private readonly producer: Producer;
  private readonly board: CommandBoard;
  private readonly presence: PresencePublisher;
  /** Progress records and duplicate answers: batched for a millisecond, never on a reply's path. */
  private readonly replyLog: EventLog;
  private readonly connections = new Map<string, CommandConnection>();
  /** A user's connections: the connection itself while it is the only one (most users), else a Set. */
  private readonly byUser = new Map<string, CommandConnection | Set<CommandConnection>>();
  private readonly counters: {
    readonly read: CounterChild;
    readonly deliveries: CounterChild;
    readonly undecodable: CounterChild;
    readonly replies: (result: string) => CounterChild;
  };
  private tail: TailReader | undefined;
  private sweeper: NodeJS.Timeout | undefined;
  /** `delivered` records wait a little: when the reply comes first they are not needed at all. */
  private progress: Array<{ readonly entry: BoardEntry; readonly message: Message }> = [];
  private progressTimer: NodeJS.Timeout | undefined;

  private constructor(producer: Producer, options: CommandRouterOptions, epoch: string) {
    this.options = options;
    this.producer = producer;
    this.board = new CommandBoard({
      gatewayId: options.gatewayId,
      maxTimeoutMs: options.limits.maxTimeoutMs,
    });
    this.presence = new PresencePublisher(producer, {
      topic: options.topics.presence,
      gatewayId: options.gatewayId,
      epoch,
      heartbeatMs: options.heartbeatMs,
      connections: () => this.connections.size,
      logger: options.logger,
    });
    this.replyLog = new EventLog(producer, {
      topic: options.topics.replies,
      lingerMs: 1,
      maxBufferedBytes: 16 * 1024 * 1024,
    });
    const m = options.metrics;
    m.gauge(
      'dwell_gateway_command_board_size',
      'Recent commands this process remembers.',
      () => this.board.size,
    );
    m.gauge(
      'dwell_gateway_command_connections',
      'Connections that can receive commands, by transport.',
      () => [
        [{ transport: 'ws' }, [...this.connections.values()].filter((c) => c.transport === 'ws').length],
        [{ transport: 'sse' }, [...this.connections.values()].filter((c) => c.transport === 'sse').length],
      ],
    );
    const replies = m.counter(
      'dwell_gateway_command_replies_total',
      'Client replies, by result (replied, rejected, or the refusal reason).',
    );
    this.counters = {
      read: m
        .counter('dwell_gateway_commands_read_total', 'Command records read from the commands topic.')
        .labels(),
      deliveries: m
        .counter('dwell_gateway_command_deliveries_total', 'Commands handed to a connection.')
        .labels(),
      undecodable: m
        .counter(
          'dwell_gateway_command_records_undecodable_total',
          'Records on the commands topic that could not be read.',
        )
        .labels(),
      replies: (result) => replies.labels({ result }),
    };
  }

  /**
   * Publishes this process's presence and reads the commands of the last `maxTimeoutMs` (those may
   * still be waiting for a user who reconnects here); resolves once caught up with the log.
   */
  static async start(
    kafka: Kafka,
    producer: Producer,
    options: CommandRouterOptions,
  ): Promise<CommandRouter> {
    const router = new CommandRouter(producer, options, randomBytes(8).toString('hex'));
    await router.presence.start();
    router.tail = await startTail(kafka, {
      topic: options.topics.commands,
      groupId: `dwell-gateway-commands-${options.gatewayId}-${randomBytes(4).toString('hex')}`,
      from: { timestampMs: Date.now() - options.limits.maxTimeoutMs },
      logger: options.logger,
      onRecords: (records) => router.onRecords(records),
    });
    await router.tail.ready;
    router.sweeper = setInterval(() => router.apply(router.board.sweep(Date.now())), 250);
    router.sweeper.unref();
    return router;
  }

  /** A connection opened: it receives every command still waiting for its user. */
  attach(connection: CommandConnection): void {
    this.connections.set(connection.id, connection);
    const known = this.byUser.get(connection.userId);
    if (known === undefined) this.byUser.set(connection.userId, connection);
    else if (known instanceof Set) known.add(connection);
    else if (known !== connection) this.byUser.set(connection.userId, new Set([known, connection]));
    this.presence.userConnected(connection.siteId, connection.userId);
    this.apply(this.board.onConnectionOpened(connection, Date.now()));
  }

  detach(connection: CommandConnection): void {
    if (!this.connections.delete(connection.id)) return;
    const known = this.byUser.get(connection.userId);
    if (known === connection) this.byUser.delete(connection.userId);
    else if (known instanceof Set) {
      known.delete(connection);
      if (known.size === 1) this.byUser.set(connection.userId, known.values().next().value as CommandConnection);
    }
    this.presence.userDisconnected(connection.siteId, connection.userId);
  }

  /** A reply frame on one of this process's WebSockets. */
  async replyFrame(connection: BoardConnection, text: string): Promise<ReplyOutcome> {
    const parsed = parseReply(text, this.options.limits);
    if (!parsed.ok) {
      this.counters.replies(parsed.reason).inc();
      return parsed;
    }
    return this.take(connection.userId, connection.id, parsed.value);
  }

  /**
   * `POST /v1/replies` with a verified token: taken here when this process delivered the command to
   * the named connection; otherwise forwarded through the log to whichever gateway did.
   */
  async replyOverHttp(
    claims: { readonly site_id: string; readonly user_id: string },
    text: string,
  ): Promise<HttpReplyOutcome> {
    const parsed = parseReply(text, this.options.limits, { needsConnectionId: true });
    if (!parsed.ok) {
      this.counters.replies(parsed.reason).inc();
      return parsed;
    }
    const reply = parsed.value;
    const connectionId = reply.connectionId ?? '';
    // Ours to decide when the connection is one of ours, or we delivered this command to it.
    const entry = this.board.get(claims.user_id, reply.id);
    if (this.connections.has(connectionId) || entry?.deliveredTo.has(connectionId) === true)
      return this.take(claims.user_id, connectionId, reply);
    const forwarded: ClientReply = {
      command_id: reply.id,
      site_id: claims.site_id,
      user_id: claims.user_id,
      connection_id: connectionId,
      result: reply.result,
      error: reply.error,
      detail: reply.detail,
      received_by: this.options.gatewayId,
      at_ms: Date.now(),
    };
    try {
      await this.producer.send({
        topic: this.options.topics.commands,
        acks: -1,
        messages: [{ key: claims.user_id, value: encodeClientReply(forwarded) }],
      });
    } catch (error) {
      return { ok: false, reason: 'unavailable', detail: `not stored: ${errorMessage(error)}` };
    }
    this.counters.replies('forwarded').inc();
    return { ok: true, forwarded: true };
  }

  /** Stops reading commands and announces that this process holds nobody any more. */
  async stop(): Promise<void> {
    if (this.sweeper !== undefined) clearInterval(this.sweeper);
    await this.tail?.stop();
    this.flushProgress();
    await this.replyLog.drain();
    await this.presence.stop();
  }

  /** Takes a checked reply from `connectionId` of `userId`: stores the outcome, then settles. */
  private async take(userId: string, connectionId: string, reply: ReplyRequest): Promise<ReplyOutcome> {
    const check = this.board.beginReply(userId, connectionId, reply.id, Date.now());
    if (!check.ok) {
      this.counters.replies(check.reason).inc();
      return check;
    }
    const { entry } = check;
    const refused = reply.error !== null;
    const record: CommandReply = {
      command_id: entry.command.id,
      requester: null,
      site_id: entry.command.site_id,
      user_id: userId,
      outcome: refused ? 'rejected' : 'replied',
      payload: reply.result,
      reason: refused ? 'client_refused' : null,
      detail: refused ? `${reply.error}${reply.detail === null ? '' : `: ${reply.detail}`}` : null,
      gateway_id: this.options.gatewayId,
      connection_id: connectionId,
      connections: 0,
      at_ms: Date.now(),
    };
    const requesters = this.board.requestersToAnswer(entry);
    try {
      // The requesters' outcomes and the settle record for every gateway, in one request.
      await this.producer.sendBatch({
        acks: -1,
        topicMessages: [
          {
            topic: this.options.topics.replies,
            messages: requesters.map((requester) => ({
              key: requester,
              value: encodeCommandReply({ ...record, requester }),
            })),
          },
          {
            topic: this.options.topics.commands,
            messages: [{ key: userId, value: encodeCommandReply(record) }],
          },
        ],
      });
    } catch (error) {
      this.board.abandon(entry);
      this.counters.replies('unavailable').inc();
      return {
        ok: false,
        reason: 'unavailable',
        detail: `the reply was not stored; send it again: ${errorMessage(error)}`,
      };
    }
    this.counters.replies(record.outcome).inc();
    this.apply(this.board.settle(entry, record, requesters));
    return { ok: true };
  }

  private onRecords(records: readonly TailRecord[]): void {
    const now = Date.now();
    for (const record of records) {
      if (record.value === null) continue;
      const decoded = decodeCommandLogRecord(record.value);
      switch (decoded.kind) {
        case 'command':
          this.counters.read.inc();
          if (!acceptable(decoded.value, this.options.limits)) {
            this.counters.undecodable.inc();
            this.options.logger.warn('command record refused: malformed name or args', {
              offset: record.offset,
              id: decoded.value.id,
            });
            break;
          }
          this.apply(
            this.board.onCommand(decoded.value, now, (userId, siteId) => this.connectionsOf(userId, siteId)),
          );
          break;
        case 'settled':
          this.apply(this.board.onSettled(decoded.value));
          break;
        case 'client_reply':
          this.onForwardedReply(decoded.value);
          break;
        case 'undecodable':
          this.counters.undecodable.inc();
          this.options.logger.warn('undecodable record on the commands topic', {
            partition: record.partition,
            offset: record.offset,
            detail: decoded.detail,
          });
          break;
      }
    }
  }

  /** A reply another gateway received over HTTP: ours to check if we delivered to that connection. */
  private onForwardedReply(forwarded: ClientReply): void {
    if (forwarded.received_by === this.options.gatewayId) return;
    const connection = this.connections.get(forwarded.connection_id);
    const entry = this.board.get(forwarded.user_id, forwarded.command_id);
    if (connection === undefined && entry?.deliveredTo.has(forwarded.connection_id) !== true) return;
    const reply: ReplyRequest = {
      id: forwarded.command_id,
      result: forwarded.result,
      error: forwarded.error,
      detail: forwarded.detail,
      connectionId: forwarded.connection_id,
    };
    void this.take(forwarded.user_id, forwarded.connection_id, reply).then((outcome) => {
      if (outcome.ok) return;
      // The refusal goes to the connection only if it is the sender's own: another user's token
      // naming someone's connection must not be able to put frames on it.
      const target = this.connections.get(forwarded.connection_id);
      if (target?.userId === forwarded.user_id)
        target.send(replyErrorFrame(forwarded.command_id, outcome.reason, outcome.detail));
    });
  }

  private connectionsOf(userId: string, siteId: string | null): CommandConnection[] {
    const known = this.byUser.get(userId);
    if (known === undefined) return [];
    const all = known instanceof Set ? [...known] : [known];
    return all.filter((c) => siteId === null || c.siteId === siteId);
  }

  private apply(effects: readonly BoardEffect[]): void {
    if (effects.length === 0) return;
    const now = Date.now();
    const answers: Message[] = [];
    for (const effect of effects) {
      switch (effect.kind) {
        case 'deliver': {
          const frame = commandFrame(effect.entry, now);
          for (const connection of effect.connections) this.connections.get(connection.id)?.send(frame);
          this.counters.deliveries.inc(effect.connections.length);
          const { command } = effect.entry;
          for (const requester of effect.entry.requesters) {
            this.progress.push({
              entry: effect.entry,
              message: {
                key: requester,
                value: encodeCommandReply({
                  command_id: command.id,
                  requester,
                  site_id: command.site_id,
                  user_id: command.user_id,
                  outcome: 'delivered',
                  payload: null,
                  reason: null,
                  detail: null,
                  gateway_id: this.options.gatewayId,
                  connection_id: effect.connections[0]?.id ?? null,
                  connections: effect.connections.length,
                  at_ms: now,
                }),
              },
            });
          }
          this.progressTimer ??= setTimeout(() => this.flushProgress(), PROGRESS_DELAY_MS);
          break;
        }
        case 'answer':
          answers.push({ key: effect.requester, value: encodeCommandReply(effect.reply) });
          break;
        case 'cancel': {
          const frame = cancelFrame(effect.entry.command.id, effect.reason);
          for (const id of effect.connectionIds) this.connections.get(id)?.send(frame);
          break;
        }
      }
    }
    this.appendReplies(answers);
  }

  /** Sends the `delivered` records of commands still unanswered; an answered one says more already. */
  private flushProgress(): void {
    if (this.progressTimer !== undefined) clearTimeout(this.progressTimer);
    this.progressTimer = undefined;
    const due = this.progress
      .filter(({ entry }) => entry.state === 'pending' || entry.state === 'expired')
      .map(({ message }) => message);
    this.progress = [];
    this.appendReplies(due);
  }

  private appendReplies(messages: readonly Message[]): void {
    if (messages.length === 0) return;
    void this.replyLog
      .append(messages.map((m) => ({ key: String(m.key), value: m.value as Buffer })))
      .then((outcome) => {
        if (!outcome.stored)
          this.options.logger.warn('command progress records not stored', {
            records: messages.length,
            reason: outcome.reason,
          });
      });
  }
}

/** How long a `delivered` record waits for the reply that makes it unnecessary, ms. */
const PROGRESS_DELAY_MS = 20;

/** Only well-formed commands reach a client: our bus checks them, a foreign writer might not. */
function acceptable(command: Command, limits: CommandLimits): boolean {
  if (
    !/^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$/.test(command.name) ||
    Buffer.byteLength(command.args) > limits.maxArgsBytes
  )
    return false;
  try {
    JSON.parse(command.args);
    return true;
  } catch {
    return false;
  }
}
