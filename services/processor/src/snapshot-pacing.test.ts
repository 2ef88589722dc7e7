import { describe, expect, it } from 'vitest';
import { deltaAllowed, snapshotIntervalMs } from './snapshot-pacing.js';

describe('snapshotIntervalMs', () => {
  it('is the base interval while snapshots are cheap, and before the first one', () => {
    expect(snapshotIntervalMs(30_000, 0, 4, 10)).toBe(30_000);
    expect(snapshotIntervalMs(30_000, 500, 4, 10)).toBe(30_000);
    expect(snapshotIntervalMs(30_000, 750, 4, 10)).toBe(30_000);
  });

  it('stretches so that snapshots of every partition, one after another, take at most the given share of the time', () => {
    // 4 partitions, each snapshot 20 s: 800 s apart, so 4 × 20 s of every 800 s is 10%.
    expect(snapshotIntervalMs(30_000, 20_000, 4, 10)).toBe(800_000);
    expect(snapshotIntervalMs(30_000, 751, 4, 10)).toBe(30_040);
    expect(snapshotIntervalMs(30_000, 20_000, 1, 50)).toBe(40_000);
    expect(snapshotIntervalMs(1_000, 333.3, 3, 100)).toBe(1_000);
    expect(snapshotIntervalMs(1_000, 400.2, 3, 100)).toBe(1_201);
  });

  it('counts a partition alone as one, before any is assigned', () => {
    expect(snapshotIntervalMs(30_000, 20_000, 0, 10)).toBe(200_000);
  });
});

describe('deltaAllowed', () => {
  const chain = { base: 100, last: 400, baseBytes: 1_000, deltaBytes: 1_999 };

  it('continues a chain whose last snapshot is the partition\'s last, while its deltas add up to less than the share', () => {
    expect(deltaAllowed(chain, 400, 200)).toBe(true);
    expect(deltaAllowed({ ...chain, deltaBytes: 2_000 }, 400, 200)).toBe(false);
    expect(deltaAllowed({ ...chain, deltaBytes: 0 }, 400, 0)).toBe(false);
  });

  it('starts again with a full snapshot without a chain, or when the last snapshot is not the chain\'s', () => {
    expect(deltaAllowed(undefined, 400, 200)).toBe(false);
    expect(deltaAllowed(chain, 500, 200)).toBe(false);
  });
});
