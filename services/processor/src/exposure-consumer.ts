import { createHash } from 'node:crypto';
import { DEFAULT_RULES_CONFIG, PartitionExposure, type EventOutcome, type PageViewReport, type RulesConfig } from '@dwell/exposure';
import type { Consumer, EachBatchPayload, Kafka, Producer } from '@dwell/kafka';
import { decodePageEvent, encodeRejectedFrame, type RejectionReasonCode, type PageEvent } from '@dwell/protocol';
import type { Logger, MetricsRegistry } from '@dwell/runtime';
import type { ExposureStore, ProcessedRange, ResultsWrite } from '@dwell/warehouse';
import { Mutex } from './mutex.js';
import { rowsOf } from './rows.js';

export interface ExposureConsumerOptions {
  readonly topic: string;
  readonly rejectedTopic: string;
  readonly processorId: string;
  /** How often accumulated results are written to ClickHouse, ms. */
  readonly flushIntervalMs: number;
  /** How often partition state is snapshotted and offsets committed, ms. */
  readonly snapshotIntervalMs: number;
  /** Snapshots kept per partition. */
  readonly keepSnapshots: number;
  readonly rules?: RulesConfig;
}

interface PartitionState {
  readonly partition: number;
  exposure: PartitionExposure;
  /** The next offset to apply. */
  nextOffset: bigint;
  /** First offset whose effects are not written to ClickHouse yet. */
  unflushedFrom: bigint;
  /** The offset of the last snapshot (and commit). */
  snapshotAt: bigint;
  unflushedEvents: number;
  unflushedRejected: number;
  /** Oldest recv_ms among unflushed events: how stale ClickHouse is. */
  oldestUnflushedRecvMs: number | undefined;
  /** A seek was issued; batches that do not start at nextOffset are stale and skipped. */
  awaitingSeek: boolean;
}

/** Result writes that may wait for ClickHouse while consumption continues. */
const MAX_PENDING_WRITES = 2;

const OUTCOME_REASON: Partial<Record<EventOutcome, RejectionReasonCode>> = {
  late: 'late',
  conflicting_duplicate: 'duplicate_conflict',
  identity_mismatch: 'identity_mismatch',
  invalid_event: 'invalid_event',
};

