import { describe, expect, it } from 'vitest';
import { newestWholeChain, type SnapshotLink } from './exposure-store.js';

const full = (at: number): SnapshotLink => ({ next_offset: `${at}`, kind: 'full', previous_offset: `${at}`, base_offset: `${at}` });
const delta = (at: number, previous: number, base: number): SnapshotLink => ({
  next_offset: `${at}`,
  kind: 'delta',
  previous_offset: `${previous}`,
  base_offset: `${base}`,
});
const newestFirst = (...links: SnapshotLink[]) => [...links].sort((a, b) => Number(b.next_offset) - Number(a.next_offset));

describe('newestWholeChain', () => {
  it('is the newest full snapshot and the deltas on it, oldest first', () => {
    expect(newestWholeChain(newestFirst(full(5), delta(9, 5, 5), delta(12, 9, 5)))).toEqual(['5', '9', '12']);
    expect(newestWholeChain(newestFirst(full(5), delta(9, 5, 5), full(12)))).toEqual(['12']);
  });

  it('passes over a delta whose chain lost a link, or whose full snapshot is gone', () => {
    expect(newestWholeChain(newestFirst(full(5), delta(9, 5, 5), delta(20, 15, 5)))).toEqual(['5', '9']);
    expect(newestWholeChain(newestFirst(delta(9, 5, 5), delta(12, 9, 5)))).toBeUndefined();
    expect(newestWholeChain([])).toBeUndefined();
  });

  it('does not follow a delta onto another chain at the same offset', () => {
    // Another processor's delta replaced the row at 9: the delta at 12 follows a state of another chain.
    expect(newestWholeChain(newestFirst(full(3), full(5), delta(9, 3, 3), delta(12, 9, 5)))).toEqual(['3', '9']);
  });

  it('ends on a delta that names itself or a later offset as the one it follows', () => {
    expect(newestWholeChain(newestFirst(full(5), delta(9, 9, 5)))).toEqual(['5']);
  });
});
