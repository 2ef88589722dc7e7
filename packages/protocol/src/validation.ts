/**
 * Validation of what clients send, with typed rejection reasons. Per-event outcomes are values:
 * a frame with one bad event still delivers its good ones.
 *
 * Unknown fields are ignored, not rejected: an older gateway must keep accepting events from a
 * newer SDK that adds a field (the same rule Avro applies to writer fields a reader lacks). They
 * are also never copied: the validator builds each event from the known fields only, so a
 * `user_id` or `site_id` in an event body can never reach the log (those come from the token).
 */
import { decodeSingleObject } from './schemas.js';
import type { EventRejectionReason, FrameRejectionReason } from './rejection.js';
import {
  EVENT_KINDS,
  MEDIA_TYPES,
  NOT_VIEWABLE_REASONS,
  type ClientEvent,
  type EventKind,
  type ImpressionState,
  type Media,
  type NotViewableReason,
  type PageState,
} from './types.js';

/** Bounds on one frame. Build with `frameLimits()` to get the defaults and a checked config. */
export interface FrameLimits {
  /** Most events in one frame; a larger frame is refused whole (`too_many_events`). Default 100. */
  readonly maxEventsPerFrame: number;
  /** Most impressions in one event (`too_many_impressions`). Default 64. */
  readonly maxImpressionsPerEvent: number;
  /** Longest id, in UTF-16 code units (`too_long`). Default 128. */
  readonly maxIdLength: number;
  /** Largest frame in bytes, UTF-8 for text frames (`frame_too_large`). Default 65536 (64 KiB). */
  readonly maxFrameBytes: number;
}

export const DEFAULT_FRAME_LIMITS: FrameLimits = Object.freeze({
  maxEventsPerFrame: 100,
  maxImpressionsPerEvent: 64,
  maxIdLength: 128,
  maxFrameBytes: 64 * 1024,
});

/** A limits config that does not hold together; the message names the key and the value. */
export class FrameLimitsError extends Error {
  override readonly name = 'FrameLimitsError';
}

/** The defaults with `overrides` applied; throws `FrameLimitsError` on a non-positive or non-integer value. */
export function frameLimits(overrides: Partial<FrameLimits> = {}): FrameLimits {
  const limits = { ...DEFAULT_FRAME_LIMITS, ...overrides };
  for (const [key, value] of Object.entries(limits)) {
    if (!(key in DEFAULT_FRAME_LIMITS)) throw new FrameLimitsError(`unknown frame limit ${key}`);
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1) {
      throw new FrameLimitsError(
        `frame limit ${key} must be a positive integer, got ${JSON.stringify(value)}`,
      );
    }
  }
  return Object.freeze(limits);
}

/** One event of a frame that was refused; the frame's other events are unaffected. */
export interface EventRejection {
  /** Position of the event in the frame's `events` array. */
  readonly index: number;
  readonly reason: EventRejectionReason;
  /** Which field and why, e.g. `impressions[2].visible_px: 400 > total_px 300`. */
  readonly detail: string;
  /**
   * The refused event as UTF-8 JSON, for `RejectedFrame.raw`. Re-serialized, since a frame's bytes
   * cannot be cut per event; the whole frame if the event cannot be serialized (absurd nesting).
   */
  readonly raw: Uint8Array;
}

export type FrameOutcome =
  | {
      readonly ok: true;
      /** The valid events, in frame order, carrying only the fields of `ClientEvent`. */
      readonly events: ClientEvent[];
      readonly rejected: EventRejection[];
    }
  | { readonly ok: false; readonly reason: FrameRejectionReason; readonly detail: string };

export type EventValidation =
  | { readonly ok: true; readonly event: ClientEvent }
  | { readonly ok: false; readonly reason: EventRejectionReason; readonly detail: string };

