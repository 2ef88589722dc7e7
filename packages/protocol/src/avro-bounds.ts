/**
 * A structural check of an Avro binary body against its writer schema, run before avsc decodes it.
 *
 * Why: avsc trusts the bytes. An array block count of 10^9 in a 20-byte frame makes it allocate
 * and loop 10^9 times, so one hostile frame could stall a gateway. This walk reads every length,
 * count, index and varint with bounds checks and no allocation; only a body that passes reaches
 * avsc. Checks are compiled once per writer schema into closures.
 */

/** Why a body failed the check: it ended early, or its bytes cannot be a value of the schema. */
export interface BodyProblem {
  readonly code: 'truncated' | 'malformed';
  readonly detail: string;
}

/** Returns a problem, or undefined when `buf[offset..]` is exactly one value of the schema. */
export type BodyCheck = (buf: Uint8Array, offset: number) => BodyProblem | undefined;

/** avsc refuses longs outside this range ("potential precision loss"); refuse them first. */
const MAX_SAFE_LONG = 9007199254740990;
const INT_MIN = -2147483648;
const INT_MAX = 2147483647;
/** Nesting bound for recursive schemas, so a deep body cannot overflow the stack. */
const MAX_DEPTH = 256;

class Cursor {
  readonly buf: Uint8Array;
  pos: number;
  depth = 0;
  problem: BodyProblem | undefined = undefined;

  constructor(buf: Uint8Array, pos: number) {
    this.buf = buf;
    this.pos = pos;
  }

  remaining(): number {
    return this.buf.length - this.pos;
  }

  fail(code: BodyProblem['code'], what: string): void {
    this.problem ??= { code, detail: `at byte ${this.pos}: ${what}` };
  }

  /** A zig-zag varint; NaN (and a problem) when it is cut off or longer than 10 bytes. */
  long(): number {
    const buf = this.buf;
    let pos = this.pos;
    let unsigned = 0;
    let scale = 1;
    for (let i = 0; ; i++) {
      if (pos >= buf.length) {
        this.fail('truncated', 'varint cut off');
        return NaN;
      }
      const b = buf[pos++] as number;
      unsigned += (b & 0x7f) * scale;
      if ((b & 0x80) === 0) break;
      if (i === 9) {
        this.fail('malformed', 'varint longer than 10 bytes');
        return NaN;
      }
      scale *= 128;
    }
    this.pos = pos;
    // Exact for every value the callers accept (|n| within the safe range).
    return unsigned % 2 === 1 ? -(unsigned + 1) / 2 : unsigned / 2;
  }
}

type Check = (c: Cursor) => void;

/** Parsing Canonical Form, parsed: what `parsingCanonicalForm` produces. */
type Canonical = string | readonly Canonical[] | CanonicalObject;
interface CanonicalObject {
  readonly name?: string;
  readonly type: string;
  readonly fields?: readonly { readonly name: string; readonly type: Canonical }[];
  readonly symbols?: readonly string[];
  readonly items?: Canonical;
  readonly values?: Canonical;
  readonly size?: number;
}

/** Compiles the check for a schema given in Parsing Canonical Form (the JSON string). */
export function compileBodyCheck(canonicalForm: string): BodyCheck {
  const root = JSON.parse(canonicalForm) as Canonical;
  const named = new Map<string, Check>();
  const sizes = new Map<string, number>();
  const check = compile(root, named, sizes);
  return (buf, offset) => {
    const c = new Cursor(buf, offset);
    check(c);
    if (c.problem !== undefined) return c.problem;
    if (c.pos !== buf.length) {
      return { code: 'malformed', detail: `${buf.length - c.pos} trailing bytes after the value` };
    }
    return undefined;
  };
}

function compile(schema: Canonical, named: Map<string, Check>, sizes: Map<string, number>): Check {
  if (typeof schema === 'string') return primitive(schema, named);
  if (isUnion(schema)) {
    const branches = schema.map((b) => compile(b, named, sizes));
    return (c) => {
      const index = c.long();
      if (c.problem !== undefined) return;
      const branch = branches[index];
      if (branch === undefined) return c.fail('malformed', `union index ${index} out of range`);
      branch(c);
    };
  }
  switch (schema.type) {
    case 'record':
    case 'error': {
      const name = schema.name ?? '';
      // Registered before the fields compile, so a recursive reference finds it.
      let fields: Check[] = [];
      const record: Check = (c) => {
        if (++c.depth > MAX_DEPTH) return c.fail('malformed', `nesting deeper than ${MAX_DEPTH}`);
        for (const field of fields) {
          field(c);
          if (c.problem !== undefined) return;
        }
        c.depth--;
      };
      named.set(name, record);
      fields = (schema.fields ?? []).map((f) => compile(f.type, named, sizes));
      sizes.set(name, minSize(schema, sizes));
      return record;
    }
    case 'enum': {
      const count = schema.symbols?.length ?? 0;
      const name = schema.name ?? '';
      const check: Check = (c) => {
        const index = c.long();
        if (c.problem !== undefined) return;
        if (!(index >= 0 && index < count))
          c.fail('malformed', `enum index ${index} out of range for ${name}`);
      };
      named.set(name, check);
      sizes.set(name, 1);
      return check;
    }
    case 'fixed': {
      const size = schema.size ?? 0;
      const check: Check = (c) => {
        if (c.remaining() < size) return c.fail('truncated', `fixed of ${size} bytes cut off`);
        c.pos += size;
      };
      named.set(schema.name ?? '', check);
      sizes.set(schema.name ?? '', size);
      return check;
    }
    case 'array': {
      const items = schema.items ?? 'null';
      return blocks(compile(items, named, sizes), minSize(items, sizes));
    }
    case 'map': {
      const values = schema.values ?? 'null';
      const value = compile(values, named, sizes);
      const key = primitive('string', named);
      const entry: Check = (c) => {
        key(c);
        if (c.problem === undefined) value(c);
      };
      return blocks(entry, 1 + minSize(values, sizes));
    }
    default:
      return primitive(schema.type, named);
  }
}

