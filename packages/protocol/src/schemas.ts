/**
 * The schema registry (every version in `schemas/`, embedded by `scripts/gen-schemas.mjs`) and
 * Avro single-object encoding: `C3 01`, the writer schema's 8-byte little-endian CRC-64-AVRO
 * fingerprint, then the Avro binary body. A reader finds the writer schema by fingerprint among all
 * known versions of the record and resolves the value to the current version.
 */
import avsc from 'avsc';
import { compileBodyCheck, type BodyCheck } from './avro-bounds.js';
import { parsingCanonicalForm, rabinFingerprint } from './fingerprint.js';
import { SCHEMA_FILES, type RecordName, type SchemaFile } from './schemas.generated.js';
import type { ClientReply, Command, CommandReply, Presence } from './commands.js';
import type { ClientBatch, ClientEvent, PageEvent, RejectedFrame } from './types.js';

export { RECORD_NAMES, type RecordName, type SchemaFile } from './schemas.generated.js';

/** The TypeScript shape of each record in `schemas/`. */
export interface RecordTypes {
  ClientBatch: ClientBatch;
  ClientEvent: ClientEvent;
  ClientReply: ClientReply;
  Command: Command;
  CommandReply: CommandReply;
  PageEvent: PageEvent;
  Presence: Presence;
  RejectedFrame: RejectedFrame;
}
// Compile-time guard: a new directory in schemas/ needs its TypeScript shape here.
type SameKeys<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const _everyRecordTyped: SameKeys<RecordName, keyof RecordTypes> = true;

/** One version of one record schema, ready to use. */
export interface SchemaVersion {
  readonly name: RecordName;
  readonly version: number;
  /** The .avsc JSON. */
  readonly schema: unknown;
  readonly canonicalForm: string;
  /** CRC-64-AVRO of the canonical form, unsigned. */
  readonly fingerprint: bigint;
  readonly type: avsc.Type;
}

/** The two bytes that open every single-object encoded value. */
export const SINGLE_OBJECT_MARKER: readonly [number, number] = [0xc3, 0x01];
/** Marker (2 bytes) plus fingerprint (8 bytes). */
export const SINGLE_OBJECT_HEADER_BYTES = 10;

/** Why bytes could not be decoded as single-object encoded record. */
export const DECODE_FAILURES = {
  bad_marker: 'does not start with the single-object marker C3 01',
  truncated: 'ends inside the header or inside the value',
  unknown_fingerprint: 'the writer schema fingerprint is not any version in schemas/',
  wrong_record: 'the writer schema is a known version of a different record',
  unresolvable: 'the writer version cannot be resolved to the current reader version',
  malformed: 'the body is not a value of the writer schema (bad index, length, trailing bytes)',
} as const;
export type DecodeFailureCode = keyof typeof DECODE_FAILURES;

export type DecodeOutcome<T> =
  | { readonly ok: true; readonly value: T; readonly writerVersion: number }
  | { readonly ok: false; readonly code: DecodeFailureCode; readonly detail: string };

/** Thrown by the `decode*` functions that return a value instead of an outcome. */
export class SingleObjectDecodeError extends Error {
  override readonly name = 'SingleObjectDecodeError';
  readonly code: DecodeFailureCode;
  readonly record: RecordName;

  constructor(record: RecordName, code: DecodeFailureCode, detail: string) {
    super(`cannot decode ${record}: ${code}: ${detail}`);
    this.record = record;
    this.code = code;
  }
}

interface Reader {
  readonly writer: SchemaVersion;
  readonly check: BodyCheck;
  readonly read: ((body: Buffer) => unknown) | undefined;
  /** Why `read` is missing: avsc refused to resolve this writer to the reader. */
  readonly unresolvable: string | undefined;
}

/**
 * A set of schema versions with their encoders and decoders. The package's registry holds
 * everything in schemas/; tests build others (e.g. with a hypothetical next version).
 */
export class SchemaRegistry {
  readonly #versions = new Map<RecordName, SchemaVersion[]>();
  readonly #byFingerprint = new Map<bigint, SchemaVersion>();
  readonly #readers = new Map<RecordName, Map<bigint, Reader>>();
  readonly #headers = new Map<RecordName, Buffer>();

