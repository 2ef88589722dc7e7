import { afterAll, describe, expect, it } from 'vitest';
import { clientEvent, impression, MAX_LONG } from '../test/fixtures.js';
import { encodeClientBatch, encodeJsonFrame, encodePageEvent, stampEvent } from './codec.js';
import { REJECTION_REASON_CODES, RejectionReason, type RejectionReasonCode } from './rejection.js';
import { currentSchema, encodeSingleObject, SINGLE_OBJECT_HEADER_BYTES } from './schemas.js';
import {
  decodeBinaryFrame,
  DEFAULT_FRAME_LIMITS,
  frameLimits,
  FrameLimitsError,
  parseJsonFrame,
  validateClientEvent,
  type FrameOutcome,
} from './validation.js';

/** Reasons the protocol package produces; the rest belong to the gateway and the processor. */
const PRODUCED_HERE = REJECTION_REASON_CODES.filter(
  (code) => !(['connection', 'log', 'command', 'reply'] as const).some((scope) => RejectionReason[code].scope === scope),
).filter((code) => code !== 'rate_limited');
const covered = new Set<RejectionReasonCode>();

afterAll(() => {
  // Every reason this package can give has at least one case below.
  expect([...PRODUCED_HERE].filter((code) => !covered.has(code))).toEqual([]);
});

type Json = Record<string, unknown>;
const base = (): Json => structuredClone(clientEvent()) as unknown as Json;
const withEvent = (patch: (e: Json) => void): Json => {
  const e = base();
  patch(e);
  return e;
};
const withImpression = (patch: (i: Json) => void): Json =>
  withEvent((e) => {
    const i = structuredClone(impression()) as unknown as Json;
    patch(i);
    e['impressions'] = [i];
  });

