/**
 * The processor's per-event work on the partitions it owns: read each record, apply it to the
 * partition's exposure core, and on request hand over the changed results as encoded rows, or a
 * snapshot. It runs in the consumer's thread or in a worker thread (see partition-engine.ts);
 * either way its requests are served strictly in the order they were made, which is what makes
 * a snapshot or a write correspond exactly to the offsets applied before it was requested.
 */
import { constants } from 'node:buffer';
import {
  DEFAULT_RULES_CONFIG,
  EVENT_OUTCOMES,
  PartitionExposure,
  type EventOutcome,
  type RulesConfig,
} from '@dwell/exposure';
import { decodePageEvent, PageEventReader, type PageEvent } from '@dwell/protocol';
import { RowsEncoder, type EncodedRows } from '@dwell/warehouse';
import { RowsSink, WriteTrust } from './rows.js';

/** A record of a batch that is not billed as it is: its dead letter is produced by the consumer. */
export interface Rejection {
  /** Position in the batch. */
  readonly index: number;
  readonly outcome: Exclude<EventOutcome, 'accepted' | 'duplicate'> | 'undecodable';
  /** Why an undecodable record could not be read. */
  readonly error?: string;
  /** What the dead letter says about the event, when it could be read. */
  readonly event?: Pick<PageEvent, 'site_id' | 'user_id'> & {
    readonly page_view_id: string;
    readonly seq: number;
  };
}

export interface AppliedBatch {
  /** Events by outcome, indexed like EVENT_OUTCOMES. */
  readonly counts: number[];
  readonly rejections: Rejection[];
}

/**
 * What a write asks of a partition: its rows as of `version` (the partition's last offset), and
 * whether they include the impression rows held back so far (false: only the minute rows of the
 * page views that changed, whose impression rows are then held back; see
 * PartitionExposure.writeChanges). Without the flag: both.
 */
export type TakeRequest = readonly [partition: number, version: number, impressions?: boolean];

/** What changed since the last take, for the partitions asked, in the order asked. */
export interface TakenResults {
  readonly impressions: EncodedRows;
  readonly minutes: EncodedRows;
  readonly partitions: ReadonlyArray<{
    readonly partition: number;
    /** Records applied since the last take (empty ones included). */
    readonly events: number;
    readonly rejected: number;
    /** Oldest recv_ms among those events: how stale ClickHouse was until this write. */
    readonly oldestRecvMs: number | null;
    readonly pageViews: number;
    /** Open page views whose impression rows are held back after this take. */
    readonly impressionsHeld: number;
  }>;
}

/** A partition's state as stored: a full snapshot and the deltas on it, in order. */
export interface StoredState {
  readonly snapshot: string;
  readonly deltas: readonly string[];
}

/** The longest string V8 makes, UTF-16 units (about 536 million). */
const MAX_STRING_LENGTH = constants.MAX_STRING_LENGTH;

/** A partition's snapshot as taken: its JSON text still in pieces (see PartitionExposure.snapshotPieces). */
export interface SnapshotTaken {
  /** `delta`: what changed since the partition's previous snapshot (see PartitionExposure.deltaText). */
  readonly kind: 'full' | 'delta';
  readonly pieces: readonly string[];
  /** The text's length, UTF-16 units. */
  readonly chars: number;
  readonly pageViews: number;
  readonly rulesVersion: number;
  readonly rulesFingerprint: string;
  /** How long taking it held up the partition's thread, ms. */
  readonly takeMs: number;
}

/** A partition's snapshot, its JSON text as UTF-8. */
export interface SnapshotBytes extends Pick<SnapshotTaken, 'kind' | 'pageViews' | 'rulesVersion' | 'rulesFingerprint'> {
  /**
   * The text, in a buffer no other snapshot uses while this one is held: its own, or one a worker
   * thread lends (shared with it, so it passes between threads without a copy).
   */
  readonly bytes: Uint8Array;
  /** How long taking and encoding it took its thread, ms. */
  readonly serializeMs: number;
  /**
   * The id of the worker thread's buffer `bytes` is in: lent until it is given back with
   * PartitionEngine.release, once the snapshot is stored. Absent: the buffer is the snapshot's own.
   */
  readonly lent?: number;
}

/** Gives an encoder a buffer of at least `bytes`. */
export type SnapshotAllocator = (bytes: number) => Buffer;

