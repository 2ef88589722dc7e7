/**
 * Where an audit reads what ClickHouse billed, in the order `dwell billing` looks: a ClickHouse
 * server (CLICKHOUSE_URL); else the running processor's read-only SQL endpoint (`/v1/sql`: in
 * embedded mode the processor owns the data folder); else the embedded data folder itself.
 */
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { clientReader, openWarehouse, type SqlReader, type Warehouse } from '@dwell/warehouse';

export interface BilledSourceConfig {
  readonly clickhouseUrl: string | undefined;
  readonly clickhouseUser: string;
  readonly clickhousePassword: string;
  readonly database: string;
  readonly dataDir: string;
  readonly processorUrl: string;
}

export interface BilledSource {
  readonly mode: 'server' | 'processor' | 'embedded';
  readonly location: string;
  readonly database: string;
  readonly read: SqlReader;
  /** Direct access (server, or embedded with no processor running): what `--into shadow` writes through. */
  readonly warehouse: Warehouse | undefined;
  close(): Promise<void>;
}

/** `--into shadow` asked for, but ClickHouse is reachable only read-only. */
export class ShadowAccessError extends Error {
  override readonly name = 'ShadowAccessError';
}

export async function openBilledSource(config: BilledSourceConfig, options: { needWrite: boolean; note: (line: string) => void }): Promise<BilledSource> {
  if (config.clickhouseUrl === undefined || config.clickhouseUrl === '') {
    if (await answers(config.processorUrl)) {
      if (options.needWrite) {
        throw new ShadowAccessError(
          `--into shadow writes to ClickHouse, but the embedded database belongs to the processor running at ${config.processorUrl}, which only serves read-only SQL. ` +
            'Set CLICKHOUSE_URL to a ClickHouse server, or stop the processor so the replay can open the data folder itself.',
        );
      }
      options.note(`billed rows from the running processor at ${config.processorUrl} (read-only SQL)`);
      return {
        mode: 'processor',
        location: config.processorUrl,
        database: config.database,
        read: processorReader(config.processorUrl),
        warehouse: undefined,
        close: async () => undefined,
      };
    }
    const dir = resolve(config.dataDir);
    if (!existsSync(dir)) throw new Error(`no processor answers at ${config.processorUrl} and there is no embedded ClickHouse data folder at ${dir}`);
    options.note(`no processor answers at ${config.processorUrl}: opening embedded ClickHouse at ${dir}`);
  }
  const warehouse = await openWarehouse({
    url: config.clickhouseUrl,
    username: config.clickhouseUser,
    password: config.clickhousePassword,
    database: config.database,
    dataDir: config.dataDir,
  });
  return {
    mode: warehouse.mode,
    location: warehouse.location,
    database: warehouse.database,
    read: clientReader(warehouse.readOnly()),
    warehouse,
    close: () => warehouse.close(),
  };
}

async function answers(url: string): Promise<boolean> {
  try {
    const response = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(2000) });
    await response.arrayBuffer();
    return response.ok;
  } catch {
    return false;
  }
}

/** Plain SQL through the processor's `/v1/sql` (GET; ClickHouse enforces readonly there). */
export function processorReader(baseUrl: string): SqlReader {
  return async (sql) => {
    const response = await fetch(`${baseUrl}/v1/sql?query=${encodeURIComponent(sql)}`);
    const body = (await response.json()) as Array<Record<string, unknown>> | { error?: string };
    if (!Array.isArray(body)) throw new Error(`the processor refused the query: ${body.error ?? response.statusText}`);
    return body;
  };
}
