/**
 * The constants of EXPOSURE-RULES.md as one configuration object. Every constant that changes a
 * billed number lives here, so a result's `rules_version` names exactly the constants behind it.
 */

/** The rules version whose constants are {@link DEFAULT_RULES_CONFIG}. */
export const RULES_VERSION = 1;

export interface RulesConfig {
  /**
   * Recorded in every result. Must equal {@link RULES_VERSION} when every other field has its
   * default, and must differ from it otherwise (a variant of the rules is a different version).
   * Default `1`.
   */
  readonly rulesVersion: number;
  /** Share of pixels that must be in view, percent (`THR`). Default `50`. */
  readonly thresholdPercent: number;
  /** `THR` for large ads, percent. Default `30`. */
  readonly largeAdThresholdPercent: number;
  /** Declared width × height from which an ad is large, px. Default `242_500`. */
  readonly largeAdMinAreaPx: number;
  /** `TMIN` for display: the continuous run that makes an impression viewable, ms. Default `1000`. */
  readonly minRunMsDisplay: number;
  /** `TMIN` for video, ms. Default `2000`. */
  readonly minRunMsVideo: number;
  /** `MAX_GAP`: longest segment between two events that can be credited, ms. Default `1500`. */
  readonly maxGapMs: number;
  /** `PLAUSIBILITY_SLACK`: client-elapsed time allowed beyond the server-observed life, ms. Default `2000`. */
  readonly plausibilitySlackMs: number;
  /** `ALLOWED_LATENESS`: how far the partition watermark may pass a page view's last event, ms. Default `600_000`. */
  readonly allowedLatenessMs: number;
  /**
   * How long after closing a page view the partition still recognises its id and answers `late`,
   * counted from the page view's last event plus `allowedLatenessMs`, ms. Default `3_600_000`.
   */
  readonly closedMemoryMs: number;
  /** Strict focus mode: an impression qualifies only while the window is focused. Default `false`. */
  readonly strictFocus: boolean;
  /**
   * Regular-expression sources (matched case-insensitively) of known bot or headless user agents
   * (`givt_user_agent`). Default {@link DEFAULT_GIVT_USER_AGENT_PATTERNS}.
   */
  readonly givtUserAgentPatterns: readonly string[];
}

/** General invalid traffic: user agents of headless browsers, audit tools and crawlers. */
export const DEFAULT_GIVT_USER_AGENT_PATTERNS: readonly string[] = Object.freeze([
  'HeadlessChrome',
  'PhantomJS',
  'Lighthouse',
  // "Googlebot/2.1", "AdsBot-Google", "bingbot"; the look-behind spares Cubot phones.
  '(?<!cu)bot\\b',
  'crawler',
  'spider',
]);

/** The rules version 1 constants. */
export const DEFAULT_RULES_CONFIG: RulesConfig = Object.freeze({
  rulesVersion: RULES_VERSION,
  thresholdPercent: 50,
  largeAdThresholdPercent: 30,
  largeAdMinAreaPx: 242_500,
  minRunMsDisplay: 1000,
  minRunMsVideo: 2000,
  maxGapMs: 1500,
  plausibilitySlackMs: 2000,
  allowedLatenessMs: 600_000,
  closedMemoryMs: 3_600_000,
  strictFocus: false,
  givtUserAgentPatterns: DEFAULT_GIVT_USER_AGENT_PATTERNS,
});

/** A configuration value that cannot be used; names the key and the bad value. */
export class RulesConfigError extends Error {
  readonly key: string;
  readonly value: unknown;
  constructor(key: string, value: unknown, requirement: string) {
    super(`rules config ${key}=${JSON.stringify(value)}: ${requirement}`);
    this.name = 'RulesConfigError';
    this.key = key;
    this.value = value;
  }
}

type NumericKey = Exclude<keyof RulesConfig, 'strictFocus' | 'givtUserAgentPatterns'>;

const NUMERIC_LIMITS: Readonly<Record<NumericKey, readonly [min: number, max: number]>> = {
  rulesVersion: [1, Number.MAX_SAFE_INTEGER],
  thresholdPercent: [1, 100],
  largeAdThresholdPercent: [1, 100],
  largeAdMinAreaPx: [1, Number.MAX_SAFE_INTEGER],
  minRunMsDisplay: [1, Number.MAX_SAFE_INTEGER],
  minRunMsVideo: [1, Number.MAX_SAFE_INTEGER],
  maxGapMs: [1, Number.MAX_SAFE_INTEGER],
  plausibilitySlackMs: [0, Number.MAX_SAFE_INTEGER],
  allowedLatenessMs: [0, Number.MAX_SAFE_INTEGER],
  closedMemoryMs: [0, Number.MAX_SAFE_INTEGER],
};

const KEYS = Object.keys(DEFAULT_RULES_CONFIG) as readonly (keyof RulesConfig)[];

/**
 * Builds a validated, frozen config from the defaults and `overrides`.
 *
 * @throws RulesConfigError naming the first bad key and its value: an unknown key, a value of the
 *   wrong type or range, a pattern that does not compile, or a rules version that does not match
 *   the constants (version 1 means exactly the defaults).
 */
export function createRulesConfig(overrides: Partial<RulesConfig> = {}): RulesConfig {
  for (const key of Object.keys(overrides)) {
    if (!(KEYS as readonly string[]).includes(key)) {
      throw new RulesConfigError(key, (overrides as Record<string, unknown>)[key], 'unknown key');
    }
  }
  const config: RulesConfig = { ...DEFAULT_RULES_CONFIG, ...overrides };
  for (const [key, [min, max]] of Object.entries(NUMERIC_LIMITS)) {
    const value: unknown = config[key as NumericKey];
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > max) {
      throw new RulesConfigError(key, value, `must be an integer from ${min} to ${max}`);
    }
  }
  if (typeof config.strictFocus !== 'boolean') {
    throw new RulesConfigError('strictFocus', config.strictFocus, 'must be a boolean');
  }
  const patterns: unknown = config.givtUserAgentPatterns;
  if (!Array.isArray(patterns) || patterns.some((p) => typeof p !== 'string' || p.length === 0)) {
    throw new RulesConfigError('givtUserAgentPatterns', patterns, 'must be an array of non-empty strings');
  }
  for (const pattern of patterns as string[]) {
    try {
      new RegExp(pattern, 'i');
    } catch {
      throw new RulesConfigError('givtUserAgentPatterns', pattern, 'is not a valid regular expression');
    }
  }
  const changed = KEYS.filter((k) => k !== 'rulesVersion' && !sameValue(config[k], DEFAULT_RULES_CONFIG[k]));
  if (config.rulesVersion === RULES_VERSION && changed.length > 0) {
    const key = changed[0] ?? 'rulesVersion';
    throw new RulesConfigError(
      key,
      config[key],
      `differs from rules version ${RULES_VERSION}; give the variant its own rulesVersion`,
    );
  }
  if (config.rulesVersion !== RULES_VERSION && changed.length === 0) {
    throw new RulesConfigError(
      'rulesVersion',
      config.rulesVersion,
      `the constants are those of rules version ${RULES_VERSION}`,
    );
  }
  return Object.freeze({ ...config, givtUserAgentPatterns: Object.freeze([...(patterns as string[])]) });
}

function sameValue(a: unknown, b: unknown): boolean {
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((v, i) => v === b[i]);
  return a === b;
}
