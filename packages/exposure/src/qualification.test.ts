/** Rule 2 (qualifies), the threshold arithmetic, and measurability, one condition per row. */
import { describe, expect, it } from 'vitest';
import type { NotViewableReason, PageState } from '@dwell/protocol';
import { PageViewState } from './page-view-state.js';
import { qualifies, thresholdPercent } from './qualification.js';
import { createRulesConfig, DEFAULT_RULES_CONFIG } from './rules-config.js';
import { ev, identity, imp, type ImpressionSpec } from './test-support/events.js';

const PAGE: PageState = { visible: true, focused: true, foreground: true };
const STRICT = createRulesConfig({ rulesVersion: 1001, strictFocus: true });

const CASES: readonly {
  name: string;
  imp: ImpressionSpec;
  page?: Partial<PageState>;
  strict?: boolean;
  expected: boolean;
}[] = [
  { name: 'fully in view', imp: {}, expected: true },
  { name: 'nothing in view', imp: { visible: 0 }, expected: false },
  // 300×250 = 75,000 px: 50% is 37,500 px.
  { name: 'exactly 50% (37,500 of 75,000)', imp: { visible: 37_500 }, expected: true },
  { name: 'one pixel under 50%', imp: { visible: 37_499 }, expected: false },
  // 101 px: 50.5 px needed; 51×100 = 5100 ≥ 50×101 = 5050, 50×100 = 5000 < 5050.
  { name: 'odd total, 51 of 101 (50.5%)', imp: { width: 101, height: 1, visible: 51 }, expected: true },
  { name: 'odd total, 50 of 101 (49.5%)', imp: { width: 101, height: 1, visible: 50 }, expected: false },
  { name: 'total_px 0', imp: { total: 0, visible: 0 }, expected: false },
  // 970×250 = 242,500 px: large, 30% = 72,750 px.
  {
    name: 'large ad (970×250) at exactly 30%',
    imp: { width: 970, height: 250, visible: 72_750 },
    expected: true,
  },
  {
    name: 'large ad one pixel under 30%',
    imp: { width: 970, height: 250, visible: 72_749 },
    expected: false,
  },
  // 485×500 = 242,500 as well; 1×242,499 is one pixel short of large.
  {
    name: 'large by another shape (485×500) at 30%',
    imp: { width: 485, height: 500, visible: 72_750 },
    expected: true,
  },
  {
    name: '242,499 px declared is not large: 30% fails',
    imp: { width: 1, height: 242_499, visible: 72_750 },
    expected: false,
  },
  {
    name: '242,499 px declared at 50% (121,250 ≥ 121,249.5)',
    imp: { width: 1, height: 242_499, visible: 121_250 },
    expected: true,
  },
  {
    name: 'declared large, rendered small: 30% of rendered',
    imp: { width: 970, height: 250, total: 10_000, visible: 3000 },
    expected: true,
  },
  {
    name: 'declared small, rendered large: still 50%',
    imp: { width: 300, height: 250, total: 300_000, visible: 90_000 },
    expected: false,
  },
  { name: 'tab hidden', imp: {}, page: { visible: false }, expected: false },
  { name: 'app in background', imp: {}, page: { foreground: false }, expected: false },
  { name: 'window unfocused, normal mode', imp: {}, page: { focused: false }, expected: true },
  { name: 'window unfocused, strict mode', imp: {}, page: { focused: false }, strict: true, expected: false },
  { name: 'window focused, strict mode', imp: {}, strict: true, expected: true },
  { name: 'reason hidden', imp: { reasons: ['hidden'] }, expected: false },
  { name: 'reason backgrounded', imp: { reasons: ['backgrounded'] }, expected: false },
  { name: 'reason notFound', imp: { reasons: ['notFound'] }, expected: false },
  { name: 'reason deviceLocked', imp: { reasons: ['deviceLocked'] }, expected: false },
  { name: 'reason unmeasurable', imp: { reasons: ['unmeasurable'] }, expected: false },
  {
    name: 'reason obstructed with enough pixels',
    imp: { reasons: ['obstructed'], visible: 40_000 },
    expected: true,
  },
  {
    name: 'reason clipped with enough pixels',
    imp: { reasons: ['clipped'], visible: 40_000 },
    expected: true,
  },
  { name: 'reason other', imp: { reasons: ['other'] }, expected: true },
  { name: 'video playing', imp: { media: 'video', playing: true }, expected: true },
  { name: 'video paused', imp: { media: 'video', playing: false }, expected: false },
  {
    name: 'video playing at exactly 50%',
    imp: { media: 'video', playing: true, visible: 37_500 },
    expected: true,
  },
  { name: 'display never needs playing', imp: { media: 'display', playing: false }, expected: true },
  { name: 'visible_px above total_px is not trusted', imp: { total: 1000, visible: 1001 }, expected: false },
  { name: 'negative visible_px', imp: { visible: -1 }, expected: false },
  { name: 'negative total_px', imp: { total: -100, visible: -50 }, expected: false },
];

