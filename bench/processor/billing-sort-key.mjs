// Whether a sort key led by the day makes billing queries over a short period cheaper: the minute
// half of the billing report (FINAL) for one day and for the month, on exposure_minutes with its
// sort key against a copy ordered by (toDate(minute), …), and the impressions half, on the rows
// bench/processor/run.mjs uses for its billing phase (1% superseded, merges stopped). Prints both
// tables' billed totals (they must agree), EXPLAIN indexes = 1 of the day-led queries, and medians
// of 6 runs after a warm-up. Embedded ClickHouse.
//
//   npx tsc -b && node bench/processor/billing-sort-key.mjs [minute rows, default 10000000]
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { migrate, openWarehouse } from '@dwell/warehouse';
import { impressionRowsSelect, minuteRowsSelect } from '../lib/billing-rows.mjs';
const ROWS = Number(process.argv[2] ?? 10_000_000);
const dataDir = mkdtempSync(join(tmpdir(), 'dwell-billing-sort-key-'));
const wh = await openWarehouse({ database: 'bq', dataDir });
const cmd = (query) => wh.client.command({ query, clickhouse_settings: { max_insert_threads: 2 } });
const q = async (query) => (await wh.client.query({ query, format: 'JSONEachRow' })).json();
try {
  await migrate(wh);
  await cmd(`CREATE TABLE bq.minutes_day AS bq.exposure_minutes ENGINE = ReplacingMergeTree(version) PARTITION BY toYYYYMM(minute) ORDER BY (toDate(minute), site_id, page_view_id, impression_id, minute)`);
  for (const t of ['exposure_minutes', 'minutes_day']) {
    await cmd(`INSERT INTO bq.${t} ${minuteRowsSelect(ROWS)}`);
    await cmd(`SYSTEM STOP MERGES bq.${t}`);
    await cmd(`INSERT INTO bq.${t} ${minuteRowsSelect(ROWS, { viewableMs: 0, version: 2, where: 'WHERE number % 100 = 7' })}`);
  }
  await cmd(`INSERT INTO bq.impressions ${impressionRowsSelect(Math.floor(ROWS / 4))}`);
  const time = 'toDateTime64(minute, 3)';
  const range = (from, to, t = time) => `${t} >= fromUnixTimestamp64Milli(${Date.parse(from)}, 'UTC') AND ${t} < fromUnixTimestamp64Milli(${Date.parse(to)}, 'UTC')`;
  const cases = {
    'minutes, month, by ad (current key)': `SELECT ad_id AS key, sum(viewable_ms) FROM bq.exposure_minutes FINAL WHERE ${range('2026-11-01', '2026-12-01')} GROUP BY key`,
    'minutes, month, by ad (day-led key)': `SELECT ad_id AS key, sum(viewable_ms) FROM bq.minutes_day FINAL WHERE ${range('2026-11-01', '2026-12-01')} GROUP BY key`,
    'minutes, one day, one ad, by hour (current key)': `SELECT toStartOfHour(${time}) AS key, sum(viewable_ms) FROM bq.exposure_minutes FINAL WHERE ${range('2026-11-10', '2026-11-11')} AND ad_id = 'ad-17' GROUP BY key`,
    'minutes, one day, one ad, by hour (day-led key)': `SELECT toStartOfHour(${time}) AS key, sum(viewable_ms) FROM bq.minutes_day FINAL WHERE ${range('2026-11-10', '2026-11-11')} AND ad_id = 'ad-17' GROUP BY key`,
    'minutes, one day, one ad, plain minute filter (current key)': `SELECT toStartOfHour(minute) AS key, sum(viewable_ms) FROM bq.exposure_minutes FINAL WHERE minute >= toDateTime('2026-11-10 00:00:00', 'UTC') AND minute < toDateTime('2026-11-11 00:00:00', 'UTC') AND ad_id = 'ad-17' GROUP BY key`,
    'minutes, one day, one ad, plain minute filter (day-led key)': `SELECT toStartOfHour(minute) AS key, sum(viewable_ms) FROM bq.minutes_day FINAL WHERE minute >= toDateTime('2026-11-10 00:00:00', 'UTC') AND minute < toDateTime('2026-11-11 00:00:00', 'UTC') AND ad_id = 'ad-17' GROUP BY key`,
    'impressions, one day, one ad, by hour': `SELECT toStartOfHour(first_server_ms) AS key, count(), sumIf(viewable_ms, billable) FROM bq.impressions FINAL WHERE ${range('2026-11-10', '2026-11-11', 'first_server_ms')} AND ad_id = 'ad-17' GROUP BY key`,
    'impressions, month, by ad': `SELECT ad_id AS key, count(), sumIf(viewable_ms, billable) FROM bq.impressions FINAL WHERE ${range('2026-11-01', '2026-12-01', 'first_server_ms')} GROUP BY key`,
  };
  // Both minute tables must bill the same.
  const a = await q(`SELECT sum(viewable_ms) AS s FROM bq.exposure_minutes FINAL`);
  const b = await q(`SELECT sum(viewable_ms) AS s FROM bq.minutes_day FINAL`);
  console.log('totals', a[0].s, b[0].s);
  for (const name of Object.keys(cases).filter((n) => n.includes('day-led'))) {
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
