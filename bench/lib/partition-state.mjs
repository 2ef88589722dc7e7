// A real partition's state after minutes of steady traffic, for the snapshot benchmarks: the given
// rate into one partition for the given minutes, applied as the processor applies it (results
// taken every 10 s of event time), built in this thread or in a partition worker thread.
import { PartitionWork, PREPARE_BUDGET_MS, PREPARE_EVERY_MS } from '../../services/processor/dist/partition-work.js';
import { encodedWorkload } from './workload.mjs';

const sleep = (ms) => new Promise((done) => setTimeout(done, ms));

/** The events, in log order (recv_ms). */
function partitionEvents(rate, minutes) {
  const spanMs = minutes * 60_000;
  const events = encodedWorkload({ seed: 7, events: Math.round((rate * spanMs) / 1000), baseMs: 1_764_000_000_000, spreadMs: spanMs });
  return events.sort((a, b) => a.recvMs - b.recvMs);
}

/**
 * Partition 0 of a PartitionWork in this thread, with the snapshot texts made ahead in the share
 * of time the processor's thread gives them; returns it and its full snapshot.
 */
export function builtPartition(rate, minutes) {
  process.stderr.write(`building a partition of ${rate.toLocaleString('en-US')} events/s over ${minutes} min...\n`);
  const events = partitionEvents(rate, minutes);
  const work = new PartitionWork();
  work.restore(0, null, 0);
  let writeAt = events[0].recvMs + 10_000;
  for (let i = 0; i < events.length; i += 200) {
    const batch = events.slice(i, i + 200);
    work.apply(0, batch.map((e) => e.value));
    work.prepare((PREPARE_BUDGET_MS / PREPARE_EVERY_MS) * ((batch.length / rate) * 1000));
    if (batch[batch.length - 1].recvMs >= writeAt) {
      work.take([[0, i + batch.length - 1]]);
      writeAt += 10_000;
    }
  }
  work.take([[0, events.length - 1]]);
  const snapshot = work.snapshot(0, false);
  process.stderr.write(`full snapshot: ${(snapshot.bytes.length / 1e6).toFixed(1)} MB, ${snapshot.pageViews.toLocaleString('en-US')} page views\n`);
  return { work, snapshot };
}

/**
 * Fills partition 0 of a worker thread's engine (partition 1 restored empty beside it), with idle
 * time as at the real pace for the texts made ahead; returns the first events, for small batches.
 */
export async function fillWorkerPartition(engine, rate, minutes) {
  process.stderr.write(`building a partition of ${rate.toLocaleString('en-US')} events/s over ${minutes} min in a worker...\n`);
  const events = partitionEvents(rate, minutes);
  await engine.restore(0, null, 0);
  await engine.restore(1, null, 0);
  let writeAt = events[0].recvMs + 10_000;
  for (let i = 0; i < events.length; i += 500) {
    const batch = events.slice(i, i + 500);
    await engine.apply(0, batch.map((e) => e.value));
    if (batch[batch.length - 1].recvMs >= writeAt) {
      await engine.take([[0, i + batch.length - 1]]);
      writeAt += 10_000;
    }
    if (i % 50_000 === 0) await sleep(60);
  }
  await engine.take([[0, events.length - 1]]);
  return events.slice(0, 20).map((e) => e.value);
}
