/**
 * One page view: its events in seq order (compact), and the per-impression results derived from
 * them. Events may arrive in any order and more than once. An event that extends the seq order
 * is folded in incrementally; one that lands earlier marks the derived state stale, and the next
 * read recomputes it from the stored events with the same fold, so both paths give one answer.
 */
import type { PageEvent } from '@dwell/protocol';
import { compileRules, isGivtUserAgent, type CompiledRules } from './compiled-rules.js';
import { eventContentHash } from './content-hash.js';
import {
  isValidPageEvent,
  entryImpression,
  entryMeta,
  entryVerdict,
  EventLog,
  fitsEntryLimits,
  ImpressionRegistry,
} from './event-record.js';
import { creditSegment, type ImpressionMeta, type ImpressionTrack } from './impression-track.js';
import type { ReportedImpression, ReportParts, ReportSink } from './page-view-report.js';
import { VERDICT } from './qualification.js';
import {
  EXPOSURE_FLAGS,
  type ExposureFlag,
  type ImpressionResult,
  type MinuteBucketRow,
  type PageViewIdentity,
  type PageViewOutcome,
} from './results.js';
import { DEFAULT_RULES_CONFIG, type RulesConfig } from './rules-config.js';
import {
  SNAPSHOT_FORMAT,
  expectBoolean,
  expectEnvelope,
  expectArray,
  expectInteger,
  expectString,
  parseEvents,
  parseIdentity,
  parseMeta,
  SnapshotError,
  type PageViewSnapshot,
} from './snapshot.js';

/** The flags of each combination of EXPOSURE_FLAGS bits (bit i: flag i), one shared list each. */
const FLAG_LISTS: readonly (readonly ExposureFlag[])[] = Array.from({ length: 1 << EXPOSURE_FLAGS.length }, (_, mask) =>
  Object.freeze(EXPOSURE_FLAGS.filter((_, i) => (mask & (1 << i)) !== 0)),
);

type Mutable<T> = { -readonly [K in keyof T]: T[K] };
// The rows a report hands its sink, overwritten for each row: a report allocates nothing per row.
const IMPRESSION_ROW: Mutable<ImpressionResult> = {
  rules_version: 0,
  page_view_id: '',
  site_id: '',
  user_id: '',
  impression_id: '',
  ad_id: '',
  campaign_id: '',
  media: 'display',
  width: 0,
  height: 0,
  measurable: false,
  viewable: false,
  billable: false,
  viewable_ms: 0,
  credited_ms: 0,
  longest_run_ms: 0,
  flags: [],
  first_server_ms: 0,
  last_server_ms: 0,
};
const MINUTE_ROW: Mutable<MinuteBucketRow> = {
  rules_version: 0,
  page_view_id: '',
  site_id: '',
  user_id: '',
  impression_id: '',
  ad_id: '',
  campaign_id: '',
  minute_start_ms: 0,
  viewable_ms: 0,
};
const PAIRS: number[] = [];
const PAIRS_NONE: readonly number[] = [];

/** The impression row's identity columns. */
function describeImpression(id: string, meta: ImpressionMeta): void {
  const imp = IMPRESSION_ROW;
  imp.impression_id = id;
  imp.ad_id = meta.ad_id;
  imp.campaign_id = meta.campaign_id;
  imp.media = meta.media;
  imp.width = meta.width;
  imp.height = meta.height;
}

