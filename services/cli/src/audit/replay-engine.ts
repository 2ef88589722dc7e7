/**
 * The replay's computation: each partition's records, in log order, through the same exposure core
 * the processor bills with (`PartitionExposure`), keeping the results of the page views in scope.
 * No I/O: records come in, results go out, so it is tested without Kafka.
 *
 * Scope. A page view is in scope when the event that opened it in the core (its first event the
 * partition accepted) has `recv_ms` in [from, to), and it matches the site filter. The caller
 * starts reading early enough (see `leadInMs`) that every decision the core makes about an
 * in-scope page view is the one it made when the processor read the whole log: a page view
 * that began before the read start and is still alive at `from` shows an event before `from`
 * within the read (so it is not taken for a new one), the partition watermark has caught up, and
 * ids closed before the start are forgotten by the processor too.
 */
import { DEFAULT_RULES_CONFIG, PartitionExposure, type PageViewReport, type RulesConfig } from '@dwell/exposure';
import { currentSchema, decodeSingleObject, PageEventReader, type PageEvent } from '@dwell/protocol';

/** The range and filters of an audit. Times are Unix ms, `to` exclusive. */
export interface AuditScope {
  readonly fromMs: number;
  readonly toMs: number;
  readonly ad?: string | undefined;
  readonly campaign?: string | undefined;
  readonly site?: string | undefined;
}

/**
 * How far the record timestamps Kafka indexes (the producer's clock at send) may trail or lead the
 * gateway's `recv_ms`. The gateway produces within milliseconds of stamping; five minutes covers
 * produce retries during a broker failover. The replay measures the real skew and warns beyond it.
 */
export const TIMESTAMP_SKEW_MARGIN_MS = 5 * 60_000;

/**
 * How long before `from` the replay starts reading: `ALLOWED_LATENESS` (a page view alive at
 * `from` has an event in every lateness window, so one shows up before `from`) plus
 * `closedMemoryMs` (ids closed before the start are forgotten by the processor by `from`, so a late
 * resend of one is judged alike) plus the timestamp skew margin.
 */
export function leadInMs(rules: RulesConfig = DEFAULT_RULES_CONFIG): number {
  return rules.allowedLatenessMs + rules.closedMemoryMs + TIMESTAMP_SKEW_MARGIN_MS;
}

/** The record fields the engine needs (`LogRecord` of @dwell/kafka fits). */
export interface ReplayRecord {
  readonly offset: number;
  readonly timestampMs: number;
  readonly value: Buffer | null;
}

/** One page view as the replay saw it. */
export interface ReplayedPageView {
  readonly pageViewId: string;
  readonly siteId: string;
  readonly partition: number;
  readonly openedOffset: number;
  readonly openedRecvMs: number;
  readonly inScope: boolean;
  /** Offset of the last event taken into the page view (accepted or duplicate). */
  lastOffset: number;
  /** Events taken in. */
  events: number;
  /** Closed by the core (its lateness window passed) within the read: the results are final. */
  closed: boolean;
  /** The latest report: complete current results. */
  report: PageViewReport | undefined;
  /** Offsets of this id's events the core refused while it was open (late, identity mismatch…). */
  readonly refused: number[];
}

export type StopReason = 'complete' | 'end';

export interface PartitionSummary {
  readonly partition: number;
  /** Records read (null values and undecodable ones included). */
  readonly records: number;
  readonly firstOffset: number | undefined;
  readonly lastOffset: number | undefined;
  readonly watermarkMs: number | null;
  /** `complete`: every in-scope page view closed and no new one can open; `end`: the read range ran out first. */
  readonly stopped: StopReason;
}

export interface ReplayCounts {
  readonly records: number;
  readonly nullValues: number;
  /** Undecodable records by failure code. */
  readonly undecodable: Readonly<Record<string, number>>;
  /** Decoded records by the writer schema version. */
  readonly writerVersions: Readonly<Record<string, number>>;
  readonly outcomes: Readonly<Record<string, number>>;
  /** Largest |recv_ms − Kafka timestamp| seen, ms. */
  readonly maxTimestampSkewMs: number;
  readonly pageViewsOpened: number;
  readonly pageViewsInScope: number;
}

const CURRENT_PAGE_EVENT_VERSION = currentSchema('PageEvent').version;

// Changes are taken (and closed page views released) when the watermark moved this far, or after
// this many events: far below closedMemoryMs, so an id cannot close and reopen between two takes.
const DRAIN_WATERMARK_MS = 60_000;
const DRAIN_EVENTS = 50_000;

