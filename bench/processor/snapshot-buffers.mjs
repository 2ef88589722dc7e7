// What a full snapshot of a large partition costs its worker thread beyond taking and encoding it:
// the buffer its bytes go into. A new buffer of hundreds of MB for every snapshot grows the
// thread's external memory by as much, and V8 answers with a collection of the thread's whole
// heap (gigabytes, for a partition held for minutes), on the thread that applies the partition's
// events. The worker now encodes into buffers shared with the consumer thread and, once a snapshot
// is stored and its buffer given back (PartitionEngine.release), into the same buffer again.
//
// This builds a real partition state in a worker (the given rate into partition 0 for the given
// minutes, with idle time for the texts made ahead), then takes full snapshots of it in rounds,
// alternating the baseline (snapshots never given back, so each gets a new buffer, as before) and
// the reuse (each given back before the next). Throughout, small batches go to partition 1 on the
// same thread every 5 ms, as a live processor's would. Per mode, medians of the rounds: the
// thread's CPU per snapshot, how long each snapshot took to be answered, and the latency of the
// batches meanwhile (p99 and longest).
//
//   npx tsc -b && node --max-old-space-size=8000 bench/processor/snapshot-buffers.mjs [--rate 6300] [--minutes 11] [--rounds 3] [--snapshots 4]
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { WorkerThreadEngine } from '../../services/processor/dist/partition-engine.js';
import { fillWorkerPartition } from '../lib/partition-state.mjs';
import { median, percentile } from '../lib/stats.mjs';
import { clkTck } from '../lib/proc.mjs';
import { option } from '../lib/args.mjs';

const RATE = Number(option('rate', 6300));
const MINUTES = Number(option('minutes', 11));
const ROUNDS = Number(option('rounds', 3));
const SNAPSHOTS = Number(option('snapshots', 4));
const sleep = (ms) => new Promise((done) => setTimeout(done, ms));

const engine = new WorkerThreadEngine();
/** Partition 1's batches: a few events each, the same ones over and over (duplicates, cheap to apply). */
let trickle;
/** CPU seconds of the worker thread so far (undefined before its id is known). */
const workerCpu = () => {
  const [tid] = engine.workerThreadIds();
  if (tid === undefined) return undefined;
  const f = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(f[11]) + Number(f[12])) / clkTck();
};
const rounds = { 'new buffer each (before)': [], 'buffer given back and reused': [] };
let megabytes = 0;
try {
  trickle = await fillWorkerPartition(engine, RATE, MINUTES);
  await sleep(5000);
  for (let round = 0; round < ROUNDS; round++) {
    for (const [mode, rows] of Object.entries(rounds)) {
      const reuse = mode.startsWith('buffer given back');
      // The batches on the same thread, every 5 ms, until the round ends.
      const latencies = [];
      let going = true;
      const trickling = (async () => {
        while (going) {
          const t0 = performance.now();
          await engine.apply(1, trickle);
          latencies.push(performance.now() - t0);
          await sleep(5);
        }
      })();
      const cpu0 = workerCpu();
      const answered = [];
      for (let s = 0; s < SNAPSHOTS; s++) {
        const t0 = performance.now();
        const snapshot = await engine.snapshot(0, false);
        answered.push(performance.now() - t0);
        megabytes = Number((snapshot.bytes.length / 1e6).toFixed(1));
        // As the processor stores it meanwhile.
        await sleep(1500);
        if (reuse) engine.release(0, snapshot);
      }
      // Collections the last snapshots started finish within this.
      await sleep(3000);
      const cpu1 = workerCpu();
      going = false;
      await trickling;
      const row = {
        threadCpuMsPerSnapshot: cpu0 === undefined || cpu1 === undefined ? null : Math.round(((cpu1 - cpu0) * 1000) / SNAPSHOTS),
        answeredMs: Math.round(median(answered)),
        batchP99Ms: Number(percentile(latencies, 99).toFixed(1)),
        batchMaxMs: Math.round(Math.max(...latencies)),
      };
      rows.push(row);
      process.stderr.write(`round ${round + 1}, ${mode}: ${JSON.stringify(row)}\n`);
    }
  }
} finally {
  await engine.close();
}
const summary = Object.fromEntries(
  Object.entries(rounds).map(([mode, rows]) => [
    mode,
    {
      threadCpuMsPerSnapshot: median(rows.map((r) => r.threadCpuMsPerSnapshot ?? Number.NaN)),
      answeredMs: median(rows.map((r) => r.answeredMs)),
      batchP99Ms: median(rows.map((r) => r.batchP99Ms)),
      batchMaxMs: median(rows.map((r) => r.batchMaxMs)),
    },
  ]),
);
const [base, ours] = Object.values(summary);
process.stdout.write(
  `full snapshots of ${megabytes} MB, ${SNAPSHOTS} per round, medians of ${ROUNDS} rounds\n` +
    Object.entries(summary)
      .map(([mode, s]) => `  ${mode.padEnd(30)} thread CPU per snapshot ${s.threadCpuMsPerSnapshot} ms; answered after ${s.answeredMs} ms; batches beside p99 ${s.batchP99Ms} ms, longest ${s.batchMaxMs} ms\n`)
      .join('') +
    `  thread CPU per snapshot ${(base.threadCpuMsPerSnapshot / ours.threadCpuMsPerSnapshot).toFixed(2)}× less, longest batch ${(base.batchMaxMs / Math.max(1, ours.batchMaxMs)).toFixed(1)}× shorter with the buffer reused\n`,
);
const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
mkdirSync(join(root, 'bench/processor/results'), { recursive: true });
const file = join(root, 'bench/processor/results', `snapshot-buffers-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
writeFileSync(file, JSON.stringify({ node: process.version, rate: RATE, minutes: MINUTES, snapshots: SNAPSHOTS, megabytes, rounds, summary }, null, 2));
process.stdout.write(`results: ${file}\n`);
