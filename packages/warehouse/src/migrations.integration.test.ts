import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Warehouse } from './client.js';
import { MIGRATIONS, MigrationError, migrate, type Migration } from './migrations.js';
import { billingReport } from './billing.js';
import { ExposureStore } from './exposure-store.js';
import { openTestWarehouse, uniqueName, type TestWarehouse } from '../../../test/support.js';

let opened: TestWarehouse;
let warehouse: Warehouse;

beforeAll(async () => {
  opened = await openTestWarehouse('wh');
  warehouse = opened.warehouse;
});

afterAll(async () => {
  await opened?.close();
});

describe('migrations', () => {
  const table = uniqueName('t');
  const first: Migration = {
    version: 1,
    name: 'first',
    statements: [`CREATE TABLE IF NOT EXISTS {db}.${table} (a UInt8) ENGINE = MergeTree ORDER BY a`],
  };
  const second: Migration = {
    version: 2,
    name: 'second',
    statements: [`ALTER TABLE {db}.${table} ADD COLUMN IF NOT EXISTS b String`],
  };

  it('applies pending migrations once and records them', async () => {
    expect(await migrate(warehouse, [first])).toEqual({ applied: [1], alreadyApplied: [] });
    expect(await migrate(warehouse, [first, second])).toEqual({ applied: [2], alreadyApplied: [1] });
    expect(await migrate(warehouse, [second, first])).toEqual({ applied: [], alreadyApplied: [1, 2] });
    const columns = await warehouse.client.query({
      query: `SELECT name FROM system.columns WHERE database = {db:String} AND table = {t:String} ORDER BY position`,
      query_params: { db: warehouse.database, t: table },
      format: 'JSONEachRow',
    });
    expect(await columns.json()).toEqual([{ name: 'a' }, { name: 'b' }]);
  });

  it('refuses a migration edited after it was applied', async () => {
    const edited: Migration = { ...first, statements: [...first.statements, 'SELECT 1'] };
    await expect(migrate(warehouse, [edited])).rejects.toBeInstanceOf(MigrationError);
  });

  it('applies the shipped migrations on an empty database, quietly, then nothing', async () => {
    const fresh: Warehouse = { ...warehouse, database: uniqueName('wh_fresh') };
    await fresh.client.command({ query: `CREATE DATABASE ${fresh.database}` });
    try {
      const progress: string[] = [];
      const report = await migrate(fresh, undefined, (line) => progress.push(line));
      expect(progress).toEqual([]);
      expect(report.applied.length).toBeGreaterThan(0);
      expect(report.alreadyApplied).toEqual([]);
      expect((await migrate(fresh)).applied).toEqual([]);
      const keys = await fresh.client.query({
        query: `SELECT name, partition_key FROM system.tables WHERE database = {db:String} AND name = 'exposure_minutes'`,
        query_params: { db: fresh.database },
        format: 'JSONEachRow',
      });
      expect(await keys.json()).toEqual([{ name: 'exposure_minutes', partition_key: 'toYYYYMMDD(minute)' }]);
    } finally {
      await fresh.client.command({ query: `DROP DATABASE IF EXISTS ${fresh.database}` });
    }
  });

  it('marks retraction rows from migration 7 on: rows written before read as not retracted', async () => {
    const upgraded: Warehouse = { ...warehouse, database: uniqueName('wh_upgrade') };
    const db = upgraded.database;
    await upgraded.client.command({ query: `CREATE DATABASE ${db}` });
    try {
      expect((await migrate(upgraded, MIGRATIONS.filter((m) => m.version <= 6))).applied).toEqual([1, 2, 3, 4, 5, 6]);
      // An impression as a processor of the older version wrote it: without the column.
      await upgraded.client.command({
        query: `INSERT INTO ${db}.impressions (site_id, page_view_id, impression_id, user_id, ad_id, campaign_id, media, width, height,
                  measurable, viewable, billable, viewable_ms, credited_ms, longest_run_ms, flags, first_server_ms, last_server_ms, final, rules_version, version)
                VALUES ('s', 'pv', 'i', 'u', 'ad-1', 'c', 'display', 300, 250, 1, 1, 1, 1500, 1500, 1500, [], '2026-11-10 10:00:00', '2026-11-10 10:00:02', 1, 1, 7)`,
      });
      // Reports read a database an older dwell made only once it is migrated, and say so.
      const period = { fromMs: Date.parse('2026-11-10T00:00:00Z'), toMs: Date.parse('2026-11-11T00:00:00Z') };
      await expect(billingReport(upgraded.client, db, { ...period, by: 'ad' })).rejects.toThrow(
        /has no column retracted: this database was made by an older dwell\. Start a processor of this version once/,
      );
      expect((await migrate(upgraded, MIGRATIONS.filter((m) => m.version <= 7))).applied).toEqual([7]);
      const rows = await (await upgraded.client.query({ query: `SELECT impression_id, retracted FROM ${db}.impressions FINAL`, format: 'JSONEachRow' })).json();
      expect(rows).toEqual([{ impression_id: 'i', retracted: 0 }]);
      expect((await billingReport(upgraded.client, db, { ...period, by: 'ad' })).map((r) => [r.key, r.impressions, r.viewable_impressions])).toEqual([['ad-1', 1, 1]]);
      // The views read the column too.
      const view = await upgraded.client.query({
        query: `SELECT key, impressions FROM ${db}.billing_by_ad(from = '2026-11-10 00:00:00', to = '2026-11-11 00:00:00', ad = '', campaign = '', site = '', user = '')`,
        format: 'JSONEachRow',
      });
      expect((await view.json<{ key: string; impressions: string | number }>()).map((r) => [r.key, Number(r.impressions)])).toEqual([['ad-1', 1]]);
    } finally {
      await upgraded.client.command({ query: `DROP DATABASE IF EXISTS ${db}` });
    }
  });

  it('reads snapshots stored before migration 8 as full ones, and keeps them through migration 9', async () => {
    const upgraded: Warehouse = { ...warehouse, database: uniqueName('wh_chains') };
    const db = upgraded.database;
    await upgraded.client.command({ query: `CREATE DATABASE ${db}` });
    try {
      await migrate(upgraded, MIGRATIONS.filter((m) => m.version <= 7));
      // A snapshot as a processor of the older version stored it: without the chain columns.
      await upgraded.client.command({
        query: `INSERT INTO ${db}.processor_snapshots (topic, partition, next_offset, rules_version, rules_fingerprint, page_views, snapshot, processor_id, created_at)
                VALUES ('t', 0, 42, 1, 'f', 1, '{"whole":1}', 'p', now64(3))`,
      });
      expect((await migrate(upgraded)).applied).toEqual([8, 9]);
      const store = new ExposureStore(upgraded);
      expect(await store.latestSnapshot('t', 0, '100')).toEqual({
        next_offset: '42',
        rules_fingerprint: 'f',
        snapshot: '{"whole":1}',
        deltas: [],
      });
      await store.saveSnapshot({
        topic: 't',
        partition: 0,
        nextOffset: '50',
        rulesVersion: 1,
        rulesFingerprint: 'f',
        pageViews: 1,
        snapshot: '{"since":1}',
        processorId: 'p',
        kind: 'delta',
        previousOffset: '42',
        baseOffset: '42',
      });
      expect((await store.latestSnapshot('t', 0, '100'))?.deltas).toEqual(['{"since":1}']);
      // Migration 9: a ClickHouse partition per chain, which pruning drops whole.
      const key = await upgraded.client.query({
        query: `SELECT partition_key FROM system.tables WHERE database = {db:String} AND name = 'processor_snapshots'`,
        query_params: { db },
        format: 'JSONEachRow',
      });
      expect(await key.json()).toEqual([{ partition_key: '(topic, partition, base_offset)' }]);
      await store.saveSnapshot({
        topic: 't',
        partition: 0,
        nextOffset: '60',
        rulesVersion: 1,
        rulesFingerprint: 'f',
        pageViews: 1,
        snapshot: '{"whole":2}',
        processorId: 'p',
      });
      await store.pruneSnapshots('t', 0, 1);
      expect(await store.latestSnapshot('t', 0, '59')).toBeUndefined();
      expect((await store.latestSnapshot('t', 0, '100'))?.snapshot).toBe('{"whole":2}');
    } finally {
      await upgraded.client.command({ query: `DROP DATABASE IF EXISTS ${db}` });
    }
  });

  describe('a table rebuilt with a new partition key', () => {
    const minutes = uniqueName('minutes');
    const definition = (partition: string): string => `CREATE TABLE IF NOT EXISTS {db}.${minutes}
      (id String, minute DateTime('UTC'), ms UInt32, version UInt64)
      ENGINE = ReplacingMergeTree(version) PARTITION BY ${partition} ORDER BY (id, minute)`;
    const created: Migration = { version: 1, name: 'created', statements: [definition('toYYYYMM(minute)')] };
    const byDay = definition('toYYYYMMDD(minute)').replace(`{db}.${minutes}`, '{db}.{table}');
    const rebuilt: Migration = { version: 2, name: 'rebuilt', statements: [], rebuild: { table: minutes, partitionKey: 'toYYYYMMDD(minute)', create: byDay } };
    // A database of its own: the tests above recorded versions 1 and 2 in theirs.
    let own: Warehouse;
    beforeAll(async () => {
      own = { ...warehouse, database: uniqueName('wh_rebuild') };
      await own.client.command({ query: `CREATE DATABASE ${own.database}` });
    });
    afterAll(async () => {
      await own?.client.command({ query: `DROP DATABASE IF EXISTS ${own.database}` });
    });
    const db = (): string => own.database;
    const query = async (sql: string): Promise<unknown[]> => (await own.client.query({ query: sql, format: 'JSONEachRow' })).json();
    const tables = async (database = db()): Promise<unknown[]> =>
      query(`SELECT name, partition_key FROM system.tables WHERE database = '${database}' AND startsWith(name, '${minutes}') ORDER BY name`);
    // Every row, superseded versions too, as selected without FINAL.
    const contents = async (database = db()): Promise<unknown[]> =>
      query(`SELECT id, toUnixTimestamp(minute) AS minute, ms, toString(version) AS version FROM ${database}.${minutes} ORDER BY id, minute, version`);

    it('keeps every row and version, swaps the table in, and leaves nothing behind', async () => {
      const migrations = [created, rebuilt];
      expect(await migrate(own, [created])).toEqual({ applied: [1], alreadyApplied: [] });
      // Rows over two months, a superseded version among them, in parts that were never merged.
      await own.client.command({ query: `SYSTEM STOP MERGES ${db()}.${minutes}` });
      for (const values of [
        `('a', '2026-10-31 23:59:00', 1000, 1), ('a', '2026-11-01 00:00:00', 2000, 1)`,
        `('a', '2026-10-31 23:59:00', 0, 2), ('b', '2026-11-15 12:00:00', 3000, 1)`,
      ])
        await own.client.command({ query: `INSERT INTO ${db()}.${minutes} VALUES ${values}` });
      const before = await contents();
      expect(before).toHaveLength(4);
      // A copy a crashed rebuild left behind.
      await own.client.command({
        query: byDay.replaceAll('{db}', db()).replaceAll('{table}', `${minutes}_rebuild_deadbeef`),
      });

      const progress: string[] = [];
      expect(await migrate(own, migrations, (line) => progress.push(line))).toEqual({ applied: [2], alreadyApplied: [1] });
      expect(await tables()).toEqual([{ name: minutes, partition_key: 'toYYYYMMDD(minute)' }]);
      expect(await contents()).toEqual(before);
      expect(await query(`SELECT ms FROM ${db()}.${minutes} FINAL ORDER BY id, minute`)).toEqual([{ ms: 0 }, { ms: 2000 }, { ms: 3000 }]);
      expect(progress).toEqual([
        expect.stringMatching(new RegExp(`^rebuilding ${db()}\\.${minutes} \\(4 rows\\) partitioned by toYYYYMMDD\\(minute\\)$`)),
        expect.stringMatching(new RegExp(`^rebuilt ${db()}\\.${minutes} in \\d+\\.\\d s$`)),
      ]);
      expect(await migrate(own, migrations)).toEqual({ applied: [], alreadyApplied: [1, 2] });
    });

    it('finishes a rebuild that was done but not recorded without copying again', async () => {
      // As after a crash between the swap and the record: the table is rebuilt, the record missing.
      await own.client.command({ query: `ALTER TABLE ${db()}.schema_migrations DELETE WHERE version = 2 SETTINGS mutations_sync = 2` });
      const before = await contents();
      const progress: string[] = [];
      expect(await migrate(own, [created, rebuilt], (line) => progress.push(line))).toEqual({ applied: [2], alreadyApplied: [1] });
      expect(progress).toEqual([]);
      expect(await contents()).toEqual(before);
      expect(await tables()).toEqual([{ name: minutes, partition_key: 'toYYYYMMDD(minute)' }]);
    });

    it('two processes rebuilding at once leave one complete table', async () => {
      const other: Warehouse = { ...warehouse, database: uniqueName('wh_race') };
      await other.client.command({ query: `CREATE DATABASE ${other.database}` });
      try {
        await migrate(other, [created]);
        await other.client.command({
          query: `INSERT INTO ${other.database}.${minutes} SELECT toString(number % 97), toDateTime('2026-10-01 00:00:00', 'UTC') + toIntervalMinute(number * 7), number % 60000, 1 FROM numbers(20000)`,
        });
        const before = await contents(other.database);
        const outcomes = await Promise.allSettled([migrate(other, [created, rebuilt]), migrate(other, [created, rebuilt])]);
        expect(outcomes.filter((o) => o.status === 'fulfilled').length).toBeGreaterThan(0);
        // One that lost the race may have stopped with an error (its copy dropped under it); its
        // restart finds the migration recorded.
        expect((await migrate(other, [created, rebuilt])).applied).toEqual([]);
        expect(await tables(other.database)).toEqual([{ name: minutes, partition_key: 'toYYYYMMDD(minute)' }]);
        expect(await contents(other.database)).toEqual(before);
      } finally {
        await other.client.command({ query: `DROP DATABASE IF EXISTS ${other.database}` });
      }
    });

    it('says what to do where the database cannot swap tables, and leaves the table as it was', async () => {
      const other: Warehouse = { ...warehouse, database: uniqueName('wh_ordinary') };
      await other.client.command({ query: `CREATE DATABASE ${other.database} ENGINE = Ordinary`, clickhouse_settings: { allow_deprecated_database_ordinary: 1 } });
      try {
        await migrate(other, [created]);
        await other.client.command({ query: `INSERT INTO ${other.database}.${minutes} VALUES ('a', '2026-11-10 10:00:00', 1000, 1)` });
        const before = await contents(other.database);
        await expect(migrate(other, [created, rebuilt])).rejects.toThrow(
          new RegExp(`cannot rebuild ${other.database}\\.${minutes}: ClickHouse swaps tables only in Atomic databases.*ENGINE = Atomic`),
        );
        expect(await tables(other.database)).toEqual([{ name: minutes, partition_key: 'toYYYYMM(minute)' }]);
        expect(await contents(other.database)).toEqual(before);
      } finally {
        await other.client.command({ query: `DROP DATABASE IF EXISTS ${other.database}` });
      }
    });
  });
});

