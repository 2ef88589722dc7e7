/**
 * Crashes do not change the bill. 100,000 events of 1,000 page views are processed by a
 * `dwell processor` that is killed with SIGKILL at five random moments while events flow in and
 * restarted each time; its results must equal, to the millisecond, those of a processor that ran
 * through without interruption. The crashing one computes in a worker thread, the uninterrupted one
 * in its consumer thread, so both engines are held to the same bill.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { freePort } from '@dwell/kafka';
import type { Processor } from './processor.js';
import { caughtUp, processorEnv, produceEvents, resultsOf, sqlOf, startTestProcessor, topicEnd, type ProcessorEnv } from '../../../test/processor-harness.js';
import { eventually } from '../../../test/support.js';
import { prng, workload } from '../../../test/workload.js';

const cli = fileURLToPath(new URL('../../cli/bin/dwell.js', import.meta.url));
const SEED = Number(process.env['DWELL_TEST_SEED'] ?? Date.now() % 100_000);
const cleanups: Array<() => Promise<unknown>> = [];

afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
});

type Sql = (query: string) => Promise<Array<Record<string, unknown>>>;

const started = Date.now();
const progress = (line: string): void => void process.stderr.write(`[crash test +${((Date.now() - started) / 1000).toFixed(1)} s] ${line}\n`);

describe('crash recovery', () => {
  it(`gives the uninterrupted run's results after five kill -9s (seed ${SEED})`, { timeout: 600_000 }, async () => {
    const setup: ProcessorEnv = await processorEnv(4, { PROCESSOR_SNAPSHOT_INTERVAL_MS: '700', PROCESSOR_SESSION_TIMEOUT_MS: '6000' });
    cleanups.push(() => setup.cleanup());
    const events = workload({ seed: SEED, pageViews: 1000, eventsPerPageView: 102, baseMs: Date.now() - 5 * 60_000 });
    expect(events.length).toBeGreaterThanOrEqual(100_000);
    const chunks = Array.from({ length: 6 }, (_, i) => events.slice(Math.floor((i * events.length) / 6), Math.floor(((i + 1) * events.length) / 6)));

    // The crashing processor: a child process with its own database and data folder.
    const crashingDb = `${setup.database}_crash`;
    const port = await freePort();
    const crashingEnv = { ...process.env, ...setup.env, CLICKHOUSE_DATABASE: crashingDb, PROCESSOR_HTTP_PORT: String(port), CLICKHOUSE_DATA_DIR: `${setup.dataDir}/crashing`, PROCESSOR_WORKER_THREAD: 'true' };
    let child: ChildProcess | undefined;
    const startChild = (): void => {
      child = spawn(process.execPath, [cli, 'processor'], { env: crashingEnv, stdio: ['ignore', 'ignore', 'inherit'] });
    };
    cleanups.push(async () => child?.kill('SIGKILL'));
    const crashingSql: Sql = async (query) => {
      const response = await fetch(`http://127.0.0.1:${port}/v1/sql?query=${encodeURIComponent(query)}`);
      const body = (await response.json()) as Array<Record<string, unknown>> | { error: string };
      if (!Array.isArray(body)) throw new Error(body.error);
      return body;
    };

    const random = prng(SEED);
    const applied = async (): Promise<number> =>
      Number((await crashingSql(`SELECT sum(events) AS events FROM ${crashingDb}.processed_ranges`))[0]?.['events'] ?? 0);
    startChild();
    let kills = 0;
    let seen = 0;
    for (const chunk of chunks.slice(0, 5)) {
      await produceEvents(setup.kafka, setup.topic, chunk);
      // Kill it without warning while it works: after it made progress since its restart.
      const before = seen;
      seen = await eventually('progress after the restart', async () => {
        const now = await applied().catch(() => undefined);
        return now !== undefined && now > before ? now : undefined;
      }, 120_000, 50);
      const wait = Math.floor(random() * 1500);
      await new Promise((resolve) => setTimeout(resolve, wait));
      const exited = new Promise((resolve) => child?.once('exit', resolve));
      child?.kill('SIGKILL');
      await exited;
      kills += 1;
      progress(`kill -9 #${kills} ${wait} ms after progress was seen; events applied so far (redone work included): ${seen}`);
      startChild();
    }
    await produceEvents(setup.kafka, setup.topic, chunks[5] ?? []);
    const end = await topicEnd(setup.kafka, setup.topic);
    await eventually('the processor serving', async () => ((await crashingSql('SELECT 1 AS ok'))[0]?.['ok'] === 1 ? true : undefined), 60_000, 100);
    progress('all events produced; waiting for the restarted processor to catch up');
    await caughtUp(crashingSql, crashingDb, end, `http://127.0.0.1:${port}`);
    expect(kills).toBe(5);
    progress('crashing processor caught up; running the uninterrupted one');

    // The uninterrupted processor: in this process, its own group and database, the same log, and
    // the exposure core in its consumer thread where the crashing one used a worker thread.
    const steady: Processor = await startTestProcessor({ ...setup.env, PROCESSOR_GROUP_ID: `${setup.env['PROCESSOR_GROUP_ID']}_steady`, PROCESSOR_WORKER_THREAD: 'false' });
    cleanups.push(() => steady.stop());
    const steadySql = sqlOf(steady);
    await caughtUp(steadySql, setup.database, end, steady.httpUrl);
    progress('uninterrupted processor caught up; comparing');

    const [steadyResults, crashedResults] = await Promise.all([resultsOf(steadySql, setup.database), resultsOf(crashingSql, crashingDb)]);
    expect(steadyResults.impressions.length).toBeGreaterThan(1000);
    expect(steadyResults.minutes.length).toBeGreaterThan(1000);
    expect(crashedResults.impressions).toEqual(steadyResults.impressions);
    expect(crashedResults.minutes).toEqual(steadyResults.minutes);
    child?.kill('SIGTERM');
  });
});
