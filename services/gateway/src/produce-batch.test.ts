import { MessageChannel } from 'node:worker_threads';
import type { Message } from '@dwell/kafka';
import { describe, expect, it } from 'vitest';
import { packBatch, unpackBatch, type PackedBatch } from './produce-batch.js';

const text = (data: Buffer | null): string | null => (data === null ? null : data.toString('utf8'));

describe('packBatch / unpackBatch', () => {
  it('round-trips keys and values, UTF-8 keys and empty or missing parts included', () => {
    const messages: Message[] = [
      { key: 'pv-1', value: Buffer.from([1, 2, 3]) },
      { key: 'päge-vïew-2 ✓', value: Buffer.alloc(0) },
      { key: null, value: Buffer.from('ünïcode value', 'utf8') },
      { key: '', value: null },
      { key: Buffer.from([0xff, 0x00]), value: 'a string value' },
    ];
    const { batch, transfer } = packBatch('topic-a', -1, messages);
    expect(batch.topic).toBe('topic-a');
    expect(batch.acks).toBe(-1);
    expect(transfer).toHaveLength(2);
    const back = unpackBatch(batch);
    expect(back.map((m) => text(m.key))).toEqual(['pv-1', 'päge-vïew-2 ✓', null, '', Buffer.from([0xff, 0x00]).toString('utf8')]);
    expect(back[4]?.key).toEqual(Buffer.from([0xff, 0x00]));
    expect(back.map((m) => m.value)).toEqual([
      Buffer.from([1, 2, 3]),
      Buffer.alloc(0),
      Buffer.from('ünïcode value', 'utf8'),
      null,
      Buffer.from('a string value'),
    ]);
  });

  it('rebuilds records as views into the one buffer, without copying', () => {
    const messages = Array.from({ length: 50 }, (_, i) => ({ key: `key-${i}`, value: Buffer.alloc(100 + i, i) }));
    const { batch } = packBatch('t', 1, messages);
    const back = unpackBatch(batch);
    for (const message of back) {
      expect(message.value?.buffer).toBe(batch.bytes.buffer);
      expect(message.key?.buffer).toBe(batch.bytes.buffer);
    }
    expect(back.map((m) => m.value)).toEqual(messages.map((m) => m.value));
    expect(back.map((m) => text(m.key))).toEqual(messages.map((m) => m.key));
  });

  it('copies pooled Buffers out of their pool, and its buffers can be transferred to another thread', async () => {
    // Small Buffers share Node's pool, whose ArrayBuffer cannot be transferred.
    const messages = [{ key: 'k', value: Buffer.from('small, pooled') }];
    const { batch, transfer } = packBatch('t', -1, messages);
    const { port1, port2 } = new MessageChannel();
    const received = new Promise<PackedBatch>((resolve) => port2.once('message', resolve));
    port1.postMessage(batch, transfer);
    const arrived = await received;
    port1.close();
    port2.close();
    expect(batch.bytes.byteLength, 'moved away').toBe(0);
    expect(unpackBatch(arrived).map((m) => [text(m.key), text(m.value)])).toEqual([['k', 'small, pooled']]);
  });

  it('packs an empty batch', () => {
    const { batch } = packBatch('t', -1, []);
    expect(unpackBatch(batch)).toEqual([]);
  });

  it('refuses records with parts that would not travel', () => {
    expect(() => packBatch('t', -1, [{ key: 'k', value: Buffer.alloc(1), partition: 2 }])).toThrow(/key and a value only/);
    expect(() => packBatch('t', -1, [{ key: 'k', value: Buffer.alloc(1), headers: { a: 'b' } }])).toThrow(/key and a value only/);
    expect(() => packBatch('t', -1, [{ key: 'k', value: Buffer.alloc(1), timestamp: '1' }])).toThrow(/key and a value only/);
  });

  it('refuses a batch whose lengths do not match its bytes', () => {
    const { batch } = packBatch('t', -1, [{ key: 'k', value: Buffer.alloc(4) }]);
    const lengths = Int32Array.from(batch.lengths);
    lengths[0] = 3;
    expect(() => unpackBatch({ ...batch, lengths })).toThrow(/add up to/);
  });
});
