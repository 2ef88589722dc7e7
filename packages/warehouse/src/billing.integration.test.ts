import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Warehouse } from './client.js';
import { migrate } from './migrations.js';
import { BILLING_DIMENSIONS, billingReport, type BillingQuery, type BillingRow } from './billing.js';
import { openTestWarehouse, type TestWarehouse } from '../../../test/support.js';

let opened: TestWarehouse;
let warehouse: Warehouse;

// Rows as the processor leaves them before ClickHouse merges: superseded versions beside the
// latest, a retracted minute, a retracted impression, a flagged impression, rows outside the
// period. Every figure below is worked out by hand from the latest versions.
beforeAll(async () => {
  opened = await openTestWarehouse('billing');
  warehouse = opened.warehouse;
  await migrate(warehouse);
  const db = warehouse.database;
  for (const table of ['impressions', 'exposure_minutes']) await warehouse.client.command({ query: `SYSTEM STOP MERGES ${db}.${table}` });
  const impression = (id: string, user: string, ad: string, campaign: string, bits: string, viewableMs: number, creditedMs: number, flags: string, first: string, version: number, retracted = 0) =>
    `('site-1', 'pv-${id}', '${id}', '${user}', '${ad}', '${campaign}', 'display', 300, 250, ${bits}, ${viewableMs}, ${creditedMs}, ${creditedMs}, ${flags}, '${first}', '${first}', 0, 1, ${version}, ${retracted})`;
  const minute = (id: string, user: string, ad: string, campaign: string, at: string, ms: number, version: number) =>
    `('site-1', 'pv-${id}', '${id}', '${at}', '${user}', '${ad}', '${campaign}', ${ms}, 1, ${version})`;
  for (const values of [
    [
      impression('i1', 'u1', 'ad-1', 'c1', '1, 1, 1', 1500, 1500, '[]', '2026-11-10 10:00:00.500', 1),
      impression('i2', 'u2', 'ad-1', 'c1', '1, 0, 0', 0, 400, '[]', '2026-11-10 11:00:00.000', 1),
      impression('i3', 'u1', 'ad-2', 'c1', '1, 1, 1', 7000, 7000, '[]', '2026-11-10 10:30:00.000', 1),
      impression('i5', 'u1', 'ad-1', 'c1', '1, 1, 1', 800, 800, '[]', '2026-11-09 23:59:30.000', 1),
      impression('i6', 'u2', 'ad-1', 'c1', '1, 1, 1', 1200, 1200, '[]', '2026-11-10 12:00:00.000', 1),
    ],
    [
      // Later versions: i1 billed more, i3 flagged (bills 0, credited time kept), i4 a new one.
      impression('i1', 'u1', 'ad-1', 'c1', '1, 1, 1', 2500, 2500, '[]', '2026-11-10 10:00:00.500', 2),
      impression('i3', 'u1', 'ad-2', 'c1', '1, 1, 0', 0, 7000, "['implausible_timing']", '2026-11-10 10:30:00.000', 2),
      impression('i4', 'u3', 'ad-2', 'c2', '1, 1, 1', 65000, 65000, '[]', '2026-11-11 00:10:00.000', 2),
      // i6 retracted: a conflicting copy of an event, now the kept one, does not list it. Its page
      // view is flagged; the zeroed row carries the flag, and is no impression at all.
      impression('i6', 'u2', 'ad-1', 'c1', '0, 0, 0', 0, 0, "['conflicting_duplicate']", '2026-11-10 12:00:00.000', 2, 1),
    ],
  ])
    await warehouse.client.command({ query: `INSERT INTO ${db}.impressions VALUES ${values.join(', ')}` });
  for (const values of [
    [
      minute('i1', 'u1', 'ad-1', 'c1', '2026-11-10 10:00:00', 1000, 1),
      minute('i3', 'u1', 'ad-2', 'c1', '2026-11-10 10:30:00', 7000, 1),
      minute('i5', 'u1', 'ad-1', 'c1', '2026-11-09 23:59:00', 800, 1),
      minute('i6', 'u2', 'ad-1', 'c1', '2026-11-10 12:00:00', 1200, 1),
    ],
    [
      minute('i1', 'u1', 'ad-1', 'c1', '2026-11-10 10:00:00', 1500, 2),
      minute('i1', 'u1', 'ad-1', 'c1', '2026-11-10 10:01:00', 1000, 2),
      minute('i3', 'u1', 'ad-2', 'c1', '2026-11-10 10:30:00', 0, 2),
      minute('i6', 'u2', 'ad-1', 'c1', '2026-11-10 12:00:00', 0, 2),
      minute('i4', 'u3', 'ad-2', 'c2', '2026-11-11 00:10:00', 60000, 2),
      minute('i4', 'u3', 'ad-2', 'c2', '2026-11-11 00:11:00', 5000, 2),
    ],
  ])
    await warehouse.client.command({ query: `INSERT INTO ${db}.exposure_minutes VALUES ${values.join(', ')}` });
});

afterAll(async () => {
  await opened?.close();
});

const period = { fromMs: Date.parse('2026-11-10T00:00:00Z'), toMs: Date.parse('2026-11-12T00:00:00Z') };
const report = (query: Partial<BillingQuery>): Promise<BillingRow[]> =>
  billingReport(warehouse.client, warehouse.database, { ...period, by: 'ad', ...query });

const none = { lt_1s: 0, '1_2s': 0, '2_5s': 0, '5_10s': 0, '10_15s': 0, '15_30s': 0, '30_60s': 0, ge_60s: 0 };

