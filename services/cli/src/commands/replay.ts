/**
 * `dwell replay`: re-runs billing from the ledger and proves the numbers. Reads `dwell.events.v1`
 * with a throwaway consumer, recomputes with the processor's exposure core, compares per
 * impression, per minute and per (ad, day) with what ClickHouse bills, and writes a report with a
 * manifest and every difference. docs/audit.md explains the procedure and each decision.
 */
import { writeFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { DEFAULT_RULES_CONFIG, type RulesConfig } from '@dwell/exposure';
import { createKafka } from '@dwell/kafka';
import {
  billedImpressions,
  billedImpressionsOfPageViews,
  billedMinutes,
  billedMinutesOfPageViews,
  migrate,
  processedPositions,
  writeShadowReplay,
  type ImpressionRow,
  type MinuteRow,
  type ShadowImpressionRow,
  type ShadowMinuteRow,
} from '@dwell/warehouse';
import { impressionRow, minuteRow } from '@dwell/processor';
import { openBilledSource, ShadowAccessError, type BilledSource } from '../audit/billed-source.js';
import { impressionKey, minuteKey } from '../audit/canonical.js';
import { compare, replayRows, type ReplayRows } from '../audit/compare.js';
import { AUDIT_EXIT, AuditUsageError } from '../audit/exit-codes.js';
import { planRead, RetentionError, TopicMissingError, type LogPlan } from '../audit/log-plan.js';
import { codeVersion, rulesInfo, schemaFingerprints } from '../audit/manifest.js';
import { auditEnvironment, describeFilter, scopeFrom, type AuditEnvironment } from '../audit/options.js';
import { Progress, type ProgressSink } from '../audit/progress.js';
import { defaultWorkers, replayInWorkers, type ReplayResult } from '../audit/parallel-replay.js';
import { leadInMs, TIMESTAMP_SKEW_MARGIN_MS, type AuditScope } from '../audit/replay-engine.js';
import { formatReportText, REPORT_FORMAT, reportChecksum, verdictOf, type PartitionManifest, type ReplayManifest, type ReplayReport } from '../audit/report.js';
import { uuidv7 } from '../uuid.js';

export interface CommandIO {
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly stdout: { write(text: string): unknown };
  readonly stderr: ProgressSink;
}


const HOUR_MS = 3_600_000;

export interface ReplayOptions {
  readonly scope: AuditScope;
  readonly intoShadow: boolean;
  readonly reportPath: string | undefined;
  readonly format: 'table' | 'json';
  readonly processorUrl: string;
  readonly environment: AuditEnvironment;
  /** Worker threads decoding and recomputing; default one per core (at most one per partition). */
  readonly workers?: number | undefined;
  readonly rules?: RulesConfig;
}

/** Parses the command line and runs the replay; resolves to the exit code. */
export async function replayCommand(argv: readonly string[], io: CommandIO): Promise<number> {
  let values: Record<string, string | undefined>;
  try {
    values = parseArgs({
      args: [...argv],
      options: Object.fromEntries(['from', 'to', 'ad', 'campaign', 'site', 'into', 'report', 'format', 'processor', 'workers'].map((name) => [name, { type: 'string' }])) as Record<
        string,
        { type: 'string' }
      >,
    }).values as Record<string, string | undefined>;
  } catch (error) {
    throw new AuditUsageError(error instanceof Error ? error.message : String(error));
  }
  const format = values['format'] ?? 'table';
  if (format !== 'table' && format !== 'json') throw new AuditUsageError('--format must be table or json');
  const into = values['into'];
  if (into !== undefined && into !== 'shadow') throw new AuditUsageError('--into takes one value: shadow');
  const scope = scopeFrom(values);
  const workers = workersFrom(values['workers']);
  const environment = auditEnvironment(io.env);
  return runReplay(
    {
      scope,
      intoShadow: into === 'shadow',
      reportPath: values['report'],
      format,
      processorUrl: values['processor'] ?? `http://127.0.0.1:${environment.config.PROCESSOR_HTTP_PORT}`,
      environment,
      workers,
    },
    io,
  );
}

export async function runReplay(options: ReplayOptions, io: CommandIO): Promise<number> {
  const startedAt = Date.now();
  const replayId = uuidv7(startedAt);
  const note = (line: string): void => void io.stderr.write(`dwell replay: ${line}\n`);
  const { scope, environment } = options;
  const { config } = environment;
  const topic = config.DWELL_EVENTS_TOPIC;
  const rules = options.rules ?? DEFAULT_RULES_CONFIG;
  const leadIn = leadInMs(rules);

  let source: BilledSource;
  try {
    source = await openBilledSource(
      {
        clickhouseUrl: config.CLICKHOUSE_URL,
        clickhouseUser: config.CLICKHOUSE_USER,
        clickhousePassword: config.CLICKHOUSE_PASSWORD,
        database: config.CLICKHOUSE_DATABASE,
        dataDir: config.CLICKHOUSE_DATA_DIR,
        processorUrl: options.processorUrl,
      },
      { needWrite: options.intoShadow, note },
    );
  } catch (error) {
    if (error instanceof ShadowAccessError) {
      note(error.message);
      return AUDIT_EXIT.usage;
    }
    throw error;
  }
  try {
    const kafka = createKafka({ brokers: environment.brokers, clientId: `dwell-replay-${replayId.slice(-8)}` });
    let plan: LogPlan;
    try {
      plan = await planRead(kafka, topic, scope.fromMs - leadIn);
    } catch (error) {
      if (error instanceof RetentionError) {
        note(error.message);
        return AUDIT_EXIT.retention;
      }
      if (error instanceof TopicMissingError) {
        note(error.message);
        return AUDIT_EXIT.error;
      }
      throw error;
    }
    if (options.intoShadow && source.warehouse !== undefined) await migrate(source.warehouse, undefined, note);
    const before = await processedPositions(source.read, source.database, topic);

    const total = plan.partitions.reduce((sum, p) => sum + Number(p.high - p.start), 0);
    note(
      `reading ${topic} (${plan.partitions.length} partitions, ${total.toLocaleString('en-US')} records at most) from ${new Date(plan.readFromMs).toISOString()}: ` +
        `the range ${new Date(scope.fromMs).toISOString()} … ${new Date(scope.toMs).toISOString()} minus a lead-in of ${Math.round(leadIn / 60_000)} min`,
    );
    const readStarted = Date.now();
    const replayed = await readAndReplay(plan, scope, {
      brokers: environment.brokers,
      clientId: `dwell-replay-${replayId.slice(-8)}`,
      workers: options.workers,
      rules: options.rules,
      keepRefused: false,
      label: 'replay',
      io,
      note,
    });
    const readMs = Date.now() - readStarted;
    const rows = replayRows(replayed.pageViews, scope);

    const billed = await fetchBilled(source, rows, scope);
    const after = await processedPositions(source.read, source.database, topic);
    const comparison = compare({
      scope,
      pageViews: replayed.pageViews,
      rows,
      seen: replayed.seen,
      billedImpressions: billed.impressions,
      billedMinutes: billed.minutes,
      positionsBefore: before,
      positionsAfter: after,
    });

    const warnings: string[] = [];
    if (replayed.counts.maxTimestampSkewMs > TIMESTAMP_SKEW_MARGIN_MS) {
      warnings.push(
        `record timestamps differ from recv_ms by up to ${replayed.counts.maxTimestampSkewMs} ms, more than the ${TIMESTAMP_SKEW_MARGIN_MS} ms the lead-in allows for: page views near --from may be misjudged (docs/audit.md)`,
      );
    }
    const undecodable = Object.values(replayed.counts.undecodable).reduce((a, b) => a + b, 0);
    if (undecodable > 0) warnings.push(`${undecodable} records could not be decoded (the processor dead-letters them too): ${JSON.stringify(replayed.counts.undecodable)}`);
    for (const w of warnings) note(`warning: ${w}`);

    const summaries = new Map(replayed.partitions.map((s) => [s.partition, s]));
    const partitions: PartitionManifest[] = plan.partitions.map((p) => {
      const s = summaries.get(p.partition);
      return {
        partition: p.partition,
        low: p.low.toString(),
        high: p.high.toString(),
        start_offset: p.start.toString(),
        first_offset_read: s?.firstOffset === undefined ? null : String(s.firstOffset),
        last_offset_read: s?.lastOffset === undefined ? null : String(s.lastOffset),
        records: s?.records ?? 0,
        processor_position_before: before.get(p.partition)?.toString() ?? null,
        processor_position_after: after.get(p.partition)?.toString() ?? null,
        stopped: s?.stopped ?? 'end',
        watermark_ms: s?.watermarkMs ?? null,
      };
    });
    const finishedAt = Date.now();
    const verdict = verdictOf(comparison.differences.length, comparison.uncompared.length);
    const manifest: Omit<ReplayManifest, 'checksums'> = {
      format: REPORT_FORMAT,
      replay_id: replayId,
      started_at: new Date(startedAt).toISOString(),
      finished_at: new Date(finishedAt).toISOString(),
      duration_ms: finishedAt - startedAt,
      code: codeVersion(io.env),
      rules: rulesInfo(rules),
      schemas: schemaFingerprints(),
      source: { topic, kafka_brokers: environment.brokers, clickhouse: { mode: source.mode, location: source.location, database: source.database } },
      scope: {
        from: new Date(scope.fromMs).toISOString(),
        to: new Date(scope.toMs).toISOString(),
        from_ms: scope.fromMs,
        to_ms: scope.toMs,
        ad: scope.ad ?? null,
        campaign: scope.campaign ?? null,
        site: scope.site ?? null,
        lead_in_ms: leadIn,
        read_from: new Date(plan.readFromMs).toISOString(),
        read_from_ms: plan.readFromMs,
      },
      partitions,
      counts: {
        ...replayed.counts,
        events_per_second: Math.round(replayed.counts.records / Math.max(0.001, readMs / 1000)),
        page_views_compared: comparison.comparedPageViews,
        page_views_not_compared: comparison.uncompared.length,
        impressions_replayed: comparison.replay.impressions,
        impressions_billed: comparison.billed.impressions,
        minutes_replayed: comparison.replay.minutes,
        minutes_billed: comparison.billed.minutes,
        billable_ms_replayed: comparison.replay.billable_ms,
        billable_ms_billed: comparison.billed.billable_ms,
        retractions_ignored: comparison.retractionsIgnored,
        differences: comparison.differences.length,
      },
      warnings,
    };
    const body = { verdict, differences: comparison.differences, not_compared: comparison.uncompared, ad_day_totals: comparison.replayTotals };
    const checksums = { replay: comparison.replay.checksums, billed: comparison.billed.checksums };
    const report: ReplayReport = {
      manifest: { ...manifest, checksums: { ...checksums, report: reportChecksum({ ...body, manifest: { ...manifest, checksums } }) } },
      ...body,
    };

    if (options.intoShadow && source.warehouse !== undefined) {
      await writeShadowReplay(
        source.warehouse.client,
        source.database,
        {
          replayId,
          startedAtMs: startedAt,
          finishedAtMs: finishedAt,
          fromMs: scope.fromMs,
          toMs: scope.toMs,
          scope: describeFilter(scope),
          verdict,
          differences: comparison.differences.length,
          impressionsChecksum: checksums.replay.impressions,
          adDayChecksum: checksums.replay.ad_day,
          manifest: JSON.stringify(report.manifest),
        },
        rows.impressions.map(shadowImpression),
        rows.minutes.map(shadowMinute),
      );
      note(`recomputed rows written to ${source.database}.shadow_impressions and ${source.database}.shadow_exposure_minutes with replay_id = '${replayId}'`);
    }
    if (options.reportPath !== undefined) {
      await writeFile(options.reportPath, `${JSON.stringify(report, null, 2)}\n`);
      note(`report written to ${options.reportPath}`);
    }
    io.stdout.write(options.format === 'json' ? `${JSON.stringify(report, null, 2)}\n` : formatReportText(report));
    return verdict === 'equal' ? AUDIT_EXIT.ok : verdict === 'different' ? AUDIT_EXIT.different : AUDIT_EXIT.incomplete;
  } finally {
    await source.close();
  }
}

/** Reads the planned ranges and replays them on worker threads, with progress on stderr. */
export async function readAndReplay(
  plan: LogPlan,
  scope: AuditScope,
  options: {
    brokers: readonly string[];
    clientId: string;
    workers: number | undefined;
    rules: RulesConfig | undefined;
    keepRefused: boolean;
    label: string;
    io: CommandIO;
    note: (line: string) => void;
  },
): Promise<ReplayResult> {
  const progress = new Progress(options.io.stderr, options.label, plan.partitions.reduce((sum, p) => sum + Number(p.high - p.start), 0));
  const result = await replayInWorkers(plan.partitions, {
    brokers: options.brokers,
    clientId: options.clientId,
    topic: plan.topic,
    scope,
    workers: options.workers ?? defaultWorkers(plan.partitions.length),
    rules: options.rules,
    keepRefused: options.keepRefused,
    onProgress: (records) => progress.update(records),
    onWarning: options.note,
  });
  progress.finish(result.counts.records);
  return result;
}

export function workersFrom(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 1 || n > 64) throw new AuditUsageError('--workers must be a whole number from 1 to 64');
  return n;
}

