/**
 * The compact form a page view keeps of its events: what the rules need (seq, monotonic time,
 * server time, each impression's verdict) and a content hash for duplicate detection, as plain
 * numbers in two arrays. The decoded event is not retained and storing one allocates no object,
 * so a partition holding millions of events stays small and cheap for the garbage collector.
 */
import type { ImpressionState, Media, PageEvent } from '@dwell/protocol';
import { ContentHasher, hashString, mixEventHead, mixImpression } from './content-hash.js';
import { impressionVerdict, pageAllowsViewing, reasonMask } from './qualification.js';
import type { RulesConfig } from './rules-config.js';

const STRIDE = 5;
const TWO_20 = 1_048_576;
const TWO_26 = 67_108_864;

/**
 * A page view's stored events in seq order, `STRIDE` numbers each: seq, `t_mono_ms`, the earliest
 * `recv_ms` among its copies, the content hash, and where its entries sit in the pool (start × 2^20 + count). An entry is
 * one number per listed impression: impression index × 2^26 + meta index × 4 + verdict bits (so at
 * most 2^27 impressions and 2^24 declared metas per page view). The pool is append-only: an event
 * inserted out of order or replaced only appends.
 */
export class EventLog {
  private readonly records: number[] = [];
  readonly pool: number[] = [];

  get length(): number {
    return this.records.length / STRIDE;
  }

  seq(i: number): number {
    return this.records[i * STRIDE] ?? 0;
  }

  t(i: number): number {
    return this.records[i * STRIDE + 1] ?? 0;
  }

  recv(i: number): number {
    return this.records[i * STRIDE + 2] ?? 0;
  }

  hash(i: number): number {
    return this.records[i * STRIDE + 3] ?? 0;
  }

  /** Pool index of event `i`'s first entry. */
  entriesStart(i: number): number {
    return Math.floor((this.records[i * STRIDE + 4] ?? 0) / TWO_20);
  }

  entriesEnd(i: number): number {
    const packed = this.records[i * STRIDE + 4] ?? 0;
    return Math.floor(packed / TWO_20) + (packed % TWO_20);
  }

  /** Index of the first event with a seq ≥ `seq`. */
  lowerBound(seq: number): number {
    let lo = 0;
    let hi = this.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.seq(mid) < seq) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** Stores an event at position `i`, its entries just appended to the pool from `at` on. */
  insert(i: number, seq: number, t: number, recv: number, hash: number, at: number): void {
    const where = at * TWO_20 + (this.pool.length - at);
    if (i === this.length) this.records.push(seq, t, recv, hash, where);
    else this.records.splice(i * STRIDE, 0, seq, t, recv, hash, where);
  }

  /** Replaces event `i`'s content by entries just appended to the pool from `at` on. */
  replace(i: number, t: number, hash: number, at: number): void {
    this.records[i * STRIDE + 1] = t;
    this.records[i * STRIDE + 3] = hash;
    this.records[i * STRIDE + 4] = at * TWO_20 + (this.pool.length - at);
  }

  setRecv(i: number, recv: number): void {
    this.records[i * STRIDE + 2] = recv;
  }
}

/** Entry fields. */
export const entryImpression = (entry: number): number => Math.floor(entry / TWO_26);
export const entryMeta = (entry: number): number => Math.floor((entry % TWO_26) / 4);
export const entryVerdict = (entry: number): number => entry % 4;
export const packEntry = (impression: number, meta: number, verdict: number): number => impression * TWO_26 + meta * 4 + verdict;

/** The identity fields of an impression as one event declares them. */
export interface ImpressionMeta {
  readonly ad_id: string;
  readonly campaign_id: string;
  readonly width: number;
  readonly height: number;
  readonly media: Media;
}

interface InternedMeta extends ImpressionMeta {
  readonly adHash: number;
  readonly campaignHash: number;
}

