/**
 * What a command and a reply may look like: the checks every entry point shares (the bus, the
 * gateway's HTTP API, the gateway's reply paths). Pure: no I/O, no clock.
 */
import type { RejectionReasonCode } from '@dwell/protocol';

export interface CommandLimits {
  /** Largest `args` as JSON text, bytes. Default 16 KiB. */
  readonly maxArgsBytes: number;
  /** Largest reply `result` as JSON text, bytes. Default 16 KiB. */
  readonly maxReplyBytes: number;
  /** Longest timeout a command may ask for, ms. Default 60 s (gateways replay this much on start). */
  readonly maxTimeoutMs: number;
  /** Timeout when the sender names none, ms. Default 10 s. */
  readonly defaultTimeoutMs: number;
}

export const DEFAULT_COMMAND_LIMITS: CommandLimits = {
  maxArgsBytes: 16_384,
  maxReplyBytes: 16_384,
  maxTimeoutMs: 60_000,
  defaultTimeoutMs: 10_000,
};

/** user_id, site_id and command ids: 1-128 printable ASCII characters, as in connection tokens. */
const ID = /^[\x21-\x7e]{1,128}$/;
/** Command names: what the SDK dispatches on. */
const NAME = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$/;
/** Client refusal codes. */
const ERROR_CODE = /^[\x21-\x7e]{1,64}$/;
const MAX_DETAIL = 512;

export type CommandRejectionReason = Extract<
  RejectionReasonCode,
  'invalid_command' | 'command_too_large' | 'unavailable' | 'client_refused'
>;
export type ReplyRejectionReason = Extract<
  RejectionReasonCode,
  'invalid_reply' | 'reply_too_large' | 'unknown_command' | 'already_settled' | 'reply_late' | 'unavailable'
>;

/** A command that passed every check, ready to be stored. */
export interface CommandRequest {
  readonly userId: string;
  readonly siteId: string | null;
  readonly name: string;
  /** The arguments as JSON text. */
  readonly argsText: string;
  readonly timeoutMs: number;
  /** The idempotency key; undefined: the bus mints one. */
  readonly id: string | undefined;
}

export type Checked<T, R extends string> =
  | { readonly ok: true; readonly value: T }
  | { readonly ok: false; readonly reason: R; readonly detail: string };

const refuse = <R extends string>(reason: R, detail: string): { ok: false; reason: R; detail: string } => ({
  ok: false,
  reason,
  detail,
});

/** Checks what `bus.send` was given. `args` is any JSON-serialisable value (default null). */
export function checkCommand(
  userId: unknown,
  command: { readonly name: unknown; readonly args?: unknown },
  options: { readonly timeoutMs?: unknown; readonly id?: unknown; readonly siteId?: unknown },
  limits: CommandLimits = DEFAULT_COMMAND_LIMITS,
): Checked<CommandRequest, CommandRejectionReason> {
  let argsText: string | undefined;
  try {
    argsText = JSON.stringify(command.args ?? null);
  } catch (error) {
    return refuse(
      'invalid_command',
      `args cannot be serialised as JSON: ${error instanceof Error ? error.message : String(error)}`,
    );
  }
  if (argsText === undefined)
    return refuse('invalid_command', 'args is not a JSON value (a function or a symbol?)');
  return checkFields(
    {
      userId,
      siteId: options.siteId,
      name: command.name,
      argsText,
      timeoutMs: options.timeoutMs,
      id: options.id,
    },
    limits,
  );
}

/**
 * Checks a command request as the HTTP API receives it:
 * `{"user_id", "name", "args"?, "timeout_ms"?, "id"?, "site_id"?}` (JSON text, already size-bounded).
 */