describe('billingReport and the billing views', () => {
  it('reports every figure per ad from the latest versions, flagged traffic apart', async () => {
    expect(await report({ by: 'ad' })).toEqual([
      {
        key: 'ad-1',
        billable_ms: 2500,
        billable_seconds: 2.5,
        impressions: 2,
        flagged_impressions: 0,
        measurable_impressions: 2,
        viewable_impressions: 1,
        viewability_rate: 0.5,
        avg_time_in_view_ms: 2500,
        time_in_view: { ...none, '2_5s': 1 },
        measurable_impressions_incl_flagged: 2,
        viewable_impressions_incl_flagged: 1,
        viewable_ms_incl_flagged: 2500,
      },
      {
        key: 'ad-2',
        billable_ms: 65000,
        billable_seconds: 65,
        impressions: 2,
        flagged_impressions: 1,
        measurable_impressions: 1,
        viewable_impressions: 1,
        viewability_rate: 1,
        avg_time_in_view_ms: 65000,
        time_in_view: { ...none, ge_60s: 1 },
        measurable_impressions_incl_flagged: 2,
        viewable_impressions_incl_flagged: 2,
        viewable_ms_incl_flagged: 72000,
      },
    ]);
  });

  it('groups by day and hour in UTC, with filters, and leaves out keys with nothing in the period', async () => {
    const pick = (rows: BillingRow[]) => rows.map((r) => [r.key, r.billable_ms, r.impressions, r.flagged_impressions, r.viewable_impressions]);
    expect(pick(await report({ by: 'day' }))).toEqual([
      ['2026-11-10T00:00:00Z', 2500, 3, 1, 1],
      ['2026-11-11T00:00:00Z', 65000, 1, 0, 1],
    ]);
    expect(pick(await report({ by: 'day', campaign: 'c1' }))).toEqual([['2026-11-10T00:00:00Z', 2500, 3, 1, 1]]);
    expect(pick(await report({ by: 'hour', ad: 'ad-1' }))).toEqual([
      ['2026-11-10T10:00:00Z', 2500, 1, 0, 1],
      ['2026-11-10T11:00:00Z', 0, 1, 0, 0],
    ]);
    expect(pick(await report({ by: 'user', site: 'site-1', campaign: 'c1' }))).toEqual([
      ['u1', 2500, 2, 1, 1],
      ['u2', 0, 1, 0, 0],
    ]);
    expect(pick(await report({ by: 'campaign', user: 'u3' }))).toEqual([['c2', 65000, 1, 0, 1]]);
    // The day before: only i5, whose minute and start lie in it.
    expect(pick(await report({ by: 'site', fromMs: Date.parse('2026-11-09T00:00:00Z'), toMs: period.fromMs }))).toEqual([['site-1', 800, 1, 0, 1]]);
    // An empty viewability (nothing measurable) is null, not a division by zero.
    expect((await report({ by: 'ad', ad: 'ad-1', fromMs: Date.parse('2026-11-10T11:00:00Z') }))[0]).toMatchObject({ viewability_rate: 0, avg_time_in_view_ms: null });
  });

  it('refuses an empty period, an unknown dimension and an empty filter, saying what to do', async () => {
    await expect(report({ toMs: period.fromMs })).rejects.toThrow(/--to must be after --from/);
    await expect(report({ by: 'week' as BillingQuery['by'] })).rejects.toThrow(/by must be one of ad, campaign, site, user, day, hour/);
    await expect(report({ ad: '' })).rejects.toThrow(/the ad filter is empty: leave it out/);
  });

  it('gives what the billing_by_<dimension> views give SQL, for every dimension and filter', async () => {
    const db = warehouse.database;
    const asSql = (row: BillingRow): Record<string, unknown> => ({
      key: row.key,
      billable_ms: row.billable_ms,
      impressions: row.impressions,
      flagged_impressions: row.flagged_impressions,
      measurable_impressions: row.measurable_impressions,
      viewable_impressions: row.viewable_impressions,
      viewability_rate: row.viewability_rate,
      avg_time_in_view_ms: row.avg_time_in_view_ms,
      ...Object.fromEntries(Object.entries(row.time_in_view).map(([bucket, n]) => [`tiv_${bucket}`, n])),
      measurable_impressions_incl_flagged: row.measurable_impressions_incl_flagged,
      viewable_impressions_incl_flagged: row.viewable_impressions_incl_flagged,
      viewable_ms_incl_flagged: row.viewable_ms_incl_flagged,
    });
    const numbers = (row: Record<string, unknown>): Record<string, unknown> =>
      Object.fromEntries(Object.entries(row).map(([k, v]) => [k, k !== 'key' && typeof v === 'string' ? Number(v) : v]));
    const filterSets: Array<Partial<BillingQuery>> = [{}, { campaign: 'c1' }, { ad: 'ad-2', user: 'u3' }, { site: 'site-1', user: 'u1' }];
    let compared = 0;
    for (const by of BILLING_DIMENSIONS)
      for (const filters of filterSets) {
        const expected = (await report({ by, ...filters })).map(asSql);
        const result = await warehouse.client.query({
          query: `SELECT * FROM ${db}.billing_by_${by}(from = fromUnixTimestamp64Milli({from:Int64}, 'UTC'), to = fromUnixTimestamp64Milli({to:Int64}, 'UTC'),
                    ad = {ad:String}, campaign = {campaign:String}, site = {site:String}, user = {user:String}) ORDER BY key`,
          query_params: { from: period.fromMs, to: period.toMs, ad: '', campaign: '', site: '', user: '', ...filters },
          format: 'JSONEachRow',
        });
        expect((await result.json<Record<string, unknown>>()).map(numbers), `${by} ${JSON.stringify(filters)}`).toEqual(expected);
        compared += expected.length;
      }
    expect(compared).toBeGreaterThan(20);
  });
});
