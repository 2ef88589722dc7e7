/**
 * Rules 3–5 and 7 for one impression, accumulated segment by segment in seq order, and the one
 * object a page view keeps per impression: its id, the meta it declared last (to recognise the
 * next event's quickly), and its running results. One object rather than several, because every
 * event visits it and each separate object is one more cache miss.
 */
import type { Media } from '@dwell/protocol';
import { MINUTE_MS } from './results.js';

/**
 * Rule 3: the ms credited for the segment from the event at (`fromSeq`, `fromT`) to the next
 * stored event at (`toSeq`, `toT`): Δ = `toT − fromT` when the impression qualifies at the first,
 * the seqs are consecutive and `0 < Δ ≤ maxGapMs`; otherwise 0.
 */
export function creditSegment(
  fromSeq: number,
  fromT: number,
  toSeq: number,
  toT: number,
  qualifiesAtFrom: boolean,
  maxGapMs: number,
): number {
  const delta = toT - fromT;
  return qualifiesAtFrom && toSeq === fromSeq + 1 && delta > 0 && delta <= maxGapMs ? delta : 0;
}

/** Splits the server-time interval `[startMs, startMs + durationMs)` exactly at minute boundaries. */
export function splitIntoMinutes(startMs: number, durationMs: number): [minuteStartMs: number, ms: number][] {
  const track = new ImpressionTrack('', 0);
  track.credit(startMs, durationMs);
  return track.minuteRows();
}

/** The identity fields of an impression as one event declares them. */
export interface ImpressionMeta {
  readonly ad_id: string;
  readonly campaign_id: string;
  readonly width: number;
  readonly height: number;
  readonly media: Media;
}

/** One impression of a page view. Internal to PageViewState. */
export class ImpressionTrack {
  readonly id: string;
  readonly idHash: number;
  /** Encoding round that last listed it, to count an impression listed twice in one event once. */
  mark = 0;
  // The meta it declared last time, inline: consecutive events almost always declare the same.
  metaIndex = -1;
  adId = '';
  campaignId = '';
  width = 0;
  height = 0;
  media = '';
  adHash = 0;
  campaignHash = 0;

  // Derived from the stored events (reset before a recompute).
  /** Listed by some stored event. */
  seen = false;
  /** Meta index at the first appearance by seq: the impression's identity fields and TMIN. */
  firstMetaIndex = -1;
  /** Seq of the first event that lists it, and its position among that event's entries. */
  firstSeq = 0;
  firstPosition = 0;
  /** `t_mono` of the first and last events that list it. */
  firstT = 0;
  lastT = 0;
  measurable = false;
  /** Seq of the last event at which it qualified; -1 before any. */
  qualifiedAtSeq = -1;
  creditedMs = 0;
  currentRunMs = 0;
  longestRunMs = 0;
  /** The minute credited last and its ms: time moves forward, so most credit lands here. */
  private minute = Number.NaN;
  private minuteMs = 0;
  /** Earlier minutes as `[minute start, ms, …]`; most impressions never need it. */
  private earlier: number[] | null = null;

  // What the page view's last reports said of it (PageViewState.report): its impression row and
  // its minute rows are reported apart, so each part has its own. Not derived from the events, so
  // a recompute leaves it alone.
  /** Listed in the report being written. */
  listedIn = 0;
  /** Report round whose impression rows listed it last; it is in the last one when that is the page view's last impression round. */
  reportedIn = 0;
  /** The identity fields the last impression row gave it. */
  reportedMeta: ImpressionMeta | undefined = undefined;
  reportedFirstServerMs = 0;
  reportedLastServerMs = 0;
  /** Its other values in the last report; NaN when unknown (restored), which compares unequal. */
  reportedCreditedMs = Number.NaN;
  reportedLongestRunMs = Number.NaN;
  reportedViewableMs = Number.NaN;
  /** measurable | viewable << 1 | billable << 2, or -1 when unknown. */
  reportedBits = -1;
  /** Report round whose minute rows listed it last (see `reportedIn`). */
  minutesReportedIn = 0;
  /** The identity fields its last minute rows gave it. */
  minutesReportedMeta: ImpressionMeta | undefined = undefined;
  /** Billed minutes of the last minute rows as `[minute start, ms, …]`, ascending. */
  reportedMinutes: number[] | null = null;

