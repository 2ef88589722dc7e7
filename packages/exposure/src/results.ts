/** What the exposure core answers: per-event outcomes, flags, and the result rows. */
import type { Media } from '@dwell/protocol';

/**
 * Per-event outcomes. `accepted`, `duplicate` and `conflicting_duplicate` mean the event was
 * taken into its page view (a duplicate changes nothing, a conflicting one flags the page view);
 * the others mean it was not, and belong on `dwell.rejected.v1` with the outcome as reason.
 */
export const EVENT_OUTCOMES = [
  'accepted',
  'duplicate',
  'conflicting_duplicate',
  'identity_mismatch',
  'invalid_event',
  'late',
] as const;
export type EventOutcome = (typeof EVENT_OUTCOMES)[number];
/** Outcomes a single page view can give; `late` needs a partition watermark. */
export type PageViewOutcome = Exclude<EventOutcome, 'late'>;

/** Page-view flags. Any flag makes every impression of the page view bill 0. */
export const EXPOSURE_FLAGS = [
  'conflicting_duplicate',
  'clock_regression',
  'implausible_timing',
  'givt_user_agent',
] as const;
export type ExposureFlag = (typeof EXPOSURE_FLAGS)[number];

/** Who a page view belongs to. `site_id` and `user_id` come from the verified token. */
export interface PageViewIdentity {
  readonly page_view_id: string;
  readonly site_id: string;
  readonly user_id: string;
  readonly user_agent: string | null;
}

/** Everything dwell knows about one impression, recomputed in full from its page view's events. */
export interface ImpressionResult {
  readonly rules_version: number;
  readonly page_view_id: string;
  readonly site_id: string;
  readonly user_id: string;
  readonly impression_id: string;
  /** Identity fields (`ad_id` … `height`) come from the impression's first appearance by seq. */
  readonly ad_id: string;
  readonly campaign_id: string;
  readonly media: Media;
  /** Declared creative width, px. */
  readonly width: number;
  /** Declared creative height, px. */
  readonly height: number;
  /** Some event observed it with valid geometry, `total_px > 0` and no `unmeasurable` reason. */
  readonly measurable: boolean;
  /** Some run of back-to-back credited segments reached `TMIN` (rule 4); flags do not change it. */
  readonly viewable: boolean;
  /** Viewable and the page view carries no flag: the impression bills `viewable_ms`. */
  readonly billable: boolean;
  /** Billed ms: `credited_ms` when billable, else 0. */
  readonly viewable_ms: number;
  /** Sum of all credited segments, viewable or not, flagged or not. */
  readonly credited_ms: number;
  /** Longest run of back-to-back credited segments, ms. */
  readonly longest_run_ms: number;
  /** The page view's flags, in {@link EXPOSURE_FLAGS} order. */
  readonly flags: readonly ExposureFlag[];
  /** Server time (rule 7) of the first event that lists the impression. */
  readonly first_server_ms: number;
  /** Server time (rule 7) of the last event that lists the impression. */
  readonly last_server_ms: number;
}

/** Billed ms of one impression in one wall-clock minute. Key: (`impression_id`, `minute_start_ms`). */
export interface MinuteBucketRow {
  readonly rules_version: number;
  readonly page_view_id: string;
  readonly site_id: string;
  readonly user_id: string;
  readonly impression_id: string;
  readonly ad_id: string;
  readonly campaign_id: string;
  /** Server time floored to the minute, Unix ms. */
  readonly minute_start_ms: number;
  /** Billed ms in that minute; 0 only in a retraction (see PartitionExposure). */
  readonly viewable_ms: number;
}

export const MINUTE_MS = 60_000;
