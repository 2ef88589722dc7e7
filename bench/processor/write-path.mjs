// The processor's result writes, encode and insert, against the same rows sent as JSON text (the
// JSONCompactEachRow insert the processor used before RowBinary), in one process and one embedded
// ClickHouse, alternating. The rows are a streaming processor's: a write every 500 ms of event time.
// CPU is this process's (chDB's threads included), per row written; wall time per row too.
//
//   npx tsc -b && node bench/processor/write-path.mjs [--events 200000] [--runs 5]
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { PartitionExposure } from '@dwell/exposure';
import { decodePageEvent } from '@dwell/protocol';
import { ExposureStore, IMPRESSION_COLUMNS, MINUTE_COLUMNS, RowsEncoder, migrate, openWarehouse } from '@dwell/warehouse';
import { median } from '../lib/stats.mjs';
import { encodedWorkload } from '../lib/workload.mjs';

const args = process.argv.slice(2);
const flag = (name, fallback) => {
  const i = args.indexOf(`--${name}`);
  return i === -1 ? fallback : Number(args[i + 1]);
};
const EVENTS = flag('events', 200_000);
const RUNS = flag('runs', 5);
const SECONDS = 10;

// The writes a streaming processor makes: reports taken every 500 ms of event time.
const events = encodedWorkload({ seed: 99, events: EVENTS, baseMs: 1_764_000_000_000, spreadMs: SECONDS * 1000 });
const core = new PartitionExposure();
const writes = [];
let writeAt = events[0].recvMs + 500;
for (const event of events) {
  if (event.recvMs >= writeAt) {
    const changes = core.takeChanges();
    writes.push([...changes.closed, ...changes.changed]);
    writeAt += 500;
  }
  core.apply(decodePageEvent(event.value));
}
let rows = 0;
for (const reports of writes) for (const r of reports) rows += r.impressions.length + r.buckets.length;

const dataDir = mkdtempSync(join(tmpdir(), 'dwell-write-path-'));
const warehouse = await openWarehouse({ database: 'write_path', dataDir });
await migrate(warehouse);
const store = new ExposureStore(warehouse);
const jsonDb = { ...warehouse, database: 'write_path_json' };
await warehouse.client.command({ query: 'CREATE DATABASE IF NOT EXISTS write_path_json' });
await migrate(jsonDb);

/** The baseline: each row a JSON array, the body inserted as JSONCompactEachRow with its token. */
class JsonRows {
  lines = [];
  impression(r, final, version) {
    this.lines.push(JSON.stringify([r.site_id, r.page_view_id, r.impression_id, r.user_id, r.ad_id, r.campaign_id, r.media, r.width, r.height, r.measurable, r.viewable, r.billable, r.viewable_ms, r.credited_ms, r.longest_run_ms, r.flags, r.first_server_ms, r.last_server_ms, final, false, r.rules_version, version]));
  }
  minute(r, version) {
    this.lines.push(JSON.stringify([r.site_id, r.page_view_id, r.impression_id, Math.floor(r.minute_start_ms / 1000), r.user_id, r.ad_id, r.campaign_id, r.viewable_ms, r.rules_version, version]));
  }
  body() {
    return `${this.lines.join('\n')}\n`;
  }
}
async function insertJson(table, columns, encoded, token) {
  if (encoded.lines.length === 0) return;
  const result = await warehouse.client.exec({
    query: `INSERT INTO write_path_json.${table} (${columns.join(', ')}) FORMAT JSONCompactEachRow`,
    values: Readable.from([encoded.body()], { objectMode: false }),
    clickhouse_settings: { insert_deduplication_token: token },
  });
  for await (const chunk of result.stream) void chunk;
}

let round = 0;
async function pass(binary) {
  round++;
  const cpu = process.cpuUsage();
  const wall = performance.now();
  for (const [i, reports] of writes.entries()) {
    const version = round * 1_000_000 + i;
    const impressions = binary ? new RowsEncoder() : new JsonRows();
    const minutes = binary ? new RowsEncoder() : new JsonRows();
    for (const r of reports) {
      for (const result of r.impressions) impressions.impression(result, r.final, version);
      for (const bucket of r.buckets) minutes.minute(bucket, version);
    }
    const token = `round${round}-${i}`;
    if (binary) {
      await store.writeResults({ impressions: impressions.finish(), minutes: minutes.finish(), ranges: [], rulesVersion: 1, processorId: 'bench', token });
    } else {
      await insertJson('impressions', IMPRESSION_COLUMNS, impressions, `${token}/impressions`);
      await insertJson('exposure_minutes', MINUTE_COLUMNS, minutes, `${token}/minutes`);
    }
  }
  const used = process.cpuUsage(cpu);
  return { cpuUs: (used.user + used.system) / rows, wallUs: ((performance.now() - wall) * 1000) / rows };
}

await pass(true);
await pass(false);
const json = [];
const binary = [];
for (let i = 0; i < RUNS; i++) {
  json.push(await pass(false));
  binary.push(await pass(true));
}
await warehouse.close();
rmSync(dataDir, { recursive: true, force: true });
const m = (list, key) => median(list.map((x) => x[key]));
const result = {
  writes: writes.length,
  rows,
  rowBinary: { cpuUsPerRow: m(binary, 'cpuUs'), wallUsPerRow: m(binary, 'wallUs') },
  jsonText: { cpuUsPerRow: m(json, 'cpuUs'), wallUsPerRow: m(json, 'wallUs') },
  runs: { json, binary },
};
process.stdout.write(
  `result writes, encode + insert, per row (median of ${RUNS}, ${writes.length} writes of ${rows} rows): ` +
    `RowBinary ${result.rowBinary.cpuUsPerRow.toFixed(2)} µs CPU, ${result.rowBinary.wallUsPerRow.toFixed(2)} µs wall; ` +
    `JSON text ${result.jsonText.cpuUsPerRow.toFixed(2)} µs CPU, ${result.jsonText.wallUsPerRow.toFixed(2)} µs wall; ` +
    `CPU ratio ${(result.rowBinary.cpuUsPerRow / result.jsonText.cpuUsPerRow).toFixed(2)}\n${JSON.stringify(result)}\n`,
);
