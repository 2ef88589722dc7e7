/**
 * A deterministic synthetic workload: page views with 1–3 impressions whose visibility changes at
 * random, ticks every second while anything is in view, the odd lost event, all interleaved in
 * server-time order the way many live pages reach the gateways.
 */
import type { ImpressionState, PageEvent } from '../packages/protocol/src/index.js';

/** mulberry32: a small seeded PRNG, so a failing run can be reproduced from its seed. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface WorkloadOptions {
  readonly seed: number;
  readonly pageViews: number;
  readonly eventsPerPageView: number;
  readonly baseMs: number;
  /** Page views start spread over this many ms. */
  readonly spreadMs?: number;
  readonly ads?: number;
  readonly users?: number;
}

export function workload(options: WorkloadOptions): PageEvent[] {
  const random = prng(options.seed);
  const pick = (n: number): number => Math.floor(random() * n);
  const events: PageEvent[] = [];
  for (let p = 0; p < options.pageViews; p++) {
    const pageViewId = `pv-${options.seed}-${p}`;
    const user = `user-${pick(options.users ?? 200)}`;
    const start = options.baseMs + pick(options.spreadMs ?? 60_000);
    const impressions = Array.from({ length: 1 + pick(3) }, (_, i) => ({
      id: `${pageViewId}-${i}`,
      ad: `ad-${pick(options.ads ?? 20)}`,
      campaign: `campaign-${pick(5)}`,
      video: random() < 0.15,
      visible: random() < 0.7,
    }));
    let t = 0;
    let recv = start;
    let seq = 0;
    let hidden = false;
    for (let e = 0; e < options.eventsPerPageView; e++) {
      seq += 1;
      // Mostly ticks a second apart; sometimes a change in between.
      t += random() < 0.8 ? 1000 : 100 + pick(900);
      recv = Math.max(recv, start + t + pick(80));
      if (random() < 0.1) hidden = !hidden;
      for (const imp of impressions) if (random() < 0.15) imp.visible = !imp.visible;
      if (random() < 0.01) continue; // lost on the way: the seq is never seen
      const states: ImpressionState[] = impressions.map((imp) => ({
        impression_id: imp.id,
        ad_id: imp.ad,
        campaign_id: imp.campaign,
        width: imp.video ? 640 : 300,
        height: imp.video ? 360 : 250,
        media: imp.video ? 'video' : 'display',
        visible_px: imp.visible ? (imp.video ? 230_400 : 75_000) : pick(20_000),
        total_px: imp.video ? 230_400 : 75_000,
        playing: imp.video,
        reasons: imp.visible ? [] : ['clipped'],
      }));
      events.push({
        recv_ms: recv,
        gateway_id: 'gw-load',
        site_id: `site-${p % 3}`,
        user_id: user,
        user_agent: 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/140 Safari/537.36',
        transport: 'ws_json',
        event: {
          page_view_id: pageViewId,
          seq,
          kind: e === 0 ? 'render' : e === options.eventsPerPageView - 1 ? 'end' : 'tick',
          t_mono_ms: t,
          t_wall_ms: start + t,
          page: { visible: !hidden, focused: !hidden, foreground: true },
          impressions: states,
        },
      });
    }
  }
  // Server-time order, as the gateways would have written them.
  return events.sort((a, b) => a.recv_ms - b.recv_ms || (a.event.page_view_id < b.event.page_view_id ? -1 : 1));
}