interface RegisteredImpression {
  readonly id: string;
  readonly idHash: number;
  /** The meta it declared last time (it rarely changes) and that meta's index. */
  meta: InternedMeta | undefined;
  metaIndex: number;
  /** Encoding round that last listed it, to count an impression listed twice once. */
  mark: number;
}

const hasher = new ContentHasher();
/** Up to this many impressions a linear scan beats a Map, and costs no Map per page view. */
const SCAN_LIMIT = 8;

/** Interns a page view's impression ids and declared metas so stored events refer to them by index. */
export class ImpressionRegistry {
  readonly impressions: RegisteredImpression[] = [];
  readonly metas: InternedMeta[] = [];
  private byId: Map<string, number> | undefined;
  private round = 0;

  /** Rebuilds a registry from snapshot tables, preserving indices. */
  static restore(ids: readonly string[], metas: readonly ImpressionMeta[]): ImpressionRegistry {
    const registry = new ImpressionRegistry();
    for (const id of ids) registry.indexOf(id, -1);
    for (const meta of metas) registry.metas.push(intern(meta));
    return registry;
  }

  id(index: number): string | undefined {
    return this.impressions[index]?.id;
  }

  /**
   * Judges each impression of an event once, appends its entries to `pool`, and returns the
   * event's content hash (equal to `eventContentHash(pageEvent.event)`).
   */
  encode(pageEvent: PageEvent, config: RulesConfig, pool: number[]): number {
    const event = pageEvent.event;
    const h = hasher.reset();
    mixEventHead(h, event);
    const allows = pageAllowsViewing(event.page, config);
    const round = ++this.round;
    const listed = event.impressions;
    for (let position = 0; position < listed.length; position++) {
      const imp = listed[position] as ImpressionState;
      const index = this.indexOf(imp.impression_id, position);
      const registered = this.impressions[index] as RegisteredImpression;
      let meta = registered.meta;
      if (meta === undefined || !sameMeta(meta, imp)) meta = this.remeta(registered, imp);
      const reasons = reasonMask(imp.reasons);
      mixImpression(h, registered.idHash, meta.adHash, meta.campaignHash, imp, reasons);
      // An impression listed twice in one event counts once, as first listed.
      if (registered.mark === round) continue;
      registered.mark = round;
      pool.push(packEntry(index, registered.metaIndex, impressionVerdict(imp, reasons, allows, config)));
    }
    return h.digest();
  }

  private indexOf(id: string, position: number): number {
    // Pages list their impressions in a stable order, so the registry order usually matches.
    if (position >= 0 && this.impressions[position]?.id === id) return position;
    let index = this.byId === undefined ? this.impressions.findIndex((r) => r.id === id) : (this.byId.get(id) ?? -1);
    if (index < 0) {
      index = this.impressions.length;
      this.impressions.push({ id, idHash: hashString(id), meta: undefined, metaIndex: -1, mark: 0 });
      if (this.byId !== undefined) this.byId.set(id, index);
      else if (this.impressions.length > SCAN_LIMIT) this.byId = new Map(this.impressions.map((r, i) => [r.id, i]));
    }
    return index;
  }

  private remeta(registered: RegisteredImpression, imp: ImpressionState): InternedMeta {
    let index = this.metas.findIndex((m) => sameMeta(m, imp));
    if (index < 0) {
      index = this.metas.length;
      this.metas.push(intern(imp));
    }
    const meta = this.metas[index] as InternedMeta;
    registered.meta = meta;
    registered.metaIndex = index;
    return meta;
  }
}

function sameMeta(meta: ImpressionMeta, imp: ImpressionState): boolean {
  return meta.ad_id === imp.ad_id && meta.campaign_id === imp.campaign_id && meta.width === imp.width && meta.height === imp.height && meta.media === imp.media;
}

function intern(meta: ImpressionMeta): InternedMeta {
  const { ad_id, campaign_id, width, height, media } = meta;
  return { ad_id, campaign_id, width, height, media, adHash: hashString(ad_id), campaignHash: hashString(campaign_id) };
}
