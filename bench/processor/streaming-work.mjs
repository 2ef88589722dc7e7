// The processor's per-event work offline, as one worker thread does it (PartitionWork: read each
// record, apply it, and at every write take the changed results as encoded rows), in two shapes of
// the same log:
//   streaming  a write every 500 ms of event time, as when the processor keeps up with live traffic
//              (each page view has changed by one event or so at each write);
//   catch-up   a write every 5 s of event time, as when it works through a backlog.
// No Kafka and no ClickHouse: this is the JavaScript a worker thread spends per event, and how much
// of it writing while events stream in costs. CPU time of this process, medians of --runs.
//
//   npx tsc -b && node bench/processor/streaming-work.mjs [--rate 20000] [--seconds 40] [--runs 5]
import { PartitionWork } from '../../services/processor/dist/partition-work.js';
import { median } from '../lib/stats.mjs';
import { encodedWorkload, workerPass } from '../lib/workload.mjs';

const args = process.argv.slice(2);
const flag = (name, fallback) => {
  const i = args.indexOf(`--${name}`);
  return i === -1 ? fallback : Number(args[i + 1]);
};
/** Events per second of event time: one worker's share (two of four partitions at 40,000/s). */
const RATE = flag('rate', 20_000);
const SECONDS = flag('seconds', 40);
const RUNS = flag('runs', 5);

const events = encodedWorkload({ seed: 99, events: RATE * SECONDS, baseMs: 1_764_000_000_000, spreadMs: SECONDS * 1000 });

/** One pass over the log with a write every `everyMs` of event time; µs of CPU and rows per event. */
const pass = (everyMs) => workerPass(PartitionWork, events, everyMs);

pass(500); // warm-up
const streaming = [];
const catchUp = [];
let rows;
for (let run = 0; run < RUNS; run++) {
  const s = pass(500);
  const c = pass(5000);
  streaming.push(s.us);
  catchUp.push(c.us);
  rows = { streaming: s.rows, catchUp: c.rows };
}
const result = {
  events: events.length,
  ratePerS: RATE,
  streamingUsPerEvent: median(streaming),
  catchUpUsPerEvent: median(catchUp),
  ratio: median(streaming) / median(catchUp),
  rowsPerEvent: rows,
};
process.stdout.write(
  `worker work per event, CPU µs (median of ${RUNS}): streaming (a write every 500 ms) ${result.streamingUsPerEvent.toFixed(2)}, ` +
    `catch-up (every 5 s) ${result.catchUpUsPerEvent.toFixed(2)}, ratio ${result.ratio.toFixed(2)}; ` +
    `rows per event ${rows.streaming.toFixed(2)} / ${rows.catchUp.toFixed(2)}\n${JSON.stringify(result)}\n`,
);
