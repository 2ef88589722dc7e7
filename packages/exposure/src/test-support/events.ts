import type { PageViewIdentity } from '../results.js';
/** Builders for test events. Not part of the package build (see tsconfig `exclude`). */
import type { EventKind, ImpressionState, NotViewableReason, PageEvent, PageState } from '@dwell/protocol';

/** A minute boundary (…040_000 ms is divisible by 60,000): tests place time relative to it. */
export const BASE_MS = 1_700_000_040_000;
export const PV = 'pv-0001';
export const SITE = 'site-1';
export const USER = 'user-1';
export const CHROME_UA =
  'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36';

export interface ImpressionSpec {
  id?: string;
  ad?: string;
  campaign?: string;
  width?: number;
  height?: number;
  media?: 'display' | 'video';
  visible?: number;
  total?: number;
  playing?: boolean;
  reasons?: NotViewableReason[];
}

/** A 300×250 display impression, fully in view unless told otherwise. */
export function imp(spec: ImpressionSpec = {}): ImpressionState {
  const width = spec.width ?? 300;
  const height = spec.height ?? 250;
  const total = spec.total ?? width * height;
  return {
    impression_id: spec.id ?? 'imp-1',
    ad_id: spec.ad ?? 'ad-1',
    campaign_id: spec.campaign ?? 'camp-1',
    width,
    height,
    media: spec.media ?? 'display',
    visible_px: spec.visible ?? total,
    total_px: total,
    playing: spec.playing ?? false,
    reasons: spec.reasons ?? [],
  };
}

export interface EventSpec {
  seq: number;
  t: number;
  /** Server receive time; defaults to BASE_MS + t (prompt delivery). */
  recv?: number;
  kind?: EventKind;
  page?: Partial<PageState>;
  imps?: ImpressionState[];
  pv?: string;
  site?: string;
  user?: string;
  ua?: string | null;
  wall?: number;
}

export function ev(spec: EventSpec): PageEvent {
  return {
    recv_ms: spec.recv ?? BASE_MS + spec.t,
    gateway_id: 'gw-1',
    site_id: spec.site ?? SITE,
    user_id: spec.user ?? USER,
    user_agent: spec.ua === undefined ? CHROME_UA : spec.ua,
    transport: 'ws_json',
    event: {
      page_view_id: spec.pv ?? PV,
      seq: spec.seq,
      kind: spec.kind ?? (spec.seq === 1 ? 'start' : 'tick'),
      t_mono_ms: spec.t,
      t_wall_ms: BASE_MS - 5000 + (spec.wall ?? spec.t),
      page: { visible: true, focused: true, foreground: true, ...spec.page },
      impressions: spec.imps ?? [imp()],
    },
  };
}

/** Qualifying state of the default impression. */
export const Q = (): ImpressionState => imp();
/** Not qualifying: 40% visible, obstructed. */
export const N = (): ImpressionState => imp({ visible: 30_000, reasons: ['obstructed'] });

/**
 * Events from the worked-example notation `t/seq:state` with seq taken from position unless
 * given: `[0, 'Q'], [1000, 'N']`. `H` is a hidden tab (impression fully in pixels).
 */
export function timeline(
  steps: readonly (readonly [t: number, state: 'Q' | 'N' | 'H', seq?: number])[],
  extra: Partial<EventSpec> = {},
): PageEvent[] {
  return steps.map(([t, state, seq], i) =>
    ev({
      ...extra,
      seq: seq ?? i + 1,
      t,
      imps: [state === 'N' ? N() : Q()],
      page: state === 'H' ? { visible: false } : {},
    }),
  );
}

export const identity: PageViewIdentity = {
  page_view_id: PV,
  site_id: SITE,
  user_id: USER,
  user_agent: CHROME_UA,
};
