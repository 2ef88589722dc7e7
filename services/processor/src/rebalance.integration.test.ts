/**
 * Partitions moving between processors change nothing: a second processor joins the group
 * mid-stream, takes over partitions (restoring their snapshots), and leaves again; the totals equal
 * those of a processor that ran alone. Both write to the same ClickHouse, as in production.
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

describe('rebalance', () => {
  it('gives the same totals when a second processor joins and leaves mid-stream', { timeout: 600_000 }, async () => {
    const setup: ProcessorEnv = await processorEnv(4, { PROCESSOR_SNAPSHOT_INTERVAL_MS: '1000', PROCESSOR_SESSION_TIMEOUT_MS: '6000' });
    cleanups.push(() => setup.cleanup());
    const events = workload({ seed: 7, pageViews: 400, eventsPerPageView: 60, baseMs: Date.now() - 5 * 60_000 });
    const third = Math.floor(events.length / 3);

    const first: Processor = await startTestProcessor({ ...setup.env, PROCESSOR_ID: 'first' });
    cleanups.push(() => first.stop());
    await produceEvents(setup.kafka, setup.topic, events.slice(0, third));
    const sql = sqlOf(first);
    const applied = async (): Promise<number> => Number((await sql(`SELECT sum(events) AS n FROM ${setup.database}.processed_ranges`))[0]?.['n'] ?? 0);
    await eventually('the first processor at work', async () => ((await applied()) > 0 ? true : undefined), 60_000);

    // A second member joins: the group rebalances and it takes some partitions over.
    const second: Processor = await startTestProcessor({ ...setup.env, PROCESSOR_ID: 'second' });
    await produceEvents(setup.kafka, setup.topic, events.slice(third, 2 * third));
    const writers = async (): Promise<string[]> =>
      (await sql(`SELECT DISTINCT processor_id AS id FROM ${setup.database}.processed_ranges ORDER BY id`)).map((r) => String(r['id']));
    await eventually('the second processor writing results', async () => ((await writers()).includes('second') ? true : undefined), 120_000);

    // …and leaves again: the first gets every partition back.
    await second.stop();
    await produceEvents(setup.kafka, setup.topic, events.slice(2 * third));
    const end = await topicEnd(setup.kafka, setup.topic);
    await caughtUp(sql, setup.database, end, first.httpUrl);

    // The reference: one processor alone over the same log, into another database.
    const alone: Processor = await startTestProcessor({
      ...setup.env,
      PROCESSOR_GROUP_ID: `${setup.env['PROCESSOR_GROUP_ID']}_alone`,
      CLICKHOUSE_DATABASE: `${setup.database}_alone`,
    });
    cleanups.push(() => alone.stop());
    await caughtUp(sqlOf(alone), `${setup.database}_alone`, end, alone.httpUrl);

    const [shared, reference] = await Promise.all([resultsOf(sql, setup.database), resultsOf(sqlOf(alone), `${setup.database}_alone`)]);
    expect(reference.impressions.length).toBeGreaterThan(400);
    expect(shared.impressions).toEqual(reference.impressions);
    expect(shared.minutes).toEqual(reference.minutes);

    // Both members wrote results, and partitions moved through snapshots.
    expect(await writers()).toEqual(['first', 'second']);
    const snapshotters = await sql(`SELECT DISTINCT processor_id AS id FROM ${setup.database}.processor_snapshots ORDER BY id`);
    expect(snapshotters.map((r) => r['id'])).toEqual(['first', 'second']);
  });
});
