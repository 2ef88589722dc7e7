/**
 * Deltas change nothing: a processor whose snapshots are a full one and deltas on it stops, and the
 * one that takes over resumes every partition from its full snapshot and deltas; the results equal
 * those of a processor that ran alone over the same log.
 */
import { afterAll, describe, expect, it } from 'vitest';
import type { Processor } from './processor.js';
import { caughtUp, processorEnv, produceEvents, resultsOf, sqlOf, startTestProcessor, topicEnd, type ProcessorEnv } from '../../../test/processor-harness.js';
import { eventually } from '../../../test/support.js';
import { workload } from '../../../test/workload.js';

const cleanups: Array<() => Promise<unknown>> = [];
afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
});

const PARTITIONS = 2;

describe('snapshot chains', () => {
  it('resume every partition from a full snapshot and the deltas on it, with the results of an uninterrupted run', { timeout: 600_000 }, async () => {
    // Snapshots often, and after each partition's first (full) one only deltas.
    const setup: ProcessorEnv = await processorEnv(PARTITIONS, {
      PROCESSOR_SNAPSHOT_INTERVAL_MS: '200',
      PROCESSOR_SNAPSHOT_DELTA_PERCENT: '1000000',
    });
    cleanups.push(() => setup.cleanup());
    const events = workload({ seed: 11, pageViews: 300, eventsPerPageView: 40, baseMs: Date.now() - 5 * 60_000 });
    const third = Math.floor(events.length / 3);
    const db = setup.database;

    const first: Processor = await startTestProcessor({ ...setup.env, PROCESSOR_ID: 'first' });
    cleanups.push(() => first.stop());
    const sql = sqlOf(first);
    const kinds = async (): Promise<Array<Record<string, unknown>>> =>
      sql(`SELECT partition, countIf(kind = 'full') AS full, countIf(kind = 'delta') AS deltas
           FROM ${db}.processor_snapshots GROUP BY partition ORDER BY partition`);
    // In slices, each once the one before is in a snapshot: a partition with nothing new is not snapshotted.
    const stored = async (): Promise<number[]> => {
      const counts: number[] = Array(PARTITIONS).fill(0);
      for (const r of await kinds()) counts[Number(r['partition'])] = Number(r['full']) + Number(r['deltas']);
      return counts;
    };
    for (let at = 0; at < third; at += 500) {
      const before = await stored();
      await produceEvents(setup.kafka, setup.topic, events.slice(at, Math.min(at + 500, third)));
      await eventually('a snapshot of the slice in every partition', async () =>
        (await stored()).every((n, p) => n > (before[p] ?? 0)) ? true : undefined, 120_000);
    }
    const rows = await kinds();
    expect(rows.map((r) => Number(r['full']))).toEqual(Array(PARTITIONS).fill(1));
    expect(rows.every((r) => Number(r['deltas']) > 0)).toBe(true);
    await produceEvents(setup.kafka, setup.topic, events.slice(third, 2 * third));
    await caughtUp(sql, db, await topicEnd(setup.kafka, setup.topic), first.httpUrl);
    // Stopping snapshots (a delta) and commits every partition.
    await first.stop();

    await produceEvents(setup.kafka, setup.topic, events.slice(2 * third));
    const end = await topicEnd(setup.kafka, setup.topic);
    const second: Processor = await startTestProcessor({ ...setup.env, PROCESSOR_ID: 'second' });
    cleanups.push(() => second.stop());
    const secondSql = sqlOf(second);
    await caughtUp(secondSql, db, end, second.httpUrl);
    const metrics = await (await fetch(`${second.httpUrl}/metrics`)).text();
    expect(metrics).toContain(`dwell_processor_snapshot_restores_total{kind="chain"} ${PARTITIONS}`);
    expect(metrics).not.toContain('dwell_processor_snapshot_restores_total{kind="full"}');
    // Each partition has its one full snapshot and the deltas on it, no other full one.
    for (const row of await sqlOf(second)(`SELECT partition, countIf(kind = 'full') AS full FROM ${db}.processor_snapshots GROUP BY partition`))
      expect(Number(row['full'])).toBeLessThanOrEqual(2);

    const alone: Processor = await startTestProcessor({
      ...setup.env,
      PROCESSOR_GROUP_ID: `${setup.env['PROCESSOR_GROUP_ID']}_alone`,
      CLICKHOUSE_DATABASE: `${db}_alone`,
      PROCESSOR_SNAPSHOT_DELTA_PERCENT: '0',
    });
    cleanups.push(() => alone.stop());
    await caughtUp(sqlOf(alone), `${db}_alone`, end, alone.httpUrl);
    const [resumed, reference] = await Promise.all([resultsOf(secondSql, db), resultsOf(sqlOf(alone), `${db}_alone`)]);
    expect(reference.impressions.length).toBeGreaterThan(300);
    expect(resumed.impressions).toEqual(reference.impressions);
    expect(resumed.minutes).toEqual(reference.minutes);
  });
});
