/** The worker thread of WorkerThreadEngine: serves its requests one by one, in order. */
import { parentPort, workerData } from 'node:worker_threads';
import type { RulesConfig } from '@dwell/exposure';
import { currentThreadId } from '@dwell/runtime';
import type { WorkerAnswer, WorkerRequest } from './partition-engine.js';
import {
  PartitionWork,
  SnapshotBuffers,
  SnapshotEncoder,
  type SnapshotBytes,
  type SnapshotTaken,
  type TakenResults,
} from './partition-work.js';

const port = parentPort;
if (port === null) throw new Error('partition-worker runs as a worker thread');
const { rules, threadId } = workerData as { rules: RulesConfig | null; threadId: Int32Array };
// Tells the engine which operating-system thread this is, for its per-thread CPU metric.
Atomics.store(threadId, 0, currentThreadId() ?? 0);
const work = new PartitionWork(rules ?? undefined);
// Between requests, snapshot texts of page views that look done are made ahead, a little at a
// time, so that a snapshot holds this thread up only for the page views still active.
work.prepareWhileIdle();

const answer = (message: WorkerAnswer, transfer: ArrayBuffer[] = []): void => port.postMessage(message, transfer);
const failed = (id: number, error: unknown): WorkerAnswer => ({
  id,
  ok: false,
  error: error instanceof Error ? (error.stack ?? error.message) : String(error),
});

/**
 * How long one slice of encoding snapshots may hold the thread, ms, before the requests that came
 * in meanwhile are served.
 */
const ENCODE_SLICE_MS = 10;

/** What snapshots are encoded into: buffers shared with the consumer thread, kept from one snapshot to the next. */
const buffers = new SnapshotBuffers();

/** Snapshots taken and being encoded, in order of their requests. */
const encoding: Array<{ id: number; encoder: SnapshotEncoder }> = [];

/** Encodes the snapshots taken, a slice at a time, answering each once its text is done. */
function encodeSlice(): void {
  const until = performance.now() + ENCODE_SLICE_MS;
  while (encoding.length > 0 && performance.now() < until) {
    const { id, encoder } = encoding[0] as (typeof encoding)[number];
    let value: SnapshotBytes;
    try {
      if (!encoder.step(() => performance.now() < until)) break;
      value = encoder.finish();
    } catch (error) {
      encoding.shift();
      answer(failed(id, error));
      continue;
    }
    encoding.shift();
    // The bytes reach the consumer's thread without a copy, in a buffer shared with it and lent
    // until it gives the buffer back (PartitionEngine.release).
    const shared = value.bytes.buffer;
    if (shared instanceof SharedArrayBuffer) value = { ...value, lent: buffers.lend(shared) };
    answer({ id, ok: true, value });
  }
  if (encoding.length > 0) setImmediate(encodeSlice);
}

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
      return work.takeSnapshot(request.partition, request.delta);
    case 'release':
      buffers.giveBack(request.lent);
      return null;
  }
}

port.on('message', (request: WorkerRequest) => {
  let reply: WorkerAnswer;
  const transfer: ArrayBuffer[] = [];
  try {
    const value = serve(request);
    if (request.op === 'snapshot') {
      // Taken now, in order; answered once encoded.
      encoding.push({ id: request.id, encoder: new SnapshotEncoder(value as SnapshotTaken, buffers.take) });
      if (encoding.length === 1) setImmediate(encodeSlice);
      return;
    }
    // Taken rows move to the consumer's thread without a copy: their encoders own their buffers.
    if (request.op === 'take') {
      const { impressions, minutes } = value as TakenResults;
      for (const { rows, body } of [impressions, minutes])
        if (rows > 0 && body.buffer instanceof ArrayBuffer) transfer.push(body.buffer);
    }
    reply = { id: request.id, ok: true, value };
  } catch (error) {
    reply = failed(request.id, error);
  }
  answer(reply, transfer);
});
