// What the minute table's layout costs billing over a short period and over the month: the minute
// half of the billing report (FINAL) on exposure_minutes as migrated (partitioned by day) against
// copies partitioned by month (the layout before migration 5), one with the sort key led by the
// day (ORDER BY (toDate(minute), …)), and the impressions half, on the rows
// bench/processor/run.mjs uses for its billing phase (1% superseded, merges stopped). Prints the
// tables' billed totals (they must agree), EXPLAIN indexes = 1 of the one-day queries, and medians
// of 6 runs after a warm-up. Embedded ClickHouse.
//
//   npx tsc -b && node bench/processor/billing-layout.mjs [minute rows, default 10000000]
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { migrate, openWarehouse } from '@dwell/warehouse';
import { impressionRowsSelect, minuteRowsSelect } from '../lib/billing-rows.mjs';
const ROWS = Number(process.argv[2] ?? 10_000_000);
const dataDir = mkdtempSync(join(tmpdir(), 'dwell-billing-layout-'));
const wh = await openWarehouse({ database: 'bq', dataDir });
const cmd = (query) => wh.client.command({ query, clickhouse_settings: { max_insert_threads: 2 } });
const q = async (query) => (await wh.client.query({ query, format: 'JSONEachRow' })).json();
const LAYOUTS = {
  'day partitions (as migrated)': 'exposure_minutes',
  'month partitions': 'minutes_month',
  'month partitions, day-led key': 'minutes_month_day_key',
};
try {
  await migrate(wh);
  await cmd(`CREATE TABLE bq.minutes_month AS bq.exposure_minutes ENGINE = ReplacingMergeTree(version) PARTITION BY toYYYYMM(minute) ORDER BY (site_id, page_view_id, impression_id, minute)`);
  await cmd(`CREATE TABLE bq.minutes_month_day_key AS bq.exposure_minutes ENGINE = ReplacingMergeTree(version) PARTITION BY toYYYYMM(minute) ORDER BY (toDate(minute), site_id, page_view_id, impression_id, minute)`);
  for (const t of Object.values(LAYOUTS)) {
    await cmd(`INSERT INTO bq.${t} ${minuteRowsSelect(ROWS)}`);
    await cmd(`SYSTEM STOP MERGES bq.${t}`);
    await cmd(`INSERT INTO bq.${t} ${minuteRowsSelect(ROWS, { viewableMs: 0, version: 2, where: 'WHERE number % 100 = 7' })}`);
  }
  await cmd(`INSERT INTO bq.impressions ${impressionRowsSelect(Math.floor(ROWS / 4))}`);
  const time = 'toDateTime64(minute, 3)';
  const range = (from, to, t = time) => `${t} >= fromUnixTimestamp64Milli(${Date.parse(from)}, 'UTC') AND ${t} < fromUnixTimestamp64Milli(${Date.parse(to)}, 'UTC')`;
  const cases = {};
  for (const [layout, t] of Object.entries(LAYOUTS)) {
    cases[`minutes, month, by ad (${layout})`] = `SELECT ad_id AS key, sum(viewable_ms) FROM bq.${t} FINAL WHERE ${range('2026-11-01', '2026-12-01')} GROUP BY key`;
    cases[`minutes, one day, by ad (${layout})`] = `SELECT ad_id AS key, sum(viewable_ms) FROM bq.${t} FINAL WHERE ${range('2026-11-10', '2026-11-11')} GROUP BY key`;
    cases[`minutes, one day, one ad, by hour (${layout})`] = `SELECT toStartOfHour(${time}) AS key, sum(viewable_ms) FROM bq.${t} FINAL WHERE ${range('2026-11-10', '2026-11-11')} AND ad_id = 'ad-17' GROUP BY key`;
  }
  cases['impressions, one day, one ad, by hour'] = `SELECT toStartOfHour(first_server_ms) AS key, count(), sumIf(viewable_ms, billable) FROM bq.impressions FINAL WHERE ${range('2026-11-10', '2026-11-11', 'first_server_ms')} AND ad_id = 'ad-17' GROUP BY key`;
  cases['impressions, month, by ad'] = `SELECT ad_id AS key, count(), sumIf(viewable_ms, billable) FROM bq.impressions FINAL WHERE ${range('2026-11-01', '2026-12-01', 'first_server_ms')} GROUP BY key`;
  // Every layout must bill the same.
  const totals = [];
  for (const t of Object.values(LAYOUTS)) totals.push((await q(`SELECT toString(sum(viewable_ms)) AS s FROM bq.${t} FINAL`))[0].s);
  console.log('totals', totals.join(' '));
  if (new Set(totals).size !== 1) throw new Error('the layouts bill differently');
  for (const name of Object.keys(cases).filter((n) => n.startsWith('minutes, one day, by ad'))) {
    const plan = await q(`EXPLAIN indexes = 1 ${cases[name]}`);
    console.log(name, '\n', plan.map((r) => r.explain).filter((l) => /Granules|Parts|Keys|Condition|Name/.test(l)).join('\n'));
  }
  const results = {};
  for (let round = 0; round < 7; round++)
    for (const [name, sql] of Object.entries(cases)) {
      const t0 = performance.now();
      await q(sql);
      (results[name] ??= []).push(performance.now() - t0);
    }
  for (const [name, ms] of Object.entries(results)) {
    const s = ms.slice(1).sort((x, y) => x - y);
    console.log(`${name}: median ${s[Math.floor(s.length / 2)].toFixed(0)} ms (runs ${s.map((x) => x.toFixed(0)).join(' ')})`);
  }
} finally {
  await wh.close();
  rmSync(dataDir, { recursive: true, force: true });
}