  constructor(files: readonly SchemaFile[]) {
    for (const file of files) {
      const canonicalForm = parsingCanonicalForm(file.schema);
      const entry: SchemaVersion = {
        name: file.name,
        version: file.version,
        schema: file.schema,
        canonicalForm,
        fingerprint: rabinFingerprint(canonicalForm),
        // The .avsc JSON is avsc's input format; avsc validates it.
        type: avsc.Type.forSchema(file.schema as avsc.Schema, { omitRecordMethods: true }),
      };
      const clash = this.#byFingerprint.get(entry.fingerprint);
      if (clash !== undefined && clash.name !== entry.name) {
        // Two different records with one canonical form: check-schemas refuses it.
        throw new Error(
          `schemas ${clash.name} v${clash.version} and ${entry.name} v${entry.version} share a fingerprint`,
        );
      }
      // Versions of one record with the same canonical form decode alike; the newest names them.
      if (clash === undefined || clash.version < entry.version)
        this.#byFingerprint.set(entry.fingerprint, entry);
      const list = this.#versions.get(file.name) ?? [];
      list.push(entry);
      this.#versions.set(file.name, list);
    }
    for (const [name, list] of this.#versions) {
      list.sort((a, b) => a.version - b.version);
      const current = list[list.length - 1] as SchemaVersion;
      const header = Buffer.alloc(SINGLE_OBJECT_HEADER_BYTES);
      header[0] = SINGLE_OBJECT_MARKER[0];
      header[1] = SINGLE_OBJECT_MARKER[1];
      header.writeBigUInt64LE(current.fingerprint, 2);
      this.#headers.set(name, header);
      const byWriter = new Map<bigint, Reader>();
      for (const writer of list) byWriter.set(writer.fingerprint, reader(current, writer));
      this.#readers.set(name, byWriter);
    }
  }

  /** All versions of a record, oldest first. */
  versions(name: RecordName): readonly SchemaVersion[] {
    return this.#versions.get(name) ?? [];
  }

  /** The newest version of a record: what encoders write and decoders resolve to. */
  current(name: RecordName): SchemaVersion {
    const list = this.versions(name);
    const current = list[list.length - 1];
    if (current === undefined) throw new Error(`no schema for ${name}`);
    return current;
  }

  /** Which schema version wrote these single-object bytes; undefined if not single-object or unknown. */
  identify(bytes: Uint8Array): SchemaVersion | undefined {
    if (bytes.length < SINGLE_OBJECT_HEADER_BYTES) return undefined;
    if (bytes[0] !== SINGLE_OBJECT_MARKER[0] || bytes[1] !== SINGLE_OBJECT_MARKER[1]) return undefined;
    return this.#byFingerprint.get(asBuffer(bytes).readBigUInt64LE(2));
  }

  /** See `encodeSingleObject`. */
  encode<N extends RecordName>(name: N, value: RecordTypes[N]): Buffer {
    const header = this.#headers.get(name);
    if (header === undefined) throw new Error(`no schema for ${name}`);
    const type = this.current(name).type;
    // Encode into a reused buffer, then copy out exactly once.
    for (;;) {
      header.copy(scratch, 0);
      const end = type.encode(value, scratch, SINGLE_OBJECT_HEADER_BYTES);
      if (end >= 0) {
        const out = Buffer.allocUnsafe(end);
        scratch.copy(out, 0, 0, end);
        // Do not keep an outsized buffer alive after one huge value.
        if (scratch.length > 16 * SCRATCH_BYTES) scratch = Buffer.allocUnsafe(SCRATCH_BYTES);
        return out;
      }
      // avsc returns minus the number of missing bytes.
      scratch = Buffer.allocUnsafe(Math.max(2 * scratch.length, scratch.length - end));
    }
  }

