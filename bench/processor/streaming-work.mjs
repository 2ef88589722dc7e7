// The processor's per-event work offline, as one worker thread does it (PartitionWork: read each
// record, apply it, and at every write take the changed results as encoded rows), in two shapes of
// the same log:
//   streaming  a write every 500 ms of event time, as when the processor keeps up with live traffic
//              (each page view has changed by one event or so at each write);
//   catch-up   a write every 5 s of event time, as when it works through a backlog.
// No Kafka and no ClickHouse: this is the JavaScript a worker thread spends per event, and how much
// of it writing while events stream in costs. CPU time of this process, medians of --runs.
//
// --held-minutes M first applies M minutes of the same traffic, unmeasured, so that the measured
// seconds meet the state a processor holds after running that long: a page view stays in memory
// until the watermark is 10 minutes past its last event, so under steady traffic a partition holds
// about eleven minutes of its events (M = 11; run with a larger heap, --max-old-space-size).
//
// Streaming is measured twice: with the open page views' impression rows in a write every 2 s of
// event time (the processor's PROCESSOR_IMPRESSION_INTERVAL_MS; --impression-every-ms) and in every
// write (the interval at 0).
//
//   npx tsc -b && node bench/processor/streaming-work.mjs [--rate 20000] [--seconds 40] [--runs 5] [--held-minutes 0] [--impression-every-ms 2000]
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
const HELD_MINUTES = flag('held-minutes', 0);
const IMPRESSION_EVERY_MS = flag('impression-every-ms', 2000);

const spanMs = (HELD_MINUTES * 60 + SECONDS) * 1000;
const events = encodedWorkload({ seed: 99, events: Math.round((RATE * spanMs) / 1000), baseMs: 1_764_000_000_000, spreadMs: spanMs });
/** The first event of the measured seconds. */
const measureFrom = events.findIndex((e) => e.recvMs >= events[0].recvMs + HELD_MINUTES * 60_000);

/** One pass over the log with a write every `everyMs` of event time; µs of CPU and rows per event. */
const pass = (everyMs, impressionEveryMs = IMPRESSION_EVERY_MS) => workerPass(PartitionWork, events, everyMs, measureFrom, impressionEveryMs);

if (HELD_MINUTES === 0) pass(500); // warm-up (with held minutes, those warm up every pass)
const streaming = [];
const streamingEvery = [];
const catchUp = [];
let rows;
let pageViewsHeld;
for (let run = 0; run < RUNS; run++) {
  const s = pass(500);
  const e = pass(500, 0);
  const c = pass(5000);
  streaming.push(s.us);
  streamingEvery.push(e.us);
  catchUp.push(c.us);
  rows = { streaming: s.rows, streamingImpressionsEveryWrite: e.rows, catchUp: c.rows };
  pageViewsHeld = s.pageViewsHeld;
}
const result = {
  events: events.length - measureFrom,
  heldEvents: measureFrom,
  heldMinutes: HELD_MINUTES,
  pageViewsHeldAtEnd: pageViewsHeld,
  ratePerS: RATE,
  impressionEveryMs: IMPRESSION_EVERY_MS,
  streamingUsPerEvent: median(streaming),
  streamingImpressionsEveryWriteUsPerEvent: median(streamingEvery),
  catchUpUsPerEvent: median(catchUp),
  ratio: median(streaming) / median(catchUp),
  rowsPerEvent: rows,
};
process.stdout.write(
  `worker work per event, CPU µs (median of ${RUNS}${HELD_MINUTES > 0 ? `, ${HELD_MINUTES} min of traffic held first, ${pageViewsHeld} page views at the end` : ''}): streaming (a write every 500 ms) ${result.streamingUsPerEvent.toFixed(2)}, ` +
    `impression rows every ${IMPRESSION_EVERY_MS} ms; the same with them in every write ${result.streamingImpressionsEveryWriteUsPerEvent.toFixed(2)}; ` +
    `catch-up (every 5 s) ${result.catchUpUsPerEvent.toFixed(2)}, ratio ${result.ratio.toFixed(2)}; ` +
    `rows per event ${rows.streaming.toFixed(2)} / ${rows.streamingImpressionsEveryWrite.toFixed(2)} / ${rows.catchUp.toFixed(2)}\n${JSON.stringify(result)}\n`,
);
