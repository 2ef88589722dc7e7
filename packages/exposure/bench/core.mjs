// Throughput of the exposure core on realistic traffic, against the naive reference model.
//
//   npx tsc -b packages/exposure && node packages/exposure/bench/core.mjs [--events 300000] [--runs 7] [--batch 5000] [--concurrent 2000] [--only apply]
//
// `--only apply` measures the apply loop alone (for profiling it: node --cpu-prof … --only apply).
//
// Traffic: page views of ~30 events (start, render, ticks every second, a change or two, end),
// 1-3 impressions each, --concurrent (2,000) page views receiving events at any moment, 1% exact resends and 0.5% events logged
// out of order. The log is kept off the V8 heap as JSON in Buffers of 100 events, parsed chunk
// by chunk (untimed) so every event owns its strings as a decoded record does, and so the heap
// holds what a processor's holds: the partition state and the messages in flight. Only the calls
// into the core are timed, in wall-clock and in CPU time (this process, GC threads included; on a
// shared machine read CPU). Medians of --runs runs after one warm-up run:
//   core apply      PartitionExposure.apply for every event
//   core + reports  the same, plus takeChanges() every --batch events (a consumer batch)
//   naive           keep every event per page view and, every --batch events, recompute each
//                   changed page view from scratch with the reference model (no lateness)
import { performance } from 'node:perf_hooks';
import { PartitionExposure } from '../dist/index.js';
import { referencePageView } from '../dist/reference-model.js';

const args = Object.fromEntries(
  process.argv
    .slice(2)
    .join('=')
    .split('--')
    .filter(Boolean)
    .map((kv) => kv.replace(/=$/, '').split('=')),
);
const EVENTS = Number(args.events ?? 300_000);
const RUNS = Number(args.runs ?? 7);
const BATCH = Number(args.batch ?? 5000);
const CHUNK = 100;
/** Page views receiving events at once (each lives ~30 s). */
const CONCURRENT = Number(args.concurrent ?? 2000);

/** mulberry32: a seeded PRNG so every run measures the same log. */
function prng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function generateLog(total) {
  const rand = prng(42);
  const int = (lo, hi) => lo + Math.floor(rand() * (hi - lo + 1));
  const UA =
    'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36';
  const SIZES = [
    [300, 250],
    [728, 90],
    [970, 250],
    [640, 360],
  ];
  const events = [];
  let pv = 0;
  const base = 1_700_000_000_000;
  while (events.length < total) {
    const id = `0190f5a2-${String(pv).padStart(4, '0')}-7000-8000-${String(pv).padStart(12, '0')}`;
    // One page view starts every 30 s / CONCURRENT, each lives ~30 s.
    const start = base + Math.floor((pv * 30_000) / CONCURRENT);
    const impressions = Array.from({ length: int(1, 3) }, (_, i) => {
      const [width, height] = SIZES[int(0, SIZES.length - 1)];
      return {
        impression_id: `${id}-imp-${i}`,
        ad_id: `ad-${int(1, 500)}`,
        campaign_id: `camp-${int(1, 40)}`,
        width,
        height,
        media: width === 640 ? 'video' : 'display',
      };
    });
    const n = int(24, 36);
    let t = int(5, 50);
    for (let seq = 1; seq <= n; seq++) {
      const kind =
        seq === 1 ? 'start' : seq === 2 ? 'render' : seq === n ? 'end' : rand() < 0.05 ? 'change' : 'tick';
      const visibleShare = rand() < 0.8 ? 1 : rand() < 0.5 ? 0.4 : 0;
      events.push({
        recv_ms: start + t + int(5, 60),
        gateway_id: 'gw-1',
        site_id: `site-${pv % 50}`,
        user_id: `user-${pv}`,
        user_agent: UA,
        transport: 'ws_json',
        event: {
          page_view_id: id,
          seq,
          kind,
          t_mono_ms: t,
          t_wall_ms: start + t,
          page: { visible: true, focused: rand() < 0.9, foreground: true },
          impressions:
            seq === 1
              ? []
              : impressions.map((imp) => {
                  const total_px = imp.width * imp.height;
                  return {
                    ...imp,
                    visible_px: Math.floor(total_px * visibleShare),
                    total_px,
                    playing: imp.media === 'video',
                    reasons: visibleShare < 1 ? ['clipped'] : [],
                  };
                }),
        },
      });
      t += seq === 1 ? int(50, 300) : kind === 'change' ? int(100, 900) : 1000;
    }
    pv++;
  }
  events.length = total;
  events.sort((a, b) => a.recv_ms - b.recv_ms);
  // 0.5% swapped with the previous event of the log (often the same page view), 1% resent later.
  for (let i = 1; i < events.length; i++)
    if (rand() < 0.005) [events[i - 1], events[i]] = [events[i], events[i - 1]];
  const withResends = [];
  for (const e of events) {
    withResends.push(e);
    if (rand() < 0.01) withResends.push({ ...e, recv_ms: e.recv_ms + 2000, gateway_id: 'gw-2' });
  }
  const batches = [];
  for (let i = 0; i < withResends.length; i += CHUNK)
    batches.push(Buffer.from(JSON.stringify(withResends.slice(i, i + CHUNK))));
  return { batches, events: withResends.length, pageViews: pv };
}