  /** See `decodeSingleObject`. */
  decode<N extends RecordName>(name: N, bytes: Uint8Array): DecodeOutcome<RecordTypes[N]> {
    if (bytes.length < 2) {
      return bytes.length === 1 && bytes[0] !== SINGLE_OBJECT_MARKER[0]
        ? failure('bad_marker', `first byte 0x${hex(bytes[0])}`)
        : failure('truncated', `${bytes.length} bytes`);
    }
    if (bytes[0] !== SINGLE_OBJECT_MARKER[0] || bytes[1] !== SINGLE_OBJECT_MARKER[1]) {
      return failure('bad_marker', `starts with 0x${hex(bytes[0])} 0x${hex(bytes[1])}`);
    }
    if (bytes.length < SINGLE_OBJECT_HEADER_BYTES) {
      return failure('truncated', `header cut off after ${bytes.length} bytes`);
    }
    const buf = asBuffer(bytes);
    const fingerprint = buf.readBigUInt64LE(2);
    const r = this.#readers.get(name)?.get(fingerprint);
    if (r === undefined) {
      const other = this.#byFingerprint.get(fingerprint);
      return other === undefined
        ? failure('unknown_fingerprint', `fingerprint ${fingerprintHex(fingerprint)} is not in schemas/`)
        : failure('wrong_record', `got ${other.name} v${other.version}, expected ${name}`);
    }
    if (r.read === undefined) {
      return failure('unresolvable', `${name} v${r.writer.version}: ${r.unresolvable ?? ''}`);
    }
    const problem = r.check(buf, SINGLE_OBJECT_HEADER_BYTES);
    if (problem !== undefined) return failure(problem.code, `${name} v${r.writer.version} ${problem.detail}`);
    try {
      const value = r.read(buf.subarray(SINGLE_OBJECT_HEADER_BYTES)) as RecordTypes[N];
      return { ok: true, value, writerVersion: r.writer.version };
    } catch (error) {
      // The bounds check makes this unreachable for what it knows about; avsc has the last word.
      return failure('malformed', `${name} v${r.writer.version}: ${errorMessage(error)}`);
    }
  }
}

function reader(current: SchemaVersion, writer: SchemaVersion): Reader {
  const check = compileBodyCheck(writer.canonicalForm);
  if (writer.fingerprint === current.fingerprint) {
    return { writer, check, read: (body) => current.type.fromBuffer(body), unresolvable: undefined };
  }
  try {
    const resolver = current.type.createResolver(writer.type);
    return {
      writer,
      check,
      read: (body) => current.type.fromBuffer(body, resolver),
      unresolvable: undefined,
    };
  } catch (error) {
    return { writer, check, read: undefined, unresolvable: errorMessage(error) };
  }
}

const SCRATCH_BYTES = 64 * 1024;
/** Shared by every registry: encoding is synchronous, so one buffer serves all. */
let scratch = Buffer.allocUnsafe(SCRATCH_BYTES);

/** Every version of every record in schemas/. */
export const schemaRegistry = new SchemaRegistry(SCHEMA_FILES);

/** All versions of a record in schemas/, oldest first. */
export function schemaVersions(name: RecordName): readonly SchemaVersion[] {
  return schemaRegistry.versions(name);
}

/** The newest version of a record: what encoders write and decoders resolve to. */
export function currentSchema(name: RecordName): SchemaVersion {
  return schemaRegistry.current(name);
}

/** Which schema version wrote these single-object bytes; undefined if not single-object or unknown. */
export function identifySchema(bytes: Uint8Array): SchemaVersion | undefined {
  return schemaRegistry.identify(bytes);
}

/**
 * Single-object encoding of a value with the record's current schema. Throws (a bug, not an input
 * problem) if the value does not fit the schema, e.g. a non-integer where a long belongs.
 * Properties the schema does not name are not written.
 */
export function encodeSingleObject<N extends RecordName>(name: N, value: RecordTypes[N]): Buffer {
  return schemaRegistry.encode(name, value);
}

/**
 * Decodes single-object bytes as `name`, whatever known version of it wrote them, resolved to the
 * current version. Never throws; never retains `bytes` (strings are copied out, `bytes` fields are
 * copies).
 */
export function decodeSingleObject<N extends RecordName>(
  name: N,
  bytes: Uint8Array,
): DecodeOutcome<RecordTypes[N]> {
  return schemaRegistry.decode(name, bytes);
}

/** Like `decodeSingleObject`, but returns the value or throws `SingleObjectDecodeError`. */
export function decodeSingleObjectOrThrow<N extends RecordName>(name: N, bytes: Uint8Array): RecordTypes[N] {
  const outcome = decodeSingleObject(name, bytes);
  if (!outcome.ok) throw new SingleObjectDecodeError(name, outcome.code, outcome.detail);
  return outcome.value;
}

/** A fingerprint as 16 hex digits, most significant first (how Avro tools print it). */
export function fingerprintHex(fingerprint: bigint): string {
  return fingerprint.toString(16).padStart(16, '0');
}

function failure(
  code: DecodeFailureCode,
  detail: string,
): { ok: false; code: DecodeFailureCode; detail: string } {
  return { ok: false, code, detail };
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function hex(byte: number | undefined): string {
  return (byte ?? 0).toString(16).padStart(2, '0');
}

/** avsc needs a Buffer; wrap a plain Uint8Array without copying. */
export function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}
