/**
 * ClickHouse's RowBinary format, for the processor's result rows: each row its columns in order,
 * integers little-endian, a string as its UTF-8 length (LEB128) and bytes, an array as its length
 * and elements. A LowCardinality column is sent as its plain type. Binary rows cost ClickHouse a
 * fraction of parsing the same rows as JSON text, and cost less to write.
 */

/** The column types the result tables use, by their RowBinary encoding. */
export type RowBinaryType = 'String' | 'UInt8' | 'UInt16' | 'UInt32' | 'UInt64' | 'Int64' | 'Array(String)';

const TWO_32 = 4_294_967_296;

export class RowBinaryError extends Error {
  override readonly name = 'RowBinaryError';
}

/** Appends values to a growing buffer. Integers must be safe integers within their type. */
export class RowBinaryWriter {
  private buf: Buffer;
  private at = 0;

  constructor(initialBytes = 64 * 1024) {
    // Its own ArrayBuffer (never a slice of Node's pool), so a finished body can be transferred.
    this.buf = Buffer.allocUnsafeSlow(initialBytes);
  }

  get length(): number {
    return this.at;
  }

  private room(bytes: number): void {
    if (this.at + bytes <= this.buf.length) return;
    const bigger = Buffer.allocUnsafeSlow(Math.max(this.buf.length * 2, this.at + bytes));
    this.buf.copy(bigger, 0, 0, this.at);
    this.buf = bigger;
  }

  string(value: string): void {
    const chars = value.length;
    // At most 3 bytes per UTF-16 unit: below 43 units the byte length fits one LEB128 byte.
    if (chars < 43) {
      this.room(1 + chars * 3);
      const buf = this.buf;
      const start = this.at + 1;
      // ASCII byte by byte: cheaper than a call into the UTF-8 encoder for a short string.
      let i = 0;
      for (; i < chars; i++) {
        const code = value.charCodeAt(i);
        if (code >= 0x80) break;
        buf[start + i] = code;
      }
      const bytes = i === chars ? chars : buf.write(value, start, 'utf8');
      buf[this.at] = bytes;
      this.at = start + bytes;
      return;
    }
    const bytes = Buffer.byteLength(value, 'utf8');
    this.room(5 + bytes);
    this.leb128(bytes);
    this.at += this.buf.write(value, this.at, 'utf8');
  }

  /**
   * A String column's length alone: its `bytes` bytes of UTF-8 follow in the body, written
   * elsewhere (a large text sent as it is, not copied into this writer).
   */
  stringLength(bytes: number): void {
    this.room(5);
    this.leb128(bytes);
  }

  strings(values: readonly string[]): void {
    this.room(5);
    this.leb128(values.length);
    for (const value of values) this.string(value);
  }

  uint8(value: number): void {
    const checked = this.checked(value, 0xff);
    this.room(1);
    this.buf[this.at++] = checked;
  }

  bool(value: boolean): void {
    this.room(1);
    this.buf[this.at++] = value ? 1 : 0;
  }

  uint16(value: number): void {
    const checked = this.checked(value, 0xffff);
    this.room(2);
    this.buf[this.at++] = checked & 0xff;
    this.buf[this.at++] = checked >>> 8;
  }

  uint32(value: number): void {
    const checked = this.checked(value, 0xffff_ffff);
    this.room(4);
    this.word(checked);
  }

  uint64(value: number): void {
    this.int64(this.checked(value, Number.MAX_SAFE_INTEGER));
  }

  /** A signed 64-bit integer (DateTime64(3) is milliseconds as Int64). */
  int64(value: number): void {
    if (!Number.isSafeInteger(value)) throw new RowBinaryError(`${value} is not a safe integer`);
    this.room(8);
    const high = Math.floor(value / TWO_32);
    this.word(value - high * TWO_32);
    this.word(high >>> 0);
  }

  /** A 32-bit word, little-endian; `value` in 0..2^32-1, room already made. */
  private word(value: number): void {
    const buf = this.buf;
    const at = this.at;
    buf[at] = value & 0xff;
    buf[at + 1] = (value >>> 8) & 0xff;
    buf[at + 2] = (value >>> 16) & 0xff;
    buf[at + 3] = value >>> 24;
    this.at = at + 4;
  }

  /** The bytes written so far; the writer must not be used afterwards. */
  finish(): Uint8Array {
    return new Uint8Array(this.buf.buffer, this.buf.byteOffset, this.at);
  }

  private checked(value: number, max: number): number {
    if (!Number.isSafeInteger(value) || value < 0 || value > max)
      throw new RowBinaryError(`${value} is not an integer in 0..${max}`);
    return value;
  }

  private leb128(value: number): void {
    let rest = value;
    while (rest >= 0x80) {
      this.buf[this.at++] = (rest & 0x7f) | 0x80;
      rest = Math.floor(rest / 128);
    }
    this.buf[this.at++] = rest;
  }
}

/**
 * Reads RowBinary rows of the given column types back into arrays of values (numbers, strings,
 * string arrays): what ClickHouse would read, for tests and for inspecting a write.
 */
export function readRowBinary(body: Uint8Array, types: readonly RowBinaryType[]): unknown[][] {
  const buf = Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  let at = 0;
  const need = (bytes: number): void => {
    if (at + bytes > buf.length) throw new RowBinaryError(`row data ends at byte ${buf.length}, ${bytes} more needed at ${at}`);
  };
  const leb128 = (): number => {
    let value = 0;
    let scale = 1;
    for (;;) {
      need(1);
      const byte = buf[at++] as number;
      value += (byte & 0x7f) * scale;
      if (byte < 0x80) return value;
      scale *= 128;
    }
  };
  const string = (): string => {
    const bytes = leb128();
    need(bytes);
    const value = buf.toString('utf8', at, at + bytes);
    at += bytes;
    return value;
  };
  const read = (type: RowBinaryType): unknown => {
    switch (type) {
      case 'String':
        return string();
      case 'UInt8':
        need(1);
        return buf[at++];
      case 'UInt16':
        need(2);
        at += 2;
        return buf.readUInt16LE(at - 2);
      case 'UInt32':
        need(4);
        at += 4;
        return buf.readUInt32LE(at - 4);
      case 'UInt64':
      case 'Int64': {
        need(8);
        at += 8;
        const low = buf.readUInt32LE(at - 8);
        const high = type === 'UInt64' ? buf.readUInt32LE(at - 4) : buf.readInt32LE(at - 4);
        return high * TWO_32 + low;
      }
      case 'Array(String)':
        return Array.from({ length: leb128() }, string);
    }
  };
  const rows: unknown[][] = [];
  while (at < buf.length) rows.push(types.map(read));
  return rows;
}
