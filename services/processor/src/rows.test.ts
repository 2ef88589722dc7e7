import { describe, expect, it } from 'vitest';
import { PartitionExposure } from '@dwell/exposure';
import type { PageEvent } from '@dwell/protocol';
import { IMPRESSION_COLUMNS, IMPRESSION_TYPES, MINUTE_TYPES, readRowBinary, RowsEncoder, type RowBinaryType } from '@dwell/warehouse';
import { prng, workload } from '../../../test/workload.js';
import { RowsSink, WriteTrust } from './rows.js';

/** A ReplacingMergeTree in miniature: per key, the row of the highest version (its last column). */
class Table {
  readonly rows = new Map<string, unknown[]>();
  written = 0;
  private readonly keyColumns: number;
  private readonly types: readonly RowBinaryType[];

  constructor(keyColumns: number, types: readonly RowBinaryType[]) {
    this.keyColumns = keyColumns;
    this.types = types;
  }

  /** Upserts the rows; returns their keys. */
  insert(body: Uint8Array): string[] {
    const keys: string[] = [];
    for (const row of readRowBinary(body, this.types)) {
      const key = JSON.stringify(row.slice(0, this.keyColumns));
      const held = this.rows.get(key);
      if (held === undefined || (held.at(-1) as number) <= (row.at(-1) as number)) this.rows.set(key, row);
      this.written++;
      keys.push(key);
    }
    return keys;
  }

  /** The row's values without its version. */
  valueOf(key: string): string | undefined {
    const row = this.rows.get(key);
    return row === undefined ? undefined : JSON.stringify(row.slice(0, -1));
  }

  /** Every row's values without its version. */
  values(): Map<string, string> {
    return new Map([...this.rows].map(([key, row]) => [key, JSON.stringify(row.slice(0, -1))]));
  }
}

interface Tables {
  readonly impressions: Table;
  readonly minutes: Table;
}

const tables = (): Tables => ({ impressions: new Table(3, IMPRESSION_TYPES), minutes: new Table(4, MINUTE_TYPES) });

/**
 * A live-looking log: the synthetic workload, plus exact resends, neighbours swapped (out-of-order
 * arrival), conflicting copies that drop an impression (retractions), and bot user agents (flags).
 */
function troubledLog(seed: number): PageEvent[] {
  const random = prng(seed);
  const events = workload({ seed, pageViews: 60, eventsPerPageView: 40, baseMs: 1_764_000_000_000, spreadMs: 90_000 });
  const out: PageEvent[] = [];
  for (const event of events) {
    const roll = random();
    if (roll < 0.02 && out.length > 0) {
      out.splice(out.length - 1, 0, event); // arrives before its predecessor
      continue;
    }
    out.push(event);
    if (roll < 0.05) out.push({ ...event, recv_ms: event.recv_ms + 200 });
    else if (roll < 0.07 && event.event.impressions.length > 1)
      out.push({
        ...event,
        recv_ms: event.recv_ms + 300,
        event: { ...event.event, impressions: event.event.impressions.slice(1) },
      });
    else if (roll < 0.075) out.push({ ...event, user_agent: 'Mozilla/5.0 (compatible; Googlebot/2.1)' });
  }
  // A page view an hour later moves the watermark on: every other page view closes.
  const last = events.at(-1) as PageEvent;
  out.push({ ...last, recv_ms: last.recv_ms + 3_600_000, event: { ...last.event, page_view_id: 'pv-later', seq: 1 } });
  return out;
}

/** One write of the core's changes into fresh encoders, then into the tables; returns the keys written. */
function write(core: PartitionExposure, into: Tables, version: number, onlyChanged: boolean): { impressions: string[]; minutes: string[] } {
  const impressions = new RowsEncoder();
  const minutes = new RowsEncoder();
  const sink = new RowsSink(impressions, minutes);
  sink.version = version;
  core.writeChanges(sink, onlyChanged);
  return { impressions: into.impressions.insert(impressions.finish().body), minutes: into.minutes.insert(minutes.finish().body) };
}

/** Applies the log, writing every `every` events to both tables: complete rows, and changed rows only. */
/** Applies `log` to both cores alike, taking what they report every fifth event and at the end. */
function feedBoth(log: readonly PageEvent[], core: PartitionExposure, twin: PartitionExposure, take: () => void): void {
  log.forEach((event, offset) => {
    core.apply(event);
    twin.apply(event);
    if (offset % 5 === 0) take();
  });
  take();
}