/**
 * The processor's core loop: applies each partition's events in log order to the exposure core,
 * writes complete results to ClickHouse every `flushIntervalMs` (idempotently), and every
 * `snapshotIntervalMs` snapshots each partition's state with the offset it is valid at, then
 * commits exactly that offset. A restarted or newly assigned processor resumes from the snapshot
 * at its committed offset; replaying from there reproduces the same rows, so a crash anywhere
 * loses nothing and counts nothing twice.
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
  private readonly log: Logger;
  private readonly metrics: ReturnType<typeof processorMetrics>;
  private lastFlushAt = Date.now();
  /** The chain of result writes in issue order; rejects only when a write gave up (stopping). */
  private writes: Promise<void> = Promise.resolve();
  private readonly pendingWrites: Promise<void>[] = [];
  private lastSnapshotAt = Date.now();
  private timer: NodeJS.Timeout | undefined;
  private stopping = false;

  constructor(deps: {
    kafka: Kafka;
    consumer: Consumer;
    producer: Producer;
    store: ExposureStore;
    logger: Logger;
    metrics: MetricsRegistry;
    options: ExposureConsumerOptions;
  }) {
    this.kafka = deps.kafka;
    this.consumer = deps.consumer;
    this.producer = deps.producer;
    this.store = deps.store;
    this.log = deps.logger;
    this.options = deps.options;
    this.rules = deps.options.rules ?? DEFAULT_RULES_CONFIG;
    this.metrics = processorMetrics(deps.metrics, () => this.partitions);
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
    this.timer = setInterval(() => {
      void this.mutex.run(() => this.maintain(async () => undefined)).catch((error: unknown) => this.log.error('periodic flush failed', { error }));
    }, Math.max(50, Math.floor(this.options.flushIntervalMs / 2)));
  }

  /** Graceful: finish the batch in hand, write everything, snapshot, commit, leave the group. */
  async stop(): Promise<void> {
    this.stopping = true;
    if (this.timer !== undefined) clearInterval(this.timer);
    this.consumer.pause([{ topic: this.options.topic }]);
    await this.mutex.run(async () => {
      await this.snapshotAll(async () => undefined);
    });
    await this.consumer.disconnect();
  }

  /** Page views held in memory across partitions. */
  get pageViewsInMemory(): number {
    let total = 0;
    for (const state of this.partitions.values()) total += state.exposure.pageViewsInMemory;
    return total;
  }

  private async onBatch({ batch, heartbeat, isRunning, isStale, resolveOffset }: EachBatchPayload): Promise<void> {
    if (!isRunning() || isStale() || this.stopping || batch.messages.length === 0) return;
    const partition = batch.partition;
    let state = this.partitions.get(partition);
    if (state === undefined) {
      state = await this.resume(partition, BigInt(batch.messages[0]?.offset ?? batch.firstOffset() ?? '0'));
      this.partitions.set(partition, state);
      if (state.awaitingSeek) return;
    }
    const rejections: Array<{ reason: RejectionReasonCode; detail: string; raw: Buffer; event?: PageEvent }> = [];
    for (const message of batch.messages) {
      const offset = BigInt(message.offset);
      if (offset < state.nextOffset) continue; // already applied (a redelivery after a seek)
      if (state.awaitingSeek && offset > state.nextOffset) return; // fetched before our seek took effect
      state.awaitingSeek = false;
      state.nextOffset = offset + 1n;
      state.unflushedEvents += 1;
      if (message.value === null) continue;
      let event: PageEvent;
      try {
        event = decodePageEvent(message.value);
      } catch (error) {
        rejections.push({ reason: 'undecodable_record', detail: `${offset}: ${String(error)}`, raw: message.value });
        continue;
      }
      state.oldestUnflushedRecvMs ??= event.recv_ms;
      const outcome = state.exposure.apply(event);
      this.metrics.outcome(outcome);
      const reason = OUTCOME_REASON[outcome];
      if (reason !== undefined) rejections.push({ reason, detail: `${outcome} at ${partition}/${offset}`, raw: message.value, event });
    }
    // Moves KafkaJS's fetch position past this batch (nothing is committed by it: commits happen
    // only with a snapshot). Without it every fetch would start again at the committed offset.
    resolveOffset(batch.lastOffset());
    if (rejections.length > 0) {
      state.unflushedRejected += rejections.length;
      await this.deadLetters(rejections);
    }
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

  /** Flushes and snapshots when their intervals have passed. */
  private async maintain(keepAlive: () => Promise<void>): Promise<void> {
    const now = Date.now();
    if (now - this.lastSnapshotAt >= this.options.snapshotIntervalMs) await this.snapshotAll(keepAlive);
    else if (now - this.lastFlushAt >= this.options.flushIntervalMs) await this.flush(keepAlive);
  }

  /** Restores a newly assigned partition from its snapshot at (or before) the committed offset. */
  private async resume(partition: number, committed: bigint): Promise<PartitionState> {
    const fresh = (offset: bigint, exposure: PartitionExposure, seek: boolean): PartitionState => ({
      partition,
      exposure,
      nextOffset: offset,
      unflushedFrom: offset,
      snapshotAt: offset,
      unflushedEvents: 0,
      unflushedRejected: 0,
      oldestUnflushedRecvMs: undefined,
      awaitingSeek: seek,
    });
    const stored = await this.store.latestSnapshot(this.options.topic, partition, committed.toString());
    if (stored !== undefined) {
      const exposure = PartitionExposure.restore(JSON.parse(stored.snapshot), this.rules);
      const at = BigInt(stored.next_offset);
      this.log.info('partition resumed from snapshot', { partition, offset: stored.next_offset, pageViews: exposure.pageViewsInMemory });
      if (at < committed) this.consumer.seek({ topic: this.options.topic, partition, offset: at.toString() });
      return fresh(at, exposure, at < committed);
    }
    const earliest = await this.earliestOffset(partition);
    if (committed > earliest) {
      // Offsets were committed but no snapshot is left: rebuild the state from the start of the log.
      this.log.warn('no snapshot for a committed partition: replaying it from its earliest offset', {
        partition,
        committed: committed.toString(),
        earliest: earliest.toString(),
      });
      this.consumer.seek({ topic: this.options.topic, partition, offset: earliest.toString() });
      return fresh(earliest, new PartitionExposure(this.rules), true);
    }
    return fresh(committed, new PartitionExposure(this.rules), false);
  }

  private async earliestOffset(partition: number): Promise<bigint> {
    const admin = this.kafka.admin();
    await admin.connect();
    try {
      const offsets = await admin.fetchTopicOffsets(this.options.topic);
      return BigInt(offsets.find((o) => o.partition === partition)?.low ?? '0');
    } finally {
      await admin.disconnect();
    }
  }

  /** Writes the results every partition accumulated since the last flush. Retries until stored. */
  private async flush(keepAlive: () => Promise<void>): Promise<void> {
    this.lastFlushAt = Date.now();
    const reports: PageViewReport[] = [];
    const ranges: ProcessedRange[] = [];
    const impressions: ResultsWrite['impressions'][number][] = [];
    const minutes: ResultsWrite['minutes'][number][] = [];
    let oldest: number | undefined;
    for (const state of [...this.partitions.values()].sort((a, b) => a.partition - b.partition)) {
      if (state.nextOffset === state.unflushedFrom) continue;
      const changes = state.exposure.takeChanges();
      const partitionReports = [...changes.closed, ...changes.changed];
      reports.push(...partitionReports);
      const rows = rowsOf(partitionReports, Number(state.nextOffset - 1n));
      impressions.push(...rows.impressions);
      minutes.push(...rows.minutes);
      ranges.push({
        topic: this.options.topic,
        partition: state.partition,
        first_offset: state.unflushedFrom.toString(),
        last_offset: (state.nextOffset - 1n).toString(),
        events: state.unflushedEvents,
        rejected: state.unflushedRejected,
      });
      if (state.oldestUnflushedRecvMs !== undefined) oldest = Math.min(oldest ?? Infinity, state.oldestUnflushedRecvMs);
      state.unflushedFrom = state.nextOffset;
      state.unflushedEvents = 0;
      state.unflushedRejected = 0;
      state.oldestUnflushedRecvMs = undefined;
    }
    if (ranges.length === 0) return;
    const rulesVersion = this.rules.rulesVersion;
    const token = createHash('sha256')
      .update(`${ranges.map((r) => `${r.topic}:${r.partition}:${r.first_offset}-${r.last_offset}`).join('|')}|rules${rulesVersion}`)
      .digest('hex');
    const write: ResultsWrite = { impressions, minutes, ranges, rulesVersion, processorId: this.options.processorId, token };
    // Writes run one after another, in order, while consumption goes on: ClickHouse works in its
    // own threads meanwhile. At most MAX_PENDING_WRITES wait; beyond that the batch loop waits too,
    // so a slow or failing ClickHouse stops consumption instead of filling memory.
    const written = this.writes.then(async () => {
      const started = Date.now();
      await this.retry('write results to ClickHouse', () => this.store.writeResults(write), keepAlive);
      this.metrics.flushed(Date.now() - started, impressions.length, minutes.length, oldest === undefined ? undefined : Date.now() - oldest);
    });
    this.writes = written;
    this.pendingWrites.push(written);
    void written.finally(() => this.pendingWrites.splice(this.pendingWrites.indexOf(written), 1));
    while (this.pendingWrites.length > MAX_PENDING_WRITES) await this.pendingWrites[0];
  }

  /** Resolves when every write issued so far is stored. */
  private async writesDone(): Promise<void> {
    await this.writes;
  }

  /** Flushes, stores a snapshot of every partition at its next offset, then commits those offsets. */
  private async snapshotAll(keepAlive: () => Promise<void>): Promise<void> {
    this.lastSnapshotAt = Date.now();
    await this.flush(keepAlive);
    // An offset is committed only once every result up to it is stored.
    await this.writesDone();
    const commits: Array<{ topic: string; partition: number; offset: string }> = [];
    for (const state of this.partitions.values()) {
      if (state.nextOffset === state.snapshotAt || state.awaitingSeek) continue;
      const snapshot = state.exposure.snapshot();
      const text = JSON.stringify(snapshot);
      const offset = state.nextOffset.toString();
      await this.retry(
        'store a snapshot',
        () =>
          this.store.saveSnapshot({
            topic: this.options.topic,
            partition: state.partition,
            nextOffset: offset,
            rulesVersion: snapshot.rules_version,
            rulesFingerprint: snapshot.rules_fingerprint,
            pageViews: state.exposure.pageViewsInMemory,
            snapshot: text,
            processorId: this.options.processorId,
          }),
        keepAlive,
      );
      this.metrics.snapshot(text.length);
      state.snapshotAt = state.nextOffset;
      commits.push({ topic: this.options.topic, partition: state.partition, offset });
    }
    if (commits.length === 0) return;
    try {
      await this.consumer.commitOffsets(commits);
    } catch (error) {
      // The partitions may have moved; their next owner resumes from an earlier snapshot.
      this.log.warn('offset commit failed', { error });
      return;
    }
    for (const { partition } of commits) {
      await this.store.pruneSnapshots(this.options.topic, partition, this.options.keepSnapshots).catch((error: unknown) =>
        this.log.warn('could not prune old snapshots', { partition, error }),
      );
    }
  }

  private async deadLetters(rejections: ReadonlyArray<{ reason: RejectionReasonCode; detail: string; raw: Buffer; event?: PageEvent }>): Promise<void> {
    const now = Date.now();
    const messages = rejections.map(({ reason, detail, raw, event }) => ({
      key: event?.event.page_view_id ?? 'undecodable',
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
        page_view_id: event?.event.page_view_id ?? null,
        seq: event?.event.seq ?? null,
      }),
    }));
    await this.retry('write dead letters', () => this.producer.send({ topic: this.options.rejectedTopic, acks: -1, messages }).then(() => undefined), async () => undefined);
  }

  /** Retries a dependency call with capped backoff, keeping the group membership alive. */
  private async retry(what: string, attempt: () => Promise<void>, keepAlive: () => Promise<void>): Promise<void> {
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

function processorMetrics(registry: MetricsRegistry, partitions: () => ReadonlyMap<number, PartitionState>) {
  const outcomes = registry.counter('dwell_processor_events_total', 'Events applied, by outcome.');
  const byOutcome = new Map<string, { inc(by?: number): void }>();
  const flushMs = registry.histogram('dwell_processor_flush_duration_ms', 'ClickHouse result write latency, ms.', [5, 10, 25, 50, 100, 250, 500, 1000, 5000]);
  const freshness = registry.histogram('dwell_processor_freshness_ms', 'Age of the oldest event of a write when it landed in ClickHouse, ms.', [
    100, 250, 500, 1000, 2000, 5000, 10000, 60000,
  ]);
  const rows = registry.counter('dwell_processor_rows_written_total', 'Rows written, by table.');
  const impressionRows = rows.labels({ table: 'impressions' });
  const minuteRows = rows.labels({ table: 'exposure_minutes' });
  const snapshotBytes = registry.histogram('dwell_processor_snapshot_bytes', 'Size of partition snapshots.', [1e3, 1e4, 1e5, 1e6, 1e7, 1e8]);
  const retries = registry.counter('dwell_processor_dependency_retries_total', 'Retried ClickHouse or Kafka calls.');
  registry.gauge('dwell_processor_page_views_in_memory', 'Open page views held, by partition.', () =>
    [...partitions().values()].map((s) => [{ partition: String(s.partition) }, s.exposure.pageViewsInMemory] as const),
  );
  return {
    outcome(outcome: EventOutcome): void {
      let child = byOutcome.get(outcome);
      if (child === undefined) {
        child = outcomes.labels({ outcome });
        byOutcome.set(outcome, child);
      }
      child.inc();
    },
    flushed(ms: number, impressions: number, minutes: number, freshnessMs: number | undefined): void {
      flushMs.observe(ms);
      impressionRows.inc(impressions);
      minuteRows.inc(minutes);
      if (freshnessMs !== undefined) freshness.observe(freshnessMs);
    },
    snapshot(bytes: number): void {
      snapshotBytes.observe(bytes);
    },
    retried(what: string): void {
      retries.inc(1, { what });
    },
  };
}
