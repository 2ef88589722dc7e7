import { createHash } from 'node:crypto';
import { DEFAULT_RULES_CONFIG, EVENT_OUTCOMES, type EventOutcome, type RulesConfig } from '@dwell/exposure';
import type { Consumer, EachBatchPayload, Kafka, Producer } from '@dwell/kafka';
import { encodeRejectedFrame, type RejectionReasonCode } from '@dwell/protocol';
import type { Logger, MetricsRegistry } from '@dwell/runtime';
import type { ExposureStore, ProcessedRange, ResultsWrite } from '@dwell/warehouse';
import { Mutex } from './mutex.js';
import type { PartitionEngine } from './partition-engine.js';
import type { AppliedBatch, Rejection } from './partition-work.js';
import { deltaAllowed, snapshotIntervalMs, type SnapshotChain } from './snapshot-pacing.js';
import { firstImpressionTurn, lagMs, nextImpressionTurn, writeIntervalMs } from './write-pacing.js';

export interface ExposureConsumerOptions {
  readonly topic: string;
  readonly rejectedTopic: string;
  readonly processorId: string;
  /** How often accumulated results are written to ClickHouse while caught up with the log, ms. */
  readonly flushIntervalMs: number;
  /** Longest interval between writes while behind the log, ms (see write-pacing.ts); `flushIntervalMs` or less: always `flushIntervalMs`. */
  readonly maxFlushIntervalMs: number;
  /**
   * How often a partition's writes carry the impression rows of its open page views, ms; the
   * writes between carry their minute rows (billed time) and hold the impression rows back. At most
   * `flushIntervalMs`: every write carries both.
   */
  readonly impressionIntervalMs: number;
  /** How often partition state is snapshotted and offsets committed, ms (longer for costly snapshots, see snapshot-pacing.ts). */
  readonly snapshotIntervalMs: number;
  /** Most of the time snapshots may take, percent (see snapshot-pacing.ts). */
  readonly snapshotMaxPercent: number;
  /** How large the deltas on a full snapshot may grow, percent of it, before the next snapshot is full again (see snapshot-pacing.ts). */
  readonly snapshotDeltaPercent: number;
  /** Snapshots kept per partition. */
  readonly keepSnapshots: number;
  readonly rules?: RulesConfig;
}

interface PartitionState {
  readonly partition: number;
  // Offsets are numbers: exact up to 2^53, which no partition's log reaches.
  /** The next offset to apply. */
  nextOffset: number;
  /** First offset whose effects are not written to ClickHouse yet. */
  unflushedFrom: number;
  /** The offset of the last snapshot (and commit). */
  snapshotAt: number;
  /** When its last snapshot was asked for (or the partition resumed), ms. */
  snapshotTime: number;
  /** What its last snapshot cost, serializing and storing it, ms (0: none taken yet). */
  snapshotCostMs: number;
  /** The chain its last snapshot stored by this processor is on; undefined: the next one is full. */
  chain: SnapshotChain | undefined;
  /** A seek was issued; batches that do not start at nextOffset are stale and skipped. */
  awaitingSeek: boolean;
  /** Page views held, as of the last write or restore. */
  pageViews: number;
  /** Records in the log after the last one taken, as of the last batch. */
  backlog: number;
  /** Kafka timestamp of the last record taken, ms (NaN: none yet, or it carried none). */
  lastTakenAtMs: number;
  /** Open page views whose impression rows are held back, as of the last write stored (after a restore: its page views, until a write says). */
  impressionsHeld: number;
  /** The start of its current impression turn, ms: a write carries its impression rows once a turn has passed since. Staggered per partition and kept on that beat, so that each write carries the impression rows of only some partitions. */
  impressionTurn: number;
}

/** Result writes that may wait for ClickHouse while consumption continues. */
const MAX_PENDING_WRITES = 2;
/** Batches handed to the partition engine and not yet applied, beyond which the batch loop waits. */
const MAX_BATCHES_AHEAD = 4;

