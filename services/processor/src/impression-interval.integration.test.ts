/**
 * An open page view's minute rows (billed time) are written at every write, its impression rows
 * once per PROCESSOR_IMPRESSION_INTERVAL_MS: in between they are held back, which the processor's
 * `dwell_processor_impressions_held` says. A partition that goes quiet writes them at its next turn
 * without a new record; a processor that stops writes them before it goes.
 */
import { inject } from 'vitest';
import { afterAll, describe, expect, it } from 'vitest';
import { openWarehouse } from '@dwell/warehouse';
import { eventually } from '../../../test/support.js';
import { WORKED_EXAMPLES, exampleEvents } from '../../../test/worked-examples.js';
import { auditCovers, caughtUp, impressionsHeld, processorEnv, produceEvents, sqlOf, startTestProcessor, topicEnd, type ProcessorEnv, type Rows } from '../../../test/processor-harness.js';

const cleanups: Array<() => Promise<unknown>> = [];

afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
});

// "6: nothing after the last tick": 3,000 ms in view, and no event that would close the page view.
const EXAMPLE = WORKED_EXAMPLES.find((example) => example.name.startsWith('6:'));
const BASE = Date.now() - 2 * 60_000;

async function openPageView(setup: ProcessorEnv, id: string): Promise<Map<number, bigint>> {
  if (EXAMPLE === undefined) throw new Error('worked example 6 is missing');
  await produceEvents(setup.kafka, setup.topic, exampleEvents(EXAMPLE, id, 'ad-held', BASE));
  return topicEnd(setup.kafka, setup.topic);
}

const billedMs = async (sql: (query: string) => Promise<Rows>, db: string, id: string): Promise<number> =>
  Number((await sql(`SELECT sum(viewable_ms) AS ms FROM ${db}.exposure_minutes FINAL WHERE page_view_id = '${id}'`))[0]?.['ms'] ?? 0);

const impressionRows = async (sql: (query: string) => Promise<Rows>, db: string, id: string): Promise<Rows> =>
  sql(`SELECT credited_ms, viewable_ms, billable FROM ${db}.impressions FINAL WHERE page_view_id = '${id}'`);

describe('impression rows of open page views', () => {
  it('are held back while the minute rows land, and written when the processor stops', { timeout: 180_000 }, async () => {
    const setup = await processorEnv(1, { PROCESSOR_IMPRESSION_INTERVAL_MS: '600000' });
    cleanups.push(() => setup.cleanup());
    const processor = await startTestProcessor(setup.env);
    let stopped = false;
    cleanups.push(async () => (stopped ? undefined : processor.stop()));
    const end = await openPageView(setup, 'pv-held');
    const sql = sqlOf(processor);
    await auditCovers(sql, setup.database, end, 60_000);

    // Billed time is written; the impression row waits for its turn, ten minutes away.
    expect(await billedMs(sql, setup.database, 'pv-held')).toBe(3000);
    expect(await impressionRows(sql, setup.database, 'pv-held')).toEqual([]);
    // The metric follows the write it counts: once that write's answer is handled.
    expect(await eventually('the held-back page view counted', async () => ((await impressionsHeld(processor.httpUrl)) > 0 ? impressionsHeld(processor.httpUrl) : undefined), 10_000)).toBe(1);

    await processor.stop();
    stopped = true;
    const url = inject('clickhouseUrl');
    const reader = await openWarehouse({
      url: url === '' ? undefined : url,
      username: inject('clickhouseUser'),
      password: inject('clickhousePassword'),
      database: setup.database,
      dataDir: setup.dataDir,
    });
    try {
      const read = async (query: string): Promise<Rows> => (await reader.client.query({ query, format: 'JSONEachRow' })).json<Record<string, unknown>>();
      expect(await impressionRows(read, setup.database, 'pv-held')).toEqual([{ credited_ms: 3000, viewable_ms: 3000, billable: 1 }]);
    } finally {
      // Embedded, a process holds one data folder at a time.
      await reader.close();
    }
  });

  it('are written at the partition\'s next turn when no record comes', { timeout: 180_000 }, async () => {
    const setup = await processorEnv(1, { PROCESSOR_IMPRESSION_INTERVAL_MS: '1500' });
    cleanups.push(() => setup.cleanup());
    const processor = await startTestProcessor(setup.env);
    cleanups.push(() => processor.stop());
    const end = await openPageView(setup, 'pv-quiet');
    const sql = sqlOf(processor);
    // Every record written and nothing held back: the last write was one of held-back rows alone.
    await caughtUp(sql, setup.database, end, processor.httpUrl, 60_000);
    expect(await billedMs(sql, setup.database, 'pv-quiet')).toBe(3000);
    expect(await impressionRows(sql, setup.database, 'pv-quiet')).toEqual([{ credited_ms: 3000, viewable_ms: 3000, billable: 1 }]);
    // The write of held-back rows alone covers no offsets: the audit trail has one range per record write.
    const ranges = await sql(`SELECT count() AS n, sum(events) AS events FROM ${setup.database}.processed_ranges`);
    expect(Number(ranges[0]?.['events'])).toBe(Number(end.get(0) ?? 0n));
  });
});
