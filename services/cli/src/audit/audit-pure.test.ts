import { describe, expect, it } from 'vitest';
import { DEFAULT_RULES_CONFIG, type ImpressionResult, type PageViewReport } from '@dwell/exposure';
import type { ImpressionRow, MinuteRow } from '@dwell/warehouse';
import { adDayTotals, canonicalImpression, checksumOfLines, checksumsOf, isRetraction, type AuditImpression } from './canonical.js';
import { compare, replayRows } from './compare.js';
import { diffRows } from './diff.js';
import { retentionGaps } from './log-plan.js';
import { assignPartitions } from './parallel-replay.js';
import { canonicalJson, rulesInfo, schemaFingerprints } from './manifest.js';
import type { AuditScope, ReplayedPageView } from './replay-engine.js';
import { reportChecksum, verdictOf } from './report.js';

const DAY = Date.UTC(2026, 10, 29);

function impression(pv: string, n: number, overrides: Partial<ImpressionResult> = {}): ImpressionResult {
  return {
    rules_version: 1,
    page_view_id: pv,
    site_id: 's',
    user_id: 'u',
    impression_id: `${pv}-${n}`,
    ad_id: 'ad-1',
    campaign_id: 'c-1',
    media: 'display',
    width: 300,
    height: 250,
    measurable: true,
    viewable: true,
    billable: true,
    viewable_ms: 1500,
    credited_ms: 1500,
    longest_run_ms: 1500,
    flags: [],
    first_server_ms: DAY + 1000,
    last_server_ms: DAY + 2500,
    ...overrides,
  };
}

function view(pv: string, partition: number, lastOffset: number, closed: boolean, impressions: ImpressionResult[]): ReplayedPageView {
  const report: PageViewReport = {
    page_view_id: pv,
    site_id: 's',
    user_id: 'u',
    flags: [],
    final: closed,
    impressions,
    buckets: impressions
      .filter((i) => i.viewable_ms > 0)
      .map((i) => ({ rules_version: 1, page_view_id: pv, site_id: 's', user_id: 'u', impression_id: i.impression_id, ad_id: i.ad_id, campaign_id: i.campaign_id, minute_start_ms: DAY, viewable_ms: i.viewable_ms })),
    retracted_impressions: [],
    retracted_buckets: [],
  };
  return { pageViewId: pv, siteId: 's', partition, openedOffset: 0, openedRecvMs: DAY, inScope: true, lastOffset, events: 2, closed, report, refused: [] };
}

const asRow = (r: ImpressionResult, version = 10): ImpressionRow => ({ ...r, final: true, version });
const minuteRows = (v: ReplayedPageView): MinuteRow[] => (v.report?.buckets ?? []).map((b) => ({ ...b, version: 10 }));

