// A worker's streaming work (the shape of streaming-work.mjs: a write every 500 ms of event time)
// for two builds of dwell in one process, their passes alternating over the same log, so that the
// machine's drift between runs falls on both alike. For a change too small to see across separate
// runs on a shared machine.
//
//   node bench/processor/work-ab.mjs <checkout A> <checkout B> [--passes 7] [--rate 20000] [--seconds 20]
//
// Each checkout must be built (`npx tsc -b` there). Prints CPU µs per event, medians, and B/A.
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { median } from '../lib/stats.mjs';
import { encodedWorkload, workerPass } from '../lib/workload.mjs';

const args = process.argv.slice(2);
const flag = (name, fallback) => {
  const i = args.indexOf(`--${name}`);
  return i === -1 ? fallback : Number(args[i + 1]);
};
const [dirA, dirB] = args.filter((arg, i) => !arg.startsWith('--') && !args[i - 1]?.startsWith('--'));
if (dirA === undefined || dirB === undefined) {
  process.stderr.write('usage: node bench/processor/work-ab.mjs <checkout A> <checkout B> [--passes 7] [--rate 20000] [--seconds 20]\n');
  process.exit(64);
}
const PASSES = flag('passes', 7);
const RATE = flag('rate', 20_000);
const SECONDS = flag('seconds', 20);

const load = async (dir) =>
  (await import(pathToFileURL(resolve(dir, 'services/processor/dist/partition-work.js')).href)).PartitionWork;
const builds = { A: await load(dirA), B: await load(dirB) };
const events = encodedWorkload({ seed: 99, events: RATE * SECONDS, baseMs: 1_764_000_000_000, spreadMs: SECONDS * 1000 });

/** One pass with a write every 500 ms of event time; CPU µs per event. */
const pass = (PartitionWork) => workerPass(PartitionWork, events, 500).us;

pass(builds.A);
pass(builds.B);
const runs = { A: [], B: [] };
for (let i = 0; i < PASSES; i++) for (const side of i % 2 === 0 ? ['A', 'B'] : ['B', 'A']) runs[side].push(pass(builds[side]));
const a = median(runs.A);
const b = median(runs.B);
const list = (xs) => xs.map((x) => x.toFixed(1)).join(' ');
process.stdout.write(
  `streaming work, CPU µs per event (median of ${PASSES}): A ${a.toFixed(2)}, B ${b.toFixed(2)}, B/A ${(b / a).toFixed(3)}\n` +
    `  A: ${list(runs.A)}\n  B: ${list(runs.B)}\n`,
);
