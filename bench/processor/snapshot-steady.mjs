// What one partition's snapshot costs once traffic has run for longer than the lateness window.
// A page view stays in memory, and in every snapshot, until the watermark is ALLOWED_LATENESS
// (10 min) past its last event, so under steady traffic a partition holds about eleven minutes of
// its events: far more than the 30 s windows of run.mjs, whose snapshots hold only what arrived
// since the processor started. For each rate (events/s into one partition) this applies that much
// traffic through the processor's partition work (a write every 10 s of event time) and takes a
// first snapshot, which serializes every page view; then 30 s more of traffic and the next
// snapshot, which serializes only the page views changed since (the others' texts are kept). It
// times that one as the processor takes it (serialized in the partition's worker, which holds up
// that worker's events meanwhile), storing it in embedded ClickHouse, reading it back, and
// restoring it. CPU is this process's (chDB's and the GC's threads included).
//
//   npx tsc -b && node --max-old-space-size=16000 bench/processor/snapshot-steady.mjs [--rates 2500,5000,10000] [--minutes 11]
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DEFAULT_RULES_CONFIG } from '@dwell/exposure';
import { ExposureStore, migrate, openWarehouse } from '@dwell/warehouse';
import { PartitionWork } from '../../services/processor/dist/partition-work.js';
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
    const snapshot = () =>
      timed(() => {
        try {
          return work.snapshot(0);
        } catch (error) {
          return { error: String(error) };
        }
      });
    for (let i = 0; i < events.length; i += 200) {
      const batch = events.slice(i, i + 200);
      work.apply(0, batch.map((e) => e.value));
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
    const serialized = await snapshot();
    row.serialize = { wallMs: serialized.wallMs, cpuMs: serialized.cpuMs };
    if ('error' in serialized.value) {
      row.error = serialized.value.error;
    } else {
      const { text, pageViews, rulesVersion, rulesFingerprint } = serialized.value;
      row.pageViews = pageViews;
      row.megabytes = Number((text.length / 1e6).toFixed(1));
      const offset = String(rate);
      row.store = await timed(() =>
        store.saveSnapshot({ topic: 'steady', partition: 0, nextOffset: offset, rulesVersion, rulesFingerprint, pageViews, snapshot: text, processorId: 'bench' }),
      );
      delete row.store.value;
      const read = await timed(() => store.latestSnapshot('steady', 0, offset));
      row.read = { wallMs: read.wallMs, cpuMs: read.cpuMs };
      if (read.value?.snapshot !== text) throw new Error('the stored snapshot did not read back equal');
      const restored = await timed(() => new PartitionWork().restore(0, read.value.snapshot, 0));
      row.restore = { wallMs: restored.wallMs, cpuMs: restored.cpuMs };
    }
    results.push(row);
    const fmt = (t) => (t === undefined ? '—' : `${(t.wallMs / 1000).toFixed(1)} s (${(t.cpuMs / 1000).toFixed(1)} s CPU)`);
    process.stdout.write(
      `${rate.toLocaleString('en-US')} events/s for ${MINUTES} min: ${row.error ?? `${row.pageViews.toLocaleString('en-US')} page views, ${row.megabytes} MB`}; ` +
        `first snapshot serialized in ${fmt(row.firstSerialize)}; ${BETWEEN_MS / 1000} s later serialize ${fmt(row.serialize)}, store ${fmt(row.store)}, read ${fmt(row.read)}, restore ${fmt(row.restore)}\n`,
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