/** One invalid event per row: the reason it must get and a piece of the detail. */
const EVENT_CASES: readonly [string, unknown, RejectionReasonCode, string][] = [
  ['event is null', null, 'not_an_object', 'event is null'],
  ['event is an array', [1, 2], 'not_an_object', 'an array'],
  ['event is a string', 'tick', 'not_an_object', 'the string "tick"'],
  [
    'page_view_id missing',
    withEvent((e) => delete e['page_view_id']),
    'missing_field',
    'page_view_id: missing',
  ],
  ['seq missing', withEvent((e) => delete e['seq']), 'missing_field', 'seq: missing'],
  ['page missing', withEvent((e) => delete e['page']), 'missing_field', 'page: missing'],
  ['impressions missing', withEvent((e) => delete e['impressions']), 'missing_field', 'impressions: missing'],
  [
    'page.focused missing',
    withEvent((e) => (e['page'] = { visible: true, foreground: true })),
    'missing_field',
    'page.focused: missing',
  ],
  [
    'impression reasons missing',
    withImpression((i) => delete i['reasons']),
    'missing_field',
    'impressions[0].reasons: missing',
  ],
  [
    'impression media missing',
    withImpression((i) => delete i['media']),
    'missing_field',
    'impressions[0].media: missing',
  ],
  [
    'seq is a string',
    withEvent((e) => (e['seq'] = '7')),
    'wrong_type',
    'seq: expected an integer, got the string "7"',
  ],
  ['seq is a fraction', withEvent((e) => (e['seq'] = 1.5)), 'wrong_type', 'got 1.5'],
  ['seq beyond the Avro-safe range', withEvent((e) => (e['seq'] = MAX_LONG + 1)), 'wrong_type', 'seq'],
  [
    't_mono_ms is negative',
    withEvent((e) => (e['t_mono_ms'] = -1)),
    'wrong_type',
    't_mono_ms: expected a non-negative integer',
  ],
  ['t_wall_ms is null', withEvent((e) => (e['t_wall_ms'] = null)), 'wrong_type', 'got null'],
  [
    'page_view_id is a number',
    withEvent((e) => (e['page_view_id'] = 42)),
    'wrong_type',
    'page_view_id: expected a string',
  ],
  ['kind is a number', withEvent((e) => (e['kind'] = 3)), 'wrong_type', 'kind'],
  [
    'page.visible is "true"',
    withEvent((e) => (e['page'] = { visible: 'true', focused: true, foreground: true })),
    'wrong_type',
    'page.visible: expected a boolean',
  ],
  ['page is a string', withEvent((e) => (e['page'] = 'visible')), 'not_an_object', 'page is'],
  [
    'impressions is an object',
    withEvent((e) => (e['impressions'] = {})),
    'wrong_type',
    'impressions: expected an array',
  ],
  [
    'an impression is null',
    withEvent((e) => (e['impressions'] = [null])),
    'not_an_object',
    'impressions[0] is null',
  ],
  [
    'width is a string',
    withImpression((i) => (i['width'] = '300')),
    'wrong_type',
    'impressions[0].width: expected an integer',
  ],
  [
    'visible_px negative',
    withImpression((i) => (i['visible_px'] = -5)),
    'wrong_type',
    'impressions[0].visible_px',
  ],
  [
    'playing is 0',
    withImpression((i) => (i['playing'] = 0)),
    'wrong_type',
    'impressions[0].playing: expected a boolean, got 0',
  ],
  [
    'reasons is a string',
    withImpression((i) => (i['reasons'] = 'hidden')),
    'wrong_type',
    'impressions[0].reasons: expected an array',
  ],
  [
    'a reason is a number',
    withImpression((i) => (i['reasons'] = [1])),
    'wrong_type',
    'impressions[0].reasons[0]',
  ],
  ['seq is 0', withEvent((e) => (e['seq'] = 0)), 'invalid_value', 'seq: 0, must be >= 1'],
  ['seq is negative', withEvent((e) => (e['seq'] = -3)), 'invalid_value', 'seq: -3'],
  ['page_view_id empty', withEvent((e) => (e['page_view_id'] = '')), 'invalid_value', 'page_view_id: empty'],
  ['ad_id empty', withImpression((i) => (i['ad_id'] = '')), 'invalid_value', 'impressions[0].ad_id: empty'],
  [
    'campaign_id has a lone surrogate',
    withImpression((i) => (i['campaign_id'] = 'c\ud800')),
    'invalid_value',
    'lone surrogate',
  ],
  [
    'kind not a symbol',
    withEvent((e) => (e['kind'] = 'scroll')),
    'invalid_value',
    'kind: "scroll" is not one of start, render',
  ],
  [
    'media not a symbol',
    withImpression((i) => (i['media'] = 'audio')),
    'invalid_value',
    'impressions[0].media',
  ],
  [
    'unknown reason',
    withImpression((i) => (i['reasons'] = ['hidden', 'asleep'])),
    'invalid_value',
    'reasons[1]: unknown reason "asleep"',
  ],
  [
    'repeated reason',
    withImpression((i) => (i['reasons'] = ['hidden', 'hidden'])),
    'invalid_value',
    'reasons[1]: repeated reason',
  ],
  ['width 0', withImpression((i) => (i['width'] = 0)), 'invalid_value', 'impressions[0].width: 0'],
  ['height negative', withImpression((i) => (i['height'] = -250)), 'invalid_value', 'impressions[0].height'],
  [
    'height beyond an Avro int',
    withImpression((i) => (i['height'] = 2 ** 31)),
    'invalid_value',
    'impressions[0].height',
  ],
  [
    'visible_px > total_px',
    withImpression((i) => ((i['visible_px'] = 400), (i['total_px'] = 300))),
    'invalid_value',
    'visible_px: 400 > total_px 300',
  ],
  [
    'duplicate impression_id',
    withEvent((e) => (e['impressions'] = [impression(), impression({ ad_id: 'other' })])),
    'invalid_value',
    'impressions[1].impression_id: duplicate "imp-1"',
  ],
  [
    'page_view_id of 129 characters',
    withEvent((e) => (e['page_view_id'] = 'p'.repeat(129))),
    'too_long',
    'page_view_id: 129 characters, limit 128',
  ],
  [
    'impression_id of 129 characters',
    withImpression((i) => (i['impression_id'] = 'i'.repeat(129))),
    'too_long',
    'impressions[0].impression_id',
  ],
  [
    '65 impressions',
    withEvent(
      (e) =>
        (e['impressions'] = Array.from({ length: 65 }, (_, n) => impression({ impression_id: `i${n}` }))),
    ),
    'too_many_impressions',
    '65 impressions, limit 64',
  ],
];

