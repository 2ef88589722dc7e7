/**
 * A gateway's memory of recent commands: what it delivered to which of its connections, which
 * are settled and by whom, and who asked. Every gateway reads every record of dwell.commands.v1 in
 * partition order (key user_id), so all boards see the same commands, duplicates and settle
 * records in the same order; each knows only its own connections. Pure: the router does the I/O
 * with the effects returned here, and the clock comes in as arguments (docs/commands.md).
 */
import type { Command, CommandReply } from '@dwell/protocol';
import type { ReplyRejectionReason } from '@dwell/commands';

/** A connection of this gateway as the board sees it. */
export interface BoardConnection {
  readonly id: string;
  readonly siteId: string;
  readonly userId: string;
}

export type EntryState = 'pending' | 'settling' | 'settled' | 'expired';

export interface BoardEntry {
  readonly key: string;
  /** The first copy in the log; later copies with the same (user, id) are duplicates. */
  readonly command: Command;
  /** The effective deadline: the command's, capped at arrival + maxTimeoutMs. */
  readonly deadlineMs: number;
  /** When this board read it. */
  readonly arrivedMs: number;
  /** Every requester that sent this (user, id). */
  readonly requesters: Set<string>;
  /** Requesters this gateway has sent a final outcome to. */
  readonly answered: Set<string>;
  /** Connections of this gateway the command was handed to (closed ones included). */
  readonly deliveredTo: Set<string>;
  state: EntryState;
  /** The settle record that counts: the first in the log, or this gateway's own before any. */
  settled: CommandReply | undefined;
  /** Whether this gateway's settle record counts: then it answers duplicates. */
  settledHere: boolean;
  /** Whether this gateway's own settle record came back from the log. */
  ownSettleSeen: boolean;
}

export type BoardEffect =
  /** Hand the command to these connections and tell the requesters it was delivered. */
  | { readonly kind: 'deliver'; readonly entry: BoardEntry; readonly connections: readonly BoardConnection[] }
  /** Send a final outcome to one requester. */
  | { readonly kind: 'answer'; readonly requester: string; readonly reply: CommandReply }
  /** Tell these connections the command needs no answer any more. */
  | {
      readonly kind: 'cancel';
      readonly entry: BoardEntry;
      readonly connectionIds: readonly string[];
      readonly reason: 'settled' | 'expired';
    };

export interface BoardOptions {
  readonly gatewayId: string;
  /** Longest timeout honoured; a deadline further out is cut to arrival + this. */
  readonly maxTimeoutMs: number;
  /** How long a command is remembered after its deadline at the latest, for duplicates, ms. Default 5 minutes. */
  readonly retainMs?: number;
  /** Most commands remembered; the oldest are forgotten first. Default 200,000. */
  readonly maxEntries?: number;
}

export type ReplyCheck =
  | { readonly ok: true; readonly entry: BoardEntry }
  | { readonly ok: false; readonly reason: ReplyRejectionReason; readonly detail: string };

export function boardKey(userId: string, commandId: string): string {
  return `${userId}\u0000${commandId}`;
}

export class CommandBoard {
  /** In arrival order, so the oldest are found first. */
  private readonly entries = new Map<string, BoardEntry>();
  private readonly byUser = new Map<string, Set<string>>();
  /** Entries waiting for an answer: the only ones a deadline can expire. */
  private readonly pending = new Set<BoardEntry>();
  private readonly options: Required<BoardOptions>;

  constructor(options: BoardOptions) {
    this.options = { retainMs: 300_000, maxEntries: 200_000, ...options };
  }

  get size(): number {
    return this.entries.size;
  }

  get(userId: string, commandId: string): BoardEntry | undefined {
    return this.entries.get(boardKey(userId, commandId));
  }

