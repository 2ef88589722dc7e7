/** The worker thread of WorkerThreadEngine: serves its requests one by one, in order. */
import { parentPort, workerData } from 'node:worker_threads';
import type { RulesConfig } from '@dwell/exposure';
import { currentThreadId } from '@dwell/runtime';
import type { WorkerAnswer, WorkerRequest } from './partition-engine.js';
import { PartitionWork, type TakenResults } from './partition-work.js';

const port = parentPort;
if (port === null) throw new Error('partition-worker runs as a worker thread');
const { rules, threadId } = workerData as { rules: RulesConfig | null; threadId: Int32Array };
// Tells the engine which operating-system thread this is, for its per-thread CPU metric.
Atomics.store(threadId, 0, currentThreadId() ?? 0);
const work = new PartitionWork(rules ?? undefined);
// Between requests, snapshot texts of page views that look done are made ahead, a little at a
// time, so that a snapshot holds this thread up only for the page views still active.
work.prepareWhileIdle();

function serve(request: WorkerRequest): unknown {
  switch (request.op) {
    case 'restore':
      return work.restore(request.partition, request.stored, request.trustFrom);
    case 'drop':
      work.drop(request.partition);
      return null;
    case 'apply': {
      const bytes = Buffer.from(request.bytes.buffer, request.bytes.byteOffset, request.bytes.byteLength);
      const values: Array<Buffer | null> = [];
      let at = 0;
      for (const length of request.lengths) {
        if (length < 0) {
          values.push(null);
          continue;
        }
        values.push(bytes.subarray(at, at + length));
        at += length;
      }
      return work.apply(request.partition, values);
    }
    case 'take':
      return work.take(request.versions);
    case 'snapshot':
      return work.snapshot(request.partition, request.delta);
  }
}

port.on('message', (request: WorkerRequest) => {
  let answer: WorkerAnswer;
  const transfer: ArrayBuffer[] = [];
  try {
    const value = serve(request);
    // Taken rows move to the consumer's thread without a copy: their encoders own their buffers.
    if (request.op === 'take') {
      const { impressions, minutes } = value as TakenResults;
      for (const { rows, body } of [impressions, minutes])
        if (rows > 0 && body.buffer instanceof ArrayBuffer) transfer.push(body.buffer);
    }
    answer = { ok: true, value };
  } catch (error) {
    answer = { ok: false, error: error instanceof Error ? (error.stack ?? error.message) : String(error) };
  }
  port.postMessage(answer, transfer);
});
