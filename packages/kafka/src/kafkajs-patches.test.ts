/**
 * KafkaJS as patched by patches/kafkajs+2.2.4.patch (applied by `npm ci`). The produce path:
 * grouping per partition, record and batch encoding (also written in one pass for plain records),
 * CRC-32C. The fetch path: record offsets and timestamps decoded as numbers when exact, and the
 * fetched-offset filter. Each is checked against an independent encoding written here from the
 * Kafka protocol spec, so a patch that changed a byte on the wire or a decoded value fails here
 * (the broker itself checks the CRC and the framing in the integration tests).
 */
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { gzipSync } from 'node:zlib';
import fc from 'fast-check';
import { describe, expect, it, vi } from 'vitest';

const require = createRequire(import.meta.url);
/** A module of KafkaJS's own source tree (what the patch changes), by its path under src/. */
const kafkajsRoot = dirname(require.resolve('kafkajs'));
const internal = <T>(path: string): T => require(join(kafkajsRoot, 'src', path)) as T;

interface KafkaEncoder {
  buffer: Buffer;
  size(): number;
}
type Headers = Record<string, string | Buffer | Array<string | Buffer>>;
interface RecordInput {
  offsetDelta?: number;
  timestampDelta?: number;
  key?: string | Buffer | null;
  value?: string | Buffer | null;
  headers?: Headers;
}

const Record = internal<(record: RecordInput) => KafkaEncoder>('protocol/recordBatch/record/v0');
const { RecordBatch } = internal<{
  RecordBatch: (batch: { records: KafkaEncoder[]; firstTimestamp: number; maxTimestamp: number; lastOffsetDelta: number }) => Promise<KafkaEncoder>;
}>('protocol/recordBatch/v0');
const crc32C = internal<(buffer: Buffer) => number>('protocol/recordBatch/crc32C');
const groupMessagesPerPartition = internal<
  (args: {
    topic: string;
    partitionMetadata: unknown[];
    messages: Array<{ key: string }>;
    partitioner: (args: { message: { key: string } }) => number;
  }) => Record<number, Array<{ key: string }>>
>('producer/groupMessagesPerPartition');
const produceRequestV3 = internal<
  (args: {
    acks: number;
    timeout: number;
    compression?: number;
    topicData: Array<{ topic: string; partitions: Array<{ partition: number; messages: RecordInput[] }> }>;
  }) => { encode(): Promise<KafkaEncoder> }
>('protocol/requests/produce/v3/request');
const Encoder = internal<{ new (): KafkaEncoder & { writeVarLong(v: number | string): KafkaEncoder } }>('protocol/encoder');

// --- the reference, from the protocol spec ------------------------------------------------------

/** Unsigned LEB128 of a non-negative bigint. */
function uvarint(value: bigint): number[] {
  const out: number[] = [];
  let rest = value;
  while (rest >= 0x80n) {
    out.push(Number(rest & 0x7fn) | 0x80);
    rest >>= 7n;
  }
  out.push(Number(rest));
  return out;
}
/** Zig-zag varint of a signed 64-bit value (varint and varlong are the same encoding). */
const varlong = (value: number | bigint): number[] => {
  const v = BigInt(value);
  return uvarint(v >= 0n ? v * 2n : -v * 2n - 1n);
};
const bytes = (value: string | Buffer | null | undefined): number[] =>
  value == null ? varlong(-1) : [...varlong(Buffer.byteLength(value)), ...Buffer.from(value)];

function referenceRecord(record: RecordInput): Buffer {
  const headers: Array<[string, string | Buffer]> = [];
  for (const [key, value] of Object.entries(record.headers ?? {})) {
    for (const item of Array.isArray(value) ? value : [value]) headers.push([key, item]);
  }
  const body = [
    0, // attributes
    ...varlong(record.timestampDelta ?? 0),
    ...varlong(record.offsetDelta ?? 0),
    ...bytes(record.key),
    ...bytes(record.value),
    ...varlong(headers.length),
    ...headers.flatMap(([key, value]) => [...bytes(key), ...bytes(value)]),
  ];
  return Buffer.from([...varlong(body.length), ...body]);
}

