/**
 * The life of one command as its requester sees it: a small state machine that turns the records
 * arriving on dwell.replies.v1, the deadline and the presence check into exactly one outcome.
 * Pure: the clock comes in as arguments.
 */
import type { CommandReply } from '@dwell/protocol';
import type { CommandRejectionReason } from './limits.js';

/** The one outcome of `bus.send`. */
export type CommandOutcome =
  | {
      readonly outcome: 'replied';
      readonly id: string;
      /** The client's result (any JSON value). */
      readonly payload: unknown;
      /** The gateway and connection whose reply won. */
      readonly gatewayId: string;
      readonly connectionId: string;
    }
  | {
      readonly outcome: 'expired';
      readonly id: string;
      /** Whether any connection received it (then the client was silent; else it never reached one). */
      readonly delivered: boolean;
    }
  | { readonly outcome: 'offline'; readonly id: string }
  | {
      readonly outcome: 'rejected';
      readonly id: string;
      readonly reason: CommandRejectionReason;
      readonly detail: string;
      /** Set when a client refused it: which one. */
      readonly gatewayId?: string;
      readonly connectionId?: string;
    };

export type CommandOutcomeName = CommandOutcome['outcome'];

/** Where a command is: `sent` (stored, no gateway has reported), `delivered`, or settled with its outcome. */
export type CommandPhase = 'sent' | 'delivered' | 'settled';

/**
 * One command in flight. Every input is accepted in any order; the first final one wins and later
 * ones change nothing (a slower second reply, a reply after the deadline, a duplicate record).
 */
export class CommandInFlight {
  readonly id: string;
  readonly deadlineMs: number;
  private phase: CommandPhase = 'sent';
  private result: CommandOutcome | undefined;
  /** Connections that received it, summed over gateways' `delivered` records. */
  deliveries = 0;

  constructor(id: string, deadlineMs: number) {
    this.id = id;
    this.deadlineMs = deadlineMs;
  }

  get state(): CommandPhase {
    return this.phase;
  }

  /** The final outcome, once there is one. */
  get outcome(): CommandOutcome | undefined {
    return this.result;
  }

  /** Applies a record from dwell.replies.v1; returns the outcome if this record settled the command. */
  onReply(record: CommandReply, nowMs: number): CommandOutcome | undefined {
    if (this.result !== undefined) return undefined;
    switch (record.outcome) {
      case 'delivered':
        this.deliveries += record.connections;
        this.phase = 'delivered';
        return undefined;
      case 'replied':
        // A reply the gateway took after the deadline lost to it (gateways refuse those anyway);
        // one taken in time wins even if this process reads it late.
        if (record.at_ms > this.deadlineMs) return this.onDeadline(nowMs);
        return this.settle({
          outcome: 'replied',
          id: this.id,
          payload: parsePayload(record.payload),
          gatewayId: record.gateway_id ?? '',
          connectionId: record.connection_id ?? '',
        });
      case 'rejected':
        return this.settle({
          outcome: 'rejected',
          id: this.id,
          reason: 'client_refused',
          detail: record.detail ?? '',
          ...(record.gateway_id === null ? {} : { gatewayId: record.gateway_id }),
          ...(record.connection_id === null ? {} : { connectionId: record.connection_id }),
        });
      case 'expired':
        return this.settle({
          outcome: 'expired',
          id: this.id,
          delivered: this.phase === 'delivered' || record.connections > 0,
        });
      case 'offline':
        return this.settle({ outcome: 'offline', id: this.id });
    }
  }

  /** The deadline passed (the caller's timer): `expired`, unless already settled. */
  onDeadline(nowMs: number): CommandOutcome | undefined {
    if (this.result !== undefined || nowMs < this.deadlineMs) return undefined;
    return this.settle({ outcome: 'expired', id: this.id, delivered: this.phase === 'delivered' });
  }

  /** Decided without Kafka: the user is offline, or the command could not be stored. */
  onLocal(outcome: CommandOutcome): CommandOutcome | undefined {
    if (this.result !== undefined) return undefined;
    return this.settle(outcome);
  }

  private settle(outcome: CommandOutcome): CommandOutcome {
    this.phase = 'settled';
    this.result = outcome;
    return outcome;
  }
}

function parsePayload(text: string | null): unknown {
  if (text === null) return null;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    // Gateways only store results that parsed; a foreign writer's text is passed on as it is.
    return text;
  }
}
