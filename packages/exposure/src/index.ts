/**
 * @dwell/exposure: the pure, deterministic exposure computation of EXPOSURE-RULES.md. No I/O, no
 * clock, no randomness: every result is a function of the events given, their order within a
 * partition, and the rules config. See README.md for the API and the decisions behind it.
 */
export {
  RULES_VERSION,
  DEFAULT_RULES_CONFIG,
  DEFAULT_GIVT_USER_AGENT_PATTERNS,
  RulesConfigError,
  createRulesConfig,
} from './rules-config.js';
export type { RulesConfig } from './rules-config.js';
export { EVENT_OUTCOMES, EXPOSURE_FLAGS, MINUTE_MS } from './results.js';
export type {
  EventOutcome,
  PageViewOutcome,
  ExposureFlag,
  PageViewIdentity,
  ImpressionResult,
  MinuteBucketRow,
} from './results.js';
export { PageViewState } from './page-view-state.js';
export { isValidPageEvent } from './event-record.js';
export type { PageViewResults } from './page-view-state.js';
export { PartitionExposure } from './partition-exposure.js';
export type { PartitionChanges, PartitionDelta, PartitionSnapshot, PageViewEntrySnapshot } from './partition-exposure.js';
export type { PageViewReport, ReportParts, ReportSink } from './page-view-report.js';
export { SNAPSHOT_FORMAT, SnapshotError } from './snapshot.js';
export type { PageViewSnapshot, EventTuple } from './snapshot.js';
export type { ImpressionMeta } from './event-record.js';
export { qualifies, thresholdPercent, REASON_BITS, BLOCKING_REASONS } from './qualification.js';
export { creditSegment, splitIntoMinutes } from './impression-track.js';
export { eventContentHash } from './content-hash.js';
