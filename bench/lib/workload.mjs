// A synthetic ledger for benchmarks: page views of `eventsPerPageView` events (ticks a second
// apart, the odd change), 1–3 impressions each, their server times following their client clocks,
// interleaved in server-time order. Deterministic for a seed.
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

/** Stored events, each `{ key, value, recvMs }` with `value` the Avro single-object encoding. */
export function encodedWorkload({ seed = 1, events: total, eventsPerPageView = 30, baseMs, spreadMs = 120_000, ads = 50, users = 5000 }) {
  const random = prng(seed);
  const pick = (n) => Math.floor(random() * n);
  const out = [];
  const pageViews = Math.ceil(total / eventsPerPageView);
  for (let p = 0; p < pageViews; p++) {
    const pageViewId = `pv-${seed}-${p}`;
    const user = `user-${pick(users)}`;
    const start = baseMs + pick(spreadMs);
    const impressions = Array.from({ length: 1 + pick(3) }, (_, i) => ({ id: `${pageViewId}-${i}`, ad: `ad-${pick(ads)}`, campaign: `campaign-${pick(10)}`, visible: random() < 0.7 }));
    let t = 0;
    for (let seq = 1; seq <= eventsPerPageView && out.length < total; seq++) {
      t += random() < 0.85 ? 1000 : 100 + pick(900);
      for (const imp of impressions) if (random() < 0.1) imp.visible = !imp.visible;
      const recvMs = start + t + pick(50);
      out.push({
        key: pageViewId,
        recvMs,
        value: encodePageEvent({
          recv_ms: recvMs,
          gateway_id: 'gw-bench',
          site_id: `site-${p % 5}`,
          user_id: user,
          user_agent: 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/140 Safari/537.36',
          transport: 'ws_json',
          event: {
            page_view_id: pageViewId,
            seq,
            kind: seq === 1 ? 'render' : 'tick',
            t_mono_ms: t,
            t_wall_ms: start + t,
            page: { visible: true, focused: true, foreground: true },
            impressions: impressions.map((imp) => ({
              impression_id: imp.id,
              ad_id: imp.ad,
              campaign_id: imp.campaign,
              width: 300,
              height: 250,
              media: 'display',
              visible_px: imp.visible ? 75_000 : 0,
              total_px: 75_000,
              playing: false,
              reasons: [],
            })),
          },
        }),
      });
    }
  }
  return out.sort((a, b) => a.recvMs - b.recvMs);
}

/**
 * One pass of a processor worker's work (a `PartitionWork` class, from whichever build) over
 * `events` of one partition, in batches of 200, writing every `everyMs` of event time: CPU µs and
 * rows written per event, of the events from `measureFrom` on (the ones before build up the state
 * the measured ones meet, as a processor that has run for a while holds it). A write carries the
 * open page views' impression rows once `impressionEveryMs` of event time has passed since the last
 * one that did (0: every write, as with PROCESSOR_IMPRESSION_INTERVAL_MS=0).
 */
export function workerPass(PartitionWork, events, everyMs, measureFrom = 0, impressionEveryMs = 0) {
  const work = new PartitionWork();
  work.restore(0, null, 0);
  let writeAt = events[0].recvMs + everyMs;
  let batch = [];
  let rows = 0;
  let before;
  let pageViewsHeld = 0;
  let impressionsAt = events[0].recvMs;
  const take = (offset, last = false) => {
    work.apply(0, batch);
    batch = [];
    const now = events[Math.max(0, offset)].recvMs;
    const impressions = last || now - impressionsAt >= impressionEveryMs;
    if (impressions) impressionsAt = now;
    const taken = work.take([[0, offset, impressions]]);
    if (before !== undefined) rows += taken.impressions.rows + taken.minutes.rows;
    pageViewsHeld = taken.partitions[0]?.pageViews ?? 0;
  };
  for (let offset = 0; offset < events.length; offset++) {
    const event = events[offset];
    if (offset === measureFrom) {
      // The held events are applied and written first; only then the clock starts.
      if (offset > 0) take(offset - 1);
      before = process.cpuUsage();
    }
    if (event.recvMs >= writeAt) {
      take(offset - 1);
      writeAt += everyMs;
    }
    batch.push(event.value);
    if (batch.length === 200) {
      work.apply(0, batch);
      batch = [];
    }
  }
  take(events.length - 1, true);
  const used = process.cpuUsage(before);
  const measured = events.length - measureFrom;
  return { us: (used.user + used.system) / measured, rows: rows / measured, pageViewsHeld };
}
