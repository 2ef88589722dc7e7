import { createHmac, timingSafeEqual } from 'node:crypto';

/** A site that may send events: its token secret and the page origins it serves from. */
export interface SiteConfig {
  /** HMAC-SHA256 secret for the site's connection tokens (at least 16 characters). */
  readonly secret: string;
  /** Allowed `Origin` values; `*` allows any. Requests without an Origin (native apps) pass. */
  readonly origins: readonly string[];
}

export type Sites = ReadonlyMap<string, SiteConfig>;

/** What a verified token proves. */
export interface TokenClaims {
  readonly site_id: string;
  readonly user_id: string;
  /** Expiry, Unix seconds. */
  readonly exp: number;
}

export type TokenCheck =
  | { readonly ok: true; readonly claims: TokenClaims }
  | {
      readonly ok: false;
      readonly reason: 'unauthorized_missing_token' | 'unauthorized_expired_token' | 'unauthorized_bad_signature';
      readonly detail: string;
    };

const HEADER = base64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));

function base64url(text: string): string {
  return Buffer.from(text, 'utf8').toString('base64url');
}

function sign(input: string, secret: string): Buffer {
  return createHmac('sha256', secret).update(input).digest();
}

/** Mints a JWT-compatible HS256 token (`dwell token` uses it; so do tests and the demo page). */
export function mintToken(claims: TokenClaims, secret: string): string {
  const payload = base64url(JSON.stringify(claims));
  return `${HEADER}.${payload}.${sign(`${HEADER}.${payload}`, secret).toString('base64url')}`;
}

const MAX_TOKEN_LENGTH = 2048;
const ID = /^[\x21-\x7e]{1,128}$/;

/**
 * Verifies a connection token: structure, the site's HMAC-SHA256 signature (constant-time), expiry.
 * `user_id` and `site_id` come from here and nowhere else.
 */
export function verifyToken(token: string | undefined, sites: Sites, nowMs: number): TokenCheck {
  if (token === undefined || token === '') {
    return { ok: false, reason: 'unauthorized_missing_token', detail: 'no token: pass ?token=… or Authorization: Bearer …' };
  }
  const bad = (detail: string): TokenCheck => ({ ok: false, reason: 'unauthorized_bad_signature', detail });
  if (token.length > MAX_TOKEN_LENGTH) return bad('token too long');
  const parts = token.split('.');
  if (parts.length !== 3) return bad('not a JWT (header.payload.signature)');
  const [header, payload, signature] = parts as [string, string, string];
  let claims: unknown;
  let alg: unknown;
  try {
    alg = (JSON.parse(Buffer.from(header, 'base64url').toString('utf8')) as { alg?: unknown }).alg;
    claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'));
  } catch {
    return bad('token header or payload is not base64url JSON');
  }
  if (alg !== 'HS256') return bad('token algorithm must be HS256');
  if (typeof claims !== 'object' || claims === null) return bad('token payload is not an object');
  const { site_id, user_id, exp } = claims as Record<string, unknown>;
  if (typeof site_id !== 'string' || !ID.test(site_id)) return bad('token site_id missing or invalid');
  if (typeof user_id !== 'string' || !ID.test(user_id)) return bad('token user_id missing or invalid');
  if (typeof exp !== 'number' || !Number.isFinite(exp)) return bad('token exp missing');
  const site = sites.get(site_id);
  if (site === undefined) return bad(`unknown site ${site_id}`);
  const expected = sign(`${header}.${payload}`, site.secret);
  const given = Buffer.from(signature, 'base64url');
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return bad('signature does not match');
  if (exp * 1000 <= nowMs) {
    return { ok: false, reason: 'unauthorized_expired_token', detail: `token expired at ${new Date(exp * 1000).toISOString()}` };
  }
  return { ok: true, claims: { site_id, user_id, exp } };
}

/** Whether a request from `origin` may act for the site. Native clients send no Origin. */
export function originAllowed(site: SiteConfig, origin: string | undefined): boolean {
  if (origin === undefined || origin === '') return true;
  return site.origins.includes('*') || site.origins.includes(origin);
}

/** Parses `DWELL_SITES` JSON: `{ "<site_id>": { "secret": "…", "origins": ["https://…"] } }`. */
export function parseSites(value: unknown): Sites {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new Error('expected an object of site_id → { secret, origins }');
  }
  const sites = new Map<string, SiteConfig>();
  for (const [siteId, raw] of Object.entries(value as Record<string, unknown>)) {
    if (!ID.test(siteId)) throw new Error(`site id ${JSON.stringify(siteId)} is not 1-128 printable characters`);
    const { secret, origins } = (raw ?? {}) as Record<string, unknown>;
    if (typeof secret !== 'string' || secret.length < 16) {
      throw new Error(`site ${siteId}: secret must be a string of at least 16 characters`);
    }
    const list = origins === undefined ? ['*'] : origins;
    if (!Array.isArray(list) || !list.every((o): o is string => typeof o === 'string')) {
      throw new Error(`site ${siteId}: origins must be an array of strings`);
    }
    sites.set(siteId, { secret, origins: list });
  }
  return sites;
}
