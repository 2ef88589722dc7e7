#!/usr/bin/env node
// The gateway benchmark: dwell's uWebSockets.js gateway against a minimal `ws` gateway doing the
// same work (ws-gateway.mjs), both writing to a real local Kafka broker with acks=all.
//
//   npm run bench:gateway                 # full: 3 rounds, medians (about 30 minutes on 2 cores)
//   npm run bench:gateway -- --quick      # smoke run: 1 round, short windows, 2k/5k connections
//
// Options: --rounds N, --quick, --only uws|ws, --skip-throughput, --skip-idle, --no-50k,
//          --no-multi, --measure S, --warmup S, --hold S, --load-clients N, --load-conns N,
//          --window FRAMES, --latency-at R1,R2 (extra latency runs at fixed events/s),
//          --multi-latency (also ack latency at half the maximum of the multi-process phase),
//          --profile DIR (node --cpu-prof of the gateways in the throughput phases; summarise with
//          bench/lib/cpuprofile-top.mjs), --out FILE (default results/gateway-latest.json),
//          --gateway-node-args="FLAGS" (extra node flags for the gateway processes, both kinds;
//          the = is needed, the value starts with a dash), --broker-warmup-max S (longest broker
//          warm-up while its JIT compilers are still busy, default 120), --gateway-log DIR (keep
//          each gateway process's output there, e.g. with --gateway-node-args=--trace-gc),
//          --against DIR (A/B of two builds of dwell's gateway: the "ws" side runs the gateway of
//          the checkout in DIR, built with `npx tsc -b`, instead of the ws baseline; both sides
//          then alternate round by round on one broker, which is steadier than separate runs).
//
// Per round and per gateway (order alternates between rounds), each phase with a fresh gateway
// process and fresh load-client processes, one Kafka broker for the whole run:
//   1. throughput: 1 gateway process; 2 load clients × 100 connections keep 4 frames of 10 events
//      in flight per connection; events acked per second over the window; gateway CPU
//      (/proc/<pid>/stat utime+stime) per acked event; Kafka's high watermarks checked ≥ acks.
//   2. latency: same gateway and connections, open loop at half of (1)'s rate; send → cumulative ack.
//   3. throughput with 2 gateway processes (the production setting on 2 cores).
//   4. idle 10k: 1 gateway process; N authenticated connections (hello received); RSS delta / N,
//      RSS read after a full GC forced through the inspector (and raw).
//   5. idle 50k: 4 gateway processes on one port (uWS: SO_REUSEPORT workers; ws: node:cluster);
//      4 client processes on different 127.x addresses; RSS delta / N; hold, count survivors.
import { cpus, totalmem } from 'node:os';
import { createHash } from 'node:crypto';
import { appendFileSync, existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { execFileSync } from 'node:child_process';
import WebSocket from 'ws';
import { gatewayConfigFromEnv, gatewayNodeFlags } from '@dwell/gateway';
import { createKafka, createProducer, ensureTopics, freePort, startLocalKafka } from '@dwell/kafka';
import { forkTracked, spawnTracked, stopAll } from '../lib/children.mjs';
import {
  childPids,
  cpuMeter,
  cpuSecondsOf,
  cpuTimesOf,
  machineCpu,
  openFds,
  processTree,
  rssBytesOf,
  threadCpuSecondsOf,
  writebackSettings,
} from '../lib/proc.mjs';
import { median, percentiles } from '../lib/stats.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(HERE, '..', '..');
const DWELL_CLI = join(ROOT, 'services', 'cli', 'bin', 'dwell.js');
const WS_GATEWAY = join(HERE, 'ws-gateway.mjs');
const LOAD_CLIENT = join(HERE, 'load-client.mjs');

const { values: opts } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    rounds: { type: 'string' },
    only: { type: 'string' },
    'skip-throughput': { type: 'boolean', default: false },
    'skip-idle': { type: 'boolean', default: false },
    'no-50k': { type: 'boolean', default: false },
    'no-multi': { type: 'boolean', default: false },
    measure: { type: 'string' },
    warmup: { type: 'string' },
    hold: { type: 'string' },
    profile: { type: 'string' },
    out: { type: 'string' },
    'load-clients': { type: 'string' },
    'load-conns': { type: 'string' },
    window: { type: 'string' },
    'latency-at': { type: 'string' },
    'multi-latency': { type: 'boolean', default: false },
    'gateway-node-args': { type: 'string' },
    'broker-warmup-max': { type: 'string' },
    'gateway-log': { type: 'string' },
    against: { type: 'string' },
  },
});

const quick = opts.quick;
const gatewayNodeArgs = (opts['gateway-node-args'] ?? '').split(' ').filter(Boolean);
const CONFIG = {
  rounds: Number(opts.rounds ?? (quick ? 1 : 3)),
  kinds: opts.only ? [opts.only] : ['uws', 'ws'],
  warmupS: Number(opts.warmup ?? (quick ? 3 : 5)),
  measureS: Number(opts.measure ?? (quick ? 6 : 20)),
  holdS: Number(opts.hold ?? (quick ? 5 : 30)),
  eventsPerFrame: 10,
  loadClients: Number(opts['load-clients'] ?? 2),
  connsPerLoadClient: Number(opts['load-conns'] ?? 100),
  windowFrames: Number(opts.window ?? 4),
  idleSmall: quick ? 2_000 : 10_000,
  idleLarge: quick ? 5_000 : 50_000,
  idleLargeWorkers: 4,
  multiWorkers: 2,
  latencyAt: (opts['latency-at'] ?? (quick ? '' : '5000')).split(',').filter(Boolean).map(Number),
  brokerWarmupS: quick ? 10 : 30,
  brokerWarmupMaxS: Number(opts['broker-warmup-max'] ?? 120),
  maxSocketsPerClient: 17_500,
  connectConcurrency: 100,
  settleS: quick ? 2 : 5,
  gatewayNodeArgs,
  // The node flags `dwell gateway` gives its processes (GATEWAY_OLD_SPACE_FLOOR_MB), given to both
  // kinds here: dwell's gateway then serves from the process started (no worker beneath it, so its
  // CPU is read from the right process), and the baseline runs with the same heap settings.
  gatewayNodeFlags: gatewayNodeFlags(gatewayConfigFromEnv(process.env), gatewayNodeArgs),
  // Another checkout whose dwell gateway takes the baseline's place (A/B of two builds).
  against: opts.against === undefined ? undefined : resolve(opts.against),
};
if (CONFIG.against !== undefined && !existsSync(join(CONFIG.against, 'services', 'gateway', 'dist', 'server.js'))) {
  console.error(`--against ${CONFIG.against}: no built gateway there (run npm ci && npx tsc -b in it first)`);
  process.exit(2);
}
/** Whether a side runs dwell's gateway (`ws` does too when comparing against another checkout). */
const isDwell = (kind) => kind === 'uws' || CONFIG.against !== undefined;
/** How a side is named in the log. */
const sideName = (kind) =>
  kind === 'uws' ? 'dwell gateway (uWebSockets.js)' : CONFIG.against !== undefined ? `dwell gateway of ${CONFIG.against}` : 'ws baseline';

const SITE = 'bench-site';
const SECRET = 'bench-secret-0123456789abcdef';
const SITES = JSON.stringify({ [SITE]: { secret: SECRET, origins: ['*'] } });
const ORIGIN = 'https://publisher.example';
const TARGETS = { eventsPerSecond: 50_000, rssPerConnKiB: 3, held: 50_000, ackP99Ms: 20 };

const t0 = Date.now();
const log = (line) =>
  process.stdout.write(`[${((Date.now() - t0) / 1000).toFixed(0).padStart(4)} s] ${line}\n`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const fmt = (n, digits = 0) =>
  typeof n === 'number' && Number.isFinite(n)
    ? n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits })
    : '—';

