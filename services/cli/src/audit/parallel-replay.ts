/**
 * The replay spread over worker threads. Partitions are independent, so each worker owns a share
 * of them end to end: its own throwaway consumer reads them (KafkaJS decodes records on the
 * thread that fetches them), and its own PartitionReplays decode and recompute them in log order.
 * The main thread only merges the results, which are exactly ReplayEngine's in one thread (the
 * benchmark checks the checksums agree). Reading, Avro decoding and the exposure core are what a
 * replay spends its time on; this puts every core on them without copying records between threads.
 */
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import type { RulesConfig } from '@dwell/exposure';
import type { PartitionPlan } from './log-plan.js';
import type { AuditScope, PartitionSummary, ReplayCounts, ReplayedPageView } from './replay-engine.js';
import type { FromWorker, ReplayWorkerData } from './replay-worker.js';

export interface ReplayResult {
  readonly pageViews: ReplayedPageView[];
  readonly partitions: PartitionSummary[];
  readonly counts: ReplayCounts;
  /** Every page view id opened in the read, in scope or not. */
  readonly seen: ReadonlySet<string>;
}

export interface ParallelReplayOptions {
  readonly brokers: readonly string[];
  readonly clientId: string;
  readonly topic: string;
  readonly scope: AuditScope;
  /** Worker threads; at most one per partition. */
  readonly workers: number;
  readonly rules?: RulesConfig | undefined;
  readonly keepRefused?: boolean;
  /** Records applied so far, all workers together (every ~100 ms). */
  readonly onProgress?: (records: number) => void;
  readonly onWarning?: (message: string) => void;
}

/** Default workers: one per core, at most one per partition. */
export function defaultWorkers(partitions: number): number {
  return Math.max(1, Math.min(partitions, availableParallelism()));
}

/** Shares of the partitions, balanced by the records to read (largest first to the least loaded). */
export function assignPartitions(partitions: readonly PartitionPlan[], workers: number): PartitionPlan[][] {
  const shares = Array.from({ length: Math.max(1, Math.min(workers, partitions.length)) }, () => ({ load: 0n, plans: [] as PartitionPlan[] }));
  const bySize = [...partitions].sort((a, b) => (b.high - b.start > a.high - a.start ? 1 : b.high - b.start < a.high - a.start ? -1 : a.partition - b.partition));
  for (const plan of bySize) {
    const share = shares.reduce((least, s) => (s.load < least.load ? s : least));
    share.plans.push(plan);
    share.load += plan.high - plan.start;
  }
  return shares.map((s) => s.plans.sort((a, b) => a.partition - b.partition)).filter((plans) => plans.length > 0);
}

/** Reads and replays the planned partitions on worker threads; resolves to the merged results. */
export async function replayInWorkers(partitions: readonly PartitionPlan[], options: ParallelReplayOptions): Promise<ReplayResult> {
  const shares = assignPartitions(partitions, options.workers);
  const progress = shares.map(() => 0);
  const workers: Worker[] = [];
  try {
    const results = await Promise.all(
      shares.map(
        (share, i) =>
          new Promise<Extract<FromWorker, { type: 'result' }>>((resolve, reject) => {
            const data: ReplayWorkerData = {
              brokers: options.brokers,
              clientId: `${options.clientId}-${i}`,
              topic: options.topic,
              ranges: share.map((p) => ({ partition: p.partition, start: p.start.toString(), end: p.high.toString() })),
              scope: options.scope,
              rules: options.rules,
              keepRefused: options.keepRefused ?? false,
            };
            // A larger young generation: decoding allocates many short-lived strings.
            const worker = new Worker(new URL('./replay-worker.js', import.meta.url), { workerData: data, resourceLimits: { maxYoungGenerationSizeMb: 64 } });
            workers.push(worker);
            let settled = false;
            worker.on('message', (message: FromWorker) => {
              if (message.type === 'progress') {
                progress[i] = message.records;
                options.onProgress?.(progress.reduce((a, b) => a + b, 0));
              } else if (message.type === 'warning') {
                options.onWarning?.(message.message);
              } else {
                settled = true;
                resolve(message);
              }
            });
            worker.on('error', (error) => {
              settled = true;
              reject(error);
            });
            worker.on('exit', (code) => {
              if (!settled) reject(new Error(`a replay worker exited (code ${code}) before its results`));
            });
          }),
      ),
    );
    return merge(results);
  } finally {
    await Promise.all(workers.map((worker) => worker.terminate()));
  }
}

function merge(results: ReadonlyArray<Extract<FromWorker, { type: 'result' }>>): ReplayResult {
  const seen = new Set<string>();
  const pageViews: ReplayedPageView[] = [];
  const partitions: PartitionSummary[] = [];
  const counts = {
    records: 0,
    nullValues: 0,
    undecodable: {} as Record<string, number>,
    writerVersions: {} as Record<string, number>,
    outcomes: {} as Record<string, number>,
    maxTimestampSkewMs: 0,
    pageViewsOpened: 0,
    pageViewsInScope: 0,
  };
  const add = (into: Record<string, number>, from: Readonly<Record<string, number>>): void => {
    for (const [key, n] of Object.entries(from)) into[key] = (into[key] ?? 0) + n;
  };
  for (const { result, seen: ids } of results) {
    for (const id of ids) seen.add(id);
    pageViews.push(...result.pageViews);
    partitions.push(...result.partitions);
    const c = result.counts;
    counts.records += c.records;
    counts.nullValues += c.nullValues;
    add(counts.undecodable, c.undecodable);
    add(counts.writerVersions, c.writerVersions);
    add(counts.outcomes, c.outcomes);
    counts.maxTimestampSkewMs = Math.max(counts.maxTimestampSkewMs, c.maxTimestampSkewMs);
    counts.pageViewsOpened += c.pageViewsOpened;
    counts.pageViewsInScope += c.pageViewsInScope;
  }
  pageViews.sort((a, b) => (a.pageViewId < b.pageViewId ? -1 : a.pageViewId > b.pageViewId ? 1 : a.partition - b.partition || a.openedOffset - b.openedOffset));
  partitions.sort((a, b) => a.partition - b.partition);
  const sorted = (o: Record<string, number>): Record<string, number> => Object.fromEntries(Object.entries(o).sort(([a], [b]) => (a < b ? -1 : 1)));
  return { pageViews, partitions, seen, counts: { ...counts, undecodable: sorted(counts.undecodable), writerVersions: sorted(counts.writerVersions), outcomes: sorted(counts.outcomes) } };
}
