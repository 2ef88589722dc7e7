#!/usr/bin/env node
// The schema compatibility check: schemas/ is the registry of every contract dwell writes (Avro
// single-object encoding names each value's writer schema by fingerprint), and this guards every
// change to it.
//
//   node scripts/check-schemas.mjs [schemas-dir]      (default: schemas/ next to this script)
//
// For every schemas/<Name>/, it checks that:
// - the directory holds only <version>.avsc files, versions 1..n without gaps, each valid JSON and
//   a valid Avro schema of a record named <Name>;
// - each version N is backward compatible with N-1 (N reads what N-1 wrote) AND forward compatible
//   (N-1 reads what N wrote), by avsc's schema resolution both ways and by round-tripping sample
//   values through each resolver;
// - no two versions share a Parsing Canonical Form (their fingerprints would collide);
// - a record embedded in another (ClientEvent inside PageEvent and ClientBatch) is exactly one of
//   its own versions, and the latest version of the embedding record embeds the latest one.
// Exits 1 with every problem named (schema, versions, avsc's message), 0 otherwise.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import avsc from 'avsc';

const SAMPLES = 50;
const VERSION_FILE = /^([1-9][0-9]*)\.avsc$/;

const dir = resolve(process.argv[2] ?? fileURLToPath(new URL('../schemas/', import.meta.url)));
const problems = [];
/** @type {Map<string, {version: number, file: string, type: import('avsc').Type, canonical: string, schema: unknown}[]>} */
const records = new Map();

function message(error) {
  return error instanceof Error ? error.message : String(error);
}

function shortName(fullName) {
  return fullName.slice(fullName.lastIndexOf('.') + 1);
}

// 1. Files: layout, JSON, Avro.
for (const name of readdirSync(dir).sort()) {
  const path = join(dir, name);
  if (!statSync(path).isDirectory()) {
    if (!name.startsWith('.') && !name.endsWith('.md')) {
      problems.push(
        `${name}: unexpected file; schemas live in ${relative(process.cwd(), dir) || '.'}/<RecordName>/<version>.avsc`,
      );
    }
    continue;
  }
  const versions = [];
  for (const file of readdirSync(path).sort()) {
    const match = VERSION_FILE.exec(file);
    if (match === null) {
      problems.push(`${name}/${file}: unexpected file; expected <version>.avsc with version 1, 2, 3 ...`);
      continue;
    }
    const version = Number(match[1]);
    const where = `${name}/${file}`;
    let schema;
    try {
      schema = JSON.parse(readFileSync(join(path, file), 'utf8'));
    } catch (error) {
      problems.push(`${where}: not valid JSON: ${message(error)}`);
      continue;
    }
    let type;
    try {
      type = avsc.Type.forSchema(schema);
    } catch (error) {
      problems.push(`${where}: not a valid Avro schema: ${message(error)}`);
      continue;
    }
    if (type.typeName !== 'record' || shortName(type.name ?? '') !== name) {
      problems.push(
        `${where}: must be a record named ${name}, found ${type.typeName} ${type.name ?? '(anonymous)'}`,
      );
      continue;
    }
    versions.push({ version, file: where, type, canonical: JSON.stringify(type.schema()), schema });
  }
  versions.sort((a, b) => a.version - b.version);
  versions.forEach((v, i) => {
    if (v.version !== i + 1) problems.push(`${name}: version ${i + 1} is missing (found ${v.file})`);
  });
  if (versions.length === 0) problems.push(`${name}: no versions`);
  records.set(name, versions);
}

// 2. Each version against the previous one, both ways.
for (const [name, versions] of records) {
  for (let i = 1; i < versions.length; i++) {
    const older = versions[i - 1];
    const newer = versions[i];
    const pair = `${name} v${newer.version} vs v${older.version}`;
    const directions = [
      { reader: newer, writer: older, what: 'not backward compatible' },
      { reader: older, writer: newer, what: 'not forward compatible' },
    ];
    for (const { reader, writer, what } of directions) {
      const reads = `v${reader.version} cannot read data written with v${writer.version}`;
      let resolver;
      try {
        resolver = reader.type.createResolver(writer.type);
      } catch (error) {
        problems.push(`${pair}: ${what} (${reads}): ${message(error)}`);
        continue;
      }
      for (let s = 0; s < SAMPLES; s++) {
        const sample = writer.type.random();
        try {
          const read = reader.type.fromBuffer(writer.type.toBuffer(sample), resolver);
          if (!reader.type.isValid(read))
            throw new Error(`resolved value is not a valid v${reader.version} value`);
        } catch (error) {
          problems.push(`${pair}: ${what} (${reads}, sample round trip failed): ${message(error)}`);
          break;
        }
      }
    }
  }
}

// 3. Canonical forms (the fingerprint input) are unique.
const owners = new Map();
for (const [name, versions] of records) {
  for (const v of versions) {
    const owner = owners.get(v.canonical);
    if (owner === undefined) {
      owners.set(v.canonical, v);
    } else {
      problems.push(
        `${v.file}: same Parsing Canonical Form (so the same fingerprint) as ${owner.file}; ` +
          (owner.file.startsWith(`${name}/`)
            ? 'docs and defaults do not change the wire: edit the existing version instead of adding one'
            : 'two records cannot share one'),
      );
    }
  }
}

// 4. Embedded records are versions of their own schemas, and the latest embeds the latest.
for (const [name, versions] of records) {
  versions.forEach((v, i) => {
    const registry = {};
    avsc.Type.forSchema(v.schema, { registry });
    for (const [fullName, embedded] of Object.entries(registry)) {
      const inner = shortName(fullName);
      const own = records.get(inner);
      if (inner === name || own === undefined || own.length === 0 || !avsc.Type.isType(embedded, 'record'))
        continue;
      const canonical = JSON.stringify(embedded.schema());
      const match = own.find((o) => o.canonical === canonical);
      const latest = own[own.length - 1];
      if (match === undefined) {
        problems.push(
          `${v.file}: embeds a ${inner} that is none of schemas/${inner}/*.avsc; copy it from ${latest.file}`,
        );
      } else if (i === versions.length - 1 && match !== latest) {
        problems.push(
          `${v.file}: the latest ${name} embeds ${inner} v${match.version}, not the latest v${latest.version}; ` +
            `add ${name} v${v.version + 1} embedding ${latest.file}`,
        );
      }
    }
  });
}

if (problems.length > 0) {
  console.error(`schema check failed (${dir}):\n  ${problems.join('\n  ')}`);
  process.exit(1);
}
const count = [...records.values()].reduce((n, v) => n + v.length, 0);
console.log(
  `schemas: ok (${records.size} records, ${count} versions, each compatible both ways with the previous)`,
);