// Load clients bind to fresh loopback addresses for each phase: no source address is reused while
// its previous sockets may sit in TIME_WAIT, and none runs out of its ~28,000 ephemeral ports.
let addressCounter = 0;
const nextAddress = () => {
  addressCounter += 1;
  return `127.0.${1 + Math.floor(addressCounter / 250)}.${1 + (addressCounter % 250)}`;
};

let kafka;
let brokerPids = () => [];

/**
 * A short hash of the built code a gateway process loads (the gateway and the workspace packages
 * it uses). Others may rebuild this checkout while the benchmark runs: every gateway start records
 * the hash, and the summary warns when it changed during the run.
 */
// The gateway's own code and what its request path runs; not the CLI's other commands or the
// local-broker launcher, which others change without touching the gateway.
const CODE_DIRS = [
  'services/gateway/dist',
  'packages/protocol/dist',
  'packages/kafka/dist/client.js',
  'packages/runtime/dist',
  'packages/commands/dist',
];
const codeHashes = new Set();
function codeHash() {
  const hash = createHash('sha256');
  const walk = (dir) => {
    if (dir.endsWith('.js')) {
      if (existsSync(dir)) hash.update(dir).update(readFileSync(dir));
      return;
    }
    let entries;
    try {
      entries = readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name));
    } catch {
      return;
    }
    for (const entry of entries) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (entry.name.endsWith('.js')) hash.update(path).update(readFileSync(path));
    }
  };
  for (const dir of CODE_DIRS) walk(join(ROOT, dir));
  const digest = hash.digest('hex').slice(0, 12);
  codeHashes.add(digest);
  return digest;
}

// ---------------------------------------------------------------------------------------------
// Processes

/** Starts a gateway process (`kind` uws: the real one; ws: the baseline) and waits until every worker listens. */
async function startGateway(kind, { workers, topic, port, inspect = false }) {
  await createTopics([topic, `${topic}.rejected`]);
  const code = codeHash();
  const env = {
    ...process.env,
    KAFKA_BROKERS: kafka.brokers,
    DWELL_SITES: SITES,
    GATEWAY_HOST: '127.0.0.1',
    GATEWAY_PORT: String(port),
    GATEWAY_WORKERS: String(workers),
    GATEWAY_ID: `bench-${kind}`,
    DWELL_EVENTS_TOPIC: topic,
    DWELL_REJECTED_TOPIC: `${topic}.rejected`,
    GATEWAY_RATE_EVENTS_PER_S: '1000000000',
    GATEWAY_RATE_BURST: '1000000000',
    GATEWAY_MAX_CONNECTIONS_PER_IP: '10000000',
    LOG_LEVEL: 'info',
  };
  delete env.NODE_OPTIONS;
  // Extra V8/Node flags for the gateway processes (e.g. GC sizing experiments), space-separated.
  const nodeArgs = [...CONFIG.gatewayNodeArgs, ...CONFIG.gatewayNodeFlags];
  if (opts.profile && topic.includes('.thr.')) {
    mkdirSync(opts.profile, { recursive: true });
    nodeArgs.push(
      '--cpu-prof',
      `--cpu-prof-dir=${resolve(opts.profile)}`,
      `--cpu-prof-name=${kind}-w${workers}-${Date.now()}.cpuprofile`,
    );
  }
  // The idle phases open the inspector (port chosen by the OS) to force a full GC before reading
  // RSS; uWS workers inherit it through fork's execArgv, ws workers through node:cluster.
  if (inspect) nodeArgs.push('--inspect=127.0.0.1:0');
  const script =
    kind === 'uws'
      ? [DWELL_CLI, 'gateway']
      : CONFIG.against !== undefined
        ? [join(CONFIG.against, 'services', 'cli', 'bin', 'dwell.js'), 'gateway']
        : [WS_GATEWAY];
  const handle = spawnTracked(`${kind}-gateway`, process.execPath, [...nodeArgs, ...script], {
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let tail = '';
  let listening = 0;
  const inspectors = [];
  const logFile =
    opts['gateway-log'] === undefined
      ? undefined
      : (mkdirSync(opts['gateway-log'], { recursive: true }),
        join(resolve(opts['gateway-log']), `${kind}-w${workers}-${topic.replace(/[^\w.-]/g, '_')}.log`));
  const onData = (chunk) => {
    const text = chunk.toString('utf8');
    if (logFile !== undefined) appendFileSync(logFile, text);
    tail = (tail + text).slice(-6000);
    for (const m of text.matchAll(/Debugger listening on (ws:\/\/\S+)/g)) inspectors.push(m[1]);
    listening += (text.match(isDwell(kind) ? /"msg":"listening"/g : /^listening \d+/gm) ?? []).length;
  };
  handle.child.stdout.on('data', onData);
  handle.child.stderr.on('data', onData);
  const deadline = Date.now() + 60_000;
  while (listening < workers) {
    if (handle.child.exitCode !== null || Date.now() > deadline) {
      await handle.stop(2000);
      throw new Error(`${kind} gateway did not start (${listening}/${workers} listening):\n${tail}`);
    }
    await sleep(100);
  }
  const servingPids = () => (workers > 1 ? childPids(handle.pid) : [handle.pid]);
  if (workers > 1) handle.adopt(servingPids());
  return {
    kind,
    port,
    workers,
    handle,
    servingPids,
    allPids: () => processTree(handle.pid),
    tail: () => tail,
    inspectors,
    code,
    url: `ws://127.0.0.1:${port}/v1/ws`,
  };
}

/**
 * Through each gateway process's inspector: two full GCs, then process.memoryUsage(). Returns
 * pid → memoryUsage for every process of the gateway that has an inspector.
 */
async function collectGarbage(gateway) {
  const out = new Map();
  await Promise.all(
    gateway.inspectors.map(
      (url) =>
        new Promise((resolve) => {
          const socket = new WebSocket(url);
          let id = 0;
          const pending = new Map();
          const call = (method, params = {}) =>
            new Promise((done) => {
              pending.set(++id, done);
              socket.send(JSON.stringify({ id, method, params }));
            });
          const timer = setTimeout(() => {
            socket.terminate();
            resolve();
          }, 30_000);
          socket.on('message', (data) => {
            const message = JSON.parse(String(data));
            pending.get(message.id)?.(message.result);
            pending.delete(message.id);
          });
          socket.on('error', () => {
            clearTimeout(timer);
            resolve();
          });
          socket.on('open', async () => {
            await call('HeapProfiler.collectGarbage');
            await call('HeapProfiler.collectGarbage');
            const result = await call('Runtime.evaluate', {
              expression: 'JSON.stringify({ pid: process.pid, ...process.memoryUsage() })',
              returnByValue: true,
            });
            try {
              const usage = JSON.parse(result.result.value);
              out.set(usage.pid, usage);
            } catch {
              // no answer: leave this process out
            }
            clearTimeout(timer);
            socket.close();
            resolve();
          });
        }),
    ),
  );
  return out;
}

/** RSS of the serving processes, raw and after a forced full GC, plus their JS heap after GC. */
async function memoryOf(gateway) {
  const pids = gateway.servingPids();
  const raw = rssBytesOf(pids);
  const usage = await collectGarbage(gateway);
  await sleep(1000);
  const gc = rssBytesOf(pids);
  let heapUsed = 0;
  let external = 0;
  for (const pid of pids) {
    heapUsed += usage.get(pid)?.heapUsed ?? Number.NaN;
    external += usage.get(pid)?.external ?? Number.NaN;
  }
  return { raw, gc, heapUsed, external };
}

/** A load-client process with a request/response channel. */
function startLoadClient(name) {
  const handle = forkTracked(name, LOAD_CLIENT, [], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    env: { ...process.env, NODE_OPTIONS: '' },
  });
  let nextId = 0;
  const pending = new Map();
  handle.child.on('message', (message) => {
    const p = pending.get(message.id);
    if (p === undefined) return;
    pending.delete(message.id);
    if (message.op === 'error') p.reject(new Error(`${name}: ${message.error}`));
    else p.resolve(message);
  });
  handle.child.on('exit', (code, signal) => {
    for (const p of pending.values()) p.reject(new Error(`${name} exited (${code ?? signal})`));
    pending.clear();
  });
  return {
    ...handle,
    call(op, payload = {}) {
      return new Promise((resolve, reject) => {
        const id = ++nextId;
        pending.set(id, { resolve, reject });
        handle.child.send({ op, id, ...payload });
      });
    },
  };
}

/** Starts `count` load clients, each opening `perClient[i]` connections from its own address. */
/**
 * Starts one load client per entry of `perClient` (or reuses `existing` ones, each keeping its
 * address) and opens that many connections from each; resolves once each has its hello or failed.
 */
async function connectClients(gateway, perClient, label, existing = undefined, lean = false) {
  const clients =
    existing ??
    perClient.map((_, i) =>
      Object.assign(startLoadClient(`${label}-client-${i}`), { localAddress: nextAddress(), batches: 0 }),
    );
  const results = await Promise.all(
    clients.map((client, i) =>
      client.call('connect', {
        url: gateway.url,
        count: perClient[i],
        localAddress: client.localAddress,
        concurrency: CONFIG.connectConcurrency,
        origin: ORIGIN,
        site: SITE,
        secret: SECRET,
        userPrefix: `${label}-${i}-${client.batches++}`,
        lean,
      }),
    ),
  );
  const opened = results.reduce((s, r) => s + r.opened, 0);
  const failures = {};
  for (const r of results)
    for (const [why, n] of Object.entries(r.failures)) failures[why] = (failures[why] ?? 0) + n;
  return { clients, opened, failures, connectMs: Math.max(...results.map((r) => r.ms)) };
}

async function stopClients(clients) {
  await Promise.all(clients.map((c) => c.call('close').catch(() => undefined)));
  await Promise.all(clients.map((c) => c.stop(3000)));
}

const snapshotAll = async (clients, payload = {}) => {
  const snaps = await Promise.all(clients.map((c) => c.call('snapshot', payload)));
  const sum = (key) => snaps.reduce((s, x) => s + x[key], 0);
  return {
    ackedEvents: sum('ackedEvents'),
    ackedFrames: sum('ackedFrames'),
    sentFrames: sum('sentFrames'),
    nackedFrames: sum('nackedFrames'),
    errorFrames: sum('errorFrames'),
    closed: sum('closed'),
    open: sum('open'),
    latencies: payload.withLatency ? snaps.flatMap((x) => x.latencies) : [],
    clientLoopDelayP99Ms: Math.max(...snaps.map((x) => x.loopDelayP99Ms ?? 0)),
    clientLoopDelayMaxMs: Math.max(...snaps.map((x) => x.loopDelayMaxMs ?? 0)),
  };
};

/** Sum of the high watermarks of a topic: records Kafka stored. */
async function storedRecords(topic) {
  const admin = createKafka({ brokers: [kafka.brokers], clientId: 'bench-admin' }).admin();
  await admin.connect();
  try {
    const offsets = await admin.fetchTopicOffsets(topic);
    return offsets.reduce((s, o) => s + Number(o.high), 0);
  } finally {
    await admin.disconnect();
  }
}

async function metricsOf(gateway) {
  const response = await fetch(`http://127.0.0.1:${gateway.port}/metrics`, {
    signal: AbortSignal.timeout(5000),
  });
  return response.text();
}

/**
 * Cumulative produce-duration histogram (bucket bound → count), summed over workers, and the
 * gateway's event-loop delay since its previous scrape (`loopDelay`: p99 and max, ms, the largest
 * over workers; the real gateway only).
 */
async function produceHistogram(gateway) {
  try {
    const text = await metricsOf(gateway);
    const buckets = new Map();
    const loopDelay = { p99Ms: undefined, maxMs: undefined };
    for (const m of text.matchAll(
      /^dwell_gateway_event_loop_delay_ms\{(?:[^}]*,)?quantile="(0\.99|1)"[^}]*\} (\S+)/gm,
    )) {
      const key = m[1] === '1' ? 'maxMs' : 'p99Ms';
      loopDelay[key] = Math.max(loopDelay[key] ?? 0, Number(m[2]));
    }
    buckets.loopDelay = loopDelay;
    for (const m of text.matchAll(
      /^dwell_gateway_produce_duration_ms_bucket\{(?:[^}]*,)?le="([^"]+)"[^}]*\} (\d+)/gm,
    )) {
      const bound = m[1] === '+Inf' ? Infinity : Number(m[1]);
      buckets.set(bound, (buckets.get(bound) ?? 0) + Number(m[2]));
    }
    // The stages of the ack latency the real gateway measures (absent from the baseline).
    buckets.stages = {};
    for (const m of text.matchAll(
      /^dwell_gateway_(event_wait_ms|frame_stored_ms)_bucket\{(?:[^}]*,)?le="([^"]+)"[^}]*\} (\d+)/gm,
    )) {
      const stage = (buckets.stages[m[1]] ??= new Map());
      const bound = m[2] === '+Inf' ? Infinity : Number(m[2]);
      stage.set(bound, (stage.get(bound) ?? 0) + Number(m[3]));
    }
    return buckets;
  } catch {
    return undefined;
  }
}

