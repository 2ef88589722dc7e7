/**
 * Every reason dwell refuses input, in one table: the code goes back to the client on the
 * connection and into `RejectedFrame.reason` of the dead letter on `dwell.rejected.v1` (docs/protocol.md,
 * "Rejection reasons", lists the few refusals that have none).
 *
 * - `scope`: what the rejection covers. `frame`: the whole frame, no event in it was accepted.
 *   `event`: one event of a frame; the frame's valid events still went through. `frame_or_event`:
 *   either, depending on where the problem is (the frame's envelope or one event). `connection`:
 *   refused at upgrade or the connection is closed. `log`: decided by the processor reading the log.
 *   `command`: a command a backend sent was refused (its outcome is `rejected` with this reason).
 *   `reply`: a client's reply to a command was refused.
 * - `retriable`: whether sending the same bytes again later can succeed. The SDK drops events
 *   rejected with `retriable: false` from its outbox (resending cannot help) and keeps the others.
 */
export const RejectionReason = {
  // Frame-level: the bytes could not be read at all.
  malformed_json: {
    scope: 'frame',
    retriable: false,
    description: 'The text frame or body is not valid UTF-8 JSON.',
  },
  malformed_avro: {
    scope: 'frame',
    retriable: false,
    description:
      'The binary frame is not a single-object encoded value: bad marker, cut off, or a body that does not match its writer schema.',
  },
  unknown_schema: {
    scope: 'frame',
    retriable: false,
    description:
      'The binary frame names a writer schema (by fingerprint) that is not a known version of ClientBatch.',
  },
  frame_too_large: {
    scope: 'frame',
    retriable: false,
    description: 'The frame or body is larger than maxFrameBytes.',
  },
  too_many_events: {
    scope: 'frame',
    retriable: false,
    description: 'The frame carries more than maxEventsPerFrame events. Split it.',
  },
  // Frame envelope or one event.
  not_an_object: {
    scope: 'frame_or_event',
    retriable: false,
    description:
      'A value that must be a JSON object (the frame, an event, `page`, an impression) is not one.',
  },
  missing_field: {
    scope: 'frame_or_event',
    retriable: false,
    description: 'A required field is absent. Every field of ClientEvent is required.',
  },
  wrong_type: {
    scope: 'frame_or_event',
    retriable: false,
    description:
      'A field has the wrong JSON type: e.g. a string where an integer belongs, a fraction, a number beyond 2^53, a negative time or pixel count, null.',
  },
  // One event.
  invalid_value: {
    scope: 'event',
    retriable: false,
    description:
      'A field has the right type but an impossible value: seq < 1, an empty id, width or height <= 0, visible_px > total_px, an unknown enum symbol, a duplicate impression_id or reason.',
  },
  too_long: {
    scope: 'event',
    retriable: false,
    description: 'An id (page_view_id, impression_id, ad_id, campaign_id) is longer than maxIdLength.',
  },
  too_many_impressions: {
    scope: 'event',
    retriable: false,
    description: 'An event carries more than maxImpressionsPerEvent impressions.',
  },
  // Gateway: the connection or the request.
  unauthorized_missing_token: {
    scope: 'connection',
    retriable: false,
    description: 'No connection token was presented.',
  },
  unauthorized_expired_token: {
    scope: 'connection',
    retriable: true,
    description: 'The connection token has expired: fetch a fresh one and reconnect.',
  },
  unauthorized_bad_signature: {
    scope: 'connection',
    retriable: false,
    description: 'The connection token is malformed or its signature does not verify.',
  },
  forbidden_origin: {
    scope: 'connection',
    retriable: false,
    description: "The request's Origin is not allowed for the token's site.",
  },
  rate_limited: {
    scope: 'frame',
    retriable: true,
    description: 'The connection or user sent more than its rate allows. Back off and resend.',
  },
  too_many_connections: {
    scope: 'connection',
    retriable: true,
    description: 'The user, address or gateway has too many open connections. Back off and reconnect.',
  },
  // Commands (docs/commands.md): refusing a command the backend sent.
  invalid_command: {
    scope: 'command',
    retriable: false,
    description:
      'A command was refused before it was sent: its user_id, site_id, name or id is malformed, its args are not JSON, or its timeout is out of range.',
  },
  command_too_large: {
    scope: 'command',
    retriable: false,
    description: "A command's args (or the HTTP request body) are larger than the limit.",
  },
  unavailable: {
    scope: 'command',
    retriable: true,
    description:
      'Kafka did not confirm storing the command. Send it again with the same id: at most one copy is ever delivered.',
  },
  client_refused: {
    scope: 'command',
    retriable: false,
    description:
      "The client answered the command with an error instead of a result (no handler for its name, the handler failed); the detail carries the client's code and text.",
  },
  unauthorized_service: {
    scope: 'connection',
    retriable: false,
    description: 'A command request without a valid service credential (Authorization: Bearer <service token>).',
  },
  // Commands: refusing a client's reply (on the connection, or in the POST /v1/replies response).
  invalid_reply: {
    scope: 'reply',
    retriable: false,
    description:
      'A reply is malformed: not a JSON object, no command id, neither or both of result and error, or an error code that is not 1-64 printable characters.',
  },
  reply_too_large: {
    scope: 'reply',
    retriable: false,
    description: "A reply's result (or the request body) is larger than the limit.",
  },
  unknown_command: {
    scope: 'reply',
    retriable: false,
    description:
      "A reply names a command that was not delivered to this connection of this user, or that the gateway no longer remembers. A client can only answer its own commands.",
  },
  already_settled: {
    scope: 'reply',
    retriable: false,
    description: 'Another connection of the user answered the command first (first reply wins), or it was already answered.',
  },
  reply_late: {
    scope: 'reply',
    retriable: false,
    description: "The command's deadline passed before the reply arrived; the requester was told it expired.",
  },
  // Processor: decided from the log.
  late: {
    scope: 'log',
    retriable: false,
    description:
      "The event arrived after the partition's recv_ms watermark passed its page view's last event by ALLOWED_LATENESS.",
  },
  identity_mismatch: {
    scope: 'log',
    retriable: false,
    description:
      'An event names a page view that already belongs to another site or user; it is not counted toward either.',
  },
  invalid_event: {
    scope: 'log',
    retriable: false,
    description:
      'A log record decoded but cannot be computed on (e.g. a number beyond the safe-integer range); written by an older or foreign producer.',
  },
  undecodable_record: {
    scope: 'log',
    retriable: false,
    description: 'A record on the events topic is not a PageEvent of any known schema version.',
  },
  duplicate_conflict: {
    scope: 'log',
    retriable: false,
    description:
      'An event repeats a (page_view_id, seq) already seen with different content; the page view is flagged conflicting_duplicate.',
  },
} as const satisfies Record<string, RejectionReasonInfo>;

