/**
 * How often the processor snapshots a partition, and whether a snapshot is full or a delta.
 *
 * A full snapshot holds the partition's whole state: every page view still open, with its events.
 * A page view stays open until the watermark is ALLOWED_LATENESS (10 min) past its last event, so
 * under steady traffic a partition holds about eleven minutes of its events, and a full snapshot
 * stores that much whatever changed since the last one (at 10,000 events/s into a partition about
 * 490 MB; BENCHMARKS.md, bench/processor/snapshot-steady.mjs). A delta stores only the page views
 * changed, opened or closed since the snapshot before it (see {@link deltaAllowed}).
 * At a fixed interval the snapshots of busy partitions could still take more time than there is,
 * and the processor would fall behind for good. So a partition's interval stretches with what its
 * last snapshot cost: with P partitions snapshotted one after another, a snapshot that took T ms
 * is followed by the partition's next one no sooner than T × P × 100 / `maxPercent` ms, so that
 * snapshots take at most `maxPercent` of the time. The price is recovery: after a crash the new
 * owner processes again up to one (longer) interval of the log, in catch-up mode.
 */
export function snapshotIntervalMs(baseMs: number, lastCostMs: number, partitions: number, maxPercent: number): number {
  return Math.max(baseMs, Math.ceil((lastCostMs * Math.max(1, partitions) * 100) / maxPercent));
}

/**
 * Where a partition's snapshots stand: a full snapshot stored at offset `base`, then deltas, the
 * last stored at `last`. A restore reads all of them, so the deltas may add up to only so much of
 * the full one before the next snapshot is full again.
 */
export interface SnapshotChain {
  readonly base: number;
  readonly last: number;
  readonly baseBytes: number;
  readonly deltaBytes: number;
}

/**
 * Whether a partition's next snapshot may be a delta on its chain: the chain's last snapshot is
 * the partition's last one (`snapshotAt`), and its deltas add up to less than `maxDeltaPercent`
 * of its full snapshot. A delta costs what changed since the last snapshot; a full one, what is
 * held. Under steady traffic most of what is held is idle (closed page views waiting out the
 * lateness window), so deltas are a fraction of a full snapshot; at 200 percent a full one is
 * stored about every 2 × (full / delta) snapshots, and a restore reads at most three times a full one.
 */
export function deltaAllowed(chain: SnapshotChain | undefined, snapshotAt: number, maxDeltaPercent: number): boolean {
  return chain !== undefined && chain.last === snapshotAt && chain.deltaBytes * 100 < chain.baseBytes * maxDeltaPercent;
}
