/**
 * A worker thread of the parallel replay: reads its share of the partitions from Kafka with a
 * consumer of its own and runs each through its PartitionReplay, exactly as ReplayEngine does in
 * one thread. See parallel-replay.ts.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { DEFAULT_RULES_CONFIG, type RulesConfig } from '@dwell/exposure';
import { createKafka, readLog } from '@dwell/kafka';
import { ReplayEngine, type AuditScope } from './replay-engine.js';

/** What the main thread hands a worker. Offsets travel as decimal strings. */
export interface ReplayWorkerData {
  readonly brokers: readonly string[];
  readonly clientId: string;
  readonly topic: string;
  readonly ranges: ReadonlyArray<{ readonly partition: number; readonly start: string; readonly end: string }>;
  readonly scope: AuditScope;
  readonly rules: RulesConfig | undefined;
  readonly keepRefused: boolean;
}

/** Worker → main. */
export type FromWorker =
  | { readonly type: 'progress'; readonly records: number }
  | { readonly type: 'warning'; readonly message: string }
  | { readonly type: 'result'; readonly result: ReturnType<ReplayEngine['finish']>; readonly seen: string[] };

const PROGRESS_EVERY_MS = 100;

const port = parentPort;
if (port === null) throw new Error('replay-worker.js runs as a worker thread');
const data = workerData as ReplayWorkerData;

const engine = new ReplayEngine(data.scope, data.rules ?? DEFAULT_RULES_CONFIG, { keepRefused: data.keepRefused });
for (const range of data.ranges) engine.partition(range.partition);
const kafka = createKafka({ brokers: data.brokers, clientId: data.clientId });
let records = 0;
let postedAt = 0;
await readLog(kafka, {
  topic: data.topic,
  ranges: data.ranges.map((r) => ({ partition: r.partition, start: BigInt(r.start), end: BigInt(r.end) })),
  onRecords: (partition, batch) => {
    const more = engine.partition(partition).applyAll(batch);
    records += batch.length;
    const now = Date.now();
    if (now - postedAt >= PROGRESS_EVERY_MS) {
      postedAt = now;
      port.postMessage({ type: 'progress', records } satisfies FromWorker);
    }
    return more;
  },
  onWarning: (message) => port.postMessage({ type: 'warning', message } satisfies FromWorker),
});
const result = engine.finish();
port.postMessage({ type: 'result', result, seen: [...engine.seen] } satisfies FromWorker);
