/**
 * ClickHouse failing under the processor loses nothing and doubles nothing. Writes fail before
 * anything is stored (unavailable), after only some tables were written (a failure mid-write), and
 * after everything was stored but the answer was lost (a timeout after success). The processor
 * retries each with the same deduplication tokens: with merges stopped, the raw row counts show
 * that no block was stored twice, and the results equal a run without faults.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { ExposureStore, NO_ROWS, type ResultsWrite } from '@dwell/warehouse';
import type { Processor } from './processor.js';
import { caughtUp, processorEnv, produceEvents, resultsOf, sqlOf, startTestProcessor, topicEnd, type ProcessorEnv } from '../../../test/processor-harness.js';
import { workload } from '../../../test/workload.js';

const cleanups: Array<() => Promise<unknown>> = [];
afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
});

/** A store that fails on purpose, in the three ways a ClickHouse write can fail. */
class FaultyStore extends ExposureStore {
  readonly faults = { unavailable: 0, midWrite: 0, lostAnswer: 0 };
  /** Rows of each distinct write (by token) that reached ClickHouse at least once. */
  readonly landed = new Map<string, { impressions: number; minutes: number }>();
  private writes = 0;
  private readonly inner: ExposureStore;

  constructor(inner: ExposureStore) {
    super({ client: undefined, database: '', writer: () => undefined } as never);
    this.inner = inner;
  }

  override async writeResults(write: ResultsWrite): Promise<void> {
    this.writes += 1;
    const kind = this.writes % 4;
    if (kind === 1 && !this.landed.has(write.token)) {
      this.faults.unavailable += 1;
      throw new Error('injected: ClickHouse unavailable (connection refused)');
    }
    if (kind === 2 && !this.landed.has(write.token) && write.minutes.rows > 0) {
      // Only the first table is written, then the connection drops.
      await this.inner.writeResults({ ...write, minutes: NO_ROWS, ranges: [] });
      this.landed.set(write.token, { impressions: write.impressions.rows, minutes: 0 });
      this.faults.midWrite += 1;
      throw new Error('injected: connection reset during the write');
    }
    await this.inner.writeResults(write);
    this.landed.set(write.token, { impressions: write.impressions.rows, minutes: write.minutes.rows });
    if (kind === 3 && this.faults.lostAnswer < 20) {
      this.faults.lostAnswer += 1;
      throw new Error('injected: timeout after the write succeeded');
    }
  }

  override saveSnapshot(...args: Parameters<ExposureStore['saveSnapshot']>): ReturnType<ExposureStore['saveSnapshot']> {
    return this.inner.saveSnapshot(...args);
  }
  override latestSnapshot(...args: Parameters<ExposureStore['latestSnapshot']>): ReturnType<ExposureStore['latestSnapshot']> {
    return this.inner.latestSnapshot(...args);
  }
  override pruneSnapshots(...args: Parameters<ExposureStore['pruneSnapshots']>): ReturnType<ExposureStore['pruneSnapshots']> {
    return this.inner.pruneSnapshots(...args);
  }
}

describe('ClickHouse failures', () => {
  it('retries unavailable, half-done and answered-late writes without losing or doubling a row', { timeout: 600_000 }, async () => {
    const setup: ProcessorEnv = await processorEnv(3, { PROCESSOR_FLUSH_INTERVAL_MS: '50' });
    cleanups.push(() => setup.cleanup());
    let faulty: FaultyStore | undefined;
    const processor: Processor = await startTestProcessor(setup.env, {
      store: (store) => (faulty = new FaultyStore(store)),
    });
    cleanups.push(() => processor.stop());
    const sql = sqlOf(processor);
    // Keep every stored block as it is, so duplicates would stay visible in the raw counts.
    for (const table of ['impressions', 'exposure_minutes']) {
      await processor.warehouse.client.command({ query: `SYSTEM STOP MERGES ${setup.database}.${table}` });
    }

    const events = workload({ seed: 11, pageViews: 300, eventsPerPageView: 40, baseMs: Date.now() - 5 * 60_000 });
    for (let i = 0; i < 6; i++) {
      await produceEvents(setup.kafka, setup.topic, events.slice((i * events.length) / 6, ((i + 1) * events.length) / 6));
      await new Promise((resolve) => setTimeout(resolve, 300));
    }
    const end = await topicEnd(setup.kafka, setup.topic);
    await caughtUp(sql, setup.database, end, processor.httpUrl);
    expect(faulty?.faults.unavailable).toBeGreaterThan(0);
    expect(faulty?.faults.midWrite).toBeGreaterThan(0);
    expect(faulty?.faults.lostAnswer).toBeGreaterThan(0);

    // Nothing doubled: each distinct write's rows are stored exactly once.
    const landed = [...(faulty?.landed.values() ?? [])];
    const stored = async (table: string): Promise<number> => Number((await sql(`SELECT count() AS n FROM ${setup.database}.${table}`))[0]?.['n']);
    expect(await stored('impressions')).toBe(landed.reduce((sum, w) => sum + w.impressions, 0));
    expect(await stored('exposure_minutes')).toBe(landed.reduce((sum, w) => sum + w.minutes, 0));

    // Nothing lost: the results equal a run without faults over the same log.
    const clean: Processor = await startTestProcessor({
      ...setup.env,
      PROCESSOR_GROUP_ID: `${setup.env['PROCESSOR_GROUP_ID']}_clean`,
      CLICKHOUSE_DATABASE: `${setup.database}_clean`,
    });
    cleanups.push(() => clean.stop());
    await caughtUp(sqlOf(clean), `${setup.database}_clean`, end, clean.httpUrl);
    const [withFaults, withoutFaults] = await Promise.all([resultsOf(sql, setup.database), resultsOf(sqlOf(clean), `${setup.database}_clean`)]);
    expect(withoutFaults.impressions.length).toBeGreaterThan(300);
    expect(withFaults.impressions).toEqual(withoutFaults.impressions);
    expect(withFaults.minutes).toEqual(withoutFaults.minutes);
  });
});