const OUTCOME_REASON: Record<Rejection['outcome'], RejectionReasonCode> = {
  late: 'late',
  conflicting_duplicate: 'duplicate_conflict',
  identity_mismatch: 'identity_mismatch',
  invalid_event: 'invalid_event',
  undecodable: 'undecodable_record',
};

/**
 * The processor's core loop: hands each partition's records in log order to the partition engine
 * (which reads them and applies them to the exposure core, in this thread or a worker thread),
 * writes complete results to ClickHouse every `flushIntervalMs` (idempotently; less often while
 * behind the log, see write-pacing.ts), and every
 * `snapshotIntervalMs` snapshots each partition's state with the offset it is valid at, then
 * commits exactly that offset. The engine serves requests in order, so a write or snapshot holds
 * exactly the records handed over before it was asked for. A restarted or newly assigned processor
 * resumes from the snapshot at its committed offset; replaying from there reproduces the same rows,
 * so a crash anywhere loses nothing and counts nothing twice.
 */
export class ExposureConsumer {
  private readonly partitions = new Map<number, PartitionState>();
  private readonly mutex = new Mutex();
  private readonly options: ExposureConsumerOptions;
  private readonly rules: RulesConfig;
  private readonly consumer: Consumer;
  private readonly kafka: Kafka;
  private readonly producer: Producer;
  private readonly store: ExposureStore;
  private readonly engine: PartitionEngine;
  private readonly log: Logger;
  private readonly metrics: ReturnType<typeof processorMetrics>;
  private lastFlushAt = Date.now();
  /** The chain of result writes in issue order; rejects only when a write gave up (stopping). */
  private writes: Promise<void> = Promise.resolve();
  private readonly pendingWrites: Promise<void>[] = [];
  /** Batches handed to the engine whose outcome is not handled yet, oldest first. */
  private readonly batchesAhead: Promise<void>[] = [];
  /** Dead letters in production order. */
  private deadLettersSent: Promise<void> = Promise.resolve();
  /** Why the engine stopped, if it did: nothing more can be computed. */
  private failure: Error | undefined;
  private lastSnapshotAt = Date.now();
  /** Snapshots being stored and their offsets committed, while consumption goes on. */
  private snapshotting: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private stopping = false;

  constructor(deps: {
    kafka: Kafka;
    consumer: Consumer;
    producer: Producer;
    store: ExposureStore;
    engine: PartitionEngine;
    logger: Logger;
    metrics: MetricsRegistry;
    options: ExposureConsumerOptions;
  }) {
    this.kafka = deps.kafka;
    this.consumer = deps.consumer;
    this.producer = deps.producer;
    this.store = deps.store;
    this.engine = deps.engine;
    this.log = deps.logger;
    this.options = deps.options;
    this.rules = deps.options.rules ?? DEFAULT_RULES_CONFIG;
    this.metrics = processorMetrics(
      deps.metrics,
      () => this.partitions,
      (now) => this.writeIntervalMs(now),
      (state) => this.snapshotIntervalMs(state),
    );
  }