/**
 * The billed rows to compare: every impression and minute in a window around the range and the
 * replay's own rows (an hour of margin each side), then, by page view id, any in-scope row the
 * window missed (a billed row with another time than the log gives).
 */
async function fetchBilled(source: BilledSource, rows: ReplayRows, scope: AuditScope): Promise<{ impressions: ImpressionRow[]; minutes: MinuteRow[] }> {
  let lo = scope.fromMs;
  let hi = scope.toMs;
  let minuteLo = scope.fromMs;
  let minuteHi = scope.toMs;
  for (const r of rows.impressions) {
    if (r.first_server_ms < lo) lo = r.first_server_ms;
    if (r.first_server_ms + 1 > hi) hi = r.first_server_ms + 1;
  }
  for (const m of rows.minutes) {
    if (m.minute_start_ms < minuteLo) minuteLo = m.minute_start_ms;
    if (m.minute_start_ms + 60_000 > minuteHi) minuteHi = m.minute_start_ms + 60_000;
  }
  const filter = { ad: scope.ad, campaign: scope.campaign, site: scope.site };
  const impressions = await billedImpressions(source.read, source.database, { fromMs: lo - HOUR_MS, toMs: hi + HOUR_MS }, filter);
  const minutes = await billedMinutes(source.read, source.database, { fromMs: minuteLo - HOUR_MS, toMs: minuteHi + HOUR_MS }, filter);
  const haveImpressions = new Set(impressions.map(impressionKey));
  const haveMinutes = new Set(minutes.map(minuteKey));
  const missingViews = new Set<string>();
  for (const r of rows.impressions) if (!haveImpressions.has(impressionKey(r))) missingViews.add(r.page_view_id);
  for (const m of rows.minutes) if (!haveMinutes.has(minuteKey(m))) missingViews.add(m.page_view_id);
  if (missingViews.size > 0) {
    const ids = [...missingViews].sort();
    impressions.push(...(await billedImpressionsOfPageViews(source.read, source.database, ids, filter)));
    minutes.push(...(await billedMinutesOfPageViews(source.read, source.database, ids, filter)));
  }
  return { impressions, minutes };
}

/** The shadow tables hold the table rows without `version` (a replay has no log position), with the partition. */
function shadowImpression(r: ReplayRows['impressions'][number]): ShadowImpressionRow {
  const { version: _, ...row } = impressionRow(r, r.final, 0);
  return { ...row, partition: r.partition };
}

function shadowMinute(m: ReplayRows['minutes'][number]): ShadowMinuteRow {
  const { version: _, ...row } = minuteRow(m, 0);
  return row;
}
