/**
 * The backend's side of the command channel: `createCommandBus(config)` and `bus.send(...)`.
 * docs/commands.md describes the whole path; this file wires Kafka to the pure parts
 * (CommandInFlight, PresenceView, the limits).
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import {
  createKafka,
  createProducer,
  ensureTopics,
  retrying,
  startTail,
  type Producer,
  type TailReader,
} from '@dwell/kafka';
import {
  decodeCommandReply,
  decodePresence,
  encodeCommand,
  type CommandReply,
  type Presence,
} from '@dwell/protocol';
import { errorMessage, type Logger } from '@dwell/runtime';
import { checkCommand, DEFAULT_COMMAND_LIMITS, type CommandLimits, type CommandRequest } from './limits.js';
import { CommandInFlight, type CommandOutcome } from './outcome.js';
import { PresenceView } from './presence-view.js';
import { commandTopicSpecs, DEFAULT_COMMAND_TOPICS, type CommandTopics } from './topics.js';

export interface CommandBusConfig {
  /** Kafka bootstrap servers, `host:port`. */
  readonly brokers: readonly string[];
  /** Kafka client id. Default `dwell-commands`. */
  readonly clientId?: string;
  /** This bus on dwell.replies.v1 (the key of its outcomes). Default: `<hostname>-<pid>-<random>`, new per process. */
  readonly requesterId?: string;
  readonly topics?: Partial<CommandTopics>;
  readonly limits?: Partial<CommandLimits>;
  /**
   * How long a user the presence view does not show is waited for before the answer is `offline`,
   * ms: presence records of a connection opened a moment ago may still be on their way. Default 250.
   */
  readonly presenceGraceMs?: number;
  /** How long a settled outcome is remembered for resends with the same id, ms. Default 10 minutes. */
  readonly idempotencyWindowMs?: number;
  /** Create missing topics at start. Default true. */
  readonly createTopics?: boolean;
  readonly logger?: Logger;
}

export interface SendOptions {
  /** How long to wait for a reply, ms. Default 10 s, at most `limits.maxTimeoutMs` (60 s). */
  readonly timeoutMs?: number;
  /** The idempotency key (unique per user). Default: a fresh UUID. */
  readonly id?: string;
  /** Deliver only to connections whose token names this site. */
  readonly siteId?: string;
}

export interface CommandBus {
  readonly requesterId: string;
  /** Sends a command to one user; resolves with exactly one outcome, never rejects. */
  send(
    userId: string,
    command: { readonly name: string; readonly args?: unknown },
    options?: SendOptions,
  ): Promise<CommandOutcome>;
  /** `send` for a request already checked (the gateway's HTTP API). */
  sendRequest(request: CommandRequest): Promise<CommandOutcome>;
  /** What the presence view says now. */
  isOnline(userId: string, siteId?: string): boolean;
  /** Stops reading and writing; commands still waiting resolve `rejected: unavailable`. */
  close(): Promise<void>;
}

interface Entry {
  readonly key: string;
  readonly machine: CommandInFlight;
  readonly promise: Promise<CommandOutcome>;
  readonly resolve: (outcome: CommandOutcome) => void;
  timer: NodeJS.Timeout | undefined;
  settledAt: number | undefined;
}

