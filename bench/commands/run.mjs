#!/usr/bin/env node
// The commands benchmark: round trip backend → Kafka → gateway → client → reply → Kafka → backend,
// with 10,000 users connected and event traffic running.
//
//   npm run bench:commands                      # 5 rounds of 2,000 commands, medians (≈ 3 minutes)
//   npm run bench:commands -- --quick           # 2 rounds of 500 commands, 2,000 users
//
// Options: --rounds N, --commands N (per round), --rate N (commands/s, open loop), --users N,
//          --events-per-s N (0: no event traffic), --workers N (gateway processes on one port),
//          --out FILE (default bench/commands/results/latest.json).
//
// Setup, once: a real Kafka broker (the local one from Maven Central jars unless KAFKA_BROKERS is
// set), `dwell gateway` with GATEWAY_WORKERS processes sharing one port, two load-client processes
// holding the users' WebSockets (each user answers every command at once) and sending events at
// --events-per-s, and a command bus (@dwell/commands) in this process. Each round sends --commands
// commands to random users at --rate per second, open loop (a send never waits for the previous
// one), and times each from `bus.send` to its outcome, after 10 s of the same load unmeasured. Reported: p50/p90/p99/max per round and the
// median of each across rounds, every outcome counted (anything but `replied` is a failure), the
// load average before and after.
import { fork, spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { commandTopicSpecs, createCommandBus } from '@dwell/commands';
import { createKafka, ensureTopics, freePort, startLocalKafka } from '@dwell/kafka';

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(HERE, '..', '..');
const CLI = join(ROOT, 'services', 'cli', 'bin', 'dwell.js');
const CLIENT = join(HERE, 'client.mjs');

const { values: opts } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    rounds: { type: 'string' },
    commands: { type: 'string' },
    rate: { type: 'string' },
    users: { type: 'string' },
    'events-per-s': { type: 'string' },
    workers: { type: 'string' },
    out: { type: 'string' },
  },
});
const quick = opts.quick;
const CONFIG = {
  rounds: Number(opts.rounds ?? (quick ? 2 : 5)),
  commands: Number(opts.commands ?? (quick ? 500 : 2000)),
  rate: Number(opts.rate ?? 100),
  users: Number(opts.users ?? (quick ? 2000 : 10_000)),
  eventsPerSecond: Number(opts['events-per-s'] ?? 2000),
  eventsPerFrame: 10,
  workers: Number(opts.workers ?? 2),
  clientProcesses: 2,
  timeoutMs: 5000,
};
const TARGET = { p50Ms: 5, p99Ms: 20 };
const SITE = 'bench-site';
const SECRET = 'bench-secret-0123456789abcdef';

