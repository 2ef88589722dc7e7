/**
 * The canonical form of audited results: one fixed field order, one text per row, so the replay's
 * rows and the billed rows can be compared field by field and hashed the same way. A checksum is
 * SHA-256 over the rows' canonical lines sorted by code unit, each followed by a newline.
 */
import { createHash } from 'node:crypto';
import type { ImpressionResult, MinuteBucketRow } from '@dwell/exposure';

/** Per-impression fields an audit compares: every billed figure and identity, not the bookkeeping (`final`, `version`). */
export const IMPRESSION_FIELDS = [
  'site_id',
  'page_view_id',
  'impression_id',
  'user_id',
  'ad_id',
  'campaign_id',
  'media',
  'width',
  'height',
  'measurable',
  'viewable',
  'billable',
  'viewable_ms',
  'credited_ms',
  'longest_run_ms',
  'flags',
  'first_server_ms',
  'last_server_ms',
  'rules_version',
] as const;

export const MINUTE_FIELDS = ['site_id', 'page_view_id', 'impression_id', 'minute_start_ms', 'user_id', 'ad_id', 'campaign_id', 'viewable_ms', 'rules_version'] as const;

export const AD_DAY_FIELDS = ['ad_id', 'day', 'billable_ms', 'impressions', 'measurable_impressions', 'billable_impressions'] as const;

/** An impression as audited: the replay's ImpressionResult and a billed row both fit. */
export type AuditImpression = Pick<ImpressionResult, Exclude<(typeof IMPRESSION_FIELDS)[number], 'media' | 'flags'>> & {
  readonly media: string;
  readonly flags: readonly string[];
};

/** A billed minute as audited. */
export type AuditMinute = Pick<MinuteBucketRow, (typeof MINUTE_FIELDS)[number]>;

/** Per ad and UTC day: billed ms by the day of the minute; impression counts by the day of `first_server_ms`. */
export interface AdDayTotal {
  readonly ad_id: string;
  /** `YYYY-MM-DD`, UTC. */
  readonly day: string;
  readonly billable_ms: number;
  readonly impressions: number;
  /** Measurable and unflagged, as billing counts them. */
  readonly measurable_impressions: number;
  readonly billable_impressions: number;
}

export function impressionKey(r: Pick<AuditImpression, 'site_id' | 'page_view_id' | 'impression_id'>): string {
  return `${r.site_id}\u0000${r.page_view_id}\u0000${r.impression_id}`;
}

export function minuteKey(r: Pick<AuditMinute, 'site_id' | 'page_view_id' | 'impression_id' | 'minute_start_ms'>): string {
  return `${r.site_id}\u0000${r.page_view_id}\u0000${r.impression_id}\u0000${r.minute_start_ms}`;
}

export function adDayKey(r: Pick<AdDayTotal, 'ad_id' | 'day'>): string {
  return `${r.ad_id}\u0000${r.day}`;
}

/** The value of a field in canonical form: booleans stay booleans, flags are sorted. */
export function canonicalValue(row: object, field: string): unknown {
  const value = (row as Record<string, unknown>)[field];
  if (field === 'flags') return [...((value as readonly string[] | undefined) ?? [])].sort();
  return value;
}

function line(row: object, fields: readonly string[]): string {
  return JSON.stringify(fields.map((field) => canonicalValue(row, field)));
}

export const canonicalImpression = (row: AuditImpression): string => line(row, IMPRESSION_FIELDS);
export const canonicalMinute = (row: AuditMinute): string => line(row, MINUTE_FIELDS);
export const canonicalAdDay = (row: AdDayTotal): string => line(row, AD_DAY_FIELDS);

/** SHA-256 (hex) over the lines sorted by code unit, each followed by `\n`. Order-independent. */
export function checksumOfLines(lines: readonly string[]): string {
  const hash = createHash('sha256');
  for (const text of [...lines].sort(compareCodeUnits)) hash.update(`${text}\n`);
  return hash.digest('hex');
}

export function compareCodeUnits(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

export function utcDay(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10);
}

/** Totals per (ad, day) of a set of impressions and their billed minutes (minutes of 0 ms count nothing). */
export function adDayTotals(impressions: readonly AuditImpression[], minutes: readonly AuditMinute[]): AdDayTotal[] {
  const totals = new Map<string, { ad_id: string; day: string; billable_ms: number; impressions: number; measurable_impressions: number; billable_impressions: number }>();
  const at = (ad_id: string, day: string) => {
    const key = `${ad_id}\u0000${day}`;
    let total = totals.get(key);
    if (total === undefined) {
      total = { ad_id, day, billable_ms: 0, impressions: 0, measurable_impressions: 0, billable_impressions: 0 };
      totals.set(key, total);
    }
    return total;
  };
  for (const r of impressions) {
    const total = at(r.ad_id, utcDay(r.first_server_ms));
    total.impressions += 1;
    if (r.measurable && r.flags.length === 0) total.measurable_impressions += 1;
    if (r.billable) total.billable_impressions += 1;
  }
  for (const m of minutes) {
    if (m.viewable_ms > 0) at(m.ad_id, utcDay(m.minute_start_ms)).billable_ms += m.viewable_ms;
  }
  return [...totals.values()].sort((a, b) => compareCodeUnits(adDayKey(a), adDayKey(b)));
}

/** The audit's three checksums of one side (replay or billed). */
export interface Checksums {
  readonly impressions: string;
  readonly minutes: string;
  readonly ad_day: string;
}

export function checksumsOf(impressions: readonly AuditImpression[], minutes: readonly AuditMinute[], totals: readonly AdDayTotal[]): Checksums {
  return {
    impressions: checksumOfLines(impressions.map(canonicalImpression)),
    minutes: checksumOfLines(minutes.filter((m) => m.viewable_ms > 0).map(canonicalMinute)),
    ad_day: checksumOfLines(totals.map(canonicalAdDay)),
  };
}

/** A zeroed row written to overwrite an impression that no longer exists (see PageViewReport). */
export function isRetraction(r: AuditImpression): boolean {
  return !r.measurable && !r.viewable && !r.billable && r.viewable_ms === 0 && r.credited_ms === 0 && r.longest_run_ms === 0;
}
