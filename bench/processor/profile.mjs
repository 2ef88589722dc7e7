// Runs only the processor over a pre-filled topic and profiles the consumption alone (the topic is
// filled first, unprofiled):
//   node bench/processor/profile.mjs [events] [--cpu-prof FILE.cpuprofile]
//   node bench/lib/cpuprofile-top.mjs FILE.cpuprofile
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createKafka, createProducer, ensureTopics, startLocalKafka } from '@dwell/kafka';
import { createLogger } from '@dwell/runtime';
import { processorConfigFromEnv, startProcessor } from '@dwell/processor';
import { encodedWorkload } from '../lib/workload.mjs';
import { threadCpuDelta, threadCpuSeconds } from '../lib/proc.mjs';

const args = process.argv.slice(2);
const profileAt = args.includes('--cpu-prof') ? args[args.indexOf('--cpu-prof') + 1] : undefined;
const EVENTS = Number(args.find((a, i) => /^\d+$/.test(a) && args[i - 1] !== '--cpu-prof') ?? 200_000);
const kafkaDir = mkdtempSync(join(tmpdir(), 'prof-kafka-'));
const chDir = mkdtempSync(join(tmpdir(), 'prof-ch-'));
const broker = await startLocalKafka({ dataDir: kafkaDir });
try {
  const kafka = createKafka({ brokers: [broker.brokers], clientId: 'prof' });
  const topic = 'prof-events';
  await ensureTopics(kafka, [{ topic, numPartitions: 4 }]);
  const events = encodedWorkload({ seed: 7, events: EVENTS, baseMs: Date.now() - 10 * 60_000 });
  const producer = createProducer(kafka);
  await producer.connect();
  for (let i = 0; i < events.length; i += 5000) {
    await producer.send({
      topic,
      acks: -1,
      messages: events.slice(i, i + 5000).map((e) => ({ key: e.key, value: e.value })),
    });
  }
  await producer.disconnect();
  events.length = 0;
  const session = new Session();
  if (profileAt !== undefined) {
    session.connect();
    await session.post('Profiler.enable');
    await session.post('Profiler.setSamplingInterval', { interval: 500 });
    await session.post('Profiler.start');
  }
  const processor = await startProcessor(
    processorConfigFromEnv({
      KAFKA_BROKERS: broker.brokers,
      DWELL_EVENTS_TOPIC: topic,
      PROCESSOR_HTTP_PORT: '0',
      CLICKHOUSE_DATA_DIR: chDir,
      CLICKHOUSE_DATABASE: 'prof',
      ...(process.env['PROCESSOR_WORKER_THREAD'] === undefined
        ? {}
        : { PROCESSOR_WORKER_THREAD: process.env['PROCESSOR_WORKER_THREAD'] }),
    }),
    createLogger({ level: 'warn' }),
  );
  const started = performance.now();
  const cpu = process.cpuUsage();
  const threadsBefore = threadCpuSeconds();
  for (;;) {
    const result = await processor.warehouse.client.query({
      query: 'SELECT sum(events) AS n FROM prof.processed_ranges',
      format: 'JSONEachRow',
    });
    if (Number((await result.json())[0]?.n ?? 0) >= EVENTS) break;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  const wall = performance.now() - started;
  const used = process.cpuUsage(cpu);
  const threads = threadCpuDelta(threadsBefore, threadCpuSeconds());
  if (profileAt !== undefined) {
    const { profile } = await session.post('Profiler.stop');
    writeFileSync(profileAt, JSON.stringify(profile));
    session.disconnect();
  }
  console.log(
    `CPU by thread (µs/event): ${threads.map(([name, t]) => `${name} ${((t * 1e6) / EVENTS).toFixed(1)}`).join(', ')}`,
  );
  console.log(
    `${EVENTS} events in ${(wall / 1000).toFixed(2)} s: ${((EVENTS / wall) * 1000).toFixed(0)} events/s, process CPU ${((used.user + used.system) / EVENTS).toFixed(1)} µs/event (JS and chDB threads)`,
  );
  await processor.stop();
} finally {
  await broker.stop();
  rmSync(kafkaDir, { recursive: true, force: true });
  rmSync(chDir, { recursive: true, force: true });
}
