/**
 * A produce call's records packed for another thread: every value and key back to back in one
 * buffer, their lengths in another, both transferred (moved, not copied) with `postMessage`. The
 * receiving thread rebuilds each record as views into that buffer, without copying a byte.
 */
import type { Message } from '@dwell/kafka';

/** One `producer.send` call, ready to post to the producer thread. */
export interface PackedBatch {
  readonly topic: string;
  readonly acks: number;
  /** The values, then the keys (UTF-8), back to back in record order. */
  readonly bytes: Uint8Array;
  /** Per record: value length, then key length, in bytes; -1 stands for null. */
  readonly lengths: Int32Array;
}

/** A record rebuilt from a {@link PackedBatch}: key and value are views into its buffer. */
export interface UnpackedMessage {
  readonly key: Buffer | null;
  readonly value: Buffer | null;
}

function byteLengthOf(data: Message['key'] | Message['value'], what: string): number {
  if (data === null || data === undefined) return -1;
  if (typeof data === 'string') return Buffer.byteLength(data, 'utf8');
  if (Buffer.isBuffer(data)) return data.length;
  throw new TypeError(`a record's ${what} must be a string, a Buffer or null to leave for the producer thread`);
}

/**
 * Packs `messages` into one buffer. Only keys and values travel: a record with a partition,
 * headers or a timestamp of its own is refused rather than sent without them. The returned
 * `transfer` list hands both buffers over to the receiver, after which they are unusable here.
 */
export function packBatch(
  topic: string,
  acks: number,
  messages: readonly Message[],
): { readonly batch: PackedBatch; readonly transfer: ArrayBuffer[] } {
  const count = messages.length;
  const lengths = new Int32Array(2 * count);
  let total = 0;
  for (let i = 0; i < count; i++) {
    const message = messages[i] as Message;
    if (message.partition !== undefined || message.headers !== undefined || message.timestamp !== undefined) {
      throw new TypeError('records for the producer thread carry a key and a value only (no partition, headers or timestamp)');
    }
    const valueLength = byteLengthOf(message.value, 'value');
    const keyLength = byteLengthOf(message.key, 'key');
    lengths[2 * i] = valueLength;
    lengths[2 * i + 1] = keyLength;
    total += Math.max(0, valueLength) + Math.max(0, keyLength);
  }
  // Its own ArrayBuffer (not a slice of Node's shared pool), so that it can be transferred.
  const bytes = Buffer.allocUnsafeSlow(total);
  let at = 0;
  for (let i = 0; i < count; i++) {
    const value = (messages[i] as Message).value;
    if (value === null || value === undefined) continue;
    at += typeof value === 'string' ? bytes.write(value, at, 'utf8') : value.copy(bytes, at);
  }
  for (let i = 0; i < count; i++) {
    const key = (messages[i] as Message).key;
    if (key === null || key === undefined) continue;
    at += typeof key === 'string' ? bytes.write(key, at, 'utf8') : key.copy(bytes, at);
  }
  const packed = new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return { batch: { topic, acks, bytes: packed, lengths }, transfer: [bytes.buffer, lengths.buffer] };
}

/** Rebuilds the records of a {@link PackedBatch} as views into its buffer (no copy). */
export function unpackBatch(batch: PackedBatch): UnpackedMessage[] {
  const { bytes, lengths } = batch;
  const count = lengths.length >> 1;
  const all = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const messages = new Array<UnpackedMessage>(count);
  let valueAt = 0;
  let keyAt = 0;
  for (let i = 0; i < count; i++) {
    const valueLength = lengths[2 * i] as number;
    if (valueLength > 0) keyAt += valueLength;
  }
  for (let i = 0; i < count; i++) {
    const valueLength = lengths[2 * i] as number;
    const keyLength = lengths[2 * i + 1] as number;
    let value: Buffer | null = null;
    let key: Buffer | null = null;
    if (valueLength >= 0) {
      value = all.subarray(valueAt, valueAt + valueLength);
      valueAt += valueLength;
    }
    if (keyLength >= 0) {
      key = all.subarray(keyAt, keyAt + keyLength);
      keyAt += keyLength;
    }
    messages[i] = { key, value };
  }
  if (keyAt !== all.length) throw new RangeError(`packed batch of ${all.length} bytes, its lengths add up to ${keyAt}`);
  return messages;
}
