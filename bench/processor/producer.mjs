// Produces a synthetic ledger at a fixed rate and reports, for every send, the last offset per
// partition and when Kafka acknowledged it (JSON lines on stdout), so the benchmark can tell how
// long each event took to become a billable row.
//   node producer.mjs <brokers> <topic> <events/s> <seconds>
import { createKafka, createProducer } from '@dwell/kafka';
import { encodedWorkload } from '../lib/workload.mjs';

const [brokers, topic, rate, seconds] = process.argv.slice(2);
const total = Number(rate) * Number(seconds);
const now = Date.now();
const events = encodedWorkload({ seed: 99, events: total, baseMs: now, spreadMs: Number(seconds) * 1000 });
const kafka = createKafka({ brokers: brokers.split(','), clientId: 'bench-producer' });
const producer = createProducer(kafka, { maxInFlightRequests: 5 });
await producer.connect();
const tickMs = 50;
const perTick = Math.max(1, Math.round((Number(rate) * tickMs) / 1000));
const MAX_PER_SEND = 2000;
const started = Date.now();
let sent = 0;
const inflight = new Set();
while (sent < events.length) {
  const due = Math.min(events.length, Math.floor(((Date.now() - started) / 1000) * Number(rate)) + perTick);
  // A late tick sends what is due in several requests: one request stays under the broker's
  // message size limit.
  while (due > sent) {
    const batch = events.slice(sent, Math.min(due, sent + MAX_PER_SEND));
    sent += batch.length;
    // recv_ms is stamped now, as a gateway would: freshness counts from here.
    const at = Date.now();
    const p = producer
      .send({ topic, acks: -1, messages: batch.map((e) => ({ key: e.key, value: e.value })) })
      .then((metadata) => {
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
