import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { arbPageEvent, clientEvent, impression, MAX_LONG, pageEvent } from '../test/fixtures.js';
import { decodePageEvent, encodePageEvent, encodeRejectedFrame } from './codec.js';
import { PageEventReader } from './page-event-reader.js';
import { decodeSingleObject, SINGLE_OBJECT_HEADER_BYTES } from './schemas.js';
import type { PageEvent } from './types.js';

/** Longs of 53 bits and more are left to the general decoder. */
const TWO_52 = 2 ** 52;

function longs(e: PageEvent): number[] {
  return [
    e.recv_ms,
    e.event.seq,
    e.event.t_mono_ms,
    e.event.t_wall_ms,
    ...e.event.impressions.flatMap((i) => [i.visible_px, i.total_px]),
  ];
}

describe('PageEventReader', () => {
  it('is written for the current PageEvent schema', () => {
    // Fails when schemas/PageEvent gets a new version: extend the reader, or every record takes
    // the general decoder.
    expect(new PageEventReader().enabled).toBe(true);
  });

  it('reads what decodePageEvent reads', () => {
    const reader = new PageEventReader();
    fc.assert(
      fc.property(arbPageEvent, (event) => {
        const bytes = encodePageEvent(event);
        const read = reader.read(bytes);
        if (read === undefined) {
          expect(longs(event).some((n) => Math.abs(n) >= TWO_52)).toBe(true);
        } else {
          expect(read).toEqual(decodePageEvent(bytes));
        }
      }),
      { numRuns: 500 },
    );
  });

  it('reads negative, zero and large longs, ints at their limits, and every union branch', () => {
    const reader = new PageEventReader();
    for (const event of [
      pageEvent(clientEvent({ t_mono_ms: -1, t_wall_ms: -(2 ** 40), seq: 2 ** 52 - 1 })),
      pageEvent(clientEvent({ t_mono_ms: 0, impressions: [] })),
      pageEvent(
        clientEvent({
          impressions: [impression({ width: 2147483647, height: 0, visible_px: 2 ** 31, reasons: [] })],
        }),
      ),
      { ...pageEvent(), user_agent: null, transport: 'beacon' as const },
      { ...pageEvent(), site_id: 'sité-ü', user_id: '用户-1', user_agent: '' },
    ]) {
      const bytes = encodePageEvent(event);
      expect(reader.read(bytes)).toEqual(decodePageEvent(bytes));
      expect(reader.read(bytes)).toEqual(event);
    }
  });

  it('leaves longs of 53 bits and more to the general decoder', () => {
    const event = pageEvent(clientEvent({ t_wall_ms: MAX_LONG }));
    expect(new PageEventReader().read(encodePageEvent(event))).toBeUndefined();
    expect(decodePageEvent(encodePageEvent(event))).toEqual(event);
  });

  it('reads nothing that is not a current PageEvent', () => {
    const reader = new PageEventReader();
    const bytes = encodePageEvent(pageEvent());
    const otherFingerprint = Buffer.from(bytes);
    otherFingerprint[SINGLE_OBJECT_HEADER_BYTES - 1] =
      (otherFingerprint[SINGLE_OBJECT_HEADER_BYTES - 1] ?? 0) ^ 0xff;
    for (const other of [
      Buffer.alloc(0),
      bytes.subarray(0, SINGLE_OBJECT_HEADER_BYTES),
      Buffer.concat([Buffer.from([0xc3, 0x02]), bytes.subarray(2)]),
      otherFingerprint,
      encodeRejectedFrame({
        recv_ms: 1,
        gateway_id: 'gw',
        reason: 'late',
        detail: '',
        raw: bytes,
        raw_truncated: false,
        transport: 'log',
        remote_addr: null,
        origin: null,
        site_id: null,
        user_id: null,
        page_view_id: null,
        seq: null,
      }),
    ]) {
      expect(reader.read(other)).toBeUndefined();
    }
  });

  it('agrees with the general decoder on every single-byte change and every cut of a small record', () => {
    const reader = new PageEventReader();
    const event = pageEvent(
      clientEvent({
        impressions: [
          impression({ reasons: ['clipped', 'hidden'] }),
          impression({ impression_id: 'imp-2', reasons: [] }),
        ],
      }),
    );
    const original = encodePageEvent(event);
    for (let at = SINGLE_OBJECT_HEADER_BYTES; at < original.length; at++) {
      const cut = original.subarray(0, at);
      expect(reader.read(cut)).toBeUndefined();
      for (let byte = 0; byte < 256; byte++) {
        const bytes = Buffer.from(original);
        bytes[at] = byte;
        const general = decodeSingleObject('PageEvent', bytes);
        const read = reader.read(bytes);
        if (!general.ok) expect(read, `byte ${at} = ${byte}`).toBeUndefined();
        else if (read !== undefined) expect(read, `byte ${at} = ${byte}`).toEqual(general.value);
      }
    }
  });

  it('never reads damaged bytes differently from the general decoder', () => {
    const reader = new PageEventReader();
    const arbDamage = fc.oneof(
      fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
      fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), byte: fc.integer({ min: 0, max: 255 }) }),
      fc.record({
        kind: fc.constant('append' as const),
        at: fc.nat(),
        byte: fc.integer({ min: 0, max: 255 }),
      }),
    );
    fc.assert(
      fc.property(arbPageEvent, fc.array(arbDamage, { minLength: 1, maxLength: 4 }), (event, damages) => {
        let bytes = Buffer.from(encodePageEvent(event));
        for (const damage of damages) {
          // The header is the fingerprint's business; damage the body.
          const at =
            SINGLE_OBJECT_HEADER_BYTES + (damage.at % Math.max(1, bytes.length - SINGLE_OBJECT_HEADER_BYTES));
          if (damage.kind === 'truncate') bytes = bytes.subarray(0, at);
          else if (damage.kind === 'append') bytes = Buffer.concat([bytes, Buffer.from([damage.byte])]);
          else if (at < bytes.length) bytes[at] = damage.byte;
        }
        const general = decodeSingleObject('PageEvent', bytes);
        const read = reader.read(bytes);
        if (!general.ok) expect(read).toBeUndefined();
        else if (read !== undefined) expect(read).toEqual(general.value);
      }),
      { numRuns: 1000 },
    );
  });
});