/** p-quantile (0..1) of the difference of two cumulative histograms, interpolated inside the bucket. */
function histogramQuantile(before, after, q) {
  if (before === undefined || after === undefined) return undefined;
  const bounds = [...after.keys()].sort((a, b) => a - b);
  const counts = bounds.map((b) => after.get(b) - (before.get(b) ?? 0));
  const total = counts[counts.length - 1];
  if (!(total > 0)) return undefined;
  const rank = q * total;
  let lower = 0;
  for (let i = 0; i < bounds.length; i++) {
    const prev = i === 0 ? 0 : counts[i - 1];
    if (counts[i] >= rank) {
      if (!Number.isFinite(bounds[i])) return lower;
      const inBucket = counts[i] - prev;
      return lower + (inBucket > 0 ? ((rank - prev) / inBucket) * (bounds[i] - lower) : 0);
    }
    lower = bounds[i];
  }
  return undefined;
}

/** dwell_gateway_connections summed over the workers, from the real gateway's /metrics. */
async function gatewayConnections(gateway) {
  // The ws baseline's cluster workers each answer for themselves only: ask it only when alone.
  if (!isDwell(gateway.kind) && gateway.workers > 1) return undefined;
  try {
    const text = await metricsOf(gateway);
    let total = 0;
    for (const m of text.matchAll(/^dwell_gateway_connections(?:\{[^}]*\})? (\d+)/gm)) total += Number(m[1]);
    return total;
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------------------------------------
// Phases

/** Measures a window: CPU of every group, client counters at both ends, per-second rates. */
async function measureWindow(clients, gateway, seconds, { withLatency = false } = {}) {
  const meter = cpuMeter(() => ({
    gateway: gateway.allPids(),
    broker: brokerPids(),
    clients: clients.map((c) => c.pid),
  }));
  const histBefore = await produceHistogram(gateway);
  const start = await snapshotAll(clients, { resetLatency: true });
  meter.mark();
  const gwTimesStart = cpuTimesOf(gateway.allPids());
  const jitStart = threadCpuSecondsOf(brokerPids(), /^C[12] CompilerThre/);
  const perSecond = [];
  let last = start;
  for (let s = 0; s < seconds; s++) {
    await sleep(1000);
    const now = await snapshotAll(clients);
    perSecond.push(now.ackedEvents - last.ackedEvents);
    last = now;
  }
  const cpu = meter.read();
  const gwTimesEnd = cpuTimesOf(gateway.allPids());
  const jitEnd = threadCpuSecondsOf(brokerPids(), /^C[12] CompilerThre/);
  const end = await snapshotAll(clients, { withLatency });
  const histAfter = await produceHistogram(gateway);
  const acked = end.ackedEvents - start.ackedEvents;
  const ours = cpu.cpuSeconds.gateway + cpu.cpuSeconds.broker + cpu.cpuSeconds.clients;
  return {
    wallSeconds: cpu.wallSeconds,
    ackedEvents: acked,
    eventsPerSecond: acked / cpu.wallSeconds,
    perSecondMin: Math.min(...perSecond),
    perSecondMax: Math.max(...perSecond),
    nackedFrames: end.nackedFrames - start.nackedFrames,
    errorFrames: end.errorFrames - start.errorFrames,
    closed: end.closed - start.closed,
    gatewayCpuUsPerEvent: (cpu.cpuSeconds.gateway / acked) * 1e6,
    gatewayCores: cpu.cpuSeconds.gateway / cpu.wallSeconds,
    brokerCpuUsPerEvent: (cpu.cpuSeconds.broker / acked) * 1e6,
    // What 2 cores would carry if they ran nothing but gateway processes and the broker.
    projectedEventsPerSecondTwoCores:
      2e6 / (((cpu.cpuSeconds.gateway + cpu.cpuSeconds.broker) / acked) * 1e6),
    // Kernel share of the gateway's CPU (syscalls; on loopback also the peer's TCP receive path).
    gatewaySystemShare:
      (gwTimesEnd.system - gwTimesStart.system) /
      (gwTimesEnd.user - gwTimesStart.user + gwTimesEnd.system - gwTimesStart.system),
    brokerCores: cpu.cpuSeconds.broker / cpu.wallSeconds,
    // Of which the broker's JIT compiler threads (warm-up still going on).
    brokerJitCores: (jitEnd - jitStart) / cpu.wallSeconds,
    clientCores: cpu.cpuSeconds.clients / cpu.wallSeconds,
    machineBusyCores: cpu.machineBusyCores,
    // CPU the machine spent on anything but this benchmark (other sessions' builds and tests).
    otherCores: Math.max(0, cpu.machineBusyCores - ours / cpu.wallSeconds),
    produceP50Ms: histogramQuantile(histBefore, histAfter, 0.5),
    produceP99Ms: histogramQuantile(histBefore, histAfter, 0.99),
    produceRequestsPerSecond:
      histBefore && histAfter
        ? ((histAfter.get(Infinity) ?? 0) - (histBefore.get(Infinity) ?? 0)) / cpu.wallSeconds
        : undefined,
    // The scrape before the window reset the gateway's event-loop delay histogram: this is the window's.
    loopDelayP99Ms: histAfter?.loopDelay.p99Ms,
    loopDelayMaxMs: histAfter?.loopDelay.maxMs,
    // Stages of the ack latency: events waiting for their produce request, and a frame from its
    // read to Kafka having stored it, as the gateway measures them (p50 / p90 / p99).
    stages: Object.fromEntries(
      ['event_wait_ms', 'frame_stored_ms'].map((stage) => [
        stage,
        Object.fromEntries(
          [0.5, 0.9, 0.99].map((q) => [
            `p${q * 100}`,
            histogramQuantile(histBefore?.stages[stage], histAfter?.stages[stage], q),
          ]),
        ),
      ]),
    ),
    clientLoopDelayP99Ms: end.clientLoopDelayP99Ms,
    clientLoopDelayMaxMs: end.clientLoopDelayMaxMs,
    gatewayRssMiB: rssBytesOf(gateway.servingPids()) / 2 ** 20,
    latencies: end.latencies,
  };
}

/** Open-loop load at `rate` events/s over the clients' connections: send → cumulative ack latency. */
async function latencyAt(tag, clients, gateway, rate, why) {
  log(`${tag}: latency: open loop at ${fmt(rate)} events/s (${why}); warm-up ${CONFIG.warmupS} s`);
  await Promise.all(
    clients.map((c) =>
      c.call('load', {
        mode: 'rate',
        eventsPerSecond: rate / clients.length,
        events: CONFIG.eventsPerFrame,
        latency: true,
      }),
    ),
  );
  await sleep(CONFIG.warmupS * 1000);
  log(`${tag}: latency: measuring ${CONFIG.measureS} s`);
  const lat = await measureWindow(clients, gateway, CONFIG.measureS, { withLatency: true });
  const p = percentiles(lat.latencies, [50, 90, 99, 99.9, 100]);
  const latency = {
    offeredEventsPerSecond: rate,
    achievedEventsPerSecond: lat.eventsPerSecond,
    samples: lat.latencies.length,
    p50Ms: p.p50,
    p90Ms: p.p90,
    p99Ms: p.p99,
    p999Ms: p['p99.9'],
    maxMs: p.p100,
    produceP50Ms: lat.produceP50Ms,
    produceP99Ms: lat.produceP99Ms,
    produceRequestsPerSecond: lat.produceRequestsPerSecond,
    loopDelayP99Ms: lat.loopDelayP99Ms,
    loopDelayMaxMs: lat.loopDelayMaxMs,
    stages: lat.stages,
    clientLoopDelayP99Ms: lat.clientLoopDelayP99Ms,
    clientLoopDelayMaxMs: lat.clientLoopDelayMaxMs,
    gatewayCpuUsPerEvent: lat.gatewayCpuUsPerEvent,
    gatewayCores: lat.gatewayCores,
    brokerCores: lat.brokerCores,
    brokerJitCores: lat.brokerJitCores,
    clientCores: lat.clientCores,
    otherCores: lat.otherCores,
    machineBusyCores: lat.machineBusyCores,
    nackedFrames: lat.nackedFrames,
    errorFrames: lat.errorFrames,
  };
  log(
    `${tag}: ack latency at ${fmt(lat.eventsPerSecond)} events/s: p50 ${fmt(p.p50, 2)} ms, p90 ${fmt(p.p90, 2)} ms, p99 ${fmt(p.p99, 2)} ms, max ${fmt(p.p100, 1)} ms ` +
      `(${latency.samples} frames); Kafka produce p50 ${fmt(lat.produceP50Ms, 1)} ms, p99 ${fmt(lat.produceP99Ms, 1)} ms; event-loop delay p99 ${fmt(lat.loopDelayP99Ms, 1)} ms, max ${fmt(lat.loopDelayMaxMs, 1)} ms; gateway ${fmt(lat.gatewayCpuUsPerEvent, 2)} µs CPU/event; ` +
      `other processes ${fmt(lat.otherCores, 2)} cores`,
  );
  const q = (stage) =>
    ['p50', 'p90', 'p99'].map((k) => fmt(lat.stages[stage]?.[k], 1)).join(' / ');
  log(
    `${tag}: stages p50 / p90 / p99, ms: waiting for a produce request ${q('event_wait_ms')}; frame read → stored ${q('frame_stored_ms')}; ` +
      `load-client event-loop delay p99 ${fmt(lat.clientLoopDelayP99Ms, 1)}, max ${fmt(lat.clientLoopDelayMaxMs, 1)}; ` +
      `produce requests/s ${fmt(lat.produceRequestsPerSecond)}; cores: gateway ${fmt(lat.gatewayCores, 2)}, broker ${fmt(lat.brokerCores, 2)} (JIT ${fmt(lat.brokerJitCores, 2)}), clients ${fmt(lat.clientCores, 2)}, machine ${fmt(lat.machineBusyCores, 2)}/2`,
  );
  await Promise.all(clients.map((c) => c.call('stop', { waitMs: 10_000 })));
  return latency;
}

/**
 * Maximum sustained rate with `workers` gateway processes, then (when `withLatency`) ack latency
 * under an open-loop load of half that rate, on the same gateway and connections.
 */
async function throughputAndLatency(kind, round, workers, withLatency) {
  const topic = `bench.${round}.${kind}.thr.w${workers}.${Date.now()}`;
  const gateway = await startGateway(kind, { workers, topic, port: await freePort() });
  const tag = `${kind}${workers > 1 ? ` ×${workers}` : ''}`;
  let clients = [];
  try {
    const conns = Array.from({ length: CONFIG.loadClients }, () => CONFIG.connsPerLoadClient);
    const connected = await connectClients(gateway, conns, `${kind}-thr`);
    clients = connected.clients;
    if (connected.opened !== CONFIG.loadClients * CONFIG.connsPerLoadClient)
      throw new Error(
        `only ${connected.opened} load connections opened: ${JSON.stringify(connected.failures)}`,
      );

    log(
      `${tag}: throughput: ${workers} gateway process(es), ${connected.opened} connections from ${clients.length} client processes, window ${CONFIG.windowFrames} frames × ${CONFIG.eventsPerFrame} events; warm-up ${CONFIG.warmupS} s`,
    );
    await Promise.all(
      clients.map((c) =>
        c.call('load', { mode: 'max', window: CONFIG.windowFrames, events: CONFIG.eventsPerFrame }),
      ),
    );
    await sleep(CONFIG.warmupS * 1000);
    log(`${tag}: throughput: measuring ${CONFIG.measureS} s`);
    const thr = await measureWindow(clients, gateway, CONFIG.measureS);
    delete thr.latencies;
    log(
      `${tag}: throughput ${fmt(thr.eventsPerSecond)} events/s (per-second min ${fmt(thr.perSecondMin)}), gateway ${fmt(thr.gatewayCpuUsPerEvent, 2)} µs CPU/event ` +
        `(${fmt(thr.gatewayCores, 2)} cores, ${fmt(thr.gatewaySystemShare * 100)}% in the kernel), broker ${fmt(thr.brokerCores, 2)}, clients ${fmt(thr.clientCores, 2)}, other processes ${fmt(thr.otherCores, 2)} cores ` +
        `(machine ${fmt(thr.machineBusyCores, 2)}/2 busy); produce p50 ${fmt(thr.produceP50Ms, 1)} ms; nacks ${thr.nackedFrames}`,
    );
    const stopped = await Promise.all(clients.map((c) => c.call('stop', { waitMs: 10_000 })));

    let latency;
    const extraLatency = [];
    if (withLatency) {
      latency = await latencyAt(
        tag,
        clients,
        gateway,
        Math.round(thr.eventsPerSecond / 2),
        'half of the maximum',
      );
      for (const rate of CONFIG.latencyAt)
        extraLatency.push(await latencyAt(tag, clients, gateway, rate, 'fixed rate'));
    }
    const totals = await snapshotAll(clients);
    await stopClients(clients);
    clients = [];
    await gateway.handle.stop();
    const stored = await storedRecords(topic);
    const check = {
      ackedEventsTotal: totals.ackedEvents,
      storedInKafka: stored,
      ok: stored >= totals.ackedEvents,
      outstandingAtStop: stopped.reduce((s, x) => s + x.outstanding, 0),
    };
    log(
      `${tag}: Kafka holds ${fmt(stored)} records on ${topic}; clients got acks for ${fmt(totals.ackedEvents)} events: ${check.ok ? 'ok (stored ≥ acked)' : 'MISMATCH'}`,
    );
    return {
      code: gateway.code,
      throughput: thr,
      ...(latency ? { latency } : {}),
      ...(extraLatency.length ? { latencyAtFixedRates: extraLatency } : {}),
      kafkaCheck: check,
    };
  } finally {
    if (clients.length > 0) await stopClients(clients);
    await gateway.handle.stop();
  }
}

/**
 * RSS per idle connection: `count` authenticated connections (hello received) to `workers`
 * gateway processes; RSS of the serving processes before and after, each read raw and after a
 * forced full GC (through the inspector), divided by the connections opened. With `hold`, keeps
 * them open that long and counts how many are still connected (client side and gateway side).
 */
async function idle(kind, round, count, workers, hold) {
  const topic = `bench.${round}.${kind}.idle${count}.${Date.now()}`;
  const gateway = await startGateway(kind, { workers, topic, port: await freePort(), inspect: true });
  let clients = [];
  const MiB = 2 ** 20;
  try {
    await sleep(CONFIG.settleS * 1000);
    const before = await memoryOf(gateway);
    const primaryRss = workers > 1 ? rssBytesOf([gateway.handle.pid]) : 0;
    const nClients = Math.max(1, Math.ceil(count / CONFIG.maxSocketsPerClient), workers > 1 ? 4 : 1);
    const perClient = Array.from(
      { length: nClients },
      (_, i) => Math.floor(count / nClients) + (i < count % nClients ? 1 : 0),
    );
    log(
      `${kind}: idle ${fmt(count)}: ${workers} gateway process(es), RSS before ${fmt(before.raw / MiB, 1)} MiB (after GC ${fmt(before.gc / MiB, 1)} MiB); ` +
        `connecting from ${nClients} client process(es) (${perClient.join(', ')})`,
    );
    // Two halves: the second half's slope is the marginal cost of a connection once the heap has
    // grown, besides the plain delta / N that the target is about.
    const half = perClient.map((n) => Math.floor(n / 2));
    const started = performance.now();
    const cpuAtStart = cpuSecondsOf(gateway.allPids());
    const machineAtStart = machineCpu();
    let clientCpuAtStart = 0;
    const first = await connectClients(gateway, half, `${kind}-idle${count}`, undefined, true);
    clients = first.clients;
    clientCpuAtStart = 0; // the clients started inside connectClients: their whole CPU counts
    await sleep(CONFIG.settleS * 1000);
    const middle = await memoryOf(gateway);
    const secondStarted = performance.now();
    const second = await connectClients(
      gateway,
      perClient.map((n, i) => n - half[i]),
      `${kind}-idle${count}`,
      clients,
      true,
    );
    const upgradeCpuSeconds = cpuSecondsOf(gateway.allPids()) - cpuAtStart;
    const clientCpuSeconds = cpuSecondsOf(clients.map((c) => c.pid)) - clientCpuAtStart;
    const machineAtEnd = machineCpu();
    const connectWall = (performance.now() - started) / 1000;
    const machineBusyCores = (machineAtEnd.busy - machineAtStart.busy) / connectWall;
    const connectSeconds = (secondStarted - started) / 1000 - CONFIG.settleS - 1 + second.connectMs / 1000;
    const opened = first.opened + second.opened;
    const failures = {};
    for (const f of [first.failures, second.failures])
      for (const [k, n] of Object.entries(f)) failures[k] = (failures[k] ?? 0) + n;
    log(
      `${kind}: idle ${fmt(count)}: ${fmt(opened)} connected (about ${fmt(opened / connectSeconds)} per second, gateway CPU ${fmt((upgradeCpuSeconds / opened) * 1e6)} µs, clients ${fmt((clientCpuSeconds / opened) * 1e6)} µs per connection; machine ${fmt(machineBusyCores, 2)}/2 busy)` +
        `${Object.keys(failures).length ? `, failures ${JSON.stringify(failures)}` : ''}; settling ${CONFIG.settleS} s`,
    );
    await sleep(CONFIG.settleS * 1000);
    const after = await memoryOf(gateway);
    const perWorker = gateway
      .servingPids()
      .map((pid) => ({ pid, fds: openFds(pid), rssMiB: rssBytesOf([pid]) / MiB }));
    const perConnKiB = (a, b, n) => (a - b) / n / 1024;
    const result = {
      code: gateway.code,
      connections: count,
      workers,
      opened,
      failures,
      connectSeconds,
      // Gateway CPU per accepted connection (TCP accept, HTTP upgrade, token check, hello), including
      // the two forced GCs of the middle reading (a few ms): an upper bound.
      gatewayCpuUsPerConnection: (upgradeCpuSeconds / opened) * 1e6,
      clientCpuUsPerConnection: (clientCpuSeconds / opened) * 1e6,
      machineBusyCoresWhileConnecting: machineBusyCores,
      rssBeforeMiB: before.raw / MiB,
      rssAfterMiB: after.raw / MiB,
      rssBeforeGcMiB: before.gc / MiB,
      rssAfterGcMiB: after.gc / MiB,
      primaryRssMiB: primaryRss / MiB,
      // The figure the target is about: RSS delta / N, both readings after a full GC.
      rssPerConnKiB: perConnKiB(after.gc, before.gc, opened),
      // Without forcing a GC: includes whatever garbage the heaps happen to hold at each reading.
      rssPerConnRawKiB: perConnKiB(after.raw, before.raw, opened),
      rssMarginalPerConnKiB: perConnKiB(after.gc, middle.gc, second.opened),
      heapPerConnKiB: perConnKiB(after.heapUsed, before.heapUsed, opened),
      externalPerConnKiB: perConnKiB(after.external, before.external, opened),
      perWorker,
      gatewaySeesConnections: await gatewayConnections(gateway),
    };
    log(
      `${kind}: idle ${fmt(count)}: RSS after ${fmt(after.raw / MiB, 1)} MiB (after GC ${fmt(after.gc / MiB, 1)}) → ${fmt(result.rssPerConnKiB, 2)} KiB per connection ` +
        `(without forced GC ${fmt(result.rssPerConnRawKiB, 2)}; second half alone ${fmt(result.rssMarginalPerConnKiB, 2)}; of which JS heap ${fmt(result.heapPerConnKiB, 2)}); ` +
        `fds per process ${perWorker.map((w) => w.fds).join(', ')}`,
    );
    if (hold > 0) {
      log(`${kind}: idle ${fmt(count)}: holding ${hold} s`);
      await sleep(hold * 1000);
      const status = await Promise.all(clients.map((c) => c.call('status')));
      const held = status.reduce((sum, x) => sum + x.open, 0);
      const closeCodes = {};
      for (const x of status)
        for (const [code, n] of Object.entries(x.closeCodes)) closeCodes[code] = (closeCodes[code] ?? 0) + n;
      const end = rssBytesOf(gateway.servingPids());
      Object.assign(result, {
        holdSeconds: hold,
        held,
        closeCodes,
        gatewaySeesConnectionsAfterHold: await gatewayConnections(gateway),
        rssAfterHoldMiB: end / MiB,
        rssPerConnAfterHoldKiB: perConnKiB(end, before.raw, opened),
      });
      log(
        `${kind}: idle ${fmt(count)}: after ${hold} s ${fmt(held)} of ${fmt(count)} still connected` +
          `${result.gatewaySeesConnectionsAfterHold !== undefined ? ` (gateway /metrics: ${fmt(result.gatewaySeesConnectionsAfterHold)})` : ''}` +
          `${Object.keys(closeCodes).length ? `, close codes ${JSON.stringify(closeCodes)}` : ''}; raw RSS ${fmt(result.rssPerConnAfterHoldKiB, 2)} KiB per connection`,
      );
    }
    await stopClients(clients);
    clients = [];
    return result;
  } finally {
    if (clients.length > 0) await stopClients(clients);
    await gateway.handle.stop(20_000);
  }
}

async function benchKind(kind, round) {
  const out = {};
  if (!opts['skip-throughput']) {
    Object.assign(out, await throughputAndLatency(kind, round, 1, true));
    if (!opts['no-multi']) out.multi = await throughputAndLatency(kind, round, CONFIG.multiWorkers, opts['multi-latency']);
  }
  if (!opts['skip-idle']) {
    out.idleSmall = await idle(kind, round, CONFIG.idleSmall, 1, 0);
    if (!opts['no-50k']) {
      try {
        out.idleLarge = await idle(kind, round, CONFIG.idleLarge, CONFIG.idleLargeWorkers, CONFIG.holdS);
      } catch (error) {
        log(`${kind}: idle ${fmt(CONFIG.idleLarge)} failed: ${error.message}`);
        out.idleLarge = { connections: CONFIG.idleLarge, failed: String(error.message) };
      }
    }
  }
  return out;
}

/**
 * Creates topics before a gateway starts, retrying: on a busy machine a freshly created topic's
 * metadata can lag, and kafkajs then fails createTopics(waitForLeaders) with "This server does not
 * host this topic-partition". The gateways' own ensureTopics then finds them already there.
 */
async function createTopics(topics) {
  const client = createKafka({ brokers: [kafka.brokers], clientId: 'bench-topics' });
  for (let attempt = 1; ; attempt++) {
    try {
      await ensureTopics(
        client,
        topics.map((topic) => ({ topic })),
      );
      const admin = client.admin();
      await admin.connect();
      try {
        const { topics: meta } = await admin.fetchTopicMetadata({ topics });
        const ready = meta.every((t) => t.partitions.length > 0 && t.partitions.every((p) => p.leader >= 0));
        if (ready) return;
        throw new Error(`topics ${topics.join(', ')} have no leaders yet`);
      } finally {
        await admin.disconnect();
      }
    } catch (error) {
      if (attempt >= 10) throw error;
      log(`kafka: creating ${topics.join(', ')} failed (${error.message}); retrying`);
      await sleep(1000 * attempt);
    }
  }
}

/**
 * A fresh broker answers its first produce requests slowly (JIT, page cache): measured here, a
 * bare kafkajs producer saw p99 0.8 s in the first 20 s and 8 ms after. Produce to a throwaway
 * topic first so the first gateway measured does not pay for it. The JVM's JIT compilers keep
 * working for a minute or more after that: after 10 s of warm-up they still took 0.2–0.5 cores
 * during the phases measured, competing with the gateway for the same two cores. So the warm-up
 * goes on (up to `CONFIG.brokerWarmupMaxS`) until the broker's compiler threads used less than
 * 2% of a core over the last 5 s. Batches of varying size (10–2,000 records of 288 bytes, keys
 * spread over the partitions) exercise the paths the gateways' requests take.
 */
async function warmUpBroker(seconds) {
  log(`kafka: warming the broker up for at least ${seconds} s, then until its JIT compilers are idle`);
  const client = createKafka({ brokers: [kafka.brokers], clientId: 'bench-warmup' });
  await createTopics(['bench.warmup']);
  const producer = createProducer(client, { maxInFlightRequests: 5 });
  await producer.connect();
  const compilerSeconds = () => threadCpuSecondsOf(brokerPids(), /^C[12] CompilerThre/);
  try {
    const value = Buffer.alloc(288, 7);
    const started = Date.now();
    const minUntil = started + seconds * 1000;
    const maxUntil = started + Math.max(seconds, CONFIG.brokerWarmupMaxS) * 1000;
    const inFlight = new Set();
    let n = 0;
    let sliceStart = { at: Date.now(), compiler: compilerSeconds() };
    let compilerCores = Number.NaN;
    for (;;) {
      const now = Date.now();
      if (now - sliceStart.at >= 5000) {
        const compiler = compilerSeconds();
        compilerCores = (compiler - sliceStart.compiler) / ((now - sliceStart.at) / 1000);
        sliceStart = { at: now, compiler };
        if (now >= minUntil && compilerCores < 0.02) break;
      }
      if (now >= maxUntil) break;
      const size = [10, 100, 400, 2000][n % 4];
      const messages = Array.from({ length: size }, () => ({ key: `warmup-${n++}`, value }));
      const send = producer
        .send({ topic: 'bench.warmup', acks: -1, messages })
        .finally(() => inFlight.delete(send));
      inFlight.add(send);
      if (inFlight.size >= 2) await Promise.race(inFlight);
      await sleep(2);
    }
    await Promise.all(inFlight);
    log(
      `kafka: warm-up sent ${fmt(n)} records in ${fmt((Date.now() - started) / 1000)} s; broker JIT compilers at the end ${fmt(compilerCores, 3)} cores`,
    );
  } finally {
    await producer.disconnect();
  }
}

// ---------------------------------------------------------------------------------------------
// Summary

function pick(round, kind, path) {
  let v = round[kind];
  for (const key of path) v = v?.[key];
  return typeof v === 'number' ? v : undefined;
}

function summarize(rounds) {
  const metrics = [
    {
      key: 'eventsPerSecond',
      label: 'sustained events/s acked (1 process)',
      path: ['throughput', 'eventsPerSecond'],
      digits: 0,
      target: `≥ ${fmt(TARGETS.eventsPerSecond)}`,
      met: (v) => v >= TARGETS.eventsPerSecond,
    },
    {
      key: 'cpuUsPerEvent',
      label: 'gateway CPU µs/event at max',
      path: ['throughput', 'gatewayCpuUsPerEvent'],
      digits: 2,
    },
    {
      key: 'eventsPerCoreSecond',
      label: 'events per gateway CPU-second (1e6/µs)',
      path: ['throughput', 'gatewayCpuUsPerEvent'],
      digits: 0,
      transform: (v) => 1e6 / v,
    },
    {
      key: 'brokerCpuUsPerEvent',
      label: 'broker CPU µs/event at max',
      path: ['throughput', 'brokerCpuUsPerEvent'],
      digits: 2,
    },
    {
      key: 'projected',
      label: 'projection: events/s, 2 cores of gateway+broker only',
      path: ['throughput', 'projectedEventsPerSecondTwoCores'],
      digits: 0,
    },
    {
      key: 'gatewayCores',
      label: 'gateway cores used at max',
      path: ['throughput', 'gatewayCores'],
      digits: 2,
    },
    { key: 'brokerCores', label: 'broker cores used at max', path: ['throughput', 'brokerCores'], digits: 2 },
    {
      key: 'clientCores',
      label: 'load-client cores used at max',
      path: ['throughput', 'clientCores'],
      digits: 2,
    },
    {
      key: 'otherCores',
      label: 'other processes on the machine, cores',
      path: ['throughput', 'otherCores'],
      digits: 2,
    },
    {
      key: 'multiEventsPerSecond',
      label: `sustained events/s, ${CONFIG.multiWorkers} gateway processes`,
      path: ['multi', 'throughput', 'eventsPerSecond'],
      digits: 0,
      target: `≥ ${fmt(TARGETS.eventsPerSecond)}`,
      met: (v) => v >= TARGETS.eventsPerSecond,
    },
    {
      key: 'multiCpuUsPerEvent',
      label: `gateway CPU µs/event, ${CONFIG.multiWorkers} processes`,
      path: ['multi', 'throughput', 'gatewayCpuUsPerEvent'],
      digits: 2,
    },
    {
      key: 'multiOtherCores',
      label: `other processes during ${CONFIG.multiWorkers}-process run, cores`,
      path: ['multi', 'throughput', 'otherCores'],
      digits: 2,
    },
    {
      key: 'latencyRate',
      label: 'latency test rate, events/s',
      path: ['latency', 'achievedEventsPerSecond'],
      digits: 0,
    },
    { key: 'p50', label: 'ack latency p50 ms (half max)', path: ['latency', 'p50Ms'], digits: 2 },
    {
      key: 'p99',
      label: 'ack latency p99 ms (half max)',
      path: ['latency', 'p99Ms'],
      digits: 2,
      target: `≤ ${TARGETS.ackP99Ms}`,
      met: (v) => v <= TARGETS.ackP99Ms,
    },
    {
      key: 'p99Fixed',
      label: `ack latency p99 ms @ ${fmt(CONFIG.latencyAt[0] ?? Number.NaN)} events/s`,
      path: ['latencyAtFixedRates', 0, 'p99Ms'],
      digits: 2,
    },
    {
      key: 'p50Fixed',
      label: `ack latency p50 ms @ ${fmt(CONFIG.latencyAt[0] ?? Number.NaN)} events/s`,
      path: ['latencyAtFixedRates', 0, 'p50Ms'],
      digits: 2,
    },
    {
      key: 'produceP99',
      label: 'Kafka produce p99 ms (half max)',
      path: ['latency', 'produceP99Ms'],
      digits: 2,
    },
    {
      key: 'produceP50',
      label: 'Kafka produce p50 ms (half max)',
      path: ['latency', 'produceP50Ms'],
      digits: 2,
    },
    {
      key: 'loopP99',
      label: 'gateway event-loop delay p99 ms (half max)',
      path: ['latency', 'loopDelayP99Ms'],
      digits: 2,
    },
    {
      key: 'loopMax',
      label: 'gateway event-loop delay max ms (half max)',
      path: ['latency', 'loopDelayMaxMs'],
      digits: 2,
    },
    {
      key: 'latOther',
      label: 'other processes during latency run, cores',
      path: ['latency', 'otherCores'],
      digits: 2,
    },
    {
      key: 'latCpu',
      label: 'gateway CPU µs/event at half max',
      path: ['latency', 'gatewayCpuUsPerEvent'],
      digits: 2,
    },
    {
      key: 'rss10k',
      label: `RSS KiB/idle conn @ ${fmt(CONFIG.idleSmall)} (GC'd)`,
      path: ['idleSmall', 'rssPerConnKiB'],
      digits: 2,
      target: `≤ ${TARGETS.rssPerConnKiB}`,
      met: (v) => v <= TARGETS.rssPerConnKiB,
    },
    {
      key: 'rss50k',
      label: `RSS KiB/idle conn @ ${fmt(CONFIG.idleLarge)} (GC'd)`,
      path: ['idleLarge', 'rssPerConnKiB'],
      digits: 2,
      target: `≤ ${TARGETS.rssPerConnKiB}`,
      met: (v) => v <= TARGETS.rssPerConnKiB,
    },
    {
      key: 'rss10kMarginal',
      label: `RSS KiB/conn @ ${fmt(CONFIG.idleSmall)}, 2nd half only`,
      path: ['idleSmall', 'rssMarginalPerConnKiB'],
      digits: 2,
    },
    {
      key: 'rss50kMarginal',
      label: `RSS KiB/conn @ ${fmt(CONFIG.idleLarge)}, 2nd half only`,
      path: ['idleLarge', 'rssMarginalPerConnKiB'],
      digits: 2,
    },
    {
      key: 'rss10kRaw',
      label: `RSS KiB/conn @ ${fmt(CONFIG.idleSmall)}, no forced GC`,
      path: ['idleSmall', 'rssPerConnRawKiB'],
      digits: 2,
      target: `≤ ${TARGETS.rssPerConnKiB}`,
      met: (v) => v <= TARGETS.rssPerConnKiB,
    },
    {
      key: 'rss50kRaw',
      label: `RSS KiB/conn @ ${fmt(CONFIG.idleLarge)}, no forced GC`,
      path: ['idleLarge', 'rssPerConnRawKiB'],
      digits: 2,
      target: `≤ ${TARGETS.rssPerConnKiB}`,
      met: (v) => v <= TARGETS.rssPerConnKiB,
    },
    {
      key: 'heap10k',
      label: `JS heap KiB/conn @ ${fmt(CONFIG.idleSmall)}`,
      path: ['idleSmall', 'heapPerConnKiB'],
      digits: 2,
    },
    {
      key: 'heap50k',
      label: `JS heap KiB/conn @ ${fmt(CONFIG.idleLarge)}`,
      path: ['idleLarge', 'heapPerConnKiB'],
      digits: 2,
    },
    {
      key: 'upgradeCpu',
      label: 'gateway CPU µs per connection (upgrade)',
      path: ['idleSmall', 'gatewayCpuUsPerConnection'],
      digits: 0,
    },
    {
      key: 'opened50k',
      label: `connections opened of ${fmt(CONFIG.idleLarge)}`,
      path: ['idleLarge', 'opened'],
      digits: 0,
    },
    {
      key: 'held50k',
      label: `still connected after ${CONFIG.holdS} s hold`,
      path: ['idleLarge', 'held'],
      digits: 0,
      target: `${fmt(TARGETS.held)}`,
      met: (v) => v >= TARGETS.held,
    },
  ];
  const lower = new Set([
    'cpuUsPerEvent',
    'multiCpuUsPerEvent',
    'latCpu',
    'p50',
    'p99',
    'produceP50',
    'produceP99',
    'loopP99',
    'loopMax',
    'p99Fixed',
    'p50Fixed',
    'rss10k',
    'rss50k',
    'rss10kRaw',
    'rss50kRaw',
    'rss10kMarginal',
    'rss50kMarginal',
    'heap10k',
    'heap50k',
    'upgradeCpu',
  ]);
  const rows = metrics.map((m) => {
    const per = {};
    for (const kind of ['uws', 'ws']) {
      per[kind] = rounds
        .map((r) => pick(r, kind, m.path))
        .filter((v) => v !== undefined)
        .map((v) => (m.transform ? m.transform(v) : v));
    }
    const uws = per.uws.length ? median(per.uws) : undefined;
    const ws = per.ws.length ? median(per.ws) : undefined;
    const ratio = uws !== undefined && ws !== undefined && ws !== 0 ? uws / ws : undefined;
    const met = m.met && uws !== undefined ? m.met(uws) : undefined;
    return {
      key: m.key,
      label: m.label,
      digits: m.digits,
      uws,
      ws,
      ratio,
      perRound: per,
      target: m.target,
      met,
      lowerIsBetter: lower.has(m.key),
    };
  });
  return rows;
}

function table(allRows) {
  // Rows nothing measured in this run (skipped phases, no fixed-rate latency in --quick) are left out.
  const rows = allRows.filter((r) => r.uws !== undefined || r.ws !== undefined);
  const header = ['metric', 'uWS (dwell)', 'ws baseline', 'uWS/ws', 'target', 'met'];
  const lines = rows.map((r) => [
    r.label,
    fmt(r.uws, r.digits),
    fmt(r.ws, r.digits),
    r.ratio === undefined ? '—' : fmt(r.ratio, 2),
    r.target ?? '',
    r.met === undefined ? '' : r.met ? 'yes' : 'NO',
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i].length)));
  const row = (cells) =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  return [row(header), widths.map((w) => '-'.repeat(w)).join('  '), ...lines.map(row)].join('\n');
}

