import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { PartitionExposure, type ImpressionResult } from '@dwell/exposure';
import { validateClientEvent, type PageEvent, type Transport } from '@dwell/protocol';
import { EXPORT_METADATA, isAvroContainer, openAvroEvents, type ExportPartition } from '../audit/avro-file.js';
import { impressionKey } from '../audit/canonical.js';

/**
 * `dwell compute`: recomputes exposure from a file of events with the same core the processor
 * bills with. Auditors run it on evidence (`dwell export` output, or any file of wire events).
 *
 * Input, one JSON object per line, either:
 * - a stored event as `dwell export --format ndjson` writes it: `{recv_ms, site_id, user_id,
 *   user_agent, gateway_id, transport, event: {…client event…}}`, or
 * - a client event in the wire format of docs/protocol.md, optionally with `recv_ms`, `site_id`,
 *   `user_id` and `user_agent` beside its fields.
 * Lines are applied in file order, per partition of the log (file order decides lateness): a line's
 * `partition` field (as export writes it) picks its partition, 0 without one.
 *
 * Or an Avro object container file of PageEvents (`dwell export --format avro`, detected by its
 * `Obj\x01` magic), whose `dwell.partitions` header says which records belong to which partition.
 */
export interface ComputeReport {
  readonly lines: number;
  readonly applied: number;
  readonly problems: ReadonlyArray<{ line: number; reason: string; detail: string }>;
  readonly outcomes: Readonly<Record<string, number>>;
  /** Lines that carried no recv_ms: their server times are the client's t_wall_ms. */
  readonly withoutRecvMs: number;
  readonly impressions: readonly ImpressionResult[];
  readonly byAdAndUser: readonly AdUserTotal[];
}

export interface AdUserTotal {
  readonly ad_id: string;
  readonly user_id: string;
  readonly viewable_ms: number;
  readonly viewable_impressions: number;
  readonly measurable_impressions: number;
  readonly viewability_rate: number | null;
  readonly avg_time_in_view_ms: number | null;
}

/** One input record: its line (or record) number and parsed value, or why it could not be parsed. */
type InputRecord = { readonly line: number; readonly value: unknown; readonly partition?: number } | { readonly line: number; readonly problem: { reason: string; detail: string } };

export async function compute(lines: AsyncIterable<string>): Promise<ComputeReport> {
  return computeRecords(jsonRecords(lines));
}

/** `compute` on a file: NDJSON, or an Avro container file; `-` reads NDJSON from stdin. */
export async function computeFile(path: string): Promise<ComputeReport> {
  if (path !== '-' && (await isAvroContainer(path))) return computeRecords(await avroRecords(path));
  return computeRecords(jsonRecords(linesOf(path)));
}

async function* jsonRecords(lines: AsyncIterable<string>): AsyncIterable<InputRecord> {
  let line = 0;
  for await (const raw of lines) {
    line += 1;
    if (raw.trim() === '') continue;
    try {
      yield { line, value: JSON.parse(raw) as unknown };
    } catch (error) {
      yield { line, problem: { reason: 'malformed_json', detail: String(error) } };
    }
  }
}

async function avroRecords(path: string): Promise<AsyncIterable<InputRecord>> {
  const { metadata, records } = await openAvroEvents(path);
  const layout = JSON.parse(metadata.get(EXPORT_METADATA.partitions) ?? '[]') as ExportPartition[];
  return (async function* () {
    let line = 0;
    let block = 0;
    let left = layout[0]?.events ?? Infinity;
    for await (const value of records) {
      line += 1;
      while (left <= 0 && block < layout.length - 1) left = layout[++block]?.events ?? Infinity;
      left -= 1;
      yield { line, value, partition: layout[block]?.partition ?? 0 };
    }
  })();
}

async function computeRecords(records: AsyncIterable<InputRecord>): Promise<ComputeReport> {
  const partitions = new Map<number, PartitionExposure>();
  const problems: Array<{ line: number; reason: string; detail: string }> = [];
  const outcomes: Record<string, number> = {};
  const latest = new Map<string, ImpressionResult>();
  let lineNumber = 0;
  let applied = 0;
  let withoutRecvMs = 0;
  const collect = (): void => {
    for (const partition of partitions.values()) {
      const changes = partition.takeChanges();
      for (const report of [...changes.closed, ...changes.changed]) {
        // An impression a conflicting copy of an event took away is none, however early its
        // rows were taken: the output depends on the events alone.
        for (const gone of report.retracted_impressions) latest.delete(impressionKey(gone));
        for (const result of report.impressions) latest.set(impressionKey(result), result);
      }
    }
  };
  for await (const record of records) {
    lineNumber = record.line;
    if ('problem' in record) {
      problems.push({ line: record.line, ...record.problem });
      continue;
    }
    const { value } = record;
    const parsed = toPageEvent(value);
    if ('reason' in parsed) {
      problems.push({ line: lineNumber, ...parsed });
      continue;
    }
    if (!parsed.hadRecvMs) withoutRecvMs += 1;
    const field = (value as Record<string, unknown>)['partition'];
    const number = record.partition ?? (Number.isSafeInteger(field) ? (field as number) : 0);
    let partition = partitions.get(number);
    if (partition === undefined) {
      partition = new PartitionExposure();
      partitions.set(number, partition);
    }
    const outcome = partition.apply(parsed.event);
    outcomes[outcome] = (outcomes[outcome] ?? 0) + 1;
    applied += 1;
    if (applied % 10_000 === 0) collect();
  }
  collect();
  const impressions = [...latest.values()].sort((a, b) =>
    a.page_view_id === b.page_view_id ? (a.impression_id < b.impression_id ? -1 : 1) : a.page_view_id < b.page_view_id ? -1 : 1,
  );
  return { lines: lineNumber, applied, problems, outcomes, withoutRecvMs, impressions, byAdAndUser: totals(impressions) };
}

