import { describe, expect, it } from 'vitest';
import { gatewayConfigFromEnv } from './config.js';
import { gatewayNodeFlags } from './workers.js';

describe('gatewayNodeFlags', () => {
  const config = (floor?: string) => gatewayConfigFromEnv(floor === undefined ? {} : { GATEWAY_OLD_SPACE_FLOOR_MB: floor });

  it('asks for the old-space floor by default', () => {
    expect(gatewayNodeFlags(config(), [])).toEqual(['--initial-old-space-size=256']);
    expect(gatewayNodeFlags(config('512'), ['--enable-source-maps'])).toEqual(['--initial-old-space-size=512']);
  });

  it('adds nothing when node already has the flag, whatever its value, or the floor is 0', () => {
    expect(gatewayNodeFlags(config(), ['--initial-old-space-size=64'])).toEqual([]);
    expect(gatewayNodeFlags(config(), ['--initial_old_space_size=64'])).toEqual([]);
    expect(gatewayNodeFlags(config('0'), [])).toEqual([]);
  });
});
