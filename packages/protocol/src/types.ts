/**
 * TypeScript shapes of the Avro contracts in `schemas/`. Field names match the schemas exactly,
 * so a decoded Avro record and a parsed JSON event are the same object shape.
 */

export const EVENT_KINDS = ['start', 'render', 'change', 'tick', 'end'] as const;
export type EventKind = (typeof EVENT_KINDS)[number];

export const MEDIA_TYPES = ['display', 'video'] as const;
export type Media = (typeof MEDIA_TYPES)[number];

/** Open Measurement style reasons an impression is (partly) not in view. */
export const NOT_VIEWABLE_REASONS = [
  'hidden',
  'backgrounded',
  'obstructed',
  'clipped',
  'notFound',
  'deviceLocked',
  'unmeasurable',
  'other',
] as const;
export type NotViewableReason = (typeof NOT_VIEWABLE_REASONS)[number];

export const TRANSPORTS = ['ws_json', 'ws_avro', 'http', 'beacon'] as const;
export type Transport = (typeof TRANSPORTS)[number];

export interface PageState {
  /** Tab visible (`document.visibilityState === 'visible'`). */
  readonly visible: boolean;
  /** Window focused. Recorded; only a strict rules mode requires it. */
  readonly focused: boolean;
  /** App in foreground; always true for browsers. */
  readonly foreground: boolean;
}

export interface ImpressionState {
  readonly impression_id: string;
  readonly ad_id: string;
  readonly campaign_id: string;
  /** Declared creative width, CSS px. */
  readonly width: number;
  /** Declared creative height, CSS px. */
  readonly height: number;
  readonly media: Media;
  /** Pixels in view after clipping and obstruction. */
  readonly visible_px: number;
  /** Rendered pixels of the creative. */
  readonly total_px: number;
  /** Video playing; false for display. */
  readonly playing: boolean;
  readonly reasons: readonly NotViewableReason[];
}

/** One page-level snapshot as the client sends it (JSON text frame, Avro binary frame, HTTP). */
export interface ClientEvent {
  readonly page_view_id: string;
  readonly seq: number;
  readonly kind: EventKind;
  /** Monotonic page clock, whole ms. The only clock durations are computed from. */
  readonly t_mono_ms: number;
  /** Client wall clock, Unix ms. Diagnostic only. */
  readonly t_wall_ms: number;
  readonly page: PageState;
  readonly impressions: readonly ImpressionState[];
}

/**
 * A binary WebSocket frame from a native client (`schemas/ClientBatch`), single-object encoded.
 * Browsers send the same shape as JSON text: `{"events": [ClientEvent, ...]}`.
 */
export interface ClientBatch {
  readonly events: readonly ClientEvent[];
}

/** A client event as stored on `dwell.events.v1`: the ledger record. */
export interface PageEvent {
  /** Gateway wall clock when the frame arrived, Unix ms. */
  readonly recv_ms: number;
  readonly gateway_id: string;
  /** From the verified token, never from the event body. */
  readonly site_id: string;
  /** From the verified token, never from the event body. */
  readonly user_id: string;
  readonly user_agent: string | null;
  readonly transport: Transport;
  readonly event: ClientEvent;
}

/** A dead letter on `dwell.rejected.v1`. */
export interface RejectedFrame {
  readonly recv_ms: number;
  readonly gateway_id: string;
  readonly reason: string;
  readonly detail: string;
  readonly raw: Uint8Array;
  readonly raw_truncated: boolean;
  readonly transport: string;
  readonly remote_addr: string | null;
  readonly origin: string | null;
  readonly site_id: string | null;
  readonly user_id: string | null;
  readonly page_view_id: string | null;
  readonly seq: number | null;
}
