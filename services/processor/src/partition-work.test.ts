import { afterEach, describe, expect, it, vi } from 'vitest';
import { encodePageEvent } from '@dwell/protocol';
import { workload } from '../../../test/workload.js';
import { PartitionWork } from './partition-work.js';

describe('PartitionWork.snapshot', () => {
  afterEach(() => {
    vi.restoreAllMocks();
  });

  function filled(): PartitionWork {
    const work = new PartitionWork();
    work.restore(7, null, 0);
    const events = workload({ seed: 3, pageViews: 20, eventsPerPageView: 10, baseMs: 1_764_000_000_000, spreadMs: 10_000 });
    work.apply(7, events.map((event) => encodePageEvent(event)));
    return work;
  }

  it('gives the partition state as JSON text that restores it, with what serializing took', () => {
    const work = filled();
    const snapshot = work.snapshot(7);
    expect(snapshot.pageViews).toBe(20);
    expect(snapshot.serializeMs).toBeGreaterThanOrEqual(0);
    expect(snapshot.kind).toBe('full');
    const again = new PartitionWork();
    expect(again.restore(7, { snapshot: snapshot.text, deltas: [] }, 0)).toBe(20);
    expect(again.snapshot(7).text).toBe(snapshot.text);
  });

  it('gives a delta on the snapshot before when asked', () => {
    const work = filled();
    const base = work.snapshot(7);
    const more = workload({ seed: 4, pageViews: 3, eventsPerPageView: 5, baseMs: 1_764_000_005_000, spreadMs: 1_000 });
    work.apply(7, more.map((event) => encodePageEvent(event)));
    const delta = work.snapshot(7, true);
    expect(delta.kind).toBe('delta');
    expect(delta.pageViews).toBe(23);
    expect(delta.text.length).toBeLessThan(base.text.length);
    const again = new PartitionWork();
    expect(again.restore(7, { snapshot: base.text, deltas: [delta.text] }, 0)).toBe(23);
    expect(again.snapshot(7).text).toBe(work.snapshot(7).text);
  });

  it('says what to do when the state is too large for one text', () => {
    const work = filled();
    // What V8 throws beyond its longest string (about 536 MB of JSON: some 11,000 events/s into
    // one partition under steady traffic).
    vi.spyOn(JSON, 'stringify').mockImplementation(() => {
      throw new RangeError('Invalid string length');
    });
    expect(() => work.snapshot(7)).toThrow(
      /partition 7 holds too much to snapshot as one text \(20 page views: Invalid string length\); give the events topic more partitions/,
    );
  });
});