/** A buffer of its own for each snapshot. */
const ownBuffer: SnapshotAllocator = (bytes) => Buffer.allocUnsafeSlow(bytes);

/**
 * Encodes a snapshot's pieces as UTF-8 into one buffer, a slice at a time: a full snapshot can be
 * hundreds of MB, and its thread serves other partitions' events between the slices.
 */
export class SnapshotEncoder {
  private buf: Buffer;
  private at = 0;
  private next = 0;
  private spentMs = 0;
  private readonly snapshot: SnapshotTaken;
  private readonly allocate: SnapshotAllocator;

  /** `allocate`: where the bytes go (and where they move to if the first buffer is too small). */
  constructor(snapshot: SnapshotTaken, allocate: SnapshotAllocator = ownBuffer) {
    this.snapshot = snapshot;
    this.allocate = allocate;
    // JSON of ids and numbers is ASCII mostly: a byte per unit, and the buffer grows if that is short.
    this.buf = allocate(Math.max(64, snapshot.chars));
  }

  /** Encodes pieces while `goOn()` says so (asked every few dozen pieces); true once all are. */
  step(goOn: () => boolean = () => true): boolean {
    const started = performance.now();
    const { pieces } = this.snapshot;
    for (let n = 0; this.next < pieces.length; n++) {
      if (n > 0 && (n & 63) === 0 && !goOn()) break;
      const piece = pieces[this.next++] as string;
      // At most 3 bytes per UTF-16 unit; the exact length only where that may not fit.
      if (this.buf.length - this.at < piece.length * 3) {
        const needed = this.at + Buffer.byteLength(piece, 'utf8');
        if (needed > this.buf.length) this.grow(needed);
      }
      this.at += this.buf.write(piece, this.at, 'utf8');
    }
    this.spentMs += performance.now() - started;
    return this.next === pieces.length;
  }

  /** The snapshot once {@link step} said it is encoded. */
  finish(): SnapshotBytes {
    if (this.next !== this.snapshot.pieces.length) throw new Error('the snapshot is not encoded yet');
    const { kind, pageViews, rulesVersion, rulesFingerprint, takeMs } = this.snapshot;
    return {
      kind,
      bytes: new Uint8Array(this.buf.buffer, this.buf.byteOffset, this.at),
      pageViews,
      rulesVersion,
      rulesFingerprint,
      serializeMs: takeMs + this.spentMs,
    };
  }

  private grow(needed: number): void {
    const bigger = this.allocate(Math.max(needed, Math.ceil(this.buf.length * 1.5)));
    this.buf.copy(bigger, 0, 0, this.at);
    this.buf = bigger;
  }
}

/**
 * The buffers a worker thread encodes snapshots into, shared with the consumer thread, and kept
 * for the next snapshot once the consumer thread has stored one and gives its buffer back. A
 * buffer of its own for every snapshot (hundreds of MB for a partition held for minutes) grew the
 * thread's external memory by that much each time, and V8 answered each with a collection of
 * the thread's whole heap: a second or so of the thread's time, and its events waited meanwhile.
 * One spare buffer is kept, the largest given back.
 */
export class SnapshotBuffers {
  private spare: SharedArrayBuffer | undefined;
  private readonly lent = new Map<number, SharedArrayBuffer>();
  private nextId = 1;
  /** Buffers made so far (not taken from the spare), for tests and benchmarks. */
  made = 0;

  /** How much larger than asked a new buffer is made: snapshots grow with the state they hold. */
  static readonly HEADROOM = 1.25;

  /** Room for `bytes`: the spare buffer if it is large enough (it stops being spare), else a new one. */
  readonly take: SnapshotAllocator = (bytes) => {
    const spare = this.spare;
    this.spare = undefined;
    if (spare !== undefined && spare.byteLength >= bytes) return Buffer.from(spare);
    this.made++;
    return Buffer.from(new SharedArrayBuffer(Math.ceil(bytes * SnapshotBuffers.HEADROOM)));
  };

  /** Records the buffer of an encoded snapshot as lent out; returns the id to give it back by. */
  lend(buffer: SharedArrayBuffer): number {
    const id = this.nextId++;
    this.lent.set(id, buffer);
    return id;
  }