/**
 * Parses a JSON text frame (or HTTP/beacon body) from a browser. The exact shape:
 *
 * ```
 * {"events": [
 *   {"page_view_id": "0190f5e2-7c3a-7d4e-9f00-5a1b2c3d4e5f",  string, 1..128 chars (maxIdLength)
 *    "seq": 1,                        integer >= 1, +1 per event of the page view
 *    "kind": "render",                "start" | "render" | "change" | "tick" | "end"
 *    "t_mono_ms": 1234,               integer >= 0, the page's monotonic clock (round performance.now())
 *    "t_wall_ms": 1732860000000,      integer >= 0, client wall clock, Unix ms (diagnostic)
 *    "page": {"visible": true, "focused": true, "foreground": true},       booleans
 *    "impressions": [                 0..64 (maxImpressionsPerEvent), distinct impression_id
 *      {"impression_id": "imp-1", "ad_id": "ad-1", "campaign_id": "c-1",   strings, 1..128 chars
 *       "width": 300, "height": 250,  integers 1..2^31-1 (declared creative size, CSS px)
 *       "media": "display",           "display" | "video"
 *       "visible_px": 60000, "total_px": 75000,   integers >= 0, visible_px <= total_px
 *       "playing": false,             boolean (false for display)
 *       "reasons": ["clipped"]}]}     distinct symbols of NOT_VIEWABLE_REASONS, possibly []
 * ]}
 * ```
 *
 * Every field is required; integers must be JSON integers up to 2^53 - 2 (no fractions, no
 * strings). Other top-level keys and other fields are ignored and dropped. At most
 * `maxEventsPerFrame` events and `maxFrameBytes` UTF-8 bytes per frame, else the whole frame is
 * refused; an invalid event is refused alone (see `RejectionReason`). Takes the frame as text or
 * as UTF-8 bytes (size checked before decoding). Never throws.
 */
export function parseJsonFrame(
  frame: string | Uint8Array,
  limits: FrameLimits = DEFAULT_FRAME_LIMITS,
): FrameOutcome {
  let text: string;
  if (typeof frame === 'string') {
    // UTF-8 takes at least one byte per UTF-16 unit and at most three: count only when unsure.
    if (frame.length > limits.maxFrameBytes) return frameTooLarge(`at least ${frame.length}`, limits);
    if (frame.length * 3 > limits.maxFrameBytes) {
      const bytes = Buffer.byteLength(frame, 'utf8');
      if (bytes > limits.maxFrameBytes) return frameTooLarge(String(bytes), limits);
    }
    text = frame;
  } else {
    if (frame.byteLength > limits.maxFrameBytes) return frameTooLarge(String(frame.byteLength), limits);
    try {
      text = UTF8.decode(frame);
    } catch {
      return { ok: false, reason: 'malformed_json', detail: 'frame is not valid UTF-8' };
    }
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    return {
      ok: false,
      reason: 'malformed_json',
      detail: error instanceof Error ? error.message : String(error),
    };
  }
  if (!isObject(parsed)) {
    return {
      ok: false,
      reason: 'not_an_object',
      detail: `frame is ${describe(parsed)}, expected {"events":[...]}`,
    };
  }
  const events = parsed['events'];
  if (events === undefined) return { ok: false, reason: 'missing_field', detail: 'frame has no "events"' };
  if (!Array.isArray(events)) {
    return { ok: false, reason: 'wrong_type', detail: `"events" is ${describe(events)}, expected an array` };
  }
  return validateEvents(events, limits, frame);
}

/**
 * Decodes a binary frame from a native client: the single-object encoding of a `ClientBatch`
 * (any version in schemas/), then validates each event exactly as `parseJsonFrame` does.
 * Never throws, whatever the bytes; never retains `frame`.
 */
export function decodeBinaryFrame(
  frame: Uint8Array,
  limits: FrameLimits = DEFAULT_FRAME_LIMITS,
): FrameOutcome {
  if (frame.byteLength > limits.maxFrameBytes) return frameTooLarge(String(frame.byteLength), limits);
  const decoded = decodeSingleObject('ClientBatch', frame);
  if (!decoded.ok) {
    const unknown = decoded.code === 'unknown_fingerprint' || decoded.code === 'wrong_record';
    const resolution = decoded.code === 'unresolvable';
    return {
      ok: false,
      reason: unknown || resolution ? 'unknown_schema' : 'malformed_avro',
      detail: `${decoded.code}: ${decoded.detail}`,
    };
  }
  return validateEvents(decoded.value.events, limits, frame);
}

