// How much CPU storing a large snapshot takes from the processor's other threads. Embedded
// ClickHouse runs in the processor's process, and storing a full snapshot of a partition held for
// minutes (hundreds of MB) keeps one of its threads busy for a second or more, compressing. On a
// host whose cores are all in use (partition workers, the consumer thread, the broker beside it),
// that second comes out of the event processing, and the writes just after carry older events.
// The store therefore runs its ClickHouse threads at nice 10 (`os_thread_priority`). This builds a
// real partition state (the given rate into one partition for the given minutes, as
// snapshot-alongside.mjs does), serializes its full snapshot, and stores it several times while
// as many busy threads as cores stand in for the processor's work, alternating the baseline (the
// store at nice 0, as any statement) and the store as it is (or at `--nice N`). Per mode: the store's time,
// and the work the busy threads got done while it ran, as a share of their rate just before
// (median of the rounds). Lowering a thread's priority needs CAP_SYS_NICE here; without it both
// modes are the same.
//
//   npx tsc -b && node --max-old-space-size=16000 bench/processor/snapshot-priority.mjs [--rate 5000] [--minutes 11] [--rounds 3]
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { ExposureStore, migrate, openWarehouse, SNAPSHOT_THREAD_NICE } from '@dwell/warehouse';
import { builtPartition } from '../lib/partition-state.mjs';
import { median } from '../lib/stats.mjs';
import { option } from '../lib/args.mjs';

const RATE = Number(option('rate', 5000));
const MINUTES = Number(option('minutes', 11));
const ROUNDS = Number(option('rounds', 3));
/** The nice value to try against 0; default the store's own. */
const NICE = option('nice', undefined);
const BUSY = availableParallelism();

const sleep = (ms) => new Promise((done) => setTimeout(done, ms));

const { snapshot } = builtPartition(RATE, MINUTES);

// The busy threads: each does small units of JavaScript work, back to back, and counts them.
const done = new Int32Array(new SharedArrayBuffer(4 * BUSY));
const busySource = `
  const { workerData } = require('node:worker_threads');
  const { done, index } = workerData;
  const unit = { page_view_id: 'pv-1', events: Array.from({ length: 40 }, (_, i) => ({ seq: i, t: i * 250, visible: i % 3 })) };
  for (;;) {
    JSON.parse(JSON.stringify(unit));
    Atomics.add(done, index, 1);
  }
`;
const busy = Array.from({ length: BUSY }, (_, index) => new Worker(busySource, { eval: true, workerData: { done, index } }));
const units = () => done.reduce((sum, n) => sum + n, 0);
/** Units per second of the busy threads over `ms`. */
const rateOver = async (ms) => {
  const u0 = units();
  const t0 = performance.now();
  await sleep(ms);
  return ((units() - u0) * 1000) / (performance.now() - t0);
};

const dataDir = mkdtempSync(join(tmpdir(), 'dwell-snapshot-priority-'));
const warehouse = await openWarehouse({ database: 'snapshot_priority', dataDir });
await migrate(warehouse);
const stores = {
  // The baseline: the store's threads at the priority of any other.
  'nice 0': new ExposureStore(warehouse, { snapshotThreadNice: 0 }),
  [`nice ${NICE ?? SNAPSHOT_THREAD_NICE}`]: new ExposureStore(warehouse, NICE === undefined ? {} : { snapshotThreadNice: Number(NICE) }),
};

const rounds = Object.fromEntries(Object.keys(stores).map((mode) => [mode, []]));
let offset = 0;
try {
  await sleep(1000);
  for (let round = 0; round < ROUNDS; round++) {
    for (const [mode, store] of Object.entries(stores)) {
      const before = await rateOver(1000);
      const u0 = units();
      const t0 = performance.now();
      await store.saveSnapshot({
        topic: 'priority',
        partition: 0,
        nextOffset: String(++offset),
        rulesVersion: snapshot.rulesVersion,
        rulesFingerprint: snapshot.rulesFingerprint,
        pageViews: snapshot.pageViews,
        snapshot: snapshot.bytes,
        processorId: 'bench',
      });
      const storeMs = performance.now() - t0;
      const during = ((units() - u0) * 1000) / storeMs;
      const row = { storeMs: Math.round(storeMs), workKeptPercent: Number(((100 * during) / before).toFixed(1)) };
      rounds[mode].push(row);
      process.stderr.write(`round ${round + 1}, ${mode}: ${JSON.stringify(row)}\n`);
      // The store's part and its old chains go, as the processor prunes them.
      await store.pruneSnapshots('priority', 0, 1);
    }
  }
} finally {
  await Promise.all(busy.map((w) => w.terminate()));
  await warehouse.close();
  rmSync(dataDir, { recursive: true, force: true });
}

const summary = Object.fromEntries(
  Object.entries(rounds).map(([mode, rows]) => [
    mode,
    { storeMs: median(rows.map((r) => r.storeMs)), workKeptPercent: median(rows.map((r) => r.workKeptPercent)) },
  ]),
);
const base = summary['nice 0'];
const ours = Object.values(summary)[1];
const lostRatio = (100 - base.workKeptPercent) / Math.max(0.1, 100 - ours.workKeptPercent);
process.stdout.write(
  `snapshot of ${(snapshot.bytes.length / 1e6).toFixed(1)} MB stored beside ${BUSY} busy threads, medians of ${ROUNDS} rounds\n` +
    Object.entries(summary)
      .map(([mode, s]) => `  ${mode.padEnd(8)} store ${s.storeMs} ms; the busy threads kept ${s.workKeptPercent}% of their work meanwhile\n`)
      .join('') +
    `  work lost while storing: ${lostRatio.toFixed(1)}× less at ${Object.keys(summary)[1]}\n`,
);
const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
mkdirSync(join(root, 'bench/processor/results'), { recursive: true });
const file = join(root, 'bench/processor/results', `snapshot-priority-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
writeFileSync(file, JSON.stringify({ node: process.version, busyThreads: BUSY, rate: RATE, minutes: MINUTES, megabytes: Number((snapshot.bytes.length / 1e6).toFixed(1)), rounds, summary, lostRatio: Number(lostRatio.toFixed(2)) }, null, 2));
process.stdout.write(`results: ${file}\n`);