  /**
   * A lent buffer given back, its snapshot stored and no longer read: kept as the spare if it is
   * larger than the spare there is. An id not lent (or given back already) changes nothing.
   */
  giveBack(id: number): void {
    const buffer = this.lent.get(id);
    if (buffer === undefined) return;
    this.lent.delete(id);
    if (this.spare === undefined || buffer.byteLength > this.spare.byteLength) this.spare = buffer;
  }
}

/**
 * How long a page view must have taken no event, in the partition's event time, before its
 * snapshot text is made ahead of the next snapshot: SDKs send at least one event a second while a
 * page is open, and impression rows are written within PROCESSOR_IMPRESSION_INTERVAL_MS (2 s),
 * so one quiet for 5 s is most likely done until it closes.
 */
const PREPARE_IDLE_MS = 5_000;

/** How often, and for how long at most, a partition's thread makes snapshot texts ahead, ms. */
export const PREPARE_EVERY_MS = 50;
export const PREPARE_BUDGET_MS = 5;

interface Held {
  readonly exposure: PartitionExposure;
  /** Whether writes may leave out the rows that did not change since this processor last wrote them. */
  readonly trust: WriteTrust;
  events: number;
  rejected: number;
  oldestRecvMs: number;
}

export class PartitionWork {
  private readonly rules: RulesConfig;
  private readonly held = new Map<number, Held>();
  private readonly reader = new PageEventReader();

  constructor(rules: RulesConfig = DEFAULT_RULES_CONFIG) {
    this.rules = rules;
  }

  /**
   * Starts a partition from a stored state (JSON texts) or empty; returns its page views.
   * `trustFrom`: the last offset an earlier owner of the partition may have written rows for (the
   * log end when this one started), below which every write carries complete rows.
   */
  restore(partition: number, stored: StoredState | null, trustFrom: number): number {
    let exposure: PartitionExposure;
    if (stored === null) {
      exposure = new PartitionExposure(this.rules);
      // The empty state as the base of what follows, so that texts are made ahead (prepare)
      // from the start, for the first snapshot too.
      exposure.snapshotText();
    } else {
      const deltas = stored.deltas.map((delta) => JSON.parse(delta) as unknown);
      exposure = PartitionExposure.restore(JSON.parse(stored.snapshot), this.rules, deltas);
    }
    this.held.set(partition, {
      exposure,
      trust: new WriteTrust(trustFrom),
      events: 0,
      rejected: 0,
      oldestRecvMs: Number.NaN,
    });
    return exposure.pageViewsInMemory;
  }

  drop(partition: number): void {
    this.held.delete(partition);
  }

  /** Applies a partition's next records, in log order (null: a record without a value). */
  apply(partition: number, values: ReadonlyArray<Uint8Array | null>): AppliedBatch {
    const held = this.held.get(partition);
    if (held === undefined) throw new Error(`partition ${partition} is not restored`);
    const { exposure } = held;
    const { reader } = this;
    const counts = new Array<number>(EVENT_OUTCOMES.length).fill(0);
    const rejections: Rejection[] = [];
    held.events += values.length;
    for (let index = 0; index < values.length; index++) {
      const value = values[index];
      if (value === null || value === undefined) continue;
      // Records of the current schema take the one-pass reader; anything else (older versions,
      // damaged bytes) the general decoder, which also says what is wrong.
      let event = reader.read(value);
      if (event === undefined) {
        try {
          event = decodePageEvent(value);
        } catch (error) {
          rejections.push({ index, outcome: 'undecodable', error: String(error) });
          continue;
        }
      }
      if (Number.isNaN(held.oldestRecvMs)) held.oldestRecvMs = event.recv_ms;
      const outcome = exposure.apply(event);
      const at = outcome === 'accepted' ? 0 : EVENT_OUTCOMES.indexOf(outcome);
      counts[at] = (counts[at] ?? 0) + 1;
      if (outcome === 'accepted' || outcome === 'duplicate') continue;
      const { page_view_id, seq } = event.event;
      rejections.push({
        index,
        outcome,
        event: { page_view_id, seq, site_id: event.site_id, user_id: event.user_id },
      });
    }
    held.rejected += rejections.length;
    return { counts, rejections };
  }

