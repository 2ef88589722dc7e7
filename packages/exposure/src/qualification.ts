/**
 * Rule 2 (qualifies) and the definition of a measurable observation, for one impression in one
 * event. Everything here reads only that event, so the verdict can be computed once on arrival.
 */
import type { ImpressionState, NotViewableReason, PageState } from '@dwell/protocol';
import type { RulesConfig } from './rules-config.js';

/** One bit per Open Measurement reason; unknown reasons count as `other`. */
export const REASON_BITS = {
  hidden: 1,
  backgrounded: 2,
  obstructed: 4,
  clipped: 8,
  notFound: 16,
  deviceLocked: 32,
  unmeasurable: 64,
  other: 128,
} as const satisfies Record<NotViewableReason, number>;

/**
 * Reasons that stop an impression from qualifying whatever its pixels say. `obstructed`,
 * `clipped` and `other` do not: `visible_px` already excludes the obstructed or clipped part.
 */
export const BLOCKING_REASONS: readonly NotViewableReason[] = [
  'hidden',
  'backgrounded',
  'notFound',
  'deviceLocked',
  'unmeasurable',
];

const BLOCKING_MASK = BLOCKING_REASONS.reduce((mask, r) => mask | REASON_BITS[r], 0);
const REASON_LOOKUP: Readonly<Record<string, number>> = REASON_BITS;

/** Pixel counts above this could overflow `visible_px × 100` past exact integer arithmetic. */
export const MAX_PX = Math.floor(Number.MAX_SAFE_INTEGER / 100);

/** Bits of an impression's verdict at one event. */
export const VERDICT = { qualifies: 1, measurable: 2 } as const;

export function reasonMask(reasons: readonly string[]): number {
  let mask = 0;
  for (const reason of reasons) mask |= REASON_LOOKUP[reason] ?? REASON_BITS.other;
  return mask;
}

/** `THR` in percent for a declared creative size: large ads (declared area ≥ the limit) use the lower threshold. */
export function thresholdPercent(width: number, height: number, config: RulesConfig): number {
  const large =
    Number.isSafeInteger(width) &&
    Number.isSafeInteger(height) &&
    width > 0 &&
    height > 0 &&
    width * height >= config.largeAdMinAreaPx;
  return large ? config.largeAdThresholdPercent : config.thresholdPercent;
}

/** Pixel counts that are whole, within range, and `0 ≤ visible_px ≤ total_px`. */
export function hasValidGeometry(imp: ImpressionState): boolean {
  const { visible_px: visible, total_px: total } = imp;
  return (
    Number.isSafeInteger(visible) &&
    Number.isSafeInteger(total) &&
    visible >= 0 &&
    visible <= total &&
    total <= MAX_PX
  );
}

/** Whether the page lets anything on it qualify: tab visible, app in foreground, focus in strict mode. */
export function pageAllowsViewing(page: PageState, config: RulesConfig): boolean {
  return page.visible && page.foreground && (page.focused || !config.strictFocus);
}

/**
 * The verdict bits of one impression at one event. Measurable: valid geometry with
 * `total_px > 0` and no `unmeasurable` reason. Qualifies (rule 2): measurable, the page allows
 * viewing, `visible_px × 100 ≥ THR × total_px` in integers, no blocking reason, and for video
 * `playing`. Threshold and media come from what this event declares.
 */
export function impressionVerdict(
  imp: ImpressionState,
  reasons: number,
  pageAllows: boolean,
  config: RulesConfig,
): number {
  if (imp.total_px <= 0 || (reasons & REASON_BITS.unmeasurable) !== 0 || !hasValidGeometry(imp)) return 0;
  if (!pageAllows || (reasons & BLOCKING_MASK) !== 0 || (imp.media === 'video' && !imp.playing))
    return VERDICT.measurable;
  const enough = imp.visible_px * 100 >= thresholdPercent(imp.width, imp.height, config) * imp.total_px;
  return enough ? VERDICT.measurable | VERDICT.qualifies : VERDICT.measurable;
}

/** Rule 2 for one impression at one event. */
export function qualifies(page: PageState, imp: ImpressionState, config: RulesConfig): boolean {
  return (
    (impressionVerdict(imp, reasonMask(imp.reasons), pageAllowsViewing(page, config), config) &
      VERDICT.qualifies) !==
    0
  );
}
