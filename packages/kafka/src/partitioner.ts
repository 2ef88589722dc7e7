import { randomInt } from 'node:crypto';
import type { ICustomPartitioner, PartitionerArgs } from 'kafkajs';

const SEED = 0x9747b28c;
const M = 0x5bd1e995;

/**
 * The Java client's `Utils.murmur2` over the UTF-8 bytes of `key` (a Buffer is hashed as it is),
 * in 32-bit integer arithmetic (`Math.imul`), as Java's `int` does it. ASCII strings are hashed
 * straight from their char codes, without encoding them into a Buffer first.
 */
export function murmur2(key: string | Uint8Array): number {
  if (typeof key !== 'string') return murmur2Bytes(key);
  const length = key.length;
  let h = SEED ^ length;
  const length4 = length & ~3;
  let i = 0;
  for (; i < length4; i += 4) {
    const c0 = key.charCodeAt(i);
    const c1 = key.charCodeAt(i + 1);
    const c2 = key.charCodeAt(i + 2);
    const c3 = key.charCodeAt(i + 3);
    // Beyond ASCII the UTF-8 bytes differ from the char codes: hash the encoded bytes instead.
    if ((c0 | c1 | c2 | c3) > 0x7f) return murmur2Bytes(Buffer.from(key, 'utf8'));
    let k = c0 | (c1 << 8) | (c2 << 16) | (c3 << 24);
    k = Math.imul(k, M);
    k ^= k >>> 24;
    k = Math.imul(k, M);
    h = Math.imul(h, M) ^ k;
  }
  const rest = length - length4;
  if (rest > 0) {
    const c0 = key.charCodeAt(i);
    const c1 = rest > 1 ? key.charCodeAt(i + 1) : 0;
    const c2 = rest > 2 ? key.charCodeAt(i + 2) : 0;
    if ((c0 | c1 | c2) > 0x7f) return murmur2Bytes(Buffer.from(key, 'utf8'));
    if (rest === 3) h ^= c2 << 16;
    if (rest >= 2) h ^= c1 << 8;
    h ^= c0;
    h = Math.imul(h, M);
  }
  return finish(h);
}

function murmur2Bytes(data: Uint8Array): number {
  const length = data.length;
  let h = SEED ^ length;
  const length4 = length & ~3;
  let i = 0;
  for (; i < length4; i += 4) {
    let k = (data[i] as number) | ((data[i + 1] as number) << 8) | ((data[i + 2] as number) << 16) | ((data[i + 3] as number) << 24);
    k = Math.imul(k, M);
    k ^= k >>> 24;
    k = Math.imul(k, M);
    h = Math.imul(h, M) ^ k;
  }
  const rest = length - length4;
  if (rest > 0) {
    if (rest === 3) h ^= (data[i + 2] as number) << 16;
    if (rest >= 2) h ^= (data[i + 1] as number) << 8;
    h ^= data[i] as number;
    h = Math.imul(h, M);
  }
  return finish(h);
}

function finish(hash: number): number {
  let h = hash;
  h ^= h >>> 13;
  h = Math.imul(h, M);
  h ^= h >>> 15;
  return h;
}

/** The Java client's partition of a keyed record: `toPositive(murmur2(key)) % partitions`. */
export function murmur2Partition(key: string | Uint8Array, partitions: number): number {
  return (murmur2(key) & 0x7fffffff) % partitions;
}

/**
 * The Java client's partitioning, as KafkaJS's `DefaultPartitioner` does it: an explicit partition
 * wins; a keyed record goes to `toPositive(murmur2(key)) % partitions`; a record without a key
 * goes round robin over the partitions that have a leader. The same partitions, without
 * KafkaJS's 64-bit `Long` arithmetic per key.
 */
export const JavaCompatiblePartitioner: ICustomPartitioner = () => {
  const counters = new Map<string, number>();
  return ({ topic, partitionMetadata, message }: PartitionerArgs): number => {
    if (message.partition !== null && message.partition !== undefined) return message.partition;
    if (message.key !== null && message.key !== undefined) return murmur2Partition(message.key, partitionMetadata.length);
    const next = (counters.get(topic) ?? randomInt(0x7fffffff)) + 1;
    counters.set(topic, next);
    const available = partitionMetadata.filter((p) => p.leader >= 0);
    if (available.length > 0) return (available[(next & 0x7fffffff) % available.length] as (typeof available)[number]).partitionId;
    return (next & 0x7fffffff) % partitionMetadata.length;
  };
};
