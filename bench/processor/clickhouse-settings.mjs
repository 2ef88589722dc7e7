// What embedded ClickHouse spends per result row while the processor keeps up with live traffic
// (a write every 500 ms of wall time, the impression rows of open page views in every fourth), and
// whether MergeTree settings of the two result tables change it. The writes are computed once, up
// front, by the exposure core and the processor's RowsSink over the benchmark's synthetic traffic,
// then replayed into a fresh database per pass at their real pace through the processor's
// ExposureStore; the pass ends `--tail-ms` after the last write, so the merges they started are
// counted. CPU is this whole process's over the pass (chDB's insert, merge and scheduling threads,
// and the replay itself), per row written; the variants run alternately, `--rounds` times each.
//
// A variant is `base` (the tables as the migrations make them) or a comma-separated list of
// `setting = value` applied to both tables with ALTER TABLE … MODIFY SETTING before the pass.
//
//   npx tsc -b && node bench/processor/clickhouse-settings.mjs [--events 1200000] [--spread-ms 20000]
//     [--rounds 2] [--tail-ms 10000] [--variants 'base;min_bytes_for_wide_part = 1000000000']
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PartitionExposure } from '@dwell/exposure';
import { decodePageEvent } from '@dwell/protocol';
import { ExposureStore, RowsEncoder, migrate, openWarehouse } from '@dwell/warehouse';
import { RowsSink } from '../../services/processor/dist/rows.js';
import { threadCpuDelta, threadCpuSeconds } from '../lib/proc.mjs';
import { median } from '../lib/stats.mjs';
import { encodedWorkload } from '../lib/workload.mjs';

const args = process.argv.slice(2);
const flag = (name, fallback) => {
  const i = args.indexOf(`--${name}`);
  return i === -1 ? fallback : args[i + 1];
};
const EVENTS = Number(flag('events', 1_200_000));
const SPREAD_MS = Number(flag('spread-ms', 20_000));
const ROUNDS = Number(flag('rounds', 2));
const TAIL_MS = Number(flag('tail-ms', 10_000));
const WRITE_EVERY_MS = 500;
const IMPRESSIONS_EVERY = 4; // PROCESSOR_IMPRESSION_INTERVAL_MS (2 s) over the write interval
const variants = flag('variants', 'base;min_bytes_for_wide_part = 1000000000, min_rows_for_wide_part = 1000000000;merge_selector_base = 10')
  .split(';')
  .map((v) => v.trim())
  .filter((v) => v !== '');
const say = (line) => process.stderr.write(`[clickhouse-settings] ${line}\n`);

// The writes a processor keeping up makes, each as the two tables' RowBinary bodies.
const events = encodedWorkload({ seed: 7, events: EVENTS, baseMs: 1_764_000_000_000, spreadMs: SPREAD_MS });
const core = new PartitionExposure();
const writes = [];
let writeAt = events[0].recvMs + WRITE_EVERY_MS;
for (const event of events) {
  if (event.recvMs >= writeAt) {
    const impressions = new RowsEncoder();
    const minutes = new RowsEncoder();
    const sink = new RowsSink(impressions, minutes);
    sink.version = writes.length + 1;
    core.writeChanges(sink, true, sink.version % IMPRESSIONS_EVERY === 0);
    writes.push({ impressions: impressions.finish(), minutes: minutes.finish() });
    writeAt += WRITE_EVERY_MS;
  }
  core.apply(decodePageEvent(event.value));
}
let rows = 0;
for (const w of writes) rows += w.impressions.rows + w.minutes.rows;
say(`${EVENTS} events → ${writes.length} writes of ${rows} rows (${(rows / EVENTS).toFixed(2)} per event), replayed every ${WRITE_EVERY_MS} ms`);

async function pass(variant) {
  const dataDir = mkdtempSync(join(tmpdir(), 'dwell-ch-settings-'));
  const warehouse = await openWarehouse({ database: 'ch_settings', dataDir });
  try {
    await migrate(warehouse);
    if (variant !== 'base') {
      for (const table of ['impressions', 'exposure_minutes']) {
        await warehouse.client.command({ query: `ALTER TABLE ch_settings.${table} MODIFY SETTING ${variant}` });
      }
    }
    const store = new ExposureStore(warehouse);
    const threads = threadCpuSeconds();
    const cpu = process.cpuUsage();
    const started = performance.now();
    for (let i = 0; i < writes.length; i++) {
      const wait = started + i * WRITE_EVERY_MS - performance.now();
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
      await store.writeResults({ ...writes[i], ranges: [], rulesVersion: 1, processorId: 'bench', token: `write-${i}` });
    }
    await new Promise((resolve) => setTimeout(resolve, TAIL_MS));
    const used = process.cpuUsage(cpu);
    const byThread = threadCpuDelta(threads, threadCpuSeconds())
      .filter(([, s]) => s >= 0.05)
      .map(([name, s]) => [name, Number(((s * 1e6) / rows).toFixed(2))]);
    const parts = await (
      await warehouse.client.query({
        query: "SELECT table, count() AS parts FROM system.parts WHERE database = 'ch_settings' AND active AND table IN ('impressions', 'exposure_minutes') GROUP BY table ORDER BY table",
        format: 'JSONEachRow',
      })
    ).json();
    return { cpuUsPerRow: (used.user + used.system) / rows, byThread, partsAtEnd: parts };
  } finally {
    await warehouse.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

const results = new Map(variants.map((v) => [v, []]));
for (let round = 1; round <= ROUNDS; round++) {
  for (const variant of variants) {
    const r = await pass(variant);
    results.get(variant).push(r);
    say(`round ${round}, ${variant}: ${r.cpuUsPerRow.toFixed(2)} µs CPU per row; by thread (µs per row) ${r.byThread.map(([n, s]) => `${n} ${s}`).join(', ')}`);
  }
}
const base = median(results.get(variants[0]).map((r) => r.cpuUsPerRow));
const summary = variants.map((variant) => {
  const perRow = results.get(variant).map((r) => r.cpuUsPerRow);
  return { variant, cpuUsPerRow: median(perRow), runs: perRow, ratioToFirst: median(perRow) / base, last: results.get(variant).at(-1) };
});
for (const s of summary) {
  process.stdout.write(`${s.variant}: ${s.cpuUsPerRow.toFixed(2)} µs CPU per row (median of ${s.runs.length}: ${s.runs.map((x) => x.toFixed(2)).join(', ')}), ${s.ratioToFirst.toFixed(2)}× ${variants[0]}\n`);
}
process.stdout.write(`${JSON.stringify({ events: EVENTS, writes: writes.length, rows, summary })}\n`);
