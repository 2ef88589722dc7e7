/**
 * `dwell export`: the raw events behind a range of billing, as evidence an auditor can recompute
 * with `dwell compute` (or any Avro tool). The file holds whole page views: every event the log
 * took into each in-scope page view (same scope as `dwell replay`), per partition in log order.
 * Events the processor refused (late, invalid) are left out and counted: with them, a recompute
 * of the file alone could accept what the full log rejected.
 */
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { once } from 'node:events';
import { finished } from 'node:stream/promises';
import { parseArgs } from 'node:util';
import { DEFAULT_RULES_CONFIG } from '@dwell/exposure';
import { createKafka, readLog, type Kafka } from '@dwell/kafka';
import { currentSchema, decodeSingleObject, fingerprintHex, type PageEvent } from '@dwell/protocol';
import { AvroEventWriter, EXPORT_METADATA, type ExportPartition } from '../audit/avro-file.js';
import { AUDIT_EXIT, AuditUsageError } from '../audit/exit-codes.js';
import { planRead, RetentionError, TopicMissingError, type LogPlan } from '../audit/log-plan.js';
import { codeVersion, rulesInfo } from '../audit/manifest.js';
import { auditEnvironment, describeFilter, scopeFrom } from '../audit/options.js';
import { Progress } from '../audit/progress.js';
import { leadInMs, type AuditScope, type ReplayedPageView } from '../audit/replay-engine.js';
import { readAndReplay, workersFrom, type CommandIO } from './replay.js';

export const EXPORT_FORMATS = ['avro', 'ndjson'] as const;
export type ExportFormat = (typeof EXPORT_FORMATS)[number];

export async function exportCommand(argv: readonly string[], io: CommandIO): Promise<number> {
  let values: Record<string, string | undefined>;
  try {
    values = parseArgs({
      args: [...argv],
      options: Object.fromEntries(['from', 'to', 'ad', 'campaign', 'site', 'out', 'format', 'workers'].map((name) => [name, { type: 'string' }])) as Record<string, { type: 'string' }>,
    }).values as Record<string, string | undefined>;
  } catch (error) {
    throw new AuditUsageError(error instanceof Error ? error.message : String(error));
  }
  const out = values['out'];
  if (out === undefined || out === '') throw new AuditUsageError('export needs --out FILE');
  const format = exportFormat(values['format'], out);
  const scope = scopeFrom(values);
  const workers = workersFrom(values['workers']);
  const { config, brokers } = auditEnvironment(io.env);
  const kafka = createKafka({ brokers, clientId: 'dwell-export' });
  return runExport(kafka, config.DWELL_EVENTS_TOPIC, scope, { out, format }, io, { brokers, workers });
}

/**
 * The format asked for with --format; without it, what the file's name says (`.ndjson`, `.jsonl`:
 * NDJSON), else an Avro container file.
 */
export function exportFormat(asked: string | undefined, out: string): ExportFormat {
  if (asked === undefined) return /\.(ndjson|jsonl)$/i.test(out) ? 'ndjson' : 'avro';
  if (!(EXPORT_FORMATS as readonly string[]).includes(asked)) throw new AuditUsageError(`--format must be one of ${EXPORT_FORMATS.join(', ')}`);
  return asked as ExportFormat;
}

/** Whether a page view belongs in the file: ad and campaign filters take whole page views that show one. */
function exported(view: ReplayedPageView, scope: AuditScope): boolean {
  const impressions = view.report?.impressions ?? [];
  if (scope.ad !== undefined) return impressions.some((i) => i.ad_id === scope.ad);
  if (scope.campaign !== undefined) return impressions.some((i) => i.campaign_id === scope.campaign);
  return true;
}

