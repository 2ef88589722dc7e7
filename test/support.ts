/** Helpers shared by integration tests. */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inject } from 'vitest';
import { openWarehouse, type Warehouse } from '../packages/warehouse/src/index.js';

/** A name no other test uses: every test gets its own topics, groups, tables. */
export function uniqueName(prefix: string): string {
  return `${prefix}_${Date.now().toString(36)}_${randomBytes(4).toString('hex')}`;
}

export function testBrokers(): string[] {
  return inject('kafkaBrokers').split(',');
}

/** Polls `probe` until it returns a value other than undefined; fails with `what` after `timeoutMs`. */
export async function eventually<T>(
  what: string,
  probe: () => Promise<T | undefined>,
  timeoutMs = 30_000,
  intervalMs = 100,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last === undefined ? '' : `: ${String(last)}`}`);
    }
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

export interface TestWarehouse {
  readonly warehouse: Warehouse;
  /** Its embedded data folder (unused with a server). */
  readonly dataDir: string;
  /** Drops the database, closes the connection and deletes the data folder. */
  close(): Promise<void>;
}

/** A database of a test file's own: on the integration setup's ClickHouse server, or embedded in a new data folder. */
export async function openTestWarehouse(name: string): Promise<TestWarehouse> {
  const dataDir = mkdtempSync(join(tmpdir(), `dwell-${name}-`));
  const warehouse = await openWarehouse({
    url: inject('clickhouseUrl'),
    username: inject('clickhouseUser'),
    password: inject('clickhousePassword'),
    database: uniqueName(name),
    dataDir,
  });
  return {
    warehouse,
    dataDir,
    close: async () => {
      try {
        await warehouse.client.command({ query: `DROP DATABASE IF EXISTS ${warehouse.database}` });
        await warehouse.close();
      } finally {
        rmSync(dataDir, { recursive: true, force: true });
      }
    },
  };
}

/** Server mode only: drops a test's database (embedded data folders are simply deleted). */
export async function dropTestDatabase(database: string): Promise<void> {
  const url = inject('clickhouseUrl');
  if (url === '') return;
  const warehouse = await openWarehouse({
    url,
    username: inject('clickhouseUser'),
    password: inject('clickhousePassword'),
    database,
    dataDir: '',
  });
  try {
    await warehouse.client.command({ query: `DROP DATABASE IF EXISTS ${database}` });
  } finally {
    await warehouse.close();
  }
}
