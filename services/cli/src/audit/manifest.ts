/**
 * What a report says about how it was made: the code, the rules, the schemas, where the data came
 * from and what was read. Enough for someone else to re-run the audit and expect the same checksums.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { PartitionExposure, type RulesConfig } from '@dwell/exposure';
import { RECORD_NAMES, currentSchema, fingerprintHex } from '@dwell/protocol';

export interface CodeVersion {
  readonly package: string;
  readonly version: string;
  /** `git rev-parse HEAD` of the checkout the CLI runs from, or `DWELL_GIT_COMMIT`; null when unknown. */
  readonly git_commit: string | null;
  /** Tracked files differ from the commit; null when unknown. */
  readonly git_dirty: boolean | null;
  readonly node: string;
}

const PACKAGE_JSON = new URL('../../package.json', import.meta.url);
const REPO_ROOT = fileURLToPath(new URL('../../../../', import.meta.url));

export function codeVersion(env: Readonly<Record<string, string | undefined>> = process.env): CodeVersion {
  let name = '@dwell/cli';
  let version = 'unknown';
  try {
    const pkg = JSON.parse(readFileSync(PACKAGE_JSON, 'utf8')) as { name?: string; version?: string };
    name = pkg.name ?? name;
    version = pkg.version ?? version;
  } catch {
    // A bundled or moved CLI: the version stays unknown rather than failing the audit.
  }
  let commit: string | null = env['DWELL_GIT_COMMIT'] ?? null;
  let dirty: boolean | null = null;
  if (commit === null) {
    try {
      const git = (args: string[]): string =>
        execFileSync('git', args, { cwd: REPO_ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], env: { ...process.env, GIT_OPTIONAL_LOCKS: '0' } }).trim();
      commit = git(['rev-parse', 'HEAD']);
      // GIT_OPTIONAL_LOCKS=0: status must not refresh (write) the index of someone's checkout.
      dirty = git(['status', '--porcelain', '--untracked-files=no']) !== '';
    } catch {
      commit = null;
    }
  }
  return { package: name, version, git_commit: commit, git_dirty: dirty, node: process.version };
}

export interface RulesInfo {
  readonly version: number;
  /** The fingerprint snapshots carry: the rules version and a hash of every constant. */
  readonly fingerprint: string;
  readonly allowed_lateness_ms: number;
  readonly closed_memory_ms: number;
}

export function rulesInfo(rules: RulesConfig): RulesInfo {
  return {
    version: rules.rulesVersion,
    fingerprint: new PartitionExposure(rules).snapshot().rules_fingerprint,
    allowed_lateness_ms: rules.allowedLatenessMs,
    closed_memory_ms: rules.closedMemoryMs,
  };
}

/** The current version and CRC-64-AVRO fingerprint of every record schema in schemas/. */
export function schemaFingerprints(): Record<string, { version: number; fingerprint: string }> {
  return Object.fromEntries(
    RECORD_NAMES.map((name) => {
      const schema = currentSchema(name);
      return [name, { version: schema.version, fingerprint: fingerprintHex(schema.fingerprint) }];
    }),
  );
}

/** JSON with object keys sorted at every level: the same value always gives the same text. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => {
    if (v === null || typeof v !== 'object' || Array.isArray(v)) return typeof v === 'bigint' ? v.toString() : v;
    return Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  });
}

export function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}
