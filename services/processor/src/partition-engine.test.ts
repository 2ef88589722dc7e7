import { describe, expect, it } from 'vitest';
import { encodePageEvent } from '@dwell/protocol';
import { IMPRESSION_TYPES, MINUTE_TYPES, readRowBinary, type RowBinaryType } from '@dwell/warehouse';
import { workload } from '../../../test/workload.js';
import { InThreadEngine, SpreadEngine, WorkerThreadEngine, type PartitionEngine } from './partition-engine.js';

const PARTITIONS = [0, 1, 2, 3, 4];

/** The workload's events as records, spread over the partitions by page view. */
function records(): Map<number, Buffer[]> {
  const events = workload({ seed: 11, pageViews: 80, eventsPerPageView: 25, baseMs: 1_764_000_000_000, spreadMs: 60_000 });
  const byPartition = new Map<number, Buffer[]>(PARTITIONS.map((p) => [p, []]));
  for (const event of events) {
    const partition = Number(event.event.page_view_id.split('-').at(-1)) % PARTITIONS.length;
    byPartition.get(partition)?.push(encodePageEvent(event));
  }
  return byPartition;
}

/** Feeds every partition its records in batches, taking results between batches; returns every take. */
async function drive(engine: PartitionEngine, asked: readonly number[]) {
  const all = records();
  for (const p of PARTITIONS) await engine.restore(p, null, 0);
  const takes = [];
  for (let from = 0; from < 500; from += 50) {
    for (const p of PARTITIONS) await engine.apply(p, (all.get(p) ?? []).slice(from, from + 50));
    takes.push(await engine.take(asked.map((p) => [p, from + 49] as const)));
  }
  return takes;
}

/** A body's rows, each as JSON text, sorted: the same rows in any order compare equal. */
const lines = (body: Uint8Array, types: readonly RowBinaryType[]): string[] =>
  readRowBinary(body, types).map((row) => JSON.stringify(row)).sort();

describe('SpreadEngine', () => {
  it('gives the rows and per-partition counts one engine gives, in the order the partitions were asked', async () => {
    const asked = [3, 0, 4, 1, 2];
    const one = await drive(new InThreadEngine(), asked);
    const spread = await drive(new SpreadEngine([new InThreadEngine(), new InThreadEngine(), new InThreadEngine()]), asked);
    expect(spread).toHaveLength(one.length);
    let rows = 0;
    for (const [i, take] of spread.entries()) {
      const expected = one[i];
      if (expected === undefined) throw new Error('missing take');
      expect(take.partitions.map((c) => c.partition)).toEqual(asked);
      expect(take.partitions).toEqual(expected.partitions);
      expect(take.impressions.rows).toBe(expected.impressions.rows);
      expect(lines(take.impressions.body, IMPRESSION_TYPES)).toEqual(lines(expected.impressions.body, IMPRESSION_TYPES));
      expect(lines(take.minutes.body, MINUTE_TYPES)).toEqual(lines(expected.minutes.body, MINUTE_TYPES));
      rows += take.impressions.rows + take.minutes.rows;
    }
    expect(rows).toBeGreaterThan(100);
  });

  it('keeps each partition on one engine', async () => {
    const engines = [new InThreadEngine(), new InThreadEngine()];
    const spread = new SpreadEngine(engines);
    await spread.restore(3, null, 0);
    // Partition 3 lives on engine 1: engine 0 does not know it.
    await expect(engines[0]?.apply(3, [])).rejects.toThrow(/not restored/);
    await expect(engines[1]?.apply(3, [])).resolves.toBeDefined();
  });
});

describe('WorkerThreadEngine', () => {
  it('gives the snapshots the calling thread gives, each of the state when it was asked for', async () => {
    const inThread = new InThreadEngine();
    const worker = new WorkerThreadEngine();
    try {
      const all = records();
      const feed = async (engine: PartitionEngine, from: number, to: number): Promise<void> => {
        for (const p of PARTITIONS) await engine.apply(p, (all.get(p) ?? []).slice(from, to));
      };
      for (const engine of [inThread, worker]) {
        for (const p of PARTITIONS) await engine.restore(p, null, 0);
        await feed(engine, 0, 300);
      }
      const expected = [await inThread.snapshot(1, false)];
      await feed(inThread, 300, 400);
      expected.push(await inThread.snapshot(1, true));
      // Not waited for: the batches after the full snapshot are served while it is encoded, and
      // change neither it nor the delta asked for after them.
      const full = worker.snapshot(1, false);
      await feed(worker, 300, 400);
      const delta = worker.snapshot(1, true);
      const snapshots = await Promise.all([full, delta]);
      expect(snapshots.map((s) => s.kind)).toEqual(['full', 'delta']);
      expect(snapshots.map((s) => Buffer.from(s.bytes).toString('utf8'))).toEqual(
        expected.map((s) => Buffer.from(s.bytes).toString('utf8')),
      );
      expect(snapshots[1]?.pageViews).toBe(expected[1]?.pageViews);
    } finally {
      await Promise.all([inThread.close(), worker.close()]);
    }
  });

  it('encodes snapshots into shared buffers, and puts a later one into a buffer only once its snapshot is released', async () => {
    const worker = new WorkerThreadEngine();
    try {
      const all = records();
      for (const p of [1, 2]) {
        await worker.restore(p, null, 0);
        await worker.apply(p, all.get(p) ?? []);
      }
      const first = await worker.snapshot(1, false);
      expect(first.bytes.buffer).toBeInstanceOf(SharedArrayBuffer);
      expect(first.lent).toBeDefined();
      const firstText = Buffer.from(first.bytes).toString('utf8');
      // Held: the next snapshot goes elsewhere, and the first's bytes stay as they are.
      const second = await worker.snapshot(2, false);
      const secondText = Buffer.from(second.bytes).toString('utf8');
      expect(secondText).not.toBe(firstText);
      expect(Buffer.from(first.bytes).toString('utf8')).toBe(firstText);
      // Released: the next snapshot (partition 2's again, the same text) is written over the first's buffer.
      worker.release(1, first);
      const third = await worker.snapshot(2, false);
      expect(Buffer.from(third.bytes).toString('utf8')).toBe(secondText);
      expect(Buffer.from(first.bytes.buffer, 0, third.bytes.length).toString('utf8')).toBe(secondText);
    } finally {
      await worker.close();
    }
  });
});

