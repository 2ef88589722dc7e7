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
import { asBuffer, decodeSingleObjectOrThrow, encodeSingleObject } from './schemas.js';
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
