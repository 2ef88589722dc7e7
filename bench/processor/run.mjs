// npm run bench:processor [-- --events 400000 --runs 3 --quick]
//   freshness only, at shares of a given rate: -- --events 2000 --fresh-rate 153000 --fresh-ladder 10,5,3,2 --fresh-seconds 20
//   recovery only: -- --events 2000 --fresh-rate 1 --fresh-ladder none --recovery-rate 50000 --recovery-seconds 60 [--runs 3]
//   billing latency only: -- --events 2000 --billing-only [--billing-rows 10000000]
//   live maximum only, searched between R/3 and R: -- --events 2000 --fresh-rate R --live-max auto --fresh-ladder none --no-recovery --billing-rows 0
//   (the full run searches the live maximum in --live-probes probes of --live-seconds 120 s each;
//   --live-max N takes it as given; it measures recovery at a quarter of the end-to-end rate; --no-recovery skips it)
//
// 1. the pure exposure core on one core (packages/exposure/bench/core.mjs), against its naive
//    reference model; and a worker thread's whole per-event work (read, apply, encode changed rows)
//    while streaming, against the same work in catch-up (bench/processor/streaming-work.mjs);
// 2. Kafka → ClickHouse end to end: a pre-filled topic consumed by the processor (decode, core,
//    embedded ClickHouse writes, snapshots), against a bare KafkaJS consumer of the same topic;
// 3. the live maximum: the highest rate of live traffic the processor sustains with the producer
//    and the broker on the same cores (its backlog stops growing); then freshness at half of it
//    (the target's half load), at a tenth, and at half the end-to-end rate: the time from an event
//    being sent to Kafka to the ClickHouse write that contains it;
// 4. recovery after an outage: a backlog of live traffic the processor drains, with write pacing
//    (the default) against without it, in the same run;
// 5. `dwell billing` latency (the processor's /v1/billing, what `dwell billing` calls) over 10 million
//    minute rows with superseded versions not yet merged away, p50/p99 for each documented grouping,
//    against a plain scan without FINAL; the totals are checked against an argMax computation first.
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
import { migrate } from '@dwell/warehouse';
import { median, percentiles, weightedPercentiles, weightedSlope } from '../lib/stats.mjs';
import { encodedWorkload } from '../lib/workload.mjs';
import { impressionRowsSelect, minuteRowsSelect } from '../lib/billing-rows.mjs';
import { cpuSeconds, cpuSecondsOf, processTree, threadCpuDelta, threadCpuSeconds, writebackSettings } from '../lib/proc.mjs';

const args = process.argv.slice(2);
const flag = (name, fallback) => {
  const i = args.indexOf(`--${name}`);
  return i === -1 ? fallback : args[i + 1];
};
const QUICK = args.includes('--quick');
const BILLING_ONLY = args.includes('--billing-only');
const EVENTS = Number(flag('events', QUICK ? 100_000 : 400_000));
const RUNS = Number(flag('runs', QUICK ? 1 : 3));
const BILLING_ROWS = Number(flag('billing-rows', QUICK ? 1_000_000 : 10_000_000));
/** Freshness only, at this rate (events/s): for trying settings. */
const FRESH_RATE = flag('fresh-rate', undefined);
const root = fileURLToPath(new URL('../..', import.meta.url));
/** Processor settings from the environment (the benchmark sets brokers, topics, ports and storage itself). */
const TRIED_SETTINGS = Object.fromEntries(
  ['PROCESSOR_FLUSH_INTERVAL_MS', 'PROCESSOR_MAX_FLUSH_INTERVAL_MS', 'PROCESSOR_IMPRESSION_INTERVAL_MS', 'PROCESSOR_SNAPSHOT_INTERVAL_MS', 'PROCESSOR_WORKER_THREAD', 'PROCESSOR_WORKER_THREADS']
    .filter((name) => process.env[name] !== undefined && process.env[name] !== '')
    .map((name) => [name, process.env[name]]),
);
const say = (line) => process.stderr.write(`[bench:processor] ${line}\n`);
const results = { settings: TRIED_SETTINGS, machine: { cpus: cpus().length, model: cpus()[0]?.model, node: process.version, writeback: writebackSettings() }, loadavgAtStart: loadavg(), events: EVENTS, runs: RUNS };

// 1. The pure core.
if (FRESH_RATE === undefined && !BILLING_ONLY) {
  say('pure exposure core (one core)…');
  const coreOut = execFileSync(process.execPath, [join(root, 'packages/exposure/bench/core.mjs'), '--runs', QUICK ? '3' : '5'], { encoding: 'utf8' });
  process.stdout.write(coreOut);
  results.core = coreOut.trim().split('\n');
  say('one worker thread\'s work per event, streaming against catch-up (no Kafka, no ClickHouse)…');
  const workOut = execFileSync(process.execPath, [join(root, 'bench/processor/streaming-work.mjs'), '--runs', QUICK ? '2' : '5', '--seconds', QUICK ? '15' : '40'], { encoding: 'utf8' });
  process.stdout.write(workOut);
  results.workerWork = JSON.parse(workOut.trim().split('\n').at(-1));
}