  /** Subscribes and runs until `stop()`. */
  async start(): Promise<void> {
    const { consumer } = this;
    consumer.on(consumer.events.GROUP_JOIN, ({ payload }) => {
      const assigned = new Set(payload.memberAssignment[this.options.topic] ?? []);
      void this.mutex.run(async () => {
        for (const partition of [...this.partitions.keys()]) {
          if (!assigned.has(partition)) {
            // Revoked: its new owner resumes from the last snapshot; our state is stale now.
            this.partitions.delete(partition);
            this.engine.drop(partition);
            this.log.info('partition revoked', { partition });
          }
        }
      });
      this.log.info('assigned', { partitions: [...assigned].sort((a, b) => a - b) });
    });
    await consumer.subscribe({ topic: this.options.topic, fromBeginning: true });
    await consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: false,
      partitionsConsumedConcurrently: 1,
      eachBatch: (payload) => this.mutex.run(() => this.onBatch(payload)),
    });
    this.timer = setInterval(
      () => {
        void this.mutex
          .run(() => this.maintain(async () => undefined))
          .catch((error: unknown) => this.log.error('periodic flush failed', { error }));
      },
      Math.max(50, Math.floor(this.options.flushIntervalMs / 2)),
    );
  }

  /** Graceful: finish the batch in hand, write everything, snapshot, commit, leave the group. */
  async stop(): Promise<void> {
    this.stopping = true;
    if (this.timer !== undefined) clearInterval(this.timer);
    this.consumer.pause([{ topic: this.options.topic }]);
    await this.mutex.run(async () => {
      if (this.failure === undefined) await this.snapshotAll(async () => undefined);
    });
    await this.consumer.disconnect();
  }

  /** Page views held in memory across partitions, as of the last write. */
  get pageViewsInMemory(): number {
    let total = 0;
    for (const state of this.partitions.values()) total += state.pageViews;
    return total;
  }

  private async onBatch({
    batch,
    heartbeat,
    isRunning,
    isStale,
    resolveOffset,
  }: EachBatchPayload): Promise<void> {
    if (this.failure !== undefined) throw this.failure;
    if (!isRunning() || isStale() || this.stopping || batch.messages.length === 0) return;
    const partition = batch.partition;
    let state = this.partitions.get(partition);
    if (state === undefined) {
      state = await this.resume(
        partition,
        Number(batch.messages[0]?.offset ?? batch.firstOffset() ?? '0'),
        Number(batch.highWatermark) - 1,
      );
      this.partitions.set(partition, state);
      if (state.awaitingSeek) return;
    }
    const values: Array<Buffer | null> = [];
    const offsets: number[] = [];
    let lastTimestamp: string | undefined;
    for (const message of batch.messages) {
      const offset = Number(message.offset);
      if (offset < state.nextOffset) continue; // already applied (a redelivery after a seek)
      if (state.awaitingSeek && offset > state.nextOffset) return; // fetched before our seek took effect
      state.awaitingSeek = false;
      state.nextOffset = offset + 1;
      values.push(message.value);
      offsets.push(offset);
      lastTimestamp = message.timestamp;
    }
    if (values.length > 0) {
      state.backlog = Number(batch.highWatermark) - state.nextOffset;
      // Kafka writes -1 for a record without a timestamp.
      const taken = Number(lastTimestamp);
      state.lastTakenAtMs = taken >= 0 ? taken : Number.NaN;
      const handled = this.engine.apply(partition, values).then(
        (applied) => this.applied(partition, values, offsets, applied),
        (error: unknown) => {
          this.failure ??= error instanceof Error ? error : new Error(String(error));
          this.log.error('the partition engine failed: consumption stops', { error: String(error) });
        },
      );
      this.batchesAhead.push(handled);
      void handled.finally(() => this.batchesAhead.splice(this.batchesAhead.indexOf(handled), 1));
      // The engine may run behind by a few batches, no more: memory stays bounded.
      while (this.batchesAhead.length > MAX_BATCHES_AHEAD) await this.batchesAhead[0];
    }
    // Moves KafkaJS's fetch position past this batch (nothing is committed by it: commits happen
    // only with a snapshot). Without it every fetch would start again at the committed offset.
    resolveOffset(batch.lastOffset());
    await this.maintain(heartbeat);
    try {
      await heartbeat();
    } catch (error) {
      if (isRebalance(error)) {
        // Revocation is coming: hand the partitions over at the freshest possible point.
        this.log.info('rebalance: draining before the partitions move');
        await this.snapshotAll(async () => undefined);
      }
      throw error;
    }
  }

  /** Counts a batch's outcomes and sends its dead letters (in order, before the next commit). */
  private applied(
    partition: number,
    values: ReadonlyArray<Buffer | null>,
    offsets: readonly number[],
    applied: AppliedBatch,
  ): void {
    this.metrics.outcomes(applied.counts);
    if (applied.rejections.length === 0) return;
    const letters = applied.rejections.map((rejection) => {
      const offset = offsets[rejection.index] ?? -1;
      const reason = OUTCOME_REASON[rejection.outcome];
      const detail =
        rejection.outcome === 'undecodable'
          ? `${offset}: ${rejection.error ?? ''}`
          : `${rejection.outcome} at ${partition}/${offset}`;
      return { reason, detail, raw: values[rejection.index] ?? Buffer.alloc(0), event: rejection.event };
    });
    this.deadLettersSent = this.deadLettersSent.then(() => this.deadLetters(letters));
  }

  /**
   * Flushes and snapshots when their intervals have passed. Partitions are snapshotted one at a
   * time, spread over the interval: a snapshot holds a partition's whole state, and serializing it
   * holds up every partition's events for as long, so one at a time keeps each hold short.
   */
  private async maintain(keepAlive: () => Promise<void>): Promise<void> {
    const now = Date.now();
    const due = this.snapshotting === undefined ? this.snapshotDue(now) : undefined;
    if (due !== undefined) await this.startSnapshot(keepAlive, due);
    else if (now - this.lastFlushAt >= this.writeIntervalMs(now)) await this.flush(keepAlive);
  }

  /** The interval before the next write: the configured one while caught up, longer while behind (write-pacing.ts). */
  private writeIntervalMs(now: number): number {
    const { flushIntervalMs, maxFlushIntervalMs } = this.options;
    return writeIntervalMs(flushIntervalMs, maxFlushIntervalMs, lagMs(this.partitions.values(), now));
  }

  /** The interval before a partition's next snapshot: the configured one, longer when its last snapshot was costly (snapshot-pacing.ts). */
  private snapshotIntervalMs(state: PartitionState): number {
    const { snapshotIntervalMs: base, snapshotMaxPercent } = this.options;
    return snapshotIntervalMs(base, state.snapshotCostMs, this.partitions.size, snapshotMaxPercent);
  }

  /** The partition to snapshot now, if any: the longest unsnapshotted one once its interval passed. */
  private snapshotDue(now: number): PartitionState | undefined {
    const interval = this.options.snapshotIntervalMs;
    if (now - this.lastSnapshotAt < interval / Math.max(1, this.partitions.size)) return undefined;
    let due: PartitionState | undefined;
    for (const state of this.partitions.values()) {
      if (now - state.snapshotTime < this.snapshotIntervalMs(state) || state.awaitingSeek) continue;
      if (state.nextOffset === state.snapshotAt) {
        state.snapshotTime = now; // nothing new: nothing to store
        continue;
      }
      if (due === undefined || state.snapshotTime < due.snapshotTime) due = state;
    }
    return due;
  }

  /**
   * Restores a newly assigned partition from its snapshot at (or before) the committed offset.
   * `lastInLog`: the partition's last offset now, beyond which no earlier owner has written rows.
   */
  private async resume(partition: number, committed: number, lastInLog: number): Promise<PartitionState> {
    const now = Date.now();
    const { flushIntervalMs, impressionIntervalMs } = this.options;
    const fresh = (offset: number, pageViews: number, seek: boolean): PartitionState => ({
      partition,
      nextOffset: offset,
      unflushedFrom: offset,
      snapshotAt: offset,
      snapshotTime: Date.now(),
      snapshotCostMs: 0,
      chain: undefined,
      awaitingSeek: seek,
      pageViews,
      backlog: 0,
      lastTakenAtMs: Number.NaN,
      // A snapshot may hold page views whose impression rows were held back: count them all until a write says.
      impressionsHeld: pageViews,
      impressionTurn: firstImpressionTurn(partition, flushIntervalMs, impressionIntervalMs, now),
    });
    const stored = await this.store.latestSnapshot(this.options.topic, partition, committed.toString());
    if (stored !== undefined) {
      const pageViews = await this.engine.restore(partition, stored, lastInLog);
      const at = Number(stored.next_offset);
      this.metrics.restored(stored.deltas.length > 0 ? 'chain' : 'full');
      this.log.info('partition resumed from snapshot', {
        partition,
        offset: stored.next_offset,
        deltas: stored.deltas.length,
        pageViews,
      });
      if (at < committed) this.consumer.seek({ topic: this.options.topic, partition, offset: at.toString() });
      return fresh(at, pageViews, at < committed);
    }
    await this.engine.restore(partition, null, lastInLog);
    const earliest = await this.earliestOffset(partition);
    if (committed > earliest) {
      // Offsets were committed but no snapshot is left: rebuild the state from the start of the log.
      this.log.warn('no snapshot for a committed partition: replaying it from its earliest offset', {
        partition,
        committed: committed.toString(),
        earliest: earliest.toString(),
      });
      this.consumer.seek({ topic: this.options.topic, partition, offset: earliest.toString() });
      return fresh(earliest, 0, true);
    }
    return fresh(committed, 0, false);
  }

  private async earliestOffset(partition: number): Promise<number> {
    const admin = this.kafka.admin();
    await admin.connect();
    try {
      const offsets = await admin.fetchTopicOffsets(this.options.topic);
      return Number(offsets.find((o) => o.partition === partition)?.low ?? '0');
    } finally {
      await admin.disconnect();
    }
  }

  /**
   * Writes the results every partition accumulated since the last flush. Retries until stored.
   * The engine is asked for them now, so the write holds exactly the records handed over so far;
   * it is computed and written while consumption goes on. A partition's write carries its held-back
   * impression rows once its impression interval has passed (`allImpressions`: now), and such a
   * write happens even when no record came since the last one.
   */
  private async flush(keepAlive: () => Promise<void>, allImpressions = false): Promise<void> {
    const now = Date.now();
    this.lastFlushAt = now;
    const { topic, processorId, impressionIntervalMs } = this.options;
    const spans = [...this.partitions.values()]
      .map((state) => ({
        state,
        first: state.unflushedFrom,
        last: state.nextOffset - 1,
        impressions: allImpressions || now - state.impressionTurn >= impressionIntervalMs,
      }))
      .filter(({ state, impressions }) => state.nextOffset !== state.unflushedFrom || (impressions && state.impressionsHeld > 0))
      .sort((a, b) => a.state.partition - b.state.partition);
    if (spans.length === 0) return;
    for (const { state, impressions } of spans) {
      state.unflushedFrom = state.nextOffset;
      if (impressions) state.impressionTurn = nextImpressionTurn(state.impressionTurn, now, impressionIntervalMs);
    }
    const taken = this.engine.take(spans.map(({ state, last, impressions }) => [state.partition, last, impressions] as const));
    const rulesVersion = this.rules.rulesVersion;
    // A write without the held-back impression rows is another write than one with them.
    const token = createHash('sha256')
      .update(
        `${spans.map((r) => `${topic}:${r.state.partition}:${r.first}-${r.last}${r.impressions ? '' : ':minutes'}`).join('|')}|rules${rulesVersion}`,
      )
      .digest('hex');
    // Writes run one after another, in order, while consumption goes on: ClickHouse works in its
    // own threads meanwhile. At most MAX_PENDING_WRITES wait; beyond that the batch loop waits too,
    // so a slow or failing ClickHouse stops consumption instead of filling memory.
    const written = this.writes.then(async () => {
      const results = await taken;
      let oldest: number | undefined;
      const ranges: ProcessedRange[] = [];
      spans.forEach(({ state, first, last }, i) => {
        const counted = results.partitions[i];
        if (counted === undefined || counted.partition !== state.partition)
          throw new Error('the partition engine answered for other partitions');
        if (this.partitions.get(state.partition) === state) state.pageViews = counted.pageViews;
        if (counted.oldestRecvMs !== null) oldest = Math.min(oldest ?? Infinity, counted.oldestRecvMs);
        // A write of held-back impression rows alone covers no new offsets: no range to record.
        if (last < first) return;
        ranges.push({
          topic,
          partition: state.partition,
          first_offset: first.toString(),
          last_offset: last.toString(),
          events: counted.events,
          rejected: counted.rejected,
        });
      });
      const write: ResultsWrite = {
        impressions: results.impressions,
        minutes: results.minutes,
        ranges,
        rulesVersion,
        processorId,
        token,
      };
      const started = Date.now();
      if (ranges.length > 0 || write.impressions.rows > 0 || write.minutes.rows > 0)
        await this.retry('write results to ClickHouse', () => this.store.writeResults(write), keepAlive);
      spans.forEach(({ state }, i) => {
        if (this.partitions.get(state.partition) === state) state.impressionsHeld = results.partitions[i]?.impressionsHeld ?? 0;
      });
      this.metrics.flushed(
        Date.now() - started,
        write.impressions.rows,
        write.minutes.rows,
        oldest === undefined ? undefined : Date.now() - oldest,
      );
    });
    this.writes = written;
    this.pendingWrites.push(written);
    void written.finally(() => this.pendingWrites.splice(this.pendingWrites.indexOf(written), 1));
    while (this.pendingWrites.length > MAX_PENDING_WRITES) await this.pendingWrites[0];
  }

  /** Flushes, stores a snapshot of every partition at its next offset, commits those offsets, and waits for all of it. */
  private async snapshotAll(keepAlive: () => Promise<void>): Promise<void> {
    await this.snapshotting;
    await this.startSnapshot(keepAlive);
    await this.snapshotting;
    if (this.failure !== undefined) throw this.failure;
  }

  /**
   * Flushes and asks for a snapshot of `only` that partition, or of every partition, at its next
   * offset; stores them and commits their offsets in the background while consumption goes on (a
   * snapshot holds the partition's whole state: storing it takes a while, and the batches need not
   * wait for it).
   */
  private async startSnapshot(keepAlive: () => Promise<void>, only?: PartitionState): Promise<void> {
    const now = Date.now();
    this.lastSnapshotAt = now;
    // Before handing every partition over (stopping, a rebalance), its held-back impression rows too.
    await this.flush(keepAlive, only === undefined);
    // Asked right after the flush: each snapshot holds exactly the records up to its offset.
    const wanted = (only === undefined ? [...this.partitions.values()] : [only])
      .filter((state) => this.partitions.get(state.partition) === state)
      .filter((state) => state.nextOffset !== state.snapshotAt && !state.awaitingSeek)
      .map((state) => {
        state.snapshotTime = now;
        // A delta continues the chain only if it is stored; until then the next snapshot is full.
        const chain = deltaAllowed(state.chain, state.snapshotAt, this.options.snapshotDeltaPercent) ? state.chain : undefined;
        state.chain = undefined;
        return { state, chain, offset: state.nextOffset, snapshot: this.engine.snapshot(state.partition, chain !== undefined) };
      });
    if (wanted.length === 0) return;
    const written = this.writes;
    const batches = [...this.batchesAhead];
    const job = (async () => {
      // An offset is committed only once every result and dead letter up to it is stored.
      await written;
      await Promise.all(batches);
      await this.deadLettersSent;
      if (this.failure !== undefined) throw this.failure;
      const commits: Array<{ topic: string; partition: number; offset: string }> = [];
      for (const { state, chain, offset, snapshot } of wanted) {
        const taken = await snapshot;
        const { kind, bytes, pageViews, rulesVersion, rulesFingerprint, serializeMs } = taken;
        const size = bytes.length;
        // The engine makes a full snapshot where it has no base for a delta.
        const link = kind === 'delta' && chain !== undefined ? chain : undefined;
        let storeMs = 0;
        try {
          await this.retry(
            'store a snapshot',
            async () => {
              const started = Date.now();
              await this.store.saveSnapshot({
                topic: this.options.topic,
                partition: state.partition,
                nextOffset: offset.toString(),
                rulesVersion,
                rulesFingerprint,
                pageViews,
                snapshot: bytes,
                processorId: this.options.processorId,
                ...(link === undefined
                  ? { kind: 'full' as const }
                  : { kind: 'delta' as const, previousOffset: link.last.toString(), baseOffset: link.base.toString() }),
              });
              storeMs = Date.now() - started;
            },
            keepAlive,
          );
        } finally {
          // Stored or given up: its buffer may take the partition thread's next snapshot.
          this.engine.release(state.partition, taken);
        }
        state.snapshotCostMs = serializeMs + storeMs;
        this.metrics.snapshot(link === undefined ? 'full' : 'delta', size, state.snapshotCostMs);
        state.snapshotAt = offset;
        if (this.partitions.get(state.partition) === state)
          state.chain =
            link === undefined
              ? { base: offset, last: offset, baseBytes: size, deltaBytes: 0 }
              : { ...link, last: offset, deltaBytes: link.deltaBytes + size };
        commits.push({ topic: this.options.topic, partition: state.partition, offset: offset.toString() });
      }
      try {
        await this.consumer.commitOffsets(commits);
      } catch (error) {
        // The partitions may have moved; their next owner resumes from an earlier snapshot.
        this.log.warn('offset commit failed', { error });
        return;
      }
      for (const { partition } of commits) {
        await this.store
          .pruneSnapshots(this.options.topic, partition, this.options.keepSnapshots)
          .catch((error: unknown) => this.log.warn('could not prune old snapshots', { partition, error }));
      }
    })().catch((error: unknown) => this.log.error('snapshot not stored', { error: String(error) }));
    const tracked: Promise<void> = job.finally(() => {
      if (this.snapshotting === tracked) this.snapshotting = undefined;
    });
    this.snapshotting = tracked;
  }

  private async deadLetters(
    rejections: ReadonlyArray<{
      reason: RejectionReasonCode;
      detail: string;
      raw: Buffer;
      event: Rejection['event'];
    }>,
  ): Promise<void> {
    const now = Date.now();
    const messages = rejections.map(({ reason, detail, raw, event }) => ({
      key: event?.page_view_id ?? 'undecodable',
      value: encodeRejectedFrame({
        recv_ms: now,
        gateway_id: this.options.processorId,
        reason,
        detail,
        raw,
        raw_truncated: false,
        transport: 'log',
        remote_addr: null,
        origin: null,
        site_id: event?.site_id ?? null,
        user_id: event?.user_id ?? null,
        page_view_id: event?.page_view_id ?? null,
        seq: event?.seq ?? null,
      }),
    }));
    await this.retry(
      'write dead letters',
      () =>
        this.producer.send({ topic: this.options.rejectedTopic, acks: -1, messages }).then(() => undefined),
      async () => undefined,
    );
  }

  /** Retries a dependency call with capped backoff, keeping the group membership alive. */
  private async retry(
    what: string,
    attempt: () => Promise<void>,
    keepAlive: () => Promise<void>,
  ): Promise<void> {
    let delay = 100;
    for (let tries = 1; ; tries++) {
      try {
        await attempt();
        return;
      } catch (error) {
        if (this.stopping && tries >= 5) throw error;
        this.metrics.retried(what);
        this.log.warn(`could not ${what}; retrying`, { tries, inMs: delay, error: String(error) });
        await new Promise((resolve) => setTimeout(resolve, delay));
        delay = Math.min(delay * 2, 5000);
        await keepAlive().catch((heartbeatError: unknown) => {
          if (!isRebalance(heartbeatError)) throw heartbeatError;
        });
      }
    }
  }
}

