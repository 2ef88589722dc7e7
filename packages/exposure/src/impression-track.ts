/** Rules 3–5 and 7 for one impression, accumulated segment by segment in seq order. */
import { MINUTE_MS } from './results.js';

/**
 * Rule 3: the ms credited for the segment from the event at (`fromSeq`, `fromT`) to the next
 * stored event at (`toSeq`, `toT`): Δ = `toT − fromT` when the impression qualifies at the first,
 * the seqs are consecutive and `0 < Δ ≤ maxGapMs`; otherwise 0.
 */
export function creditSegment(fromSeq: number, fromT: number, toSeq: number, toT: number, qualifiesAtFrom: boolean, maxGapMs: number): number {
  const delta = toT - fromT;
  return qualifiesAtFrom && toSeq === fromSeq + 1 && delta > 0 && delta <= maxGapMs ? delta : 0;
}

/** Splits the server-time interval `[startMs, startMs + durationMs)` exactly at minute boundaries. */
export function splitIntoMinutes(startMs: number, durationMs: number): [minuteStartMs: number, ms: number][] {
  const track = new ImpressionTrack(0, 0, 0, 0, 0);
  track.credit(startMs, durationMs);
  return track.minuteRows();
}

/** The running state of one impression within its page view. Internal to PageViewState. */
export class ImpressionTrack {
  /** Registry index of the impression. */
  readonly index: number;
  /** Meta index of the first appearance: the impression's identity fields. */
  readonly metaIndex: number;
  /** Seq of the first event that lists the impression, and its position among that event's entries. */
  readonly firstSeq: number;
  readonly firstPosition: number;
  /** `t_mono` of the first and last events that list the impression. */
  readonly firstT: number;
  lastT: number;
  measurable = false;
  /** Seq of the last event at which it qualified; -1 before any. */
  qualifiedAtSeq = -1;
  creditedMs = 0;
  currentRunMs = 0;
  longestRunMs = 0;
  /** The minute credited last and its ms: time moves forward, so most credit lands here. */
  private minute = Number.NaN;
  private minuteMs = 0;
  /** Earlier minutes as `[minute start, ms, …]`. */
  private readonly earlier: number[] = [];

  constructor(index: number, metaIndex: number, firstSeq: number, firstPosition: number, firstT: number) {
    this.index = index;
    this.metaIndex = metaIndex;
    this.firstSeq = firstSeq;
    this.firstPosition = firstPosition;
    this.firstT = firstT;
    this.lastT = firstT;
  }

  /** Extends the current run by a credited segment starting at server time `startServerMs`. */
  credit(startServerMs: number, ms: number): void {
    this.creditedMs += ms;
    this.currentRunMs += ms;
    if (this.currentRunMs > this.longestRunMs) this.longestRunMs = this.currentRunMs;
    const end = startServerMs + ms;
    for (let at = startServerMs; at < end; ) {
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
    const rows: [number, number][] = [];
    for (let i = 0; i < this.earlier.length; i += 2) rows.push([this.earlier[i] ?? 0, this.earlier[i + 1] ?? 0]);
    if (this.minuteMs > 0) rows.push([this.minute, this.minuteMs]);
    return rows.sort((a, b) => a[0] - b[0]);
  }

  private addMinute(minute: number, ms: number): void {
    if (minute === this.minute) {
      this.minuteMs += ms;
      return;
    }
    const earlier = this.earlier;
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