export class PartitionReplay {
  readonly partition: number;
  private readonly exposure: PartitionExposure;
  private readonly reader = new PageEventReader();
  private readonly scope: AuditScope;
  private readonly horizonMs: number;
  private readonly keepRefused: boolean;
  private readonly open = new Map<string, ReplayedPageView>();
  private readonly done: ReplayedPageView[];
  private readonly seen: Set<string>;
  private readonly counts: MutableCounts;
  private readonly latenessMs: number;
  /** Highest recv_ms taken into any in-scope page view: the core closes them all once the watermark is a lateness past it. */
  private inScopeLastRecvMs = -Infinity;
  private sinceDrain = 0;
  private drainedAtWatermark = -Infinity;
  private records = 0;
  private firstOffset: number | undefined;
  private lastOffset: number | undefined;
  private stopped: StopReason = 'end';

  constructor(partition: number, scope: AuditScope, rules: RulesConfig, shared: { done: ReplayedPageView[]; seen: Set<string>; counts: MutableCounts; keepRefused: boolean }) {
    this.partition = partition;
    this.exposure = new PartitionExposure(rules);
    this.scope = scope;
    this.horizonMs = scope.toMs + rules.allowedLatenessMs;
    this.latenessMs = rules.allowedLatenessMs;
    this.done = shared.done;
    this.seen = shared.seen;
    this.counts = shared.counts;
    this.keepRefused = shared.keepRefused;
  }

  /**
   * Applies records in log order, up to the one that completes the partition, and returns false
   * once it is complete: the watermark is past `to + ALLOWED_LATENESS` (no in-scope page view can
   * open any more: its first event would be late) and past every in-scope page view's last event
   * plus ALLOWED_LATENESS (the core has closed them all). Nothing after that point can change the
   * results, and the point depends only on the log, never on batch boundaries.
   */
  applyAll(records: readonly ReplayRecord[]): boolean {
    if (this.stopped === 'complete') return false;
    for (const record of records) {
      this.apply(record.offset, record.timestampMs, record.value);
      if (this.reachedEnd()) return false;
    }
    return true;
  }

  private reachedEnd(): boolean {
    const watermark = this.exposure.watermarkMs;
    if (watermark !== null && watermark > this.horizonMs && watermark - this.inScopeLastRecvMs > this.latenessMs) {
      this.stopped = 'complete';
      return true;
    }
    return false;
  }

  apply(offset: number, timestampMs: number, value: Buffer | null): void {
    const counts = this.counts;
    this.records += 1;
    counts.records += 1;
    this.firstOffset ??= offset;
    this.lastOffset = offset;
    if (value === null) {
      counts.nullValues += 1;
      return;
    }
    // As the processor reads: the one-pass reader for records of the current schema, the general
    // decoder (which resolves older versions and names what is wrong) for everything else.
    const read = this.reader.read(value);
    if (read !== undefined) {
      counts.writerVersions[CURRENT_PAGE_EVENT_VERSION] = (counts.writerVersions[CURRENT_PAGE_EVENT_VERSION] ?? 0) + 1;
      this.applyEvent(read, offset, timestampMs);
      return;
    }
    const decoded = decodeSingleObject('PageEvent', value);
    if (!decoded.ok) {
      counts.undecodable[decoded.code] = (counts.undecodable[decoded.code] ?? 0) + 1;
      return;
    }
    counts.writerVersions[decoded.writerVersion] = (counts.writerVersions[decoded.writerVersion] ?? 0) + 1;
    this.applyEvent(decoded.value, offset, timestampMs);
  }

  /** Applies one decoded event at `offset`. */
  applyEvent(event: PageEvent, offset: number, timestampMs: number): void {
    const counts = this.counts;
    const skew = Math.abs(event.recv_ms - timestampMs);
    if (skew > counts.maxTimestampSkewMs && Number.isFinite(skew)) counts.maxTimestampSkewMs = skew;
    const outcome = this.exposure.apply(event);
    // The common outcome on a plain field: a keyed store per event shows in profiles.
    if (outcome === 'accepted') counts.accepted += 1;
    else counts.outcomes[outcome] = (counts.outcomes[outcome] ?? 0) + 1;
    const id = event.event.page_view_id;
    let view = this.open.get(id);
    if (outcome === 'accepted' || outcome === 'duplicate' || outcome === 'conflicting_duplicate') {
      if (view === undefined) {
        const inScope =
          event.recv_ms >= this.scope.fromMs && event.recv_ms < this.scope.toMs && (this.scope.site === undefined || event.site_id === this.scope.site);
        view = {
          pageViewId: id,
          siteId: event.site_id,
          partition: this.partition,
          openedOffset: offset,
          openedRecvMs: event.recv_ms,
          inScope,
          lastOffset: offset,
          events: 0,
          closed: false,
          report: undefined,
          refused: [],
        };
        this.open.set(id, view);
        this.seen.add(id);
        counts.pageViewsOpened += 1;
        if (inScope) counts.pageViewsInScope += 1;
      }
      view.lastOffset = offset;
      view.events += 1;
      if (view.inScope && event.recv_ms > this.inScopeLastRecvMs) this.inScopeLastRecvMs = event.recv_ms;
    } else if (view !== undefined && view.inScope && this.keepRefused) {
      view.refused.push(offset);
    }
    this.sinceDrain += 1;
    const watermark = this.exposure.watermarkMs ?? -Infinity;
    if (this.sinceDrain >= DRAIN_EVENTS || watermark - this.drainedAtWatermark >= DRAIN_WATERMARK_MS) this.drain();
  }

