/**
 * `dwell replay` and `dwell export` against a real Kafka broker and ClickHouse (embedded chDB, or
 * the server the integration setup names), run as child processes for their exit codes.
 *
 * The ledger: three waves of page views spread over 2.5 hours of record time (Kafka timestamps =
 * recv_ms, as the gateway writes them), billed by a `dwell processor` child that is killed with
 * SIGKILL three times while it works.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createProducer, ensureTopics, freePort, type Kafka } from '@dwell/kafka';
import { encodePageEvent, type PageEvent } from '@dwell/protocol';
import type { Processor } from '@dwell/processor';
import { caughtUp, processorEnv, sqlOf, startTestProcessor, topicEnd, type ProcessorEnv, type Rows } from '../../../../test/processor-harness.js';
import { eventually, uniqueName } from '../../../../test/support.js';
import { workload } from '../../../../test/workload.js';
import type { ReplayReport } from './report.js';

const cli = fileURLToPath(new URL('../../bin/dwell.js', import.meta.url));
const started = Date.now();
const progress = (line: string): void => void process.stderr.write(`[replay test +${((Date.now() - started) / 1000).toFixed(1)} s] ${line}\n`);
const MIN = 60_000;
const NOW = Date.now();
const embedded = inject('clickhouseUrl') === '';

/** Wave A long before the ranges audited, wave B the main one, wave C recent. */
const WAVES = {
  a: { seed: 11, pageViews: 150, eventsPerPageView: 60, baseMs: NOW - 150 * MIN, spreadMs: 10 * MIN },
  b: { seed: 12, pageViews: 400, eventsPerPageView: 100, baseMs: NOW - 40 * MIN, spreadMs: 2 * MIN },
  c: { seed: 13, pageViews: 100, eventsPerPageView: 30, baseMs: NOW - 10 * MIN, spreadMs: MIN },
};
const events: PageEvent[] = Object.values(WAVES)
  .flatMap((w) => workload(w))
  .sort((a, b) => a.recv_ms - b.recv_ms || (a.event.page_view_id < b.event.page_view_id ? -1 : 1));

let setup: ProcessorEnv;
let crashingDb: string;
let crashingEnv: Record<string, string>;
let port: number;
let child: ChildProcess | undefined;
const cleanups: Array<() => Promise<unknown>> = [];

async function produce(kafka: Kafka, topic: string, list: readonly PageEvent[]): Promise<void> {
  const producer = createProducer(kafka);
  await producer.connect();
  try {
    for (let i = 0; i < list.length; i += 2000) {
      await producer.send({
        topic,
        acks: -1,
        // The record timestamp is the gateway's clock at produce time: recv_ms.
        messages: list.slice(i, i + 2000).map((e) => ({ key: e.event.page_view_id, value: encodePageEvent(e), timestamp: String(e.recv_ms) })),
      });
    }
  } finally {
    await producer.disconnect();
  }
}

const sqlAt =
  (url: string) =>
  async (query: string): Promise<Rows> => {
    const response = await fetch(`${url}/v1/sql?query=${encodeURIComponent(query)}`);
    const body = (await response.json()) as Rows | { error: string };
    if (!Array.isArray(body)) throw new Error(body.error);
    return body;
  };

function startChild(): void {
  child = spawn(process.execPath, [cli, 'processor'], { env: { ...process.env, ...crashingEnv }, stdio: ['ignore', 'ignore', 'inherit'] });
}

async function stopChild(signal: NodeJS.Signals): Promise<void> {
  if (child === undefined || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child?.once('exit', resolve));
  child.kill(signal);
  await exited;
}

