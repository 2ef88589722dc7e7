import { describe, expect, it } from 'vitest';
import { eventContentHash } from './content-hash.js';
import { PageViewState } from './page-view-state.js';
import {
  createRulesConfig,
  DEFAULT_RULES_CONFIG,
  RULES_VERSION,
  RulesConfigError,
  type RulesConfig,
} from './rules-config.js';
import { ev, identity, imp } from './test-support/events.js';

describe('rules version 1 constants', () => {
  it('are the defaults of EXPOSURE-RULES.md', () => {
    expect(RULES_VERSION).toBe(1);
    expect(DEFAULT_RULES_CONFIG).toMatchObject({
      rulesVersion: 1,
      thresholdPercent: 50,
      largeAdThresholdPercent: 30,
      largeAdMinAreaPx: 242_500,
      minRunMsDisplay: 1000,
      minRunMsVideo: 2000,
      maxGapMs: 1500,
      plausibilitySlackMs: 2000,
      allowedLatenessMs: 600_000,
      strictFocus: false,
    });
    expect(Object.isFrozen(DEFAULT_RULES_CONFIG)).toBe(true);
    expect(createRulesConfig()).toEqual(DEFAULT_RULES_CONFIG);
  });
});

describe('createRulesConfig', () => {
  it.each([
    { overrides: { rulesVersion: 2, thresholdPercent: 0 }, key: 'thresholdPercent', value: 0 },
    { overrides: { rulesVersion: 2, thresholdPercent: 101 }, key: 'thresholdPercent', value: 101 },
    { overrides: { rulesVersion: 2, maxGapMs: 1.5 }, key: 'maxGapMs', value: 1.5 },
    { overrides: { rulesVersion: 2, allowedLatenessMs: -1 }, key: 'allowedLatenessMs', value: -1 },
    {
      overrides: { rulesVersion: 2, strictFocus: 'yes' as unknown as boolean },
      key: 'strictFocus',
      value: 'yes',
    },
    {
      overrides: { rulesVersion: 2, givtUserAgentPatterns: ['('] },
      key: 'givtUserAgentPatterns',
      value: '(',
    },
    {
      overrides: { rulesVersion: 2, givtUserAgentPatterns: [''] },
      key: 'givtUserAgentPatterns',
      value: [''],
    },
    { overrides: { maxGap: 10 } as unknown as Partial<RulesConfig>, key: 'maxGap', value: 10 },
    // Version 1 means exactly the defaults: a variant must say it is one.
    { overrides: { strictFocus: true }, key: 'strictFocus', value: true },
    { overrides: { rulesVersion: 3 }, key: 'rulesVersion', value: 3 },
  ])('rejects $key=$value, naming both', ({ overrides, key, value }) => {
    expect(() => createRulesConfig(overrides)).toThrow(RulesConfigError);
    expect(() => createRulesConfig(overrides)).toThrow(expect.objectContaining({ key, value }));
    expect(() => createRulesConfig(overrides)).toThrow(key);
  });

  it('accepts a variant under its own version, and results record it', () => {
    const config = createRulesConfig({ rulesVersion: 7, minRunMsDisplay: 500 });
    const state = new PageViewState(identity, config);
    state.apply(ev({ seq: 1, t: 0 }));
    state.apply(ev({ seq: 2, t: 500, imps: [imp({ visible: 0 })] }));
    expect(state.results().impressions[0]).toMatchObject({ rules_version: 7, viewable_ms: 500 });
  });

  it('PageViewState validates a config object it is handed', () => {
    const bad = { ...DEFAULT_RULES_CONFIG, maxGapMs: -5 };
    expect(() => new PageViewState(identity, bad)).toThrow(expect.objectContaining({ key: 'maxGapMs' }));
  });
});

describe('eventContentHash', () => {
  const e = ev({ seq: 1, t: 0, imps: [imp({ reasons: ['clipped'] }), imp({ id: 'imp-2' })] }).event;
  it.each([
    { name: 'seq is not content (it is the key)', other: { ...e, seq: 2 }, same: true },
    { name: 'kind', other: { ...e, kind: 'end' as const }, same: false },
    { name: 't_mono_ms', other: { ...e, t_mono_ms: 1 }, same: false },
    { name: 't_wall_ms', other: { ...e, t_wall_ms: e.t_wall_ms + 1 }, same: false },
    { name: 'page.visible', other: { ...e, page: { ...e.page, visible: false } }, same: false },
    { name: 'page.focused', other: { ...e, page: { ...e.page, focused: false } }, same: false },
    { name: 'page.foreground', other: { ...e, page: { ...e.page, foreground: false } }, same: false },
    { name: 'impression order', other: { ...e, impressions: [...e.impressions].reverse() }, same: false },
    {
      name: 'ad_id',
      other: { ...e, impressions: [imp({ ad: 'ad-x', reasons: ['clipped'] }), imp({ id: 'imp-2' })] },
      same: false,
    },
    {
      name: 'height',
      other: {
        ...e,
        impressions: [imp({ height: 251, total: 75_000, reasons: ['clipped'] }), imp({ id: 'imp-2' })],
      },
      same: false,
    },
    {
      name: 'reasons as a set',
      other: { ...e, impressions: [imp({ reasons: ['clipped', 'clipped'] }), imp({ id: 'imp-2' })] },
      same: true,
    },
    {
      name: 'playing',
      other: { ...e, impressions: [imp({ playing: true, reasons: ['clipped'] }), imp({ id: 'imp-2' })] },
      same: false,
    },
    { name: 'a t_mono_ms 2^32 apart', other: { ...e, t_mono_ms: 2 ** 32 }, same: false },
  ])('$name: same=$same', ({ other, same }) => {
    expect(eventContentHash(other) === eventContentHash(e)).toBe(same);
    expect(Number.isSafeInteger(eventContentHash(other))).toBe(true);
  });

  it('a page view stores the same hash the standalone function computes', () => {
    const state = new PageViewState(identity);
    const events = [
      ev({ seq: 1, t: 0, imps: [imp(), imp({ id: 'imp-2', ad: 'ad-2' })] }),
      ev({ seq: 2, t: 900, imps: [imp({ id: 'imp-2', ad: 'ad-2', reasons: ['hidden', 'other'] })] }),
    ];
    for (const x of events) state.apply(x);
    expect(state.snapshot().events.map((t) => t[3])).toEqual(events.map((x) => eventContentHash(x.event)));
  });
});