describe('canonical form and checksums', () => {
  it('does not depend on row order, and sorts flags', () => {
    const a = impression('p1', 1);
    const b = impression('p2', 1, { flags: ['implausible_timing', 'clock_regression'] });
    expect(checksumOfLines([canonicalImpression(a), canonicalImpression(b)])).toBe(checksumOfLines([canonicalImpression(b), canonicalImpression(a)]));
    expect(canonicalImpression(b)).toContain('["clock_regression","implausible_timing"]');
    expect(checksumOfLines([])).toBe('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
  });

  it('changes with any billed figure', () => {
    const a = impression('p1', 1);
    expect(checksumsOf([a], [], []).impressions).not.toBe(checksumsOf([{ ...a, viewable_ms: 1501 }], [], []).impressions);
  });

  it('totals per ad and day: ms by the minute, counts by the first server time', () => {
    const a = impression('p1', 1, { first_server_ms: DAY - 1000 });
    const b = impression('p2', 1, { billable: false, viewable: false, viewable_ms: 0, flags: ['givt_user_agent'] });
    const totals = adDayTotals([a, b], [
      { site_id: 's', page_view_id: 'p1', impression_id: 'p1-1', minute_start_ms: DAY - 60_000, user_id: 'u', ad_id: 'ad-1', campaign_id: 'c-1', viewable_ms: 1000, rules_version: 1 },
      { site_id: 's', page_view_id: 'p1', impression_id: 'p1-1', minute_start_ms: DAY, user_id: 'u', ad_id: 'ad-1', campaign_id: 'c-1', viewable_ms: 500, rules_version: 1 },
    ]);
    expect(totals).toEqual([
      { ad_id: 'ad-1', day: '2026-11-28', billable_ms: 1000, impressions: 1, measurable_impressions: 1, billable_impressions: 1 },
      { ad_id: 'ad-1', day: '2026-11-29', billable_ms: 500, impressions: 1, measurable_impressions: 0, billable_impressions: 0 },
    ]);
  });

  it('recognises a retraction row', () => {
    expect(isRetraction(impression('p', 1, { measurable: false, viewable: false, billable: false, viewable_ms: 0, credited_ms: 0, longest_run_ms: 0 }))).toBe(true);
    expect(isRetraction(impression('p', 1))).toBe(false);
  });
});

describe('diffRows', () => {
  const spec = { kind: 'impression' as const, keyFields: ['page_view_id', 'impression_id'], fields: ['viewable_ms', 'flags'], keyOf: (r: AuditImpression) => r.impression_id };
  it('reports changed fields, rows missing from billing and rows not in the log, sorted by key', () => {
    const diffs = diffRows(spec, [impression('a', 1), impression('b', 1), impression('c', 1)], [impression('a', 1), impression('b', 1, { viewable_ms: 9 }), impression('d', 1)]);
    expect(diffs.map((d) => [d.status, d.key['impression_id'], d.fields])).toEqual([
      ['changed', 'b-1', [{ field: 'viewable_ms', replay: 1500, billed: 9 }]],
      ['missing_from_billing', 'c-1', undefined],
      ['not_in_log', 'd-1', undefined],
    ]);
  });
});

describe('compare', () => {
  const scope: AuditScope = { fromMs: DAY, toMs: DAY + 3_600_000 };
  const views = [view('p1', 0, 5, true, [impression('p1', 1)]), view('p2', 1, 7, false, [impression('p2', 1)]), view('p3', 0, 9, true, [impression('p3', 1)])];
  const rows = replayRows(views, scope);
  const base = {
    scope,
    pageViews: views,
    rows,
    seen: new Set(['p1', 'p2', 'p3', 'older']),
    billedImpressions: views.flatMap((v) => v.report?.impressions ?? []).map((r) => asRow(r)),
    billedMinutes: views.flatMap(minuteRows),
    positionsBefore: new Map([
      [0, 20n],
      [1, 20n],
    ]),
    positionsAfter: new Map([
      [0, 20n],
      [1, 20n],
    ]),
  };

  it('finds nothing when ClickHouse holds what the log gives, and both checksums agree', () => {
    const result = compare(base);
    expect(result.differences).toEqual([]);
    expect(result.uncompared).toEqual([]);
    expect(result.comparedPageViews).toBe(3);
    expect(result.billed.checksums).toEqual(result.replay.checksums);
  });

  it('reports a changed impression, its minutes and the (ad, day) total', () => {
    const changed = base.billedImpressions.map((r) => (r.page_view_id === 'p3' ? { ...r, viewable_ms: 99_999 } : r));
    const minutes = base.billedMinutes.map((m) => (m.page_view_id === 'p3' ? { ...m, viewable_ms: 99_999 } : m));
    const result = compare({ ...base, billedImpressions: changed, billedMinutes: minutes });
    expect(result.differences.map((d) => `${d.kind}:${d.status}`)).toEqual(['impression:changed', 'minute:changed', 'ad_day:changed']);
    expect(result.billed.checksums.impressions).not.toBe(result.replay.checksums.impressions);
  });

  it('reports billed rows of page views the log never opened, and ignores those of page views that began before the range', () => {
    const fake = asRow(impression('fabricated', 1, { first_server_ms: DAY + 10 }));
    const older = asRow(impression('older', 1, { first_server_ms: DAY + 10 }));
    const result = compare({ ...base, billedImpressions: [...base.billedImpressions, fake, older] });
    expect(result.differences.map((d) => [d.kind, d.status, d.key['page_view_id'] ?? d.key['ad_id']])).toEqual([
      ['impression', 'not_in_log', 'fabricated'],
      ['ad_day', 'changed', 'ad-1'],
    ]);
  });

  it('does not compare page views the processor has not fully processed', () => {
    const result = compare({ ...base, positionsBefore: new Map([[0, 6n], [1, 20n]]), positionsAfter: new Map([[0, 6n], [1, 20n]]), billedImpressions: base.billedImpressions.filter((r) => r.page_view_id !== 'p3') });
    expect(result.differences).toEqual([]);
    expect(result.uncompared).toEqual([{ page_view_id: 'p3', partition: 0, reason: 'not_yet_processed' }]);
    expect(verdictOf(result.differences.length, result.uncompared.length)).toBe('incomplete');
  });

  it('treats a difference of a still open page view as in flux when the processor moved on meanwhile', () => {
    const changed = base.billedImpressions.map((r) => (r.page_view_id === 'p2' ? { ...r, viewable_ms: 4000 } : r));
    const moved = compare({ ...base, billedImpressions: changed, positionsAfter: new Map([[0, 20n], [1, 25n]]) });
    expect(moved.differences.filter((d) => d.kind !== 'ad_day')).toEqual([]);
    expect(moved.uncompared).toEqual([{ page_view_id: 'p2', partition: 1, reason: 'in_flux' }]);
    const stillMinutes = base.billedMinutes.map((m) => (m.page_view_id === 'p2' ? { ...m, viewable_ms: m.viewable_ms + 1 } : m));
    const still = compare({ ...base, billedImpressions: changed, billedMinutes: stillMinutes });
    expect(still.differences.map((d) => `${d.kind}:${d.status}`)).toEqual(['impression:changed', 'minute:changed', 'ad_day:changed']);
  });

  it('leaves out an open page view whose impression rows alone differ (held back by the processor), not a closed one', () => {
    const open = compare({ ...base, billedImpressions: base.billedImpressions.map((r) => (r.page_view_id === 'p2' ? { ...r, credited_ms: 1 } : r)) });
    expect(open.differences).toEqual([]);
    expect(open.uncompared).toEqual([{ page_view_id: 'p2', partition: 1, reason: 'impressions_held' }]);
    const closed = compare({ ...base, billedImpressions: base.billedImpressions.map((r) => (r.page_view_id === 'p3' ? { ...r, credited_ms: 1 } : r)) });
    expect(closed.differences.map((d) => `${d.kind}:${d.status}:${String(d.key['page_view_id'])}`)).toEqual(['impression:changed:p3']);
    expect(closed.uncompared).toEqual([]);
  });

  it('ignores zeroed retraction rows the replay has no counterpart for', () => {
    const retraction = asRow(impression('p1', 9, { measurable: false, viewable: false, billable: false, viewable_ms: 0, credited_ms: 0, longest_run_ms: 0 }));
    const result = compare({ ...base, billedImpressions: [...base.billedImpressions, retraction] });
    expect(result.differences).toEqual([]);
    expect(result.retractionsIgnored).toBe(1);
  });

  it('compares only the ad asked for', () => {
    const other = view('p4', 0, 3, true, [impression('p4', 1, { ad_id: 'ad-2' })]);
    const adScope = { ...scope, ad: 'ad-1' };
    const result = compare({ ...base, scope: adScope, pageViews: [...views, other], rows: replayRows([...views, other], adScope) });
    expect(result.differences).toEqual([]);
    expect(result.replay.impressions).toBe(3);
  });
});

describe('retention', () => {
  it('flags partitions whose retained records start at or after the replay start', () => {
    const plan = [
      { partition: 0, low: 0n, high: 10n, start: 0n },
      { partition: 1, low: 50n, high: 90n, start: 60n },
      { partition: 2, low: 50n, high: 90n, start: 50n },
      { partition: 3, low: 90n, high: 90n, start: 90n },
    ];
    expect(retentionGaps(plan).map((p) => p.partition)).toEqual([2, 3]);
  });
});

describe('manifest and report checksum', () => {
  it('names the rules and schemas', () => {
    expect(rulesInfo(DEFAULT_RULES_CONFIG)).toMatchObject({ version: 1, allowed_lateness_ms: 600_000, closed_memory_ms: 3_600_000 });
    expect(rulesInfo(DEFAULT_RULES_CONFIG).fingerprint).toMatch(/^1:[0-9a-f]+$/);
    expect(schemaFingerprints()['PageEvent']).toMatchObject({ version: expect.any(Number), fingerprint: expect.stringMatching(/^[0-9a-f]{16}$/) });
  });

  it('canonical JSON sorts keys at every level', () => {
    expect(canonicalJson({ b: 1, a: { d: [2, { f: 1, e: 0 }], c: null } })).toBe('{"a":{"c":null,"d":[2,{"e":0,"f":1}]},"b":1}');
  });

  it('ignores the run identity but nothing else', () => {
    const manifest = {
      replay_id: 'a',
      started_at: 'x',
      finished_at: 'y',
      duration_ms: 5,
      source: { where: 1 },
      counts: { events_per_second: 100, records: 10 },
      scope: { from: 'f' },
    };
    const report = { verdict: 'equal', differences: [], not_compared: [], ad_day_totals: [], manifest } as unknown as Parameters<typeof reportChecksum>[0];
    const again = { ...report, manifest: { ...manifest, replay_id: 'b', started_at: 'z', duration_ms: 9, source: { where: 2 }, counts: { events_per_second: 5, records: 10 } } } as unknown as Parameters<typeof reportChecksum>[0];
    expect(reportChecksum(again)).toBe(reportChecksum(report));
    const other = { ...report, manifest: { ...manifest, counts: { events_per_second: 100, records: 11 } } } as unknown as Parameters<typeof reportChecksum>[0];
    expect(reportChecksum(other)).not.toBe(reportChecksum(report));
  });
});

describe('progress', () => {
  it('draws a bar on a terminal and plain lines otherwise, with events/s from the first record', async () => {
    const { Progress } = await import('./progress.js');
    let now = 0;
    const tty: string[] = [];
    const bar = new Progress({ isTTY: true, write: (t: string) => tty.push(t) }, 'replay', 1000, () => now);
    now = 1000; // a second connecting
    bar.update(0);
    now = 1200;
    bar.update(100);
    now = 2200;
    bar.update(600);
    bar.finish(1000);
    expect(tty.at(-2)).toContain('[##################------------]  60.0%  600/1,000 events  600 events/s  ETA 0:01');
    expect(tty.at(-1)).toMatch(/100\.0% {2}1,000\/1,000 events .* 2\.2 s\n$/);
    const lines: string[] = [];
    const plain = new Progress({ isTTY: false, write: (t: string) => lines.push(t) }, 'export: scan', 10, () => now);
    now += 5000;
    plain.update(5);
    expect(lines).toEqual([expect.stringMatching(/^export: scan: 50\.0% {2}5\/10 events/)]);
  });
});

describe('assignPartitions', () => {
  it('balances partitions over workers by the records to read', () => {
    const plan = (partition: number, records: number) => ({ partition, low: 0n, high: BigInt(records), start: 0n });
    const shares = assignPartitions([plan(0, 100), plan(1, 10), plan(2, 60), plan(3, 50)], 2);
    expect(shares.map((s) => s.map((p) => p.partition))).toEqual([[0, 1], [2, 3]]);
    expect(assignPartitions([plan(0, 5)], 4)).toEqual([[plan(0, 5)]]);
  });
});
