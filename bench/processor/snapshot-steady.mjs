// What one partition's snapshot costs once traffic has run for longer than the lateness window.
// A page view stays in memory, and in every full snapshot, until the watermark is ALLOWED_LATENESS
// (10 min) past its last event, so under steady traffic a partition holds about eleven minutes of
// its events: far more than the 30 s windows of run.mjs, whose snapshots hold only what arrived
// since the processor started. For each rate (events/s into one partition) this applies that much
// traffic through the processor's partition work (a write every 10 s of event time, and the
// snapshot texts of page views that look done made ahead as its thread does when idle), takes a
// first (full) snapshot, which serializes every page view, and stores it; then 30 s more of
// traffic. Then, as the processor does, the next snapshot as a delta on the first (only what
// changed since), and, as the baseline, a full snapshot of the same state (the page views'
// texts are kept from the delta, so it serializes no page view again). Each is timed as the
// processor takes it: serialized in the partition's worker, which holds up that worker's events
// meanwhile; stored in embedded ClickHouse; read back and restored (the delta with its full
// snapshot). CPU is this process's (chDB's and the GC's threads included).
//
//   npx tsc -b && node --max-old-space-size=16000 bench/processor/snapshot-steady.mjs [--rates 2500,5000,10000] [--minutes 11]
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DEFAULT_RULES_CONFIG } from '@dwell/exposure';
import { ExposureStore, migrate, openWarehouse } from '@dwell/warehouse';
import { PartitionWork, PREPARE_BUDGET_MS, PREPARE_EVERY_MS } from '../../services/processor/dist/partition-work.js';
import { encodedWorkload } from '../lib/workload.mjs';

const args = process.argv.slice(2);
const option = (name, fallback) => {
  const i = args.indexOf(`--${name}`);
  return i === -1 ? fallback : args[i + 1];
};
const RATES = String(option('rates', '2500,5000,10000')).split(',').map(Number);
const MINUTES = Number(option('minutes', 11));
const WRITE_EVERY_MS = 10_000;
/** Traffic between the first snapshot and the measured one: the default snapshot interval. */
const BETWEEN_MS = 30_000;

const cpuMs = () => {
  const c = process.cpuUsage();
  return (c.user + c.system) / 1000;
};
/** Runs `fn`, returning its value with the wall and CPU ms it took. */
const timed = async (fn) => {
  const c0 = cpuMs();
  const t0 = performance.now();
  const value = await fn();
  return { value, wallMs: Math.round(performance.now() - t0), cpuMs: Math.round(cpuMs() - c0) };
};

const dataDir = mkdtempSync(join(tmpdir(), 'dwell-snapshot-steady-'));
const warehouse = await openWarehouse({ database: 'snapshot_steady', dataDir });
await migrate(warehouse);
const store = new ExposureStore(warehouse);
const results = [];
try {
  for (const rate of RATES) {
    const spanMs = MINUTES * 60_000 + BETWEEN_MS;
    const events = encodedWorkload({ seed: 5, events: Math.round((rate * spanMs) / 1000), baseMs: 1_764_000_000_000, spreadMs: spanMs });
    events.sort((a, b) => a.recvMs - b.recvMs);
    const work = new PartitionWork();
    work.restore(0, null, 0);
    const firstSnapshotAt = events[0].recvMs + MINUTES * 60_000;
    let writeAt = events[0].recvMs + WRITE_EVERY_MS;
    let first;
    const snapshot = (delta = false) =>
      timed(() => {
        try {
          return work.snapshot(0, delta);
        } catch (error) {
          return { error: String(error) };
        }
      });
    for (let i = 0; i < events.length; i += 200) {
      const batch = events.slice(i, i + 200);
      work.apply(0, batch.map((e) => e.value));
      // As the processor's partition thread does between requests: up to 5 ms of every 50 ms
      // making the texts of page views that look done (here per batch, at the real-time pace).
      work.prepare((PREPARE_BUDGET_MS / PREPARE_EVERY_MS) * ((batch.length / rate) * 1000));
      const last = batch[batch.length - 1].recvMs;
      if (last >= writeAt) {
        work.take([[0, i + batch.length - 1]]);
        writeAt += WRITE_EVERY_MS;
      }
      if (first === undefined && last >= firstSnapshotAt) first = await snapshot();
    }
    work.take([[0, events.length - 1]]);
    events.length = 0;
    const row = { eventsPerSecond: rate, minutes: MINUTES, betweenMs: BETWEEN_MS, lateness_ms: DEFAULT_RULES_CONFIG.allowedLatenessMs };
    row.firstSerialize = { wallMs: first.wallMs, cpuMs: first.cpuMs };
    /** Stores a snapshot as the processor does, reads its chain back and restores it. */
    const measure = async (serialized, offset, link) => {
      const { kind, bytes, pageViews, rulesVersion, rulesFingerprint } = serialized.value;
      const out = { kind, serialize: { wallMs: serialized.wallMs, cpuMs: serialized.cpuMs }, pageViews, megabytes: Number((bytes.length / 1e6).toFixed(1)) };
      out.store = await timed(() =>
        store.saveSnapshot({ topic: `steady-${rate}`, partition: 0, nextOffset: offset, rulesVersion, rulesFingerprint, pageViews, snapshot: bytes, processorId: 'bench', ...link }),
      );
      delete out.store.value;
      const read = await timed(() => store.latestSnapshot(`steady-${rate}`, 0, offset));
      out.read = { wallMs: read.wallMs, cpuMs: read.cpuMs };
      const chain = read.value;
      if (chain === undefined || !Buffer.from(chain.deltas.length === 0 ? chain.snapshot : chain.deltas[chain.deltas.length - 1]).equals(bytes))
        throw new Error('the stored snapshot did not read back equal');
      const restored = await timed(() => new PartitionWork().restore(0, chain, 0));
      out.restore = { wallMs: restored.wallMs, cpuMs: restored.cpuMs };
      return out;
    };
    if ('error' in first.value) {
      row.error = first.value.error;
    } else {
      await measure(first, '1', { kind: 'full' });
      const delta = await snapshot(true);
      row.delta = await measure(delta, '2', { kind: 'delta', previousOffset: '1', baseOffset: '1' });
      const full = await snapshot(false);
      if ('error' in full.value) row.error = full.value.error;
      else row.full = await measure(full, '3', { kind: 'full' });
    }
    results.push(row);
    const fmt = (t) => (t === undefined ? '—' : `${(t.wallMs / 1000).toFixed(1)} s (${(t.cpuMs / 1000).toFixed(1)} s CPU)`);
    const line = (m) =>
      m === undefined ? '—' : `${m.megabytes} MB: serialize ${fmt(m.serialize)}, store ${fmt(m.store)}, read ${fmt(m.read)}, restore ${fmt(m.restore)}`;
    process.stdout.write(
      `${rate.toLocaleString('en-US')} events/s for ${MINUTES} min: ${row.error ?? `${row.full?.pageViews.toLocaleString('en-US')} page views`}; ` +
        `first snapshot serialized in ${fmt(row.firstSerialize)}; ${BETWEEN_MS / 1000} s later\n  delta ${line(row.delta)}\n  full  ${line(row.full)}\n`,
    );
  }
} finally {
  await warehouse.close();
  rmSync(dataDir, { recursive: true, force: true });
}
const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
mkdirSync(join(root, 'bench/processor/results'), { recursive: true });
const file = join(root, 'bench/processor/results', `snapshot-steady-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
writeFileSync(file, JSON.stringify({ node: process.version, results }, null, 2));
process.stdout.write(`results: ${file}\n`);
