import { describe, expect, it } from 'vitest';
import { PartitionExposure, type EventOutcome, type PageViewReport } from '@dwell/exposure';
import { decodePageEvent, encodePageEvent, type PageEvent } from '@dwell/protocol';
import { workload } from '../../../../test/workload.js';
import { canonicalImpression, canonicalMinute } from './canonical.js';
import { replayRows } from './compare.js';
import { leadInMs, ReplayEngine, type AuditScope, type ReplayRecord } from './replay-engine.js';

const MIN = 60_000;
const BASE = Date.UTC(2026, 10, 29, 6, 0, 0);

/** A page view of one fully visible display impression; one event per entry of `recvs` (ms after BASE). */
function pageView(id: string, recvs: readonly number[], firstSeq = 1): PageEvent[] {
  return recvs.map((recv, i) => ({
    recv_ms: BASE + recv,
    gateway_id: 'gw',
    site_id: 'site-x',
    user_id: 'user-x',
    user_agent: null,
    transport: 'ws_json',
    event: {
      page_view_id: id,
      seq: firstSeq + i,
      kind: i === 0 ? 'render' : 'tick',
      t_mono_ms: recv - (recvs[0] ?? 0),
      t_wall_ms: BASE + recv,
      page: { visible: true, focused: true, foreground: true },
      impressions: [
        { impression_id: `${id}-1`, ad_id: 'ad-x', campaign_id: 'c-x', width: 300, height: 250, media: 'display', visible_px: 75_000, total_px: 75_000, playing: false, reasons: [] },
      ],
    },
  }));
}

/** Three hours of traffic plus the awkward cases, in recv order, spread over partitions by id. */
function ledger(partitions: number): Map<number, ReplayRecord[]> {
  const events = [
    ...workload({ seed: 7, pageViews: 600, eventsPerPageView: 40, baseMs: BASE, spreadMs: 180 * MIN }),
    // Alive all along: an event every 4 minutes from the start. It began long before any range.
    ...pageView('long-lived', Array.from({ length: 46 }, (_, i) => i * 4 * MIN)),
    // Closed shortly after the replay start; a resend 68 minutes after its last event is still
    // `late` in the full log (remembered for lateness + closedMemory = 70 min).
    ...pageView('resent', [31 * MIN, 32 * MIN, 33 * MIN]),
    ...pageView('resent', [101 * MIN], 1),
    // Starts exactly at `from`.
    ...pageView('at-from', [100 * MIN, 100 * MIN + 1000, 100 * MIN + 2000]),
  ].sort((a, b) => a.recv_ms - b.recv_ms);
  const log = new Map<number, ReplayRecord[]>();
  for (const event of events) {
    const id = event.event.page_view_id;
    let hash = 0;
    for (let i = 0; i < id.length; i++) hash = (hash * 31 + id.charCodeAt(i)) >>> 0;
    const partition = hash % partitions;
    const records = log.get(partition) ?? [];
    records.push({ offset: records.length, timestampMs: event.recv_ms, value: encodePageEvent(event) });
    log.set(partition, records);
  }
  return log;
}

/** What the processor bills: each partition's whole log through the core, the last report of each page view. */
function fullLogResults(log: Map<number, ReplayRecord[]>): Map<string, { openedRecvMs: number; report: PageViewReport }> {
  const out = new Map<string, { openedRecvMs: number; report: PageViewReport }>();
  for (const records of log.values()) {
    const exposure = new PartitionExposure();
    const opened = new Map<string, number>();
    const take = (): void => {
      const { closed, changed } = exposure.takeChanges();
      for (const report of [...closed, ...changed]) out.set(report.page_view_id, { openedRecvMs: opened.get(report.page_view_id) ?? NaN, report });
      for (const report of closed) opened.delete(report.page_view_id);
    };
    for (const [i, record] of records.entries()) {
      if (record.value === null) continue;
      const event = decodePageEvent(record.value);
      const outcome: EventOutcome = exposure.apply(event);
      if ((outcome === 'accepted' || outcome === 'duplicate') && !opened.has(event.event.page_view_id)) opened.set(event.event.page_view_id, event.recv_ms);
      if (i % 1000 === 0) take();
    }
    take();
  }
  return out;
}

function replay(log: Map<number, ReplayRecord[]>, scope: AuditScope): ReturnType<ReplayEngine['finish']> & { read: Map<number, number> } {
  const engine = new ReplayEngine(scope);
  const readFrom = scope.fromMs - leadInMs();
  const read = new Map<number, number>();
  for (const [partition, records] of log) {
    const start = records.findIndex((r) => r.timestampMs >= readFrom);
    const replayer = engine.partition(partition);
    let n = 0;
    for (let i = Math.max(0, start); i < records.length; i += 500) {
      const batch = records.slice(i, i + 500);
      n += batch.length;
      if (!replayer.applyAll(batch)) break;
    }
    read.set(partition, n);
  }
  return { ...engine.finish(), read };
}

describe('ReplayEngine', () => {
  const log = ledger(3);
  const full = fullLogResults(log);
  const scope: AuditScope = { fromMs: BASE + 100 * MIN, toMs: BASE + 130 * MIN };
  const result = replay(log, scope);
  const expectedIds = [...full].filter(([, v]) => v.openedRecvMs >= scope.fromMs && v.openedRecvMs < scope.toMs).map(([id]) => id);

  it('starts from the lead-in and finds exactly the page views whose first event lies in the range', () => {
    expect(leadInMs()).toBe(75 * MIN);
    expect(expectedIds.length).toBeGreaterThan(50);
    expect(result.pageViews.map((v) => v.pageViewId).sort()).toEqual([...expectedIds].sort());
    expect(result.pageViews.some((v) => v.pageViewId === 'long-lived')).toBe(false);
    expect(result.pageViews.some((v) => v.pageViewId === 'resent')).toBe(false);
    expect(result.pageViews.some((v) => v.pageViewId === 'at-from')).toBe(true);
  });

  it('gives, for those page views, exactly what the whole log gives', () => {
    const rows = replayRows(result.pageViews, scope);
    const expectedImpressions = expectedIds.flatMap((id) => full.get(id)?.report.impressions ?? []);
    const expectedMinutes = expectedIds.flatMap((id) => full.get(id)?.report.buckets ?? []);
    expect(rows.impressions.map(canonicalImpression).sort()).toEqual(expectedImpressions.map(canonicalImpression).sort());
    expect(rows.minutes.map(canonicalMinute).sort()).toEqual(expectedMinutes.map(canonicalMinute).sort());
    expect(rows.impressions.length).toBeGreaterThan(100);
    expect(rows.impressions.every((r) => r.final)).toBe(true);
  });

  it('stops each partition once nothing more can change the range', () => {
    expect(result.partitions.every((p) => p.stopped === 'complete')).toBe(true);
    for (const [partition, records] of log) expect(result.read.get(partition)).toBeLessThan(records.length);
    expect(result.counts.maxTimestampSkewMs).toBe(0);
    expect(result.counts.outcomes['late']).toBeGreaterThanOrEqual(1);
  });

  it('keeps results open at the end of what it read, and filters by site', () => {
    const open = replay(log, { fromMs: BASE + 170 * MIN, toMs: BASE + 200 * MIN, site: 'site-1' });
    expect(open.partitions.every((p) => p.stopped === 'end')).toBe(true);
    expect(open.pageViews.length).toBeGreaterThan(0);
    expect(open.pageViews.every((v) => v.siteId === 'site-1' && !v.closed)).toBe(true);
  });
});