/** CRC-32C (Castagnoli, reflected polynomial 0x82f63b78), bit by bit. */
function referenceCrc32C(data: Uint8Array): number {
  let crc = 0xffffffff;
  for (const byte of data) {
    crc ^= byte;
    for (let bit = 0; bit < 8; bit++) crc = crc & 1 ? (crc >>> 1) ^ 0x82f63b78 : crc >>> 1;
  }
  return (crc ^ 0xffffffff) >>> 0;
}

const int16 = (v: number): number[] => [(v >> 8) & 0xff, v & 0xff];
const int32 = (v: number): number[] => [(v >>> 24) & 0xff, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff];
const int64 = (v: number): number[] => {
  const b = Buffer.alloc(8);
  b.writeBigInt64BE(BigInt(v));
  return [...b];
};
const string16 = (v: string): number[] => [...int16(Buffer.byteLength(v)), ...Buffer.from(v)];
const bigInt64 = (v: bigint): number[] => {
  const b = Buffer.alloc(8);
  b.writeBigInt64BE(v);
  return [...b];
};

/**
 * A record batch (magic 2) as the spec frames it: base offset, length, partition leader epoch,
 * magic, the CRC-32C of the rest, then attributes, last offset delta, first and max timestamps,
 * producer id -1, epoch 0, first sequence 0, the record count and the (encoded) records.
 */
function referenceBatch(batch: { baseOffset: bigint; attributes: number; lastOffsetDelta: number; firstTimestamp: bigint; maxTimestamp: bigint; count: number; records: Buffer }): Buffer {
  const body = Buffer.from([
    ...int16(batch.attributes),
    ...int32(batch.lastOffsetDelta),
    ...bigInt64(batch.firstTimestamp),
    ...bigInt64(batch.maxTimestamp),
    ...int64(-1), // producer id
    ...int16(0), // producer epoch
    ...int32(0), // first sequence
    ...int32(batch.count),
    ...batch.records,
  ]);
  const afterLength = Buffer.concat([Buffer.from([...int32(0), 2, ...int32(referenceCrc32C(body))]), body]);
  return Buffer.concat([Buffer.from([...bigInt64(batch.baseOffset), ...int32(afterLength.length)]), afterLength]);
}

/** A produce request v3 (no transaction, no idempotence, no compression), every record stamped `now`. */
function referenceProduceV3(acks: number, timeout: number, topics: Array<{ topic: string; partitions: Array<{ partition: number; messages: RecordInput[] }> }>, now: number): Buffer {
  const out = [...int16(-1), ...int16(acks), ...int32(timeout), ...int32(topics.length)];
  for (const { topic, partitions } of topics) {
    out.push(...string16(topic), ...int32(partitions.length));
    for (const { partition, messages } of partitions) {
      const records = Buffer.concat(messages.map((m, i) => referenceRecord({ key: m.key, value: m.value, headers: m.headers, offsetDelta: i, timestampDelta: 0 })));
      const recordSet = referenceBatch({
        baseOffset: 0n,
        attributes: 0,
        lastOffsetDelta: messages.length - 1,
        firstTimestamp: BigInt(now),
        maxTimestamp: BigInt(now),
        count: messages.length,
        records,
      });
      out.push(...int32(partition), ...int32(recordSet.length), ...recordSet);
    }
  }
  return Buffer.from(out);
}

// --- the properties -----------------------------------------------------------------------------

const arbBytesOrString = fc.oneof(fc.string({ maxLength: 40 }), fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b)));
const arbRecord: fc.Arbitrary<RecordInput> = fc.record(
  {
    offsetDelta: fc.integer({ min: 0, max: 2 ** 31 - 1 }),
    timestampDelta: fc.oneof(fc.integer({ min: -(2 ** 31), max: 2 ** 31 }), fc.maxSafeInteger(), fc.constantFrom(0, 2 ** 30 - 1, 2 ** 30, -(2 ** 30), -(2 ** 30) - 1)),
    key: fc.option(arbBytesOrString, { nil: null }),
    value: fc.option(arbBytesOrString, { nil: null }),
    headers: fc.dictionary(fc.string({ maxLength: 10 }), fc.oneof(arbBytesOrString, fc.array(arbBytesOrString, { maxLength: 3 })), { maxKeys: 3 }),
  },
  { requiredKeys: ['offsetDelta', 'timestampDelta', 'value'] },
);

