/**
 * The worked examples of the exposure rules, produced to Kafka as stored events, come out of
 * `dwell billing` with exactly the rules' milliseconds: Kafka → processor → ClickHouse → CLI.
 */
import { execFile } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Processor } from './processor.js';
import { WORKED_EXAMPLES, exampleEvents } from '../../../test/worked-examples.js';
import { caughtUp, processorEnv, produceEvents, sqlOf, startTestProcessor, topicEnd, type ProcessorEnv } from '../../../test/processor-harness.js';

const cli = fileURLToPath(new URL('../../cli/bin/dwell.js', import.meta.url));
const run = promisify(execFile);
// A whole minute plus 10 s, so every example's time lies in a known pair of minutes.
const BASE = Math.floor(Date.now() / 60_000) * 60_000 - 30 * 60_000 + 10_000;

let setup: ProcessorEnv;
let processor: Processor;

beforeAll(async () => {
  setup = await processorEnv(3);
  processor = await startTestProcessor(setup.env);
});

afterAll(async () => {
  await processor?.stop();
  await setup?.cleanup();
});

const billing = async (...args: string[]): Promise<Array<Record<string, unknown>>> => {
  const { stdout } = await run(process.execPath, [cli, 'billing', '--processor', processor.httpUrl, '--format', 'json', ...args], {
    env: { ...process.env, CLICKHOUSE_URL: '' },
  });
  return JSON.parse(stdout) as Array<Record<string, unknown>>;
};

describe('worked examples through Kafka, the processor and ClickHouse', () => {
  it('bills each example exactly, per ad, as dwell billing reports it', async () => {
    const events = WORKED_EXAMPLES.flatMap((example, i) => exampleEvents(example, `pv-worked-${i}`, `ad-${i}`, BASE + i * 20_000));
    await produceEvents(setup.kafka, setup.topic, events);
    const expected = Object.fromEntries(WORKED_EXAMPLES.map((example, i) => [`ad-${i}`, example.billableMs]));
    const from = String(BASE - 60_000);
    const to = String(BASE + 60 * 60_000);

    // Once the audit trail covers every offset, the results of every event are written (the
    // ranges are stored after the rows); an ad seen earlier may still show a page view's first
    // events only, so waiting for the ads to appear is not enough.
    await caughtUp(sqlOf(processor), setup.database, await topicEnd(setup.kafka, setup.topic), processor.httpUrl, 60_000);
    const rows = await billing('--by', 'ad', '--from', from, '--to', to);
    expect(rows.map((r) => r['impressions'])).toEqual(WORKED_EXAMPLES.map(() => 1));
    expect(Object.fromEntries(rows.map((r) => [r['key'], r['billable_ms']]))).toEqual(expected);

    // Example 8 is flagged and bills 0; what it would have billed is shown separately.
    const flagged = rows.find((r) => r['key'] === `ad-${WORKED_EXAMPLES.length - 1}`);
    expect(flagged).toMatchObject({ flagged_impressions: 1, viewable_impressions: 0 });
    expect(flagged?.['viewable_ms_incl_flagged']).toBe(60_000);

    // The same total, by day and by campaign.
    const total = Object.values(expected).reduce((a, b) => a + b, 0);
    const byCampaign = await billing('--by', 'campaign', '--from', from, '--to', to);
    expect(byCampaign).toMatchObject([{ key: 'campaign-worked', billable_ms: total, viewable_impressions: 6, measurable_impressions: 8 }]);
    const byDay = await billing('--by', 'day', '--from', from, '--to', to);
    expect(byDay.reduce((sum, r) => sum + Number(r['billable_ms']), 0)).toBe(total);

    // Filters narrow the report.
    expect(await billing('--ad', 'ad-3', '--by', 'ad', '--from', from, '--to', to)).toMatchObject([{ key: 'ad-3', billable_ms: 1900 }]);
  });

  it.runIf(process.platform === 'linux')('exports the CPU time of each partition worker thread', async () => {
    const text = await (await fetch(`${processor.httpUrl}/metrics`)).text();
    const series = [...text.matchAll(/^dwell_processor_worker_cpu_seconds_total\{worker="(\d+)"\} (\S+)$/gm)];
    // One worker per core by default (at most 8), each of which has at least loaded its modules.
    expect(series.map((m) => Number(m[1]))).toEqual([...Array(Math.min(8, availableParallelism())).keys()]);
    for (const m of series) expect(Number(m[2])).toBeGreaterThan(0);
  });

  it('prints a table and CSV, and explains bad arguments', async () => {
    const table = await run(process.execPath, [cli, 'billing', '--processor', processor.httpUrl, '--by', 'campaign', '--from', String(BASE - 60_000)], {
      env: { ...process.env, CLICKHOUSE_URL: '' },
    });
    expect(table.stdout).toMatch(/^campaign\s+billable_seconds/m);
    const csv = await run(process.execPath, [cli, 'billing', '--processor', processor.httpUrl, '--format', 'csv', '--by', 'site', '--from', String(BASE - 60_000)], {
      env: { ...process.env, CLICKHOUSE_URL: '' },
    });
    const [header, ...lines] = csv.stdout.trimEnd().split('\n');
    expect(header).toMatch(/^site,billable_seconds,impressions,.*,billable_ms,measurable_incl_flagged,viewable_incl_flagged,viewable_ms_incl_flagged$/);
    // The exact milliseconds in CSV are the report's.
    const column = (name: string): string[] => lines.map((line) => line.split(',')[header?.split(',').indexOf(name) ?? -1] ?? '');
    const json = await billing('--by', 'site', '--from', String(BASE - 60_000));
    expect(column('billable_ms').map(Number)).toEqual(json.map((r) => r['billable_ms']));
    expect(column('viewable_ms_incl_flagged').map(Number)).toEqual(json.map((r) => r['viewable_ms_incl_flagged']));
    await expect(run(process.execPath, [cli, 'billing', '--by', 'planet'])).rejects.toMatchObject({ code: 2, stderr: expect.stringMatching(/--by must be one of/) });
  });

  it('answers a bad billing request with 400 and what is wrong', async () => {
    const ask = async (query: string): Promise<[number, unknown]> => {
      const response = await fetch(`${processor.httpUrl}/v1/billing?${query}`);
      return [response.status, await response.json()];
    };
    expect(await ask('from=0&to=1&by=planet')).toEqual([400, { error: 'by must be one of ad, campaign, site, user, day, hour' }]);
    expect(await ask('to=1')).toEqual([400, { error: 'from is required (Unix ms)' }]);
    expect(await ask('from=0&to=tomorrow')).toEqual([400, { error: 'to must be Unix ms, not "tomorrow"' }]);
    const [status, rows] = await ask(`from=${BASE - 60_000}&to=${BASE + 60 * 60_000}&by=campaign`);
    expect(status).toBe(200);
    expect(rows).toMatchObject([{ key: 'campaign-worked' }]);
  });
});