/** Validates one event (already parsed) and returns a copy with only the known fields. */
export function validateClientEvent(
  value: unknown,
  limits: FrameLimits = DEFAULT_FRAME_LIMITS,
): EventValidation {
  const result = readEvent(value, limits);
  return result instanceof Invalid
    ? { ok: false, reason: result.reason, detail: result.detail }
    : { ok: true, event: result };
}

const UTF8 = new TextDecoder('utf-8', { fatal: true });
const INT_MAX = 2147483647;
const MAX_LONG = 9007199254740990;

function frameTooLarge(size: string, limits: FrameLimits): FrameOutcome {
  return { ok: false, reason: 'frame_too_large', detail: `${size} bytes, limit ${limits.maxFrameBytes}` };
}

function validateEvents(
  events: readonly unknown[],
  limits: FrameLimits,
  frame: string | Uint8Array,
): FrameOutcome {
  if (events.length > limits.maxEventsPerFrame) {
    return {
      ok: false,
      reason: 'too_many_events',
      detail: `${events.length} events, limit ${limits.maxEventsPerFrame}`,
    };
  }
  const accepted: ClientEvent[] = [];
  const rejected: EventRejection[] = [];
  for (let index = 0; index < events.length; index++) {
    const value = events[index];
    const result = readEvent(value, limits);
    if (result instanceof Invalid) {
      rejected.push({ index, reason: result.reason, detail: result.detail, raw: rawJson(value, frame) });
    } else {
      accepted.push(result);
    }
  }
  return { ok: true, events: accepted, rejected };
}

function rawJson(value: unknown, frame: string | Uint8Array): Uint8Array {
  try {
    return Buffer.from(JSON.stringify(value) ?? 'null', 'utf8');
  } catch {
    // JSON.stringify recurses: an event nested thousands of levels deep overflows the stack.
    // Keep the whole frame instead, so the dead letter still holds the refused bytes.
    return typeof frame === 'string' ? Buffer.from(frame, 'utf8') : Uint8Array.from(frame);
  }
}

/** A validation failure. A class so the hot path can tell it from a value with one `instanceof`. */
class Invalid {
  readonly reason: EventRejectionReason;
  readonly detail: string;

  constructor(reason: EventRejectionReason, detail: string) {
    this.reason = reason;
    this.detail = detail;
  }
}

type JsonObject = Record<string, unknown>;

function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

const EVENT_KIND_SET: ReadonlySet<string> = new Set(EVENT_KINDS);
const MEDIA_SET: ReadonlySet<string> = new Set(MEDIA_TYPES);
/** Bit per reason, to find a repeated reason without allocating. */
const REASON_BITS: ReadonlyMap<string, number> = new Map(NOT_VIEWABLE_REASONS.map((r, i) => [r, 1 << i]));

function readEvent(v: unknown, limits: FrameLimits): ClientEvent | Invalid {
  if (!isObject(v)) return new Invalid('not_an_object', `event is ${describe(v)}`);
  const page_view_id = readId(v, 'page_view_id', limits.maxIdLength, -1);
  if (page_view_id instanceof Invalid) return page_view_id;
  const seq = v['seq'];
  if (!isInteger(seq)) return badType(seq, 'seq', 'an integer');
  if (seq < 1) return new Invalid('invalid_value', `seq: ${seq}, must be >= 1`);
  const kind = readSymbol(v, 'kind', EVENT_KIND_SET, -1) as EventKind | Invalid;
  if (kind instanceof Invalid) return kind;
  const t_mono_ms = readCount(v, 't_mono_ms', -1);
  if (t_mono_ms instanceof Invalid) return t_mono_ms;
  const t_wall_ms = readCount(v, 't_wall_ms', -1);
  if (t_wall_ms instanceof Invalid) return t_wall_ms;
  const page = readPage(v['page']);
  if (page instanceof Invalid) return page;
  const impressions = readImpressions(v['impressions'], limits);
  if (impressions instanceof Invalid) return impressions;
  // Field order as in the schema, so every event shares one object shape.
  return { page_view_id, seq, kind, t_mono_ms, t_wall_ms, page, impressions };
}

