// Micro-benchmark of the hot paths, against the compiled package:
//
//   npx tsc -b packages/protocol && node packages/protocol/bench/codec.mjs
//
// Prints the median ns per event over interleaved rounds, and each figure as a multiple of
// `JSON.parse` alone on the same frame text, measured in the same run (the floor for parsing JSON).
import { performance } from 'node:perf_hooks';
import {
  decodeBinaryFrame,
  decodePageEvent,
  encodeClientBatch,
  encodeJsonFrame,
  encodePageEvent,
  parseJsonFrame,
  stampEvent,
} from '../dist/index.js';

const EVENTS_PER_FRAME = 10;
const IMPRESSIONS_PER_EVENT = 3;
const ROUNDS = 21;
const TARGET_MS_PER_ROUND = 40;

function impression(n) {
  return {
    impression_id: `0190f5e2-7c3a-7d4e-9f00-${String(n).padStart(12, '0')}`,
    ad_id: `ad-${1000 + n}`,
    campaign_id: 'campaign-2024-q4-homepage',
    width: 300,
    height: 250,
    media: n % 2 === 0 ? 'display' : 'video',
    visible_px: 60000,
    total_px: 75000,
    playing: n % 2 === 1,
    reasons: n === 0 ? [] : ['clipped'],
  };
}

const events = Array.from({ length: EVENTS_PER_FRAME }, (_, i) => ({
  page_view_id: '0190f5e2-7c3a-7d4e-9f00-5a1b2c3d4e5f',
  seq: 100 + i,
  kind: 'tick',
  t_mono_ms: 120_000 + 1000 * i,
  t_wall_ms: 1_732_860_000_000 + 1000 * i,
  page: { visible: true, focused: true, foreground: true },
  impressions: Array.from({ length: IMPRESSIONS_PER_EVENT }, (_, n) => impression(n)),
}));
const text = encodeJsonFrame(events);
const bytes = Buffer.from(text, 'utf8');
const binary = encodeClientBatch(events);
const stamp = {
  recv_ms: 1_732_860_000_500,
  gateway_id: 'gw-1',
  site_id: 'site-1',
  user_id: 'user-1',
  user_agent:
    'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36',
  transport: 'ws_json',
};
const stamped = events.map((e) => stampEvent(e, stamp));
const ledger = stamped.map((e) => encodePageEvent(e));

let sink = 0;
/** Each case processes one frame's worth of events per call. */
const cases = {
  'JSON.parse (baseline)': () => {
    sink += JSON.parse(text).events.length;
  },
  'parseJsonFrame(string)': () => {
    const outcome = parseJsonFrame(text);
    sink += outcome.ok ? outcome.events.length : -1;
  },
  'parseJsonFrame(bytes)': () => {
    const outcome = parseJsonFrame(bytes);
    sink += outcome.ok ? outcome.events.length : -1;
  },
  encodePageEvent: () => {
    for (const e of stamped) sink += encodePageEvent(e).length;
  },
  decodeBinaryFrame: () => {
    const outcome = decodeBinaryFrame(binary);
    sink += outcome.ok ? outcome.events.length : -1;
  },
  decodePageEvent: () => {
    for (const b of ledger) sink += decodePageEvent(b).event.seq;
  },
};

// Sanity: every case works on this input before it is timed.
for (const fn of Object.values(cases)) fn();
if (!parseJsonFrame(text).ok || !decodeBinaryFrame(binary).ok)
  throw new Error('benchmark input is not valid');

// Calibrate iterations per round so each round takes about TARGET_MS_PER_ROUND.
const iterations = {};
for (const [name, fn] of Object.entries(cases)) {
  let n = 64;
  for (;;) {
    const start = performance.now();
    for (let i = 0; i < n; i++) fn();
    const elapsed = performance.now() - start;
    if (elapsed > TARGET_MS_PER_ROUND / 4) {
      iterations[name] = Math.max(1, Math.round((n * TARGET_MS_PER_ROUND) / elapsed));
      break;
    }
    n *= 2;
  }
}

// Interleaved rounds, so drift (GC, frequency scaling) hits every case alike.
const samples = Object.fromEntries(Object.keys(cases).map((name) => [name, []]));
for (let round = 0; round < ROUNDS; round++) {
  for (const [name, fn] of Object.entries(cases)) {
    const n = iterations[name];
    const start = performance.now();
    for (let i = 0; i < n; i++) fn();
    samples[name].push(((performance.now() - start) * 1e6) / (n * EVENTS_PER_FRAME));
  }
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const baseline = median(samples['JSON.parse (baseline)']);
console.log(
  `node ${process.version}; frame: ${EVENTS_PER_FRAME} events x ${IMPRESSIONS_PER_EVENT} impressions, ` +
    `${bytes.length} B JSON, ${binary.length} B Avro; PageEvent ${ledger[0].length} B; median of ${ROUNDS} rounds`,
);
console.log('case                        ns/event   x JSON.parse');
for (const name of Object.keys(cases)) {
  const ns = median(samples[name]);
  console.log(`${name.padEnd(26)} ${ns.toFixed(0).padStart(9)}   ${(ns / baseline).toFixed(2).padStart(10)}`);
}
if (sink === 0) console.log('(sink)');
