/**
 * The page views of one Kafka partition of `dwell.events.v1`, fed in log order. Applies rule 8
 * (lateness) against the partition's `recv_ms` watermark, closes page views whose lateness window
 * has passed (evicting them, so memory is bounded), and reports which page views changed or
 * closed since the last call. Every decision depends only on the sequence of events applied,
 * never on when changes are taken or snapshots made.
 */
import type { PageEvent } from '@dwell/protocol';
import { compileRules, type CompiledRules } from './compiled-rules.js';
import { ExpiryQueue } from './expiry-queue.js';
import { isValidPageEvent } from './event-record.js';
import { PageViewState } from './page-view-state.js';
import { ReportCollector, type PageViewReport, type ReportedImpression, type ReportSink } from './page-view-report.js';
import type { EventOutcome } from './results.js';
import { DEFAULT_RULES_CONFIG, type RulesConfig } from './rules-config.js';
import {
  SNAPSHOT_FORMAT,
  expectArray,
  expectEnvelope,
  expectInteger,
  expectObject,
  expectString,
  parseMeta,
  SnapshotError,
  type PageViewSnapshot,
} from './snapshot.js';

/**
 * Upsert `closed` before `changed`: an id that closed can open again as a new page view (after
 * `closedMemoryMs`) before the next call, and its new results must land after its final ones.
 */
export interface PartitionChanges {
  /** Page views closed since the last call, in closing order (last recv_ms, then id). */
  readonly closed: readonly PageViewReport[];
  /** Open page views whose results changed since the last call, in order of first change. */
  readonly changed: readonly PageViewReport[];
}

/** What a partition's snapshot and delta both hold whole. */
interface PartitionStateParts {
  readonly format: typeof SNAPSHOT_FORMAT;
  readonly rules_version: number;
  readonly rules_fingerprint: string;
  readonly watermark_ms: number | null;
  /** Closed page views whose final report has not been taken yet, in closing order. */
  readonly closing: readonly PageViewEntrySnapshot[];
  /** Ids of open page views changed since the last report, in order of first change. */
  readonly changed: readonly string[];
  /**
   * Ids of open page views whose impression rows were held back since they changed (see
   * {@link PartitionExposure.writeChanges}), in order of holding back. Absent in snapshots of
   * versions that always reported both parts: none.
   */
  readonly impressions_due?: readonly string[];
}

export interface PartitionSnapshot extends PartitionStateParts {
  readonly kind: 'partition';
  /** Open page views in the order they opened. */
  readonly open: readonly PageViewEntrySnapshot[];
  /** Recently closed page views still recognised as late: `[page_view_id, last recv_ms]`. */
  readonly closed_recently: readonly (readonly [string, number])[];
}

/**
 * What changed in a partition since its previous snapshot or delta ({@link PartitionExposure.deltaText}):
 * applied to that state it gives this one. The parts it shares with a snapshot are whole; the
 * page views and the remembered closed ids are told as differences.
 */
export interface PartitionDelta extends PartitionStateParts {
  readonly kind: 'partition_delta';
  /** Ids of page views open before that are not any more (closed since), in closing order. */
  readonly removed: readonly string[];
  /** Page views open before that changed since: they replace theirs, in place. */
  readonly updated: readonly PageViewEntrySnapshot[];
  /** Page views opened since, in the order they opened: they follow the others. */
  readonly opened: readonly PageViewEntrySnapshot[];
  /** Remembered closed ids that were forgotten (or closed again) since. */
  readonly closed_dropped: readonly string[];
  /** `[page_view_id, last recv_ms]` remembered since, in order. */
  readonly closed_added: readonly (readonly [string, number])[];
}

export interface PageViewEntrySnapshot {
  readonly state: PageViewSnapshot;
  /** What the last minute rows gave (PageViewState.reportedState), and the impression rows too unless `reported_impressions` says otherwise. */
  readonly reported: readonly ReportedImpression[];
  /** What the last impression rows gave, when that differs from `reported` in its impressions. */
  readonly reported_impressions?: readonly ReportedImpression[];
}

/** Pairs of `closed_recently` per chunk of a snapshot's text. */
const CLOSED_CHUNK = 4096;

interface ClosedChunk {
  readonly count: number;
  readonly text: string;
}

