/**
 * The SQL that docs/billing.md and docs/audit.md give operators runs on the schema the migrations
 * make, and answers what the docs say it answers, on a few rows whose answers are known.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Warehouse } from './client.js';
import { migrate } from './migrations.js';
import { openTestWarehouse, type TestWarehouse } from '../../../test/support.js';

const REPLAY = '0193-test-replay';
let opened: TestWarehouse;
let warehouse: Warehouse;

/** The statements of a document's ```sql blocks, for this test's database and replay. */
function docStatements(doc: string): string[] {
  const text = readFileSync(fileURLToPath(new URL(`../../../docs/${doc}`, import.meta.url)), 'utf8');
  const blocks = [...text.matchAll(/```sql\n([\s\S]*?)```/g)].map((m) => m[1] ?? '');
  return blocks
    .flatMap((block) => block.split(/;\s*$/m))
    .map((statement) => statement.replace(/^\s*--.*$/gm, '').trim())
    .filter((statement) => statement !== '')
    .map((statement) => statement.replaceAll('dwell.', `${warehouse.database}.`).replaceAll("'0193…'", `'${REPLAY}'`));
}

/** A query's rows, numbers as numbers (a server quotes 64-bit integers in JSON, chDB does not). */
const rows = async (query: string): Promise<Array<Record<string, unknown>>> => {
  const result: Array<Record<string, unknown>> = await (await warehouse.client.query({ query, format: 'JSONEachRow' })).json();
  return result.map((row) =>
    Object.fromEntries(Object.entries(row).map(([k, v]) => [k, typeof v === 'string' && /^-?\d+(\.\d+)?$/.test(v) ? Number(v) : v])),
  );
};

/** An impression's values from site_id to rules_version (the columns both tables share). */
const impression = (
  id: string,
  ad: string,
  values: { measurable: number; billable: number; viewable_ms: number; flags?: string[]; first?: string; last?: string },
): string => {
  const flags = `[${(values.flags ?? []).map((f) => `'${f}'`).join(',')}]`;
  return `'s', 'pv-${id}', '${id}', 'u', '${ad}', 'c', 'display', 300, 250, ${values.measurable}, ${values.billable}, ${values.billable}, ${values.viewable_ms}, ${values.viewable_ms}, ${values.viewable_ms}, ${flags}, '${values.first ?? '2026-11-10 10:00:00'}', '${values.last ?? '2026-11-10 10:01:00'}', 1, 1`;
};

beforeAll(async () => {
  opened = await openTestWarehouse('docs_sql');
  warehouse = opened.warehouse;
  await migrate(warehouse);
  const db = warehouse.database;
  const command = (query: string): Promise<unknown> => warehouse.client.command({ query });
  // ad-1: two measurable impressions, one of them billable for 3 s; ad-2: one flagged.
  // Then the version, and whether the row is a retraction (i4: one, which no figure counts).
  await command(`INSERT INTO ${db}.impressions VALUES
    (${impression('i1', 'ad-1', { measurable: 1, billable: 1, viewable_ms: 3000 })}, 1, 0),
    (${impression('i2', 'ad-1', { measurable: 1, billable: 0, viewable_ms: 0 })}, 1, 0),
    (${impression('i3', 'ad-2', { measurable: 1, billable: 0, viewable_ms: 0, flags: ['givt_user_agent'] })}, 1, 0),
    (${impression('i4', 'ad-2', { measurable: 0, billable: 0, viewable_ms: 0, flags: ['conflicting_duplicate'] })}, 1, 1),
    (${impression('i5', 'ad-1', { measurable: 1, billable: 1, viewable_ms: 2000, first: '2026-10-20 09:00:00', last: '2026-10-20 09:00:02' })}, 1, 0),
    (${impression('i6', 'ad-1', { measurable: 1, billable: 1, viewable_ms: 1000, first: '2026-10-31 23:59:59', last: '2026-10-31 23:59:59' })}, 1, 0)`);
  // Later versions: i5 ended before November in every version, i6 not in its latest one.
  await command(`INSERT INTO ${db}.impressions VALUES
    (${impression('i5', 'ad-1', { measurable: 1, billable: 1, viewable_ms: 2500, first: '2026-10-20 09:00:00', last: '2026-10-20 09:00:03' })}, 2, 0),
    (${impression('i6', 'ad-1', { measurable: 1, billable: 1, viewable_ms: 2000, first: '2026-10-31 23:59:59', last: '2026-11-01 00:00:01' })}, 2, 0)`);
  await command(`INSERT INTO ${db}.exposure_minutes VALUES ('my-site', 'pv-i1', 'i1', '2026-11-10 10:00:00', 'u', 'ad-1', 'c', 3000, 1, 1)`);
  // The replay recomputed i1 as billed, i2 with 500 ms where 0 were billed, and i8 and i9, which
  // were not billed at all (i8 with nothing in view: only its missing row tells it apart).
  const shadow = (id: string, ad: string, ms: number): string =>
    `('${REPLAY}', ${impression(id, ad, { measurable: 1, billable: ms > 0 ? 1 : 0, viewable_ms: ms })}, 0, now64(3))`;
  await command(`INSERT INTO ${db}.shadow_impressions VALUES ${shadow('i1', 'ad-1', 3000)}, ${shadow('i2', 'ad-1', 500)}, ${shadow('i8', 'ad-3', 0)}, ${shadow('i9', 'ad-3', 1000)}`);
});