interface Run {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs `dwell <args>` as a child process. */
function dwell(args: readonly string[], env: Record<string, string> = crashingEnv): Promise<Run> {
  return new Promise((resolve, reject) => {
    const run = spawn(process.execPath, [cli, ...args], { env: { ...process.env, ...env, LOG_LEVEL: 'warn' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    run.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    run.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    run.once('error', reject);
    run.once('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

const iso = (ms: number): string => new Date(ms).toISOString();
const processorUrl = (): string => `http://127.0.0.1:${port}`;

async function replayReport(args: readonly string[], env?: Record<string, string>): Promise<{ run: Run; report: ReplayReport }> {
  const run = await dwell(['replay', '--format', 'json', ...args], env);
  if (run.code !== 0 && run.code !== 3 && run.code !== 5) throw new Error(`dwell replay exited ${run.code}: ${run.stderr}`);
  return { run, report: JSON.parse(run.stdout) as ReplayReport };
}

/** The billed impressions, normalised for comparison with `dwell compute` output. */
async function billedImpressions(sql: (q: string) => Promise<Rows>, db: string, where = '1'): Promise<string[]> {
  const rows = await sql(
    `SELECT page_view_id, impression_id, ad_id, user_id, measurable, viewable, billable, toString(viewable_ms) AS viewable_ms, toString(credited_ms) AS credited_ms, flags
     FROM ${db}.impressions FINAL WHERE ${where} ORDER BY page_view_id, impression_id`,
  );
  return rows.map((r) => JSON.stringify([r['page_view_id'], r['impression_id'], r['ad_id'], r['user_id'], Boolean(r['measurable']), Boolean(r['viewable']), Boolean(r['billable']), Number(r['viewable_ms']), Number(r['credited_ms']), r['flags']]));
}

beforeAll(async () => {
  setup = await processorEnv(4, { PROCESSOR_SNAPSHOT_INTERVAL_MS: '700', PROCESSOR_SESSION_TIMEOUT_MS: '6000' });
  cleanups.push(() => setup.cleanup());
  crashingDb = `${setup.database}_crash`;
  port = await freePort();
  crashingEnv = { ...setup.env, CLICKHOUSE_DATABASE: crashingDb, PROCESSOR_HTTP_PORT: String(port), CLICKHOUSE_DATA_DIR: join(setup.dataDir, 'crashing') };
  cleanups.push(() => stopChild('SIGKILL'));
  const sql = sqlAt(processorUrl());
  const applied = async (): Promise<number> => Number((await sql(`SELECT sum(events) AS events FROM ${crashingDb}.processed_ranges`))[0]?.['events'] ?? 0);

  startChild();
  const chunks = 4;
  let seen = 0;
  for (let i = 0; i < chunks; i++) {
    await produce(setup.kafka, setup.topic, events.slice(Math.floor((i * events.length) / chunks), Math.floor(((i + 1) * events.length) / chunks)));
    if (i === chunks - 1) break;
    const before = seen;
    seen = await eventually('progress after the restart', async () => {
      const now = await applied().catch(() => undefined);
      return now !== undefined && now > before ? now : undefined;
    }, 60_000, 50);
    await new Promise((resolve) => setTimeout(resolve, 200 + i * 300));
    await stopChild('SIGKILL');
    progress(`kill -9 #${i + 1}; events applied so far (redone work included): ${seen}`);
    startChild();
  }
  const end = await topicEnd(setup.kafka, setup.topic);
  await eventually('the processor serving', async () => ((await sql('SELECT 1 AS ok'))[0]?.['ok'] === 1 ? true : undefined), 60_000, 100);
  await caughtUp(sql, crashingDb, end, processorUrl());
  progress(`${events.length} events produced and billed by a processor killed 3 times`);
}, 180_000);

afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
});

describe('dwell replay', () => {
  it('finds no difference over a stream that saw processor crashes, and gives the same checksums twice', async () => {
    const args = ['--from', iso(NOW - 3 * 60 * MIN), '--to', iso(NOW + MIN), '--processor', processorUrl()];
    const first = await replayReport(args);
    expect(first.run.code).toBe(0);
    const m = first.report.manifest;
    expect(first.report.verdict).toBe('equal');
    expect(first.report.differences).toEqual([]);
    expect(m.counts.records).toBe(events.length);
    expect(m.counts.pageViewsInScope).toBe(650);
    expect(m.counts.page_views_compared).toBe(650);
    expect(m.counts.impressions_replayed).toBeGreaterThan(1000);
    expect(m.counts.impressions_billed).toBe(m.counts.impressions_replayed);
    expect(m.counts.billable_ms_replayed).toBeGreaterThan(0);
    expect(m.checksums.billed).toEqual(m.checksums.replay);
    expect(m.source.clickhouse.mode).toBe(embedded ? 'processor' : 'server');
    expect(m.rules.version).toBe(1);
    expect(m.schemas['PageEvent']?.fingerprint).toMatch(/^[0-9a-f]{16}$/);
    expect(m.partitions.map((p) => p.start_offset)).toEqual(['0', '0', '0', '0']);
    expect(first.run.stderr).toMatch(/replay: 100\.0%/);

    const second = await replayReport(args);
    expect(second.report.manifest.replay_id).not.toBe(m.replay_id);
    expect(second.report.manifest.checksums).toEqual(m.checksums);
    progress(`full replay: ${m.counts.records} records at ${m.counts.events_per_second} events/s; report sha256 ${m.checksums.report}`);
  });

  it('audits a range that cuts through page views: only those whose first event lies in it, read from the lead-in', async () => {
    const fromMs = WAVES.b.baseMs + 60_000;
    const toMs = WAVES.b.baseMs + 90_000;
    const { run, report } = await replayReport(['--from', iso(fromMs), '--to', iso(toMs), '--processor', processorUrl(), '--report', join(setup.dataDir, 'cut.json')]);
    expect(run.code).toBe(0);
    const firstRecv = new Map<string, number>();
    for (const e of events) if (!firstRecv.has(e.event.page_view_id)) firstRecv.set(e.event.page_view_id, e.recv_ms);
    const expected = [...firstRecv.values()].filter((t) => t >= fromMs && t < toMs).length;
    const spanning = [...firstRecv.entries()].filter(([, t]) => t < fromMs && t >= WAVES.b.baseMs).length;
    expect(expected).toBeGreaterThan(20);
    expect(spanning).toBeGreaterThan(20); // wave B page views that began before `from` and run through it
    const m = report.manifest;
    expect(m.counts.pageViewsInScope).toBe(expected);
    expect(m.counts.page_views_compared).toBe(expected);
    expect(report.verdict).toBe('equal');
    // The lead-in start skips wave A; the partitions end once nothing can change the range (wave C).
    expect(m.scope.read_from_ms).toBe(fromMs - 75 * MIN);
    expect(m.partitions.every((p) => BigInt(p.start_offset) > 0n && p.stopped === 'complete')).toBe(true);
    expect(m.counts.records).toBeLessThan(events.length);
    expect(JSON.parse(readFileSync(join(setup.dataDir, 'cut.json'), 'utf8'))).toEqual(report);
    // Totals per (ad, day) of exactly those page views.
    const billed = await sqlAt(processorUrl())(
      `SELECT sum(viewable_ms) AS ms FROM ${crashingDb}.exposure_minutes FINAL WHERE page_view_id IN (${[...firstRecv].filter(([, t]) => t >= fromMs && t < toMs).map(([id]) => `'${id}'`).join(',')})`,
    );
    expect(report.ad_day_totals.reduce((sum, t) => sum + t.billable_ms, 0)).toBe(Number(billed[0]?.['ms']));
  });

  it('exports the events of a range (Avro and NDJSON) that `dwell compute` recomputes to the billed numbers', async () => {
    const fromMs = WAVES.b.baseMs;
    const toMs = WAVES.c.baseMs;
    const ids = new Map<string, number>();
    for (const e of events) if (!ids.has(e.event.page_view_id)) ids.set(e.event.page_view_id, e.recv_ms);
    const inRange = [...ids].filter(([, t]) => t >= fromMs && t < toMs).map(([id]) => `'${id}'`);
    const billed = await billedImpressions(sqlAt(processorUrl()), crashingDb, `page_view_id IN (${inRange.join(',')})`);
    expect(billed.length).toBeGreaterThan(500);
    for (const format of ['avro', 'ndjson'] as const) {
      const out = join(setup.dataDir, `export.${format}`);
      const exported = await dwell(['export', '--from', iso(fromMs), '--to', iso(toMs), '--out', out, '--format', format]);
      expect(exported.code, exported.stderr).toBe(0);
      expect(exported.stdout).toMatch(new RegExp(`exported \\d+ events of ${inRange.length} page views`));
      const head = readFileSync(out).subarray(0, 4);
      expect(head.equals(Buffer.from('Obj\u0001', 'latin1'))).toBe(format === 'avro');
      const computed = await dwell(['compute', '--in', out, '--format', 'json']);
      expect(computed.code, computed.stderr).toBe(0);
      const result = JSON.parse(computed.stdout) as { problems: unknown[]; impressions: Array<Record<string, unknown>> };
      expect(result.problems).toEqual([]);
      const recomputed = result.impressions.map((r) =>
        JSON.stringify([r['page_view_id'], r['impression_id'], r['ad_id'], r['user_id'], r['measurable'], r['viewable'], r['billable'], r['viewable_ms'], r['credited_ms'], r['flags']]),
      );
      expect(recomputed).toEqual(billed);
    }
    // An ad filter takes whole page views that show the ad.
    const out = join(setup.dataDir, 'ad.avro');
    const exported = await dwell(['export', '--from', iso(fromMs), '--to', iso(toMs), '--ad', 'ad-3', '--out', out]);
    expect(exported.code, exported.stderr).toBe(0);
    const withAd = await sqlAt(processorUrl())(`SELECT uniqExact(page_view_id) AS n FROM ${crashingDb}.impressions FINAL WHERE ad_id = 'ad-3' AND page_view_id IN (${inRange.join(',')})`);
    expect(exported.stdout).toMatch(new RegExp(`of ${Number(withAd[0]?.['n'])} page views`));
    const computed = JSON.parse((await dwell(['compute', '--in', out, '--format', 'json'])).stdout) as { impressions: Array<Record<string, unknown>> };
    const pageViews = new Set(computed.impressions.map((r) => r['page_view_id']));
    expect(pageViews.size).toBe(Number(withAd[0]?.['n']));
    expect(computed.impressions.some((r) => r['ad_id'] !== 'ad-3')).toBe(true); // the other impressions of those page views come along
  });

  it('finds a billed row changed in ClickHouse and exits with 3', async () => {
    // A second processor in this process, its own group and database: its client can write.
    const steady: Processor = await startTestProcessor({ ...setup.env, PROCESSOR_GROUP_ID: uniqueName('steady') });
    cleanups.push(() => steady.stop());
    const sql = sqlOf(steady);
    await caughtUp(sql, setup.database, await topicEnd(setup.kafka, setup.topic), steady.httpUrl);
    const [row] = await sql(`SELECT * FROM ${setup.database}.impressions FINAL WHERE billable AND page_view_id LIKE 'pv-12-%' ORDER BY page_view_id, impression_id LIMIT 1`);
    expect(row).toBeDefined();
    const original = Number(row?.['viewable_ms']);
    await steady.warehouse.client.insert({
      table: `${setup.database}.impressions`,
      values: [{ ...row, viewable_ms: original + 1000, version: Number(row?.['version']) + 1 }],
      format: 'JSONEachRow',
    });
    const env = { ...setup.env };
    const { run, report } = await replayReport(['--from', iso(WAVES.b.baseMs), '--to', iso(WAVES.c.baseMs), '--processor', steady.httpUrl], env);
    expect(run.code).toBe(3);
    expect(report.verdict).toBe('different');
    expect(report.differences).toEqual([
      expect.objectContaining({
        kind: 'impression',
        status: 'changed',
        key: { site_id: row?.['site_id'], page_view_id: row?.['page_view_id'], impression_id: row?.['impression_id'] },
        fields: [{ field: 'viewable_ms', replay: original, billed: original + 1000 }],
      }),
    ]);
    expect(report.manifest.checksums.billed.impressions).not.toBe(report.manifest.checksums.replay.impressions);
    const text = await dwell(['replay', '--from', iso(WAVES.b.baseMs), '--to', iso(WAVES.c.baseMs), '--processor', steady.httpUrl], env);
    expect(text.code).toBe(3);
    expect(text.stdout).toContain('DIFFERENT');
    expect(text.stdout).toContain(`viewable_ms: log ${original} vs billed ${original + 1000}`);
  });

  it('fails with exit code 4 when retention has deleted records of the range', async () => {
    const topic = uniqueName('events_expired');
    await ensureTopics(setup.kafka, [{ topic, numPartitions: 2 }]);
    await produce(setup.kafka, topic, events.slice(0, 2000));
    const end = await topicEnd(setup.kafka, topic);
    const admin = setup.kafka.admin();
    await admin.connect();
    await admin.fetchTopicMetadata({ topics: [topic] });
    await admin.deleteTopicRecords({ topic, partitions: [...end].map(([partition, high]) => ({ partition, offset: String(high / 2n) })) });
    await admin.disconnect();
    const env = { ...crashingEnv, DWELL_EVENTS_TOPIC: topic };
    const replay = await dwell(['replay', '--from', iso(NOW - 3 * 60 * MIN), '--to', iso(NOW), '--processor', processorUrl()], env);
    expect(replay.code).toBe(4);
    expect(replay.stderr).toMatch(/retention has already deleted records/);
    const exported = await dwell(['export', '--from', iso(NOW - 3 * 60 * MIN), '--to', iso(NOW), '--out', join(setup.dataDir, 'gone.avro')], env);
    expect(exported.code).toBe(4);
    const usage = await dwell(['replay', '--from', iso(NOW)], env);
    expect(usage.code).toBe(2);
  });

  it('writes the recomputed rows to shadow tables, with direct access to ClickHouse only', async () => {
    const args = ['replay', '--from', iso(WAVES.b.baseMs), '--to', iso(WAVES.c.baseMs), '--into', 'shadow', '--format', 'json', '--processor', processorUrl()];
    if (embedded) {
      const refused = await dwell(args);
      expect(refused.code).toBe(2);
      expect(refused.stderr).toMatch(/--into shadow writes to ClickHouse.*Set CLICKHOUSE_URL.*or stop the processor/s);
      await stopChild('SIGTERM');
    }
    const run = await dwell(args);
    expect(run.code, run.stderr).toBe(0);
    const report = JSON.parse(run.stdout) as ReplayReport;
    expect(report.manifest.source.clickhouse.mode).toBe(embedded ? 'embedded' : 'server');
    if (embedded) startChild();
    const sql = sqlAt(processorUrl());
    const id = report.manifest.replay_id;
    const shadow = await eventually('the processor back', () => sql(`SELECT count() AS n, sum(viewable_ms) AS ms FROM ${crashingDb}.shadow_impressions WHERE replay_id = '${id}'`), 60_000, 200);
    expect(Number(shadow[0]?.['n'])).toBe(report.manifest.counts.impressions_replayed);
    // The comparison docs/audit.md shows, in SQL: no impression of the replay differs from the billed one.
    const differing = await sql(
      `SELECT count() AS n FROM ${crashingDb}.shadow_impressions AS s
       LEFT JOIN (SELECT * FROM ${crashingDb}.impressions FINAL) AS b USING (site_id, page_view_id, impression_id)
       WHERE s.replay_id = '${id}' AND (s.viewable_ms != b.viewable_ms OR s.billable != b.billable OR s.flags != b.flags)`,
    );
    expect(Number(differing[0]?.['n'])).toBe(0);
    const runs = await sql(`SELECT verdict, impressions_checksum FROM ${crashingDb}.replay_runs WHERE replay_id = '${id}'`);
    expect(runs).toEqual([{ verdict: 'equal', impressions_checksum: report.manifest.checksums.replay.impressions }]);
  });
});
