/**
 * A 53-bit fingerprint of an event's content. A page view keeps the fingerprint of each stored
 * event instead of the event itself, which is enough to tell an exact duplicate (ignored) from a
 * conflicting one (flagged), and to pick the same winner among conflicting copies in any arrival
 * order. Not cryptographic: a client that forges a collision only hides a conflict between two
 * events it wrote itself.
 */
import type { ClientEvent, ImpressionState } from '@dwell/protocol';
import { reasonMask } from './qualification.js';

const TWO_32 = 4294967296;
// Markers have the top bit set, which no small non-negative integer has.
const BIG_INTEGER = 0x8000_0001 | 0;
const NOT_AN_INTEGER = 0x8000_0002 | 0;

/** Two 32-bit MurmurHash3-style lanes over a stream of values. Reused, never shared across calls. */
export class ContentHasher {
  private h1 = 0;
  private h2 = 0;
  private count = 0;

  reset(): this {
    this.h1 = 0x3c6e_f372;
    this.h2 = 0x1b87_3593;
    this.count = 0;
    return this;
  }

  /** Mixes one 32-bit value. */
  int(value: number): void {
    let k1 = Math.imul(value, 0xcc9e_2d51);
    k1 = Math.imul((k1 << 15) | (k1 >>> 17), 0x1b87_3593);
    const h1 = this.h1 ^ k1;
    this.h1 = (Math.imul((h1 << 13) | (h1 >>> 19), 5) + 0xe654_6b64) | 0;
    let k2 = Math.imul(value, 0x85eb_ca6b);
    k2 = Math.imul((k2 << 17) | (k2 >>> 15), 0xc2b2_ae35);
    const h2 = this.h2 ^ k2;
    this.h2 = (Math.imul((h2 << 11) | (h2 >>> 21), 9) + 0x52dc_e729) | 0;
    this.count++;
  }

  /**
   * Mixes a number, prefix-free: a small non-negative integer is one value; any other safe
   * integer is a marker and two values; anything else is a marker and its text.
   */
  num(value: number): void {
    if (value >= 0 && value <= 0x7fff_ffff && (value | 0) === value) {
      this.int(value);
    } else if (Number.isSafeInteger(value)) {
      this.int(BIG_INTEGER);
      this.int(value >>> 0);
      this.int(Math.floor(value / TWO_32) | 0);
    } else {
      this.int(NOT_AN_INTEGER);
      this.str(String(value));
    }
  }

  /** Mixes a {@link hashString} value: always two values. */
  hash53(value: number): void {
    this.int(value >>> 0);
    this.int(Math.floor(value / TWO_32) | 0);
  }

  str(value: string): void {
    this.int(value.length);
    const n = value.length;
    for (let i = 0; i < n; i += 2)
      this.int(value.charCodeAt(i) | (i + 1 < n ? value.charCodeAt(i + 1) << 16 : 0));
  }

  digest(): number {
    const a = fmix(this.h1 ^ this.count);
    const b = fmix(this.h2 ^ Math.imul(this.count, 0x9e37_79b1));
    const h1 = fmix(a ^ Math.imul(b, 0x85eb_ca6b));
    const h2 = fmix(b ^ Math.imul(a, 0xc2b2_ae35));
    return (h2 & 0x1f_ffff) * TWO_32 + (h1 >>> 0);
  }
}

function fmix(value: number): number {
  let h = value;
  h = Math.imul(h ^ (h >>> 16), 0x85eb_ca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2_ae35);
  return h ^ (h >>> 16);
}

const hasher = new ContentHasher();

/** The 53-bit hash of a string. */
export function hashString(value: string): number {
  hasher.reset().str(value);
  return hasher.digest();
}

const KIND_CODES: Readonly<Record<string, number>> = { start: 1, render: 2, change: 3, tick: 4, end: 5 };
const MEDIA_CODES: Readonly<Record<string, number>> = { display: 1, video: 2 };

/** Mixes the event-level fields, in the order {@link eventContentHash} defines. */
export function mixEventHead(h: ContentHasher, event: ClientEvent): void {
  const page = event.page;
  const kind = KIND_CODES[event.kind] ?? 0;
  h.int(kind | (page.visible ? 8 : 0) | (page.focused ? 16 : 0) | (page.foreground ? 32 : 0));
  if (kind === 0) h.hash53(hashString(event.kind));
  h.num(event.t_mono_ms);
  h.num(event.t_wall_ms);
  h.int(event.impressions.length);
}

/** Mixes one impression; the string fields come in as their {@link hashString} values. */
export function mixImpression(
  h: ContentHasher,
  idHash: number,
  adHash: number,
  campaignHash: number,
  imp: ImpressionState,
  reasons: number,
): void {
  h.hash53(idHash);
  h.hash53(adHash);
  h.hash53(campaignHash);
  h.num(imp.width);
  h.num(imp.height);
  h.num(imp.visible_px);
  h.num(imp.total_px);
  // Reasons count as a set: the same reasons listed in another order are the same content.
  const media = MEDIA_CODES[imp.media] ?? 0;
  h.int(media | (imp.playing ? 4 : 0) | (reasons << 3));
  if (media === 0) h.hash53(hashString(imp.media));
}

/**
 * The content hash of a client event: every field of the event, the impressions in their listed
 * order, reasons as a set. Server stamps (`recv_ms`, gateway, transport) are not content: a
 * resend of the same event through another gateway is an exact duplicate.
 */
export function eventContentHash(event: ClientEvent): number {
  const h = new ContentHasher().reset();
  mixEventHead(h, event);
  for (const imp of event.impressions) {
    mixImpression(
      h,
      hashString(imp.impression_id),
      hashString(imp.ad_id),
      hashString(imp.campaign_id),
      imp,
      reasonMask(imp.reasons),
    );
  }
  return h.digest();
}
