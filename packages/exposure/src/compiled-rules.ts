import { hashString } from './content-hash.js';
import { DEFAULT_RULES_CONFIG, createRulesConfig, type RulesConfig } from './rules-config.js';

/** A validated config with what the hot path needs precomputed. Internal. */
export interface CompiledRules {
  readonly config: RulesConfig;
  /** Identifies the constants inside snapshots: a snapshot restores only under the same rules. */
  readonly fingerprint: string;
  readonly givtUserAgent: RegExp;
  /** Verdicts on user agents seen: a partition sees few distinct ones. A cache, not state. */
  readonly givtVerdicts: Map<string, boolean>;
  /** The last user agent looked up and its verdict: comparing with a hot string beats hashing. */
  lastUserAgent: string;
  lastVerdict: boolean;
}

// Compiling once per config object keeps page-view creation cheap; the key is the caller's object.
const cache = new WeakMap<RulesConfig, CompiledRules>();

/** Validates (once per object) and compiles a config. Throws RulesConfigError for a bad config. */
export function compileRules(config: RulesConfig = DEFAULT_RULES_CONFIG): CompiledRules {
  const cached = cache.get(config);
  if (cached !== undefined) return cached;
  const valid = config === DEFAULT_RULES_CONFIG ? config : createRulesConfig(config);
  const canonical = JSON.stringify(
    Object.keys(valid)
      .sort()
      .map((k) => [k, valid[k as keyof RulesConfig]]),
  );
  const compiled: CompiledRules = {
    config: valid,
    fingerprint: `${valid.rulesVersion}:${hashString(canonical).toString(16)}`,
    // No `g` flag: a global RegExp keeps `lastIndex` between calls, which would make `test` stateful.
    givtUserAgent: new RegExp(valid.givtUserAgentPatterns.map((p) => `(?:${p})`).join('|'), 'i'),
    givtVerdicts: new Map(),
    lastUserAgent: '',
    lastVerdict: false,
  };
  cache.set(config, compiled);
  return compiled;
}

const MAX_REMEMBERED = 4096;

/** Whether a user agent is a known bot or headless browser. A missing user agent is not flagged. */
export function isGivtUserAgent(rules: CompiledRules, userAgent: string | null): boolean {
  if (userAgent === null) return false;
  if (userAgent === rules.lastUserAgent) return rules.lastVerdict;
  const known = rules.givtVerdicts;
  let verdict = known.get(userAgent);
  if (verdict === undefined) {
    verdict = rules.givtUserAgent.test(userAgent);
    if (known.size >= MAX_REMEMBERED) known.clear();
    known.set(userAgent, verdict);
  }
  rules.lastUserAgent = userAgent;
  rules.lastVerdict = verdict;
  return verdict;
}