afterAll(async () => {
  await opened?.close();
});

describe('SQL in the docs', () => {
  it('docs/billing.md: every statement runs, and viewability per ad counts as described', async () => {
    const statements = docStatements('billing.md');
    expect(statements.length).toBeGreaterThanOrEqual(4);
    const answers: Array<Array<Record<string, unknown>>> = [];
    for (const statement of statements) {
      if (/^\s*(SELECT|WITH)\b/i.test(statement)) answers.push(await rows(statement));
      else await warehouse.client.command({ query: statement });
    }
    // The billing view by campaign: 3 s billed; 3 impressions, 2 of them measurable and unflagged,
    // 1 viewable.
    expect(answers[0]).toEqual([{ campaign: 'c', billable_seconds: 3, impressions: 3, viewability_rate: 0.5, avg_time_in_view_ms: 3000 }]);
    // Billed seconds per campaign and day, for one site.
    expect(answers[1]).toEqual([{ campaign_id: 'c', day: '2026-11-10', billable_seconds: 3 }]);
    // Viewability per ad, flagged traffic excluded: ad-1 has 2 measurable, 1 viewable of 3 s.
    const ad1 = answers[2]?.find((r) => r['ad_id'] === 'ad-1');
    expect(ad1).toMatchObject({ measurable: 2, viewable: 1, viewability_rate: 0.5, avg_time_in_view_ms: 3000 });
    const ad2 = answers[2]?.find((r) => r['ad_id'] === 'ad-2');
    expect(ad2).toMatchObject({ measurable: 0, viewable: 0 });
    // What the flags withheld.
    expect(answers[3]).toEqual([{ flag: 'givt_user_agent', impressions: 1, seconds_withheld: 0 }]);
    // Retention: every version of the page views that ended before November is gone, and nothing else.
    expect(statements.length).toBe(5);
    const left = await rows(`SELECT page_view_id, count() AS versions FROM ${warehouse.database}.impressions GROUP BY page_view_id ORDER BY page_view_id`);
    expect(left).toEqual([
      { page_view_id: 'pv-i1', versions: 1 },
      { page_view_id: 'pv-i2', versions: 1 },
      { page_view_id: 'pv-i3', versions: 1 },
      { page_view_id: 'pv-i4', versions: 1 },
      { page_view_id: 'pv-i6', versions: 2 },
    ]);
  });

  it('docs/audit.md: every statement runs, and the comparison finds what differs or was never billed', async () => {
    const statements = docStatements('audit.md');
    const answers = [];
    for (const statement of statements) answers.push(/^\s*(SELECT|WITH)\b/i.test(statement) ? await rows(statement) : await warehouse.client.command({ query: statement }));
    const differing = answers[0] as Array<Record<string, unknown>>;
    expect(differing.map((r) => r['impression_id']).sort()).toEqual(['i2', 'i8', 'i9']);
  });
});