interface Entry {
  readonly state: PageViewState;
  /** In `changed` since the last report. */
  changed: boolean;
  /** Its impression rows are held back since it changed: in `due`. */
  due: boolean;
  /** Closed: ignore wherever it is still listed. */
  closed: boolean;
  /** Its snapshot as JSON text, valid while the state's snapshot revision is `textRevision`. */
  text: string | undefined;
  textRevision: number;
  /**
   * The state's snapshot revision when the last snapshot or delta was made; {@link UNBASED} for
   * a page view opened since (a revision is at least 1: every page view holds an event).
   */
  baseRevision: number;
  /** In `toPrepare`. */
  queued: boolean;
}

/** An entry's base revision before any snapshot or delta held it. */
const UNBASED = -1;

function newEntry(state: PageViewState): Entry {
  return {
    state,
    changed: false,
    due: false,
    closed: false,
    text: undefined,
    textRevision: 0,
    baseRevision: UNBASED,
    queued: false,
  };
}

/**
 * The exposure state of one partition of `dwell.events.v1`. Feed it the partition's events in
 * log order with {@link PartitionExposure.apply}; upsert what {@link PartitionExposure.takeChanges}
 * returns; snapshot and restore it across restarts. One instance per partition, not shared.
 */
export class PartitionExposure {
  private readonly rules: CompiledRules;
  private readonly config: RulesConfig;
  /** NaN before the first event: a number field stays unboxed, where `number | null` would allocate per update. */
  private watermark = Number.NaN;
  private readonly open = new Map<string, Entry>();
  private readonly expiry = new ExpiryQueue<Entry>();
  private closing: Entry[] = [];
  /** Open page views changed since the last report, in order of first change (flag-guarded, no hashing). */
  private changed: Entry[] = [];
  /** Open page views whose impression rows are held back, in order of holding back (flag-guarded; closed ones are skipped). */
  private due: Entry[] = [];
  private dueCount = 0;
  // Insertion order is closing order, which is ascending last recv_ms: pruning reads from the front.
  private readonly closedRecently = new Map<string, number>();
  /**
   * `closedRecently` as JSON text for {@link snapshotText}, in chunks of consecutive pairs (each
   * without its brackets), as of the last call; since then `closedPruned` pairs left the front, and
   * `closedMoved` says whether one left from elsewhere (then every chunk is made again).
   */
  private closedChunks: ClosedChunk[] = [];
  private closedPruned = 0;
  private closedMoved = false;
  /**
   * Since the last snapshot text or delta (once there was one): ids of page views that were open
   * then and closed since; remembered closed ids added since (in order, kept with the map's), and
   * those of then forgotten since.
   */
  private tracking = false;
  private removedSince: string[] = [];
  private closedAdded = new Set<string>();
  private closedDropped: string[] = [];
  /** Open page views changed since their text was last made, from `prepareHead` on, in order of change (flag-guarded). */
  private toPrepare: Entry[] = [];
  private prepareHead = 0;

  /** `config` defaults to rules version 1; a bad config throws RulesConfigError. */
  constructor(config: RulesConfig = DEFAULT_RULES_CONFIG) {
    this.rules = compileRules(config);
    this.config = this.rules.config;
  }

  /** The rules version its results carry. */
  get rulesVersion(): number {
    return this.config.rulesVersion;
  }

  /** What its snapshots are valid for: a snapshot restores only under the same rules. */
  get rulesFingerprint(): string {
    return this.rules.fingerprint;
  }

  /** Highest `recv_ms` applied so far, in log order; null before the first valid event. */
  get watermarkMs(): number | null {
    return Number.isNaN(this.watermark) ? null : this.watermark;
  }

  /** Page views held in memory (open, plus closed ones whose final report is not taken yet). */
  get pageViewsInMemory(): number {
    return this.open.size + this.closing.length;
  }

  /** Open page views whose impression rows are held back (see {@link writeChanges}). */
  get impressionsDue(): number {
    return this.dueCount;
  }

  /** Ids of closed page views still remembered, to answer `late` (bounded by `closedMemoryMs`). */
  get closedIdsRemembered(): number {
    return this.closedRecently.size;
  }