  /**
   * A command record from the log. `connectionsOf` lists this gateway's open connections of the
   * user (already filtered by the command's site, if it names one).
   */
  onCommand(
    command: Command,
    nowMs: number,
    connectionsOf: (userId: string, siteId: string | null) => readonly BoardConnection[],
  ): BoardEffect[] {
    const key = boardKey(command.user_id, command.id);
    const entry = this.entries.get(key);
    if (entry !== undefined) return this.onDuplicate(entry, command.reply_to);
    const deadlineMs = Math.min(command.deadline_ms, nowMs + this.options.maxTimeoutMs);
    const created: BoardEntry = {
      key,
      command,
      deadlineMs,
      arrivedMs: nowMs,
      requesters: new Set([command.reply_to]),
      answered: new Set(),
      deliveredTo: new Set(),
      // Already past its deadline (read on a replay after a restart): kept only to refuse duplicates.
      state: nowMs > deadlineMs ? 'expired' : 'pending',
      settled: undefined,
      settledHere: false,
      ownSettleSeen: false,
    };
    this.insert(created);
    if (created.state !== 'pending') return [];
    this.pending.add(created);
    return this.deliverTo(created, connectionsOf(command.user_id, command.site_id));
  }

  /** A settle record from the log (this gateway's own included). */
  onSettled(record: CommandReply): BoardEffect[] {
    const entry = this.entries.get(boardKey(record.user_id, record.command_id));
    if (entry === undefined) return [];
    const mine = record.gateway_id === this.options.gatewayId;
    if (mine) {
      entry.ownSettleSeen = true;
      return [];
    }
    if (entry.state === 'settled') {
      // Another gateway's record ahead of ours in the log: theirs counts, they answer duplicates.
      if (entry.settledHere && !entry.ownSettleSeen) {
        entry.settledHere = false;
        entry.settled = record;
      }
      return [];
    }
    // Settled elsewhere (another gateway's connection answered). A reply of ours still in flight
    // completes, but the log says who won.
    const wasSettling = entry.state === 'settling';
    this.pending.delete(entry);
    entry.state = 'settled';
    entry.settled = record;
    entry.settledHere = false;
    if (wasSettling) return [];
    return this.cancel(entry, record.connection_id, 'settled');
  }

  /** A connection of the user opened here: hand it every command still waiting for the user. */
  onConnectionOpened(connection: BoardConnection, nowMs: number): BoardEffect[] {
    const keys = this.byUser.get(connection.userId);
    if (keys === undefined) return [];
    const effects: BoardEffect[] = [];
    for (const key of keys) {
      const entry = this.entries.get(key);
      if (entry === undefined || entry.state !== 'pending' || nowMs > entry.deadlineMs) continue;
      if (entry.command.site_id !== null && entry.command.site_id !== connection.siteId) continue;
      effects.push(...this.deliverTo(entry, [connection]));
    }
    return effects;
  }

  /**
   * Whether `connection` may answer command `commandId` now; if so the entry is `settling` until
   * `settle` or `abandon`. A client can answer only what was delivered to it: the key holds the
   * user from the connection's verified token, and the entry must name the connection.
   */
  beginReply(userId: string, connectionId: string, commandId: string, nowMs: number): ReplyCheck {
    const entry = this.entries.get(boardKey(userId, commandId));
    if (entry === undefined || !entry.deliveredTo.has(connectionId)) {
      return {
        ok: false,
        reason: 'unknown_command',
        detail: `no command ${commandId} was delivered to this connection`,
      };
    }
    if (entry.state === 'settled' || entry.state === 'settling') {
      return { ok: false, reason: 'already_settled', detail: `command ${commandId} was already answered` };
    }
    if (entry.state === 'expired' || nowMs > entry.deadlineMs) {
      return { ok: false, reason: 'reply_late', detail: `command ${commandId} passed its deadline` };
    }
    entry.state = 'settling';
    this.pending.delete(entry);
    return { ok: true, entry };
  }

  /** The requesters a settle must answer now (all that asked so far). */
  requestersToAnswer(entry: BoardEntry): string[] {
    return [...entry.requesters].filter((requester) => !entry.answered.has(requester));
  }

  /**
   * Kafka stored the reply for `answered` requesters and the settle record. Returns answers owed to
   * requesters whose duplicates arrived meanwhile, and cancels for the user's other connections.
   */
  settle(entry: BoardEntry, record: CommandReply, answered: readonly string[]): BoardEffect[] {
    for (const requester of answered) entry.answered.add(requester);
    if (entry.state === 'settled') return []; // another gateway's record got into the log first
    entry.state = 'settled';
    entry.settled = record;
    entry.settledHere = true;
    const late = this.requestersToAnswer(entry).map((requester): BoardEffect => {
      entry.answered.add(requester);
      return { kind: 'answer', requester, reply: { ...record, requester } };
    });
    return [...late, ...this.cancel(entry, record.connection_id, 'settled')];
  }

