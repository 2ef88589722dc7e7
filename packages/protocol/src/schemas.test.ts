import { execFileSync, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import avsc from 'avsc';
import { describe, expect, it } from 'vitest';
import { clientEvent, pageEvent, rejectedFrame } from '../test/fixtures.js';
import { compileBodyCheck } from './avro-bounds.js';
import { encodeClientBatch, encodePageEvent, encodeRejectedFrame } from './codec.js';
import { parsingCanonicalForm } from './fingerprint.js';
import { RECORD_NAMES, SCHEMA_FILES, type SchemaFile } from './schemas.generated.js';
import {
  currentSchema,
  decodeSingleObject,
  DECODE_FAILURES,
  encodeSingleObject,
  fingerprintHex,
  identifySchema,
  SchemaRegistry,
  schemaVersions,
  type DecodeFailureCode,
} from './schemas.js';

const packageDir = fileURLToPath(new URL('..', import.meta.url));

describe('schemas.generated.ts', () => {
  it('is up to date with schemas/ (else run node packages/protocol/scripts/gen-schemas.mjs)', () => {
    const run = spawnSync(process.execPath, ['scripts/gen-schemas.mjs', '--check'], {
      cwd: packageDir,
      encoding: 'utf8',
    });
    expect(run.stderr).toBe('');
    expect(run.status).toBe(0);
  });
});

describe('the registry', () => {
  it('holds versions 1..n of every record, with distinct fingerprints across records', () => {
    expect(RECORD_NAMES).toEqual(['ClientBatch', 'ClientEvent', 'ClientReply', 'Command', 'CommandReply', 'PageEvent', 'Presence', 'RejectedFrame']);
    const owners = new Map<bigint, string>();
    for (const name of RECORD_NAMES) {
      const versions = schemaVersions(name);
      expect(versions.map((v) => v.version)).toEqual(versions.map((_, i) => i + 1));
      expect(currentSchema(name)).toBe(versions[versions.length - 1]);
      for (const v of versions) {
        expect(owners.get(v.fingerprint) ?? name).toBe(name);
        owners.set(v.fingerprint, name);
        expect(v.type.name).toBe(`dev.dwell.v1.${name}`);
      }
    }
  });

  it('embeds in PageEvent and ClientBatch exactly the current ClientEvent', () => {
    const clientEventForm = currentSchema('ClientEvent').canonicalForm;
    for (const name of ['PageEvent', 'ClientBatch'] as const) {
      const registry: Record<string, avsc.Type> = {};
      avsc.Type.forSchema(currentSchema(name).schema as avsc.Schema, { registry });
      const embedded = registry['dev.dwell.v1.ClientEvent'];
      expect(JSON.stringify(embedded?.schema()), name).toBe(clientEventForm);
    }
  });

  it('identifies the writer of single-object bytes', () => {
    expect(identifySchema(encodePageEvent(pageEvent()))?.name).toBe('PageEvent');
    expect(identifySchema(encodeClientBatch([]))?.name).toBe('ClientBatch');
    expect(identifySchema(Buffer.from('{"events":[]}'))).toBeUndefined();
    expect(identifySchema(Buffer.from([0xc3, 0x01, 0, 0, 0, 0, 0, 0, 0, 0]))).toBeUndefined();
  });

  it('prints fingerprints as 16 hex digits, the byte order reversed from the wire', () => {
    const fp = currentSchema('PageEvent').fingerprint;
    const wire = Buffer.from(encodePageEvent(pageEvent()).subarray(2, 10));
    expect(fingerprintHex(fp)).toMatch(/^[0-9a-f]{16}$/);
    expect(Buffer.from(wire.reverse()).toString('hex')).toBe(fingerprintHex(fp));
  });
});

describe('decodeSingleObject failures', () => {
  const page = encodePageEvent(pageEvent());
  const unknownFingerprint = Buffer.from(page);
  unknownFingerprint.writeBigUInt64LE(0x0123456789abcdefn, 2);
  const badEnum = Buffer.from(encodeClientBatch([clientEvent()]));
  const cases: Record<Exclude<DecodeFailureCode, 'unresolvable'>, Uint8Array> = {
    bad_marker: Buffer.from([0xc3, 0x02, ...page.subarray(2)]),
    truncated: page.subarray(0, 9),
    unknown_fingerprint: unknownFingerprint,
    wrong_record: encodeRejectedFrame(rejectedFrame()),
    malformed: Buffer.concat([page, Buffer.from([1, 2, 3])]),
  };

  it.each(Object.entries(cases))('%s', (code, bytes) => {
    expect(DECODE_FAILURES).toHaveProperty(code);
    const outcome = decodeSingleObject('PageEvent', bytes);
    expect(outcome).toMatchObject({ ok: false, code });
  });

  it('every strict prefix of a valid value is truncated, never thrown or misread', () => {
    for (let n = 0; n < page.length; n++) {
      const outcome = decodeSingleObject('PageEvent', page.subarray(0, n));
      expect(outcome.ok, `prefix of ${n} bytes`).toBe(false);
      expect(outcome.ok ? '' : outcome.code).toBe('truncated');
    }
  });

  it('refuses an enum index out of range before avsc sees it', () => {
    // ClientBatch body: events count (1 → 0x02), page_view_id (len 36 → 0x48, then 36 bytes), seq, kind...
    const kindAt = 10 + 1 + 1 + 36 + 1;
    expect(badEnum[kindAt]).toBe(2); // 'render' is symbol 1: zig-zag 2
    badEnum[kindAt] = 40; // symbol 20
    expect(decodeSingleObject('ClientBatch', badEnum)).toMatchObject({
      ok: false,
      code: 'malformed',
      detail: expect.stringContaining('enum index 20 out of range for dev.dwell.v1.EventKind'),
    });
  });
});

describe('the body check', () => {
  it.each([
    ['"boolean"', [2], 'boolean byte 2'],
    ['"int"', [0x80, 0x80, 0x80, 0x80, 0x20], 'int out of range'],
    [
      '"long"',
      [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
      'varint longer than 10 bytes',
    ],
    ['"long"', [0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f], 'long outside the safe integer range'],
    ['"string"', [0x01], 'negative string length'],
    ['["null","string"]', [0x04], 'union index 2 out of range'],
    ['{"type":"array","items":"long"}', [0x03, 0x7f], 'block byte size'],
    ['{"type":"map","values":"long"}', [0x10, 0x00], 'cannot fit'],
  ])('%s refuses %j: %s', (schema, bytes, detail) => {
    const check = compileBodyCheck(parsingCanonicalForm(JSON.parse(schema)));
    expect(check(Uint8Array.from(bytes), 0)?.detail).toContain(detail);
  });

  it('reads what avsc writes, for every type the spec has, including recursion and size-prefixed blocks', () => {
    const schema = {
      type: 'record',
      name: 'All',
      fields: [
        { name: 'n', type: 'null' },
        { name: 'f', type: 'float' },
        { name: 'd', type: 'double' },
        { name: 'b', type: 'bytes' },
        { name: 'x', type: { type: 'fixed', name: 'Four', size: 4 } },
        { name: 'm', type: { type: 'map', values: 'int' } },
        { name: 'next', type: ['null', 'All'] },
      ],
    };
    const type = avsc.Type.forSchema(schema as avsc.Schema);
    const value = {
      n: null,
      f: 1.5,
      d: -2.25,
      b: Buffer.from([1, 2]),
      x: Buffer.from('abcd'),
      m: { a: 1, b: -2 },
      next: { n: null, f: 0, d: 0, b: Buffer.alloc(0), x: Buffer.from('wxyz'), m: {}, next: null },
    };
    const check = compileBodyCheck(parsingCanonicalForm(schema));
    expect(check(type.toBuffer(value), 0)).toBeUndefined();
    // Arrays written in size-prefixed blocks (negative count) are legal Avro too.
    const arrays = compileBodyCheck('{"type":"array","items":"long"}');
    expect(arrays(Uint8Array.from([0x03, 0x04, 0x02, 0x04, 0x00]), 0)).toBeUndefined();
    expect(arrays(Uint8Array.from([0x03, 0x02, 0x02, 0x04, 0x00]), 0)?.detail).toContain(
      'byte size 1, items took 2',
    );
    // Recursion deeper than the bound is refused, not a stack overflow.
    const list = { type: 'record', name: 'L', fields: [{ name: 'next', type: ['null', 'L'] }] };
    const deep = new Uint8Array(10_000).fill(2);
    deep[deep.length - 1] = 0;
    expect(compileBodyCheck(parsingCanonicalForm(list))(deep, 0)?.detail).toContain('nesting deeper than');
  });
});

describe('reading other versions (a hypothetical PageEvent v2)', () => {
  const v1 = SCHEMA_FILES.find((f) => f.name === 'PageEvent' && f.version === 1) as SchemaFile;
  const withField = (field: object): SchemaFile => {
    const schema = structuredClone(v1.schema) as { fields: object[] };
    schema.fields.push(field);
    return { name: 'PageEvent', version: 2, schema };
  };
  const others = SCHEMA_FILES.filter((f) => f.name !== 'PageEvent');

  it('resolves v1 bytes to the current v2, filling the default, and tells which version wrote them', () => {
    const next = new SchemaRegistry([
      ...others,
      v1,
      withField({ name: 'rules_version', type: 'int', default: 1 }),
    ]);
    const outcome = next.decode('PageEvent', encodePageEvent(pageEvent()));
    expect(outcome).toEqual({ ok: true, value: { ...pageEvent(), rules_version: 1 }, writerVersion: 1 });
    // And writes v2, which today's registry (v1 only) does not know: readers must be deployed first.
    const v2Bytes = next.encode('PageEvent', { ...pageEvent(), rules_version: 3 } as ReturnType<
      typeof pageEvent
    >);
    expect(decodeSingleObject('PageEvent', v2Bytes)).toMatchObject({
      ok: false,
      code: 'unknown_fingerprint',
    });
    expect(next.decode('PageEvent', v2Bytes)).toMatchObject({ ok: true, writerVersion: 2 });
  });

  it('reports a writer version the current one cannot resolve as unresolvable, not a crash', () => {
    const next = new SchemaRegistry([...others, v1, withField({ name: 'rules_version', type: 'int' })]);
    expect(next.decode('PageEvent', encodePageEvent(pageEvent()))).toMatchObject({
      ok: false,
      code: 'unresolvable',
      detail: expect.stringContaining('PageEvent v1'),
    });
  });

  it('encodes with the package registry the same bytes as the codec', () => {
    expect(encodeSingleObject('PageEvent', pageEvent()).equals(encodePageEvent(pageEvent()))).toBe(true);
  });

  it('the generator runs clean from the repository root too', () => {
    expect(() =>
      execFileSync(process.execPath, ['packages/protocol/scripts/gen-schemas.mjs', '--check'], {
        cwd: fileURLToPath(new URL('../../..', import.meta.url)),
      }),
    ).not.toThrow();
  });
});