  constructor(id: string, idHash: number) {
    this.id = id;
    this.idHash = idHash;
  }

  reset(): void {
    this.seen = false;
    this.firstMetaIndex = -1;
    this.firstSeq = this.firstPosition = this.firstT = this.lastT = 0;
    this.measurable = false;
    this.qualifiedAtSeq = -1;
    this.creditedMs = this.currentRunMs = this.longestRunMs = 0;
    this.minute = Number.NaN;
    this.minuteMs = 0;
    this.earlier = null;
  }

  /** Its first listing: events before it do not concern it. */
  firstSeen(metaIndex: number, seq: number, position: number, t: number): void {
    this.seen = true;
    this.firstMetaIndex = metaIndex;
    this.firstSeq = seq;
    this.firstPosition = position;
    this.firstT = t;
  }

  /** Extends the current run by a credited segment starting at server time `startServerMs`. */
  credit(startServerMs: number, ms: number): void {
    this.creditedMs += ms;
    this.currentRunMs += ms;
    if (this.currentRunMs > this.longestRunMs) this.longestRunMs = this.currentRunMs;
    const end = startServerMs + ms;
    for (let at = startServerMs; at < end;) {
      const minute = Math.floor(at / MINUTE_MS) * MINUTE_MS;
      const stop = Math.min(end, minute + MINUTE_MS);
      this.addMinute(minute, stop - at);
      at = stop;
    }
  }

  /** An uncredited segment ends the current run. */
  breakRun(): void {
    this.currentRunMs = 0;
  }

  /** `[minute start, ms]` pairs in ascending minute order. */
  minuteRows(): [minuteStartMs: number, ms: number][] {
    const pairs = this.minutePairs([]);
    const rows: [number, number][] = [];
    for (let i = 0; i < pairs.length; i += 2) rows.push([pairs[i] ?? 0, pairs[i + 1] ?? 0]);
    return rows;
  }

  /** Its credited minutes into `out` (emptied first) as `[minute start, ms, …]`, ascending; returns `out`. */
  minutePairs(out: number[]): number[] {
    out.length = 0;
    const earlier = this.earlier;
    if (earlier !== null) for (let i = 0; i < earlier.length; i++) out.push(earlier[i] ?? 0);
    if (this.minuteMs > 0) out.push(this.minute, this.minuteMs);
    // Time moves forward, so the pairs are almost always in order already: insertion sort.
    for (let i = 2; i < out.length; i += 2) {
      const minute = out[i] ?? 0;
      const ms = out[i + 1] ?? 0;
      let j = i - 2;
      for (; j >= 0 && (out[j] ?? 0) > minute; j -= 2) {
        out[j + 2] = out[j] ?? 0;
        out[j + 3] = out[j + 1] ?? 0;
      }
      out[j + 2] = minute;
      out[j + 3] = ms;
    }
    return out;
  }

  /** The ms credited in the minute starting at `minute`; 0 when none. */
  msInMinute(minute: number): number {
    if (minute === this.minute) return this.minuteMs;
    const earlier = this.earlier;
    if (earlier !== null) for (let i = 0; i < earlier.length; i += 2) if (earlier[i] === minute) return earlier[i + 1] ?? 0;
    return 0;
  }

  private addMinute(minute: number, ms: number): void {
    if (minute === this.minute) {
      this.minuteMs += ms;
      return;
    }
    const earlier = (this.earlier ??= []);
    if (this.minuteMs > 0) earlier.push(this.minute, this.minuteMs);
    // A minute seen before (the clock stepped back) is taken out of the list and continued.
    let ms0 = 0;
    for (let i = earlier.length - 2; i >= 0; i -= 2) {
      if (earlier[i] === minute) {
        ms0 = earlier[i + 1] ?? 0;
        earlier.splice(i, 2);
        break;
      }
    }
    this.minute = minute;
    this.minuteMs = ms0 + ms;
  }
}