function isRebalance(error: unknown): boolean {
  const type = (error as { type?: unknown }).type;
  return type === 'REBALANCE_IN_PROGRESS' || type === 'ILLEGAL_GENERATION' || type === 'UNKNOWN_MEMBER_ID';
}

function processorMetrics(
  registry: MetricsRegistry,
  partitions: () => ReadonlyMap<number, PartitionState>,
  writeInterval: (now: number) => number,
  snapshotInterval: (state: PartitionState) => number,
) {
  const outcomes = registry.counter('dwell_processor_events_total', 'Events applied, by outcome.');
  const byOutcome = new Map<string, { inc(by?: number): void }>();
  const flushMs = registry.histogram(
    'dwell_processor_flush_duration_ms',
    'ClickHouse result write latency, ms.',
    [5, 10, 25, 50, 100, 250, 500, 1000, 5000],
  );
  const freshness = registry.histogram(
    'dwell_processor_freshness_ms',
    'Age of the oldest event of a write when it landed in ClickHouse, ms.',
    [100, 250, 500, 1000, 2000, 5000, 10000, 60000],
  );
  const rows = registry.counter('dwell_processor_rows_written_total', 'Rows written, by table.');
  const impressionRows = rows.labels({ table: 'impressions' });
  const minuteRows = rows.labels({ table: 'exposure_minutes' });
  const snapshotBytes = registry.histogram(
    'dwell_processor_snapshot_bytes',
    'Size of partition snapshots, by kind: full, or a delta on the one before.',
    [1e3, 1e4, 1e5, 1e6, 1e7, 1e8],
  );
  const snapshotMs = registry.histogram(
    'dwell_processor_snapshot_duration_ms',
    'What a partition snapshot cost, by kind (full, or a delta on the one before): taking it (which holds up the partition\'s thread), encoding it (between that thread\'s other work) and storing it, ms.',
    [100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000],
  );
  const restores = registry.counter(
    'dwell_processor_snapshot_restores_total',
    'Partitions resumed from a stored snapshot, by what was read: a full snapshot alone, or a chain (a full snapshot and the deltas on it).',
  );
  registry.gauge(
    'dwell_processor_snapshot_interval_ms',
    'Current interval between snapshots, by partition: PROCESSOR_SNAPSHOT_INTERVAL_MS, or longer when the last snapshot was costly (PROCESSOR_SNAPSHOT_MAX_PERCENT).',
    () => [...partitions().values()].map((s) => [{ partition: String(s.partition) }, snapshotInterval(s)] as const),
  );
  const retries = registry.counter(
    'dwell_processor_dependency_retries_total',
    'Retried ClickHouse or Kafka calls.',
  );
  registry.gauge(
    'dwell_processor_lag_ms',
    'How long ago the last record taken was produced, by partition, while records wait behind it (0: caught up).',
    () => {
      const now = Date.now();
      return [...partitions().values()].map((s) => [{ partition: String(s.partition) }, lagMs([s], now)] as const);
    },
  );
  registry.gauge(
    'dwell_processor_write_interval_ms',
    'Current interval between result writes: PROCESSOR_FLUSH_INTERVAL_MS while caught up, half the lag (at most PROCESSOR_MAX_FLUSH_INTERVAL_MS) while more than ten intervals behind.',
    () => writeInterval(Date.now()),
  );
  registry.gauge('dwell_processor_page_views_in_memory', 'Open page views held, by partition.', () =>
    [...partitions().values()].map((s) => [{ partition: String(s.partition) }, s.pageViews] as const),
  );
  registry.gauge(
    'dwell_processor_impressions_held',
    'Open page views whose impression rows are held back until their next turn (PROCESSOR_IMPRESSION_INTERVAL_MS), by partition, as of the last write stored; their minute rows (billed time) are written. After a restore, the restored page views until the first write says.',
    () => [...partitions().values()].map((s) => [{ partition: String(s.partition) }, s.impressionsHeld] as const),
  );
  return {
    /** Adds and zeroes per-outcome counts indexed like EVENT_OUTCOMES. */
    outcomes(counts: number[]): void {
      for (let i = 0; i < counts.length; i++) {
        const n = counts[i] ?? 0;
        if (n === 0) continue;
        const outcome = EVENT_OUTCOMES[i] as EventOutcome;
        let child = byOutcome.get(outcome);
        if (child === undefined) {
          child = outcomes.labels({ outcome });
          byOutcome.set(outcome, child);
        }
        child.inc(n);
        counts[i] = 0;
      }
    },
    flushed(ms: number, impressions: number, minutes: number, freshnessMs: number | undefined): void {
      flushMs.observe(ms);
      impressionRows.inc(impressions);
      minuteRows.inc(minutes);
      if (freshnessMs !== undefined) freshness.observe(freshnessMs);
    },
    snapshot(kind: 'full' | 'delta', bytes: number, ms: number): void {
      snapshotBytes.observe(bytes, { kind });
      snapshotMs.observe(ms, { kind });
    },
    restored(kind: 'full' | 'chain'): void {
      restores.inc(1, { kind });
    },
    retried(what: string): void {
      retries.inc(1, { what });
    },
  };
}
