// How long result writes wait while a large snapshot is being stored. Embedded ClickHouse runs a
// chDB connection's queries one at a time, so a snapshot stored through the connection the
// processor writes its results with holds back every result write behind it, for seconds where a
// partition's state is large; the store puts snapshots on a connection of their own
// (`Warehouse.writer`). This builds a real partition state (the given rate into one partition for
// the given minutes, as snapshot-steady.mjs does), serializes its full snapshot, and stores it
// several times while result writes of the processor's size go on at its pace, alternating the
// baseline (the snapshot on the results' connection) and the store as it is (its own
// connection). Per mode: the snapshot's store time, and the latency of the result writes started
// while it was being stored (median of the rounds). CPU is this process's, chDB's threads included.
//
//   npx tsc -b && node --max-old-space-size=16000 bench/processor/snapshot-alongside.mjs [--rate 5000] [--minutes 11] [--rounds 3] [--rows 2000]
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ExposureStore, RowsEncoder, migrate, openWarehouse } from '@dwell/warehouse';
import { builtPartition } from '../lib/partition-state.mjs';
import { median, percentile } from '../lib/stats.mjs';
import { option } from '../lib/args.mjs';

const RATE = Number(option('rate', 5000));
const MINUTES = Number(option('minutes', 11));
const ROUNDS = Number(option('rounds', 3));
const ROWS = Number(option('rows', 2000));
/** The processor writes about this often under steady load. */
const WRITE_EVERY_MS = 250;

const cpuMs = () => {
  const c = process.cpuUsage();
  return (c.user + c.system) / 1000;
};
const sleep = (ms) => new Promise((done) => setTimeout(done, ms));

const { snapshot } = builtPartition(RATE, MINUTES);

const dataDir = mkdtempSync(join(tmpdir(), 'dwell-snapshot-alongside-'));
const warehouse = await openWarehouse({ database: 'snapshot_alongside', dataDir });
await migrate(warehouse);
const stores = {
  // The baseline: snapshots through the connection the results are written with.
  'same connection': new ExposureStore({ ...warehouse, writer: () => warehouse.client }),
  'own connection': new ExposureStore(warehouse),
};

let written = 0;
/** A result write of `ROWS` impressions and as many minute rows, as the processor makes them. */
const resultWrite = (store) => {
  const at = 1_764_000_000_000;
  const impressions = new RowsEncoder();
  const minutes = new RowsEncoder();
  const first = written;
  for (let r = 0; r < ROWS; r++) {
    const i = ++written;
    const identity = { site_id: `site-${i % 50}`, page_view_id: `pv-${i}`, impression_id: `pv-${i}-0`, user_id: `user-${i % 9973}`, ad_id: `ad-${i % 400}`, campaign_id: `campaign-${i % 40}` };
    impressions.impression({ ...identity, media: 'display', width: 300, height: 250, measurable: true, viewable: true, billable: true, viewable_ms: 1000 + (i % 5000), credited_ms: 1000, longest_run_ms: 1000, flags: [], first_server_ms: at, last_server_ms: at + 1000, rules_version: 1 }, false, i);
    minutes.minute({ ...identity, minute_start_ms: at - (at % 60_000), viewable_ms: 1000, rules_version: 1 }, i);
  }
  const ranges = [{ topic: 'alongside', partition: 1, first_offset: String(first), last_offset: String(written - 1), events: ROWS, rejected: 0 }];
  return store.writeResults({ impressions: impressions.finish(), minutes: minutes.finish(), ranges, rulesVersion: 1, processorId: 'bench', token: `alongside-${first}` });
};

const rounds = Object.fromEntries(Object.keys(stores).map((mode) => [mode, []]));
let offset = 0;
try {
  // Warm-up: a few writes and one store each way.
  for (const store of Object.values(stores)) {
    for (let i = 0; i < 5; i++) await resultWrite(store);
  }
  for (let round = 0; round < ROUNDS; round++) {
    for (const [mode, store] of Object.entries(stores)) {
      const idle = [];
      for (let i = 0; i < 8; i++) {
        const t0 = performance.now();
        await resultWrite(store);
        idle.push(performance.now() - t0);
        await sleep(WRITE_EVERY_MS);
      }
      const c0 = cpuMs();
      const t0 = performance.now();
      let storeMs;
      const stored = store
        .saveSnapshot({ topic: 'alongside', partition: 0, nextOffset: String(++offset), rulesVersion: snapshot.rulesVersion, rulesFingerprint: snapshot.rulesFingerprint, pageViews: snapshot.pageViews, snapshot: snapshot.bytes, processorId: 'bench' })
        .then(() => {
          storeMs = performance.now() - t0;
        });
      const during = [];
      while (storeMs === undefined) {
        const w0 = performance.now();
        await resultWrite(store);
        during.push(performance.now() - w0);
        await sleep(Math.max(0, WRITE_EVERY_MS - (performance.now() - w0)));
      }
      await stored;
      const row = {
        storeMs: Math.round(storeMs),
        cpuMs: Math.round(cpuMs() - c0),
        writesDuring: during.length,
        writeMsIdle: Math.round(median(idle)),
        writeMsDuring: { p50: Math.round(percentile(during, 50)), max: Math.round(Math.max(...during)) },
      };
      rounds[mode].push(row);
      process.stderr.write(`round ${round + 1}, ${mode}: ${JSON.stringify(row)}\n`);
    }
  }
} finally {
  await warehouse.close();
  rmSync(dataDir, { recursive: true, force: true });
}

const summary = Object.fromEntries(
  Object.entries(rounds).map(([mode, rows]) => [
    mode,
    {
      storeMs: median(rows.map((r) => r.storeMs)),
      writeMsIdle: median(rows.map((r) => r.writeMsIdle)),
      writeMsDuringP50: median(rows.map((r) => r.writeMsDuring.p50)),
      writeMsDuringMax: median(rows.map((r) => r.writeMsDuring.max)),
    },
  ]),
);
const same = summary['same connection'];
const own = summary['own connection'];
const ratio = same.writeMsDuringMax / Math.max(1, own.writeMsDuringMax);
process.stdout.write(
  `snapshot of ${(snapshot.bytes.length / 1e6).toFixed(1)} MB, result writes of ${ROWS} rows every ${WRITE_EVERY_MS} ms, medians of ${ROUNDS} rounds\n` +
    Object.entries(summary)
      .map(([mode, s]) => `  ${mode.padEnd(16)} store ${s.storeMs} ms; result write idle ${s.writeMsIdle} ms, while storing p50 ${s.writeMsDuringP50} ms, longest ${s.writeMsDuringMax} ms\n`)
      .join('') +
    `  longest result write while storing: ${ratio.toFixed(1)}× shorter on its own connection\n`,
);
const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
mkdirSync(join(root, 'bench/processor/results'), { recursive: true });
const file = join(root, 'bench/processor/results', `snapshot-alongside-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
writeFileSync(file, JSON.stringify({ node: process.version, rate: RATE, minutes: MINUTES, rows: ROWS, megabytes: Number((snapshot.bytes.length / 1e6).toFixed(1)), rounds, summary, ratio: Number(ratio.toFixed(2)) }, null, 2));
process.stdout.write(`results: ${file}\n`);
