// Produces a synthetic ledger at a fixed rate and reports, for every send, the last offset per
// partition and when Kafka acknowledged it (JSON lines on stdout), so the benchmark can tell how
// long each event took to become a billable row.
//   node producer.mjs <brokers> <topic> <events/s> <seconds>
// The first line is `{"ready":true,…}`, written once the ledger is built: the schedule starts
// then, and the benchmark measures CPU from there (building it is not the load being measured).
import { createKafka, createProducer } from '@dwell/kafka';
import { encodedWorkload } from '../lib/workload.mjs';

const [brokers, topic, rate, seconds] = process.argv.slice(2);
const total = Number(rate) * Number(seconds);
const building = Date.now();
let events = encodedWorkload({ seed: 99, events: total, baseMs: building, spreadMs: Number(seconds) * 1000 });
// The values packed into buffers outside the V8 heap, the per-event objects dropped: millions
// of small Buffers and their objects would leave the producer collecting a heap of gigabytes
// while it should keep its schedule. A buffer holds at most 1 GiB (Node's limit is 4 GiB, and
// eleven minutes at half load is more).
const CHUNK_BYTES = 2 ** 30;
const count = events.length;
const keys = new Array(count);
/** Event i's value: bytes offsets[i] to ends[i] of chunks[chunkOf[i]]. */
const chunkOf = new Uint32Array(count);
const offsets = new Float64Array(count);
const ends = new Float64Array(count);
const sizes = [];
let bytes = 0;
let inChunk = 0;
for (let i = 0; i < count; i++) {
  const length = events[i].value.length;
  if (inChunk + length > CHUNK_BYTES) {
    sizes.push(inChunk);
    inChunk = 0;
  }
  chunkOf[i] = sizes.length;
  offsets[i] = inChunk;
  ends[i] = inChunk + length;
  inChunk += length;
  bytes += length;
}
sizes.push(inChunk);
const chunks = sizes.map((size) => Buffer.allocUnsafe(size));
for (let i = 0; i < count; i++) {
  keys[i] = events[i].key;
  events[i].value.copy(chunks[chunkOf[i]], offsets[i]);
}
events = undefined;
// Collect the dropped objects now (the benchmark starts it with --expose-gc): with millions of
// them, the collection would otherwise stall the first seconds of the schedule.
globalThis.gc?.();
const kafka = createKafka({ brokers: brokers.split(','), clientId: 'bench-producer' });
const producer = createProducer(kafka, { maxInFlightRequests: 5 });
await producer.connect();
process.stdout.write(`${JSON.stringify({ ready: true, events: count, bytes, buildMs: Date.now() - building })}\n`);
const tickMs = 50;
const perTick = Math.max(1, Math.round((Number(rate) * tickMs) / 1000));
const MAX_PER_SEND = 2000;
const started = Date.now();
let sent = 0;
const inflight = new Set();
while (sent < count) {
  const due = Math.min(count, Math.floor(((Date.now() - started) / 1000) * Number(rate)) + perTick);
  // A late tick sends what is due in several requests: one request stays under the broker's
  // message size limit.
  while (due > sent) {
    const end = Math.min(due, sent + MAX_PER_SEND);
    const messages = new Array(end - sent);
    for (let i = sent; i < end; i++) messages[i - sent] = { key: keys[i], value: chunks[chunkOf[i]].subarray(offsets[i], ends[i]) };
    sent = end;
    // Freshness counts from here: the moment a gateway would have handed the events to Kafka.
    const at = Date.now();
    const p = producer.send({ topic, acks: -1, messages }).then((metadata) => {
      const done = Date.now();
      for (const m of metadata) process.stdout.write(`${JSON.stringify({ partition: m.partition, baseOffset: m.baseOffset, sentAt: at, ackedAt: done })}\n`);
    });
    inflight.add(p);
    void p.finally(() => inflight.delete(p));
  }
  await new Promise((resolve) => setTimeout(resolve, tickMs));
}
await Promise.all(inflight);
await producer.disconnect();
