import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  arbClientEvent,
  arbPageEvent,
  clientEvent,
  impression,
  pageEvent,
  rejectedFrame,
} from '../test/fixtures.js';
import {
  decodePageEvent,
  decodeRejectedFrame,
  encodeClientBatch,
  encodeJsonFrame,
  encodePageEvent,
  encodeRejectedFrame,
  encodeStampedEvents,
  stampEvent,
} from './codec.js';
import { REJECTION_REASON_CODES } from './rejection.js';
import { currentSchema, SINGLE_OBJECT_HEADER_BYTES, SingleObjectDecodeError } from './schemas.js';
import { decodeBinaryFrame, frameLimits, parseJsonFrame } from './validation.js';

/** Room for the largest generated frames: 100 events of 64 impressions of 128-character ids. */
type ClientEventOf = ReturnType<typeof clientEvent>;

const ROOMY = frameLimits({ maxFrameBytes: 64 << 20 });

describe('PageEvent', () => {
  it('round-trips through single-object encoding', () => {
    const event = pageEvent();
    const bytes = encodePageEvent(event);
    expect([...bytes.subarray(0, 2)]).toEqual([0xc3, 0x01]);
    expect(bytes.readBigUInt64LE(2)).toBe(currentSchema('PageEvent').fingerprint);
    expect(decodePageEvent(bytes)).toEqual(event);
  });

  it('encodes a frame of events stamped alike exactly as it encodes each one alone', () => {
    fc.assert(
      fc.property(
        arbPageEvent,
        fc.array(arbClientEvent, { maxLength: 12 }),
        ({ event: _unused, ...stamp }, events) => {
          const together = encodeStampedEvents(stamp, events);
          expect(together).toHaveLength(events.length);
          together.forEach((bytes, i) =>
            expect(bytes.equals(encodePageEvent(stampEvent(events[i] as ClientEventOf, stamp)))).toBe(true),
          );
        },
      ),
      { numRuns: 300 },
    );
    // An event larger than the reused buffer, and the events after it.
    const big = clientEvent({
      impressions: Array.from({ length: 400 }, (_, i) =>
        impression({ impression_id: `imp-${i}-${'x'.repeat(60)}` }),
      ),
    });
    expect(encodePageEvent(stampEvent(big, pageEvent())).length).toBeGreaterThan(16 * 1024);
    const stamp = {
      recv_ms: 1,
      gateway_id: 'g',
      site_id: 's',
      user_id: 'u',
      user_agent: null,
      transport: 'ws_json' as const,
    };
    const [first, second] = encodeStampedEvents(stamp, [big, clientEvent()]);
    expect(first?.equals(encodePageEvent(stampEvent(big, stamp)))).toBe(true);
    expect(second?.equals(encodePageEvent(stampEvent(clientEvent(), stamp)))).toBe(true);
  });

  it('does not write properties the schema does not name', () => {
    const sneaky = { ...clientEvent(), user_id: 'attacker' } as unknown as ReturnType<typeof clientEvent>;
    const decoded = decodePageEvent(encodePageEvent(pageEvent(sneaky)));
    expect(decoded.event).toEqual(clientEvent());
    expect('user_id' in decoded.event).toBe(false);
  });

  it('takes user and site from the stamp, never from the event', () => {
    const stamped = stampEvent(clientEvent(), {
      recv_ms: 5,
      gateway_id: 'gw-2',
      site_id: 'site-9',
      user_id: 'user-9',
      user_agent: null,
      transport: 'beacon',
    });
    expect(stamped).toEqual({
      recv_ms: 5,
      gateway_id: 'gw-2',
      site_id: 'site-9',
      user_id: 'user-9',
      user_agent: null,
      transport: 'beacon',
      event: clientEvent(),
    });
  });

  it('throws a typed error for bytes it cannot read', () => {
    const bytes = encodePageEvent(pageEvent());
    const cases: [Uint8Array, string][] = [
      [Buffer.from('{}'), 'bad_marker'],
      [bytes.subarray(0, bytes.length - 1), 'truncated'],
      [encodeRejectedFrame(rejectedFrame()), 'wrong_record'],
    ];
    for (const [input, code] of cases) {
      let thrown: unknown;
      try {
        decodePageEvent(input);
      } catch (error) {
        thrown = error;
      }
      expect(thrown).toBeInstanceOf(SingleObjectDecodeError);
      expect((thrown as SingleObjectDecodeError).code).toBe(code);
      expect((thrown as SingleObjectDecodeError).record).toBe('PageEvent');
    }
  });

  it('throws, as a bug, when asked to encode a value that does not fit the schema', () => {
    const broken = { ...pageEvent(), recv_ms: 'now' } as unknown as ReturnType<typeof pageEvent>;
    expect(() => encodePageEvent(broken)).toThrow();
  });
});

describe('RejectedFrame', () => {
  it.each(REJECTION_REASON_CODES)('carries reason %s to the log and back', (reason) => {
    const frame = rejectedFrame({ reason, detail: `because ${reason}` });
    expect(decodeRejectedFrame(encodeRejectedFrame(frame))).toEqual(frame);
  });

  it('takes raw bytes as a plain Uint8Array view, and a raw larger than the 64 KiB scratch buffer', () => {
    const backing = new Uint8Array(300_000).map((_, i) => i % 251);
    const raw = backing.subarray(7, 200_007);
    const decoded = decodeRejectedFrame(encodeRejectedFrame(rejectedFrame({ raw, raw_truncated: true })));
    expect(Buffer.from(decoded.raw).equals(Buffer.from(raw))).toBe(true);
    expect(decoded.raw_truncated).toBe(true);
    // The scratch buffer shrinks back; later small values still encode correctly.
    expect(decodeRejectedFrame(encodeRejectedFrame(rejectedFrame()))).toEqual(rejectedFrame());
  });

  it('keeps every nullable field nullable', () => {
    const frame = rejectedFrame({
      remote_addr: null,
      origin: null,
      site_id: null,
      user_id: null,
      page_view_id: 'p',
      seq: 9,
    });
    expect(decodeRejectedFrame(encodeRejectedFrame(frame))).toEqual(frame);
  });
});