  /** Whether the partition is complete (see applyAll). */
  isComplete(): boolean {
    return this.stopped === 'complete';
  }

  /** Takes the core's changes: closed page views are final and released. */
  private drain(): void {
    this.sinceDrain = 0;
    this.drainedAtWatermark = this.exposure.watermarkMs ?? -Infinity;
    const { closed, changed } = this.exposure.takeChanges();
    for (const report of closed) {
      const view = this.open.get(report.page_view_id);
      if (view === undefined) continue;
      this.open.delete(report.page_view_id);
      if (!view.inScope) continue;
      view.report = report;
      view.closed = true;
      this.done.push(view);
    }
    for (const report of changed) {
      const view = this.open.get(report.page_view_id);
      if (view?.inScope === true) view.report = report;
    }
  }

  /** Ends the read: in-scope page views still open keep their current (not final) results. */
  finish(): PartitionSummary {
    this.drain();
    for (const view of this.open.values()) if (view.inScope) this.done.push(view);
    this.open.clear();
    return {
      partition: this.partition,
      records: this.records,
      firstOffset: this.firstOffset,
      lastOffset: this.lastOffset,
      watermarkMs: this.exposure.watermarkMs,
      stopped: this.stopped,
    };
  }
}

interface MutableCounts {
  /** `accepted` outcomes, kept out of `outcomes` until the end. */
  accepted: number;
  records: number;
  nullValues: number;
  undecodable: Record<string, number>;
  writerVersions: Record<string, number>;
  outcomes: Record<string, number>;
  maxTimestampSkewMs: number;
  pageViewsOpened: number;
  pageViewsInScope: number;
}

/** The whole replay: one PartitionReplay per partition, sharing the results. */
export class ReplayEngine {
  readonly scope: AuditScope;
  readonly rules: RulesConfig;
  private readonly partitions = new Map<number, PartitionReplay>();
  private readonly done: ReplayedPageView[] = [];
  /** Every page view id opened in the read, in scope or not. */
  readonly seen = new Set<string>();
  private readonly counts: MutableCounts = {
    accepted: 0,
    records: 0,
    nullValues: 0,
    undecodable: {},
    writerVersions: {},
    outcomes: {},
    maxTimestampSkewMs: 0,
    pageViewsOpened: 0,
    pageViewsInScope: 0,
  };
  private readonly keepRefused: boolean;

  /** `keepRefused`: remember the offsets of refused events of in-scope page views (export needs them). */
  constructor(scope: AuditScope, rules: RulesConfig = DEFAULT_RULES_CONFIG, options: { keepRefused?: boolean } = {}) {
    this.scope = scope;
    this.rules = rules;
    this.keepRefused = options.keepRefused ?? false;
  }

  partition(partition: number): PartitionReplay {
    let replay = this.partitions.get(partition);
    if (replay === undefined) {
      replay = new PartitionReplay(partition, this.scope, this.rules, { done: this.done, seen: this.seen, counts: this.counts, keepRefused: this.keepRefused });
      this.partitions.set(partition, replay);
    }
    return replay;
  }

  get recordsApplied(): number {
    return this.counts.records;
  }

  /** Finishes every partition; the in-scope page views sorted by id. */
  finish(): { pageViews: ReplayedPageView[]; partitions: PartitionSummary[]; counts: ReplayCounts } {
    const partitions = [...this.partitions.values()].sort((a, b) => a.partition - b.partition).map((p) => p.finish());
    const pageViews = [...this.done].sort((a, b) => (a.pageViewId < b.pageViewId ? -1 : a.pageViewId > b.pageViewId ? 1 : a.openedOffset - b.openedOffset));
    const { accepted, ...c } = this.counts;
    const outcomes = accepted > 0 ? { accepted, ...c.outcomes } : { ...c.outcomes };
    return {
      pageViews,
      partitions,
      counts: { ...c, undecodable: { ...c.undecodable }, writerVersions: { ...c.writerVersions }, outcomes },
    };
  }
}