  /**
   * Applies the next event of the partition's log. `late`: the watermark (this event included)
   * is more than `allowedLatenessMs` past the page view's last event, or the page view closed
   * less than `closedMemoryMs` ago, or the page view is not open and this event's own `recv_ms`
   * is more than `allowedLatenessMs` behind the watermark. Otherwise as PageViewState.apply.
   */
  apply(pageEvent: PageEvent): EventOutcome {
    if (!isValidPageEvent(pageEvent)) return 'invalid_event';
    const recv = pageEvent.recv_ms;
    // `!(a <= b)` is also true while the watermark is NaN.
    if (!(recv <= this.watermark)) this.watermark = recv;
    const watermark = this.watermark;
    const outcome = this.route(pageEvent, watermark);
    this.closeExpired(watermark);
    return outcome;
  }

  /** Reports of the page views closed and changed since the last call, then forgets them. */
  takeChanges(): PartitionChanges {
    const collector = new ReportCollector();
    this.writeChanges(collector, false);
    return { closed: collector.closed, changed: collector.changed };
  }

  /**
   * The reports {@link takeChanges} gives, as rows into `sink`: the closed page views' (final)
   * first, then the changed ones'. With `onlyChanged`, a row equal to the one the page view's last
   * report gave is left out when that report was written with `onlyChanged` too (see
   * PageViewState.report); the rows of closed page views are always complete.
   *
   * Without `impressions`, the changed page views' reports hold only their minute rows (billed
   * time) and their impression rows are held back: the next call with `impressions` reports them,
   * changed again or not, after the changed page views' reports. A closed page view's final report
   * holds both. So after every call the minute rows upserted so far are the current ones, and after
   * a call with `impressions` the impression rows are too.
   */
  writeChanges(sink: ReportSink, onlyChanged: boolean, impressions = true): void {
    for (const entry of this.closing) {
      this.clearDue(entry);
      entry.state.report(sink, true, onlyChanged);
    }
    this.closing = [];
    for (const entry of this.changed) {
      entry.changed = false;
      if (entry.closed) continue;
      if (impressions) {
        this.clearDue(entry);
        entry.state.report(sink, false, onlyChanged, 'both');
      } else {
        entry.state.report(sink, false, onlyChanged, 'minutes');
        this.markDue(entry);
      }
    }
    this.changed = [];
    if (!impressions) return;
    for (const entry of this.due) {
      if (!entry.due || entry.closed) continue;
      this.clearDue(entry);
      entry.state.report(sink, false, onlyChanged, 'impressions');
    }
    this.due = [];
  }

  /** A plain JSON-compatible copy of the whole partition state. */
  snapshot(): PartitionSnapshot {
    return {
      format: SNAPSHOT_FORMAT,
      kind: 'partition',
      rules_version: this.config.rulesVersion,
      rules_fingerprint: this.rules.fingerprint,
      watermark_ms: this.watermarkMs,
      open: [...this.open.values()].map(entrySnapshot),
      closing: this.closing.map(entrySnapshot),
      changed: this.changedIds(),
      impressions_due: this.dueIds(),
      closed_recently: [...this.closedRecently],
    };
  }

  /**
   * `JSON.stringify(this.snapshot())`, made cheaply: each open page view's text is kept from the
   * previous call until the page view changes. Under steady traffic most of a partition's page
   * views are idle, waiting out the lateness window, so a snapshot serializes only the few that
   * changed since the last one (and holds the texts of the others meanwhile).
   */
  snapshotText(): string {
    return this.snapshotPieces().join('');
  }

  /**
   * {@link snapshotText} in pieces, in order, not joined: a partition's text can be hundreds of
   * MB, and its pieces (mostly the page views' kept texts) can be encoded or sent a part at a time
   * without ever being one string.
   */
  snapshotPieces(): string[] {
    const pieces = [`{${this.headerText('partition')},"open":[`];
    for (const e of this.open.values()) {
      if (pieces.length > 1) pieces.push(',');
      pieces.push(textOf(e));
      e.baseRevision = e.textRevision;
    }
    this.startTracking();
    pieces.push(`],${this.pendingText()},"closed_recently":[`);
    this.closedRecentlyTexts().forEach((text, i) => {
      if (i > 0) pieces.push(',');
      pieces.push(text);
    });
    pieces.push(']}');
    return pieces;
  }

