import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Warehouse } from './client.js';
import { MigrationError, migrate, type Migration } from './migrations.js';
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

  it('applies the shipped migrations on an empty database, then nothing', async () => {
    const fresh: Warehouse = { ...warehouse, database: uniqueName('wh_fresh') };
    await fresh.client.command({ query: `CREATE DATABASE ${fresh.database}` });
    try {
      const report = await migrate(fresh);
      expect(report.applied.length).toBeGreaterThan(0);
      expect(report.alreadyApplied).toEqual([]);
      expect((await migrate(fresh)).applied).toEqual([]);
    } finally {
      await fresh.client.command({ query: `DROP DATABASE IF EXISTS ${fresh.database}` });
    }
  });
});
