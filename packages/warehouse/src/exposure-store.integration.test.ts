import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Warehouse } from './client.js';
import { migrate } from './migrations.js';
import { ExposureStore, RowsEncoder, SNAPSHOT_THREAD_NICE, type ResultsWrite } from './exposure-store.js';
import { openTestWarehouse, type TestWarehouse } from '../../../test/support.js';

let opened: TestWarehouse;
let warehouse: Warehouse;
let store: ExposureStore;

beforeAll(async () => {
  opened = await openTestWarehouse('store');
  warehouse = opened.warehouse;
  await migrate(warehouse);
  store = new ExposureStore(warehouse);
});

afterAll(async () => {
  await opened?.close();
});

// 64-bit numbers are selected as text: a server quotes them in JSON, chDB does not.
// Values that a text encoding or a careless binary one would get wrong: multi-byte and long
// strings, quotes and newlines, milliseconds beyond 32 bits, a version beyond 32 bits.
const pageViewId = `pv-'ü\n€-${'x'.repeat(150)}`;
const common = {
  site_id: 'site-ß',
  page_view_id: pageViewId,
  impression_id: 'imp-"1"',
  user_id: 'user-\\1',
  ad_id: 'ad-😀',
  campaign_id: 'campaign-1',
  rules_version: 1,
};

function write(version: number, viewableMs: number, token: string): ResultsWrite {
  const impressions = new RowsEncoder();
  const minutes = new RowsEncoder();
  impressions.impression(
    {
      ...common,
      media: 'video',
      width: 640,
      height: 360,
      measurable: true,
      viewable: true,
      billable: true,
      viewable_ms: viewableMs,
      credited_ms: viewableMs,
      longest_run_ms: 2000,
      flags: [],
      first_server_ms: 1_764_000_000_123,
      last_server_ms: 1_764_000_004_987,
    },
    false,
    version,
  );
  minutes.minute({ ...common, minute_start_ms: 1_764_000_000_000, viewable_ms: viewableMs }, version);
  return {
    impressions: impressions.finish(),
    minutes: minutes.finish(),
    ranges: [{ topic: 'dwell.events.v1', partition: 0, first_offset: '0', last_offset: String(version), events: 9, rejected: 0 }],
    rulesVersion: 1,
    processorId: 'test',
    token,
  };
}

async function rows(query: string): Promise<Record<string, unknown>[]> {
  const result = await warehouse.client.query({ query, format: 'JSONEachRow' });
  return result.json<Record<string, unknown>>();
}

describe('ExposureStore.writeResults', () => {
  it('stores every value as computed, once per token, the latest version winning', async () => {
    const db = warehouse.database;
    await store.writeResults(write(5_000_000_000, 3000, 'w1'));
    // A retry of the same write (its first attempt landed, its answer was lost) stores nothing.
    await store.writeResults(write(5_000_000_000, 3000, 'w1'));
    await store.writeResults(write(5_000_000_007, 4000, 'w2'));

    expect(await rows(`SELECT toString(count()) AS n FROM ${db}.impressions`)).toEqual([{ n: '2' }]);
    expect(await rows(`SELECT toString(count()) AS n FROM ${db}.exposure_minutes`)).toEqual([{ n: '2' }]);
    expect(await rows(`SELECT toString(count()) AS n FROM ${db}.processed_ranges`)).toEqual([{ n: '2' }]);
    expect(
      await rows(
        `SELECT site_id, page_view_id, impression_id, user_id, ad_id, campaign_id, media, width, height,
                measurable, viewable, billable, toString(viewable_ms) AS viewable_ms, toString(credited_ms) AS credited_ms,
                toString(longest_run_ms) AS longest_run_ms, flags,
                toString(toUnixTimestamp64Milli(first_server_ms)) AS first, toString(toUnixTimestamp64Milli(last_server_ms)) AS last,
                final, rules_version, toString(version) AS version
         FROM ${db}.impressions FINAL`,
      ),
    ).toEqual([
      {
        ...common,
        media: 'video',
        width: 640,
        height: 360,
        measurable: 1,
        viewable: 1,
        billable: 1,
        viewable_ms: '4000',
        credited_ms: '4000',
        longest_run_ms: '2000',
        flags: [],
        first: '1764000000123',
        last: '1764000004987',
        final: 0,
        rules_version: 1,
        version: '5000000007',
      },
    ]);
    expect(
      await rows(
        `SELECT site_id, page_view_id, impression_id, toUnixTimestamp(minute) AS minute, user_id, ad_id, campaign_id,
                viewable_ms, rules_version, toString(version) AS version
         FROM ${db}.exposure_minutes FINAL`,
      ),
    ).toEqual([
      { ...common, minute: 1_764_000_000, viewable_ms: 4000, rules_version: 1, version: '5000000007' },
    ]);
    // Embedded, the rows passed through files: none is left behind.
    const spool = join(opened.dataDir, 'dwell-inserts');
    if (warehouse.mode === 'embedded') expect(readdirSync(spool)).toEqual([]);
    else expect(existsSync(spool)).toBe(false);
  });

  it('stores minute rows spanning more days than ClickHouse allows partitions per insert, once per token', async () => {
    const db = warehouse.database;
    // A write behind a sparse log: 150 minutes a day apart (the table is partitioned by day,
    // ClickHouse refuses more than 100 partitions in one insert unless told otherwise).
    const days = 150;
    const sparse = (): ResultsWrite => {
      const minutes = new RowsEncoder();
      for (let day = 0; day < days; day++)
        minutes.minute({ ...common, impression_id: 'imp-sparse', minute_start_ms: 1_700_000_040_000 + day * 86_400_000, viewable_ms: 1000 + day }, 7);
      return { impressions: new RowsEncoder().finish(), minutes: minutes.finish(), ranges: [], rulesVersion: 1, processorId: 'test', token: 'sparse' };
    };
    await store.writeResults(sparse());
    await store.writeResults(sparse());
    expect(
      await rows(
        `SELECT toString(count()) AS n, toString(uniqExact(_partition_id)) AS partitions, toString(sum(viewable_ms)) AS ms
         FROM ${db}.exposure_minutes WHERE impression_id = 'imp-sparse'`,
      ),
    ).toEqual([{ n: String(days), partitions: String(days), ms: String(days * 1000 + (days * (days - 1)) / 2) }]);
  });
});

