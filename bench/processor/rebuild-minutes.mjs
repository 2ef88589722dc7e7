// How long migration 5 (exposure_minutes rebuilt partitioned by day) takes on a table of N minute
// rows (1% of them superseded by a later version, in parts of their own), embedded ClickHouse.
//
//   npx tsc -b && node bench/processor/rebuild-minutes.mjs [rows, default 10000000]
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MIGRATIONS, migrate, openWarehouse } from '@dwell/warehouse';
import { minuteRowsSelect } from '../lib/billing-rows.mjs';

const ROWS = Number(process.argv[2] ?? 10_000_000);
const dataDir = mkdtempSync(join(tmpdir(), 'dwell-rebuild-minutes-'));
const wh = await openWarehouse({ database: 'rm', dataDir });
const cmd = (query) => wh.client.command({ query, clickhouse_settings: { max_insert_threads: 2 } });
const q = async (query) => (await wh.client.query({ query, format: 'JSONEachRow' })).json();
try {
  await migrate(
    wh,
    MIGRATIONS.filter((m) => m.rebuild?.table !== 'exposure_minutes'),
  );
  await cmd(`INSERT INTO rm.exposure_minutes ${minuteRowsSelect(ROWS)}`);
  await cmd(`INSERT INTO rm.exposure_minutes ${minuteRowsSelect(ROWS, { viewableMs: 0, version: 2, where: 'WHERE number % 100 = 7' })}`);
  const billed = async () => (await q(`SELECT toString(sum(viewable_ms)) AS s, toString(count()) AS n FROM rm.exposure_minutes FINAL`))[0];
  const before = await billed();
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const report = await migrate(wh, MIGRATIONS, (line) => console.log(line));
  const wall = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const after = await billed();
  const [{ key }] = await q(`SELECT partition_key AS key FROM system.tables WHERE database = 'rm' AND name = 'exposure_minutes'`);
  console.log(`applied ${report.applied.join(', ')}; partition key ${key}; billed before ${before.s} ms over ${before.n} rows, after ${after.s} over ${after.n}`);
  console.log(`${ROWS.toLocaleString('en-US')} rows rebuilt in ${wall.toFixed(1)} s wall, ${((cpu.user + cpu.system) / 1e6).toFixed(1)} s CPU`);
  if (before.s !== after.s || before.n !== after.n || key !== 'toYYYYMMDD(minute)') process.exitCode = 1;
} finally {
  await wh.close();
  rmSync(dataDir, { recursive: true, force: true });
}
