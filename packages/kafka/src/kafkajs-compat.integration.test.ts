/**
 * Proves that KafkaJS 2.2.4 works against the broker version dwell pins (infra/kafka/pom.xml):
 * topic creation, acks=all produce, a consumer group with manual offset commits, and offset
 * lookup by timestamp. Each is a capability the gateway, processor or replay depends on.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Kafka } from 'kafkajs';
import { createKafka, ensureTopics, offsetsAtTime } from './client.js';
import { testBrokers, uniqueName, eventually } from '../../../test/support.js';

let kafka: Kafka;

beforeAll(() => {
  kafka = createKafka({ brokers: testBrokers(), clientId: uniqueName('compat') });
});

describe('KafkaJS 2.2.4 against the pinned broker', () => {
  const topic = uniqueName('compat_topic');

  afterAll(async () => {
    const admin = kafka.admin();
    await admin.connect();
    await admin.deleteTopics({ topics: [topic] }).catch(() => undefined);
    await admin.disconnect();
  });

  it('creates topics idempotently and reports their partitions', async () => {
    expect(await ensureTopics(kafka, [{ topic, numPartitions: 3, replicationFactor: 1 }])).toEqual([topic]);
    expect(await ensureTopics(kafka, [{ topic, numPartitions: 3 }])).toEqual([]);
    const admin = kafka.admin();
    await admin.connect();
    const metadata = await admin.fetchTopicMetadata({ topics: [topic] });
    await admin.disconnect();
    expect(metadata.topics[0]?.partitions).toHaveLength(3);
  });

  it('produces with acks=all, consumes in a group with manual commits, and resumes from the commit', async () => {
    const producer = kafka.producer({ allowAutoTopicCreation: false });
    await producer.connect();
    const first = Array.from({ length: 30 }, (_, i) => ({ key: `k${i % 5}`, value: `first-${i}` }));
    const metadata = await producer.send({ topic, acks: -1, messages: first });
    expect(metadata.length).toBeGreaterThan(0);
    expect(metadata.every((m) => m.errorCode === 0)).toBe(true);

    const groupId = uniqueName('compat_group');
    const seen: string[] = [];
    const consumer = kafka.consumer({ groupId });
    await consumer.connect();
    await consumer.subscribe({ topic, fromBeginning: true });
    await consumer.run({
      autoCommit: false,
      eachMessage: async ({ partition, message }) => {
        seen.push(message.value?.toString() ?? '');
        await consumer.commitOffsets([{ topic, partition, offset: (BigInt(message.offset) + 1n).toString() }]);
      },
    });
    await eventually('30 messages consumed', async () => (seen.length >= 30 ? true : undefined));
    await consumer.disconnect();
    expect([...seen].sort()).toEqual(first.map((m) => m.value).sort());

    // New messages after the commit: a restarted member of the same group sees only those.
    const second = Array.from({ length: 10 }, (_, i) => ({ key: `k${i}`, value: `second-${i}` }));
    await producer.send({ topic, acks: -1, messages: second });
    const resumed: string[] = [];
    const again = kafka.consumer({ groupId });
    await again.connect();
    await again.subscribe({ topic, fromBeginning: true });
    await again.run({
      autoCommit: false,
      eachMessage: async ({ message }) => {
        resumed.push(message.value?.toString() ?? '');
      },
    });
    await eventually('10 new messages consumed', async () => (resumed.length >= 10 ? true : undefined));
    await again.disconnect();
    await producer.disconnect();
    expect([...resumed].sort()).toEqual(second.map((m) => m.value).sort());

    const admin = kafka.admin();
    await admin.connect();
    const committed = await admin.fetchOffsets({ groupId, topics: [topic] });
    await admin.disconnect();
    const total = committed[0]?.partitions.reduce((sum, p) => sum + Number(p.offset), 0);
    expect(total).toBe(30);
  });

  it('looks offsets up by timestamp', async () => {
    const timed = uniqueName('compat_time');
    await ensureTopics(kafka, [{ topic: timed, numPartitions: 1 }]);
    const producer = kafka.producer();
    await producer.connect();
    const base = Date.now() - 60_000;
    await producer.send({
      topic: timed,
      acks: -1,
      messages: [0, 10_000, 20_000, 30_000].map((delta, i) => ({ value: `m${i}`, timestamp: String(base + delta) })),
    });
    await producer.disconnect();
    expect(await offsetsAtTime(kafka, timed, base + 15_000)).toEqual([{ partition: 0, offset: '2' }]);
    expect(await offsetsAtTime(kafka, timed, base - 1)).toEqual([{ partition: 0, offset: '0' }]);
    // After the last message: the end of the partition.
    expect(await offsetsAtTime(kafka, timed, base + 40_000)).toEqual([{ partition: 0, offset: '4' }]);
  });
});
