/**
 * Avro Parsing Canonical Form and the CRC-64-AVRO (Rabin) fingerprint, as the Avro specification
 * defines them ("Schema Fingerprints", "Transforming into Parsing Canonical Form"). The fingerprint
 * of a writer schema's canonical form is what single-object encoding puts after the `C3 01` marker.
 *
 * Implemented here rather than taken from avsc, whose `Type#fingerprint` is MD5/SHA-256 only.
 */

const PRIMITIVES: ReadonlySet<string> = new Set([
  'null',
  'boolean',
  'int',
  'long',
  'float',
  'double',
  'bytes',
  'string',
]);

/** A schema whose canonical form cannot be computed: the message names the offending part. */
export class SchemaFormError extends Error {
  override readonly name = 'SchemaFormError';
}

/**
 * The Parsing Canonical Form of a schema given as parsed JSON (the content of an .avsc file):
 * primitives in simple form, full names, only `name`, `type`, `fields`, `symbols`, `items`,
 * `values`, `size` kept in that order, a named type written out at its first occurrence and
 * referred to by full name afterwards, no whitespace.
 */
export function parsingCanonicalForm(schema: unknown): string {
  return JSON.stringify(canonical(schema, '', new Set<string>(), 'schema'));
}

function canonical(schema: unknown, namespace: string, defined: Set<string>, at: string): unknown {
  if (typeof schema === 'string') {
    if (PRIMITIVES.has(schema)) return schema;
    return reference(schema, namespace, defined, at);
  }
  if (Array.isArray(schema)) {
    return schema.map((branch: unknown, i) => canonical(branch, namespace, defined, `${at}[${i}]`));
  }
  if (typeof schema !== 'object' || schema === null) {
    throw new SchemaFormError(`${at}: not a schema: ${JSON.stringify(schema)}`);
  }
  const s = schema as Record<string, unknown>;
  const type = s['type'];
  if (typeof type !== 'string') {
    // `{"type": {...}}` wrapping a complex schema is not a valid Avro schema.
    throw new SchemaFormError(`${at}: "type" must be a string, got ${JSON.stringify(type)}`);
  }
  // Primitive with attributes (e.g. a logicalType annotation): the canonical form drops them.
  if (PRIMITIVES.has(type)) return type;
  switch (type) {
    case 'record':
    case 'error': {
      const name = define(s, namespace, defined, at);
      const inner = enclosingNamespace(name);
      const fields = s['fields'];
      if (!Array.isArray(fields)) throw new SchemaFormError(`${at}: record ${name} has no "fields" array`);
      return {
        name,
        type,
        fields: fields.map((field: unknown, i) => {
          const f = asObject(field, `${at}.fields[${i}]`);
          const fieldName = f['name'];
          if (typeof fieldName !== 'string') throw new SchemaFormError(`${at}.fields[${i}]: no "name"`);
          return { name: fieldName, type: canonical(f['type'], inner, defined, `${name}.${fieldName}`) };
        }),
      };
    }
    case 'enum': {
      const name = define(s, namespace, defined, at);
      const symbols = s['symbols'];
      if (!Array.isArray(symbols)) throw new SchemaFormError(`${at}: enum ${name} has no "symbols" array`);
      return { name, type, symbols };
    }
    case 'fixed': {
      const name = define(s, namespace, defined, at);
      const size = s['size'];
      if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) {
        throw new SchemaFormError(`${at}: fixed ${name} has no valid "size"`);
      }
      return { name, type, size };
    }
    case 'array':
      return { type, items: canonical(s['items'], namespace, defined, `${at}.items`) };
    case 'map':
      return { type, values: canonical(s['values'], namespace, defined, `${at}.values`) };
    default:
      // A named type referred to as `{"type": "Name"}`.
      return reference(type, namespace, defined, at);
  }
}

function asObject(value: unknown, at: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new SchemaFormError(`${at}: not an object`);
  }
  return value as Record<string, unknown>;
}

/** Registers a named type's full name; the first occurrence is the definition. */
function define(s: Record<string, unknown>, namespace: string, defined: Set<string>, at: string): string {
  const name = s['name'];
  if (typeof name !== 'string' || name === '') throw new SchemaFormError(`${at}: named type without "name"`);
  const ns = s['namespace'];
  const full = name.includes('.') ? name : qualify(name, typeof ns === 'string' ? ns : namespace);
  if (defined.has(full)) throw new SchemaFormError(`${at}: ${full} is defined twice`);
  defined.add(full);
  return full;
}

function reference(name: string, namespace: string, defined: Set<string>, at: string): string {
  if (name.includes('.')) {
    if (defined.has(name)) return name;
  } else {
    const full = qualify(name, namespace);
    if (defined.has(full)) return full;
    if (defined.has(name)) return name; // a type defined in the null namespace
  }
  throw new SchemaFormError(`${at}: unknown type ${JSON.stringify(name)}`);
}

function qualify(name: string, namespace: string): string {
  return namespace === '' ? name : `${namespace}.${name}`;
}

function enclosingNamespace(fullName: string): string {
  const dot = fullName.lastIndexOf('.');
  return dot < 0 ? '' : fullName.slice(0, dot);
}

// CRC-64-AVRO: the spec's EMPTY constant and its 256-entry table, built once.
const EMPTY = 0xc15d213aa4d7a795n;
const TABLE = (() => {
  const table = new BigUint64Array(256);
  for (let i = 0; i < 256; i++) {
    let fp = BigInt(i);
    for (let j = 0; j < 8; j++) fp = (fp >> 1n) ^ (EMPTY & -(fp & 1n));
    table[i] = fp;
  }
  return table;
})();

/**
 * The 64-bit CRC-64-AVRO (Rabin) fingerprint of some bytes, unsigned. Strings are taken as UTF-8.
 * For a schema fingerprint, pass its Parsing Canonical Form.
 */
export function rabinFingerprint(input: string | Uint8Array): bigint {
  const bytes = typeof input === 'string' ? Buffer.from(input, 'utf8') : input;
  let fp = EMPTY;
  for (const byte of bytes) {
    // The table index is always in 0..255, so the lookup is never undefined.
    fp = (fp >> 8n) ^ (TABLE[Number((fp ^ BigInt(byte)) & 0xffn)] as bigint);
  }
  return fp;
}

/** The fingerprint of a schema (parsed JSON): Rabin over its Parsing Canonical Form. */
export function schemaFingerprint(schema: unknown): bigint {
  return rabinFingerprint(parsingCanonicalForm(schema));
}