/** Parses chunk after chunk and times `step` on each; returns wall-clock and CPU seconds in `step`. */
function timed(log, step) {
  let wall = 0;
  let cpu = 0;
  for (const buffer of log.batches) {
    const chunk = JSON.parse(buffer.toString());
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    step(chunk);
    wall += performance.now() - t0;
    const c = process.cpuUsage(c0);
    cpu += c.user + c.system;
  }
  return { wall: wall / 1000, cpu: cpu / 1e6 };
}

function coreApply(log) {
  const partition = new PartitionExposure();
  return timed(log, (batch) => {
    for (const e of batch) partition.apply(e);
  });
}

function coreWithReports(log) {
  const partition = new PartitionExposure();
  let applied = 0;
  return timed(log, (chunk) => {
    for (const e of chunk) {
      partition.apply(e);
      if (++applied % BATCH !== 0) continue;
      const { closed, changed } = partition.takeChanges();
      if (closed.length + changed.length === 0) throw new Error('a batch without changes');
    }
  });
}

function naive(log) {
  const byPageView = new Map();
  const changed = new Set();
  let applied = 0;
  return timed(log, (chunk) => {
    for (const e of chunk) {
      const id = e.event.page_view_id;
      const events = byPageView.get(id);
      if (events === undefined) byPageView.set(id, [e]);
      else events.push(e);
      changed.add(id);
      if (++applied % BATCH !== 0) continue;
      for (const pv of changed) {
        const all = byPageView.get(pv);
        const first = all[0];
        referencePageView(
          { page_view_id: pv, site_id: first.site_id, user_id: first.user_id, user_agent: first.user_agent },
          all,
        );
      }
      changed.clear();
    }
  });
}

function measure(name, fn, log) {
  const wall = [];
  const cpu = [];
  for (let r = 0; r < RUNS + 1; r++) {
    const seconds = fn(log);
    if (r === 0) continue; // the first run warms the JIT up
    wall.push(log.events / seconds.wall);
    cpu.push(log.events / seconds.cpu);
  }
  const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const fmt = (n) => Math.round(n).toLocaleString('en-US').padStart(11);
  const result = { wall: median(wall), cpu: median(cpu) };
  console.log(
    `${name.padEnd(16)} wall ${fmt(result.wall)} events/s   cpu ${fmt(result.cpu)} events/s   (cpu min ${fmt(Math.min(...cpu)).trim()}, max ${fmt(Math.max(...cpu)).trim()})`,
  );
  return result;
}

const log = generateLog(EVENTS);
console.log(
  `node ${process.version}, ${log.events.toLocaleString('en-US')} events, ${log.pageViews.toLocaleString('en-US')} page views, median of ${RUNS} runs, consumer batches of ${BATCH} events, ${CONCURRENT} page views active at once`,
);
const apply = measure('core apply', coreApply, log);
if (args.only === 'apply') process.exit(0);
const reports = measure('core + reports', coreWithReports, log);
const baseline = measure('naive', naive, log);
const ratio = (a, b) => `${(a / b).toFixed(1)}x`;
console.log(
  `core/naive (cpu): apply ${ratio(apply.cpu, baseline.cpu)}, with reports ${ratio(reports.cpu, baseline.cpu)}; (wall): apply ${ratio(apply.wall, baseline.wall)}, with reports ${ratio(reports.wall, baseline.wall)}`,
);
