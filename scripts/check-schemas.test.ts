import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';

const script = fileURLToPath(new URL('check-schemas.mjs', import.meta.url));
const realSchemas = fileURLToPath(new URL('../schemas/', import.meta.url));
const made: string[] = [];

afterEach(() => {
  for (const dir of made.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function check(dir?: string): { status: number | null; stdout: string; stderr: string } {
  const run = spawnSync(process.execPath, dir === undefined ? [script] : [script, dir], { encoding: 'utf8' });
  return { status: run.status, stdout: run.stdout, stderr: run.stderr };
}

/** A schemas dir with one record `Foo`, one file per version. */
function schemasDir(files: Record<string, unknown>): string {
  const dir = mkdtempSync(join(tmpdir(), 'dwell-schemas-'));
  made.push(dir);
  for (const [path, content] of Object.entries(files)) {
    mkdirSync(join(dir, path, '..'), { recursive: true });
    writeFileSync(join(dir, path), typeof content === 'string' ? content : JSON.stringify(content));
  }
  return dir;
}

const field = (name: string, type: unknown, extra: object = {}) => ({ name, type, ...extra });
const foo = (...fields: object[]) => ({ type: 'record', name: 'Foo', namespace: 'dev.dwell.v1', fields });

describe('check-schemas', () => {
  it('passes on the schemas in this repository (the default directory)', () => {
    const run = check();
    expect(run.stderr).toBe('');
    expect(run.status).toBe(0);
    expect(run.stdout).toMatch(/^schemas: ok \(8 records/);
  });

  it('passes on a compatible change: v2 adds a field with a default', () => {
    const dir = schemasDir({
      'Foo/1.avsc': foo(field('a', 'string')),
      'Foo/2.avsc': foo(field('a', 'string'), field('b', 'long', { default: 0 })),
    });
    expect(check(dir)).toMatchObject({ status: 0 });
  });

  it('fails when v2 adds a field without a default (v2 cannot read v1 data)', () => {
    const dir = schemasDir({
      'Foo/1.avsc': foo(field('a', 'string')),
      'Foo/2.avsc': foo(field('a', 'string'), field('b', 'long')),
    });
    const run = check(dir);
    expect(run.status).toBe(1);
    expect(run.stderr).toContain(
      'Foo v2 vs v1: not backward compatible (v2 cannot read data written with v1)',
    );
    // avsc's own words name the field.
    expect(run.stderr).toMatch(/b/);
  });

  it('fails when v2 removes a field v1 has no default for (v1 cannot read v2 data)', () => {
    const dir = schemasDir({
      'Foo/1.avsc': foo(field('a', 'string'), field('b', 'long')),
      'Foo/2.avsc': foo(field('a', 'string')),
    });
    const run = check(dir);
    expect(run.status).toBe(1);
    expect(run.stderr).toContain(
      'Foo v2 vs v1: not forward compatible (v1 cannot read data written with v2)',
    );
  });

  it('fails when v2 changes a type incompatibly, reporting both directions', () => {
    const dir = schemasDir({
      'Foo/1.avsc': foo(field('a', 'string')),
      'Foo/2.avsc': foo(field('a', 'int')),
    });
    const run = check(dir);
    expect(run.status).toBe(1);
    expect(run.stderr).toContain('not backward compatible');
    expect(run.stderr).toContain('not forward compatible');
  });

  it('fails when an enum gains a symbol without a default (old readers would choke on it)', () => {
    const kind = (symbols: string[]) => field('k', { type: 'enum', name: 'Kind', symbols });
    const dir = schemasDir({ 'Foo/1.avsc': foo(kind(['a', 'b'])), 'Foo/2.avsc': foo(kind(['a', 'b', 'c'])) });
    expect(check(dir)).toMatchObject({
      status: 1,
      stderr: expect.stringContaining('not forward compatible'),
    });
  });

  it.each([
    ['a file that is not JSON', { 'Foo/1.avsc': '{"type": "record",' }, 'Foo/1.avsc: not valid JSON'],
    [
      'a file that is not Avro',
      { 'Foo/1.avsc': { type: 'record', name: 'Foo' } },
      'Foo/1.avsc: not a valid Avro schema',
    ],
    [
      'a record named unlike its directory',
      { 'Foo/1.avsc': { ...foo(), name: 'Bar' } },
      'must be a record named Foo',
    ],
    [
      'a gap in versions',
      { 'Foo/1.avsc': foo(), 'Foo/3.avsc': foo(field('a', 'string', { default: '' })) },
      'Foo: version 2 is missing',
    ],
    ['a stray file', { 'Foo/1.avsc': foo(), 'Foo/v2.json': '{}' }, 'Foo/v2.json: unexpected file'],
    [
      'a version identical on the wire to the previous one',
      {
        'Foo/1.avsc': foo(field('a', 'string')),
        'Foo/2.avsc': foo(field('a', 'string', { doc: 'now documented' })),
      },
      'Foo/2.avsc: same Parsing Canonical Form',
    ],
  ])('fails on %s', (_what, files, expected) => {
    const run = check(schemasDir(files));
    expect(run.status).toBe(1);
    expect(run.stderr).toContain(expected);
  });

  it('fails when an embedded record drifts from its own schema, or the latest embeds an old version', () => {
    const dir = mkdtempSync(join(tmpdir(), 'dwell-schemas-'));
    made.push(dir);
    cpSync(realSchemas, dir, { recursive: true });
    // ClientEvent v2 adds a defaulted field; PageEvent (latest) still embeds v1.
    const clientEvent = JSON.parse(readFileSync(join(dir, 'ClientEvent/1.avsc'), 'utf8')) as {
      fields: object[];
    };
    clientEvent.fields.push(field('sdk_version', 'string', { default: '' }));
    writeFileSync(join(dir, 'ClientEvent/2.avsc'), JSON.stringify(clientEvent));
    let run = check(dir);
    expect(run.status).toBe(1);
    expect(run.stderr).toContain(
      'PageEvent/1.avsc: the latest PageEvent embeds ClientEvent v1, not the latest v2',
    );
    expect(run.stderr).toContain('ClientBatch/1.avsc: the latest ClientBatch embeds ClientEvent v1');

    // An embedded copy edited by hand matches no version at all.
    rmSync(join(dir, 'ClientEvent/2.avsc'));
    const batch = readFileSync(join(dir, 'ClientBatch/1.avsc'), 'utf8').replace('"deviceLocked",', '');
    writeFileSync(join(dir, 'ClientBatch/1.avsc'), batch);
    run = check(dir);
    expect(run.status).toBe(1);
    expect(run.stderr).toContain(
      'ClientBatch/1.avsc: embeds a ClientEvent that is none of schemas/ClientEvent/*.avsc',
    );
  });
});
