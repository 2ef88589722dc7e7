// How long a partition's worker thread is held up by a full snapshot of a large partition. The
// thread takes the snapshot (serializes the page views still active and gathers the kept texts)
// in order with its other requests, then encodes the text as UTF-8 a slice at a time between them
// and answers with the bytes. This builds a real partition state in a worker (the given rate into
// partition 0 for the given minutes, with idle time for the texts made ahead), then asks for a
// full snapshot, a delta and a full snapshot again, each immediately followed by a request for
// another partition. Reported per snapshot: when it was answered (the baseline: before, the
// thread answered every request behind it only after this), when the request behind it was, the
// thread's time on it, and the consumer thread's longest event-loop delay meanwhile.
//
//   npx tsc -b && node --max-old-space-size=8000 bench/processor/snapshot-worker.mjs [--rate 6300] [--minutes 11]
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { WorkerThreadEngine } from '../../services/processor/dist/partition-engine.js';
import { fillWorkerPartition } from '../lib/partition-state.mjs';
import { option } from '../lib/args.mjs';

const RATE = Number(option('rate', 6300));
const MINUTES = Number(option('minutes', 11));
const sleep = (ms) => new Promise((done) => setTimeout(done, ms));

const engine = new WorkerThreadEngine();
const results = [];
try {
  await fillWorkerPartition(engine, RATE, MINUTES);
  await sleep(5000);
  for (const delta of [false, true, false]) {
    const loop = monitorEventLoopDelay({ resolution: 10 });
    loop.enable();
    const started = performance.now();
    // The snapshot first, then the request behind it: the thread serves them in this order.
    const asked = engine.snapshot(0, delta);
    let behindMs;
    const behind = engine.apply(1, []).then(() => {
      behindMs = performance.now() - started;
    });
    const snapshot = await asked;
    const answeredMs = performance.now() - started;
    await behind;
    loop.disable();
    const row = {
      kind: snapshot.kind,
      megabytes: Number((snapshot.bytes.length / 1e6).toFixed(1)),
      answeredMs: Math.round(answeredMs),
      requestBehindMs: Math.round(behindMs),
      threadMs: Math.round(snapshot.serializeMs),
      consumerLoopDelayMaxMs: Math.round(loop.max / 1e6),
    };
    results.push(row);
    process.stdout.write(
      `${row.kind} ${row.megabytes} MB: answered after ${row.answeredMs} ms, the request behind it after ${row.requestBehindMs} ms ` +
        `(${(row.answeredMs / Math.max(1, row.requestBehindMs)).toFixed(1)}× sooner); its thread's time ${row.threadMs} ms; consumer loop delay at most ${row.consumerLoopDelayMaxMs} ms\n`,
    );
    await sleep(3000);
  }
} finally {
  await engine.close();
}
const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
mkdirSync(join(root, 'bench/processor/results'), { recursive: true });
const file = join(root, 'bench/processor/results', `snapshot-worker-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
writeFileSync(file, JSON.stringify({ node: process.version, rate: RATE, minutes: MINUTES, results }, null, 2));
process.stdout.write(`results: ${file}\n`);
