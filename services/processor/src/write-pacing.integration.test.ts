/**
 * A processor behind the log writes less often (write-pacing.ts), and the bill does not change.
 * 100,000 events wait in the log for seconds before two processors start: one paced (the default
 * PROCESSOR_MAX_FLUSH_INTERVAL_MS), one writing every PROCESSOR_FLUSH_INTERVAL_MS whatever its lag.
 * Both must land the same results; the paced one in at most two writes, the other in many.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { caughtUp, processorEnv, produceEvents, resultsOf, sqlOf, startTestProcessor, topicEnd } from '../../../test/processor-harness.js';
import { workload } from '../../../test/workload.js';
import type { Processor } from './processor.js';

const cleanups: Array<() => Promise<unknown>> = [];

afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
});

/** How long the records wait in the log before the processors start: the paced one writes every ≥ half of it. */
const BACKLOG_AGE_MS = 8_000;

describe('write pacing behind the log', () => {
  it('catches up in fewer writes with the same results', { timeout: 300_000 }, async () => {
    const setup = await processorEnv(1, { PROCESSOR_FLUSH_INTERVAL_MS: '50' });
    cleanups.push(() => setup.cleanup());
    const events = workload({ seed: 11, pageViews: 1000, eventsPerPageView: 102, baseMs: Date.now() - 10 * 60_000 });
    expect(events.length).toBeGreaterThanOrEqual(100_000);
    await produceEvents(setup.kafka, setup.topic, events);
    const end = await topicEnd(setup.kafka, setup.topic);
    await new Promise((resolve) => setTimeout(resolve, BACKLOG_AGE_MS));

    const start = async (name: string, extra: Record<string, string>): Promise<{ processor: Processor; database: string }> => {
      const database = `${setup.database}_${name}`;
      const processor = await startTestProcessor({
        ...setup.env,
        ...extra,
        PROCESSOR_GROUP_ID: `${setup.env['PROCESSOR_GROUP_ID']}_${name}`,
        CLICKHOUSE_DATABASE: database,
      });
      cleanups.push(() => processor.stop());
      return { processor, database };
    };
    const paced = await start('paced', {});
    const fixed = await start('fixed', { PROCESSOR_MAX_FLUSH_INTERVAL_MS: '50' });
    const pacedSql = sqlOf(paced.processor);
    const fixedSql = sqlOf(fixed.processor);
    await Promise.all([caughtUp(pacedSql, paced.database, end, paced.processor.httpUrl), caughtUp(fixedSql, fixed.database, end, fixed.processor.httpUrl)]);

    const writes = async (sql: typeof pacedSql, database: string): Promise<number> =>
      Number((await sql(`SELECT count() AS n FROM ${database}.processed_ranges FINAL`))[0]?.['n']);
    const pacedWrites = await writes(pacedSql, paced.database);
    const fixedWrites = await writes(fixedSql, fixed.database);
    // Behind by ≥ 8 s, the paced processor waits ≥ 4 s between writes; catching up takes about
    // a second here, so it writes once (twice if catching up took longer than the wait).
    expect(pacedWrites).toBeGreaterThanOrEqual(1);
    expect(pacedWrites).toBeLessThanOrEqual(2);
    // Writing every 50 ms, the other one writes many times over the same catch-up.
    expect(fixedWrites, `the fixed processor wrote ${fixedWrites} times`).toBeGreaterThan(2);

    const [pacedResults, fixedResults] = await Promise.all([resultsOf(pacedSql, paced.database), resultsOf(fixedSql, fixed.database)]);
    expect(pacedResults.impressions.length).toBeGreaterThan(1000);
    expect(pacedResults.minutes.length).toBeGreaterThan(1000);
    expect(pacedResults.impressions).toEqual(fixedResults.impressions);
    expect(pacedResults.minutes).toEqual(fixedResults.minutes);
  });
});
