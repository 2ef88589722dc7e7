/**
 * The audit report: manifest, verdict, every difference, what could not be compared, and the
 * recomputed totals per (ad, day). Written as JSON (`--report FILE`, `--format json`) or summarised
 * as text.
 */
import type { AdDayTotal, Checksums } from './canonical.js';
import type { Uncompared } from './compare.js';
import type { Difference } from './diff.js';
import { canonicalJson, sha256, type CodeVersion, type RulesInfo } from './manifest.js';
import type { ReplayCounts, StopReason } from './replay-engine.js';

export const REPORT_FORMAT = 'dwell.replay-report.v1';

export type Verdict = 'equal' | 'different' | 'incomplete';

export interface PartitionManifest {
  readonly partition: number;
  /** Earliest retained offset when the replay started. */
  readonly low: string;
  /** End of the log when the replay started: the read stops there at the latest. */
  readonly high: string;
  /** First offset read: the first record at or after `scope.read_from`. */
  readonly start_offset: string;
  readonly first_offset_read: string | null;
  readonly last_offset_read: string | null;
  readonly records: number;
  /** Last offset whose results the processors had written (processed_ranges), before the read and after the billed rows were read. */
  readonly processor_position_before: string | null;
  readonly processor_position_after: string | null;
  readonly stopped: StopReason;
  readonly watermark_ms: number | null;
}

export interface ReplayManifest {
  readonly format: typeof REPORT_FORMAT;
  readonly replay_id: string;
  readonly started_at: string;
  readonly finished_at: string;
  readonly duration_ms: number;
  readonly code: CodeVersion;
  readonly rules: RulesInfo;
  readonly schemas: Readonly<Record<string, { version: number; fingerprint: string }>>;
  readonly source: {
    readonly topic: string;
    readonly kafka_brokers: readonly string[];
    readonly clickhouse: { readonly mode: string; readonly location: string; readonly database: string };
  };
  readonly scope: {
    readonly from: string;
    readonly to: string;
    readonly from_ms: number;
    readonly to_ms: number;
    readonly ad: string | null;
    readonly campaign: string | null;
    readonly site: string | null;
    readonly lead_in_ms: number;
    readonly read_from: string;
    readonly read_from_ms: number;
  };
  readonly partitions: readonly PartitionManifest[];
  readonly counts: ReplayCounts & {
    readonly events_per_second: number;
    readonly page_views_compared: number;
    readonly page_views_not_compared: number;
    readonly impressions_replayed: number;
    readonly impressions_billed: number;
    readonly minutes_replayed: number;
    readonly minutes_billed: number;
    readonly billable_ms_replayed: number;
    readonly billable_ms_billed: number;
    readonly retractions_ignored: number;
    readonly differences: number;
  };
  readonly checksums: {
    /** Over every in-scope result the replay computed (impressions, billed minutes, per ad and day). */
    readonly replay: Checksums;
    /** The same over the billed rows of the same page views: equal to `replay` when the audit is clean. */
    readonly billed: Checksums;
    /** Over the whole report except the run's identity (replay id, times, durations, where it ran). */
    readonly report: string;
  };
  readonly warnings: readonly string[];
}

export interface ReplayReport {
  readonly manifest: ReplayManifest;
  readonly verdict: Verdict;
  readonly differences: readonly Difference[];
  readonly not_compared: readonly Uncompared[];
  /** Per (ad, UTC day) as the log gives them, for every in-scope page view. */
  readonly ad_day_totals: readonly AdDayTotal[];
}

/** The report checksum: canonical JSON of the report without the run identity. */
export function reportChecksum(report: Omit<ReplayReport, 'manifest'> & { manifest: Omit<ReplayManifest, 'checksums'> & { checksums: Omit<ReplayManifest['checksums'], 'report'> } }): string {
  const { replay_id: _id, started_at: _s, finished_at: _f, duration_ms: _d, source: _src, counts, ...rest } = report.manifest;
  const { events_per_second: _rate, ...stableCounts } = counts;
  return sha256(canonicalJson({ ...report, manifest: { ...rest, counts: stableCounts } }));
}

export function verdictOf(differences: number, uncompared: number): Verdict {
  return differences > 0 ? 'different' : uncompared > 0 ? 'incomplete' : 'equal';
}

const VERDICT_TEXT: Record<Verdict, string> = {
  equal: 'EQUAL: ClickHouse bills exactly what the log gives for every page view in scope',
  different: 'DIFFERENT: ClickHouse and the log disagree (differences below)',
  incomplete: 'NO DIFFERENCE, INCOMPLETE: some page views could not be compared yet (see not compared)',
};