function readPage(v: unknown): PageState | Invalid {
  if (v === undefined) return missing('page');
  if (!isObject(v)) return new Invalid('not_an_object', `page is ${describe(v)}`);
  const visible = v['visible'];
  if (typeof visible !== 'boolean') return badType(visible, 'page.visible', 'a boolean');
  const focused = v['focused'];
  if (typeof focused !== 'boolean') return badType(focused, 'page.focused', 'a boolean');
  const foreground = v['foreground'];
  if (typeof foreground !== 'boolean') return badType(foreground, 'page.foreground', 'a boolean');
  return { visible, focused, foreground };
}

function readImpressions(v: unknown, limits: FrameLimits): ImpressionState[] | Invalid {
  if (v === undefined) return missing('impressions');
  if (!Array.isArray(v)) return badType(v, 'impressions', 'an array');
  if (v.length > limits.maxImpressionsPerEvent) {
    return new Invalid(
      'too_many_impressions',
      `${v.length} impressions, limit ${limits.maxImpressionsPerEvent}`,
    );
  }
  const out: ImpressionState[] = [];
  for (let i = 0; i < v.length; i++) {
    const impression = readImpression(v[i], i, limits.maxIdLength);
    if (impression instanceof Invalid) return impression;
    out.push(impression);
  }
  if (out.length > 1) {
    const seen = new Set<string>();
    for (let i = 0; i < out.length; i++) {
      const id = (out[i] as ImpressionState).impression_id;
      if (seen.has(id))
        return new Invalid('invalid_value', `impressions[${i}].impression_id: duplicate ${quote(id)}`);
      seen.add(id);
    }
  }
  return out;
}

function readImpression(v: unknown, i: number, maxIdLength: number): ImpressionState | Invalid {
  if (!isObject(v)) return new Invalid('not_an_object', `impressions[${i}] is ${describe(v)}`);
  const impression_id = readId(v, 'impression_id', maxIdLength, i);
  if (impression_id instanceof Invalid) return impression_id;
  const ad_id = readId(v, 'ad_id', maxIdLength, i);
  if (ad_id instanceof Invalid) return ad_id;
  const campaign_id = readId(v, 'campaign_id', maxIdLength, i);
  if (campaign_id instanceof Invalid) return campaign_id;
  const width = readDimension(v, 'width', i);
  if (width instanceof Invalid) return width;
  const height = readDimension(v, 'height', i);
  if (height instanceof Invalid) return height;
  const media = readSymbol(v, 'media', MEDIA_SET, i) as Media | Invalid;
  if (media instanceof Invalid) return media;
  const visible_px = readCount(v, 'visible_px', i);
  if (visible_px instanceof Invalid) return visible_px;
  const total_px = readCount(v, 'total_px', i);
  if (total_px instanceof Invalid) return total_px;
  if (visible_px > total_px) {
    return new Invalid('invalid_value', `${path(i, 'visible_px')}: ${visible_px} > total_px ${total_px}`);
  }
  const playing = v['playing'];
  if (typeof playing !== 'boolean') return badType(playing, path(i, 'playing'), 'a boolean');
  const reasons = readReasons(v['reasons'], i);
  if (reasons instanceof Invalid) return reasons;
  return { impression_id, ad_id, campaign_id, width, height, media, visible_px, total_px, playing, reasons };
}

function readReasons(v: unknown, i: number): NotViewableReason[] | Invalid {
  if (v === undefined) return missing(path(i, 'reasons'));
  if (!Array.isArray(v)) return badType(v, path(i, 'reasons'), 'an array');
  // A snapshot's reasons are a set: a repeat is a client bug. This also bounds the length.
  let seen = 0;
  const out: NotViewableReason[] = [];
  for (let r = 0; r < v.length; r++) {
    const reason: unknown = v[r];
    if (typeof reason !== 'string') return badType(reason, reasonPath(i, r), 'a string');
    const bit = REASON_BITS.get(reason);
    if (bit === undefined)
      return new Invalid('invalid_value', `${reasonPath(i, r)}: unknown reason ${quote(reason)}`);
    if ((seen & bit) !== 0) {
      return new Invalid('invalid_value', `${reasonPath(i, r)}: repeated reason ${quote(reason)}`);
    }
    seen |= bit;
    out.push(reason as NotViewableReason);
  }
  return out;
}

