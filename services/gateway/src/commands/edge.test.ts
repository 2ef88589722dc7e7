import { describe, expect, it } from 'vitest';
import { isControlFrame } from './frames.js';
import { parseServiceTokens, serviceFor } from './service-auth.js';

const bytes = (text: string): ArrayBuffer => new TextEncoder().encode(text).buffer as ArrayBuffer;

describe('isControlFrame', () => {
  it.each([
    ['{"t":"reply","id":"c1","result":1}', true],
    ['  {\n "t" : "reply"}', true],
    ['{"events":[]}', false],
    ['{"tt":"reply"}', false],
    ['{"events":[],"t":"reply"}', false],
    ['[{"t":"reply"}]', false],
    ['', false],
  ])('%j → %s', (text, expected) => {
    expect(isControlFrame(bytes(text))).toBe(expected);
  });
});

describe('service tokens', () => {
  const tokens = parseServiceTokens({ billing: 'b'.repeat(32), crm: 'c'.repeat(40) });

  it('names the service whose bearer token matches', () => {
    expect(serviceFor(`Bearer ${'b'.repeat(32)}`, tokens)).toBe('billing');
    expect(serviceFor(`Bearer ${'c'.repeat(40)}`, tokens)).toBe('crm');
  });

  it.each([
    ['no header', ''],
    ['another scheme', `Basic ${'b'.repeat(32)}`],
    ['a prefix of a token', `Bearer ${'b'.repeat(31)}`],
    ['a token with one more character', `Bearer ${'b'.repeat(33)}`],
    ['an unknown token', `Bearer ${'x'.repeat(32)}`],
  ])('refuses %s', (_name, header) => {
    expect(serviceFor(header, tokens)).toBeUndefined();
  });

  it('refuses short or non-printable tokens in the configuration', () => {
    expect(() => parseServiceTokens({ a: 'short' })).toThrow(/at least 32/);
    expect(() => parseServiceTokens({ a: `${'x'.repeat(32)} ` })).toThrow(/printable/);
    expect(() => parseServiceTokens(['x'])).toThrow(/object/);
  });
});