export function parseCommandRequest(
  body: string,
  limits: CommandLimits = DEFAULT_COMMAND_LIMITS,
): Checked<CommandRequest, CommandRejectionReason> {
  let value: unknown;
  try {
    value = JSON.parse(body);
  } catch {
    return refuse('invalid_command', 'the body is not JSON');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    return refuse('invalid_command', 'the body must be a JSON object');
  const fields = value as Record<string, unknown>;
  const argsText = fields['args'] === undefined ? 'null' : JSON.stringify(fields['args']);
  return checkFields(
    {
      userId: fields['user_id'],
      siteId: fields['site_id'],
      name: fields['name'],
      argsText,
      timeoutMs: fields['timeout_ms'],
      id: fields['id'],
    },
    limits,
  );
}

function checkFields(
  f: { userId: unknown; siteId: unknown; name: unknown; argsText: string; timeoutMs: unknown; id: unknown },
  limits: CommandLimits,
): Checked<CommandRequest, CommandRejectionReason> {
  if (typeof f.userId !== 'string' || !ID.test(f.userId))
    return refuse('invalid_command', 'user_id must be 1-128 printable ASCII characters');
  if (f.siteId !== undefined && f.siteId !== null && (typeof f.siteId !== 'string' || !ID.test(f.siteId))) {
    return refuse('invalid_command', 'site_id must be 1-128 printable ASCII characters');
  }
  if (typeof f.name !== 'string' || !NAME.test(f.name)) {
    return refuse(
      'invalid_command',
      'name must be 1-64 characters of A-Z a-z 0-9 _ . : - starting with a letter or digit',
    );
  }
  if (f.id !== undefined && f.id !== null && (typeof f.id !== 'string' || !ID.test(f.id))) {
    return refuse('invalid_command', 'id must be 1-128 printable ASCII characters');
  }
  const timeoutMs = f.timeoutMs === undefined || f.timeoutMs === null ? limits.defaultTimeoutMs : f.timeoutMs;
  if (
    typeof timeoutMs !== 'number' ||
    !Number.isSafeInteger(timeoutMs) ||
    timeoutMs < 1 ||
    timeoutMs > limits.maxTimeoutMs
  ) {
    return refuse(
      'invalid_command',
      `timeout must be an integer number of ms in [1, ${limits.maxTimeoutMs}]`,
    );
  }
  const bytes = Buffer.byteLength(f.argsText);
  if (bytes > limits.maxArgsBytes)
    return refuse('command_too_large', `args of ${bytes} bytes exceed ${limits.maxArgsBytes}`);
  return {
    ok: true,
    value: {
      userId: f.userId,
      siteId: typeof f.siteId === 'string' ? f.siteId : null,
      name: f.name,
      argsText: f.argsText,
      timeoutMs,
      id: typeof f.id === 'string' ? f.id : undefined,
    },
  };
}

/** A client's answer to a command, checked. Exactly one of `result` (JSON text) and `error`. */
export interface ReplyRequest {
  readonly id: string;
  readonly result: string | null;
  readonly error: string | null;
  readonly detail: string | null;
  /** POST /v1/replies: the connection the command came on. */
  readonly connectionId: string | null;
}

/**
 * Checks a reply: a WebSocket control frame `{"t":"reply","id":…,"result":…}` (or
 * `"error":"code","detail":"…"` instead of `result`), or a `POST /v1/replies` body, which also
 * names its `connection_id`.
 */
export function parseReply(
  text: string,
  limits: Pick<CommandLimits, 'maxReplyBytes'> = DEFAULT_COMMAND_LIMITS,
  options: { readonly needsConnectionId?: boolean } = {},
): Checked<ReplyRequest, ReplyRejectionReason> {
  // The whole reply may carry a result of maxReplyBytes plus its envelope.
  if (Buffer.byteLength(text) > limits.maxReplyBytes + 1024) {
    return refuse(
      'reply_too_large',
      `reply of ${Buffer.byteLength(text)} bytes exceeds ${limits.maxReplyBytes + 1024}`,
    );
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return refuse('invalid_reply', 'not JSON');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    return refuse('invalid_reply', 'a reply must be a JSON object');
  const fields = value as Record<string, unknown>;
  const { id, error, detail } = fields;
  if (typeof id !== 'string' || !ID.test(id))
    return refuse('invalid_reply', 'id must be the command id (1-128 printable ASCII characters)');
  const hasResult = Object.hasOwn(fields, 'result');
  const hasError = error !== undefined && error !== null;
  if (hasResult === hasError)
    return refuse('invalid_reply', 'a reply carries exactly one of result and error');
  if (hasError && (typeof error !== 'string' || !ERROR_CODE.test(error))) {
    return refuse('invalid_reply', 'error must be a code of 1-64 printable ASCII characters');
  }
  if (detail !== undefined && detail !== null && typeof detail !== 'string')
    return refuse('invalid_reply', 'detail must be a string');
  let connectionId: string | null = null;
  if (options.needsConnectionId === true) {
    const given = fields['connection_id'];
    if (typeof given !== 'string' || !ID.test(given))
      return refuse('invalid_reply', 'connection_id (from the hello frame) is required');
    connectionId = given;
  }
  let result: string | null = null;
  if (hasResult) {
    result = JSON.stringify(fields['result']) ?? 'null';
    const bytes = Buffer.byteLength(result);
    if (bytes > limits.maxReplyBytes)
      return refuse('reply_too_large', `result of ${bytes} bytes exceeds ${limits.maxReplyBytes}`);
  }
  return {
    ok: true,
    value: {
      id,
      result,
      error: hasError ? (error as string) : null,
      detail: typeof detail === 'string' ? detail.slice(0, MAX_DETAIL) : null,
      connectionId,
    },
  };
}