  /**
   * A {@link PartitionDelta} as JSON text: what changed since the last {@link snapshotText} or
   * delta (or restore), which it makes the base of the next one; undefined before there was one.
   * It costs what changed, not what is held: under steady traffic most open page views are idle,
   * waiting out the lateness window, and a delta leaves them out.
   */
  deltaText(): string | undefined {
    return this.deltaPieces()?.join('');
  }

  /** {@link deltaText} in pieces, as {@link snapshotPieces}. */
  deltaPieces(): string[] | undefined {
    if (!this.tracking) return undefined;
    const updated: string[] = [];
    const opened: string[] = [];
    for (const e of this.open.values()) {
      if (e.baseRevision === e.state.snapshotRevision) continue;
      const list = e.baseRevision === UNBASED ? opened : updated;
      if (list.length > 0) list.push(',');
      list.push(textOf(e));
      e.baseRevision = e.textRevision;
    }
    const added: [string, number][] = [];
    for (const id of this.closedAdded) added.push([id, this.closedRecently.get(id) as number]);
    const pieces = [
      `{${this.headerText('partition_delta')},"removed":${JSON.stringify(this.removedSince)},"updated":[`,
      ...updated,
      '],"opened":[',
      ...opened,
      `],${this.pendingText()},` +
        `"closed_dropped":${JSON.stringify(this.closedDropped)},"closed_added":${JSON.stringify(added)}}`,
    ];
    this.startTracking();
    return pieces;
  }

  /**
   * Makes the snapshot texts of changed page views ahead of the next snapshot or delta, while
   * `goOn()` says so (asked every few dozen page views): of those that took no event for `idleMs` of the
   * watermark and have no report pending, which most likely stay as they are until they close.
   * Their texts are then kept, so that snapshot or delta serializes only what is still active
   * and holds up the partition's thread for that much less. Call it when the thread is idle; it
   * changes no result and no snapshot. Returns the texts made.
   */
  prepareTexts(idleMs: number, goOn: () => boolean): number {
    const queue = this.toPrepare;
    const watermark = this.watermark;
    // One pass at most: the page views still active go to the back for a later call.
    const end = queue.length;
    let made = 0;
    let i = this.prepareHead;
    for (let n = 0; i < end; i++, n++) {
      if ((n & 63) === 0 && !goOn()) break;
      const e = queue[i] as Entry;
      if (e.closed) {
        e.queued = false;
        continue;
      }
      if (e.changed || e.due || !(watermark - (e.state.lastRecvMs ?? watermark) >= idleMs)) {
        queue.push(e);
        continue;
      }
      e.queued = false;
      if (e.text === undefined || e.textRevision !== e.state.snapshotRevision) {
        textOf(e);
        made++;
      }
    }
    this.prepareHead = i;
    if (this.prepareHead > 4096 && this.prepareHead * 2 > queue.length) {
      this.toPrepare = queue.slice(this.prepareHead);
      this.prepareHead = 0;
    }
    return made;
  }

  private queueText(entry: Entry): void {
    // Only where snapshots are made (and so the queue drained).
    if (entry.queued || !this.tracking) return;
    entry.queued = true;
    this.toPrepare.push(entry);
  }

  /** The fields a snapshot and a delta open with, as JSON text without braces. */
  private headerText(kind: 'partition' | 'partition_delta'): string {
    return (
      `"format":${JSON.stringify(SNAPSHOT_FORMAT)},"kind":"${kind}",` +
      `"rules_version":${JSON.stringify(this.config.rulesVersion)},` +
      `"rules_fingerprint":${JSON.stringify(this.rules.fingerprint)},` +
      `"watermark_ms":${JSON.stringify(this.watermarkMs)}`
    );
  }

  /** What is pending a report, which a snapshot and a delta both hold whole, as JSON text without braces. */
  private pendingText(): string {
    return (
      `"closing":${JSON.stringify(this.closing.map(entrySnapshot))},` +
      `"changed":${JSON.stringify(this.changedIds())},` +
      `"impressions_due":${JSON.stringify(this.dueIds())}`
    );
  }

  /** Makes the current state the base of the next delta. */
  private startTracking(): void {
    this.tracking = true;
    this.removedSince = [];
    this.closedAdded = new Set();
    this.closedDropped = [];
  }

