import { describe, expect, it } from 'vitest';
import { mintToken, originAllowed, parseSites, verifyToken } from './auth.js';
import { addressMatcher } from './server.js';

const sites = parseSites({
  'site-a': { secret: 'secret-a-0123456789', origins: ['https://a.example'] },
  'site-b': { secret: 'secret-b-0123456789' },
});
const now = 1_800_000_000_000;
const exp = now / 1000 + 60;

describe('connection tokens', () => {
  it('verifies a token minted with the site secret', () => {
    const token = mintToken({ site_id: 'site-a', user_id: 'u1', exp }, 'secret-a-0123456789');
    expect(verifyToken(token, sites, now)).toEqual({ ok: true, claims: { site_id: 'site-a', user_id: 'u1', exp } });
  });

  it('is a standard HS256 JWT (header names the algorithm)', () => {
    const token = mintToken({ site_id: 'site-a', user_id: 'u1', exp }, 'secret-a-0123456789');
    const header = JSON.parse(Buffer.from(token.split('.')[0] ?? '', 'base64url').toString()) as unknown;
    expect(header).toEqual({ alg: 'HS256', typ: 'JWT' });
  });

  it.each([
    ['missing', undefined, 'unauthorized_missing_token'],
    ['empty', '', 'unauthorized_missing_token'],
    ['not a JWT', 'abc', 'unauthorized_bad_signature'],
    ['signed with another site secret', mintToken({ site_id: 'site-a', user_id: 'u1', exp }, 'secret-b-0123456789'), 'unauthorized_bad_signature'],
    ['unknown site', mintToken({ site_id: 'site-z', user_id: 'u1', exp }, 'secret-a-0123456789'), 'unauthorized_bad_signature'],
    ['expired', mintToken({ site_id: 'site-a', user_id: 'u1', exp: now / 1000 - 1 }, 'secret-a-0123456789'), 'unauthorized_expired_token'],
  ] as const)('refuses a %s token', (_name, token, reason) => {
    const check = verifyToken(token, sites, now);
    expect(check.ok).toBe(false);
    if (!check.ok) expect(check.reason).toBe(reason);
  });

  it('refuses a token whose payload was changed after signing', () => {
    const token = mintToken({ site_id: 'site-a', user_id: 'u1', exp }, 'secret-a-0123456789');
    const [header, , signature] = token.split('.');
    const forged = Buffer.from(JSON.stringify({ site_id: 'site-a', user_id: 'admin', exp })).toString('base64url');
    const check = verifyToken(`${header}.${forged}.${signature}`, sites, now);
    expect(check).toMatchObject({ ok: false, reason: 'unauthorized_bad_signature' });
  });

  it('refuses alg=none', () => {
    const header = Buffer.from(JSON.stringify({ alg: 'none' })).toString('base64url');
    const payload = Buffer.from(JSON.stringify({ site_id: 'site-a', user_id: 'u1', exp })).toString('base64url');
    expect(verifyToken(`${header}.${payload}.`, sites, now)).toMatchObject({ ok: false, reason: 'unauthorized_bad_signature' });
  });
});

describe('origins', () => {
  it('allows listed origins, native clients without Origin, and * for any', () => {
    const a = sites.get('site-a');
    const b = sites.get('site-b');
    if (a === undefined || b === undefined) throw new Error('sites missing');
    expect(originAllowed(a, 'https://a.example')).toBe(true);
    expect(originAllowed(a, 'https://evil.example')).toBe(false);
    expect(originAllowed(a, undefined)).toBe(true);
    expect(originAllowed(b, 'https://anything.example')).toBe(true);
  });

  it('rejects weak site configuration with a message naming the site', () => {
    expect(() => parseSites({ s: { secret: 'short' } })).toThrow(/site s: secret must be a string of at least 16/);
    expect(() => parseSites([])).toThrow(/expected an object/);
  });
});

describe('trusted proxy addresses', () => {
  it('matches exact addresses and IPv4 ranges, IPv4-mapped IPv6 included', () => {
    const trusted = addressMatcher(['127.0.0.1', '10.0.0.0/8', '172.16.0.0/12']);
    expect(trusted('127.0.0.1')).toBe(true);
    expect(trusted('10.200.3.4')).toBe(true);
    expect(trusted('::ffff:172.20.0.5')).toBe(true);
    expect(trusted('172.32.0.1')).toBe(false);
    expect(trusted('11.0.0.1')).toBe(false);
    expect(trusted('not-an-ip')).toBe(false);
    expect(addressMatcher([])('127.0.0.1')).toBe(false);
  });
});