/** A human summary: manifest essentials, verdict, totals, the first differences. */
export function formatReportText(report: ReplayReport, options: { maxRows?: number } = {}): string {
  const max = options.maxRows ?? 50;
  const m = report.manifest;
  const c = m.counts;
  const filter = m.scope.ad !== null ? `ad ${m.scope.ad}` : m.scope.campaign !== null ? `campaign ${m.scope.campaign}` : m.scope.site !== null ? `site ${m.scope.site}` : 'all ads';
  const out: string[] = [];
  out.push(`dwell replay ${m.replay_id}`);
  out.push(`range      ${m.scope.from} … ${m.scope.to} (${filter}); page views whose first event lies in the range`);
  out.push(`log        ${m.source.topic}, ${m.partitions.length} partitions read from ${m.scope.read_from} (lead-in ${Math.round(m.scope.lead_in_ms / 60_000)} min)`);
  out.push(`read       ${num(c.records)} records in ${(m.duration_ms / 1000).toFixed(1)} s (${num(c.events_per_second)} events/s)`);
  out.push(`code       ${m.code.package} ${m.code.version}${m.code.git_commit === null ? '' : ` @ ${m.code.git_commit.slice(0, 12)}${m.code.git_dirty === true ? ' (modified)' : ''}`}; rules v${m.rules.version} (${m.rules.fingerprint})`);
  out.push(`billed     ClickHouse ${m.source.clickhouse.mode} ${m.source.clickhouse.location}, database ${m.source.clickhouse.database}`);
  out.push(`page views ${num(c.pageViewsInScope)} in scope, ${num(c.page_views_compared)} compared, ${num(c.page_views_not_compared)} not compared`);
  out.push(`replay     ${num(c.impressions_replayed)} impressions, ${num(c.billable_ms_replayed)} billable ms; sha256 impressions ${m.checksums.replay.impressions.slice(0, 16)}…, ad/day ${m.checksums.replay.ad_day.slice(0, 16)}…`);
  out.push(`billed     ${num(c.impressions_billed)} impressions, ${num(c.billable_ms_billed)} billable ms; sha256 impressions ${m.checksums.billed.impressions.slice(0, 16)}…, ad/day ${m.checksums.billed.ad_day.slice(0, 16)}…`);
  out.push(`report     sha256 ${m.checksums.report}`);
  for (const warning of m.warnings) out.push(`warning    ${warning}`);
  out.push('', `verdict    ${VERDICT_TEXT[report.verdict]}`);
  if (report.ad_day_totals.length > 0) {
    out.push('', 'per ad and day (from the log):');
    out.push(
      table(
        ['ad_id', 'day', 'billable_ms', 'impressions', 'measurable', 'billable'],
        report.ad_day_totals.slice(0, max).map((t) => [t.ad_id, t.day, t.billable_ms, t.impressions, t.measurable_impressions, t.billable_impressions]),
      ),
    );
    if (report.ad_day_totals.length > max) out.push(`… ${report.ad_day_totals.length - max} more (all in the JSON report)`);
  }
  if (report.differences.length > 0) {
    out.push('', `differences (${report.differences.length}):`);
    for (const d of report.differences.slice(0, max)) {
      const key = Object.values(d.key).join(' / ');
      const detail = d.fields?.map((f) => `${f.field}: log ${JSON.stringify(f.replay)} vs billed ${JSON.stringify(f.billed)}`).join('; ') ?? '';
      out.push(`  ${d.kind} ${d.status} ${key}${detail === '' ? '' : `: ${detail}`}`);
    }
    if (report.differences.length > max) out.push(`  … ${report.differences.length - max} more (all in the JSON report)`);
  }
  if (report.not_compared.length > 0) {
    const reasons = new Map<string, number>();
    for (const u of report.not_compared) reasons.set(u.reason, (reasons.get(u.reason) ?? 0) + 1);
    out.push('', `not compared: ${[...reasons].map(([reason, n]) => `${n} ${reason}`).join(', ')}`);
  }
  return `${out.join('\n')}\n`;
}

function num(n: number): string {
  return n.toLocaleString('en-US');
}

export function table(header: readonly string[], rows: ReadonlyArray<ReadonlyArray<unknown>>): string {
  const text = [header.map(String), ...rows.map((row) => row.map((cell) => String(cell)))];
  const widths = header.map((_, i) => Math.max(...text.map((row) => (row[i] ?? '').length)));
  return text.map((row) => row.map((cell, i) => cell.padEnd(widths[i] ?? 0)).join('  ').trimEnd()).join('\n');
}
