/**
 * Snapshot shapes: plain JSON-compatible objects (numbers, strings, booleans, null, arrays,
 * objects) that survive `JSON.stringify`/`JSON.parse` unchanged. A snapshot restores only under
 * the same format and the same rules (config fingerprint); anything else throws SnapshotError,
 * because restoring under other rules would silently mix two rule sets in one result.
 */
import { entryImpression, entryMeta, type ImpressionMeta } from './event-record.js';
import type { PageViewIdentity } from './results.js';

/** Version of the snapshot layout, independent of the rules version. */
export const SNAPSHOT_FORMAT = 1;

/** One stored event: `[seq, t_mono_ms, recv_ms, content hash, entries]` (see EventLog for entries). */
export type EventTuple = readonly [
  seq: number,
  t: number,
  recv: number,
  hash: number,
  entries: readonly number[],
];

export interface PageViewSnapshot {
  readonly format: typeof SNAPSHOT_FORMAT;
  readonly kind: 'page_view';
  readonly rules_version: number;
  readonly rules_fingerprint: string;
  readonly identity: PageViewIdentity;
  readonly last_recv_ms: number | null;
  readonly conflicting_duplicate: boolean;
  readonly givt_user_agent: boolean;
  readonly impressions: readonly string[];
  readonly metas: readonly ImpressionMeta[];
  readonly events: readonly EventTuple[];
}

/** A snapshot that cannot be restored here; `field` names what is wrong. */
export class SnapshotError extends Error {
  readonly field: string;
  readonly problem: string;
  constructor(field: string, problem: string) {
    super(`snapshot ${field}: ${problem}`);
    this.name = 'SnapshotError';
    this.field = field;
    this.problem = problem;
  }
}

type Json = Record<string, unknown>;

export function expectObject(value: unknown, field: string): Json {
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw new SnapshotError(field, 'must be an object');
  return value as Json;
}

export function expectArray(value: unknown, field: string): readonly unknown[] {
  if (!Array.isArray(value)) throw new SnapshotError(field, 'must be an array');
  return value;
}

export function expectInteger(value: unknown, field: string, min = Number.MIN_SAFE_INTEGER): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min)
    throw new SnapshotError(field, `must be an integer ≥ ${min}`);
  return value;
}

export function expectString(value: unknown, field: string): string {
  if (typeof value !== 'string') throw new SnapshotError(field, 'must be a string');
  return value;
}

export function expectBoolean(value: unknown, field: string): boolean {
  if (typeof value !== 'boolean') throw new SnapshotError(field, 'must be a boolean');
  return value;
}

/** Checks the envelope every snapshot shares: format, kind and rules fingerprint. */
export function expectEnvelope(value: unknown, kind: string, fingerprint: string): Json {
  const snapshot = expectObject(value, 'snapshot');
  if (snapshot['format'] !== SNAPSHOT_FORMAT)
    throw new SnapshotError(
      'format',
      `is ${JSON.stringify(snapshot['format'])}, this code reads ${SNAPSHOT_FORMAT}`,
    );
  if (snapshot['kind'] !== kind)
    throw new SnapshotError('kind', `is ${JSON.stringify(snapshot['kind'])}, expected ${kind}`);
  if (snapshot['rules_fingerprint'] !== fingerprint) {
    throw new SnapshotError(
      'rules_fingerprint',
      `${JSON.stringify(snapshot['rules_fingerprint'])} was taken under other rules than ${fingerprint}`,
    );
  }
  return snapshot;
}

export function parseIdentity(value: unknown): PageViewIdentity {
  const o = expectObject(value, 'identity');
  const ua = o['user_agent'];
  return {
    page_view_id: expectString(o['page_view_id'], 'identity.page_view_id'),
    site_id: expectString(o['site_id'], 'identity.site_id'),
    user_id: expectString(o['user_id'], 'identity.user_id'),
    user_agent: ua === null ? null : expectString(ua, 'identity.user_agent'),
  };
}

export function parseMeta(value: unknown, field: string): ImpressionMeta {
  const o = expectObject(value, field);
  const media = o['media'];
  if (media !== 'display' && media !== 'video')
    throw new SnapshotError(`${field}.media`, `unknown media ${JSON.stringify(media)}`);
  return {
    ad_id: expectString(o['ad_id'], `${field}.ad_id`),
    campaign_id: expectString(o['campaign_id'], `${field}.campaign_id`),
    width: expectInteger(o['width'], `${field}.width`),
    height: expectInteger(o['height'], `${field}.height`),
    media,
  };
}

/** Parses stored events: strictly increasing seqs, entries pointing inside the registry tables. */
export function parseEvents(value: unknown, impressionCount: number, metaCount: number): EventTuple[] {
  let previousSeq = 0;
  return expectArray(value, 'events').map((item, i) => {
    const field = `events[${i}]`;
    const tuple = expectArray(item, field);
    const seq = expectInteger(tuple[0], `${field}[0]`, previousSeq + 1);
    previousSeq = seq;
    const entries = expectArray(tuple[4], `${field}[4]`).map((n, j) =>
      expectInteger(n, `${field}[4][${j}]`, 0),
    );
    if (entries.some((entry) => entryImpression(entry) >= impressionCount || entryMeta(entry) >= metaCount)) {
      throw new SnapshotError(`${field}[4]`, 'refers outside the impression tables');
    }
    return [
      seq,
      expectInteger(tuple[1], `${field}[1]`),
      expectInteger(tuple[2], `${field}[2]`),
      expectInteger(tuple[3], `${field}[3]`, 0),
      entries,
    ] as const;
  });
}