function totals(impressions: readonly ImpressionResult[]): AdUserTotal[] {
  const groups = new Map<string, { ad_id: string; user_id: string; ms: number; viewable: number; measurable: number }>();
  for (const r of impressions) {
    const key = `${r.ad_id}\u0000${r.user_id}`;
    const group = groups.get(key) ?? { ad_id: r.ad_id, user_id: r.user_id, ms: 0, viewable: 0, measurable: 0 };
    const flagged = r.flags.length > 0;
    group.ms += r.viewable_ms;
    if (r.billable) group.viewable += 1;
    if (r.measurable && !flagged) group.measurable += 1;
    groups.set(key, group);
  }
  return [...groups.values()]
    .sort((a, b) => (a.ad_id === b.ad_id ? (a.user_id < b.user_id ? -1 : 1) : a.ad_id < b.ad_id ? -1 : 1))
    .map((g) => ({
      ad_id: g.ad_id,
      user_id: g.user_id,
      viewable_ms: g.ms,
      viewable_impressions: g.viewable,
      measurable_impressions: g.measurable,
      viewability_rate: g.measurable === 0 ? null : g.viewable / g.measurable,
      avg_time_in_view_ms: g.viewable === 0 ? null : g.ms / g.viewable,
    }));
}

function toPageEvent(value: unknown): { event: PageEvent; hadRecvMs: boolean } | { reason: string; detail: string } {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return { reason: 'not_an_object', detail: 'each line must be a JSON object' };
  const o = value as Record<string, unknown>;
  const stored = typeof o['event'] === 'object' && o['event'] !== null;
  const checked = validateClientEvent(stored ? o['event'] : o);
  if (!checked.ok) return { reason: checked.reason, detail: checked.detail };
  const text = (field: string, fallback: string | null): string | null => (typeof o[field] === 'string' ? (o[field] as string) : fallback);
  const hadRecvMs = Number.isSafeInteger(o['recv_ms']);
  return {
    hadRecvMs,
    event: {
      recv_ms: hadRecvMs ? (o['recv_ms'] as number) : checked.event.t_wall_ms,
      gateway_id: text('gateway_id', 'file') as string,
      site_id: text('site_id', 'unknown') as string,
      user_id: text('user_id', 'unknown') as string,
      user_agent: text('user_agent', null),
      transport: (text('transport', 'http') as Transport | null) ?? 'http',
      event: checked.event,
    },
  };
}

export function linesOf(path: string): AsyncIterable<string> {
  const input = path === '-' ? process.stdin : createReadStream(path, { encoding: 'utf8' });
  return createInterface({ input, crlfDelay: Infinity });
}

export function formatCompute(report: ComputeReport, format: 'json' | 'table'): string {
  if (format === 'json') return JSON.stringify(report, null, 2) + '\n';
  const out: string[] = [];
  out.push(`${report.applied} events applied from ${report.lines} lines; outcomes ${JSON.stringify(report.outcomes)}`);
  if (report.withoutRecvMs > 0) {
    out.push(`note: ${report.withoutRecvMs} events had no recv_ms; their server times are the client's t_wall_ms, so timing plausibility is not checked against the server`);
  }
  for (const p of report.problems.slice(0, 20)) out.push(`line ${p.line}: ${p.reason}: ${p.detail}`);
  if (report.problems.length > 20) out.push(`… and ${report.problems.length - 20} more refused lines`);
  out.push('', 'per impression:');
  out.push(table(
    ['page_view_id', 'impression_id', 'ad_id', 'user_id', 'measurable', 'viewable', 'viewable_ms', 'credited_ms', 'flags'],
    report.impressions.map((r) => [r.page_view_id, r.impression_id, r.ad_id, r.user_id, r.measurable, r.viewable, r.viewable_ms, r.credited_ms, r.flags.join(',')]),
  ));
  out.push('', 'per ad and user:');
  out.push(table(
    ['ad_id', 'user_id', 'viewable_ms', 'viewable', 'measurable', 'viewability_rate', 'avg_time_in_view_ms'],
    report.byAdAndUser.map((t) => [t.ad_id, t.user_id, t.viewable_ms, t.viewable_impressions, t.measurable_impressions, t.viewability_rate ?? '-', t.avg_time_in_view_ms ?? '-']),
  ));
  return out.join('\n') + '\n';
}

function table(header: readonly string[], rows: ReadonlyArray<ReadonlyArray<unknown>>): string {
  const text = [header.map(String), ...rows.map((row) => row.map((cell) => (typeof cell === 'number' && !Number.isInteger(cell) ? cell.toFixed(4) : String(cell))))];
  const widths = header.map((_, i) => Math.max(...text.map((row) => (row[i] ?? '').length)));
  return text.map((row) => row.map((cell, i) => cell.padEnd(widths[i] ?? 0)).join('  ').trimEnd()).join('\n');
}