  /**
   * Changed results of the given partitions as rows of `version` (the partition's last offset):
   * the rows whose values differ from what was last written, and every row of a closed page view;
   * the impression rows of open page views only where the request says so (TakeRequest).
   */
  take(versions: ReadonlyArray<TakeRequest>): TakenResults {
    const impressions = new RowsEncoder();
    const minutes = new RowsEncoder();
    const sink = new RowsSink(impressions, minutes);
    const partitions: Array<TakenResults['partitions'][number]> = [];
    for (const [partition, version, withImpressions = true] of versions) {
      const held = this.held.get(partition);
      if (held === undefined) throw new Error(`partition ${partition} is not restored`);
      sink.version = version;
      // Closed before changed: an id that closed and opened again must land in that order.
      held.exposure.writeChanges(sink, held.trust.begin(version), withImpressions);
      partitions.push({
        partition,
        events: held.events,
        rejected: held.rejected,
        oldestRecvMs: Number.isNaN(held.oldestRecvMs) ? null : held.oldestRecvMs,
        pageViews: held.exposure.pageViewsInMemory,
        impressionsHeld: held.exposure.impressionsDue,
      });
      held.events = 0;
      held.rejected = 0;
      held.oldestRecvMs = Number.NaN;
    }
    return { impressions: impressions.finish(), minutes: minutes.finish(), partitions };
  }

  /**
   * Makes, for at most `budgetMs`, the snapshot texts of page views that changed but look done
   * (PartitionExposure.prepareTexts), so that the next snapshot holds up this thread for less.
   * For when the thread would otherwise wait; changes no result. Returns the texts made.
   */
  prepare(budgetMs: number): number {
    const deadline = performance.now() + budgetMs;
    const goOn = (): boolean => performance.now() < deadline;
    let made = 0;
    for (const { exposure } of this.held.values()) {
      if (!goOn()) break;
      made += exposure.prepareTexts(PREPARE_IDLE_MS, goOn);
    }
    return made;
  }

  /**
   * Calls {@link prepare} every PREPARE_EVERY_MS for at most PREPARE_BUDGET_MS, between the
   * requests of the thread this work runs in, until the timer is cleared; the timer does not keep
   * the thread alive.
   */
  prepareWhileIdle(): NodeJS.Timeout {
    return setInterval(() => this.prepare(PREPARE_BUDGET_MS), PREPARE_EVERY_MS).unref();
  }

  /**
   * The partition's state as JSON text: with `delta`, what changed since its previous snapshot or
   * delta (or restore), when there was one; otherwise, or without one, all of it. Either way the
   * state now is the base of the next delta.
   */
  snapshot(partition: number, delta = false): SnapshotBytes {
    const encoder = new SnapshotEncoder(this.takeSnapshot(partition, delta));
    encoder.step();
    return encoder.finish();
  }

  /**
   * {@link snapshot} as taken, its text still in pieces: this holds up the partition's thread
   * only for the page views whose texts are not kept (see PartitionExposure.snapshotText), and a
   * {@link SnapshotEncoder} makes the bytes.
   */
  takeSnapshot(partition: number, delta = false): SnapshotTaken {
    const held = this.held.get(partition);
    if (held === undefined) throw new Error(`partition ${partition} is not restored`);
    const started = performance.now();
    const { exposure } = held;
    const pageViews = exposure.pageViewsInMemory;
    const tooLarge = (reason: string): Error =>
      new Error(
        `partition ${partition} holds too much to snapshot as one text (${pageViews} page views: ${reason}); ` +
          'give the events topic more partitions, so that each holds fewer page views',
      );
    let pieces: string[] | undefined;
    let kind: SnapshotTaken['kind'] = 'delta';
    try {
      if (delta) pieces = exposure.deltaPieces();
      if (pieces === undefined) {
        kind = 'full';
        pieces = exposure.snapshotPieces();
      }
    } catch (error) {
      if (!(error instanceof RangeError)) throw error;
      throw tooLarge(error.message);
    }
    let chars = 0;
    for (const piece of pieces) chars += piece.length;
    // A restore reads the text back as one string.
    if (chars > MAX_STRING_LENGTH) throw tooLarge(`${chars} characters, more than the ${MAX_STRING_LENGTH} of the longest string`);
    return {
      kind,
      pieces,
      chars,
      pageViews,
      rulesVersion: exposure.rulesVersion,
      rulesFingerprint: exposure.rulesFingerprint,
      takeMs: performance.now() - started,
    };
  }
}