describe('ExposureStore snapshots', () => {
  it('stores a snapshot larger than ClickHouse takes as one JSON row, and reads back the newest at or before an offset exactly', async () => {
    const topic = `topic-'ü"`;
    // A partition's snapshot under steady traffic is hundreds of MB; as a JSON row ClickHouse
    // refuses one beyond about 100 MB. Multi-byte characters, quotes, backslashes and newlines too.
    const piece = `{"id":"pv-'ü\n€","t":[1764000000123,2,3],"q":"\\"😀\\\\"},`;
    const large = `[${piece.repeat(Math.ceil(120e6 / piece.length))}{}]`;
    const save = (offset: string, snapshot: string, partition = 3) =>
      store.saveSnapshot({
        topic,
        partition,
        nextOffset: offset,
        rulesVersion: 1,
        rulesFingerprint: `1:${offset}`,
        pageViews: 2,
        snapshot,
        processorId: 'p-1',
      });
    await save('100', '{"small":true}');
    await save('9007199254740000', large);
    await save('9007199254740001', '{"later":"ü"}');
    await save('150', '{"other partition":1}', 4);

    const newest = await store.latestSnapshot(topic, 3, '9007199254740000');
    expect(newest?.next_offset).toBe('9007199254740000');
    expect(newest?.rules_fingerprint).toBe('1:9007199254740000');
    expect(newest?.snapshot.length).toBe(large.length);
    expect(newest?.snapshot === large).toBe(true);
    expect(await store.latestSnapshot(topic, 3, '9007199254739999')).toEqual({
      next_offset: '100',
      rules_fingerprint: '1:100',
      snapshot: '{"small":true}',
      deltas: [],
    });
    expect(await store.latestSnapshot(topic, 3, '99')).toBeUndefined();
    expect(await store.latestSnapshot('another topic', 3, '9007199254740001')).toBeUndefined();
    expect((await store.latestSnapshot(topic, 4, '9007199254740001'))?.snapshot).toBe('{"other partition":1}');
  });

  it('stores snapshots given as bytes, on a connection of their own, not behind a statement on the results\' one', async () => {
    // Embedded, a connection runs its statements one at a time: a snapshot behind this one
    // would wait its 3 s out (the longest sleep ClickHouse allows).
    let longDone = false;
    const long = warehouse.client.command({ query: 'SELECT sleep(3)' }).then(() => {
      longDone = true;
    });
    await store.saveSnapshot({
      topic: 'alongside',
      partition: 0,
      nextOffset: '7',
      rulesVersion: 1,
      rulesFingerprint: '1:7',
      pageViews: 1,
      // As a processor's partition thread hands it over: UTF-8 bytes.
      snapshot: Buffer.from('{"alongside":"ü€😀"}', 'utf8'),
      processorId: 'p-1',
    });
    expect((await store.latestSnapshot('alongside', 0, '7'))?.snapshot).toBe('{"alongside":"ü€😀"}');
    expect(longDone).toBe(false);
    await long;
    // One connection per name, for the warehouse's life.
    expect(warehouse.writer('snapshots')).toBe(warehouse.writer('snapshots'));
    expect(warehouse.writer('snapshots')).not.toBe(warehouse.client);
  });

  it('stores a snapshot at a low CPU priority, and leaves ClickHouse\'s threads at theirs after', async () => {
    // 96 MB: ClickHouse takes a few hundred ms to compress and write it, time enough to see its threads.
    const text = Buffer.alloc(96 * 1024 * 1024, '{"open":[1,2,3]}');
    const save = store.saveSnapshot({
      topic: 'nice',
      partition: 0,
      nextOffset: '5',
      rulesVersion: 1,
      rulesFingerprint: '1:5',
      pageViews: 1,
      snapshot: text,
      processorId: 'p-1',
    });
    if (warehouse.mode === 'embedded') {
      // Embedded ClickHouse's threads are this process's: the store's run at that nice value while
      // it lasts (where the process may change their priority: CAP_SYS_NICE), and none stays so after.
      let done = false;
      void save.then(() => (done = true), () => (done = true));
      const seen = new Set<number>();
      while (!done) {
        for (const nice of threadNices()) seen.add(nice);
        await new Promise((resolve) => setTimeout(resolve, 2));
      }
      await save;
      expect(seen.has(SNAPSHOT_THREAD_NICE)).toBe(canChangeThreadPriority());
      expect(threadNices().filter((nice) => nice === SNAPSHOT_THREAD_NICE)).toEqual([]);
    } else {
      await save;
      await warehouse.client.command({ query: 'SYSTEM FLUSH LOGS' });
      const logged = await rows(
        `SELECT Settings['os_thread_priority'] AS nice FROM system.query_log
          WHERE type = 'QueryFinish' AND current_database = currentDatabase()
            AND query LIKE 'INSERT INTO ${warehouse.database}.processor_snapshots%'`,
      );
      expect(logged).toContainEqual({ nice: String(SNAPSHOT_THREAD_NICE) });
    }
    const stored = await store.latestSnapshot('nice', 0, '5');
    expect(stored?.snapshot.length).toBe(text.length);
    expect(stored?.snapshot.slice(0, 32)).toBe(text.subarray(0, 32).toString());
  });

  it('reads back a full snapshot with the deltas on it, passing over a chain with a link missing, and prunes by full snapshots', async () => {
    const topic = 'chains';
    const save = (offset: number, kind: 'full' | 'delta', previous?: number, base?: number) =>
      store.saveSnapshot({
        topic,
        partition: 0,
        nextOffset: String(offset),
        rulesVersion: 1,
        rulesFingerprint: 'f',
        pageViews: 1,
        snapshot: `${kind}@${offset}`,
        processorId: 'p-1',
        kind,
        ...(previous === undefined ? {} : { previousOffset: String(previous), baseOffset: String(base) }),
      });
    await save(10, 'full');
    await save(20, 'delta', 10, 10);
    await save(30, 'delta', 20, 10);
    await save(40, 'full');
    await save(50, 'delta', 40, 40);
    // Follows a delta at 60 that was never stored.
    await save(70, 'delta', 60, 40);
    const at = async (offset: number) => {
      const stored = await store.latestSnapshot(topic, 0, String(offset));
      return stored === undefined ? undefined : [stored.next_offset, stored.snapshot, ...stored.deltas];
    };
    expect(await at(9)).toBeUndefined();
    expect(await at(15)).toEqual(['10', 'full@10']);
    expect(await at(39)).toEqual(['30', 'full@10', 'delta@20', 'delta@30']);
    expect(await at(40)).toEqual(['40', 'full@40']);
    expect(await at(1000)).toEqual(['50', 'full@40', 'delta@50']);
    await expect(save(80, 'delta', 80, 40)).rejects.toThrow(/follows an earlier snapshot/);

    await store.pruneSnapshots(topic, 0, 1);
    expect(await at(39)).toBeUndefined();
    expect(await at(1000)).toEqual(['50', 'full@40', 'delta@50']);
  });
});

/** The nice value of each of this process's threads (Linux). */
function threadNices(): number[] {
  const nices: number[] = [];
  for (const task of readdirSync('/proc/self/task')) {
    let stat: string;
    try {
      stat = readFileSync(`/proc/self/task/${task}/stat`, 'utf8');
    } catch {
      continue; // the thread ended meanwhile
    }
    // After the command's closing parenthesis: state is field 3, nice field 19.
    nices.push(Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16]));
  }
  return nices;
}

/** Whether this process may change its threads' priority both ways (CAP_SYS_NICE, bit 23). */
function canChangeThreadPriority(): boolean {
  const effective = /^CapEff:\s*([0-9a-f]+)$/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1] ?? '0';
  return (BigInt(`0x${effective}`) & (1n << 23n)) !== 0n;
}
