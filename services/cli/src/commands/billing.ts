import { billingReport, openWarehouse, BILLING_DIMENSIONS, type BillingDimension, type BillingQuery, type BillingRow } from '@dwell/warehouse';
import { TIME_IN_VIEW_BUCKETS } from '@dwell/warehouse';

export const OUTPUT_FORMATS = ['table', 'json', 'csv'] as const;
export type OutputFormat = (typeof OUTPUT_FORMATS)[number];

export class BillingUsageError extends Error {
  override readonly name = 'BillingUsageError';
}

/** Accepts Unix ms, or an ISO-8601 date / date-time (a bare date is UTC midnight). */
export function parseTime(value: string, flag: string): number {
  if (/^\d+$/.test(value)) return Number(value);
  const ms = Date.parse(/^\d{4}-\d{2}-\d{2}$/.test(value) ? `${value}T00:00:00Z` : value);
  if (Number.isNaN(ms)) throw new BillingUsageError(`${flag} ${JSON.stringify(value)}: expected an ISO date (2026-11-29), date-time or Unix ms`);
  return ms;
}

export function billingQueryFrom(values: Record<string, string | undefined>, nowMs: number): BillingQuery {
  const by = (values['by'] ?? 'ad') as BillingDimension;
  if (!BILLING_DIMENSIONS.includes(by)) throw new BillingUsageError(`--by must be one of ${BILLING_DIMENSIONS.join(', ')}`);
  const fromMs = values['from'] === undefined ? nowMs - 30 * 86_400_000 : parseTime(values['from'], '--from');
  const toMs = values['to'] === undefined ? nowMs + 60_000 : parseTime(values['to'], '--to');
  if (toMs <= fromMs) throw new BillingUsageError('--to must be after --from');
  return { fromMs, toMs, by, ad: values['ad'], campaign: values['campaign'], site: values['site'], user: values['user'] };
}

/** The query as `/v1/billing` URL parameters (the processor's billing API takes the same filters). */
export function billingSearchParams(query: BillingQuery): URLSearchParams {
  const params = new URLSearchParams({ from: String(query.fromMs), to: String(query.toMs), by: query.by });
  for (const field of ['ad', 'campaign', 'site', 'user'] as const) {
    const value = query[field];
    if (value !== undefined) params.set(field, value);
  }
  return params;
}

export interface BillingSource {
  readonly clickhouseUrl: string | undefined;
  readonly clickhouseUser: string;
  readonly clickhousePassword: string;
  readonly database: string;
  readonly dataDir: string;
  readonly processorUrl: string;
}

/**
 * Runs the report where the data is: a ClickHouse server when configured; otherwise the running
 * processor's billing API (it owns the embedded database); otherwise the embedded database itself.
 */
export async function fetchBilling(query: BillingQuery, source: BillingSource, note: (line: string) => void): Promise<BillingRow[]> {
  if (source.clickhouseUrl === undefined) {
    const response = await fetch(`${source.processorUrl}/v1/billing?${billingSearchParams(query).toString()}`).catch(() => undefined);
    if (response !== undefined) {
      const body = (await response.json()) as BillingRow[] | { error: string };
      if (!Array.isArray(body)) throw new Error(`the processor refused the billing query: ${body.error}`);
      note(`from the running processor at ${source.processorUrl}`);
      return body;
    }
    note(`no processor answers at ${source.processorUrl}: reading embedded ClickHouse at ${source.dataDir}`);
  }
  const warehouse = await openWarehouse({
    url: source.clickhouseUrl,
    username: source.clickhouseUser,
    password: source.clickhousePassword,
    database: source.database,
    dataDir: source.dataDir,
  });
  try {
    return await billingReport(warehouse.readOnly(), warehouse.database, query);
  } finally {
    await warehouse.close();
  }
}

const COLUMNS: ReadonlyArray<readonly [string, (row: BillingRow) => string | number | null]> = [
  ['key', (r) => r.key],
  ['billable_seconds', (r) => r.billable_seconds],
  ['impressions', (r) => r.impressions],
  ['measurable', (r) => r.measurable_impressions],
  ['viewable', (r) => r.viewable_impressions],
  ['viewability_rate', (r) => (r.viewability_rate === null ? null : Number(r.viewability_rate.toFixed(4)))],
  ['avg_time_in_view_s', (r) => (r.avg_time_in_view_ms === null ? null : Number((r.avg_time_in_view_ms / 1000).toFixed(3)))],
  ['flagged', (r) => r.flagged_impressions],
  ['viewable_s_incl_flagged', (r) => r.viewable_ms_incl_flagged / 1000],
  ...TIME_IN_VIEW_BUCKETS.map((bucket) => [`tiv_${bucket}`, (r: BillingRow) => r.time_in_view[bucket]] as const),
  // The exact figures behind the rounded ones, and the rest of what flagged traffic would add.
  ['billable_ms', (r) => r.billable_ms],
  ['measurable_incl_flagged', (r) => r.measurable_impressions_incl_flagged],
  ['viewable_incl_flagged', (r) => r.viewable_impressions_incl_flagged],
  ['viewable_ms_incl_flagged', (r) => r.viewable_ms_incl_flagged],
];

export function formatBilling(rows: readonly BillingRow[], format: OutputFormat, by: BillingDimension): string {
  if (format === 'json') return JSON.stringify(rows, null, 2) + '\n';
  const header = COLUMNS.map(([name]) => (name === 'key' ? by : name));
  const cells = rows.map((row) => COLUMNS.map(([, cell]) => cell(row)));
  if (format === 'csv') {
    const quote = (value: string | number | null): string => {
      const text = value === null ? '' : String(value);
      return /[",\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
    };
    return [header, ...cells].map((line) => line.map(quote).join(',')).join('\n') + '\n';
  }
  if (rows.length === 0) return '(no billed exposure in this period)\n';
  // The table shows the main figures; csv carries every column above, json every field.
  const shown = 9;
  const text = [header.slice(0, shown), ...cells.map((line) => line.slice(0, shown).map((v) => (v === null ? '-' : String(v))))];
  const widths = text[0]?.map((_, i) => Math.max(...text.map((line) => String(line[i]).length))) ?? [];
  return (
    text
      .map((line, index) => {
        const formatted = line.map((value, i) => (i === 0 ? String(value).padEnd(widths[i] ?? 0) : String(value).padStart(widths[i] ?? 0))).join('  ');
        return index === 0 ? `${formatted}\n${widths.map((w) => '-'.repeat(w)).join('  ')}` : formatted;
      })
      .join('\n') + '\n'
  );
}