const kafkaDir = mkdtempSync(join(tmpdir(), 'bench-proc-kafka-'));
const chDir = mkdtempSync(join(tmpdir(), 'bench-proc-ch-'));
say('starting a local Kafka broker…');
const broker = await startLocalKafka({ dataDir: kafkaDir, heap: '768m' });
const brokers = [broker.brokers];
const kafka = createKafka({ brokers, clientId: 'bench' });
const logger = createLogger({ level: 'warn' });
let opened;

/** A running processor's /metrics, as text. */
const metricsOf = async (processor) => (await fetch(`${processor.httpUrl}/metrics`)).text();

/** CPU seconds of each partition worker thread of a running processor, by worker, from its /metrics (Linux). */
async function workerCpuSeconds(processor) {
  const text = await metricsOf(processor);
  return new Map([...text.matchAll(/^dwell_processor_worker_cpu_seconds_total\{worker="(\d+)"\} (\S+)$/gm)].map((m) => [m[1], Number(m[2])]));
}

/**
 * A processor of `topic` into its own database, with its own group, and the PROCESSOR_* settings
 * to try from the environment (e.g. PROCESSOR_FLUSH_INTERVAL_MS=2000 or PROCESSOR_WORKER_THREADS=2
 * npm run bench:processor …).
 */
