/**
 * One batch of records in one transferable buffer, so handing it to a worker thread copies nothing
 * and the buffer can come back for reuse: `count` float64 offsets, `count` float64 timestamps,
 * `count` int32 ends of the values in the value area (-1: a null value), then the values.
 */
import type { LogRecord } from '@dwell/kafka';

const HEADER_BYTES_PER_RECORD = 20;

export function batchBytes(records: readonly LogRecord[]): number {
  let bytes = records.length * HEADER_BYTES_PER_RECORD;
  for (const r of records) if (r.value !== null) bytes += r.value.length;
  return bytes;
}

/** Writes `records` into `buffer` (at least `batchBytes(records)` long). */
export function packBatch(records: readonly LogRecord[], buffer: ArrayBuffer): void {
  const { offsets, timestamps, ends, values } = batchViews(buffer, records.length, buffer.byteLength);
  let at = 0;
  for (let i = 0; i < records.length; i++) {
    const r = records[i] as LogRecord;
    offsets[i] = r.offset;
    timestamps[i] = r.timestampMs;
    if (r.value === null) {
      ends[i] = -1;
    } else {
      values.set(r.value, at);
      at += r.value.length;
      ends[i] = at;
    }
  }
}

export function batchViews(
  buffer: ArrayBuffer,
  count: number,
  byteLength?: number,
): { offsets: Float64Array; timestamps: Float64Array; ends: Int32Array; values: Uint8Array } {
  const offsets = new Float64Array(buffer, 0, count);
  const timestamps = new Float64Array(buffer, count * 8, count);
  const ends = new Int32Array(buffer, count * 16, count);
  const valuesAt = count * HEADER_BYTES_PER_RECORD;
  let used = 0;
  if (byteLength === undefined) {
    for (let i = count - 1; i >= 0; i--) {
      const end = ends[i] ?? -1;
      if (end >= 0) {
        used = end;
        break;
      }
    }
  } else {
    used = byteLength - valuesAt;
  }
  return { offsets, timestamps, ends, values: new Uint8Array(buffer, valuesAt, used) };
}
