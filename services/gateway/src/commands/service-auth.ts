import { createHash, timingSafeEqual } from 'node:crypto';

/** Service credentials that may send commands: name (for logs) → SHA-256 of the token. */
export type ServiceTokens = ReadonlyMap<string, Buffer>;

const MIN_TOKEN_LENGTH = 32;

/** Parses `DWELL_SERVICE_TOKENS`: `{"<service name>": "<token of 32+ printable characters>", …}`. */
export function parseServiceTokens(value: unknown): ServiceTokens {
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw new Error('expected an object of service name → token');
  const tokens = new Map<string, Buffer>();
  for (const [name, token] of Object.entries(value as Record<string, unknown>)) {
    if (typeof token !== 'string' || token.length < MIN_TOKEN_LENGTH || !/^[\x21-\x7e]+$/.test(token)) {
      throw new Error(`service ${name}: the token must be at least ${MIN_TOKEN_LENGTH} printable characters`);
    }
    tokens.set(name, digest(token));
  }
  return tokens;
}

/**
 * The name of the service whose token is in `authorization` (`Bearer <token>`), or undefined.
 * Compares fixed-length digests with timingSafeEqual against every configured token, without an
 * early exit, so the time taken says nothing about which token or how much of it matched.
 */
export function serviceFor(authorization: string, tokens: ServiceTokens): string | undefined {
  if (!authorization.startsWith('Bearer ')) return undefined;
  const given = digest(authorization.slice(7).trim());
  let found: string | undefined;
  for (const [name, expected] of tokens) {
    if (timingSafeEqual(given, expected) && found === undefined) found = name;
  }
  return found;
}

function digest(token: string): Buffer {
  return createHash('sha256').update(token, 'utf8').digest();
}