function reasonPath(i: number, r: number): string {
  return `${path(i, 'reasons')}[${r}]`;
}

/** `i` is the impression index, or -1 for a field of the event itself. */
function path(i: number, key: string): string {
  return i < 0 ? key : `impressions[${i}].${key}`;
}

function readId(o: JsonObject, key: string, maxLength: number, i: number): string | Invalid {
  const v = o[key];
  if (typeof v !== 'string')
    return v === undefined ? missing(path(i, key)) : badType(v, path(i, key), 'a string');
  if (v.length === 0) return new Invalid('invalid_value', `${path(i, key)}: empty`);
  if (v.length > maxLength)
    return new Invalid('too_long', `${path(i, key)}: ${v.length} characters, limit ${maxLength}`);
  // A lone surrogate (possible through a JSON "\ud800" escape) would turn into U+FFFD in Avro's
  // UTF-8, so the logged id would differ from the one the client keeps.
  if (!(v as unknown as WellFormedString).isWellFormed()) {
    return new Invalid('invalid_value', `${path(i, key)}: not well-formed Unicode (lone surrogate)`);
  }
  return v;
}

/** `String.prototype.isWellFormed` (ES2024, Node 20) is missing from the ES2023 lib typings. */
interface WellFormedString {
  isWellFormed(): boolean;
}

function readSymbol(o: JsonObject, key: string, symbols: ReadonlySet<string>, i: number): string | Invalid {
  const v = o[key];
  if (typeof v !== 'string')
    return v === undefined ? missing(path(i, key)) : badType(v, path(i, key), 'a string');
  if (!symbols.has(v)) {
    return new Invalid(
      'invalid_value',
      `${path(i, key)}: ${quote(v)} is not one of ${[...symbols].join(', ')}`,
    );
  }
  return v;
}

/** A non-negative integer: a time in ms or a pixel count. Negative is a wrong type, not a value. */
function readCount(o: JsonObject, key: string, i: number): number | Invalid {
  const v = o[key];
  // `+ 0` turns -0 into 0.
  if (isInteger(v) && v >= 0) return v + 0;
  return badType(v, path(i, key), 'a non-negative integer');
}

/** A declared creative dimension: an Avro int, at least 1. */
function readDimension(o: JsonObject, key: string, i: number): number | Invalid {
  const v = o[key];
  if (!isInteger(v)) return badType(v, path(i, key), 'an integer');
  if (v < 1 || v > INT_MAX)
    return new Invalid('invalid_value', `${path(i, key)}: ${v}, must be 1..${INT_MAX}`);
  return v;
}

/**
 * An integer that survives the trip through an Avro long and back to a JS number exactly. avsc
 * refuses ±(2^53 - 1) as "potential precision loss", so the bound is two short of it: anything
 * this accepts, `encodePageEvent` can write.
 */
function isInteger(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v <= MAX_LONG && v >= -MAX_LONG;
}

function missing(at: string): Invalid {
  return new Invalid('missing_field', `${at}: missing`);
}

function badType(v: unknown, at: string, expected: string): Invalid {
  if (v === undefined) return missing(at);
  return new Invalid('wrong_type', `${at}: expected ${expected}, got ${describe(v)}`);
}

/** Names a value's type for a detail message without echoing a long string back. */
function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  switch (typeof v) {
    case 'number':
      return String(v);
    case 'string':
      return v.length <= 32 ? `the string ${JSON.stringify(v)}` : 'a string';
    case 'object':
      return 'an object';
    case 'boolean':
      return String(v);
    default:
      return typeof v;
  }
}

function quote(s: string): string {
  return JSON.stringify(s.length <= 64 ? s : `${s.slice(0, 64)}…`);
}
