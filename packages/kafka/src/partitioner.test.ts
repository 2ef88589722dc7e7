import fc from 'fast-check';
import { Partitioners, type PartitionMetadata } from 'kafkajs';
import { describe, expect, it } from 'vitest';
import { JavaCompatiblePartitioner, murmur2, murmur2Partition } from './partitioner.js';

/**
 * Computed with the Java client 4.1.1 itself: `Utils.murmur2(key.getBytes(UTF_8))` and
 * `BuiltInPartitioner.partitionForKey(bytes, n)` for n = 1, 3, 4, 12, 100, 1000.
 */
const JAVA: ReadonlyArray<readonly [string, number, readonly number[]]> = [
  ['', 275646681, [0, 0, 1, 9, 81, 681]],
  ['a', -1563381124, [0, 1, 0, 4, 24, 524]],
  ['21', -973932308, [0, 0, 0, 0, 40, 340]],
  ['abc', 479470107, [0, 0, 3, 3, 7, 107]],
  ['1234', -1614185708, [0, 0, 0, 0, 40, 940]],
  ['12345', -1188365604, [0, 2, 0, 8, 44, 44]],
  ['foobar', -790332482, [0, 0, 2, 6, 66, 166]],
  ['a-little-bit-long-string', -985981536, [0, 2, 0, 8, 12, 112]],
  ['a-little-bit-longer-string', -1486304829, [0, 2, 3, 11, 19, 819]],
  ['lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8', -58897971, [0, 2, 1, 5, 77, 677]],
  ['pv-000001', 1574543170, [0, 1, 2, 10, 70, 170]],
  ['7f9c1c2e-3b4a-4e8f-9d21-0c6b5a4e3f10', -2077610003, [0, 0, 1, 9, 45, 645]],
  ['0b3e6a52-91d4-4c0a-8f7e-2d5c9b1a6e47', -1284958478, [0, 0, 2, 6, 70, 170]],
  ['site-7/user-42', 700350462, [0, 0, 2, 6, 62, 462]],
  ['caf\u00e9', -1358007374, [0, 0, 2, 6, 74, 274]],
  ['na\u00efve-\u00fc', -2112305025, [0, 2, 3, 11, 23, 623]],
  ['\u65e5\u672c\u8a9e\u306e\u30ad\u30fc', -734675706, [0, 2, 2, 2, 42, 942]],
  ['emoji-\ud83d\ude00', -1225718728, [0, 1, 0, 4, 20, 920]],
  ['\u0000\u0001\u00ff', -487287704, [0, 0, 0, 0, 44, 944]],
  ['zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz', 1098928389, [0, 0, 1, 9, 89, 389]],
];
const JAVA_PARTITION_COUNTS = [1, 3, 4, 12, 100, 1000];

const metadata = (count: number, leaderless: readonly number[] = []): PartitionMetadata[] =>
  Array.from({ length: count }, (_, partitionId) => ({
    partitionId,
    leader: leaderless.includes(partitionId) ? -1 : 0,
    partitionErrorCode: 0,
    replicas: [0],
    isr: [0],
  }));

describe('murmur2', () => {
  it.each(JAVA)('hashes %j as the Java client does', (key, hash, partitions) => {
    expect(murmur2(key)).toBe(hash);
    expect(murmur2(Buffer.from(key, 'utf8'))).toBe(hash);
    JAVA_PARTITION_COUNTS.forEach((count, i) => expect(murmur2Partition(key, count), `${count} partitions`).toBe(partitions[i]));
  });

  it('gives the partitions of KafkaJS DefaultPartitioner for any key, string or bytes', () => {
    const theirs = Partitioners.DefaultPartitioner();
    const ours = JavaCompatiblePartitioner();
    const key = fc.oneof(
      fc.uuid(),
      fc.string({ maxLength: 80 }),
      fc.string({ unit: 'grapheme', maxLength: 20 }),
      fc.string({ unit: 'binary', maxLength: 40 }),
      fc.uint8Array({ maxLength: 64 }).map((bytes) => Buffer.from(bytes)),
    );
    fc.assert(
      fc.property(key, fc.integer({ min: 1, max: 2000 }), (k, count) => {
        const args = { topic: 't', partitionMetadata: metadata(count), message: { key: k, value: null } };
        expect(ours(args)).toBe(theirs(args));
      }),
      { numRuns: 20_000 },
    );
  });
});

describe('JavaCompatiblePartitioner', () => {
  it('keeps an explicit partition', () => {
    const partitioner = JavaCompatiblePartitioner();
    expect(partitioner({ topic: 't', partitionMetadata: metadata(4), message: { key: 'abc', value: null, partition: 1 } })).toBe(1);
  });

  it('spreads records without a key round robin over partitions with a leader', () => {
    const partitioner = JavaCompatiblePartitioner();
    const seen = Array.from({ length: 12 }, () =>
      partitioner({ topic: 't', partitionMetadata: metadata(4, [2]), message: { value: null } }),
    );
    expect(new Set(seen)).toEqual(new Set([0, 1, 3]));
    // Consecutive records go to the next available partition, in order.
    const order = [0, 1, 3];
    for (let i = 1; i < seen.length; i++) expect(order.indexOf(seen[i] as number)).toBe((order.indexOf(seen[i - 1] as number) + 1) % 3);
  });

  it('falls back to any partition when none has a leader', () => {
    const partitioner = JavaCompatiblePartitioner();
    const seen = Array.from({ length: 8 }, () => partitioner({ topic: 't', partitionMetadata: metadata(2, [0, 1]), message: { value: null } }));
    expect(new Set(seen)).toEqual(new Set([0, 1]));
  });
});