  /**
   * The pairs of `closedRecently` as JSON texts without brackets, to be joined with commas. An
   * hour of closed ids can be a million pairs, most of them in the previous call's text already:
   * between calls pairs only leave the front (pruned) and join the back (closed), so the chunks of
   * the last call still whole are kept, and only a partly pruned first chunk, the last one and the
   * new pairs are made.
   */
  private closedRecentlyTexts(): string[] {
    let kept = this.closedMoved ? [] : this.closedChunks;
    let pruned = this.closedPruned;
    let first = 0;
    while (first < kept.length && pruned >= (kept[first] as ClosedChunk).count) pruned -= (kept[first++] as ClosedChunk).count;
    kept = kept.slice(first);
    // A partly pruned first chunk is made again from its remaining pairs; so is a last chunk not full.
    const head = kept.length > 0 && pruned > 0 ? (kept.shift() as ClosedChunk).count - pruned : 0;
    if (kept.length > 0 && (kept[kept.length - 1] as ClosedChunk).count < CLOSED_CHUNK) kept.pop();
    const chunks: ClosedChunk[] = [];
    const pairs: [string, number][] = [];
    const flush = (): void => {
      if (pairs.length === 0) return;
      chunks.push({ count: pairs.length, text: JSON.stringify(pairs).slice(1, -1) });
      pairs.length = 0;
    };
    const entries = this.closedRecently.entries();
    for (let i = 0; i < head; i++) pairs.push(entries.next().value as [string, number]);
    flush();
    for (const chunk of kept) {
      for (let i = 0; i < chunk.count; i++) entries.next();
      chunks.push(chunk);
    }
    for (const pair of entries) {
      pairs.push(pair);
      if (pairs.length === CLOSED_CHUNK) flush();
    }
    flush();
    this.closedChunks = chunks;
    this.closedPruned = 0;
    this.closedMoved = false;
    return chunks.map((chunk) => chunk.text);
  }

  private changedIds(): string[] {
    return this.changed.filter((e) => !e.closed).map((e) => e.state.identity.page_view_id);
  }

  private dueIds(): string[] {
    return this.due.filter((e) => e.due && !e.closed).map((e) => e.state.identity.page_view_id);
  }

  /**
   * Restores a partition from {@link snapshot} output (also after a JSON round trip), or from
   * {@link snapshotText} output and the {@link deltaText} outputs made after it, in order; applying
   * the rest of the log then gives exactly what an uninterrupted run gives. The restored state is
   * the base of the next delta.
   *
   * @throws SnapshotError when the snapshot or a delta is malformed, of another format, or of other
   *   rules, or a delta does not follow what came before it.
   */
  static restore(
    snapshot: unknown,
    config: RulesConfig = DEFAULT_RULES_CONFIG,
    deltas: readonly unknown[] = [],
  ): PartitionExposure {
    const partition = new PartitionExposure(config);
    const fingerprint = partition.rules.fingerprint;
    let last = expectEnvelope(snapshot, 'partition', fingerprint);
    partition.watermark = parseWatermark(last['watermark_ms'], 'watermark_ms');
    for (const [i, item] of expectArray(last['open'], 'open').entries()) {
      const entry = parseEntry(item, `open[${i}]`, partition.config);
      partition.open.set(entry.state.identity.page_view_id, entry);
    }
    for (const [i, item] of expectArray(last['closed_recently'], 'closed_recently').entries()) {
      const [id, lastRecv] = parseClosedPair(item, `closed_recently[${i}]`);
      partition.closedRecently.set(id, lastRecv);
    }
    let prefix = '';
    for (const [d, delta] of deltas.entries()) {
      prefix = `deltas[${d}].`;
      last = partition.applyDelta(delta, prefix);
    }
    for (const [id, entry] of partition.open)
      partition.expiry.push({ lastRecvMs: entry.state.lastRecvMs ?? 0, id, item: entry });
    partition.closing = expectArray(last['closing'], `${prefix}closing`).map((item, i) => {
      const entry = parseEntry(item, `${prefix}closing[${i}]`, partition.config);
      entry.closed = true;
      return entry;
    });
    for (const [i, id] of expectArray(last['changed'], `${prefix}changed`).entries()) {
      const entry = partition.open.get(expectString(id, `${prefix}changed[${i}]`));
      if (entry === undefined || entry.changed)
        throw new SnapshotError(`${prefix}changed[${i}]`, 'is not an open page view, or is listed twice');
      partition.markChanged(entry);
    }
    const due = last['impressions_due'] === undefined ? [] : expectArray(last['impressions_due'], `${prefix}impressions_due`);
    for (const [i, id] of due.entries()) {
      const entry = partition.open.get(expectString(id, `${prefix}impressions_due[${i}]`));
      if (entry === undefined || entry.due)
        throw new SnapshotError(`${prefix}impressions_due[${i}]`, 'is not an open page view, or is listed twice');
      partition.markDue(entry);
    }
    for (const entry of partition.open.values()) entry.baseRevision = entry.state.snapshotRevision;
    partition.startTracking();
    return partition;
  }

