// Valid values and fast-check arbitraries for the protocol tests.
import fc from 'fast-check';
import {
  EVENT_KINDS,
  MEDIA_TYPES,
  NOT_VIEWABLE_REASONS,
  TRANSPORTS,
  type ClientEvent,
  type ImpressionState,
  type PageEvent,
  type RejectedFrame,
} from '../src/types.js';

/** The largest integer avsc writes as a long (avsc stops two short of 2^53 - 1). */
export const MAX_LONG = 9007199254740990;
const INT_MAX = 2147483647;

export function impression(overrides: Partial<ImpressionState> = {}): ImpressionState {
  return {
    impression_id: 'imp-1',
    ad_id: 'ad-1',
    campaign_id: 'camp-1',
    width: 300,
    height: 250,
    media: 'display',
    visible_px: 60000,
    total_px: 75000,
    playing: false,
    reasons: ['clipped'],
    ...overrides,
  };
}

export function clientEvent(overrides: Partial<ClientEvent> = {}): ClientEvent {
  return {
    page_view_id: '0190f5e2-7c3a-7d4e-9f00-5a1b2c3d4e5f',
    seq: 1,
    kind: 'render',
    t_mono_ms: 1234,
    t_wall_ms: 1_732_860_000_000,
    page: { visible: true, focused: true, foreground: true },
    impressions: [impression()],
    ...overrides,
  };
}

export function pageEvent(event: ClientEvent = clientEvent()): PageEvent {
  return {
    recv_ms: 1_732_860_000_123,
    gateway_id: 'gw-1',
    site_id: 'site-1',
    user_id: 'user-1',
    user_agent: 'Mozilla/5.0',
    transport: 'ws_json',
    event,
  };
}

export function rejectedFrame(overrides: Partial<RejectedFrame> = {}): RejectedFrame {
  return {
    recv_ms: 1_732_860_000_123,
    gateway_id: 'gw-1',
    reason: 'malformed_json',
    detail: 'Unexpected token',
    raw: Buffer.from('{"events":[', 'utf8'),
    raw_truncated: false,
    transport: 'ws_json',
    remote_addr: '203.0.113.7',
    origin: 'https://news.example',
    site_id: 'site-1',
    user_id: 'user-1',
    page_view_id: null,
    seq: null,
    ...overrides,
  };
}

/** Ids as the validator accepts them: 1..128 UTF-16 units, any well-formed Unicode. */
export const arbId = fc
  .string({ unit: 'binary', minLength: 1, maxLength: 128 })
  .filter((s) => s.length >= 1 && s.length <= 128);

const arbCount = fc.integer({ min: 0, max: MAX_LONG });

export const arbImpression: fc.Arbitrary<ImpressionState> = fc
  .record({
    impression_id: arbId,
    ad_id: arbId,
    campaign_id: arbId,
    width: fc.integer({ min: 1, max: INT_MAX }),
    height: fc.integer({ min: 1, max: INT_MAX }),
    media: fc.constantFrom(...MEDIA_TYPES),
    px: fc.tuple(arbCount, arbCount),
    playing: fc.boolean(),
    reasons: fc.shuffledSubarray([...NOT_VIEWABLE_REASONS]),
  })
  .map(({ px, ...rest }) => {
    const [a, b] = px;
    return {
      impression_id: rest.impression_id,
      ad_id: rest.ad_id,
      campaign_id: rest.campaign_id,
      width: rest.width,
      height: rest.height,
      media: rest.media,
      visible_px: Math.min(a, b),
      total_px: Math.max(a, b),
      playing: rest.playing,
      reasons: rest.reasons,
    };
  });

export const arbClientEvent: fc.Arbitrary<ClientEvent> = fc.record({
  page_view_id: arbId,
  seq: fc.integer({ min: 1, max: MAX_LONG }),
  kind: fc.constantFrom(...EVENT_KINDS),
  t_mono_ms: arbCount,
  t_wall_ms: arbCount,
  page: fc.record({ visible: fc.boolean(), focused: fc.boolean(), foreground: fc.boolean() }),
  impressions: fc.uniqueArray(arbImpression, { maxLength: 64, selector: (i) => i.impression_id }),
});

export const arbPageEvent: fc.Arbitrary<PageEvent> = fc.record({
  recv_ms: arbCount,
  gateway_id: fc.string({ unit: 'binary' }),
  site_id: fc.string({ unit: 'binary' }),
  user_id: fc.string({ unit: 'binary' }),
  user_agent: fc.option(fc.string({ unit: 'binary' }), { nil: null }),
  transport: fc.constantFrom(...TRANSPORTS),
  event: arbClientEvent,
});
