import avsc from 'avsc';
import { describe, expect, it } from 'vitest';
import { parsingCanonicalForm, rabinFingerprint, schemaFingerprint, SchemaFormError } from './fingerprint.js';
import { SCHEMA_FILES } from './schemas.generated.js';

/**
 * The Avro project's own vectors: apache/avro share/test/data/schema-tests.txt (cases 000-033),
 * cross-checked there against the Java implementation. Fingerprints are Java signed longs.
 */
const AVRO_VECTORS: readonly { input: string; canonical: string; fingerprint?: bigint }[] = [
  { input: '"null"', canonical: '"null"', fingerprint: 7195948357588979594n },
  { input: '{"type":"null"}', canonical: '"null"' },
  { input: '"boolean"', canonical: '"boolean"', fingerprint: -6970731678124411036n },
  { input: '{"type":"boolean"}', canonical: '"boolean"' },
  { input: '"int"', canonical: '"int"', fingerprint: 8247732601305521295n },
  { input: '{"type":"int"}', canonical: '"int"' },
  { input: '"long"', canonical: '"long"', fingerprint: -3434872931120570953n },
  { input: '{"type":"long"}', canonical: '"long"' },
  { input: '"float"', canonical: '"float"', fingerprint: 5583340709985441680n },
  { input: '{"type":"float"}', canonical: '"float"' },
  { input: '"double"', canonical: '"double"', fingerprint: -8181574048448539266n },
  { input: '{"type":"double"}', canonical: '"double"' },
  { input: '"bytes"', canonical: '"bytes"', fingerprint: 5746618253357095269n },
  { input: '{"type":"bytes"}', canonical: '"bytes"' },
  { input: '"string"', canonical: '"string"', fingerprint: -8142146995180207161n },
  { input: '{"type":"string"}', canonical: '"string"' },
  { input: '[  ]', canonical: '[]', fingerprint: -1241056759729112623n },
  { input: '[ "int"  ]', canonical: '["int"]', fingerprint: -5232228896498058493n },
  {
    input: '[ "int" , {"type":"boolean"} ]',
    canonical: '["int","boolean"]',
    fingerprint: 5392556393470105090n,
  },
  {
    input: '{"fields":[], "type":"record", "name":"foo"}',
    canonical: '{"name":"foo","type":"record","fields":[]}',
    fingerprint: -4824392279771201922n,
  },
  {
    input: '{"fields":[], "type":"record", "name":"foo", "namespace":"x.y"}',
    canonical: '{"name":"x.y.foo","type":"record","fields":[]}',
    fingerprint: 5916914534497305771n,
  },
  {
    input: '{"fields":[], "type":"record", "name":"a.b.foo", "namespace":"x.y"}',
    canonical: '{"name":"a.b.foo","type":"record","fields":[]}',
    fingerprint: -4616218487480524110n,
  },
  {
    input: '{"fields":[], "type":"record", "name":"foo", "doc":"Useful info"}',
    canonical: '{"name":"foo","type":"record","fields":[]}',
    fingerprint: -4824392279771201922n,
  },
  {
    input: '{"fields":[], "type":"record", "name":"foo", "aliases":["foo","bar"]}',
    canonical: '{"name":"foo","type":"record","fields":[]}',
    fingerprint: -4824392279771201922n,
  },
  {
    input: '{"fields":[], "type":"record", "name":"foo", "doc":"foo", "aliases":["foo","bar"]}',
    canonical: '{"name":"foo","type":"record","fields":[]}',
    fingerprint: -4824392279771201922n,
  },
  {
    input: '{"fields":[{"type":{"type":"boolean"}, "name":"f1"}], "type":"record", "name":"foo"}',
    canonical: '{"name":"foo","type":"record","fields":[{"name":"f1","type":"boolean"}]}',
    fingerprint: 7843277075252814651n,
  },
  {
    input: `{ "fields":[{"type":"boolean", "aliases":[], "name":"f1", "default":"true"},
            {"order":"descending","name":"f2","doc":"Hello","type":"int"}],
  "type":"record", "name":"foo"
}`,
    canonical:
      '{"name":"foo","type":"record","fields":[{"name":"f1","type":"boolean"},{"name":"f2","type":"int"}]}',
    fingerprint: -4860222112080293046n,
  },
  {
    input: '{"type":"enum", "name":"foo", "symbols":["A1"]}',
    canonical: '{"name":"foo","type":"enum","symbols":["A1"]}',
    fingerprint: -6342190197741309591n,
  },
  {
    input: '{"namespace":"x.y.z", "type":"enum", "name":"foo", "doc":"foo bar", "symbols":["A1", "A2"]}',
    canonical: '{"name":"x.y.z.foo","type":"enum","symbols":["A1","A2"]}',
    fingerprint: -4448647247586288245n,
  },
  {
    input: '{"name":"foo","type":"fixed","size":15}',
    canonical: '{"name":"foo","type":"fixed","size":15}',
    fingerprint: 1756455273707447556n,
  },
  {
    input: '{"namespace":"x.y.z", "type":"fixed", "name":"foo", "doc":"foo bar", "size":32}',
    canonical: '{"name":"x.y.z.foo","type":"fixed","size":32}',
    fingerprint: -3064184465700546786n,
  },
  {
    input: '{ "items":{"type":"null"}, "type":"array"}',
    canonical: '{"type":"array","items":"null"}',
    fingerprint: -589620603366471059n,
  },
  {
    input: '{ "values":"string", "type":"map"}',
    canonical: '{"type":"map","values":"string"}',
    fingerprint: -8732877298790414990n,
  },
  {
    input: `{"name":"PigValue","type":"record",
   "fields":[{"name":"value", "type":["null", "int", "long", "PigValue"]}]}`,
    canonical:
      '{"name":"PigValue","type":"record","fields":[{"name":"value","type":["null","int","long","PigValue"]}]}',
    fingerprint: -1759257747318642341n,
  },
];