function sameTracks(a: readonly ImpressionTrack[], b: readonly ImpressionTrack[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** All results of one page view at one moment. */
export interface PageViewResults {
  readonly identity: PageViewIdentity;
  readonly flags: readonly ExposureFlag[];
  /** One per impression, in order of first appearance (seq, then position in the event). */
  readonly impressions: readonly ImpressionResult[];
  /** Billable impressions only, by impression then minute; their sum is the billed total. */
  readonly buckets: readonly MinuteBucketRow[];
}

/**
 * The exposure state of one page view. Feed it the page view's events in any order with
 * {@link PageViewState.apply}; read {@link PageViewState.results} at any time; snapshot and
 * restore it. Lateness is not its concern: PartitionExposure applies rule 8 around it.
 */
export class PageViewState {
  readonly identity: PageViewIdentity;
  // The identity again, one pointer closer: every event compares against it.
  private readonly pageViewId: string;
  private readonly siteId: string;
  private readonly userId: string;
  private readonly rules: CompiledRules;
  private readonly config: RulesConfig;
  private readonly events = new EventLog();
  private registry = new ImpressionRegistry();
  private conflicting = false;
  private givt: boolean;
  /** NaN until the first event: a number field stays unboxed. */
  private lastRecv = Number.NaN;
  private revisionCount = 0;
  private snapshotChanges = 0;
  private stale = false;
  // Derived from `events`, with the run state in the registry's tracks; valid while not stale.
  private clockRegression = false;
  private minRecv = 0;
  private maxRecv = 0;
  private anchorRecv = 0;
  /** `t_mono_ms` of the first and the last event by seq. */
  private anchorT = 0;
  private lastT = 0;
  /** Counts reports (and restores): each gets a round of its own. */
  private reportRound = 0;
  // The last report of the impression rows (see report()): its round, its impressions in its
  // order, its flags, and whether its values were recorded by a report that may skip rows by them.
  private impressionsRound = 0;
  private reportedTracks: readonly ImpressionTrack[] = [];
  private reportedFlagMask = -1;
  private remembered = false;
  // The same of the last report that held the minute rows (they may be reported apart).
  private minutesRound = 0;
  private minutesReportedTracks: readonly ImpressionTrack[] = [];
  private minutesRemembered = false;

  /** An empty page view. `config` defaults to rules version 1; a bad config throws RulesConfigError. */
  constructor(identity: PageViewIdentity, config: RulesConfig = DEFAULT_RULES_CONFIG) {
    const { page_view_id, site_id, user_id, user_agent } = identity;
    this.identity = Object.freeze({ page_view_id, site_id, user_id, user_agent });
    this.pageViewId = page_view_id;
    this.siteId = site_id;
    this.userId = user_id;
    this.rules = compileRules(config);
    this.config = this.rules.config;
    this.givt = isGivtUserAgent(this.rules, user_agent);
  }

  /** The identity an event gives its page view. */
  static identityOf(pageEvent: PageEvent): PageViewIdentity {
    const { site_id, user_id, user_agent } = pageEvent;
    return { page_view_id: pageEvent.event.page_view_id, site_id, user_id, user_agent };
  }

  /**
   * Restores a page view from {@link snapshot} output (also after a JSON round trip). Continuing
   * from it gives the results of never having stopped.
   *
   * @throws SnapshotError when the snapshot is malformed, of another format, or of other rules.
   */
  static restore(snapshot: unknown, config: RulesConfig = DEFAULT_RULES_CONFIG): PageViewState {
    const rules = compileRules(config);
    const o = expectEnvelope(snapshot, 'page_view', rules.fingerprint);
    const state = new PageViewState(parseIdentity(o['identity']), rules.config);
    const ids = expectArray(o['impressions'], 'impressions').map((v, i) =>
      expectString(v, `impressions[${i}]`),
    );
    const metas = expectArray(o['metas'], 'metas').map((v, i) => parseMeta(v, `metas[${i}]`));
    state.registry = ImpressionRegistry.restore(ids, metas);
    const { events } = state;
    for (const [seq, t, recv, hash, entries] of parseEvents(o['events'], ids.length, metas.length)) {
      const at = events.pool.length;
      events.pool.push(...entries);
      events.insert(events.length, seq, t, recv, hash, at);
    }
    state.lastRecv =
      o['last_recv_ms'] === null ? Number.NaN : expectInteger(o['last_recv_ms'], 'last_recv_ms');
    state.conflicting = expectBoolean(o['conflicting_duplicate'], 'conflicting_duplicate');
    state.givt = expectBoolean(o['givt_user_agent'], 'givt_user_agent');
    state.stale = true;
    return state;
  }

  /** Counts every change to the results; equal revisions mean equal results. */
  get revision(): number {
    return this.revisionCount;
  }

  /**
   * Counts every call that may change what {@link snapshot} or {@link reportedState} give
   * (an event taken in, even as a duplicate; a report): equal counts mean equal snapshots.
   */
  get snapshotRevision(): number {
    return this.snapshotChanges;
  }

  /** Highest `recv_ms` of any event taken in (duplicates included): the page view's last sign of life. */
  get lastRecvMs(): number | null {
    return Number.isNaN(this.lastRecv) ? null : this.lastRecv;
  }

  /** Number of distinct seqs stored. */
  get eventCount(): number {
    return this.events.length;
  }

  /**
   * Takes one event in. Order and repetition do not matter: the results depend only on the set
   * of events (for conflicting copies of a seq, the copy with the smallest content hash is kept).
   */
  apply(pageEvent: PageEvent): PageViewOutcome {
    if (!isValidPageEvent(pageEvent)) return 'invalid_event';
    const event = pageEvent.event;
    if (
      event.page_view_id !== this.pageViewId ||
      pageEvent.site_id !== this.siteId ||
      pageEvent.user_id !== this.userId
    ) {
      return 'identity_mismatch';
    }
    const { registry } = this;
    if (!fitsEntryLimits(registry.tracks.length, registry.metas.length, event.impressions.length))
      return 'invalid_event';
    this.snapshotChanges++;
    this.observe(pageEvent);
    const events = this.events;
    const n = events.length;
    const seq = event.seq;
    let index = n;
    if (n > 0 && seq <= events.seq(n - 1)) {
      index = events.lowerBound(seq);
      if (index < n && events.seq(index) === seq) return this.applyCopy(index, pageEvent);
      this.stale = true;
    }
    const at = events.pool.length;
    const hash = this.registry.encode(pageEvent, this.config, events.pool);
    events.insert(index, seq, event.t_mono_ms, pageEvent.recv_ms, hash, at);
    if (!this.stale) this.advance(index - 1, index);
    this.revisionCount++;
    return 'accepted';
  }

  /** The page view's flags, in EXPOSURE_FLAGS order. */
  flags(): ExposureFlag[] {
    return [...(FLAG_LISTS[this.flagMask()] ?? [])];
  }

  /** Per-impression results and billable minute buckets, recomputed in full. */
  results(): PageViewResults {
    const flags = this.flags();
    const { config, identity } = this;
    const impressions: ImpressionResult[] = [];
    const buckets: MinuteBucketRow[] = [];
    for (const track of this.reportOrder()) {
      const meta = this.registry.metas[track.firstMetaIndex];
      const impression_id = track.id;
      if (meta === undefined) throw new Error('page view registry lost a meta');
      const viewable = this.viewable(track);
      const billable = viewable && flags.length === 0;
      // Literal objects, not spreads: V8 builds a spread followed by many keys very slowly.
      impressions.push({
        rules_version: config.rulesVersion,
        page_view_id: identity.page_view_id,
        site_id: identity.site_id,
        user_id: identity.user_id,
        impression_id,
        ad_id: meta.ad_id,
        campaign_id: meta.campaign_id,
        media: meta.media,
        width: meta.width,
        height: meta.height,
        measurable: track.measurable,
        viewable,
        billable,
        viewable_ms: billable ? track.creditedMs : 0,
        credited_ms: track.creditedMs,
        longest_run_ms: track.longestRunMs,
        flags,
        first_server_ms: this.serverTime(track.firstT),
        last_server_ms: this.serverTime(track.lastT),
      });
      if (!billable) continue;
      for (const [minute_start_ms, viewable_ms] of track.minuteRows()) {
        buckets.push({
          rules_version: config.rulesVersion,
          page_view_id: identity.page_view_id,
          site_id: identity.site_id,
          user_id: identity.user_id,
          impression_id,
          ad_id: meta.ad_id,
          campaign_id: meta.campaign_id,
          minute_start_ms,
          viewable_ms,
        });
      }
    }
    return { identity, flags, impressions, buckets };
  }

  /**
   * Writes the page view's report into `sink`: its current rows, and retractions of rows an
   * earlier report gave that no longer hold. `parts` says which rows: the impression rows, the
   * minute rows, or both; each part is compared against the last report that held that part, so
   * a part can be held back for a while and reported later (a final report holds both). With
   * `onlyChanged`, a row equal to what the last report of its part gave for its key is left out,
   * provided that report was written with `onlyChanged` too; a final report is always complete.
   * Upserting every report in order leaves the current results of each part as of its last report.
   */
  report(sink: ReportSink, final: boolean, onlyChanged: boolean, parts: ReportParts = 'both'): void {
    this.snapshotChanges++;
    const mask = this.flagMask();
    const flags = FLAG_LISTS[mask] ?? [];
    const { config, identity } = this;
    sink.pageView(identity, flags, final);
    const round = ++this.reportRound;
    const current = this.reportOrder();
    for (const track of current) track.listedIn = round;
    const imp = IMPRESSION_ROW;
    const min = MINUTE_ROW;
    imp.rules_version = min.rules_version = config.rulesVersion;
    imp.page_view_id = min.page_view_id = identity.page_view_id;
    imp.site_id = min.site_id = identity.site_id;
    imp.user_id = min.user_id = identity.user_id;
    imp.flags = flags;
    if (final || parts !== 'minutes') this.reportImpressions(sink, current, mask, round, onlyChanged && !final);
    if (final || parts !== 'impressions') this.reportMinutes(sink, current, mask, round, onlyChanged && !final);
  }

  /** The impression rows of a report (see {@link report}); `onlyChanged` is false for a final one. */
  private reportImpressions(
    sink: ReportSink,
    current: readonly ImpressionTrack[],
    mask: number,
    round: number,
    onlyChanged: boolean,
  ): void {
    const imp = IMPRESSION_ROW;
    const skip = onlyChanged && this.remembered;
    const sameFlags = mask === this.reportedFlagMask;
    const previous = this.impressionsRound;
    // Retractions of what the last impression rows gave, in their order.
    for (const track of this.reportedTracks) {
      if (track.listedIn === round) continue;
      const meta = track.reportedMeta;
      if (meta === undefined) throw new Error('page view lost a reported meta');
      describeImpression(track.id, meta);
      imp.measurable = imp.viewable = imp.billable = false;
      imp.viewable_ms = imp.credited_ms = imp.longest_run_ms = 0;
      imp.first_server_ms = track.reportedFirstServerMs;
      imp.last_server_ms = track.reportedLastServerMs;
      sink.impression(imp, true);
    }
    // The current rows, each left out when `skip` and equal to what the last impression rows gave.
    for (const track of current) {
      const meta = this.registry.metas[track.firstMetaIndex];
      if (meta === undefined) throw new Error('page view registry lost a meta');
      const viewable = this.viewable(track);
      const billable = viewable && mask === 0;
      const viewableMs = billable ? track.creditedMs : 0;
      const first = this.serverTime(track.firstT);
      const last = this.serverTime(track.lastT);
      const bits = (track.measurable ? 1 : 0) | (viewable ? 2 : 0) | (billable ? 4 : 0);
      if (
        !skip ||
        !sameFlags ||
        track.reportedIn !== previous ||
        track.reportedMeta !== meta ||
        track.reportedBits !== bits ||
        track.reportedViewableMs !== viewableMs ||
        track.reportedCreditedMs !== track.creditedMs ||
        track.reportedLongestRunMs !== track.longestRunMs ||
        track.reportedFirstServerMs !== first ||
        track.reportedLastServerMs !== last
      ) {
        describeImpression(track.id, meta);
        imp.measurable = track.measurable;
        imp.viewable = viewable;
        imp.billable = billable;
        imp.viewable_ms = viewableMs;
        imp.credited_ms = track.creditedMs;
        imp.longest_run_ms = track.longestRunMs;
        imp.first_server_ms = first;
        imp.last_server_ms = last;
        sink.impression(imp, false);
      }
      track.reportedIn = round;
      track.reportedMeta = meta;
      track.reportedBits = bits;
      track.reportedViewableMs = viewableMs;
      track.reportedCreditedMs = track.creditedMs;
      track.reportedLongestRunMs = track.longestRunMs;
      track.reportedFirstServerMs = first;
      track.reportedLastServerMs = last;
    }
    if (!sameTracks(this.reportedTracks, current))
      this.reportedTracks = current === this.registry.tracks ? current.slice() : current;
    this.impressionsRound = round;
    this.reportedFlagMask = mask;
    this.remembered = onlyChanged;
  }

  /** The minute rows of a report (see {@link report}); `onlyChanged` is false for a final one. */
  private reportMinutes(
    sink: ReportSink,
    current: readonly ImpressionTrack[],
    mask: number,
    round: number,
    onlyChanged: boolean,
  ): void {
    const min = MINUTE_ROW;
    const skip = onlyChanged && this.minutesRemembered;
    const previous = this.minutesRound;
    // Retractions of what the last minute rows gave, in their order.
    for (const track of this.minutesReportedTracks) {
      const minutes = track.reportedMinutes;
      if (minutes === null || minutes.length === 0) continue;
      const meta = track.minutesReportedMeta;
      if (meta === undefined) throw new Error('page view lost a reported meta');
      const billable = track.listedIn === round && mask === 0 && this.viewable(track);
      min.impression_id = track.id;
      min.ad_id = meta.ad_id;
      min.campaign_id = meta.campaign_id;
      min.viewable_ms = 0;
      for (let i = 0; i < minutes.length; i += 2) {
        const minute = minutes[i] ?? 0;
        if (billable && track.msInMinute(minute) > 0) continue;
        min.minute_start_ms = minute;
        sink.minute(min, true);
      }
    }
    // The current rows, each left out when `skip` and equal to what the last minute rows gave.
    for (const track of current) {
      const meta = this.registry.metas[track.firstMetaIndex];
      if (meta === undefined) throw new Error('page view registry lost a meta');
      const sameMeta = skip && track.minutesReportedIn === previous && track.minutesReportedMeta === meta;
      track.minutesReportedIn = round;
      track.minutesReportedMeta = meta;
      const reported = track.reportedMinutes;
      if (mask !== 0 || !this.viewable(track)) {
        if (reported !== null) reported.length = 0;
        continue;
      }
      const now = track.minutePairs(PAIRS);
      min.impression_id = track.id;
      min.ad_id = meta.ad_id;
      min.campaign_id = meta.campaign_id;
      // Both lists ascend: one walk pairs each minute with its last reported ms.
      let j = 0;
      const known = sameMeta && reported !== null ? reported : PAIRS_NONE;
      for (let i = 0; i < now.length; i += 2) {
        const minute = now[i] ?? 0;
        const ms = now[i + 1] ?? 0;
        while (j < known.length && (known[j] ?? 0) < minute) j += 2;
        if (j < known.length && known[j] === minute && known[j + 1] === ms) continue;
        min.minute_start_ms = minute;
        min.viewable_ms = ms;
        sink.minute(min, false);
      }
      if (reported === null) track.reportedMinutes = now.slice();
      else {
        reported.length = now.length;
        for (let i = 0; i < now.length; i++) reported[i] = now[i] ?? 0;
      }
    }
    if (!sameTracks(this.minutesReportedTracks, current))
      this.minutesReportedTracks = current === this.registry.tracks ? current.slice() : current;
    this.minutesRound = round;
    this.minutesRemembered = onlyChanged;
  }

  /**
   * What the last reports gave of each impression (a partition snapshot's `reported`, and
   * `reported_impressions` when the impression rows were last reported in another report than
   * the minute rows and listed other impressions or other identity fields since). `reported`
   * holds the minute rows' impressions with their billed minutes; the first and last server
   * times are the impression rows' (unless `impressions` is given, which then holds those).
   */
  reportedState(): { reported: ReportedImpression[]; impressions?: ReportedImpression[] } {
    const tuple = (track: ImpressionTrack, meta: ImpressionMeta | undefined, minutes: readonly number[]): ReportedImpression => {
      if (meta === undefined) throw new Error('page view lost a reported meta');
      return [
        track.id,
        meta.ad_id,
        meta.campaign_id,
        meta.media,
        meta.width,
        meta.height,
        track.reportedFirstServerMs,
        track.reportedLastServerMs,
        minutes,
      ];
    };
    const minutesOf = (track: ImpressionTrack): number[] => {
      const pairs = track.reportedMinutes ?? [];
      const minutes: number[] = [];
      for (let i = 0; i < pairs.length; i += 2) minutes.push(pairs[i] ?? 0);
      return minutes;
    };
    const inStep =
      sameTracks(this.reportedTracks, this.minutesReportedTracks) &&
      this.reportedTracks.every((track) => track.reportedMeta === track.minutesReportedMeta);
    const reported = this.minutesReportedTracks.map((track) => tuple(track, track.minutesReportedMeta, minutesOf(track)));
    if (inStep) return { reported };
    return { reported, impressions: this.reportedTracks.map((track) => tuple(track, track.reportedMeta, [])) };
  }

  /**
   * Restores what the last reports gave, from {@link reportedState} output. The values it did not
   * record are unknown: the next report of each part is complete.
   *
   * @throws SnapshotError when an impression is not the page view's, or is listed twice.
   */
  restoreReported(
    reported: readonly ReportedImpression[],
    field: string,
    impressions?: readonly ReportedImpression[],
    impressionsField = field,
  ): void {
    this.snapshotChanges++;
    const listOf = (list: readonly ReportedImpression[], at: string): ImpressionTrack[] => {
      const round = ++this.reportRound;
      return list.map(([id], i) => {
        const track = this.registry.tracks.find((t) => t.id === id);
        if (track === undefined || track.listedIn === round)
          throw new SnapshotError(`${at}[${i}]`, 'is not an impression of the page view, or is listed twice');
        track.listedIn = round;
        return track;
      });
    };
    const metaOf = ([, ad_id, campaign_id, media, width, height]: ReportedImpression): ImpressionMeta => ({ ad_id, campaign_id, media, width, height });
    const minuteTracks = listOf(reported, field);
    minuteTracks.forEach((track, i) => {
      const tuple = reported[i] as ReportedImpression;
      track.minutesReportedMeta = metaOf(tuple);
      track.reportedMinutes = [...tuple[8]].sort((a, b) => a - b).flatMap((minute) => [minute, Number.NaN]);
      // What the track's last impression row gave, as the tuple says, also where the impression
      // part below leaves the track out: then no result reads it, but a snapshot still shows it.
      track.reportedFirstServerMs = tuple[6];
      track.reportedLastServerMs = tuple[7];
    });
    this.minutesReportedTracks = minuteTracks;
    // The impression part: from `impressions` when given, else the same list as the minute part.
    const impressionList = impressions ?? reported;
    const impressionTracks = impressions === undefined ? minuteTracks : listOf(impressions, impressionsField);
    impressionTracks.forEach((track, i) => {
      const tuple = impressionList[i] as ReportedImpression;
      track.reportedMeta = impressions === undefined ? track.minutesReportedMeta : metaOf(tuple);
      track.reportedFirstServerMs = tuple[6];
      track.reportedLastServerMs = tuple[7];
    });
    this.reportedTracks = impressionTracks;
    // Neither part's last round is one a track can match: the next reports are complete.
    this.impressionsRound = this.minutesRound = ++this.reportRound;
    this.remembered = this.minutesRemembered = false;
  }

  /** A plain JSON-compatible copy of the state; see {@link PageViewState.restore}. */
  snapshot(): PageViewSnapshot {
    return {
      format: SNAPSHOT_FORMAT,
      kind: 'page_view',
      rules_version: this.config.rulesVersion,
      rules_fingerprint: this.rules.fingerprint,
      identity: { ...this.identity },
      last_recv_ms: this.lastRecvMs,
      conflicting_duplicate: this.conflicting,
      givt_user_agent: this.givt,
      impressions: this.registry.tracks.map((track) => track.id),
      metas: this.registry.metas.map(({ ad_id, campaign_id, width, height, media }) => ({
        ad_id,
        campaign_id,
        width,
        height,
        media,
      })),
      events: Array.from({ length: this.events.length }, (_, i) => {
        const e = this.events;
        return [
          e.seq(i),
          e.t(i),
          e.recv(i),
          e.hash(i),
          e.pool.slice(e.entriesStart(i), e.entriesEnd(i)),
        ] as const;
      }),
    };
  }

  /** Flags as EXPOSURE_FLAGS bits. */
  private flagMask(): number {
    this.settle();
    return (
      (this.conflicting ? 1 : 0) |
      (this.clockRegression ? 2 : 0) |
      (this.implausible() ? 4 : 0) |
      (this.givt ? 8 : 0)
    );
  }

  /** Rule 4 for one impression: its longest run reached its media's minimum. */
  private viewable(track: ImpressionTrack): boolean {
    const meta = this.registry.metas[track.firstMetaIndex];
    if (meta === undefined) throw new Error('page view registry lost a meta');
    return track.longestRunMs >= (meta.media === 'video' ? this.config.minRunMsVideo : this.config.minRunMsDisplay);
  }

  /**
   * The impressions listed by some stored event, in order of first appearance (seq, then position
   * in the event). Usually that is the registry's own order, which is then returned as is.
   */
  private reportOrder(): readonly ImpressionTrack[] {
    const { tracks } = this.registry;
    let inOrder = true;
    for (let i = 0; i < tracks.length && inOrder; i++) {
      const track = tracks[i] as ImpressionTrack;
      const before = tracks[i - 1];
      inOrder =
        track.seen &&
        (before === undefined ||
          before.firstSeq < track.firstSeq ||
          (before.firstSeq === track.firstSeq && before.firstPosition < track.firstPosition));
    }
    if (inOrder) return tracks;
    return tracks
      .filter((track) => track.seen)
      .sort((a, b) => a.firstSeq - b.firstSeq || a.firstPosition - b.firstPosition);
  }

  /** Rule 7: `recv_ms(first event) + (t − t_mono(first event))`. */
  private serverTime(t: number): number {
    return this.anchorRecv + (t - this.anchorT);
  }

  /** Rule 6: client-elapsed time beyond the server-observed life plus the slack. */
  private implausible(): boolean {
    const n = this.events.length;
    if (n === 0) return false;
    return this.lastT - this.anchorT > this.maxRecv - this.minRecv + this.config.plausibilitySlackMs;
  }

  private observe(pageEvent: PageEvent): void {
    // `!(a <= b)` is also true while lastRecv is NaN.
    if (!(pageEvent.recv_ms <= this.lastRecv)) this.lastRecv = pageEvent.recv_ms;
    if (!this.givt && isGivtUserAgent(this.rules, pageEvent.user_agent)) {
      this.givt = true;
      this.revisionCount++;
    }
  }

  /** A second copy of a stored seq: keep the earliest recv_ms and the smallest-hash content. */
  private applyCopy(index: number, pageEvent: PageEvent): PageViewOutcome {
    const events = this.events;
    const stored = events.hash(index);
    const hash = eventContentHash(pageEvent.event);
    let changed = false;
    let outcome: PageViewOutcome = 'duplicate';
    if (hash !== stored) {
      outcome = 'conflicting_duplicate';
      if (!this.conflicting) {
        this.conflicting = true;
        this.revisionCount++;
      }
      if (hash < stored) {
        const at = events.pool.length;
        events.replace(
          index,
          pageEvent.event.t_mono_ms,
          this.registry.encode(pageEvent, this.config, events.pool),
          at,
        );
        changed = true;
      }
    }
    if (pageEvent.recv_ms < events.recv(index)) {
      events.setRecv(index, pageEvent.recv_ms);
      changed = true;
    }
    if (changed) {
      this.stale = true;
      this.revisionCount++;
    }
    return outcome;
  }

  private settle(): void {
    if (!this.stale) return;
    for (const track of this.registry.tracks) track.reset();
    this.clockRegression = false;
    for (let i = 0; i < this.events.length; i++) this.advance(i - 1, i);
    this.stale = false;
  }

  /** Folds event `index` into the derived state; `previous` is the event before it in seq order, or -1. */
  private advance(previous: number, index: number): void {
    const events = this.events;
    const time = events.t(index);
    const received = events.recv(index);
    const thisSeq = events.seq(index);
    this.lastT = time;
    if (previous < 0) {
      this.anchorRecv = this.minRecv = this.maxRecv = received;
      this.anchorT = time;
    } else {
      const previousTime = events.t(previous);
      const previousSeq = events.seq(previous);
      if (received < this.minRecv) this.minRecv = received;
      if (received > this.maxRecv) this.maxRecv = received;
      if (time < previousTime) this.clockRegression = true;
      const segmentMs = creditSegment(previousSeq, previousTime, thisSeq, time, true, this.config.maxGapMs);
      const startServerMs = this.serverTime(previousTime);
      for (const track of this.registry.tracks) {
        if (segmentMs > 0 && track.qualifiedAtSeq === previousSeq) track.credit(startServerMs, segmentMs);
        else track.breakRun();
      }
    }
    // Events before an impression's first appearance do not concern it: its track starts here.
    const { pool } = events;
    const { tracks } = this.registry;
    const start = events.entriesStart(index);
    const end = events.entriesEnd(index);
    for (let i = start; i < end; i++) {
      const entry = pool[i] ?? 0;
      const track = tracks[entryImpression(entry)];
      if (track === undefined) throw new Error('page view registry lost an impression');
      if (!track.seen) track.firstSeen(entryMeta(entry), thisSeq, i - start, time);
      track.lastT = time;
      const verdict = entryVerdict(entry);
      if ((verdict & VERDICT.measurable) !== 0) track.measurable = true;
      if ((verdict & VERDICT.qualifies) !== 0) track.qualifiedAtSeq = thisSeq;
    }
  }
}