describe('patched KafkaJS produce path', () => {
  it('encodes every record exactly as the protocol spec says', () => {
    fc.assert(
      fc.property(arbRecord, (record) => {
        expect(Record(record).buffer.toString('hex')).toBe(referenceRecord(record).toString('hex'));
      }),
      { numRuns: 3000 },
    );
  });

  it('writes varlongs of any size, small ones without Long arithmetic, identically', () => {
    for (const value of [0, 1, -1, 63, -64, 64, 2 ** 30 - 1, 2 ** 30, -(2 ** 30), -(2 ** 30) - 1, 2 ** 31, 2 ** 40, -(2 ** 45), Number.MAX_SAFE_INTEGER]) {
      expect(new Encoder().writeVarLong(value).buffer.toString('hex'), String(value)).toBe(Buffer.from(varlong(value)).toString('hex'));
    }
  });

  it('frames a record batch with the CRC-32C of its body', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(arbRecord, { minLength: 1, maxLength: 30 }), async (records) => {
        const encoded = records.map((r, i) => Record({ ...r, offsetDelta: i }));
        const batch = (await RecordBatch({ records: encoded, firstTimestamp: 1_700_000_000_000, maxTimestamp: 1_700_000_000_123, lastOffsetDelta: records.length - 1 })).buffer;
        // firstOffset int64, length int32, partitionLeaderEpoch int32, magic int8, crc uint32, then the body.
        expect(batch.readInt32BE(8)).toBe(batch.length - 12);
        expect(batch.readInt8(16)).toBe(2);
        const body = batch.subarray(21);
        expect(batch.readUInt32BE(17)).toBe(referenceCrc32C(body));
        // The body ends with the record count and the records, back to back.
        const recordBytes = Buffer.concat(records.map((r, i) => referenceRecord({ ...r, offsetDelta: i })));
        expect(body.readInt32BE(body.length - recordBytes.length - 4)).toBe(records.length);
        expect(body.subarray(body.length - recordBytes.length).equals(recordBytes)).toBe(true);
      }),
      { numRuns: 200 },
    );
  });

  it('encodes whole produce requests as the spec says, records with and without headers alike', async () => {
    const arbMessage = arbRecord.map(({ key, value, headers }) => ({ key, value, headers }));
    const arbPartitions = fc.uniqueArray(
      fc.record({ partition: fc.nat(50), messages: fc.array(arbMessage, { minLength: 1, maxLength: 12 }) }),
      { minLength: 1, maxLength: 4, selector: (p) => p.partition },
    );
    const now = 1_764_000_000_123;
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(now);
    try {
      await fc.assert(
        fc.asyncProperty(fc.array(fc.record({ topic: fc.string({ minLength: 1, maxLength: 20 }), partitions: arbPartitions }), { minLength: 1, maxLength: 2 }), async (topics) => {
          const encoded = (await produceRequestV3({ acks: -1, timeout: 30_000, topicData: topics }).encode()).buffer;
          expect(encoded.toString('hex')).toBe(referenceProduceV3(-1, 30_000, topics, now).toString('hex'));
        }),
        { numRuns: 300 },
      );
    } finally {
      vi.useRealTimers();
    }
  });

  it('computes CRC-32C like the bit-by-bit definition at every length and alignment', () => {
    expect(crc32C(Buffer.from('123456789'))).toBe(0xe3069283);
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), fc.nat(7), (data, skip) => {
        const view = Buffer.from(data).subarray(Math.min(skip, data.length));
        expect(crc32C(view)).toBe(referenceCrc32C(view));
      }),
      { numRuns: 2000 },
    );
  });

  it('groups messages per partition, keeping their order', () => {
    const messages = Array.from({ length: 1000 }, (_, i) => ({ key: String(i) }));
    const grouped = groupMessagesPerPartition({
      topic: 't',
      partitionMetadata: [{}, {}, {}],
      messages,
      partitioner: ({ message }) => Number(message.key) % 3,
    });
    expect(Object.keys(grouped)).toEqual(['0', '1', '2']);
    for (const p of [0, 1, 2]) expect(grouped[p]?.map((m) => Number(m.key))).toEqual(messages.map((_, i) => i).filter((i) => i % 3 === p));
    expect(groupMessagesPerPartition({ topic: 't', partitionMetadata: [], messages, partitioner: () => 0 })).toEqual({});
  });
});

// --- the fetch path -----------------------------------------------------------------------------

