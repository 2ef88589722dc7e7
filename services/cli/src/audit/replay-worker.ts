/**
 * A worker thread of the parallel replay: the partitions given to it, each through its own
 * PartitionReplay, exactly as ReplayEngine does in one thread. See parallel-replay.ts.
 */
import { parentPort } from 'node:worker_threads';
import { DEFAULT_RULES_CONFIG, type RulesConfig } from '@dwell/exposure';
import { batchViews } from './batch-layout.js';
import { ReplayEngine, type AuditScope } from './replay-engine.js';

/** Main → worker. */
export type ToWorker =
  | { readonly type: 'init'; readonly scope: AuditScope; readonly rules: RulesConfig | undefined; readonly keepRefused: boolean }
  | {
      readonly type: 'batch';
      readonly partition: number;
      readonly count: number;
      /** See batch-layout.ts. Handed back in the ack, for reuse. */
      readonly buffer: ArrayBuffer;
    }
  | { readonly type: 'finish' };

/** Worker → main. */
export type FromWorker =
  | { readonly type: 'ack'; readonly partition: number; readonly records: number; readonly complete: boolean; readonly buffer: ArrayBuffer }
  | { readonly type: 'result'; readonly result: ReturnType<ReplayEngine['finish']>; readonly seen: string[] };

const port = parentPort;
if (port === null) throw new Error('replay-worker.js runs as a worker thread');

let engine: ReplayEngine | undefined;
const complete = new Set<number>();

port.on('message', (message: ToWorker) => {
  switch (message.type) {
    case 'init':
      engine = new ReplayEngine(message.scope, message.rules ?? DEFAULT_RULES_CONFIG, { keepRefused: message.keepRefused });
      return;
    case 'batch': {
      if (engine === undefined) throw new Error('batch before init');
      const { partition, count, buffer } = message;
      const replay = engine.partition(partition);
      let applied = 0;
      let more = !complete.has(partition);
      if (more) {
        const { offsets, timestamps, ends, values } = batchViews(buffer, count);
        more = replay.applyPacked(offsets, timestamps, ends, Buffer.from(values.buffer, values.byteOffset, values.byteLength));
        applied = count;
        if (!more) complete.add(partition);
      }
      port.postMessage({ type: 'ack', partition, records: applied, complete: !more, buffer } satisfies FromWorker, [buffer]);
      return;
    }
    case 'finish': {
      if (engine === undefined) throw new Error('finish before init');
      const result = engine.finish();
      port.postMessage({ type: 'result', result, seen: [...engine.seen] } satisfies FromWorker);
      return;
    }
  }
});
