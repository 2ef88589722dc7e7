#!/usr/bin/env node
// The replay benchmark: how fast `dwell replay` reads, decodes and recomputes the ledger, against
// the bare KafkaJS consumer on the same topic in the same run.
//
//   npm run bench:replay                      # 1,000,000 events, 5 runs per mode, medians
//   npm run bench:replay -- --events 2000000 --runs 3
//   npm run bench:replay -- --profile DIR     # also one `node --cpu-prof` run of the replay mode
//
// A local Kafka broker (the project's, from Maven Central jars) gets a 4-partition topic filled
// with a synthetic ledger (ledger.mjs); each measured read runs in a fresh process (consume.mjs),
// modes interleaved run by run: kafkajs (the bare KafkaJS consumer counting records, same fetch size
// as dwell's reader), read (dwell's readLog), decode (+ Avro decode on the main thread), replay1
// (+ the exposure core per partition, one thread) and replay (what `dwell replay` runs: decoding
// and the core on worker threads, one per core; plus the results' checksums). Rates are records /
// streaming time (first record to the end of processing, results included; the consumer group
// join before it shows in wall time); CPU is the process's user+system time (every thread) per
// record. Results: results/replay-latest.json.
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { createKafka, createProducer, ensureTopics, startLocalKafka } from '@dwell/kafka';
import { ledger } from './ledger.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));
const { values: opts } = parseArgs({
  options: {
    events: { type: 'string', default: '1000000' },
    runs: { type: 'string', default: '5' },
    partitions: { type: 'string', default: '4' },
    modes: { type: 'string', default: 'kafkajs,read,decode,replay1,replay' },
    profile: { type: 'string' },
    out: { type: 'string', default: join(HERE, 'results', 'replay-latest.json') },
  },
});
const EVENTS = Number(opts.events);
const RUNS = Number(opts.runs);
const MODES = opts.modes.split(',');
let TOPIC = '';
const say = (line) => process.stderr.write(`[bench:replay] ${line}\n`);

const loadAtStart = loadavg();
const broker = await startLocalKafka({ heap: '768m', onProgress: say });
const stop = async () => broker.stop().catch(() => undefined);
process.once('SIGINT', () => void stop().finally(() => process.exit(130)));
try {
  say(`Kafka ${broker.version} at ${broker.brokers}`);
  const kafka = createKafka({ brokers: [broker.brokers], clientId: 'bench-replay' });
  const topic = `bench.replay.${Date.now()}`;
  TOPIC = topic;
  await ensureTopics(kafka, [{ topic, numPartitions: Number(opts.partitions) }]);
  const producer = createProducer(kafka, { maxInFlightRequests: 4 });
  await producer.connect();
  const produceStarted = Date.now();
  let produced = 0;
  let bytes = 0;
  const inFlight = new Set();
  for (const wave of ledger({ events: EVENTS, seed: 42, baseMs: Date.now() - 6 * 3_600_000 })) {
    for (let i = 0; i < wave.length; i += 5000) {
      const messages = wave.slice(i, i + 5000);
      for (const m of messages) bytes += m.value.length;
      const sent = producer.send({ topic, acks: -1, messages });
      inFlight.add(sent);
      void sent.finally(() => inFlight.delete(sent));
      if (inFlight.size >= 4) await Promise.race(inFlight);
    }
    produced += wave.length;
  }
  await Promise.all(inFlight);
  await producer.disconnect();
  const produceMs = Date.now() - produceStarted;
  say(`${produced.toLocaleString('en-US')} events (${(bytes / produced).toFixed(0)} bytes each on average) produced in ${(produceMs / 1000).toFixed(1)} s`);

  const results = Object.fromEntries(MODES.map((m) => [m, []]));
  for (let run = 1; run <= RUNS; run++) {
    const order = run % 2 === 1 ? MODES : [...MODES].reverse();
    for (const mode of order) {
      const r = await measure(mode, []);
      if (r.records !== produced) throw new Error(`${mode} read ${r.records} of ${produced} records`);
      results[mode].push(r);
      say(`run ${run} ${mode.padEnd(7)} ${rate(r).toLocaleString('en-US').padStart(9)} events/s (stream ${r.stream_ms} ms, wall ${r.wall_ms} ms, CPU ${r.cpu_us_per_event} µs/event, rss ${r.rss_mb} MB)`);
    }
  }
  const checksums = new Set([...(results.replay ?? []), ...(results.replay1 ?? [])].map((r) => r.checksum));
  if (checksums.size > 1) throw new Error(`replay runs disagree on the impressions checksum: ${[...checksums].join(', ')}`);

  let profile;
  if (opts.profile !== undefined) {
    // One profiled run of the replay mode: a .cpuprofile per thread (main, each worker), summed.
    const dir = resolve(opts.profile, `run-${Date.now()}`);
    mkdirSync(dir, { recursive: true });
    const r = await measure('replay', ['--cpu-prof', `--cpu-prof-dir=${dir}`]);
    const files = readdirSync(dir).filter((f) => f.endsWith('.cpuprofile')).sort();
    const profiles = files.map((f) => JSON.parse(readFileSync(join(dir, f), 'utf8')));
    profile = { dir, files, rate: rate(r), threads: profiles.map((p) => ({ busy_ms: Math.round(busyMs(p)) })), top: topSelf(profiles, 30), areas: byArea(profiles) };
    say(`profiled replay run: ${rate(r).toLocaleString('en-US')} events/s; busy ms per thread: ${profile.threads.map((t) => t.busy_ms).join(', ')}`);
    say('self time by area (all threads):');
    for (const row of profile.areas) say(`  ${row.share.toFixed(1).padStart(5)}%  ${row.name}`);
    say('top functions by self time (all threads):');
    for (const row of profile.top) say(`  ${row.share.toFixed(1).padStart(5)}%  ${row.name}`);
  }

  const median = (xs) => {
    const s = [...xs].sort((a, b) => a - b);
    const m = s.length >> 1;
    return s.length % 2 === 1 ? s[m] : (s[m - 1] + s[m]) / 2;
  };
  const summary = Object.fromEntries(
    MODES.map((mode) => [
      mode,
      {
        median_events_per_s: Math.round(median(results[mode].map(rate))),
        runs: results[mode].map(rate),
        median_wall_ms: median(results[mode].map((r) => r.wall_ms)),
        median_cpu_us_per_event: median(results[mode].map((r) => r.cpu_us_per_event)),
        max_rss_mb: Math.max(...results[mode].map((r) => r.rss_mb)),
      },
    ]),
  );
  const base = summary.kafkajs?.median_events_per_s;
  for (const mode of MODES) if (base !== undefined) summary[mode].ratio_to_kafkajs = Number((summary[mode].median_events_per_s / base).toFixed(3));
  const out = {
    date: new Date().toISOString(),
    machine: { cpus: cpus().length, model: cpus()[0]?.model, memory_gb: Math.round(totalmem() / 2 ** 30), node: process.version, load_avg_at_start: loadAtStart, load_avg_at_end: loadavg() },
    git_commit: gitCommit(),
    kafka: broker.version,
    events: produced,
    avg_event_bytes: Math.round(bytes / produced),
    partitions: Number(opts.partitions),
    produce_events_per_s: Math.round(produced / (produceMs / 1000)),
    runs: RUNS,
    summary,
    replay_checksum: [...checksums][0],
    profile,
  };
  mkdirSync(dirname(opts.out), { recursive: true });
  writeFileSync(opts.out, `${JSON.stringify(out, null, 2)}\n`);
  say(`results in ${opts.out}`);
  for (const mode of MODES) {
    const m = summary[mode];
    say(`${mode.padEnd(7)} median ${m.median_events_per_s.toLocaleString('en-US')} events/s, ${m.median_cpu_us_per_event} µs CPU/event${m.ratio_to_kafkajs === undefined ? '' : ` (${m.ratio_to_kafkajs} × bare KafkaJS)`}`);
  }
} finally {
  await stop();
}