const t0 = Date.now();
const log = (line) =>
  process.stdout.write(`[${((Date.now() - t0) / 1000).toFixed(0).padStart(4)} s] ${line}\n`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const load = () =>
  loadavg()
    .map((l) => l.toFixed(2))
    .join(' ');

function percentile(sorted, p) {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}
function median(values) {
  const xs = values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
  if (xs.length === 0) return NaN;
  const mid = xs.length >> 1;
  return xs.length % 2 === 1 ? xs[mid] : (xs[mid - 1] + xs[mid]) / 2;
}

const children = [];
const killAll = () => {
  for (const child of children)
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
};
process.on('exit', killAll);
for (const signal of ['SIGINT', 'SIGTERM']) process.once(signal, () => process.exit(130));

/** An IPC call to a load client. */
let callId = 0;
function call(child, op, args = {}) {
  const id = ++callId;
  return new Promise((resolvePromise, reject) => {
    const onMessage = (message) => {
      if (message.id !== id) return;
      child.off('message', onMessage);
      if (message.error) reject(new Error(message.error));
      else resolvePromise(message);
    };
    child.on('message', onMessage);
    child.send({ op, id, ...args });
  });
}

async function main() {
  log(
    `machine: ${cpus().length} cores (${cpus()[0]?.model ?? '?'}), ${(totalmem() / 2 ** 30).toFixed(0)} GiB, load average ${load()}`,
  );
  log(`config: ${JSON.stringify(CONFIG)}`);
  let broker;
  let brokers = process.env.KAFKA_BROKERS;
  if (!brokers) {
    // The launcher formats storage with a random cluster id; one that starts with '-' is taken
    // for an option by kafka-storage (1 in 64 starts): try again with a fresh id.
    for (let attempt = 1; broker === undefined; attempt++) {
      try {
        broker = await startLocalKafka({ onProgress: (line) => log(line) });
      } catch (error) {
        if (attempt >= 3 || !String(error).includes('--cluster-id')) throw error;
        log('the broker refused its random cluster id; starting again');
      }
    }
    brokers = broker.brokers;
  }
  const suffix = `${Date.now().toString(36)}`;
  const topics = {
    commands: `bench.commands.${suffix}`,
    replies: `bench.replies.${suffix}`,
    presence: `bench.presence.${suffix}`,
  };
  const eventsTopic = `bench.events.${suffix}`;
  const kafka = createKafka({ brokers: brokers.split(','), clientId: 'bench-commands' });
  await ensureTopics(kafka, [
    { topic: eventsTopic },
    { topic: `${eventsTopic}.rejected` },
    ...commandTopicSpecs(topics),
  ]);

  const port = await freePort();
  const gateway = spawn(process.execPath, [CLI, 'gateway'], {
    env: {
      ...process.env,
      KAFKA_BROKERS: brokers,
      DWELL_SITES: JSON.stringify({ [SITE]: { secret: SECRET, origins: ['*'] } }),
      GATEWAY_HOST: '127.0.0.1',
      GATEWAY_PORT: String(port),
      GATEWAY_WORKERS: String(CONFIG.workers),
      GATEWAY_ID: 'bench-gw',
      DWELL_EVENTS_TOPIC: eventsTopic,
      DWELL_REJECTED_TOPIC: `${eventsTopic}.rejected`,
      DWELL_COMMANDS_TOPIC: topics.commands,
      DWELL_REPLIES_TOPIC: topics.replies,
      DWELL_PRESENCE_TOPIC: topics.presence,
      GATEWAY_RATE_EVENTS_PER_S: '1000000',
      GATEWAY_RATE_BURST: '1000000',
      GATEWAY_MAX_CONNECTIONS_PER_IP: '1000000',
      LOG_LEVEL: 'warn',
    },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  children.push(gateway);
  const results = {
    config: CONFIG,
    target: TARGET,
    machine: { cores: cpus().length, loadBefore: loadavg() },
    rounds: [],
  };
  let bus;
  const clients = [];
  try {
    for (;;) {
      if (gateway.exitCode !== null) throw new Error(`the gateway exited with ${gateway.exitCode}`);
      try {
        const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
        const up = new Set([...text.matchAll(/worker="(\d+)"/g)].map((m) => m[1]));
        if (CONFIG.workers === 1 ? text.includes('dwell_gateway_connections') : up.size >= CONFIG.workers)
          break;
      } catch {
        // not listening yet
      }
      await sleep(250);
    }
    log(`gateway: ${CONFIG.workers} worker process(es) on port ${port}`);

    const perClient = Math.ceil(CONFIG.users / CONFIG.clientProcesses);
    const users = [];
    for (let c = 0; c < CONFIG.clientProcesses; c++) {
      const child = fork(CLIENT, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
      children.push(child);
      clients.push(child);
      const count = Math.min(perClient, CONFIG.users - c * perClient);
      for (let i = 0; i < count; i++) users.push(`c${c}-${i}`);
    }
    const connectStarted = Date.now();
    const opened = await Promise.all(
      clients.map((child, c) =>
        call(child, 'connect', {
          url: `ws://127.0.0.1:${port}/v1/ws`,
          count: Math.min(perClient, CONFIG.users - c * perClient),
          prefix: `c${c}`,
          localAddress: `127.0.${c + 1}.${c + 2}`,
          site: SITE,
          secret: SECRET,
        }),
      ),
    );
    const open = opened.reduce((n, o) => n + o.opened, 0);
    log(
      `connected ${open} of ${CONFIG.users} users in ${((Date.now() - connectStarted) / 1000).toFixed(1)} s`,
    );
    if (open < CONFIG.users) throw new Error(`only ${open} connections opened`);

    bus = await createCommandBus({
      brokers: brokers.split(','),
      topics,
      createTopics: false,
      clientId: 'bench-requester',
    });
    const seenStarted = Date.now();
    for (;;) {
      const missing = users.filter((u) => !bus.isOnline(u)).length;
      if (missing === 0) break;
      if (Date.now() - seenStarted > 120_000) throw new Error(`${missing} users never appeared in presence`);
      await sleep(200);
    }
    log(`presence shows all ${users.length} users after ${((Date.now() - seenStarted) / 1000).toFixed(1)} s`);

    if (CONFIG.eventsPerSecond > 0) {
      const framesPerSecond = CONFIG.eventsPerSecond / CONFIG.eventsPerFrame / CONFIG.clientProcesses;
      await Promise.all(
        clients.map((child) =>
          call(child, 'events', { framesPerSecond, eventsPerFrame: CONFIG.eventsPerFrame }),
        ),
      );
      log(`event traffic: ${CONFIG.eventsPerSecond} events/s in frames of ${CONFIG.eventsPerFrame}`);
    }
    await sleep(3000);

    const send = (i) => {
      const user = users[Math.floor(Math.random() * users.length)];
      const started = performance.now();
      return bus
        .send(user, { name: 'ping', args: { i } }, { timeoutMs: CONFIG.timeoutMs })
        .then((outcome) => {
          const done = performance.now();
          const at = outcome.outcome === 'replied' ? Number(outcome.payload?.at) : NaN;
          const wall = (t) => performance.timeOrigin + t;
          // Down: bus.send → the page has it; up: the page answered → the outcome is here.
          return {
            outcome: outcome.outcome,
            ms: done - started,
            down: at - wall(started),
            up: wall(done) - at,
          };
        });
    };
    // Warm up (JIT, connections, metadata, the garbage of 10,000 handshakes) for 10 s at the
    // measured rate before measuring; these commands are not counted.
    const warmup = CONFIG.rate * 10;
    await Promise.all(
      Array.from({ length: warmup }, (_, i) => sleep((i * 1000) / CONFIG.rate).then(() => send(-1 - i))),
    );
    log(`warmed up with ${warmup} commands`);

    for (let round = 1; round <= CONFIG.rounds; round++) {
      const loadStart = loadavg()[0];
      const statsBefore = await Promise.all(clients.map((child) => call(child, 'stats')));
      const interval = 1000 / CONFIG.rate;
      const began = performance.now();
      const pending = [];
      for (let i = 0; i < CONFIG.commands; i++) {
        const due = began + i * interval;
        const wait = due - performance.now();
        if (wait > 1) await sleep(wait);
        pending.push(send(i));
      }
      const samples = await Promise.all(pending);
      const statsAfter = await Promise.all(clients.map((child) => call(child, 'stats')));
      const replied = samples.filter((s) => s.outcome === 'replied');
      const ms = Float64Array.from(replied.map((s) => s.ms)).sort();
      const down = Float64Array.from(replied.map((s) => s.down)).sort();
      const up = Float64Array.from(replied.map((s) => s.up)).sort();
      const outcomes = {};
      for (const s of samples) outcomes[s.outcome] = (outcomes[s.outcome] ?? 0) + 1;
      const eventsAcked =
        statsAfter.reduce((n, s) => n + s.eventsAcked, 0) -
        statsBefore.reduce((n, s) => n + s.eventsAcked, 0);
      const seconds = (performance.now() - began) / 1000;
      const row = {
        round,
        replied: ms.length,
        outcomes,
        p50: percentile(ms, 50),
        p90: percentile(ms, 90),
        p99: percentile(ms, 99),
        max: percentile(ms, 100),
        down: { p50: percentile(down, 50), p99: percentile(down, 99) },
        up: { p50: percentile(up, 50), p99: percentile(up, 99) },
        eventsAckedPerSecond: Math.round(eventsAcked / seconds),
        load1: [loadStart, loadavg()[0]],
      };
      results.rounds.push(row);
      log(
        `round ${round}: ${ms.length}/${samples.length} replied ${JSON.stringify(outcomes)}  p50 ${row.p50.toFixed(2)} ms  p90 ${row.p90.toFixed(2)}  ` +
          `p99 ${row.p99.toFixed(2)}  max ${row.max.toFixed(1)}  (down p50/p99 ${row.down.p50.toFixed(2)}/${row.down.p99.toFixed(1)}, ` +
          `up ${row.up.p50.toFixed(2)}/${row.up.p99.toFixed(1)})  events acked ${row.eventsAckedPerSecond}/s  load ${row.load1.map((l) => l.toFixed(2)).join('→')}`,
      );
    }
    const stats = await Promise.all(clients.map((child) => call(child, 'stats')));
    results.clients = stats;
    results.machine.loadAfter = loadavg();
    const med = (key) => median(results.rounds.map((r) => r[key]));
    results.median = { p50: med('p50'), p90: med('p90'), p99: med('p99'), max: med('max') };
    const failures = results.rounds.reduce((n, r) => n + (CONFIG.commands - r.replied), 0);
    log('');
    log(
      `median of ${CONFIG.rounds} rounds: p50 ${results.median.p50.toFixed(2)} ms (target ≤ ${TARGET.p50Ms}), p99 ${results.median.p99.toFixed(2)} ms (target ≤ ${TARGET.p99Ms}), max ${results.median.max.toFixed(1)} ms`,
    );
    const reasons = {};
    for (const s of stats)
      for (const [reason, n] of Object.entries(s.errorReasons)) reasons[reason] = (reasons[reason] ?? 0) + n;
    log(
      `not replied: ${failures}; client errors ${JSON.stringify(reasons)}, nacks ${stats.reduce((n, s) => n + s.nacks, 0)}, ` +
        `closed ${stats.reduce((n, s) => n + s.closed, 0)}`,
    );
    log(
      `load average before ${results.machine.loadBefore.map((l) => l.toFixed(2)).join(' ')}, after ${load()}`,
    );
    const out = resolve(opts.out ?? join(HERE, 'results', 'latest.json'));
    mkdirSync(dirname(out), { recursive: true });
    writeFileSync(out, `${JSON.stringify(results, null, 2)}\n`);
    log(`results: ${out}`);
  } finally {
    await bus?.close().catch(() => undefined);
    await Promise.all(clients.map((child) => call(child, 'stop').catch(() => undefined)));
    if (gateway.exitCode === null) {
      gateway.kill('SIGTERM');
      await Promise.race([new Promise((r) => gateway.once('exit', r)), sleep(20_000)]);
    }
    killAll();
    await broker?.stop();
  }
}

main().then(
  () => process.exit(0),
  (error) => {
    process.stderr.write(`bench:commands failed: ${error?.stack ?? error}\n`);
    process.exit(1);
  },
);
