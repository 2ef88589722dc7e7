// A synthetic ledger for the replay benchmark: page views of 1–3 display or video impressions,
// a tick a second while the page is up (the odd change in between, impressions scrolling in and
// out of view, the odd hidden tab), about 1% of events lost on the way; encoded as the gateway
// writes them (single-object Avro PageEvent, key = page_view_id, record timestamp = recv_ms).
// Deterministic for a seed. Yields batches in roughly server-time order without holding the whole
// ledger in memory: page views are generated in waves that start 20 s apart.
import { encodePageEvent } from '@dwell/protocol';

export function prng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * @param {{ events: number, seed?: number, baseMs: number, eventsPerPageView?: number, pageViewsPerWave?: number }} options
 * @returns {Generator<Array<{ key: string, value: Buffer, timestamp: string }>>}
 */
export function* ledger({ events, seed = 1, baseMs, eventsPerPageView = 60, pageViewsPerWave = 1000 }) {
  const random = prng(seed);
  const pick = (n) => Math.floor(random() * n);
  let produced = 0;
  let pv = 0;
  for (let wave = 0; produced < events; wave++) {
    const out = [];
    const waveStart = baseMs + wave * 20_000;
    for (let i = 0; i < pageViewsPerWave && produced + out.length < events; i++, pv++) {
      const id = `pv-${seed}-${pv}`;
      const user = `user-${pick(50_000)}`;
      const site = `site-${pick(20)}`;
      const start = waveStart + pick(20_000);
      const length = Math.max(2, Math.round(eventsPerPageView * (0.5 + random())));
      const impressions = Array.from({ length: 1 + pick(3) }, (_, k) => ({
        id: `${id}-${k}`,
        ad: `ad-${pick(200)}`,
        campaign: `campaign-${pick(40)}`,
        video: random() < 0.15,
        visible: random() < 0.7,
      }));
      let t = 0;
      let hidden = false;
      for (let seq = 1; seq <= length && produced + out.length < events; seq++) {
        t += random() < 0.85 ? 1000 : 100 + pick(900);
        if (random() < 0.05) hidden = !hidden;
        for (const imp of impressions) if (random() < 0.1) imp.visible = !imp.visible;
        if (random() < 0.01) continue;
        const recv = start + t + pick(60);
        out.push({
          key: id,
          recv,
          event: {
            recv_ms: recv,
            gateway_id: `gw-${pick(4)}`,
            site_id: site,
            user_id: user,
            user_agent: 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/140.0 Safari/537.36',
            transport: 'ws_json',
            event: {
              page_view_id: id,
              seq,
              kind: seq === 1 ? 'render' : seq === length ? 'end' : 'tick',
              t_mono_ms: t,
              t_wall_ms: start + t,
              page: { visible: !hidden, focused: !hidden, foreground: true },
              impressions: impressions.map((imp) => ({
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
              })),
            },
          },
        });
      }
    }
    out.sort((a, b) => a.recv - b.recv || (a.key < b.key ? -1 : 1));
    produced += out.length;
    yield out.map((e) => ({ key: e.key, value: encodePageEvent(e.event), timestamp: String(e.recv) }));
  }
}
