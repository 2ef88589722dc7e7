// npm run bench:processor [-- --events 400000 --runs 3 --quick]
//
// 1. the pure exposure core on one core (packages/exposure/bench/core.mjs), against its naive
//    reference model;
// 2. Kafka → ClickHouse end to end: a pre-filled topic consumed by the processor (decode, core,
//    embedded ClickHouse writes, snapshots), against a bare KafkaJS consumer of the same topic;
// 3. freshness: at half the measured end-to-end rate, the time from an event being sent to Kafka
//    to the ClickHouse write that contains it;
// 4. `dwell billing` latency over 10 million minute rows, against the same query without FINAL.
// Everything runs against a real local Kafka broker and embedded ClickHouse (chDB).
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir, cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { createKafka, createProducer, ensureTopics, startLocalKafka } from '@dwell/kafka';
import { createLogger } from '@dwell/runtime';
import { processorConfigFromEnv, startProcessor } from '@dwell/processor';
import { billingReport, migrate } from '@dwell/warehouse';
import { median, percentiles } from '../lib/stats.mjs';
import { encodedWorkload } from '../lib/workload.mjs';

const args = process.argv.slice(2);
const flag = (name, fallback) => {
  const i = args.indexOf(`--${name}`);
  return i === -1 ? fallback : args[i + 1];
};
const QUICK = args.includes('--quick');
const EVENTS = Number(flag('events', QUICK ? 100_000 : 400_000));
const RUNS = Number(flag('runs', QUICK ? 1 : 3));
const BILLING_ROWS = Number(flag('billing-rows', QUICK ? 1_000_000 : 10_000_000));
const root = fileURLToPath(new URL('../..', import.meta.url));
const say = (line) => process.stderr.write(`[bench:processor] ${line}\n`);
const results = { machine: { cpus: cpus().length, model: cpus()[0]?.model, node: process.version }, loadavgAtStart: loadavg(), events: EVENTS, runs: RUNS };

// 1. The pure core.
say('pure exposure core (one core)…');
const coreOut = execFileSync(process.execPath, [join(root, 'packages/exposure/bench/core.mjs'), '--runs', QUICK ? '3' : '5'], { encoding: 'utf8' });
process.stdout.write(coreOut);
results.core = coreOut.trim().split('\n');