describe('one invalid event among valid ones', () => {
  it.each(EVENT_CASES)('%s', (_name, bad, reason, detail) => {
    covered.add(reason);
    const good1 = clientEvent({ seq: 1 });
    const good2 = clientEvent({ seq: 3 });
    const outcome = parseJsonFrame(JSON.stringify({ events: [good1, bad, good2] }));
    expect(outcome.ok).toBe(true);
    if (!outcome.ok) return;
    // The valid events in the same frame still go through.
    expect(outcome.events).toEqual([good1, good2]);
    expect(outcome.rejected).toHaveLength(1);
    const [rejection] = outcome.rejected;
    expect(rejection?.index).toBe(1);
    expect(rejection?.reason).toBe(reason);
    expect(rejection?.detail).toContain(detail);
    expect(JSON.parse(Buffer.from(rejection?.raw ?? []).toString('utf8'))).toEqual(
      JSON.parse(JSON.stringify(bad)),
    );
    // validateClientEvent gives the same verdict on the value itself (NaN/Infinity cannot travel in JSON).
    expect(validateClientEvent(bad)).toEqual({ ok: false, reason, detail: rejection?.detail });
  });

  it('NaN and Infinity are wrong types (in JSON, 1e400 parses to Infinity)', () => {
    const text = encodeJsonFrame([clientEvent()]).replace('"t_mono_ms":1234', '"t_mono_ms":1e400');
    const outcome = parseJsonFrame(text);
    expect(outcome.ok && outcome.rejected[0]?.detail).toBe(
      't_mono_ms: expected a non-negative integer, got Infinity',
    );
    expect(validateClientEvent({ ...clientEvent(), t_wall_ms: NaN })).toEqual({
      ok: false,
      reason: 'wrong_type',
      detail: 't_wall_ms: expected a non-negative integer, got NaN',
    });
  });
});

describe('a whole frame refused', () => {
  const frameCases: readonly [string, string | Uint8Array, RejectionReasonCode, string][] = [
    ['not JSON', '{"events":[', 'malformed_json', 'JSON'],
    ['not UTF-8', new Uint8Array([0x7b, 0xff, 0x7d]), 'malformed_json', 'not valid UTF-8'],
    ['an array', '[]', 'not_an_object', 'frame is an array'],
    ['null', 'null', 'not_an_object', 'frame is null'],
    ['no events', '{"event":[]}', 'missing_field', 'no "events"'],
    ['events is an object', '{"events":{}}', 'wrong_type', '"events" is an object'],
    [
      '101 events',
      encodeJsonFrame(Array.from({ length: 101 }, (_, i) => clientEvent({ seq: i + 1 }))),
      'too_many_events',
      '101 events, limit 100',
    ],
    ['65537 bytes of text', `{"events":[],"pad":"${'x'.repeat(65537 - 22)}"}`, 'frame_too_large', '65537'],
    ['65537 bytes as UTF-8', Buffer.alloc(65537, 0x20), 'frame_too_large', '65537'],
    [
      '30000 three-byte characters',
      `{"events":[],"pad":"${'€'.repeat(30000)}"}`,
      'frame_too_large',
      'limit 65536',
    ],
  ];

  it.each(frameCases)('JSON: %s', (_name, frame, reason, detail) => {
    covered.add(reason);
    const outcome = parseJsonFrame(frame);
    expect(outcome).toMatchObject({ ok: false, reason });
    expect(outcome.ok === false && outcome.detail).toContain(detail);
  });

  const batch = encodeClientBatch([clientEvent()]);
  const binaryCases: readonly [string, Uint8Array, RejectionReasonCode, string][] = [
    ['empty', new Uint8Array(0), 'malformed_avro', 'truncated'],
    ['JSON sent as binary', Buffer.from('{"events":[]}'), 'malformed_avro', 'bad_marker'],
    ['header cut off', batch.subarray(0, 6), 'malformed_avro', 'truncated'],
    ['body cut off', batch.subarray(0, batch.length - 3), 'malformed_avro', 'truncated'],
    ['trailing bytes', Buffer.concat([batch, Buffer.from([0])]), 'malformed_avro', 'trailing bytes'],
    [
      'a fingerprint nobody knows',
      Buffer.concat([
        Buffer.from([0xc3, 0x01, 1, 2, 3, 4, 5, 6, 7, 8]),
        batch.subarray(SINGLE_OBJECT_HEADER_BYTES),
      ]),
      'unknown_schema',
      'unknown_fingerprint',
    ],
    [
      'a PageEvent instead of a ClientBatch',
      encodePageEvent(stampEvent(clientEvent(), stamp())),
      'unknown_schema',
      'wrong_record',
    ],
    [
      '101 events',
      encodeClientBatch(Array.from({ length: 101 }, (_, i) => clientEvent({ seq: i + 1 }))),
      'too_many_events',
      '101',
    ],
    ['65537 bytes', Buffer.concat([batch, Buffer.alloc(65537 - batch.length)]), 'frame_too_large', '65537'],
  ];

  it.each(binaryCases)('binary: %s', (_name, frame, reason, detail) => {
    covered.add(reason);
    const outcome = decodeBinaryFrame(frame);
    expect(outcome).toMatchObject({ ok: false, reason });
    expect(outcome.ok === false && outcome.detail).toContain(detail);
  });

  it('binary: an array count of 2^40 in a 20-byte frame is refused at once, not looped over', () => {
    // ClientBatch body: events block count (zig-zag varint of 2^40), then nothing.
    const header = currentSchema('ClientBatch');
    const frame = Buffer.alloc(SINGLE_OBJECT_HEADER_BYTES + 6);
    frame[0] = 0xc3;
    frame[1] = 0x01;
    frame.writeBigUInt64LE(header.fingerprint, 2);
    Buffer.from([0x80, 0x80, 0x80, 0x80, 0x80, 0x40]).copy(frame, SINGLE_OBJECT_HEADER_BYTES);
    const started = performance.now();
    const outcome = decodeBinaryFrame(frame);
    expect(performance.now() - started).toBeLessThan(50);
    expect(outcome).toMatchObject({ ok: false, reason: 'malformed_avro' });
    expect(outcome.ok === false && outcome.detail).toContain('cannot fit');
  });
});

