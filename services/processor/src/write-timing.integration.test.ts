/**
 * Billing depends only on the log, not on when the processor happened to write: a processor that
 * writes after every event and one that writes once at the end leave tables that report the same.
 * The case that tells them apart is a retraction: a page view's conflicting copy of an event,
 * kept over the original (smaller content hash), no longer lists an impression, so a processor
 * that wrote in between has an impression row to overwrite with a zeroed one, and the other never
 * wrote one. Real ClickHouse, the processor's rows and writes.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventContentHash, PartitionExposure } from '@dwell/exposure';
import type { ImpressionState, PageEvent } from '@dwell/protocol';
import { BILLING_DIMENSIONS, billingReport, ExposureStore, migrate, RowsEncoder, type Warehouse } from '@dwell/warehouse';
import { displayImpression as impression } from '../../../test/events.js';
import { openTestWarehouse, type TestWarehouse } from '../../../test/support.js';
import { RowsSink } from './rows.js';

const BASE = Date.parse('2026-11-20T10:00:00Z');

function event(pageView: string, seq: number, impressions: ImpressionState[], tWall = BASE + seq * 1000): PageEvent {
  return {
    recv_ms: BASE + seq * 1000 + 20,
    gateway_id: 'gw-1',
    site_id: 'site-1',
    user_id: `user-${pageView}`,
    user_agent: 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/140 Safari/537.36',
    transport: 'ws_json',
    event: { page_view_id: pageView, seq, kind: seq === 1 ? 'render' : 'tick', t_mono_ms: seq * 1000, t_wall_ms: tWall, page: { visible: true, focused: true, foreground: true }, impressions },
  };
}

/**
 * pv-r: `keep` in view for five seconds; `gone` listed by seq 3 alone, until a conflicting copy of
 * seq 3 without it arrives and is kept (its content hash is the smaller). pv-s: a plain page view.
 * An event an hour later closes both, so their final rows are written too.
 */
function logWithRetraction(): PageEvent[] {
  const keep = impression('keep', 'ad-1');
  const gone = impression('gone', 'ad-2');
  const original = event('pv-r', 3, [keep, gone]);
  const originalHash = eventContentHash(original.event);
  let copy = event('pv-r', 3, [keep], original.event.t_wall_ms);
  for (let nudge = 1; eventContentHash(copy.event) >= originalHash; nudge++) copy = event('pv-r', 3, [keep], original.event.t_wall_ms + nudge);
  const plain = impression('plain', 'ad-2');
  return [
    event('pv-r', 1, [keep]),
    event('pv-s', 1, [plain]),
    event('pv-r', 2, [keep]),
    event('pv-s', 2, [plain]),
    original,
    event('pv-r', 4, [keep]),
    event('pv-s', 3, [plain]),
    { ...copy, recv_ms: BASE + 4500 },
    event('pv-r', 5, [keep]),
    event('pv-r', 6, [keep]),
    { ...event('pv-later', 1, [impression('later', 'ad-3')]), recv_ms: BASE + 3_600_000 },
  ];
}

/** Applies the log, writing the processor's rows every `every` events and at the end; returns how many rows retracted an impression. */
async function writeLog(warehouse: Warehouse, log: readonly PageEvent[], every: number): Promise<number> {
  const store = new ExposureStore(warehouse);
  const core = new PartitionExposure();
  let retractions = 0;
  const write = async (version: number): Promise<void> => {
    const impressions = new RowsEncoder();
    const minutes = new RowsEncoder();
    const sink = new RowsSink(impressions, minutes);
    sink.version = version;
    core.writeChanges(
      {
        pageView: (identity, flags, final) => sink.pageView(identity, flags, final),
        impression: (row, retracted) => {
          if (retracted) retractions++;
          sink.impression(row, retracted);
        },
        minute: (row) => sink.minute(row),
      },
      true,
    );
    await store.writeResults({ impressions: impressions.finish(), minutes: minutes.finish(), ranges: [], rulesVersion: 1, processorId: 'test', token: `write-${version}` });
  };
  for (const [offset, e] of log.entries()) {
    expect(core.apply(e)).toMatch(/^(accepted|conflicting_duplicate)$/);
    if (offset % every === every - 1) await write(offset);
  }
  await write(log.length);
  return retractions;
}

let opened: TestWarehouse;
let often: Warehouse;
let once: Warehouse;

beforeAll(async () => {
  opened = await openTestWarehouse('write_timing');
  often = opened.warehouse;
  once = { ...often, database: `${often.database}_once` };
  await often.client.command({ query: `CREATE DATABASE IF NOT EXISTS ${once.database}` });
  await migrate(often);
  await migrate(once);
});

afterAll(async () => {
  await once?.client.command({ query: `DROP DATABASE IF EXISTS ${once.database}` });
  await opened?.close();
});

describe('billing and the timing of writes', () => {
  it('reports the same from a processor that wrote after every event as from one that wrote once', async () => {
    const log = logWithRetraction();
    // The frequent writer wrote `gone` and then retracted it; the other never wrote it.
    expect(await writeLog(often, log, 1)).toBe(1);
    expect(await writeLog(once, log, log.length + 1)).toBe(0);
    const period = { fromMs: BASE, toMs: BASE + 2 * 3_600_000 };
    for (const by of BILLING_DIMENSIONS) {
      const frequent = await billingReport(often.client, often.database, { ...period, by });
      expect(frequent).toEqual(await billingReport(once.client, once.database, { ...period, by }));
    }
    // `gone` is no impression: ad-2 has pv-s's alone; pv-r is flagged, so `keep` bills nothing.
    const byAd = await billingReport(often.client, often.database, { ...period, by: 'ad' });
    expect(byAd.map((r) => [r.key, r.impressions, r.flagged_impressions, r.billable_ms])).toEqual([
      ['ad-1', 1, 1, 0],
      ['ad-2', 1, 0, 2000],
      ['ad-3', 1, 0, 0],
    ]);
    // The views give SQL the same.
    const rows = await (
      await often.client.query({
        query: `SELECT key, impressions, flagged_impressions FROM ${often.database}.billing_by_ad(from = fromUnixTimestamp64Milli({from:Int64}, 'UTC'),
                  to = fromUnixTimestamp64Milli({to:Int64}, 'UTC'), ad = '', campaign = '', site = '', user = '') ORDER BY key`,
        query_params: { from: period.fromMs, to: period.toMs },
        format: 'JSONEachRow',
      })
    ).json<{ key: string; impressions: string | number; flagged_impressions: string | number }>();
    expect(rows.map((r) => [r.key, Number(r.impressions), Number(r.flagged_impressions)])).toEqual([
      ['ad-1', 1, 1],
      ['ad-2', 1, 0],
      ['ad-3', 1, 0],
    ]);
  });
});
