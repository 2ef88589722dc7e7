/**
 * The command contracts: TypeScript shapes of schemas/{Command,CommandReply,ClientReply,Presence}
 * and their single-object codecs. Field names match the schemas exactly.
 *
 * Log layout (docs/commands.md):
 * - `dwell.commands.v1` (key user_id): `Command`, plus `CommandReply` settle records (requester
 *   null) and forwarded `ClientReply` records. The writer schema's fingerprint tells them apart.
 * - `dwell.replies.v1` (key requester): `CommandReply` outcomes for one requester.
 * - `dwell.presence.v1` (compacted): `Presence` records and tombstones.
 */
import {
  decodeSingleObject,
  decodeSingleObjectOrThrow,
  encodeSingleObject,
  identifySchema,
} from './schemas.js';

export const COMMAND_OUTCOMES = ['delivered', 'replied', 'expired', 'offline', 'rejected'] as const;
export type CommandOutcomeKind = (typeof COMMAND_OUTCOMES)[number];

export const PRESENCE_KINDS = ['gateway', 'user'] as const;
export type PresenceKind = (typeof PRESENCE_KINDS)[number];

/** A command to one user (schemas/Command). */
export interface Command {
  readonly id: string;
  readonly site_id: string | null;
  readonly user_id: string;
  readonly name: string;
  /** JSON text. */
  readonly args: string;
  readonly sent_ms: number;
  readonly deadline_ms: number;
  readonly reply_to: string;
}

/** What became of a command (schemas/CommandReply). */
export interface CommandReply {
  readonly command_id: string;
  readonly requester: string | null;
  readonly site_id: string | null;
  readonly user_id: string;
  readonly outcome: CommandOutcomeKind;
  /** JSON text. */
  readonly payload: string | null;
  readonly reason: string | null;
  readonly detail: string | null;
  readonly gateway_id: string | null;
  readonly connection_id: string | null;
  readonly connections: number;
  readonly at_ms: number;
}

/** A client's answer forwarded between gateways (schemas/ClientReply). */
export interface ClientReply {
  readonly command_id: string;
  readonly site_id: string;
  readonly user_id: string;
  readonly connection_id: string;
  readonly result: string | null;
  readonly error: string | null;
  readonly detail: string | null;
  readonly received_by: string;
  readonly at_ms: number;
}

/** A presence record (schemas/Presence). */
export interface Presence {
  readonly kind: PresenceKind;
  readonly gateway_id: string;
  readonly epoch: string;
  readonly site_id: string | null;
  readonly user_id: string | null;
  readonly connections: number;
  readonly at_ms: number;
  readonly lease_ms: number;
}

export function encodeCommand(command: Command): Buffer {
  return encodeSingleObject('Command', command);
}

export function encodeCommandReply(reply: CommandReply): Buffer {
  return encodeSingleObject('CommandReply', reply);
}

export function encodeClientReply(reply: ClientReply): Buffer {
  return encodeSingleObject('ClientReply', reply);
}

export function encodePresence(presence: Presence): Buffer {
  return encodeSingleObject('Presence', presence);
}

/** Reads a `dwell.replies.v1` value; throws `SingleObjectDecodeError`. */
export function decodeCommandReply(bytes: Uint8Array): CommandReply {
  return decodeSingleObjectOrThrow('CommandReply', bytes);
}

/** Reads a `dwell.presence.v1` value; throws `SingleObjectDecodeError`. */
export function decodePresence(bytes: Uint8Array): Presence {
  return decodeSingleObjectOrThrow('Presence', bytes);
}

/** One record of `dwell.commands.v1`, by its writer schema. */
export type CommandLogRecord =
  | { readonly kind: 'command'; readonly value: Command }
  | { readonly kind: 'settled'; readonly value: CommandReply }
  | { readonly kind: 'client_reply'; readonly value: ClientReply }
  | { readonly kind: 'undecodable'; readonly detail: string };

/** Decodes a `dwell.commands.v1` value of any of its three record types. Never throws. */
export function decodeCommandLogRecord(bytes: Uint8Array): CommandLogRecord {
  const writer = identifySchema(bytes);
  switch (writer?.name) {
    case 'Command': {
      const outcome = decodeSingleObject('Command', bytes);
      return outcome.ok
        ? { kind: 'command', value: outcome.value }
        : { kind: 'undecodable', detail: outcome.detail };
    }
    case 'CommandReply': {
      const outcome = decodeSingleObject('CommandReply', bytes);
      return outcome.ok
        ? { kind: 'settled', value: outcome.value }
        : { kind: 'undecodable', detail: outcome.detail };
    }
    case 'ClientReply': {
      const outcome = decodeSingleObject('ClientReply', bytes);
      return outcome.ok
        ? { kind: 'client_reply', value: outcome.value }
        : { kind: 'undecodable', detail: outcome.detail };
    }
    default:
      return {
        kind: 'undecodable',
        detail: writer === undefined ? 'not a known single-object value' : `unexpected ${writer.name}`,
      };
  }
}
