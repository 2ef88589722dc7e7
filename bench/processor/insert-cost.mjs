// What one insert costs embedded ClickHouse apart from its rows: a MergeTree insert makes a new part
// (a folder of a dozen files), whatever its size, and a processor's result write is three of them
// (impressions, minutes, the audit trail's ranges). This times one-row statements in a data folder
// on the given filesystem, against the same statements where no part is made (a Null table) and
// against no insert at all, and a whole result write of one row per table as the processor makes
// it. CPU of this process (chDB's threads included), user and system apart, per statement.
//
//   npx tsc -b && node bench/processor/insert-cost.mjs [--dir /path/on/a/filesystem] [--count 100]
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ExposureStore, RowsEncoder, migrate, openWarehouse } from '@dwell/warehouse';

const args = process.argv.slice(2);
const option = (name, fallback) => {
  const i = args.indexOf(`--${name}`);
  return i === -1 ? fallback : args[i + 1];
};
const DIR = option('dir', tmpdir());
const COUNT = Number(option('count', 100));

const dataDir = mkdtempSync(join(DIR, 'dwell-insert-cost-'));
const warehouse = await openWarehouse({ database: 'insert_cost', dataDir });
const sql = (query) => warehouse.client.command({ query });
const results = {};
try {
  await migrate(warehouse);
  const store = new ExposureStore(warehouse);
  await sql('CREATE TABLE insert_cost.merge_tree (a UInt64, s String) ENGINE = MergeTree ORDER BY a');
  await sql('CREATE TABLE insert_cost.null_table (a UInt64, s String) ENGINE = Null');
  const at = 1_764_000_000_000;
  const write = (i) => {
    const impressions = new RowsEncoder();
    const minutes = new RowsEncoder();
    const identity = { site_id: 'site-1', page_view_id: `pv-${i}`, impression_id: `pv-${i}-0`, user_id: 'user-1', ad_id: 'ad-1', campaign_id: 'campaign-1' };
    impressions.impression({ ...identity, media: 'display', width: 300, height: 250, measurable: true, viewable: true, billable: true, viewable_ms: 1000, credited_ms: 1000, longest_run_ms: 1000, flags: [], first_server_ms: at, last_server_ms: at + 1000, rules_version: 1 }, false, i);
    minutes.minute({ ...identity, minute_start_ms: at - (at % 60_000), viewable_ms: 1000, rules_version: 1 }, i);
    const ranges = [{ topic: 'cost', partition: 0, first_offset: String(i), last_offset: String(i), events: 1, rejected: 0 }];
    return store.writeResults({ impressions: impressions.finish(), minutes: minutes.finish(), ranges, rulesVersion: 1, processorId: 'cost', token: `cost-${i}` });
  };
  let n = 0;
  const cases = {
    'SELECT 1': () => sql('SELECT 1'),
    'one-row insert, Null table (no part)': () => sql(`INSERT INTO insert_cost.null_table VALUES (${++n}, 'x')`),
    'one-row insert, MergeTree (one part)': () => sql(`INSERT INTO insert_cost.merge_tree VALUES (${++n}, 'x')`),
    'result write of one row per table (three parts)': () => write(++n),
  };
  for (const [name, run] of Object.entries(cases)) {
    for (let i = 0; i < 5; i++) await run(); // warm-up
    const cpu = process.cpuUsage();
    const started = performance.now();
    for (let i = 0; i < COUNT; i++) await run();
    const used = process.cpuUsage(cpu);
    results[name] = {
      cpuMs: Number(((used.user + used.system) / COUNT / 1000).toFixed(2)),
      userMs: Number((used.user / COUNT / 1000).toFixed(2)),
      systemMs: Number((used.system / COUNT / 1000).toFixed(2)),
      wallMs: Number(((performance.now() - started) / COUNT).toFixed(2)),
    };
    process.stderr.write(`${name}: ${JSON.stringify(results[name])}\n`);
  }
} finally {
  await warehouse.close();
  rmSync(dataDir, { recursive: true, force: true });
}
process.stdout.write(`${JSON.stringify({ dir: DIR, count: COUNT, perStatement: results })}\n`);
