import { describe, expect, it } from 'vitest';
import { firstImpressionTurn, lagMs, nextImpressionTurn, writeIntervalMs } from './write-pacing.js';

describe('lagMs', () => {
  const now = 1_000_000;

  it('is 0 when every partition has taken the last record of the log', () => {
    expect(lagMs([{ backlog: 0, lastTakenAtMs: now - 60_000 }], now)).toBe(0);
    expect(lagMs([], now)).toBe(0);
  });

  it('is the age of the last record taken, for the partition furthest behind', () => {
    const partitions = [
      { backlog: 10, lastTakenAtMs: now - 2_000 },
      { backlog: 5_000, lastTakenAtMs: now - 7_500 },
      { backlog: 0, lastTakenAtMs: now - 90_000 },
    ];
    expect(lagMs(partitions, now)).toBe(7_500);
  });

  it('leaves out records without a timestamp', () => {
    expect(lagMs([{ backlog: 100, lastTakenAtMs: Number.NaN }], now)).toBe(0);
  });
});

describe('writeIntervalMs', () => {
  it('is the base interval while caught up or behind by at most ten intervals', () => {
    expect(writeIntervalMs(500, 10_000, 0)).toBe(500);
    expect(writeIntervalMs(500, 10_000, 999)).toBe(500);
    expect(writeIntervalMs(500, 10_000, 5_000)).toBe(500);
    expect(writeIntervalMs(100, 10_000, 1_000)).toBe(100);
  });

  it('is half the lag while further behind, up to the maximum', () => {
    expect(writeIntervalMs(500, 10_000, 5_001)).toBe(2_500.5);
    expect(writeIntervalMs(100, 10_000, 3_000)).toBe(1_500);
    expect(writeIntervalMs(500, 10_000, 20_000)).toBe(10_000);
    expect(writeIntervalMs(500, 10_000, 3_600_000)).toBe(10_000);
  });

  it('never goes below the base interval, even with a smaller maximum', () => {
    expect(writeIntervalMs(500, 100, 60_000)).toBe(500);
  });
});

describe('impression turns', () => {
  it('start a write interval apart per partition, wrapping around the impression interval', () => {
    expect([0, 1, 2, 3, 4, 5].map((p) => firstImpressionTurn(p, 500, 2000, 10_000))).toEqual([10_000, 9_500, 9_000, 8_500, 10_000, 9_500]);
    // The turn of partition p is due once the interval has passed since its start: partition 3 first.
    expect([0, 1, 2, 3].filter((p) => 10_600 - firstImpressionTurn(p, 500, 2000, 10_000) >= 2000)).toEqual([3]);
  });

  it('keep each partition on its beat however late the write with impression rows came', () => {
    expect(nextImpressionTurn(8_500, 10_600, 2000)).toBe(10_500);
    expect(nextImpressionTurn(8_500, 15_100, 2000)).toBe(14_500);
    // A write before the turn was due (stopping, a rebalance) still moves on by one turn.
    expect(nextImpressionTurn(8_500, 9_000, 2000)).toBe(10_500);
  });

  it('are every write when the interval is 0', () => {
    expect(firstImpressionTurn(3, 500, 0, 10_000)).toBe(10_000);
    expect(nextImpressionTurn(8_500, 10_600, 0)).toBe(10_600);
  });
});
