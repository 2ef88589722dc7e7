import { afterEach, describe, expect, it, vi } from 'vitest';
import { encodePageEvent } from '@dwell/protocol';
import { workload } from '../../../test/workload.js';
import { PartitionWork, SnapshotBuffers, SnapshotEncoder, type SnapshotTaken } from './partition-work.js';

const textOf = (bytes: Uint8Array): string => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8');

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

  it('gives the partition state as JSON text in UTF-8 that restores it, with what serializing took', () => {
    const work = filled();
    const snapshot = work.snapshot(7);
    expect(snapshot.pageViews).toBe(20);
    expect(snapshot.serializeMs).toBeGreaterThanOrEqual(0);
    expect(snapshot.kind).toBe('full');
    const text = textOf(snapshot.bytes);
    expect(JSON.parse(text)).toMatchObject({ kind: 'partition' });
    const again = new PartitionWork();
    expect(again.restore(7, { snapshot: text, deltas: [] }, 0)).toBe(20);
    expect(textOf(again.snapshot(7).bytes)).toBe(text);
  });

  it('gives a delta on the snapshot before when asked', () => {
    const work = filled();
    const base = work.snapshot(7);
    const more = workload({ seed: 4, pageViews: 3, eventsPerPageView: 5, baseMs: 1_764_000_005_000, spreadMs: 1_000 });
    work.apply(7, more.map((event) => encodePageEvent(event)));
    const delta = work.snapshot(7, true);
    expect(delta.kind).toBe('delta');
    expect(delta.pageViews).toBe(23);
    expect(delta.bytes.length).toBeLessThan(base.bytes.length);
    const again = new PartitionWork();
    expect(again.restore(7, { snapshot: textOf(base.bytes), deltas: [textOf(delta.bytes)] }, 0)).toBe(23);
    expect(textOf(again.snapshot(7).bytes)).toBe(textOf(work.snapshot(7).bytes));
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

describe('SnapshotEncoder', () => {
  const taken = (pieces: string[]): SnapshotTaken => ({
    kind: 'full',
    pieces,
    chars: pieces.reduce((sum, piece) => sum + piece.length, 0),
    pageViews: 1,
    rulesVersion: 1,
    rulesFingerprint: 'f',
    takeMs: 2,
  });

  it('encodes the pieces in order as UTF-8 a slice at a time, growing past a byte per character', () => {
    // Multi-byte characters and pairs of UTF-16 units take up to 4 bytes for 2 units: more than
    // the byte per unit the buffer starts with.
    const pieces = Array.from({ length: 1000 }, (_, i) => (i % 3 === 0 ? `"ü€😀-${i}"` : i % 3 === 1 ? ',' : `{"n":${i}}`));
    const encoder = new SnapshotEncoder(taken(pieces));
    let steps = 1;
    while (!encoder.step(() => false)) steps++;
    // Asked whether to go on every 64 pieces: told no each time, 64 pieces per slice.
    expect(steps).toBe(Math.ceil(pieces.length / 64));
    const snapshot = encoder.finish();
    expect(Buffer.from(snapshot.bytes).toString('utf8')).toBe(pieces.join(''));
    expect(snapshot.bytes.byteLength).toBe(Buffer.byteLength(pieces.join(''), 'utf8'));
    expect(snapshot.serializeMs).toBeGreaterThanOrEqual(2);
  });

  it('is not finished before every piece is encoded', () => {
    const encoder = new SnapshotEncoder(taken(Array.from({ length: 200 }, () => 'x')));
    expect(encoder.step(() => false)).toBe(false);
    expect(() => encoder.finish()).toThrow(/not encoded yet/);
  });
});

describe('SnapshotBuffers', () => {
  it('lends the spare buffer again only once it is given back, and makes a larger one where it is too small', () => {
    const buffers = new SnapshotBuffers();
    const first = buffers.take(1000);
    expect(first.buffer).toBeInstanceOf(SharedArrayBuffer);
    // Room to grow: snapshots grow with the state they hold.
    expect(first.length).toBe(1000 * SnapshotBuffers.HEADROOM);
    const firstId = buffers.lend(first.buffer as SharedArrayBuffer);
    // Lent out: the next snapshot gets a buffer of its own.
    const second = buffers.take(500);
    expect(second.buffer).not.toBe(first.buffer);
    const secondId = buffers.lend(second.buffer as SharedArrayBuffer);
    expect(buffers.made).toBe(2);

    buffers.giveBack(firstId);
    buffers.giveBack(secondId); // smaller than the spare: not kept
    buffers.giveBack(firstId); // given back already: nothing
    buffers.giveBack(99); // never lent: nothing
    expect(buffers.take(1200).buffer).toBe(first.buffer);
    expect(buffers.made).toBe(2);
    // Taken: not spare any more, so the next is new, and one too small for what is asked is not used.
    expect(buffers.take(10).buffer).not.toBe(first.buffer);
    buffers.giveBack(buffers.lend(first.buffer as SharedArrayBuffer));
    const larger = buffers.take(5000);
    expect(larger.buffer).not.toBe(first.buffer);
    expect(larger.length).toBe(5000 * SnapshotBuffers.HEADROOM);
    expect(buffers.made).toBe(4);
  });

  it('gives an encoder its bytes in a shared buffer, moving to a larger one when the text needs it', () => {
    const buffers = new SnapshotBuffers();
    const pieces = Array.from({ length: 300 }, (_, i) => (i % 2 === 0 ? `"😀€-${i}"` : ','));
    const chars = pieces.reduce((sum, piece) => sum + piece.length, 0);
    const encoder = new SnapshotEncoder(
      { kind: 'full', pieces, chars, pageViews: 1, rulesVersion: 1, rulesFingerprint: 'f', takeMs: 0 },
      buffers.take,
    );
    while (!encoder.step()) continue;
    const { bytes } = encoder.finish();
    expect(bytes.buffer).toBeInstanceOf(SharedArrayBuffer);
    expect(Buffer.from(bytes).toString('utf8')).toBe(pieces.join(''));
    // Four bytes for every two units of the emoji: past the headroom of a byte per unit.
    expect(buffers.made).toBe(2);
  });
});