describe('rule 2: qualifies', () => {
  it.each(CASES)('$name → $expected', ({ imp: spec, page, strict, expected }) => {
    expect(qualifies({ ...PAGE, ...page }, imp(spec), strict === true ? STRICT : DEFAULT_RULES_CONFIG)).toBe(
      expected,
    );
  });

  // The same rows through a page view: a qualifying state held for 1000 ms is exactly one TMIN.
  it.each(CASES.filter((c) => c.strict !== true && c.imp.media !== 'video'))(
    '$name, held 1000 ms → viewable $expected',
    ({ imp: spec, page, expected }) => {
      const state = new PageViewState(identity);
      state.apply(ev({ seq: 1, t: 0, imps: [imp(spec)], page }));
      state.apply(ev({ seq: 2, t: 1000, imps: [imp(spec)], page }));
      expect(state.results().impressions[0]).toMatchObject({
        viewable: expected,
        viewable_ms: expected ? 1000 : 0,
      });
    },
  );
});

describe('THR from the declared size', () => {
  it.each([
    { width: 300, height: 250, expected: 50 },
    { width: 970, height: 250, expected: 30 },
    { width: 1, height: 242_499, expected: 50 },
    { width: 1, height: 242_500, expected: 30 },
    { width: -970, height: -250, expected: 50 },
    { width: 0, height: 1_000_000, expected: 50 },
  ])('$width × $height → $expected%', ({ width, height, expected }) => {
    expect(thresholdPercent(width, height, DEFAULT_RULES_CONFIG)).toBe(expected);
  });
});

describe('measurable', () => {
  it.each([
    { name: 'in view', states: [{}], expected: true },
    { name: 'scrolled away but measured', states: [{ visible: 0 }], expected: true },
    { name: 'hidden tab still measures geometry', states: [{ reasons: ['hidden'] }], expected: true },
    { name: 'total_px 0 only', states: [{ total: 0, visible: 0 }], expected: false },
    { name: 'unmeasurable only', states: [{ reasons: ['unmeasurable'] }], expected: false },
    { name: 'visible above total only', states: [{ total: 10, visible: 11 }], expected: false },
    {
      name: 'unmeasurable, then measured once',
      states: [{ reasons: ['unmeasurable'] }, { visible: 0 }],
      expected: true,
    },
  ] as const)('$name → $expected', ({ states, expected }) => {
    const state = new PageViewState(identity);
    states.forEach((spec, i) =>
      state.apply(
        ev({
          seq: i + 1,
          t: i * 500,
          imps: [
            imp({
              ...spec,
              reasons: 'reasons' in spec ? [...(spec.reasons as readonly NotViewableReason[])] : [],
            }),
          ],
        }),
      ),
    );
    expect(state.results().impressions[0]?.measurable).toBe(expected);
  });
});