export async function runExport(
  kafka: Kafka,
  topic: string,
  scope: AuditScope,
  target: { out: string; format: ExportFormat },
  io: CommandIO,
  options: { brokers: readonly string[]; workers?: number | undefined },
): Promise<number> {
  const note = (line: string): void => void io.stderr.write(`dwell export: ${line}\n`);
  const rules = DEFAULT_RULES_CONFIG;
  const leadIn = leadInMs(rules);
  let plan: LogPlan;
  try {
    plan = await planRead(kafka, topic, scope.fromMs - leadIn);
  } catch (error) {
    if (error instanceof RetentionError || error instanceof TopicMissingError) {
      note(error.message);
      return error instanceof RetentionError ? AUDIT_EXIT.retention : AUDIT_EXIT.error;
    }
    throw error;
  }

  // Pass 1: the replay's computation finds the page views in scope and the events the log took in.
  const replayed = await readAndReplay(plan, scope, {
    brokers: options.brokers,
    clientId: 'dwell-export',
    workers: options.workers,
    rules: undefined,
    keepRefused: true,
    label: 'export: scan',
    io,
    note,
  });
  const views = replayed.pageViews.filter((v) => exported(v, scope));

  const byPartition = new Map<number, Map<string, ReplayedPageView[]>>();
  const layout: ExportPartition[] = [];
  let omitted = 0;
  for (const p of plan.partitions) {
    const mine = views.filter((v) => v.partition === p.partition);
    if (mine.length === 0) continue;
    const ids = new Map<string, ReplayedPageView[]>();
    for (const v of mine) ids.set(v.pageViewId, [...(ids.get(v.pageViewId) ?? []), v]);
    byPartition.set(p.partition, ids);
    omitted += mine.reduce((sum, v) => sum + v.refused.length, 0);
    let first = Infinity;
    let last = -Infinity;
    for (const v of mine) {
      first = Math.min(first, v.openedOffset);
      last = Math.max(last, v.lastOffset);
    }
    layout.push({ partition: p.partition, events: mine.reduce((sum, v) => sum + v.events, 0), first_offset: String(first), last_offset: String(last) });
  }
  const events = layout.reduce((sum, p) => sum + p.events, 0);
  const manifest = {
    format: 'dwell.export.v1',
    topic,
    scope: {
      from: new Date(scope.fromMs).toISOString(),
      to: new Date(scope.toMs).toISOString(),
      filter: describeFilter(scope),
      lead_in_ms: leadIn,
      read_from: new Date(plan.readFromMs).toISOString(),
      selection: 'whole page views whose first event lies in [from, to); ad and campaign filters select page views that show them',
    },
    code: codeVersion(io.env),
    rules: rulesInfo(rules),
    schema: { name: 'PageEvent', version: currentSchema('PageEvent').version, fingerprint: fingerprintHex(currentSchema('PageEvent').fingerprint) },
    counts: { page_views: views.length, events, refused_events_omitted: omitted },
    partitions: layout,
  };

  // Pass 2: each partition's range again, writing the events of the selected page views.
  const sink = target.format === 'avro' ? AvroSink.open(target.out, manifest, layout) : NdjsonSink.open(target.out);
  const write = new Progress(io.stderr, 'export: write', layout.reduce((sum, p) => sum + (Number(p.last_offset) - Number(p.first_offset) + 1), 0));
  let read = 0;
  try {
    for (const part of layout) {
      const ids = byPartition.get(part.partition) ?? new Map<string, ReplayedPageView[]>();
      const refused = new Set<number>();
      for (const list of ids.values()) for (const v of list) for (const offset of v.refused) refused.add(offset);
      let written = 0;
      await readLog(kafka, {
        topic,
        ranges: [{ partition: part.partition, start: BigInt(part.first_offset ?? '0'), end: BigInt(part.last_offset ?? '0') + 1n }],
        onRecords: (_partition, records) => {
          const keep: Array<{ event: PageEvent; offset: number }> = [];
          for (const record of records) {
            read += 1;
            if (record.value === null || refused.has(record.offset)) continue;
            const decoded = decodeSingleObject('PageEvent', record.value);
            if (!decoded.ok) continue;
            const candidates = ids.get(decoded.value.event.page_view_id);
            if (candidates?.some((v) => record.offset >= v.openedOffset && record.offset <= v.lastOffset) === true) keep.push({ event: decoded.value, offset: record.offset });
          }
          written += keep.length;
          write.update(read);
          return (async () => {
            for (const k of keep) await sink.write(k.event, part.partition, k.offset);
            return true;
          })();
        },
        onWarning: note,
      });
      if (written !== part.events) throw new Error(`partition ${part.partition}: wrote ${written} events, the scan counted ${part.events}; the log changed under the export?`);
    }
  } finally {
    await sink.close();
  }
  write.finish(read);
  const digest = await sha256File(target.out);
  io.stdout.write(
    `exported ${events} events of ${views.length} page views (${layout.length} partitions; ${omitted} refused events left out) to ${target.out} (${target.format}), sha256 ${digest}\n`,
  );
  return AUDIT_EXIT.ok;
}

interface EventSink {
  write(event: PageEvent, partition: number, offset: number): Promise<void>;
  close(): Promise<void>;
}

const AvroSink = {
  open(path: string, manifest: unknown, layout: readonly ExportPartition[]): EventSink {
    const writer = AvroEventWriter.open(path, {
      [EXPORT_METADATA.partitions]: JSON.stringify(layout),
      [EXPORT_METADATA.manifest]: JSON.stringify(manifest),
    });
    return { write: (event) => writer.write(event), close: () => writer.close() };
  },
};

const NdjsonSink = {
  open(path: string): EventSink {
    const file = createWriteStream(path);
    const done = finished(file);
    return {
      async write(event, partition, offset) {
        // The stored event's fields, in the shape `dwell compute` reads, plus where it sits in the log.
        const line = JSON.stringify({
          recv_ms: event.recv_ms,
          site_id: event.site_id,
          user_id: event.user_id,
          user_agent: event.user_agent,
          gateway_id: event.gateway_id,
          transport: event.transport,
          event: event.event,
          partition,
          offset: String(offset),
        });
        if (!file.write(`${line}\n`)) await once(file, 'drain');
      },
      async close() {
        file.end();
        await done;
      },
    };
  },
};

async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}