const kafkaDir = mkdtempSync(join(tmpdir(), 'bench-proc-kafka-'));
const chDir = mkdtempSync(join(tmpdir(), 'bench-proc-ch-'));
say('starting a local Kafka broker…');
const broker = await startLocalKafka({ dataDir: kafkaDir, heap: '768m' });
const brokers = [broker.brokers];
const kafka = createKafka({ brokers, clientId: 'bench' });
const logger = createLogger({ level: 'warn' });
let opened;
try {
  // 2. End to end.
  say(`generating and producing ${EVENTS} events…`);
  const topic = `bench-events-${Date.now()}`;
  await ensureTopics(kafka, [{ topic, numPartitions: 4 }]);
  const events = encodedWorkload({ seed: 7, events: EVENTS, baseMs: Date.now() - 10 * 60_000 });
  const producer = createProducer(kafka);
  await producer.connect();
  for (let i = 0; i < events.length; i += 5000) {
    await producer.send({ topic, acks: -1, messages: events.slice(i, i + 5000).map((e) => ({ key: e.key, value: e.value })) });
  }
  await producer.disconnect();
  const bytes = events.reduce((sum, e) => sum + e.value.length, 0);
  say(`produced ${EVENTS} events (${(bytes / 1e6).toFixed(1)} MB of Avro)`);

  /** events/s between 5% and 95% of the work, from a progress probe polled every 100 ms. */
  const rateOf = async (progress, total) => {
    let t5, t95, n5, n95;
    const deadline = Date.now() + 600_000;
    for (;;) {
      const done = await progress();
      const now = performance.now();
      if (t5 === undefined && done >= total * 0.05) [t5, n5] = [now, done];
      if (t5 !== undefined && done >= total * 0.95) {
        [t95, n95] = [now, done];
        break;
      }
      if (Date.now() > deadline) throw new Error(`stuck at ${done}/${total}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    return ((n95 - n5) / (t95 - t5)) * 1000;
  };

  const bare = [];
  const ours = [];
  for (let run = 1; run <= RUNS; run++) {
    // Baseline: KafkaJS alone, no decoding.
    let consumed = 0;
    const consumer = kafka.consumer({ groupId: `bench-bare-${Date.now()}`, maxWaitTimeInMs: 100, maxBytesPerPartition: 4 * 1024 * 1024 });
    await consumer.connect();
    await consumer.subscribe({ topic, fromBeginning: true });
    await consumer.run({ autoCommit: false, eachBatch: async ({ batch }) => void (consumed += batch.messages.length) });
    bare.push(await rateOf(async () => consumed, EVENTS));
    await consumer.disconnect();

    // Ours: the processor with embedded ClickHouse.
    const database = `bench_${run}_${Date.now()}`;
    const processor = await startProcessor(
      processorConfigFromEnv({
        KAFKA_BROKERS: brokers.join(','),
        DWELL_EVENTS_TOPIC: topic,
        DWELL_REJECTED_TOPIC: `${topic}-rejected`,
        PROCESSOR_GROUP_ID: `bench-processor-${database}`,
        PROCESSOR_HTTP_PORT: '0',
        CLICKHOUSE_DATABASE: database,
        CLICKHOUSE_DATA_DIR: chDir,
        PROCESSOR_ID: `bench-${run}`,
      }),
      logger,
    );
    opened = processor;
    const client = processor.warehouse.client;
    ours.push(
      await rateOf(async () => {
        const result = await client.query({ query: `SELECT sum(events) AS n FROM ${database}.processed_ranges`, format: 'JSONEachRow' });
        return Number((await result.json())[0]?.n ?? 0);
      }, EVENTS),
    );
    await processor.stop();
    opened = undefined;
    say(`run ${run}: bare KafkaJS ${bare.at(-1).toFixed(0)} events/s, processor ${ours.at(-1).toFixed(0)} events/s`);
  }
  results.endToEnd = { bareKafkaJsEventsPerS: median(bare), processorEventsPerS: median(ours), ratio: median(ours) / median(bare), runs: { bare, ours } };

  // 3. Freshness at half load.
  const rate = Math.max(1000, Math.round(median(ours) / 2));
  const seconds = QUICK ? 10 : 30;
  say(`freshness at half load: ${rate} events/s for ${seconds} s…`);
  const freshTopic = `bench-fresh-${Date.now()}`;
  await ensureTopics(kafka, [{ topic: freshTopic, numPartitions: 4 }]);
  const writes = [];
  const database = `bench_fresh_${Date.now()}`;
  const processor = await startProcessor(
    processorConfigFromEnv({
      KAFKA_BROKERS: brokers.join(','),
      DWELL_EVENTS_TOPIC: freshTopic,
      DWELL_REJECTED_TOPIC: `${freshTopic}-rejected`,
      PROCESSOR_GROUP_ID: `bench-fresh-${database}`,
      PROCESSOR_HTTP_PORT: '0',
      CLICKHOUSE_DATABASE: database,
      CLICKHOUSE_DATA_DIR: chDir,
    }),
    logger,
    {
      store: (store) => {
        const writeResults = store.writeResults.bind(store);
        store.writeResults = async (write) => {
          await writeResults(write);
          writes.push({ at: Date.now(), ranges: write.ranges });
        };
        return store;
      },
    },
  );
  opened = processor;
  await new Promise((resolve) => setTimeout(resolve, 3000)); // group join
  const sends = [];
  const child = spawn(process.execPath, [join(root, 'bench/processor/producer.mjs'), brokers.join(','), freshTopic, String(rate), String(seconds)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  createInterface({ input: child.stdout }).on('line', (line) => sends.push(JSON.parse(line)));
  await new Promise((resolve) => child.once('exit', resolve));
  await new Promise((resolve) => setTimeout(resolve, 3000));
  await processor.stop();
  opened = undefined;
  const byPartition = new Map();
  for (const s of sends) {
    const list = byPartition.get(s.partition) ?? [];
    list.push(s);
    byPartition.set(s.partition, list);
  }
  for (const list of byPartition.values()) list.sort((a, b) => Number(a.baseOffset) - Number(b.baseOffset));
  const freshness = [];
  for (const write of writes) {
    for (const range of write.ranges) {
      const list = byPartition.get(range.partition) ?? [];
      const first = Number(range.first_offset);
      // The send that carried the range's first (oldest) event.
      let carrier;
      for (const s of list) if (Number(s.baseOffset) <= first) carrier = s;
      if (carrier !== undefined) freshness.push(write.at - carrier.sentAt);
    }
  }
  results.freshness = { rateEventsPerS: rate, seconds, writes: freshness.length, ms: percentiles(freshness, [50, 90, 99, 100]) };
  say(`freshness p50 ${results.freshness.ms.p50} ms, p99 ${results.freshness.ms.p99} ms over ${freshness.length} writes`);

  // 4. Billing latency over many minute rows.
  say(`billing latency over ${BILLING_ROWS} minute rows…`);
  const billing = await startProcessor(
    processorConfigFromEnv({
      KAFKA_BROKERS: brokers.join(','),
      DWELL_EVENTS_TOPIC: freshTopic,
      DWELL_REJECTED_TOPIC: `${freshTopic}-rejected`,
      PROCESSOR_GROUP_ID: `bench-billing-${Date.now()}`,
      PROCESSOR_HTTP_PORT: '0',
      CLICKHOUSE_DATABASE: `bench_billing_${Date.now()}`,
      CLICKHOUSE_DATA_DIR: chDir,
    }),
    logger,
  );
  opened = billing;
  const warehouse = billing.warehouse;
  await migrate(warehouse);
  const db = warehouse.database;
  const t0 = performance.now();
  await warehouse.client.command({
    query: `INSERT INTO ${db}.exposure_minutes
      SELECT concat('site-', toString(number % 5)), concat('pv-', toString(intDiv(number, 4))), concat('pv-', toString(intDiv(number, 4)), '-', toString(number % 2)),
             toDateTime('2026-11-01 00:00:00', 'UTC') + toIntervalMinute(number % 43200),
             concat('user-', toString(number % 100000)), concat('ad-', toString(number % 200)), concat('campaign-', toString(number % 20)),
             1000 + number % 59000, 1, 1
      FROM numbers(${BILLING_ROWS})`,
    clickhouse_settings: { max_insert_threads: 2 },
  });
  await warehouse.client.command({
    query: `INSERT INTO ${db}.impressions
      SELECT concat('site-', toString(number % 5)), concat('pv-', toString(intDiv(number, 2))), concat('pv-', toString(intDiv(number, 2)), '-', toString(number % 2)),
             concat('user-', toString(number % 100000)), concat('ad-', toString(number % 200)), concat('campaign-', toString(number % 20)),
             'display', 300, 250, 1, number % 3 != 0, number % 3 != 0, if(number % 3 != 0, 1000 + number % 59000, 0), 1000 + number % 59000, 1000 + number % 59000,
             [], toDateTime64('2026-11-01 00:00:00', 3, 'UTC') + toIntervalSecond(number % 2592000), toDateTime64('2026-11-01 00:00:00', 3, 'UTC') + toIntervalSecond(number % 2592000), 1, 1, 1
      FROM numbers(${Math.floor(BILLING_ROWS / 4)})`,
  });
  say(`inserted test rows in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  const from = Date.parse('2026-11-01T00:00:00Z');
  const to = Date.parse('2026-12-01T00:00:00Z');
  const queries = {
    'by ad, whole month': { fromMs: from, toMs: to, by: 'ad' },
    'by day, one campaign': { fromMs: from, toMs: to, by: 'day', campaign: 'campaign-3' },
    'by hour, one ad, one day': { fromMs: from, toMs: from + 86_400_000, by: 'hour', ad: 'ad-17' },
  };
  results.billing = { minuteRows: BILLING_ROWS, impressionRows: Math.floor(BILLING_ROWS / 4), queries: {} };
  for (const [name, query] of Object.entries(queries)) {
    const times = [];
    for (let i = 0; i < 5; i++) {
      const t = performance.now();
      await billingReport(warehouse.readOnly(), db, query);
      times.push(performance.now() - t);
    }
    // Baseline: the minute aggregation alone without FINAL (wrong before merges, the floor).
    const plain = [];
    for (let i = 0; i < 5; i++) {
      const t = performance.now();
      await (await warehouse.client.query({ query: `SELECT ad_id, sum(viewable_ms) FROM ${db}.exposure_minutes GROUP BY ad_id`, format: 'JSONEachRow' })).json();
      plain.push(performance.now() - t);
    }
    results.billing.queries[name] = { medianMs: median(times), plainScanMedianMs: median(plain), ratio: median(times) / median(plain) };
    say(`billing ${name}: ${median(times).toFixed(0)} ms (plain scan without FINAL ${median(plain).toFixed(0)} ms)`);
  }
  await billing.stop();
  opened = undefined;
} finally {
  await opened?.stop().catch(() => undefined);
  await broker.stop();
  rmSync(kafkaDir, { recursive: true, force: true });
  rmSync(chDir, { recursive: true, force: true });
}
results.loadavgAtEnd = loadavg();
mkdirSync(join(root, 'bench/processor/results'), { recursive: true });
const file = join(root, 'bench/processor/results', `${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
writeFileSync(file, JSON.stringify(results, null, 2));
process.stdout.write(`\n${JSON.stringify({ endToEnd: results.endToEnd, freshness: results.freshness, billing: results.billing }, null, 2)}\nresults: ${file}\n`);
process.exit(0);