describe('Parsing Canonical Form', () => {
  it.each(AVRO_VECTORS.map((v, i) => ({ ...v, case: String(i).padStart(3, '0') })))(
    'Avro test case $case: $input',
    ({ input, canonical }) => {
      expect(parsingCanonicalForm(JSON.parse(input))).toBe(canonical);
    },
  );

  it('writes a named type once, then refers to it by full name', () => {
    const schema = {
      type: 'record',
      name: 'Pair',
      namespace: 'x',
      fields: [
        { name: 'a', type: { type: 'enum', name: 'Side', symbols: ['L', 'R'] } },
        { name: 'b', type: 'Side' },
        { name: 'c', type: { type: 'long', logicalType: 'timestamp-millis' } },
      ],
    };
    expect(parsingCanonicalForm(schema)).toBe(
      '{"name":"x.Pair","type":"record","fields":[{"name":"a","type":{"name":"x.Side","type":"enum","symbols":["L","R"]}},{"name":"b","type":"x.Side"},{"name":"c","type":"long"}]}',
    );
  });

  it('agrees with the canonical schema avsc derives, for every schema in schemas/', () => {
    for (const file of SCHEMA_FILES) {
      const avscForm = JSON.stringify(avsc.Type.forSchema(file.schema as avsc.Schema).schema());
      expect(parsingCanonicalForm(file.schema), `${file.name} v${file.version}`).toBe(avscForm);
    }
  });

  it.each([
    ['an unknown reference', { type: 'record', name: 'R', fields: [{ name: 'f', type: 'Nope' }] }],
    ['a record without fields', { type: 'record', name: 'R' }],
    ['a named type defined twice', ['Rec', { type: 'record', name: 'Rec', fields: [] }]],
    ['a number', 42],
  ])('refuses %s', (_what, schema) => {
    expect(() => parsingCanonicalForm(schema)).toThrow(SchemaFormError);
  });
});

describe('CRC-64-AVRO fingerprint', () => {
  it.each(AVRO_VECTORS.filter((v) => v.fingerprint !== undefined))(
    'fingerprint of $canonical is $fingerprint',
    ({ input, canonical, fingerprint }) => {
      expect(BigInt.asIntN(64, rabinFingerprint(canonical))).toBe(fingerprint);
      expect(BigInt.asIntN(64, schemaFingerprint(JSON.parse(input)))).toBe(fingerprint);
    },
  );

  it('matches the hex form other implementations print for "int" and "string"', () => {
    // The same values as cases 004 and 014, as unsigned hex (e.g. goavro's crc64Avro tests).
    expect(rabinFingerprint('"int"').toString(16)).toBe('7275d51a3f395c8f');
    expect(rabinFingerprint('"string"').toString(16)).toBe('8f014872634503c7');
  });

  it('of no bytes is the EMPTY constant of the spec', () => {
    expect(rabinFingerprint(new Uint8Array(0))).toBe(0xc15d213aa4d7a795n);
  });
});