/** JSON text as the repository's Prettier would write it (so `npm run format:check` passes). */
async function formatJson(value, path) {
  const text = `${JSON.stringify(value, null, 2)}\n`;
  try {
    const prettier = await import('prettier');
    const options = (await prettier.resolveConfig(path)) ?? {};
    return await prettier.format(text, { ...options, filepath: path });
  } catch {
    return text;
  }
}

function machine() {
  let kernel = '';
  try {
    kernel = execFileSync('uname', ['-r'], { encoding: 'utf8' }).trim();
  } catch {
    // unknown
  }
  return {
    cpu: cpus()[0]?.model,
    cores: cpus().length,
    memGiB: Math.round(totalmem() / 2 ** 30),
    node: process.versions.node,
    kernel,
    writeback: writebackSettings(),
  };
}

/** The commit and whether the gateway's sources differ from it (read-only git commands). */
function gitState(root = ROOT) {
  try {
    const commit = execFileSync('git', ['-C', root, 'rev-parse', '--short', 'HEAD'], {
      encoding: 'utf8',
    }).trim();
    const dirty = execFileSync(
      'git',
      ['-C', root, 'status', '--porcelain', '--', 'services/gateway', 'services/cli', 'packages'],
      {
        encoding: 'utf8',
      },
    )
      .split('\n')
      .filter(Boolean);
    return { commit, uncommittedChangesInGatewayOrPackages: dirty.length };
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------------------------------------

async function main() {
  if (!existsSync(join(ROOT, 'services', 'gateway', 'dist', 'index.js')))
    throw new Error('not built: run `npm run build` first (npm run bench:gateway does)');
  const host = machine();
  log(
    `gateway benchmark: ${CONFIG.rounds} round(s) of ${CONFIG.kinds.join(' + ')}${quick ? ' (quick)' : ''}; machine ${JSON.stringify(host)}`,
  );
  if (!host.writeback.steady)
    log(
      'note: the kernel writes dirty pages back in large bursts here (vm.dirty_background_bytes unset or above 64 MiB), ' +
        "and each burst of the broker's log stalls the machine: ack latency tails will include them " +
        '(docs/operations.md, "Broker hosts"; e.g. sysctl -w vm.dirty_background_bytes=67108864)',
    );
  kafka = await startLocalKafka({ onProgress: (line) => log(`kafka: ${line}`) });
  brokerPids = () => processTree(kafka.pid);
  log(`kafka ${kafka.version} ready at ${kafka.brokers}`);
  const rounds = [];
  try {
    await warmUpBroker(CONFIG.brokerWarmupS);
    for (let round = 1; round <= CONFIG.rounds; round++) {
      // Alternate the order so slow drift (page cache, broker log growth) does not favour one side.
      const kinds = round % 2 === 1 ? CONFIG.kinds : [...CONFIG.kinds].reverse();
      const result = {};
      for (const kind of kinds) {
        log(`— round ${round}/${CONFIG.rounds}: ${sideName(kind)}`);
        result[kind] = await benchKind(kind, round);
      }
      rounds.push(result);
    }
  } finally {
    await kafka.stop();
  }
  const rows = summarize(rounds);
  const report = {
    benchmark: 'gateway',
    command: `npm run bench:gateway${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}`,
    finishedAt: new Date().toISOString(),
    durationSeconds: Math.round((Date.now() - t0) / 1000),
    git: gitState(),
    // With --against: the "ws" side is the dwell gateway of this checkout.
    ...(CONFIG.against === undefined ? {} : { against: { dir: CONFIG.against, git: gitState(CONFIG.against) } }),
    // Hashes of the built gateway code loaded by the gateway processes of this run (more than one:
    // the checkout was rebuilt while the benchmark ran).
    codeHashes: [...codeHashes],
    machine: host,
    kafka: { version: kafka.version, partitions: 4, acks: 'all (-1)' },
    config: CONFIG,
    // Gateway settings this run took from the environment (e.g. GATEWAY_LINGER_MS=5 for an A/B run).
    gatewayEnv: Object.fromEntries(Object.entries(process.env).filter(([name]) => name.startsWith('GATEWAY_'))),
    targets: TARGETS,
    medians: Object.fromEntries(
      rows.map((r) => [
        r.key,
        {
          label: r.label,
          uws: r.uws,
          ws: r.ws,
          ratio: r.ratio,
          target: r.target,
          met: r.met,
          perRound: r.perRound,
        },
      ]),
    ),
    rounds,
  };
  const out = opts.out ?? join(HERE, 'results', quick ? 'gateway-quick.json' : 'gateway-latest.json');
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, await formatJson(report, out));
  if (codeHashes.size > 1) {
    process.stdout.write(
      `\nWARNING: the built gateway code changed during the run (${[...codeHashes].join(', ')}); rounds may have measured different code.\n`,
    );
  }
  process.stdout.write(
    `\nMedians of ${CONFIG.rounds} round(s) (${report.durationSeconds} s); results in ${out}\n\n${table(rows)}\n`,
  );
}

main().then(
  () => process.exit(0),
  async (error) => {
    process.stderr.write(`gateway benchmark failed: ${error?.stack ?? error}\n`);
    await stopAll();
    await kafka?.stop().catch(() => undefined);
    process.exit(1);
  },
);
