import { describe, expect, it } from 'vitest';
import type { Presence } from '@dwell/protocol';
import { PresenceView } from './presence-view.js';
import { presenceGatewayKey, presenceUserKey } from './topics.js';

const gateway = (id: string, epoch: string, atMs: number, leaseMs = 3000): [string, Presence] => [
  presenceGatewayKey(id),
  {
    kind: 'gateway',
    gateway_id: id,
    epoch,
    site_id: null,
    user_id: null,
    connections: 0,
    at_ms: atMs,
    lease_ms: leaseMs,
  },
];
const user = (gw: string, epoch: string, userId: string, site = 's1'): [string, Presence] => [
  presenceUserKey(site, userId, gw),
  {
    kind: 'user',
    gateway_id: gw,
    epoch,
    site_id: site,
    user_id: userId,
    connections: 1,
    at_ms: 0,
    lease_ms: 0,
  },
];

const view = (...records: Array<[string, Presence | null]>): PresenceView => {
  const v = new PresenceView({ skewToleranceMs: 0 });
  for (const [key, value] of records) v.apply(key, value);
  return v;
};

describe('PresenceView', () => {
  it('shows a user held by a live gateway of the same epoch', () => {
    const v = view(gateway('gw-a', 'e1', 1000), user('gw-a', 'e1', 'alice'));
    expect(v.isOnline('alice', null, 2000)).toBe(true);
    expect(v.isOnline('alice', 's1', 2000)).toBe(true);
    expect(v.isOnline('alice', 's2', 2000)).toBe(false);
    expect(v.isOnline('bob', null, 2000)).toBe(false);
  });

  it('does not care in which order the gateway and user records arrive', () => {
    const v = view(user('gw-a', 'e1', 'alice'), gateway('gw-a', 'e1', 1000));
    expect(v.isOnline('alice', null, 1500)).toBe(true);
  });

  it('takes a user offline with the tombstone of its record', () => {
    const [key] = user('gw-a', 'e1', 'alice');
    const v = view(gateway('gw-a', 'e1', 1000), user('gw-a', 'e1', 'alice'), [key, null]);
    expect(v.isOnline('alice', null, 1500)).toBe(false);
    expect(v.size).toBe(0);
  });

  it('keeps a user online while any gateway holds it', () => {
    const [keyA] = user('gw-a', 'e1', 'alice');
    const v = view(
      gateway('gw-a', 'e1', 1000),
      gateway('gw-b', 'f1', 1000),
      user('gw-a', 'e1', 'alice'),
      user('gw-b', 'f1', 'alice'),
      [keyA, null],
    );
    expect(v.isOnline('alice', null, 1500)).toBe(true);
  });

  it('takes the users of a silent gateway offline when its lease runs out', () => {
    const v = view(gateway('gw-a', 'e1', 1000, 3000), user('gw-a', 'e1', 'alice'));
    expect(v.isOnline('alice', null, 4000)).toBe(true);
    expect(v.isOnline('alice', null, 4001)).toBe(false);
    expect(v.liveGateways(4001)).toEqual([]);
  });

  it('ignores records of an earlier run of the same gateway id', () => {
    const v = view(
      gateway('gw-a', 'old', 1000),
      user('gw-a', 'old', 'alice'),
      gateway('gw-a', 'new', 2000),
      user('gw-a', 'new', 'bob'),
    );
    expect(v.isOnline('alice', null, 2500)).toBe(false);
    expect(v.isOnline('bob', null, 2500)).toBe(true);
  });

  it('takes every user of a gateway offline at once when it says it stopped (lease 0)', () => {
    const v = view(gateway('gw-a', 'e1', 1000), user('gw-a', 'e1', 'alice'), gateway('gw-a', 'e1', 1200, 0));
    expect(v.isOnline('alice', null, 1300)).toBe(false);
  });

  it('allows for clock skew', () => {
    const v = new PresenceView({ skewToleranceMs: 500 });
    for (const [key, value] of [gateway('gw-a', 'e1', 1000, 1000), user('gw-a', 'e1', 'alice')])
      v.apply(key, value);
    expect(v.isOnline('alice', null, 2400)).toBe(true);
    expect(v.isOnline('alice', null, 2501)).toBe(false);
  });

  it('reports which users a record may have changed', () => {
    const changed: Array<string | undefined> = [];
    const v = new PresenceView({ onChange: (u) => changed.push(u) });
    const [gKey, gValue] = gateway('gw-a', 'e1', 1000);
    const [uKey, uValue] = user('gw-a', 'e1', 'alice');
    v.apply(gKey, gValue);
    v.apply(uKey, uValue);
    v.apply(uKey, null);
    v.apply('x unknown', null);
    expect(changed).toEqual([undefined, 'alice', 'alice']);
  });
});