/** Connects to Kafka, reads presence to its end and starts following its replies; then it is ready. */
export async function createCommandBus(config: CommandBusConfig): Promise<CommandBus> {
  const topics: CommandTopics = { ...DEFAULT_COMMAND_TOPICS, ...config.topics };
  const limits: CommandLimits = { ...DEFAULT_COMMAND_LIMITS, ...config.limits };
  const requesterId = config.requesterId ?? `${hostname()}-${process.pid}-${randomBytes(4).toString('hex')}`;
  const graceMs = config.presenceGraceMs ?? 250;
  const windowMs = config.idempotencyWindowMs ?? 600_000;
  const log = config.logger?.child({ component: 'command-bus', requester: requesterId });
  const kafka = createKafka({
    brokers: config.brokers,
    clientId: config.clientId ?? 'dwell-commands',
    ...(log ? { logger: log } : {}),
  });
  if (config.createTopics !== false) await retrying(() => ensureTopics(kafka, commandTopicSpecs(topics)));

  const entries = new Map<string, Entry>();
  const waiters = new Map<string, Set<() => void>>();
  const view = new PresenceView({
    onChange: (userId) => {
      if (userId === undefined) for (const set of waiters.values()) for (const wake of [...set]) wake();
      else for (const wake of [...(waiters.get(userId) ?? [])]) wake();
    },
  });
  let closed = false;

  const finish = (entry: Entry, outcome: CommandOutcome | undefined): void => {
    if (outcome === undefined) return;
    if (entry.timer !== undefined) clearTimeout(entry.timer);
    entry.timer = undefined;
    entry.settledAt = Date.now();
    entry.resolve(outcome);
  };

  const producer: Producer = createProducer(kafka, { maxInFlightRequests: 5 });
  await producer.connect();
  const tails: TailReader[] = [];
  try {
    tails.push(
      await startTail(kafka, {
        topic: topics.presence,
        groupId: `dwell-bus-presence-${requesterId}`,
        from: 'earliest',
        ...(log ? { logger: log } : {}),
        onRecords: (records) => {
          for (const record of records) {
            if (record.key === null) continue;
            let value: Presence | null = null;
            if (record.value !== null) {
              try {
                value = decodePresence(record.value);
              } catch (error) {
                log?.warn('undecodable presence record skipped', { offset: record.offset, error });
                continue;
              }
            }
            view.apply(record.key.toString(), value);
          }
        },
      }),
    );
    tails.push(
      await startTail(kafka, {
        topic: topics.replies,
        groupId: `dwell-bus-replies-${requesterId}`,
        from: 'latest',
        onlyKey: requesterId,
        ...(log ? { logger: log } : {}),
        onRecords: (records) => {
          for (const record of records) {
            if (record.value === null || record.key?.toString() !== requesterId) continue;
            let reply: CommandReply;
            try {
              reply = decodeCommandReply(record.value);
            } catch (error) {
              log?.warn('undecodable reply skipped', { offset: record.offset, error });
              continue;
            }
            const entry = entries.get(entryKey(reply.user_id, reply.command_id));
            if (entry !== undefined) finish(entry, entry.machine.onReply(reply, Date.now()));
          }
        },
      }),
    );
    await Promise.all(tails.map((tail) => tail.ready));
  } catch (error) {
    await Promise.allSettled([...tails.map((tail) => tail.stop()), producer.disconnect()]);
    throw error;
  }

  // Settled outcomes are kept for resends with the same id, then forgotten.
  const sweeper = setInterval(
    () => {
      const before = Date.now() - windowMs;
      for (const [key, entry] of entries)
        if (entry.settledAt !== undefined && entry.settledAt < before) entries.delete(key);
    },
    Math.min(windowMs, 10_000),
  );
  sweeper.unref();

  const waitOnline = (userId: string, siteId: string | null, ms: number): Promise<boolean> =>
    new Promise((resolve) => {
      let set = waiters.get(userId);
      if (set === undefined) {
        set = new Set();
        waiters.set(userId, set);
      }
      const done = (online: boolean): void => {
        clearTimeout(timer);
        set.delete(wake);
        if (set.size === 0) waiters.delete(userId);
        resolve(online);
      };
      const wake = (): void => {
        if (view.isOnline(userId, siteId, Date.now())) done(true);
      };
      const timer = setTimeout(() => done(view.isOnline(userId, siteId, Date.now())), ms);
      set.add(wake);
    });

  const dispatch = async (
    entry: Entry,
    request: CommandRequest,
    id: string,
    sentMs: number,
  ): Promise<void> => {
    const online =
      view.isOnline(request.userId, request.siteId, sentMs) ||
      (await waitOnline(request.userId, request.siteId, Math.min(graceMs, request.timeoutMs)));
    if (!online) {
      // Never stored, so no gateway can deliver it later: `offline` is final and true.
      finish(entry, entry.machine.onLocal({ outcome: 'offline', id }));
      return;
    }
    try {
      await producer.send({
        topic: topics.commands,
        acks: -1,
        messages: [
          {
            key: request.userId,
            value: encodeCommand({
              id,
              site_id: request.siteId,
              user_id: request.userId,
              name: request.name,
              args: request.argsText,
              sent_ms: sentMs,
              deadline_ms: entry.machine.deadlineMs,
              reply_to: requesterId,
            }),
          },
        ],
      });
    } catch (error) {
      log?.warn('command not stored', { id, error });
      // Not remembered: a resend with the same id must be able to try again (gateways deliver at most one copy).
      entries.delete(entry.key);
      finish(
        entry,
        entry.machine.onLocal({
          outcome: 'rejected',
          id,
          reason: 'unavailable',
          detail: `Kafka did not store the command: ${errorMessage(error)}`,
        }),
      );
    }
  };

  const sendRequest = (request: CommandRequest): Promise<CommandOutcome> => {
    const id = request.id ?? randomUUID();
    const key = entryKey(request.userId, id);
    const existing = entries.get(key);
    if (existing !== undefined) return existing.promise;
    if (closed)
      return Promise.resolve({
        outcome: 'rejected',
        id,
        reason: 'unavailable',
        detail: 'the command bus is closed',
      });
    const sentMs = Date.now();
    let resolve: (outcome: CommandOutcome) => void = () => undefined;
    const promise = new Promise<CommandOutcome>((r) => (resolve = r));
    const entry: Entry = {
      key,
      machine: new CommandInFlight(id, sentMs + request.timeoutMs),
      promise,
      resolve,
      timer: undefined,
      settledAt: undefined,
    };
    entries.set(key, entry);
    const onTimer = (): void => {
      const outcome = entry.machine.onDeadline(Date.now());
      if (outcome !== undefined) return finish(entry, outcome);
      // Timers and the wall clock can disagree by a millisecond: wait for the rest.
      if (entry.machine.outcome === undefined)
        entry.timer = setTimeout(onTimer, Math.max(1, entry.machine.deadlineMs - Date.now()));
    };
    entry.timer = setTimeout(onTimer, request.timeoutMs);
    void dispatch(entry, request, id, sentMs);
    return promise;
  };

  return {
    requesterId,
    sendRequest,
    send: (userId, command, options = {}) => {
      const checked = checkCommand(userId, command, options, limits);
      if (!checked.ok) {
        return Promise.resolve({
          outcome: 'rejected',
          id: typeof options.id === 'string' ? options.id : '',
          reason: checked.reason,
          detail: checked.detail,
        });
      }
      return sendRequest(checked.value);
    },
    isOnline: (userId, siteId) => view.isOnline(userId, siteId ?? null, Date.now()),
    close: async () => {
      if (closed) return;
      closed = true;
      clearInterval(sweeper);
      for (const entry of entries.values()) {
        finish(
          entry,
          entry.machine.onLocal({
            outcome: 'rejected',
            id: entry.machine.id,
            reason: 'unavailable',
            detail: 'the command bus closed before the outcome arrived',
          }),
        );
      }
      await Promise.allSettled([...tails.map((tail) => tail.stop()), producer.disconnect()]);
    },
  };
}

function entryKey(userId: string, id: string): string {
  return `${userId}\u0000${id}`;
}