describe('properties', () => {
  it('any valid event survives JSON frame → validate → Avro ledger record → decode unchanged', () => {
    fc.assert(
      fc.property(fc.array(arbClientEvent, { maxLength: 5 }), (events) => {
        const outcome = parseJsonFrame(encodeJsonFrame(events), ROOMY);
        expect(outcome).toEqual({ ok: true, events, rejected: [] });
        if (!outcome.ok) return;
        for (const [i, event] of outcome.events.entries()) {
          const stamped = stampEvent(event, pageEvent());
          expect(decodePageEvent(encodePageEvent(stamped))).toEqual({ ...stamped, event: events[i] });
        }
      }),
      { numRuns: 200 },
    );
  });

  it('any valid event survives a binary ClientBatch frame unchanged', () => {
    fc.assert(
      fc.property(fc.array(arbClientEvent, { maxLength: 5 }), (events) => {
        expect(decodeBinaryFrame(encodeClientBatch(events), ROOMY)).toEqual({
          ok: true,
          events,
          rejected: [],
        });
      }),
      { numRuns: 200 },
    );
  });

  it('any PageEvent survives encode/decode unchanged', () => {
    fc.assert(
      fc.property(arbPageEvent, (event) => {
        expect(decodePageEvent(encodePageEvent(event))).toEqual(event);
      }),
      { numRuns: 300 },
    );
  });

  it('random bytes never throw out of decodeBinaryFrame: they get a typed rejection', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 512 }), (bytes) => {
        const outcome = decodeBinaryFrame(bytes);
        expect(outcome).toMatchObject({ ok: false });
        expect(['malformed_avro', 'unknown_schema']).toContain(outcome.ok ? 'ok' : outcome.reason);
      }),
      { numRuns: 2000 },
    );
  });

  it('random bodies behind a valid ClientBatch header never throw, and anything accepted is valid', () => {
    const header = encodeClientBatch([]).subarray(0, SINGLE_OBJECT_HEADER_BYTES);
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 512 }), (body) => {
        const outcome = decodeBinaryFrame(Buffer.concat([header, body]));
        if (outcome.ok) {
          for (const event of outcome.events) expect(parseJsonFrame(encodeJsonFrame([event])).ok).toBe(true);
        } else {
          expect(['malformed_avro', 'too_many_events']).toContain(outcome.reason);
        }
      }),
      { numRuns: 3000 },
    );
  });

  it('corrupted valid frames (bytes overwritten, cut, extended) never throw out of decodeBinaryFrame', () => {
    fc.assert(
      fc.property(
        fc.array(arbClientEvent, { minLength: 1, maxLength: 3 }),
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 8 }),
        fc.nat(),
        (events, edits, cut) => {
          const frame = Buffer.from(encodeClientBatch(events));
          for (const [at, byte] of edits)
            frame[SINGLE_OBJECT_HEADER_BYTES + (at % (frame.length - 10))] = byte;
          for (const candidate of [
            frame,
            frame.subarray(0, cut % frame.length),
            Buffer.concat([frame, frame]),
          ]) {
            const outcome = decodeBinaryFrame(candidate, ROOMY);
            if (outcome.ok) {
              expect(outcome.events.length + outcome.rejected.length).toBeLessThanOrEqual(
                ROOMY.maxEventsPerFrame,
              );
            } else {
              expect(['malformed_avro', 'too_many_events', 'unknown_schema']).toContain(outcome.reason);
            }
          }
        },
      ),
      { numRuns: 500 },
    );
  });

  it('any string and any JSON value never throw out of parseJsonFrame', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string({ unit: 'binary' }),
          fc.json(),
          fc.json().map((j) => `{"events":[${j}]}`),
        ),
        (text) => {
          const outcome = parseJsonFrame(text);
          expect(typeof outcome.ok).toBe('boolean');
        },
      ),
      { numRuns: 2000 },
    );
  });

  it('JSON objects shaped almost like events are accepted or rejected with a reason, never thrown', () => {
    const almost = fc.record(
      {
        page_view_id: fc.oneof(fc.string(), fc.integer(), fc.constant(null)),
        seq: fc.oneof(fc.integer(), fc.double(), fc.string()),
        kind: fc.oneof(fc.constantFrom('start', 'tick', 'nope'), fc.integer()),
        t_mono_ms: fc.oneof(fc.integer(), fc.double()),
        t_wall_ms: fc.integer(),
        page: fc.oneof(
          fc.record({ visible: fc.boolean(), focused: fc.boolean(), foreground: fc.anything() }),
          fc.anything(),
        ),
        impressions: fc.oneof(fc.array(fc.anything(), { maxLength: 3 }), fc.anything()),
      },
      { requiredKeys: [] },
    );
    fc.assert(
      fc.property(fc.array(almost, { maxLength: 5 }), (events) => {
        const outcome = parseJsonFrame(JSON.stringify({ events }));
        expect(outcome.ok).toBe(true);
        if (outcome.ok) expect(outcome.events.length + outcome.rejected.length).toBe(events.length);
      }),
      { numRuns: 1000 },
    );
  });
});