export interface RejectionReasonInfo {
  readonly scope: 'frame' | 'event' | 'frame_or_event' | 'connection' | 'log' | 'command' | 'reply';
  readonly retriable: boolean;
  readonly description: string;
}

export type RejectionReasonCode = keyof typeof RejectionReason;

/** Every code, in table order. */
export const REJECTION_REASON_CODES = Object.keys(RejectionReason) as readonly RejectionReasonCode[];

/** Narrows a string, e.g. `RejectedFrame.reason` read back from the log, to a known code. */
export function isRejectionReason(code: string): code is RejectionReasonCode {
  return Object.hasOwn(RejectionReason, code);
}

/** Reasons the event validator can give for one event. */
export type EventRejectionReason = Extract<
  RejectionReasonCode,
  'not_an_object' | 'missing_field' | 'wrong_type' | 'invalid_value' | 'too_long' | 'too_many_impressions'
>;

/** Reasons `parseJsonFrame` / `decodeBinaryFrame` can give for a whole frame. */
export type FrameRejectionReason = Extract<
  RejectionReasonCode,
  | 'malformed_json'
  | 'malformed_avro'
  | 'unknown_schema'
  | 'frame_too_large'
  | 'too_many_events'
  | 'not_an_object'
  | 'missing_field'
  | 'wrong_type'
>;
