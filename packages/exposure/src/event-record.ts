/**
 * The compact form a page view keeps of its events: what the rules need (seq, monotonic time,
 * server time, each impression's verdict) and a content hash for duplicate detection, as plain
 * numbers in two arrays. The decoded event is not retained and storing one allocates no object,
 * so a partition holding millions of events stays small and cheap for the garbage collector.
 * Also which events can be stored at all (isValidPageEvent).
 */
import type { ImpressionState, PageEvent } from '@dwell/protocol';
import { ImpressionTrack, type ImpressionMeta } from './impression-track.js';
import { ContentHasher, hashString, mixEventHead, mixImpression } from './content-hash.js';
import { impressionVerdict, pageAllowsViewing, reasonMask } from './qualification.js';
import type { RulesConfig } from './rules-config.js';

export type { ImpressionMeta };

const STRIDE = 5;
const TWO_20 = 1_048_576;
const TWO_26 = 67_108_864;

/**
 * A page view's stored events in seq order, `STRIDE` numbers each: seq, `t_mono_ms`, the earliest
 * `recv_ms` among its copies, the content hash, and where its entries sit in the pool (start ×
 * 2^20 + count). An entry is one number per listed impression: impression index × 2^26 + meta
 * index × 4 + verdict bits. The pool is append-only: an event inserted out of order or replaced
 * only appends. {@link fitsEntryLimits} keeps every packed number exact.
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

/**
 * Whether an event can be computed on at all: safe-integer `recv_ms`, `t_mono_ms`, `t_wall_ms`,
 * pixel counts and declared sizes, `seq ≥ 1`, a known media, fewer than 2^20 impressions.
 * Anything else is `invalid_event`.
 */
export function isValidPageEvent(pageEvent: PageEvent): boolean {
  const event = pageEvent.event;
  const whole = Number.isSafeInteger;
  if (
    !whole(pageEvent.recv_ms) ||
    !whole(event.seq) ||
    event.seq < 1 ||
    !whole(event.t_mono_ms) ||
    !whole(event.t_wall_ms)
  )
    return false;
  if (!fitsEntryLimits(0, 0, event.impressions.length)) return false;
  for (const imp of event.impressions) {
    if (!whole(imp.width) || !whole(imp.height) || !whole(imp.visible_px) || !whole(imp.total_px))
      return false;
    if (imp.media !== 'display' && imp.media !== 'video') return false;
  }
  return true;
}

/**
 * Whether a page view with `impressions` and `metas` registered can take an event listing
 * `listed` impressions without overflowing the packed numbers: at most 2^20 listed per event,
 * 2^27 impressions and 2^24 distinct metas per page view (far beyond any real page).
 */
export function fitsEntryLimits(impressions: number, metas: number, listed: number): boolean {
  return listed < TWO_20 && impressions + listed < 2 * TWO_26 && metas + listed < TWO_26 / 4;
}

/** Entry fields. */
export const entryImpression = (entry: number): number => Math.floor(entry / TWO_26);
export const entryMeta = (entry: number): number => Math.floor((entry % TWO_26) / 4);
export const entryVerdict = (entry: number): number => entry % 4;
export const packEntry = (impression: number, meta: number, verdict: number): number =>
  impression * TWO_26 + meta * 4 + verdict;

interface InternedMeta extends ImpressionMeta {
  readonly adHash: number;
  readonly campaignHash: number;
}

const hasher = new ContentHasher();
/** Up to this many impressions a linear scan beats a Map, and costs no Map per page view. */
const SCAN_LIMIT = 8;

/**
 * A page view's impressions (one ImpressionTrack each, indexed in order of registration) and the
 * distinct metas they declared, so stored events refer to both by index.
 */
export class ImpressionRegistry {
  readonly tracks: ImpressionTrack[] = [];
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
      const track = this.tracks[index] as ImpressionTrack;
      if (!sameMeta(track, imp)) this.remeta(track, imp);
      const reasons = reasonMask(imp.reasons);
      mixImpression(h, track.idHash, track.adHash, track.campaignHash, imp, reasons);
      // An impression listed twice in one event counts once, as first listed.
      if (track.mark === round) continue;
      track.mark = round;
      pool.push(packEntry(index, track.metaIndex, impressionVerdict(imp, reasons, allows, config)));
    }
    return h.digest();
  }

  private indexOf(id: string, position: number): number {
    // Pages list their impressions in a stable order, so the registry order usually matches.
    if (position >= 0 && this.tracks[position]?.id === id) return position;
    let index =
      this.byId === undefined ? this.tracks.findIndex((r) => r.id === id) : (this.byId.get(id) ?? -1);
    if (index < 0) {
      index = this.tracks.length;
      this.tracks.push(new ImpressionTrack(id, hashString(id)));
      if (this.byId !== undefined) this.byId.set(id, index);
      else if (this.tracks.length > SCAN_LIMIT) this.byId = new Map(this.tracks.map((r, i) => [r.id, i]));
    }
    return index;
  }

  /** Records the meta an impression declares now, interning it in the page view's table. */
  private remeta(track: ImpressionTrack, imp: ImpressionState): void {
    let index = this.metas.findIndex(
      (m) =>
        m.ad_id === imp.ad_id &&
        m.campaign_id === imp.campaign_id &&
        m.width === imp.width &&
        m.height === imp.height &&
        m.media === imp.media,
    );
    if (index < 0) {
      index = this.metas.length;
      this.metas.push(intern(imp));
    }
    const meta = this.metas[index] as InternedMeta;
    track.metaIndex = index;
    track.adId = meta.ad_id;
    track.campaignId = meta.campaign_id;
    track.width = meta.width;
    track.height = meta.height;
    track.media = meta.media;
    track.adHash = meta.adHash;
    track.campaignHash = meta.campaignHash;
  }
}

function sameMeta(track: ImpressionTrack, imp: ImpressionState): boolean {
  return (
    track.adId === imp.ad_id &&
    track.campaignId === imp.campaign_id &&
    track.width === imp.width &&
    track.height === imp.height &&
    track.media === imp.media
  );
}

function intern(meta: ImpressionMeta): InternedMeta {
  const { ad_id, campaign_id, width, height, media } = meta;
  return {
    ad_id,
    campaign_id,
    width,
    height,
    media,
    adHash: hashString(ad_id),
    campaignHash: hashString(campaign_id),
  };
}