  /** Applies a {@link PartitionDelta} to the page views and remembered ids restored so far; returns it. */
  private applyDelta(value: unknown, prefix: string): Record<string, unknown> {
    let o: Record<string, unknown>;
    try {
      o = expectEnvelope(value, 'partition_delta', this.rules.fingerprint);
    } catch (error) {
      if (error instanceof SnapshotError) throw new SnapshotError(`${prefix}${error.field}`, error.problem);
      throw error;
    }
    this.watermark = parseWatermark(o['watermark_ms'], `${prefix}watermark_ms`);
    for (const [i, id] of expectArray(o['removed'], `${prefix}removed`).entries()) {
      if (!this.open.delete(expectString(id, `${prefix}removed[${i}]`)))
        throw new SnapshotError(`${prefix}removed[${i}]`, 'is not an open page view');
    }
    for (const [i, item] of expectArray(o['updated'], `${prefix}updated`).entries()) {
      const entry = parseEntry(item, `${prefix}updated[${i}]`, this.config);
      const id = entry.state.identity.page_view_id;
      if (!this.open.has(id)) throw new SnapshotError(`${prefix}updated[${i}]`, 'is not an open page view');
      this.open.set(id, entry);
    }
    for (const [i, item] of expectArray(o['opened'], `${prefix}opened`).entries()) {
      const entry = parseEntry(item, `${prefix}opened[${i}]`, this.config);
      const id = entry.state.identity.page_view_id;
      if (this.open.has(id)) throw new SnapshotError(`${prefix}opened[${i}]`, 'is open already');
      this.open.set(id, entry);
    }
    for (const [i, id] of expectArray(o['closed_dropped'], `${prefix}closed_dropped`).entries()) {
      if (!this.closedRecently.delete(expectString(id, `${prefix}closed_dropped[${i}]`)))
        throw new SnapshotError(`${prefix}closed_dropped[${i}]`, 'is not a remembered closed page view');
    }
    for (const [i, item] of expectArray(o['closed_added'], `${prefix}closed_added`).entries()) {
      const [id, lastRecv] = parseClosedPair(item, `${prefix}closed_added[${i}]`);
      if (this.closedRecently.has(id))
        throw new SnapshotError(`${prefix}closed_added[${i}]`, 'is remembered already');
      this.closedRecently.set(id, lastRecv);
    }
    return o;
  }

  private route(pageEvent: PageEvent, watermark: number): EventOutcome {
    const id = pageEvent.event.page_view_id;
    const lateness = this.config.allowedLatenessMs;
    const entry = this.open.get(id);
    if (entry !== undefined) {
      if (watermark - (entry.state.lastRecvMs ?? pageEvent.recv_ms) > lateness) return 'late';
      const revision = entry.state.revision;
      const outcome = entry.state.apply(pageEvent);
      if (entry.state.revision !== revision) {
        this.markChanged(entry);
        this.queueText(entry);
      }
      return outcome;
    }
    // A page view that is not open is either new or closed. A closed one is remembered for a while.
    const closedLast = this.closedRecently.get(id);
    if (closedLast !== undefined && watermark - closedLast <= lateness + this.config.closedMemoryMs)
      return 'late';
    // A new page view's last event would be this one: if that is already out of the window, so is the event.
    if (watermark - pageEvent.recv_ms > lateness) return 'late';
    const state = new PageViewState(PageViewState.identityOf(pageEvent), this.config);
    const outcome = state.apply(pageEvent);
    if (outcome !== 'accepted') return outcome;
    const opened = newEntry(state);
    this.open.set(id, opened);
    this.expiry.push({ lastRecvMs: pageEvent.recv_ms, id, item: opened });
    this.markChanged(opened);
    this.queueText(opened);
    return outcome;
  }