  /** Kafka did not store the reply: the command waits for an answer again. */
  abandon(entry: BoardEntry): void {
    if (entry.state !== 'settling') return;
    entry.state = 'pending';
    this.pending.add(entry);
  }

  /**
   * Expires what passed its deadline (cancelling it on the connections that have it) and forgets
   * what is past its retention. Costs the number of waiting and forgotten entries, not the board.
   */
  sweep(nowMs: number): BoardEffect[] {
    const effects: BoardEffect[] = [];
    for (const entry of this.pending) {
      if (nowMs <= entry.deadlineMs) continue;
      this.pending.delete(entry);
      entry.state = 'expired';
      effects.push(...this.cancel(entry, null, 'expired'));
    }
    // Every deadline is at most maxTimeoutMs after arrival: in arrival order, the first entry
    // still inside arrival + maxTimeoutMs + retainMs ends the walk.
    const horizon = nowMs - this.options.maxTimeoutMs - this.options.retainMs;
    for (const entry of this.entries.values()) {
      if (entry.arrivedMs >= horizon) break;
      this.remove(entry);
    }
    return effects;
  }

  private onDuplicate(entry: BoardEntry, requester: string): BoardEffect[] {
    // Never delivered again. The requester gets the first copy's outcome: now if this gateway
    // settled it, or when it settles; an expired command that reached a connection here is
    // answered `expired` at once rather than at the duplicate's own deadline.
    entry.requesters.add(requester);
    if (entry.answered.has(requester)) return [];
    if (entry.state === 'settled' && entry.settledHere && entry.settled !== undefined) {
      entry.answered.add(requester);
      return [{ kind: 'answer', requester, reply: { ...entry.settled, requester } }];
    }
    if (entry.state === 'expired' && entry.deliveredTo.size > 0) {
      entry.answered.add(requester);
      return [
        {
          kind: 'answer',
          requester,
          reply: {
            command_id: entry.command.id,
            requester,
            site_id: entry.command.site_id,
            user_id: entry.command.user_id,
            outcome: 'expired',
            payload: null,
            reason: null,
            detail: 'a copy with this id was delivered and not answered before its deadline',
            gateway_id: this.options.gatewayId,
            connection_id: null,
            connections: entry.deliveredTo.size,
            at_ms: entry.deadlineMs,
          },
        },
      ];
    }
    return [];
  }

  private deliverTo(entry: BoardEntry, connections: readonly BoardConnection[]): BoardEffect[] {
    const fresh = connections.filter((c) => !entry.deliveredTo.has(c.id));
    if (fresh.length === 0) return [];
    for (const c of fresh) entry.deliveredTo.add(c.id);
    return [{ kind: 'deliver', entry, connections: fresh }];
  }

  private cancel(entry: BoardEntry, except: string | null, reason: 'settled' | 'expired'): BoardEffect[] {
    const connectionIds = [...entry.deliveredTo].filter((id) => id !== except);
    return connectionIds.length === 0 ? [] : [{ kind: 'cancel', entry, connectionIds, reason }];
  }

  private insert(entry: BoardEntry): void {
    this.entries.set(entry.key, entry);
    let keys = this.byUser.get(entry.command.user_id);
    if (keys === undefined) {
      keys = new Set();
      this.byUser.set(entry.command.user_id, keys);
    }
    keys.add(entry.key);
    // Bounded memory: past the limit the oldest commands are forgotten (docs/commands.md, limits).
    while (this.entries.size > this.options.maxEntries) {
      const oldest = this.entries.values().next().value;
      if (oldest === undefined) break;
      this.remove(oldest);
    }
  }

  private remove(entry: BoardEntry): void {
    this.entries.delete(entry.key);
    this.pending.delete(entry);
    const keys = this.byUser.get(entry.command.user_id);
    keys?.delete(entry.key);
    if (keys?.size === 0) this.byUser.delete(entry.command.user_id);
  }
}
