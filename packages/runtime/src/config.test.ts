import { describe, expect, it } from 'vitest';
import { ConfigError, describeConfig, env, parseConfig } from './config.js';

const schema = {
  PORT: env.int('port', 8080, { min: 0, max: 65535 }),
  NAME: env.string('name', 'dwell'),
  DEBUG: env.boolean('debug', false),
  MODE: env.oneOf('mode', ['a', 'b'] as const, 'a'),
  LIST: env.list('list', undefined),
  MAP: env.json('map', undefined, (value) => {
    if (typeof value !== 'object' || value === null) throw new Error('expected an object');
    return value as Record<string, unknown>;
  }),
};

describe('parseConfig', () => {
  it('applies defaults when nothing is set', () => {
    expect(parseConfig(schema, {})).toEqual({ PORT: 8080, NAME: 'dwell', DEBUG: false, MODE: 'a', LIST: undefined, MAP: undefined });
  });

  it('parses every kind of value', () => {
    const config = parseConfig(schema, { PORT: '9000', NAME: 'x', DEBUG: 'yes', MODE: 'b', LIST: 'a:1, b:2,', MAP: '{"k":1}' });
    expect(config).toEqual({ PORT: 9000, NAME: 'x', DEBUG: true, MODE: 'b', LIST: ['a:1', 'b:2'], MAP: { k: 1 } });
  });

  it('names every invalid key at once, with the bad value', () => {
    let caught: unknown;
    try {
      parseConfig(schema, { PORT: '80.5', DEBUG: 'maybe', MODE: 'c', MAP: '[' });
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(ConfigError);
    const problems = (caught as ConfigError).problems;
    expect(problems).toHaveLength(4);
    expect(problems[0]).toContain('PORT="80.5"');
    expect(problems.slice(1)).toEqual([
      'DEBUG="maybe": expected true or false (debug)',
      'MODE="c": expected one of a, b (mode)',
      'MAP="[": expected JSON (map)',
    ]);
  });

  it('rejects integers out of bounds', () => {
    expect(() => parseConfig(schema, { PORT: '70000' })).toThrow(/PORT="70000": expected an integer in \[0, 65535\]/);
  });

  it('documents each setting with its default', () => {
    expect(describeConfig(schema)[0]).toBe('| `PORT` | `8080` | port |');
    expect(describeConfig(schema)[4]).toBe('| `LIST` | — | list |');
  });
});