  private markChanged(entry: Entry): void {
    if (entry.changed) return;
    entry.changed = true;
    this.changed.push(entry);
  }

  private markDue(entry: Entry): void {
    if (entry.due) return;
    entry.due = true;
    this.dueCount++;
    this.due.push(entry);
  }

  private clearDue(entry: Entry): void {
    if (!entry.due) return;
    entry.due = false;
    this.dueCount--;
  }

  private closeExpired(watermark: number): void {
    const lateness = this.config.allowedLatenessMs;
    for (
      let top = this.expiry.peek();
      top !== undefined && watermark - top.lastRecvMs > lateness;
      top = this.expiry.peek()
    ) {
      this.expiry.pop();
      const last = top.item.state.lastRecvMs ?? top.lastRecvMs;
      if (last !== top.lastRecvMs) {
        // The page view heard from since it was queued: queue it again at its real last event.
        this.expiry.push({ lastRecvMs: last, id: top.id, item: top.item });
        continue;
      }
      this.open.delete(top.id);
      top.item.closed = true;
      this.closing.push(top.item);
      if (this.tracking && top.item.baseRevision !== UNBASED) this.removedSince.push(top.id);
      if (this.forgetClosed(top.id)) this.closedMoved = true;
      this.closedRecently.set(top.id, last);
      if (this.tracking) this.closedAdded.add(top.id);
    }
    const horizon = lateness + this.config.closedMemoryMs;
    for (const [id, last] of this.closedRecently) {
      if (watermark - last <= horizon) break;
      this.forgetClosed(id);
      this.closedPruned++;
    }
  }

  /** Forgets a remembered closed id; whether it was remembered. */
  private forgetClosed(id: string): boolean {
    if (!this.closedRecently.delete(id)) return false;
    if (this.tracking && !this.closedAdded.delete(id)) this.closedDropped.push(id);
    return true;
  }
}

function parseEntry(value: unknown, field: string, config: RulesConfig): Entry {
  const o = expectObject(value, field);
  const state = PageViewState.restore(o['state'], config);
  const reported = parseReported(o['reported'], `${field}.reported`);
  const impressions =
    o['reported_impressions'] === undefined
      ? undefined
      : parseReported(o['reported_impressions'], `${field}.reported_impressions`);
  if (state.eventCount === 0)
    throw new SnapshotError(`${field}.state.events`, 'an open page view has at least one event');
  state.restoreReported(reported, `${field}.reported`, impressions, `${field}.reported_impressions`);
  return newEntry(state);
}

function parseWatermark(value: unknown, field: string): number {
  return value === null ? Number.NaN : expectInteger(value, field);
}

function parseClosedPair(value: unknown, field: string): [string, number] {
  const pair = expectArray(value, field);
  return [expectString(pair[0], `${field}[0]`), expectInteger(pair[1], `${field}[1]`)];
}

/** The entry's snapshot as JSON text, kept until its state changes. */
function textOf(e: Entry): string {
  const revision = e.state.snapshotRevision;
  if (e.text === undefined || e.textRevision !== revision) {
    e.text = JSON.stringify(entrySnapshot(e));
    e.textRevision = revision;
  }
  return e.text;
}

function parseReported(value: unknown, field: string): ReportedImpression[] {
  return expectArray(value, field).map((item, i): ReportedImpression => {
    const f = `${field}[${i}]`;
    const t = expectArray(item, f);
    const meta = parseMeta({ ad_id: t[1], campaign_id: t[2], media: t[3], width: t[4], height: t[5] }, f);
    const minutes = expectArray(t[8], `${f}[8]`).map((m, j) => expectInteger(m, `${f}[8][${j}]`));
    const first = expectInteger(t[6], `${f}[6]`);
    const last = expectInteger(t[7], `${f}[7]`);
    return [
      expectString(t[0], `${f}[0]`),
      meta.ad_id,
      meta.campaign_id,
      meta.media,
      meta.width,
      meta.height,
      first,
      last,
      minutes,
    ];
  });
}

function entrySnapshot(e: Entry): PageViewEntrySnapshot {
  const { reported, impressions } = e.state.reportedState();
  return impressions === undefined
    ? { state: e.state.snapshot(), reported }
    : { state: e.state.snapshot(), reported, reported_impressions: impressions };
}