function isUnion(schema: Canonical): schema is readonly Canonical[] {
  return Array.isArray(schema);
}

/** Array and map blocks: `count items...` repeated, ended by a zero count (see the Avro spec). */
function blocks(item: Check, itemMinBytes: number): Check {
  // Zero-width items (e.g. `null`) are bounded as if each took one byte: no schema here has them.
  const width = Math.max(1, itemMinBytes);
  return (c) => {
    for (;;) {
      let count = c.long();
      if (c.problem !== undefined) return;
      if (count === 0) return;
      let size = -1;
      if (count < 0) {
        count = -count;
        size = c.long();
        if (c.problem !== undefined) return;
        if (size < 0 || size > c.remaining())
          return c.fail('malformed', `block byte size ${size} out of range`);
      }
      if (count > c.remaining() / width) {
        // Cut off, or a count no body could back: the bytes end before the items could.
        return c.fail('truncated', `block of ${count} items cannot fit in ${c.remaining()} bytes`);
      }
      const start = c.pos;
      for (let i = 0; i < count; i++) {
        item(c);
        if (c.problem !== undefined) return;
      }
      if (size >= 0 && c.pos - start !== size) {
        return c.fail('malformed', `block byte size ${size}, items took ${c.pos - start}`);
      }
    }
  };
}

function primitive(type: string, named: Map<string, Check>): Check {
  switch (type) {
    case 'null':
      return () => undefined;
    case 'boolean':
      return (c) => {
        if (c.remaining() < 1) return c.fail('truncated', 'boolean cut off');
        const b = c.buf[c.pos];
        if (b !== 0 && b !== 1) return c.fail('malformed', `boolean byte ${b}`);
        c.pos++;
      };
    case 'int':
      return (c) => {
        const n = c.long();
        if (c.problem === undefined && !(n >= INT_MIN && n <= INT_MAX))
          c.fail('malformed', 'int out of range');
      };
    case 'long':
      return (c) => {
        const n = c.long();
        if (c.problem === undefined && !(n >= -MAX_SAFE_LONG && n <= MAX_SAFE_LONG)) {
          c.fail('malformed', 'long outside the safe integer range');
        }
      };
    case 'float':
      return fixedWidth(4, 'float');
    case 'double':
      return fixedWidth(8, 'double');
    case 'bytes':
    case 'string':
      return (c) => {
        const length = c.long();
        if (c.problem !== undefined) return;
        if (length < 0) return c.fail('malformed', `negative ${type} length ${length}`);
        if (length > c.remaining()) return c.fail('truncated', `${type} of ${length} bytes cut off`);
        c.pos += length;
      };
    default: {
      // A reference to a named type, resolved when the body is checked (it may be recursive).
      return (c) => {
        const target = named.get(type);
        if (target === undefined) return c.fail('malformed', `unknown type ${type}`);
        target(c);
      };
    }
  }
}

function fixedWidth(bytes: number, what: string): Check {
  return (c) => {
    if (c.remaining() < bytes) return c.fail('truncated', `${what} cut off`);
    c.pos += bytes;
  };
}

/** The fewest bytes any value of the schema takes; named types still being compiled count 0. */
function minSize(schema: Canonical, sizes: ReadonlyMap<string, number>): number {
  if (typeof schema === 'string') {
    switch (schema) {
      case 'null':
        return 0;
      case 'float':
        return 4;
      case 'double':
        return 8;
      case 'boolean':
      case 'int':
      case 'long':
      case 'bytes':
      case 'string':
        return 1;
      default:
        return sizes.get(schema) ?? 0;
    }
  }
  if (isUnion(schema)) return 1 + Math.min(...schema.map((b) => minSize(b, sizes)));
  switch (schema.type) {
    case 'record':
    case 'error':
      return (schema.fields ?? []).reduce((sum, f) => sum + minSize(f.type, sizes), 0);
    case 'fixed':
      return schema.size ?? 0;
    case 'enum':
    case 'array':
    case 'map':
      return 1;
    default:
      return minSize(schema.type, sizes);
  }
}
