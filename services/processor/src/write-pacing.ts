/**
 * How often the processor writes results while it is behind the log (and, at the end, which
 * writes carry the impression rows of open page views: firstImpressionTurn, nextImpressionTurn).
 *
 * A write holds one row per impression (and per billable minute) of every page view that changed
 * since the last write, whatever number of events changed it. Live, a page view sends about one
 * event a second, so a write every 500 ms costs about two rows per event, more than the work of
 * the event itself. Behind the log, writing as often keeps the backlog as costly per event as live
 * traffic: a processor that fell behind stays behind for as long as the overload lasts. Writing
 * every `lag / 2` instead gathers several events of each page view into one row, so a processor
 * far behind the log runs at close to its catch-up speed, and comes back to the live interval once
 * the backlog is gone; its results are at most half as stale again as the records it is applying.
 *
 * Pacing starts once the lag exceeds ten write intervals (5 s by default). A shorter lag is a
 * passing stall (a slow write, a snapshot, a collection) of a processor that keeps up, which a
 * longer interval would only add to.
 */
export const PACING_FROM_INTERVALS = 10;

/** What the processor knows of one partition's place in the log, as of its last batch. */
export interface PartitionLag {
  /** Records in the log after the last one taken. */
  readonly backlog: number;
  /** Kafka timestamp of the last record taken, ms; NaN when it carried none. */
  readonly lastTakenAtMs: number;
}

/**
 * How far behind the log the processor is, ms: for each partition with records still waiting, how
 * long ago the last record it took was produced; the largest of those, or 0 when every partition
 * is caught up (or its records carry no timestamp).
 */
export function lagMs(partitions: Iterable<PartitionLag>, nowMs: number): number {
  let lag = 0;
  for (const p of partitions) {
    if (p.backlog <= 0 || !Number.isFinite(p.lastTakenAtMs)) continue;
    lag = Math.max(lag, nowMs - p.lastTakenAtMs);
  }
  return lag;
}

/**
 * The interval before the next write: `baseMs` while the lag is at most `PACING_FROM_INTERVALS`
 * of it; beyond, half the lag, never above `maxMs` (nor below `baseMs`).
 */
export function writeIntervalMs(baseMs: number, maxMs: number, lag: number): number {
  if (lag <= PACING_FROM_INTERVALS * baseMs) return baseMs;
  return Math.max(baseMs, Math.min(maxMs, lag / 2));
}

/**
 * When partition `partition`'s first impression turn starts, for a processor that takes it over at
 * `now`: partition p a write interval after p − 1, wrapping around the impression interval, so
 * that the partitions' held-back impression rows (PROCESSOR_IMPRESSION_INTERVAL_MS) go out in
 * different writes instead of all in one.
 */
export function firstImpressionTurn(partition: number, flushIntervalMs: number, impressionIntervalMs: number, now: number): number {
  if (impressionIntervalMs <= 0) return now;
  return now - ((partition * flushIntervalMs) % impressionIntervalMs);
}

/**
 * The start of the next impression turn after a write with impression rows at `now` in the turn
 * that started at `turn`: whole intervals later, on the partition's own beat (however late the
 * write came), and always later than `turn`.
 */
export function nextImpressionTurn(turn: number, now: number, impressionIntervalMs: number): number {
  if (impressionIntervalMs <= 0) return now;
  return turn + Math.max(1, Math.floor((now - turn) / impressionIntervalMs)) * impressionIntervalMs;
}