interface DecodedRecord {
  offset: string;
  timestamp: string;
  key: Buffer | null;
  value: Buffer | null;
}
const Decoder = internal<new (buffer: Buffer) => unknown>('protocol/decoder');
const decodeRecordBatch = internal<(decoder: unknown) => Promise<{ records: DecodedRecord[] }>>('protocol/recordBatch/v0/decoder');
const Batch = internal<
  new (topic: string, fetchedOffset: string, partitionData: { partition: number; highWatermark: string; messages: Array<{ offset: string }> }) => {
    messages: Array<{ offset: string }>;
  }
>('consumer/batch');

/** A record batch as a fetch response carries it, written from the spec; records gzipped or not. */
function referenceFetchedBatch(
  firstOffset: bigint,
  firstTimestamp: bigint,
  maxTimestamp: bigint,
  logAppendTime: boolean,
  records: ReadonlyArray<{ offsetDelta: number; timestampDelta: bigint; value: Buffer }>,
  gzip = false,
): Buffer {
  const recordBytes = records.map(({ offsetDelta, timestampDelta, value }) => {
    const body = [0, ...varlong(timestampDelta), ...varlong(offsetDelta), ...varlong(-1), ...bytes(value), ...varlong(0)];
    return Buffer.from([...varlong(body.length), ...body]);
  });
  const plain = Buffer.concat(recordBytes);
  return referenceBatch({
    baseOffset: firstOffset,
    // the timestamp type, and the compression codec (1: gzip)
    attributes: (logAppendTime ? 0x08 : 0) | (gzip ? 1 : 0),
    lastOffsetDelta: Math.max(0, ...records.map((r) => r.offsetDelta)),
    firstTimestamp,
    maxTimestamp,
    count: records.length,
    records: gzip ? gzipSync(plain) : plain,
  });
}

const INT62 = 2n ** 62n;
/** Around the edges where a number stops being exact, and anywhere in a 62-bit range. */
const arbWide = fc.oneof(
  fc.bigInt({ min: -INT62, max: INT62 }),
  fc.bigInt({ min: -(2n ** 31n), max: 2n ** 31n }),
  fc.constantFrom(-1n, 0n, 2n ** 53n - 1n, 2n ** 53n, -(2n ** 53n) + 1n, 2n ** 53n - 2n ** 31n, 2n ** 53n - 2n ** 31n - 1n),
);

describe('patched KafkaJS fetch path', () => {
  it('decodes every record offset and timestamp as the spec says, exact beyond 2^53 too, compressed or not', async () => {
    await fc.assert(
      fc.asyncProperty(
        arbWide,
        arbWide,
        fc.bigInt({ min: 0n, max: INT62 }),
        fc.boolean(),
        fc.boolean(),
        fc.array(
          fc.record({
            offsetDelta: fc.oneof(fc.nat(2 ** 31 - 1), fc.nat(100)),
            timestampDelta: arbWide,
            value: fc.uint8Array({ maxLength: 20 }).map((b) => Buffer.from(b)),
          }),
          { minLength: 1, maxLength: 20 },
        ),
        async (firstOffset, firstTimestamp, maxTimestamp, logAppendTime, gzip, records) => {
          const fetched = referenceFetchedBatch(firstOffset, firstTimestamp, maxTimestamp, logAppendTime, records, gzip);
          const decoded = await decodeRecordBatch(new Decoder(fetched));
          expect(decoded.records.map((r) => [r.offset, r.timestamp, r.key, r.value?.toString('hex')])).toEqual(
            records.map((r) => [
              String(firstOffset + BigInt(r.offsetDelta)),
              String(logAppendTime ? maxTimestamp : firstTimestamp + r.timestampDelta),
              null,
              r.value.toString('hex'),
            ]),
          );
        },
      ),
      { numRuns: 3000 },
    );
  });

  it('keeps the fetched records at or after the fetched offset, exact beyond 2^53 too', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: -1n, max: 2n ** 63n - 1n }), fc.array(fc.bigInt({ min: -1n, max: 2n ** 63n - 1n }), { maxLength: 30 }), (fetchedOffset, offsets) => {
        const messages = offsets.map((o) => ({ offset: String(o) }));
        const batch = new Batch('t', String(fetchedOffset), { partition: 0, highWatermark: '0', messages });
        expect(batch.messages.map((m) => m.offset)).toEqual(offsets.filter((o) => o >= fetchedOffset).map(String));
      }),
      { numRuns: 3000 },
    );
  });
});