describe('accepted events', () => {
  it('JSON → validate → Avro (ledger) → decode gives back the same event', async () => {
    const { decodePageEvent } = await import('./codec.js');
    const events = [clientEvent({ seq: 1 }), clientEvent({ seq: 2, kind: 'tick', impressions: [] })];
    const outcome = parseJsonFrame(encodeJsonFrame(events));
    expect(outcome).toEqual({ ok: true, events, rejected: [] });
    if (!outcome.ok) return;
    for (const [i, event] of outcome.events.entries()) {
      const decoded = decodePageEvent(encodePageEvent(stampEvent(event, stamp())));
      expect(decoded.event).toEqual(events[i]);
    }
  });

  it('binary frame → validate gives the same events as JSON', () => {
    const events = [clientEvent({ seq: 1 }), clientEvent({ seq: 2 })];
    expect(decodeBinaryFrame(encodeClientBatch(events))).toEqual(parseJsonFrame(encodeJsonFrame(events)));
  });

  it('an empty events array is a valid frame with nothing in it', () => {
    expect(parseJsonFrame('{"events":[]}')).toEqual({ ok: true, events: [], rejected: [] });
  });

  it('ignores unknown fields and never copies them: user_id/site_id in a body cannot reach the log', () => {
    const body = {
      ...clientEvent(),
      user_id: 'attacker',
      site_id: 'other-site',
      page: { visible: true, focused: true, foreground: true, user_id: 'x' },
      impressions: [{ ...impression(), cost: 5 }],
    };
    const outcome = parseJsonFrame(JSON.stringify({ v: 2, events: [body] }));
    expect(outcome.ok).toBe(true);
    if (!outcome.ok) return;
    const [event] = outcome.events;
    expect(event).toEqual(clientEvent());
    expect(Object.keys(event ?? {})).toEqual(Object.keys(clientEvent()));
    expect(Object.keys(event?.page ?? {})).toEqual(['visible', 'focused', 'foreground']);
    expect(JSON.stringify(event)).not.toMatch(/attacker|other-site|user_id|cost/);
  });

  it('accepts the boundaries: 128-character ids, 64 impressions, 100 events, total_px 0, seq at the long limit', () => {
    const many = Array.from({ length: 64 }, (_, n) =>
      impression({ impression_id: `i${n}`, visible_px: 0, total_px: 0 }),
    );
    const events = Array.from({ length: 100 }, (_, i) =>
      clientEvent({
        page_view_id: 'p'.repeat(128),
        seq: i === 0 ? MAX_LONG : i,
        impressions: i === 0 ? many : [],
      }),
    );
    const outcome = parseJsonFrame(encodeJsonFrame(events), {
      ...DEFAULT_FRAME_LIMITS,
      maxFrameBytes: 1 << 20,
    });
    expect(outcome).toMatchObject({ ok: true, rejected: [] });
    expect(outcome.ok && outcome.events).toEqual(events);
  });

  it('normalizes -0 to 0', () => {
    const outcome = parseJsonFrame(
      encodeJsonFrame([clientEvent()]).replace('"t_mono_ms":1234', '"t_mono_ms":-0'),
    );
    expect(outcome.ok && Object.is(outcome.events[0]?.t_mono_ms, 0)).toBe(true);
  });

  it('survives an event nested 100,000 levels deep, keeping the whole frame as its raw bytes', () => {
    const deep = `{"events":[${'['.repeat(100000)}${']'.repeat(100000)}]}`;
    const outcome = parseJsonFrame(deep, frameLimits({ maxFrameBytes: 300000 }));
    expect(outcome).toMatchObject({
      ok: true,
      events: [],
      rejected: [{ index: 0, reason: 'not_an_object' }],
    });
    expect(outcome.ok && Buffer.from(outcome.rejected[0]?.raw ?? []).toString()).toBe(deep);
  });
});