function rate(r) {
  return Math.round(r.records / (r.stream_ms / 1000));
}

function measure(mode, nodeFlags) {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [...nodeFlags, join(HERE, 'consume.mjs'), broker.brokers, TOPIC, mode], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (chunk) => (out += chunk));
    child.once('error', reject);
    child.once('exit', (code) => (code === 0 ? resolvePromise(JSON.parse(out.trim().split('\n').pop())) : reject(new Error(`consume.mjs ${mode} exited ${code}`))));
  });
}

function samples(profiles, visit) {
  for (const profile of profiles) {
    const byId = new Map(profile.nodes.map((node) => [node.id, node]));
    for (let i = 0; i < profile.samples.length; i++) {
      const cf = byId.get(profile.samples[i]).callFrame;
      if (cf.functionName !== '(idle)') visit(cf, profile.timeDeltas[i] ?? 0);
    }
  }
}

function busyMs(profile) {
  let busy = 0;
  samples([profile], (_cf, dt) => (busy += dt));
  return busy / 1000;
}

/** Top functions by self time over several .cpuprofiles, as shares of their non-idle samples. */
function topSelf(profiles, n) {
  const self = new Map();
  let busy = 0;
  samples(profiles, (cf, dt) => {
    busy += dt;
    const where = cf.url === '' ? '' : ` ${cf.url.replace(/^.*\/(node_modules|packages|services)\//, '$1/')}:${cf.lineNumber + 1}`;
    const name = `${cf.functionName || '(anonymous)'}${where}`;
    self.set(name, (self.get(name) ?? 0) + dt);
  });
  return [...self].sort((a, b) => b[1] - a[1]).slice(0, n).map(([name, dt]) => ({ name, share: (100 * dt) / busy }));
}

/** Self time by where the code lives: KafkaJS, avsc, each dwell package, node, GC. */
function byArea(profiles) {
  const areas = new Map();
  let busy = 0;
  samples(profiles, (cf, dt) => {
    busy += dt;
    const url = cf.url;
    const area =
      cf.functionName === '(garbage collector)'
        ? 'GC'
        : /node_modules\/kafkajs/.test(url)
          ? 'kafkajs'
          : /node_modules\/avsc/.test(url)
            ? 'avsc'
            : /packages\/([a-z]+)\//.test(url)
              ? `@dwell/${/packages\/([a-z]+)\//.exec(url)[1]}`
              : /services\/cli\//.test(url)
                ? '@dwell/cli (replay engine, workers)'
                : url.startsWith('node:')
                  ? 'node internals'
                  : url === ''
                    ? `native (${cf.functionName})`
                    : 'other';
    areas.set(area, (areas.get(area) ?? 0) + dt);
  });
  return [...areas].sort((a, b) => b[1] - a[1]).slice(0, 14).map(([name, dt]) => ({ name, share: (100 * dt) / busy }));
}

function gitCommit() {
  try {
    return execFileSync('git', ['rev-parse', 'HEAD'], { cwd: HERE, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return null;
  }
}
