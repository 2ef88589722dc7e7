import WebSocket from 'ws';
import { mintToken } from '@dwell/gateway';
import { encodeJsonFrame, type ClientEvent, type EventKind } from '@dwell/protocol';
import { DEV_SITE_ID, DEV_SITE_SECRET } from '../env.js';
import { uuidv7 } from '../uuid.js';

export interface DemoOptions {
  readonly gateway: string;
  readonly processor: string;
  readonly site: string;
  readonly secret: string;
  readonly user: string;
  readonly timeoutMs: number;
}

export const DEMO_DEFAULTS: DemoOptions = {
  gateway: 'ws://127.0.0.1:8080',
  processor: 'http://127.0.0.1:8081',
  site: DEV_SITE_ID,
  secret: DEV_SITE_SECRET,
  user: 'demo-user',
  timeoutMs: 30_000,
};

/** What the demo page view bills: in view from the render at 100 ms to the change at 3100 ms. */
export const DEMO_BILLABLE_MS = 3000;

/** One display ad seen for 3 s: the page view `dwell demo` sends. */
export function demoPageView(pageViewId: string, wallMs: number): ClientEvent[] {
  const impression = (visible: number) => ({
    impression_id: `${pageViewId}-i1`,
    ad_id: 'demo-ad',
    campaign_id: 'demo-campaign',
    width: 300,
    height: 250,
    media: 'display' as const,
    visible_px: visible,
    total_px: 75_000,
    playing: false,
    reasons: [],
  });
  const steps: Array<[EventKind, number, number]> = [
    ['start', 0, 0],
    ['render', 100, 75_000],
    ['tick', 1100, 75_000],
    ['tick', 2100, 75_000],
    ['change', 3100, 0],
    ['end', 3200, 0],
  ];
  return steps.map(([kind, t, visible], i) => ({
    page_view_id: pageViewId,
    seq: i + 1,
    kind,
    t_mono_ms: t,
    t_wall_ms: wallMs + t,
    page: { visible: true, focused: true, foreground: true },
    impressions: kind === 'start' ? [] : [impression(visible)],
  }));
}

/**
 * `dwell demo`: sends a page view to the running gateway over WebSocket, waits for the ack (Kafka
 * stored it), then waits until the processor has landed it in ClickHouse and prints the rows.
 */
export async function demo(options: DemoOptions, say: (line: string) => void): Promise<void> {
  const pageViewId = uuidv7();
  const token = mintToken({ site_id: options.site, user_id: options.user, exp: Math.floor(Date.now() / 1000) + 600 }, options.secret);
  const events = demoPageView(pageViewId, Date.now());
  const url = `${options.gateway.replace(/\/$/, '')}/v1/ws?token=${encodeURIComponent(token)}`;
  say(`connecting to ${options.gateway}/v1/ws as ${options.site}/${options.user}`);
  const socket = new WebSocket(url);
  const acked = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ack within ${options.timeoutMs} ms`)), options.timeoutMs);
    socket.on('unexpected-response', (_req, res) => {
      clearTimeout(timer);
      reject(new Error(`gateway refused the connection: HTTP ${res.statusCode}`));
    });
    socket.on('error', (error) => {
      clearTimeout(timer);
      reject(new Error(`cannot reach the gateway at ${options.gateway} (is \`npm start\` running?): ${error.message}`));
    });
    socket.on('message', (data) => {
      const frame = JSON.parse(String(data)) as { t: string; n?: number; reason?: string; detail?: string };
      if (frame.t === 'error') say(`  gateway error: ${frame.reason}: ${frame.detail}`);
      if (frame.t === 'nack') {
        clearTimeout(timer);
        reject(new Error(`gateway could not store the events (${frame.reason}); try again`));
      }
      if (frame.t === 'ack' && frame.n === events.length) {
        clearTimeout(timer);
        resolve();
      }
    });
  });
  // Like a real page: each event when it happens. (Sent all at once, the page view would claim
  // 3.2 s of viewing that the server saw take no time, and be flagged implausible_timing.)
  socket.on('open', () => void sendPaced(socket, events));
  const sent = Date.now();
  await acked;
  say(`sent page view ${pageViewId} (${events.length} events over ${Date.now() - sent} ms); Kafka stored every one`);
  socket.close();

  const query = `SELECT impression_id, ad_id, campaign_id, user_id, viewable, billable, viewable_ms, credited_ms, flags
    FROM dwell.impressions FINAL WHERE page_view_id = '${pageViewId}'`;
  const deadline = Date.now() + options.timeoutMs;
  for (;;) {
    const response = await fetch(`${options.processor}/v1/sql?query=${encodeURIComponent(query)}`).catch((error: unknown) => {
      throw new Error(`cannot reach the processor at ${options.processor}: ${String(error)}`);
    });
    const rows = (await response.json()) as Array<Record<string, unknown>> | { error: string };
    if (!Array.isArray(rows)) throw new Error(`processor query failed: ${rows.error}`);
    if (rows.some((row) => Number(row['viewable_ms']) === DEMO_BILLABLE_MS)) {
      say(`billed in ClickHouse after ${Date.now() - sent} ms (${DEMO_BILLABLE_MS} ms in view, computed on the server):`);
      console.table(rows);
      return;
    }
    if (Date.now() > deadline) throw new Error(`the impression did not reach ClickHouse within ${options.timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

/** Sends each event in its own frame at its `t_mono_ms` (relative to the first). */
export async function sendPaced(socket: { send(data: string): void }, events: readonly ClientEvent[]): Promise<void> {
  const start = Date.now();
  const first = events[0]?.t_mono_ms ?? 0;
  for (const event of events) {
    const wait = start + (event.t_mono_ms - first) - Date.now();
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    socket.send(encodeJsonFrame([event]));
  }
}