function run(log: readonly PageEvent[], every: number, trustFrom = 0): { full: Tables; changed: Tables; checks: number } {
  const full = tables();
  const changed = tables();
  const fullCore = new PartitionExposure();
  const changedCore = new PartitionExposure();
  const trust = new WriteTrust(trustFrom);
  let checks = 0;
  const take = (version: number): void => {
    // The complete write touches every key whose value may have changed.
    const touched = write(fullCore, full, version, false);
    write(changedCore, changed, version, trust.begin(version));
    for (const table of ['impressions', 'minutes'] as const) {
      expect(changed[table].rows.size).toBe(full[table].rows.size);
      for (const key of touched[table]) expect(changed[table].valueOf(key)).toBe(full[table].valueOf(key));
    }
    checks++;
  };
  log.forEach((event, offset) => {
    fullCore.apply(event);
    changedCore.apply(event);
    if (offset % every === every - 1) take(offset);
  });
  take(log.length);
  return { full, changed, checks };
}

describe('writing only the rows that changed', () => {
  it('leaves the tables exactly as writing every row does, after every write', () => {
    for (const [seed, every] of [
      [1, 7],
      [2, 60],
      [3, 1],
    ] as const) {
      const { full, changed, checks } = run(troubledLog(seed), every);
      expect(checks).toBeGreaterThan(10);
      expect(changed.impressions.values()).toEqual(full.impressions.values());
      expect(changed.minutes.values()).toEqual(full.minutes.values());
      expect(full.minutes.rows.size).toBeGreaterThan(50);
      // It does skip rows: the same tables from fewer writes.
      expect(changed.impressions.written + changed.minutes.written).toBeLessThan(
        full.impressions.written + full.minutes.written,
      );
    }
  });

  it('writes every row of a closed page view, changed or not', () => {
    const log = troubledLog(4);
    const core = new PartitionExposure();
    const twin = new PartitionExposure();
    let finalReports = 0;
    const take = (): void => {
      // The twin's complete reports say how many rows each closed page view has.
      const expected = twin.takeChanges().closed.map((r) => ({
        id: r.page_view_id,
        impressions: r.impressions.length + r.retracted_impressions.length,
        minutes: r.buckets.length + r.retracted_buckets.length,
      }));
      const seen: typeof expected = [];
      core.writeChanges(
        {
          pageView: (identity, _flags, final) => {
            if (final) seen.push({ id: identity.page_view_id, impressions: 0, minutes: 0 });
          },
          impression: (row) => {
            const last = seen.at(-1);
            if (last !== undefined && last.id === row.page_view_id) last.impressions++;
          },
          minute: (row) => {
            const last = seen.at(-1);
            if (last !== undefined && last.id === row.page_view_id) last.minutes++;
          },
        },
        true,
      );
      expect(seen).toEqual(expected);
      finalReports += seen.length;
    };
    feedBoth(log, core, twin, take);
    expect(finalReports).toBeGreaterThan(10);
  });

  it('after a restart, skips nothing until past what an earlier owner may have written', () => {
    const trust = new WriteTrust(100);
    expect(trust.begin(40)).toBe(false);
    expect(trust.begin(99)).toBe(false);
    expect(trust.begin(100)).toBe(true);
    expect(trust.begin(120)).toBe(true);
    // And the tables still match when writes begin below the trusted offset.
    const log = troubledLog(5);
    const { changed, full } = run(log, 9, Math.floor(log.length / 2));
    expect(changed.minutes.values()).toEqual(full.minutes.values());
  });
});

describe('RowsSink', () => {
  it('marks the rows that retract an impression, and only those', () => {
    const log = troubledLog(6);
    const core = new PartitionExposure();
    const twin = new PartitionExposure();
    const retractedAt = IMPRESSION_COLUMNS.indexOf('retracted');
    const keyOf = (pageView: unknown, impression: unknown): string => JSON.stringify([pageView, impression]);
    let marked = 0;
    const take = (): void => {
      // The twin's reports name the retracted impressions apart.
      const expected: string[] = [];
      const { closed, changed } = twin.takeChanges();
      for (const report of [...closed, ...changed])
        for (const r of report.retracted_impressions) expected.push(keyOf(r.page_view_id, r.impression_id));
      const impressions = new RowsEncoder();
      core.writeChanges(new RowsSink(impressions, new RowsEncoder()), false);
      const rows = readRowBinary(impressions.finish().body, IMPRESSION_TYPES);
      const flagged = rows.filter((row) => row[retractedAt] === 1).map((row) => keyOf(row[1], row[2]));
      expect(flagged).toEqual(expected);
      expect(rows.every((row) => row[retractedAt] === 0 || row[retractedAt] === 1)).toBe(true);
      marked += flagged.length;
    };
    feedBoth(log, core, twin, take);
    expect(marked).toBeGreaterThan(0);
  });
});
