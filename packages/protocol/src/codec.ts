/**
 * Encoders and decoders for each contract, by record.
 *
 * Wire (client → gateway):
 * - JSON text frame (browsers, HTTP fallback, beacon): `{"events": [ClientEvent, ...]}`, parsed by
 *   `parseJsonFrame` (see there for the exact shape and rules).
 * - Binary frame (native clients): the Avro single-object encoding of `ClientBatch`
 *   `{events: array<ClientEvent>}`, i.e. `C3 01` + the 8-byte little-endian CRC-64-AVRO fingerprint
 *   of the writer's ClientBatch schema + the Avro binary body; read by `decodeBinaryFrame`.
 *
 * Log (Kafka values): single-object encoded `PageEvent` on `dwell.events.v1` and `RejectedFrame`
 * on `dwell.rejected.v1`, always written with the current schema version, read from any version.
 */
import type avsc from 'avsc';
import {
  asBuffer,
  currentSchema,
  decodeSingleObjectOrThrow,
  encodeSingleObject,
  SINGLE_OBJECT_HEADER_BYTES,
  SINGLE_OBJECT_MARKER,
} from './schemas.js';
import type { ClientEvent, PageEvent, RejectedFrame } from './types.js';

/** Single-object encoding of a ledger record for `dwell.events.v1`. */
export function encodePageEvent(event: PageEvent): Buffer {
  return encodeSingleObject('PageEvent', event);
}

/** Reads a `dwell.events.v1` value written by any known PageEvent version; throws `SingleObjectDecodeError`. */
export function decodePageEvent(bytes: Uint8Array): PageEvent {
  return decodeSingleObjectOrThrow('PageEvent', bytes);
}

/** Single-object encoding of a dead letter for `dwell.rejected.v1`. */
export function encodeRejectedFrame(frame: RejectedFrame): Buffer {
  // avsc writes `bytes` only from a Buffer; wrap a plain Uint8Array without copying.
  const value = Buffer.isBuffer(frame.raw) ? frame : { ...frame, raw: asBuffer(frame.raw) };
  return encodeSingleObject('RejectedFrame', value);
}

/** Reads a `dwell.rejected.v1` value written by any known RejectedFrame version; throws `SingleObjectDecodeError`. */
export function decodeRejectedFrame(bytes: Uint8Array): RejectedFrame {
  return decodeSingleObjectOrThrow('RejectedFrame', bytes);
}

/** A binary frame as a native client sends it (the inverse of `decodeBinaryFrame`). */
export function encodeClientBatch(events: readonly ClientEvent[]): Buffer {
  return encodeSingleObject('ClientBatch', { events });
}

/** A JSON text frame as a browser sends it (the inverse of `parseJsonFrame`). */
export function encodeJsonFrame(events: readonly ClientEvent[]): string {
  return JSON.stringify({ events });
}

/** What the gateway adds to a client event: its clock, its id and the verified token's identity. */
export type GatewayStamp = Omit<PageEvent, 'event'>;

/**
 * The ledger record for a validated client event. `site_id` and `user_id` come from the stamp
 * (the verified token), never from the event.
 */
export function stampEvent(event: ClientEvent, stamp: GatewayStamp): PageEvent {
  return {
    recv_ms: stamp.recv_ms,
    gateway_id: stamp.gateway_id,
    site_id: stamp.site_id,
    user_id: stamp.user_id,
    user_agent: stamp.user_agent,
    transport: stamp.transport,
    event,
  };
}

/**
 * PageEvent's fields in its current schema: the stamp's, then `event` last (an Avro record is its
 * fields' encodings back to back, so a frame's events can share the stamp's bytes).
 */
const PAGE_EVENT = (() => {
  const current = currentSchema('PageEvent');
  const fields = (current.type as avsc.types.RecordType).fields;
  const last = fields[fields.length - 1];
  if (last === undefined || last.name !== 'event') return undefined;
  const header = Buffer.alloc(SINGLE_OBJECT_HEADER_BYTES);
  header[0] = SINGLE_OBJECT_MARKER[0];
  header[1] = SINGLE_OBJECT_MARKER[1];
  header.writeBigUInt64LE(current.fingerprint, 2);
  return { header, stampFields: fields.slice(0, -1), event: last.type };
})();

let eventScratch = Buffer.allocUnsafe(16 * 1024);

/**
 * The ledger records of one frame's events, all with the same stamp: for each event the same bytes
 * as `encodePageEvent(stampEvent(event, stamp))`, with the stamp (header, clock, ids, User-Agent,
 * transport) encoded once for the frame instead of once per event.
 */
export function encodeStampedEvents(stamp: GatewayStamp, events: readonly ClientEvent[]): Buffer[] {
  if (PAGE_EVENT === undefined) return events.map((event) => encodePageEvent(stampEvent(event, stamp)));
  const prefix = Buffer.concat([
    PAGE_EVENT.header,
    ...PAGE_EVENT.stampFields.map((field) =>
      field.type.toBuffer((stamp as unknown as Record<string, unknown>)[field.name]),
    ),
  ]);
  const out = new Array<Buffer>(events.length);
  for (let i = 0; i < events.length; i++) {
    let end = PAGE_EVENT.event.encode(events[i], eventScratch, 0);
    // avsc returns minus the number of missing bytes when the buffer is too small.
    while (end < 0) {
      eventScratch = Buffer.allocUnsafe(Math.max(2 * eventScratch.length, eventScratch.length - end));
      end = PAGE_EVENT.event.encode(events[i], eventScratch, 0);
    }
    const record = Buffer.allocUnsafe(prefix.length + end);
    prefix.copy(record, 0);
    eventScratch.copy(record, prefix.length, 0, end);
    out[i] = record;
  }
  return out;
}