describe('frame limits', () => {
  it('has the documented defaults', () => {
    expect(DEFAULT_FRAME_LIMITS).toEqual({
      maxEventsPerFrame: 100,
      maxImpressionsPerEvent: 64,
      maxIdLength: 128,
      maxFrameBytes: 65536,
    });
    expect(frameLimits()).toEqual(DEFAULT_FRAME_LIMITS);
  });

  it('applies overrides', () => {
    const limits = frameLimits({ maxEventsPerFrame: 2, maxIdLength: 4, maxImpressionsPerEvent: 1 });
    const outcome: FrameOutcome = parseJsonFrame(
      encodeJsonFrame([clientEvent({ page_view_id: 'abcd', impressions: [] })]),
      limits,
    );
    expect(outcome).toMatchObject({ ok: true, rejected: [] });
    expect(
      parseJsonFrame(encodeJsonFrame([clientEvent(), clientEvent(), clientEvent()]), limits),
    ).toMatchObject({
      ok: false,
      reason: 'too_many_events',
    });
    expect(parseJsonFrame(encodeJsonFrame([clientEvent({ page_view_id: 'abcde' })]), limits)).toMatchObject({
      ok: true,
      rejected: [{ reason: 'too_long' }],
    });
  });

  it.each([
    [{ maxEventsPerFrame: 0 }, 'maxEventsPerFrame must be a positive integer, got 0'],
    [{ maxFrameBytes: 1.5 }, 'maxFrameBytes must be a positive integer, got 1.5'],
    [{ maxIdLength: '128' as unknown as number }, 'maxIdLength must be a positive integer, got "128"'],
    [{ maxBogus: 1 } as Partial<typeof DEFAULT_FRAME_LIMITS>, 'unknown frame limit maxBogus'],
  ])('refuses %j, naming the key and the value', (overrides, message) => {
    expect(() => frameLimits(overrides)).toThrow(FrameLimitsError);
    expect(() => frameLimits(overrides)).toThrow(message);
  });
});

describe('single-object frames encode with the current ClientBatch schema', () => {
  it('starts with C3 01 and the fingerprint, little-endian', () => {
    const frame = encodeSingleObject('ClientBatch', { events: [] });
    expect([...frame.subarray(0, 2)]).toEqual([0xc3, 0x01]);
    expect(frame.readBigUInt64LE(2)).toBe(currentSchema('ClientBatch').fingerprint);
  });
});

function stamp() {
  return {
    recv_ms: 1_732_860_000_500,
    gateway_id: 'gw-1',
    site_id: 'site-1',
    user_id: 'user-1',
    user_agent: null,
    transport: 'ws_avro' as const,
  };
}
