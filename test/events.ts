/** Valid client events for tests. */
import { randomUUID } from 'node:crypto';
import type { ClientEvent, ImpressionState } from '../packages/protocol/src/index.js';

/** `count` events of one page view with one display impression, seq 1…count, 1 s apart. */
export function pageView(count: number, pageViewId: string = randomUUID()): ClientEvent[] {
  return Array.from({ length: count }, (_, i) => ({
    page_view_id: pageViewId,
    seq: i + 1,
    kind: i === 0 ? 'render' : 'tick',
    t_mono_ms: i * 1000,
    t_wall_ms: 1_800_000_000_000 + i * 1000,
    page: { visible: true, focused: true, foreground: true },
    impressions: [displayImpression(`${pageViewId}-1`)],
  }));
}

/** A 300×250 display impression of campaign-1, fully in view. */
export function displayImpression(impressionId: string, adId = 'ad-1'): ImpressionState {
  return {
    impression_id: impressionId,
    ad_id: adId,
    campaign_id: 'campaign-1',
    width: 300,
    height: 250,
    media: 'display',
    visible_px: 75_000,
    total_px: 75_000,
    playing: false,
    reasons: [],
  };
}