const benchProcessorConfig = (topic, database, extra = {}, forced = {}) =>
  processorConfigFromEnv({
    KAFKA_BROKERS: brokers.join(','),
    DWELL_EVENTS_TOPIC: topic,
    DWELL_REJECTED_TOPIC: `${topic}-rejected`,
    PROCESSOR_GROUP_ID: `bench-processor-${database}`,
    PROCESSOR_HTTP_PORT: '0',
    CLICKHOUSE_DATABASE: database,
    CLICKHOUSE_DATA_DIR: chDir,
    ...extra,
    ...TRIED_SETTINGS,
    ...forced,
  });
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

  /** Events whose results a processor has written to ClickHouse, from its audit trail. */
  const eventsWritten = async (processor, database) => {
    const result = await processor.warehouse.client.query({ query: `SELECT sum(events) AS n FROM ${database}.processed_ranges`, format: 'JSONEachRow' });
    return Number((await result.json())[0]?.n ?? 0);
  };
  /** Events a processor has applied so far (every outcome), from its /metrics. */
  const appliedBy = async (processor) => {
    const text = await metricsOf(processor);
    let applied = 0;
    for (const line of text.split('\n')) if (line.startsWith('dwell_processor_events_total')) applied += Number(line.slice(line.lastIndexOf(' ') + 1));
    return applied;
  };
  /**
   * A processor's rate end to end: `total` events over the time from the first event it applied
   * until ClickHouse holds the results of all of them (from the audit trail of `database`). Not a
   * rate between 5% and 95% of the written progress: writes come seconds apart while the
   * processor is behind the log (write pacing), so the written progress moves in a few steps.
   */
  const drainRate = async (processor, database, total) => {
    const written = () => eventsWritten(processor, database);
    let first;
    const deadline = Date.now() + 600_000;
    for (;;) {
      if (first === undefined && (await appliedBy(processor)) > 0) first = performance.now();
      if (first !== undefined && (await written()) >= total) {
        const seconds = (performance.now() - first) / 1000;
        return { eventsPerS: total / seconds, seconds };
      }
      if (Date.now() > deadline) throw new Error(`stuck at ${await written()}/${total}`);
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  };

  const bare = [];
  const ours = [];
  // CPU of this process (KafkaJS, and for the processor also its worker thread and chDB) per event.
  const bareCpuPerEvent = [];
  const oursCpuPerEvent = [];
  for (let run = 1; run <= (FRESH_RATE === undefined && !BILLING_ONLY ? RUNS : 0); run++) {
    // Baseline: KafkaJS alone, no decoding.
    let consumed = 0;
    let cpu = process.cpuUsage();
    const consumer = kafka.consumer({ groupId: `bench-bare-${Date.now()}`, maxWaitTimeInMs: 100, maxBytesPerPartition: 4 * 1024 * 1024 });
    await consumer.connect();
    await consumer.subscribe({ topic, fromBeginning: true });
    await consumer.run({ autoCommit: false, eachBatch: async ({ batch }) => void (consumed += batch.messages.length) });
    bare.push(await rateOf(async () => consumed, EVENTS));
    const bareCpu = process.cpuUsage(cpu);
    bareCpuPerEvent.push((bareCpu.user + bareCpu.system) / consumed);
    await consumer.disconnect();

    // Ours: the processor with embedded ClickHouse.
    const database = `bench_${run}_${Date.now()}`;
    const processor = await startProcessor(
      benchProcessorConfig(topic, database, { PROCESSOR_ID: `bench-${run}` }),
      logger,
    );
    opened = processor;
    cpu = process.cpuUsage();
    ours.push((await drainRate(processor, database, EVENTS)).eventsPerS);
    const oursCpu = process.cpuUsage(cpu);
    oursCpuPerEvent.push((oursCpu.user + oursCpu.system) / EVENTS);
    await processor.stop();
    opened = undefined;
    say(
      `run ${run}: bare KafkaJS ${bare.at(-1).toFixed(0)} events/s (${bareCpuPerEvent.at(-1).toFixed(1)} µs CPU/event), processor ${ours.at(-1).toFixed(0)} events/s (${oursCpuPerEvent.at(-1).toFixed(1)} µs CPU/event)`,
    );
  }
  results.endToEnd = {
    bareKafkaJsEventsPerS: median(bare),
    processorEventsPerS: median(ours),
    ratio: median(ours) / median(bare),
    cpuMicrosPerEvent: { bare: median(bareCpuPerEvent), processor: median(oursCpuPerEvent) },
    runs: { bare, ours, bareCpuPerEvent, oursCpuPerEvent },
  };

  /**
   * A backlog as an outage leaves it: `rate` events/s of live traffic for `seconds`, stamped by
   * Kafka over those seconds (the records' timestamps are their receive times), with no processor
   * running. A processor then drains it with write pacing (the default) and one without
   * (PROCESSOR_MAX_FLUSH_INTERVAL_MS = PROCESSOR_FLUSH_INTERVAL_MS), `runs` times each, in
   * alternating order, each with its own group and database.
   */
  async function recovery(rate, seconds, runs) {
    const total = Math.round(rate * seconds);
    say(`recovery: producing a backlog of ${total} events (${rate} events/s over ${seconds} s, stamped over those seconds)…`);
    const topic = `bench-recovery-${Date.now()}`;
    await ensureTopics(kafka, [{ topic, numPartitions: 4 }]);
    const now = Date.now();
    // Page views live ~30 s: starting them up to 30 s before the window puts every event in it.
    let backlog = encodedWorkload({ seed: 23, events: total, baseMs: now - (seconds + 30) * 1000, spreadMs: seconds * 1000 });
    const producer = createProducer(kafka);
    await producer.connect();
    for (let i = 0; i < backlog.length; i += 5000) {
      const messages = backlog.slice(i, i + 5000).map((e) => ({ key: e.key, value: e.value, timestamp: String(Math.min(e.recvMs, now)) }));
      await producer.send({ topic, acks: -1, messages });
    }
    await producer.disconnect();
    backlog = undefined;
    const flushMs = TRIED_SETTINGS.PROCESSOR_FLUSH_INTERVAL_MS ?? '500';
    const variants = { paced: {}, unpaced: { PROCESSOR_MAX_FLUSH_INTERVAL_MS: flushMs } };
    const measured = { paced: [], unpaced: [] };
    for (let run = 1; run <= runs; run++) {
      for (const name of run % 2 === 1 ? ['paced', 'unpaced'] : ['unpaced', 'paced']) {
        const database = `bench_recovery_${name}_${run}_${Date.now()}`;
        const processor = await startProcessor(benchProcessorConfig(topic, database, { PROCESSOR_ID: `recovery-${name}-${run}` }, variants[name]), logger);
        opened = processor;
        const query = async (sql) => (await (await processor.warehouse.client.query({ query: sql, format: 'JSONEachRow' })).json())[0];
        const cpu = process.cpuUsage();
        const drained = await drainRate(processor, database, total);
        const used = process.cpuUsage(cpu);
        // A write records one range per partition, each with the write's row counts and time.
        const written = await query(
          `SELECT count() AS writes, sum(rows) AS rows FROM (SELECT any(impression_rows + minute_rows) AS rows FROM ${database}.processed_ranges GROUP BY processed_at)`,
        );
        await processor.stop();
        opened = undefined;
        const m = { eventsPerS: drained.eventsPerS, drainSeconds: drained.seconds, cpuMicrosPerEvent: (used.user + used.system) / total, writes: Number(written.writes), rowsPerEvent: Number(written.rows) / total };
        measured[name].push(m);
        say(`recovery run ${run}, ${name}: drained in ${m.drainSeconds.toFixed(1)} s from its first event (${m.eventsPerS.toFixed(0)} events/s), ${m.cpuMicrosPerEvent.toFixed(1)} µs CPU/event, ${m.writes} writes, ${m.rowsPerEvent.toFixed(2)} rows per event`);
      }
    }
    const summary = (xs) => ({ eventsPerS: median(xs.map((x) => x.eventsPerS)), drainSeconds: median(xs.map((x) => x.drainSeconds)), cpuMicrosPerEvent: median(xs.map((x) => x.cpuMicrosPerEvent)), rowsPerEvent: median(xs.map((x) => x.rowsPerEvent)) });
    const out = { rate, seconds, events: total, paced: summary(measured.paced), unpaced: summary(measured.unpaced), runs: measured };
    out.ratio = out.unpaced.drainSeconds / out.paced.drainSeconds;
    say(`recovery: drained in ${out.paced.drainSeconds.toFixed(1)} s with pacing against ${out.unpaced.drainSeconds.toFixed(1)} s without (ratio ${out.ratio.toFixed(2)}; ${out.paced.eventsPerS.toFixed(0)} against ${out.unpaced.eventsPerS.toFixed(0)} events/s)`);
    return out;
  }

  async function billingLatency() {

  say(`billing latency over ${BILLING_ROWS} minute rows…`);
  // The processor only serves the billing API here: its topic is empty, so nothing else runs.
  const idleTopic = `bench-billing-${Date.now()}`;
  const billing = await startProcessor(
    processorConfigFromEnv({
      KAFKA_BROKERS: brokers.join(','),
      DWELL_EVENTS_TOPIC: idleTopic,
      DWELL_REJECTED_TOPIC: `${idleTopic}-rejected`,
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
    query: `INSERT INTO ${db}.exposure_minutes ${minuteRowsSelect(BILLING_ROWS)}`,
    clickhouse_settings: { max_insert_threads: 2 },
  });
  await warehouse.client.command({
    query: `INSERT INTO ${db}.impressions ${impressionRowsSelect(Math.floor(BILLING_ROWS / 4))}`,
  });
  // Superseded versions, as re-reports leave them until ClickHouse merges: 1% of the minutes and
  // impressions get a later version (a minute retracted to 0, an impression turned non-billable).
  // Merges are stopped so every query meets them.
  for (const table of ['exposure_minutes', 'impressions']) await warehouse.client.command({ query: `SYSTEM STOP MERGES ${db}.${table}` });
  await warehouse.client.command({
    query: `INSERT INTO ${db}.exposure_minutes ${minuteRowsSelect(BILLING_ROWS, { viewableMs: 0, version: 2, where: 'WHERE number % 100 = 7' })}`,
  });
  await warehouse.client.command({
    query: `INSERT INTO ${db}.impressions ${impressionRowsSelect(Math.floor(BILLING_ROWS / 4), { superseded: true, version: 2, where: 'WHERE number % 100 = 7' })}`,
  });
  say(`inserted test rows in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  const from = Date.parse('2026-11-01T00:00:00Z');
  const to = Date.parse('2026-12-01T00:00:00Z');
  const sql = async (query) => (await warehouse.client.query({ query, format: 'JSONEachRow' })).json();
  const billingApi = async (params) => {
    const response = await fetch(`${billing.httpUrl}/v1/billing?${new URLSearchParams(params).toString()}`);
    if (!response.ok) throw new Error(`billing API: ${response.status} ${await response.text()}`);
    return response.json();
  };
  // Correct before merges: the billed total equals the latest version of every minute row.
  const [expected] = await sql(
    `SELECT sum(v) AS ms FROM (SELECT argMax(viewable_ms, version) AS v FROM ${db}.exposure_minutes GROUP BY site_id, page_view_id, impression_id, minute)`,
  );
  const byAd = await billingApi({ from, to, by: 'ad' });
  const billed = byAd.reduce((sum, row) => sum + row.billable_ms, 0);
  const [unmerged] = await sql(`SELECT sum(viewable_ms) AS ms FROM ${db}.exposure_minutes`);
  if (billed !== Number(expected.ms)) throw new Error(`billing total ${billed} ms, latest versions hold ${expected.ms} ms`);
  say(`billing total before merges: ${billed} ms = argMax of the latest versions (a plain sum would say ${unmerged.ms})`);
  const queries = {
    'by ad, whole month': { from, to, by: 'ad' },
    'by campaign, whole month': { from, to, by: 'campaign' },
    'by site, whole month': { from, to, by: 'site' },
    'by day, one campaign': { from, to, by: 'day', campaign: 'campaign-3' },
    'by hour, one ad, one day': { from, to: from + 86_400_000, by: 'hour', ad: 'ad-17' },
    'by ad, one day': { from: from + 9 * 86_400_000, to: from + 10 * 86_400_000, by: 'ad' },
  };
  const RUNS_PER_QUERY = QUICK ? 7 : 21;
  results.billing = { minuteRows: BILLING_ROWS, impressionRows: Math.floor(BILLING_ROWS / 4), supersededShare: 0.01, totalChecked: billed, queries: {} };
  for (const [name, query] of Object.entries(queries)) {
    await billingApi(query); // warm-up
    const times = [];
    for (let i = 0; i < RUNS_PER_QUERY; i++) {
      const t = performance.now();
      await billingApi(query);
      times.push(performance.now() - t);
    }
    // The same report as SQL gets it from the billing_by_<dimension> view, called directly.
    const view = [];
    for (let i = 0; i <= RUNS_PER_QUERY; i++) {
      const t = performance.now();
      await sql(
        `SELECT * FROM ${db}.billing_by_${query.by}(from = fromUnixTimestamp64Milli(${query.from}, 'UTC'), to = fromUnixTimestamp64Milli(${query.to}, 'UTC'), ad = '${query.ad ?? ''}', campaign = '${query.campaign ?? ''}', site = '', user = '') ORDER BY key`,
      );
      if (i > 0) view.push(performance.now() - t);
    }
    // Baseline: the minute aggregation alone without FINAL (wrong before merges, the floor).
    const plain = [];
    for (let i = 0; i < 5; i++) {
      const t = performance.now();
      await sql(`SELECT ad_id, sum(viewable_ms) FROM ${db}.exposure_minutes GROUP BY ad_id`);
      plain.push(performance.now() - t);
    }
    const ms = percentiles(times, [50, 99]);
    const viewMs = percentiles(view, [50, 99]);
    results.billing.queries[name] = { p50Ms: ms.p50, p99Ms: ms.p99, runs: RUNS_PER_QUERY, plainScanMedianMs: median(plain), ratio: ms.p50 / median(plain), viewP50Ms: viewMs.p50, viewP99Ms: viewMs.p99 };
    say(`billing ${name}: p50 ${ms.p50.toFixed(0)} ms, p99 ${ms.p99.toFixed(0)} ms (plain scan without FINAL ${median(plain).toFixed(0)} ms; the billing_by_${query.by} view in SQL p50 ${viewMs.p50.toFixed(0)}, p99 ${viewMs.p99.toFixed(0)} ms)`);
  }
  await billing.stop();
  opened = undefined;
  }

  // 3. Live traffic: a producer on the same two cores sends events at a fixed rate while the
  // processor consumes them; the live maximum and freshness (3a, 3b) are measured this way.
  /**
   * Per second from the schedule's start: [s, events offered, applied, written]; written from each
   * write's offset ranges (`writes[].at` is a Date.now() time, `started` a performance.now() one).
   */
  const timeline = (appliedSamples, writes, started, rate, seconds) => {
    const epoch = Date.now() - performance.now();
    const out = [];
    let a = 0;
    let w = 0;
    let written = 0;
    const end = Math.max(appliedSamples.at(-1)?.[0] ?? 0, ((writes.at(-1)?.at ?? 0) - epoch - started) / 1000);
    for (let t = 1; t <= Math.ceil(end); t++) {
      let applied = out.at(-1)?.[2] ?? 0;
      while (a < appliedSamples.length && appliedSamples[a][0] <= t) applied = appliedSamples[a++][1];
      while (w < writes.length && (writes[w].at - epoch - started) / 1000 <= t) {
        for (const range of writes[w++].ranges) written += Number(range.last_offset) - Number(range.first_offset) + 1;
      }
      out.push([t, Math.round(Math.min(t, seconds) * rate), applied, written]);
    }
    return out;
  };
  const freshnessAt = async (rate, seconds, { drainDeadlineMs = 120_000 } = {}) => {
    const freshTopic = `bench-fresh-${Date.now()}`;
    await ensureTopics(kafka, [{ topic: freshTopic, numPartitions: 4 }]);
    const writes = [];
    const snapshots = [];
    const database = `bench_fresh_${Date.now()}`;
    const processor = await startProcessor(
      benchProcessorConfig(freshTopic, database),
      logger,
      {
        store: (store) => {
          const writeResults = store.writeResults.bind(store);
          store.writeResults = async (write) => {
            const started = Date.now();
            await writeResults(write);
            writes.push({ at: Date.now(), started, ranges: write.ranges, rows: write.impressions.rows + write.minutes.rows });
          };
          const saveSnapshot = store.saveSnapshot.bind(store);
          store.saveSnapshot = async (snapshot) => {
            const started = Date.now();
            await saveSnapshot(snapshot);
            snapshots.push({ started, ms: Date.now() - started, partition: snapshot.partition, kind: snapshot.kind ?? 'full', pageViews: snapshot.pageViews, chars: snapshot.snapshot.length });
          };
          return store;
        },
      },
    );
    opened = processor;
    await new Promise((resolve) => setTimeout(resolve, 3000)); // group join
    const sends = [];
    // A heap for ledgers of up to ~20 million events (about 450 bytes each while they are built).
    const child = spawn(process.execPath, ['--max-old-space-size=16384', '--max-semi-space-size=64', '--expose-gc', join(root, 'bench/processor/producer.mjs'), brokers.join(','), freshTopic, String(rate), String(seconds)], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const exited = new Promise((resolve) => child.once('exit', resolve));
    // Its first line says the ledger is built and the schedule starts: measure from there.
    const built = await new Promise((resolve, reject) => {
      createInterface({ input: child.stdout }).on('line', (line) => {
        const message = JSON.parse(line);
        if (message.ready) resolve(message);
        else sends.push(message);
      });
      void exited.then(() => reject(new Error('the producer exited before building its ledger')));
    });
    say(`producer built ${built.events} events (${(built.bytes / 1e6).toFixed(0)} MB) in ${(built.buildMs / 1000).toFixed(1)} s; producing…`);
    const producerCpuAtStart = cpuSeconds(child.pid);
    const load = [];
    const sampler = setInterval(() => load.push(loadavg()[0]), 1000);
    // CPU while the events flow: this process (the processor), the producer, the broker.
    const brokerCpu = () => cpuSecondsOf(processTree(broker.pid)); // the JVM runs under a wrapper script
    const cpuAt = { processor: process.cpuUsage(), broker: brokerCpu(), threads: threadCpuSeconds(), workers: await workerCpuSeconds(processor), started: performance.now() };
    // Events the processor has applied, sampled twice a second against the schedule's clock (s).
    const appliedSamples = [];
    let sampling = false;
    const appliedSampler = setInterval(() => {
      if (sampling) return;
      sampling = true;
      const asked = performance.now();
      void appliedBy(processor)
        // The count was read between the request and the answer: stamped halfway.
        .then((n) => appliedSamples.push([((asked + performance.now()) / 2 - cpuAt.started) / 1000, n, 1]))
        .finally(() => (sampling = false));
    }, 500);
    let producerCpu = 0;
    const producerSampler = setInterval(() => {
      const seconds = cpuSeconds(child.pid);
      if (Number.isFinite(seconds)) producerCpu = seconds - producerCpuAtStart;
    }, 200);
    await exited;
    clearInterval(producerSampler);
    const flowSeconds = (performance.now() - cpuAt.started) / 1000;
    const processorCpu = process.cpuUsage(cpuAt.processor);
    // Where the processor's cores go: its consumer thread, its partition worker threads (from the
    // processor's own metric), V8's and libuv's helper threads (named "node" like the workers:
    // garbage collection and compilation for every thread), and embedded ClickHouse's threads.
    const elapsed = (performance.now() - cpuAt.started) / 1000;
    const workersNow = await workerCpuSeconds(processor);
    const workerThreads = [...workersNow].map(([worker, s]) => [`partition worker ${worker}`, s - (cpuAt.workers.get(worker) ?? 0)]);
    const workersTotal = workerThreads.reduce((sum, [, s]) => sum + s, 0);
    const threads = [
      ...workerThreads,
      ...threadCpuDelta(cpuAt.threads, threadCpuSeconds()).map(([name, s]) => (name === 'node' ? ['node (V8 and libuv helpers)', s - workersTotal] : [name, s])),
    ]
      .sort((a, b) => b[1] - a[1])
      .slice(0, 12)
      .map(([name, s]) => [name, Number((s / elapsed).toFixed(3))]);
    const cores = {
      processor: (processorCpu.user + processorCpu.system) / 1e6 / flowSeconds,
      producer: producerCpu / flowSeconds,
      broker: (brokerCpu() - cpuAt.broker) / flowSeconds,
    };
    // Every event is counted: wait until all of them are written (a processor that fell behind
    // shows it here, instead of leaving its slowest events out).
    const total = rate * seconds;
    const deadline = Date.now() + drainDeadlineMs;
    let drained = false;
    for (;;) {
      if ((await eventsWritten(processor, database)) >= total) drained = true;
      if (drained || Date.now() > deadline) break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    clearInterval(sampler);
    clearInterval(appliedSampler);
    // What the snapshots cost in all, serializing (in the partition's worker) and storing, from
    // the processor's own histogram: with the stores timed above, what serializing took.
    const metricsText = await metricsOf(processor);
    // Summed over labels (a snapshot's cost is labelled with its kind, full or delta).
    const metric = (name) =>
      [...metricsText.matchAll(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'gm'))].reduce((sum, m) => sum + Number(m[1]), 0);
    const snapshotsBeforeStop = snapshots.length;
    const snapshotCost = { count: metric('dwell_processor_snapshot_duration_ms_count'), ms: metric('dwell_processor_snapshot_duration_ms_sum') };
    await processor.stop();
    opened = undefined;
    const byPartition = new Map();
    for (const s of sends) {
      const list = byPartition.get(s.partition) ?? [];
      list.push(s);
      byPartition.set(s.partition, list);
    }
    for (const list of byPartition.values()) list.sort((a, b) => Number(a.baseOffset) - Number(b.baseOffset));
    // From the producer's send (its own queueing included) and from Kafka's acknowledgement (the
    // event is in the log: what the processor can be held to).
    // Per write: the age of its oldest event (the strictest reading). Per event: every event's own
    // age when the write holding it landed (the target's reading), from the send that carried it
    // (a send's events are the offsets up to the next send's base offset on that partition).
    const freshness = [];
    const fromAck = [];
    const perEvent = [];
    const perEventFromAck = [];
    // Every event's age at its write against when it was sent (s from the first send): flat while
    // the processor keeps pace with the producer, rising by R/C − 1 s a second while it takes
    // C events/s of R offered.
    const aged = [];
    const firstSentAt = Math.min(...sends.map((s) => s.sentAt));
    // Each write: [landed, s from the first send; how long it took, ms; its oldest event's age, ms; rows].
    const writeLog = [];
    for (const write of writes) {
      const entry = [Number(((write.at - firstSentAt) / 1000).toFixed(2)), write.at - write.started, 0, write.rows];
      writeLog.push(entry);
      for (const range of write.ranges) {
        const list = byPartition.get(range.partition) ?? [];
        const first = Number(range.first_offset);
        const last = Number(range.last_offset);
        // The send that carried the range's first (oldest) event.
        let carrier;
        for (const s of list) if (Number(s.baseOffset) <= first) carrier = s;
        if (carrier === undefined) continue;
        freshness.push(write.at - carrier.sentAt);
        entry[2] = Math.max(entry[2], write.at - carrier.sentAt);
        fromAck.push(Math.max(0, write.at - carrier.ackedAt));
        for (let i = 0; i < list.length; i++) {
          const from = Math.max(first, Number(list[i].baseOffset));
          const to = Math.min(last + 1, i + 1 < list.length ? Number(list[i + 1].baseOffset) : Infinity);
          if (to <= from) continue;
          perEvent.push([write.at - list[i].sentAt, to - from]);
          aged.push([(list[i].sentAt - firstSentAt) / 1000, (write.at - list[i].sentAt) / 1000, to - from]);
          perEventFromAck.push([Math.max(0, write.at - list[i].ackedAt), to - from]);
        }
      }
    }
    return {
      rateEventsPerS: rate,
      seconds,
      writes: freshness.length,
      loadavg1m: { min: Math.min(...load), max: Math.max(...load) },
      coresWhileProducing: cores,
      processorThreadCores: threads,
      ms: percentiles(freshness, [50, 90, 99, 100]),
      fromAckMs: percentiles(fromAck, [50, 90, 99, 100]),
      perEventMs: weightedPercentiles(perEvent, [50, 90, 99, 100]),
      perEventFromAckMs: weightedPercentiles(perEventFromAck, [50, 90, 99, 100]),
      // The events sent in the schedule's second half: a processor past its start, holding the
      // page views a steady stream keeps open.
      perEventSecondHalfMs: weightedPercentiles(aged.filter(([sentS]) => sentS >= seconds / 2).map(([, age, n]) => [Math.round(age * 1000), n]), [50, 90, 99, 100]),
      producerSeconds: flowSeconds,
      writeLog,
      // Each snapshot stored: when it started (s from the first send), how long storing took.
      snapshots: snapshots.map((x) => ({ ...x, started: Number(((x.started - firstSentAt) / 1000).toFixed(2)) })),
      // The snapshots taken while the events flowed (not those of the stop): serializing and
      // storing them took `ms` in all, storing `storeMs`.
      snapshotCost: { ...snapshotCost, storeMs: snapshots.slice(0, snapshotsBeforeStop).reduce((sum, x) => sum + x.ms, 0) },
      // Whether every event was written before the deadline; how fast the events' age grew over
      // the schedule's second half, s per s (see liveMaximum).
      drained,
      ageGrowth: weightedSlope(aged.filter(([sentS]) => sentS >= seconds / 2)),
      // The share of the offered rate the processor fell short by while the schedule's second half
      // ran: 1 − (events applied per second ÷ the rate). About 0 while it keeps pace.
      appliedShortfall: 1 - weightedSlope(appliedSamples.filter(([at]) => at >= seconds / 2 && at <= seconds)) / rate,
      // Events applied and written by each second of the schedule and after it, against those offered.
      timeline: timeline(appliedSamples, writes, cpuAt.started, rate, seconds),
      // Every write holds the rows that changed since the previous one, of each page view changed.
      rowsWrittenPerEvent: writes.reduce((sum, w) => sum + w.rows, 0) / total,
    };
  };
  const seconds = Number(flag('fresh-seconds', QUICK ? 10 : 120));
  // Shares of the end-to-end rate to measure freshness at: 2 (half load, the target's) and 10 by
  // default; `--fresh-ladder 10,5,4,3,2` walks up to find where live traffic stops keeping up.
  const ladder = flag('fresh-ladder', BILLING_ONLY ? 'none' : '2,10') ?? '2,10';
  const shares = ladder === 'none' ? [] : ladder.split(',').map(Number);
  // The end-to-end rate measured above, or twice --fresh-rate when it was not measured.
  const catchUp = FRESH_RATE === undefined ? median(ours) : Number(FRESH_RATE) * 2;
  const tellFreshness = (key, label) => {
    const r = results[key];
    const { processor: p, producer: q, broker: k } = r.coresWhileProducing;
    say(`freshness at ${label}: processor cores by thread: ${r.processorThreadCores.map(([n, c]) => `${n} ${c}`).join(', ')}`);
    say(
      `freshness at ${label}: per event p50 ${r.perEventMs.p50} ms, p99 ${r.perEventMs.p99} ms (from Kafka's ack p99 ${r.perEventFromAckMs.p99} ms; sent in the second half p50 ${r.perEventSecondHalfMs.p50}, p99 ${r.perEventSecondHalfMs.p99} ms); oldest event of each write: from send p50 ${r.ms.p50} ms, p99 ${r.ms.p99} ms; from Kafka's ack p50 ${r.fromAckMs.p50} ms, p99 ${r.fromAckMs.p99} ms; over ${r.writes} writes, ${r.rowsWrittenPerEvent.toFixed(2)} rows per event; producing took ${r.producerSeconds.toFixed(1)} s (load average ${r.loadavg1m.min.toFixed(1)}–${r.loadavg1m.max.toFixed(1)}; cores used: processor ${p.toFixed(2)}, producer ${q.toFixed(2)}, broker ${k.toFixed(2)}); applied ${((1 - r.appliedShortfall) * 100).toFixed(1)}% of the offered rate over its second half, events' age growing ${r.ageGrowth.toFixed(3)} s per s`,
    );
  };

  // 3a. The live maximum: the highest rate of live traffic this machine sustains, the producer and
  // the broker on the same two cores as the processor. The end-to-end rate above is a pre-filled
  // log drained with the whole machine to the processor; live, the same cores also produce and
  // store every event. A rate is sustained when, over the second half of its schedule, the
  // processor applies at least LIVE_KEEPS of the offered events per second (its backlog stops
  // growing, however far behind write pacing lets its results run), the producer keeps its
  // schedule, and every event is written within LIVE_DRAIN_S of the schedule's end.
  // Bisection between a sixth of the end-to-end rate and half of it (which it does not sustain:
  // BENCHMARKS.md, "The live maximum, and freshness over two minutes"); when every probe is
  // sustained, the maximum is at least the last one.
  const LIVE_KEEPS = 0.98;
  const LIVE_DRAIN_S = 60;
  const liveFlag = flag('live-max', FRESH_RATE === undefined && !BILLING_ONLY ? 'auto' : 'none');
  if (liveFlag === 'auto') {
    const probes = Number(flag('live-probes', QUICK ? 2 : 4));
    // Long enough to pass the fall behind and the start of write pacing (it starts at 5 s of lag,
    // which a rate just beyond what is kept fresh reaches after 30–40 s) and to judge what follows.
    const liveSeconds = Number(flag('live-seconds', QUICK ? 30 : 120));
    let low = Math.round(catchUp / 6);
    let high = Math.round(catchUp / 2);
    const tried = [];
    for (let i = 0; i < probes; i++) {
      const rate = Math.round((low + high) / 2);
      say(`live maximum, probe ${i + 1} of ${probes}: ${rate} events/s for ${liveSeconds} s (sustained so far ${low}, not ${high})…`);
      const r = await freshnessAt(rate, liveSeconds, { drainDeadlineMs: LIVE_DRAIN_S * 1000 });
      const kept = r.producerSeconds <= liveSeconds * 1.05;
      const sustained = kept && r.drained && 1 - r.appliedShortfall >= LIVE_KEEPS;
      tried.push({ rate, sustained, appliedShare: 1 - r.appliedShortfall, ageGrowth: r.ageGrowth, drained: r.drained, producerSeconds: r.producerSeconds, p99PerEventMs: r.perEventMs.p99, cores: r.coresWhileProducing, rowsPerEvent: r.rowsWrittenPerEvent, timeline: r.timeline });
      say(
        `live maximum, probe ${i + 1}: ${rate} events/s ${sustained ? 'sustained' : 'not sustained'}: applied ${((1 - r.appliedShortfall) * 100).toFixed(1)}% of it over its second half, age growing ${r.ageGrowth.toFixed(3)} s per s, ${r.drained ? 'all written' : `not all written within ${LIVE_DRAIN_S} s`}, producer ${r.producerSeconds.toFixed(1)} s for ${liveSeconds}, p99 ${r.perEventMs.p99} ms; cores: processor ${r.coresWhileProducing.processor.toFixed(2)}, producer ${r.coresWhileProducing.producer.toFixed(2)}, broker ${r.coresWhileProducing.broker.toFixed(2)}`,
      );
      if (sustained) low = rate;
      else high = rate;
    }
    const bounded = tried.some((t) => !t.sustained);
    results.liveMaximum = { eventsPerS: low, notSustained: bounded ? high : null, keeps: LIVE_KEEPS, drainSeconds: LIVE_DRAIN_S, seconds: liveSeconds, probes: tried };
    say(`live maximum: ${low} events/s sustained, ${bounded ? `${high} not` : `${high} not probed`} (${(low / catchUp).toFixed(2)} of the end-to-end rate)`);
  } else if (liveFlag !== 'none') {
    results.liveMaximum = { eventsPerS: Number(liveFlag), given: true };
  }

  // 3b. Freshness at shares of the load: of the live maximum when there is one (half of it is the
  // target's half load), else of the end-to-end rate (twice --fresh-rate when that is given).
  const base = results.liveMaximum?.eventsPerS ?? catchUp;
  results.freshnessBase = results.liveMaximum ? 'live maximum' : FRESH_RATE === undefined ? 'end-to-end rate' : 'twice --fresh-rate';
  results.freshnessLadder = [];
  for (const share of shares) {
    const key = share === 2 ? 'freshness' : share === 10 ? 'freshnessLight' : `freshnessAt1of${share}`;
    const label = share === 2 ? 'half load' : share === 10 ? 'a tenth of the load' : `1/${share} of the load`;
    const rate = Math.max(1000, Math.round(base / share));
    say(`freshness at ${label}: ${rate} events/s for ${seconds} s…`);
    results[key] = await freshnessAt(rate, seconds);
    results.freshnessLadder.push({ share, rate, p99PerEventMs: results[key].perEventMs.p99, p99OldestPerWriteMs: results[key].ms.p99, processorCores: results[key].coresWhileProducing.processor, rowsPerEvent: results[key].rowsWrittenPerEvent });
    tellFreshness(key, label);
  }
  // Half of the pre-filled end-to-end rate as well, the stricter reading of half load, which this
  // machine cannot keep fresh (BENCHMARKS.md: the processor alone would need these two cores).
  if (results.liveMaximum && shares.includes(2)) {
    const rate = Math.round(catchUp / 2);
    say(`freshness at half the end-to-end rate: ${rate} events/s for ${seconds} s…`);
    results.freshnessHalfEndToEnd = await freshnessAt(rate, seconds);
    tellFreshness('freshnessHalfEndToEnd', 'half the end-to-end rate');
  }

  // 4. Recovery: a backlog left by an outage, drained with and without write pacing.
  const recoveryRate = flag('recovery-rate', undefined);
  if (recoveryRate !== undefined || (FRESH_RATE === undefined && !BILLING_ONLY && !args.includes('--no-recovery'))) {
    const rate = Number(recoveryRate ?? Math.round(catchUp / 4));
    const seconds = Number(flag('recovery-seconds', QUICK ? 20 : 60));
    results.recovery = await recovery(rate, seconds, QUICK ? 1 : RUNS);
  }

  // 5. Billing latency over many minute rows.
  if (FRESH_RATE === undefined) await billingLatency();
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
// The summary leaves out the per-write and per-second records (the result file has them).
const brief = (r) => r && { ...r, writeLog: undefined, timeline: undefined, snapshots: undefined };
const liveBrief = results.liveMaximum && { ...results.liveMaximum, probes: results.liveMaximum.probes?.map(brief) };
process.stdout.write(`\n${JSON.stringify({ endToEnd: results.endToEnd, liveMaximum: liveBrief, freshness: brief(results.freshness), freshnessHalfEndToEnd: brief(results.freshnessHalfEndToEnd), freshnessLight: brief(results.freshnessLight), freshnessLadder: results.freshnessLadder, recovery: results.recovery && { ...results.recovery, runs: undefined }, billing: results.billing }, null, 2)}\nresults: ${file}\n`);
process.exit(0);
