import { createRequire } from 'node:module';
import { mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { createClient, type ClickHouseClient, type ClickHouseSettings } from '@clickhouse/client';
import type * as ChdbConnection from 'chdb/connection';

/** Where ClickHouse is. Built from `CLICKHOUSE_*` by the services' config. */
export interface WarehouseConfig {
  /** A ClickHouse server's HTTP URL. Unset: ClickHouse embedded in this process through chDB. */
  readonly url?: string | undefined;
  readonly username?: string | undefined;
  readonly password?: string | undefined;
  /** The database dwell's tables live in. Created when missing. */
  readonly database: string;
  /** Embedded mode only: chDB's data folder (one process may own it at a time). */
  readonly dataDir: string;
  /** Server mode: request timeout, ms. Default 30000. */
  readonly requestTimeoutMs?: number;
}

export interface Warehouse {
  readonly client: ClickHouseClient;
  readonly database: string;
  readonly mode: 'embedded' | 'server';
  /** Human-readable location: the URL or the data folder. */
  readonly location: string;
  /**
   * A second client for read-only queries (`/v1/sql`, `/v1/billing`, `dwell billing`, the audit). ClickHouse enforces
   * `readonly = 1` on it. In embedded mode a setting sticks to its chDB connection, so the read-only
   * client must never be the one the processor writes with.
   */
  readOnly(): ClickHouseClient;
  /**
   * Another read-write client, one per `name`, whose queries run alongside `client`'s. Embedded
   * ClickHouse runs a chDB connection's queries one at a time, so a long statement (storing a
   * snapshot of a partition's whole state) on `client` would hold back every query behind it; on
   * a connection of its own it does not. A server runs a client's queries side by side anyway.
   */
  writer(name: string): ClickHouseClient;
  close(): Promise<void>;
}

export class WarehouseError extends Error {
  override readonly name = 'WarehouseError';
}

const DATABASE_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * Opens ClickHouse: over HTTP when `url` is set, otherwise the embedded chDB engine through
 * `@clickhouse/client`'s `connection` hook, so every query is the same code in both modes.
 */
export async function openWarehouse(config: WarehouseConfig): Promise<Warehouse> {
  if (!DATABASE_NAME.test(config.database)) {
    throw new WarehouseError(`database name ${JSON.stringify(config.database)} must match ${DATABASE_NAME.source}`);
  }
  let client: ClickHouseClient;
  let mode: Warehouse['mode'];
  let location: string;
  let makeClient: (settings: ClickHouseSettings) => ClickHouseClient;
  if (config.url !== undefined && config.url !== '') {
    mode = 'server';
    location = config.url;
    const url = config.url;
    makeClient = (settings) =>
      createClient({
        url,
        username: config.username ?? 'default',
        password: config.password ?? '',
        request_timeout: config.requestTimeoutMs ?? 30_000,
        clickhouse_settings: settings,
      });
    client = makeClient({});
  } else {
    mode = 'embedded';
    location = resolve(config.dataDir);
    mkdirSync(location, { recursive: true });
    // chdb ships CommonJS only for its connection subpath.
    const require = createRequire(import.meta.url);
    let chdb: typeof ChdbConnection;
    try {
      chdb = require('chdb/connection') as typeof ChdbConnection;
    } catch (error) {
      throw new WarehouseError(
        `embedded ClickHouse needs the chdb package (npm install chdb), or set CLICKHOUSE_URL to a server: ${String(error)}`,
      );
    }
    try {
      // chdb declares the Connection contract from its own copy of @clickhouse/client-common; the
      // shapes are the same, the declarations are not, hence the cast.
      const connect = (): NonNullable<NonNullable<Parameters<typeof createClient>[0]>['connection']> =>
        chdb.createChdbConnection({ path: location }) as unknown as NonNullable<
          NonNullable<Parameters<typeof createClient>[0]>['connection']
        >;
      client = createClient({ connection: connect() });
      // Connections to the same path share the data but not their settings.
      makeClient = (settings) => createClient({ connection: connect(), clickhouse_settings: settings });
    } catch (error) {
      throw new WarehouseError(
        `could not open embedded ClickHouse at ${location} (another dwell process may own it; stop it or set CLICKHOUSE_DATA_DIR): ${String(error)}`,
      );
    }
  }
  try {
    await client.command({ query: `CREATE DATABASE IF NOT EXISTS ${config.database}` });
  } catch (error) {
    await client.close().catch(() => undefined);
    throw new WarehouseError(`could not reach ClickHouse (${mode}, ${location}): ${String(error)}`);
  }
  let readOnly: ClickHouseClient | undefined;
  const writers = new Map<string, ClickHouseClient>();
  return {
    client,
    database: config.database,
    mode,
    location,
    readOnly: () => (readOnly ??= makeClient({ readonly: '1' })),
    writer: (name) => {
      let writer = writers.get(name);
      if (writer === undefined) {
        writer = makeClient({});
        writers.set(name, writer);
      }
      return writer;
    },
    close: async () => {
      await readOnly?.close();
      for (const writer of writers.values()) await writer.close();
      await client.close();
    },
  };
}
