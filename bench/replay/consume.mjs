// One measured read of the benchmark topic, in its own process (so `--cpu-prof` can wrap it):
//   node consume.mjs <brokers> <topic> <mode>
// mode: kafkajs  the bare KafkaJS consumer, counting records (the baseline; the fetch size of readLog,
//                256 KiB per partition, or BENCH_MAX_BYTES)
//       read     dwell's readLog (throwaway group, offset ranges), counting records
//       decode   readLog + decodePageEvent of every record (main thread)
//       replay   what `dwell replay` runs: worker threads (one per core) that each read their share of
//                the partitions with their own consumer, decode and run PartitionExposure; then
//                the merged results' checksums. Its streaming time starts at the first progress
//                report of a worker (up to 100 ms after its first record).
//       replay1  the same on the main thread only (ReplayEngine)
// Prints one JSON line: records, wall ms (group join included) and streaming ms (first record to
// the end of processing).
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { createKafka, readLog, topicOffsets } from '@dwell/kafka';
import { decodePageEvent } from '@dwell/protocol';
import { ReplayEngine } from '../../services/cli/dist/audit/replay-engine.js';
import { replayInWorkers, defaultWorkers } from '../../services/cli/dist/audit/parallel-replay.js';
import { replayRows } from '../../services/cli/dist/audit/compare.js';
import { checksumsOf, adDayTotals } from '../../services/cli/dist/audit/canonical.js';

const [brokers, topic, mode] = process.argv.slice(2);
const kafka = createKafka({ brokers: brokers.split(','), clientId: `bench-replay-${mode}` });
const offsets = await topicOffsets(kafka, topic);
const total = offsets.reduce((sum, p) => sum + Number(p.high - p.low), 0);
const t0 = performance.now();
const cpu0 = process.cpuUsage();
let first;
let records = 0;
let checksum;

if (mode === 'kafkajs') {
  const groupId = `bench-${randomBytes(4).toString('hex')}`;
  const consumer = kafka.consumer({ groupId, maxBytesPerPartition: Number(process.env.BENCH_MAX_BYTES ?? 256 * 1024), maxBytes: 64 * 1024 * 1024, maxWaitTimeInMs: 100 });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  await new Promise((resolve) => {
    void consumer.run({
      autoCommit: false,
      eachBatch: async ({ batch }) => {
        first ??= performance.now();
        records += batch.messages.length;
        if (records >= total) resolve();
      },
    });
  });
  const end = performance.now();
  await consumer.disconnect();
  const admin = kafka.admin();
  await admin.connect();
  await admin.deleteGroups([groupId]).catch(() => undefined);
  await admin.disconnect();
  report(end);
} else {
  const scope = { fromMs: 0, toMs: Number.MAX_SAFE_INTEGER };
  const engine = mode === 'replay1' ? new ReplayEngine(scope) : undefined;
  const workers = Number(process.env.BENCH_WORKERS ?? defaultWorkers(offsets.length));
  let result;
  if (mode === 'replay') {
    // What `dwell replay` runs: each worker thread reads its partitions and replays them.
    result = await replayInWorkers(
      offsets.map((p) => ({ ...p, start: p.low })),
      { brokers: brokers.split(','), clientId: 'bench-replay', topic, scope, workers, onProgress: (n) => (first ??= n > 0 ? performance.now() : undefined) },
    );
    records = result.counts.records;
  } else {
    await readLog(kafka, {
      ...(process.env.BENCH_MAX_BYTES === undefined ? {} : { maxBytesPerPartition: Number(process.env.BENCH_MAX_BYTES) }),
      topic,
      ranges: offsets.map((p) => ({ partition: p.partition, start: p.low, end: p.high })),
      onRecords: (partition, batch) => {
        first ??= performance.now();
        records += batch.length;
        if (mode === 'decode') for (const r of batch) decodePageEvent(r.value);
        else if (engine !== undefined) return engine.partition(partition).applyAll(batch);
        return true;
      },
    });
  }
  if (engine !== undefined) result = engine.finish();
  if (result !== undefined) {
    const rows = replayRows(result.pageViews, scope);
    checksum = checksumsOf(rows.impressions, rows.minutes, adDayTotals(rows.impressions, rows.minutes)).impressions;
  }
  report(performance.now(), result === undefined ? undefined : { workers: mode === 'replay' ? workers : 0 });
}

/** CPU time of the whole process (every thread) per record, µs: what the work costs, whatever else runs. */
function cpuPerEvent() {
  const { user, system } = process.cpuUsage(cpu0);
  return Number(((user + system) / Math.max(1, records)).toFixed(2));
}

function report(end, extra = {}) {
  process.stdout.write(
    `${JSON.stringify({ mode, records, total, wall_ms: Math.round(end - t0), stream_ms: Math.round(end - (first ?? end)), rss_mb: Math.round(process.memoryUsage().rss / 1e6), cpu_us_per_event: cpuPerEvent(), checksum, ...extra })}\n`,
  );
  process.exit(0);
}
