import { describe, expect, it } from 'vitest';
import type { Command, CommandReply } from '@dwell/protocol';
import { CommandBoard, type BoardConnection, type BoardEffect } from './board.js';

const NOW = 1_000_000;
const command = (patch: Partial<Command> = {}): Command => ({
  id: 'c1',
  site_id: null,
  user_id: 'alice',
  name: 'ping',
  args: 'null',
  sent_ms: NOW,
  deadline_ms: NOW + 5_000,
  reply_to: 'r1',
  ...patch,
});
const settleRecord = (gateway: string, patch: Partial<CommandReply> = {}): CommandReply => ({
  command_id: 'c1',
  requester: null,
  site_id: null,
  user_id: 'alice',
  outcome: 'replied',
  payload: `"${gateway}"`,
  reason: null,
  detail: null,
  gateway_id: gateway,
  connection_id: `${gateway}-conn`,
  connections: 0,
  at_ms: NOW + 10,
  ...patch,
});
const tab = (id: string, user = 'alice', site = 's1'): BoardConnection => ({
  id,
  userId: user,
  siteId: site,
});

const kinds = (effects: readonly BoardEffect[]): string[] => effects.map((e) => e.kind);

/** A board with the given connections open on it. */
function board(open: readonly BoardConnection[] = []): {
  board: CommandBoard;
  of: (u: string, s: string | null) => BoardConnection[];
} {
  return {
    board: new CommandBoard({ gatewayId: 'gw-a', maxTimeoutMs: 60_000 }),
    of: (user, site) => open.filter((c) => c.userId === user && (site === null || c.siteId === site)),
  };
}

describe('CommandBoard: delivery', () => {
  it('hands a command to every connection of the user here', () => {
    const { board: b, of } = board([tab('t1'), tab('t2'), tab('t3', 'bob')]);
    const effects = b.onCommand(command(), NOW, of);
    expect(effects).toHaveLength(1);
    expect(effects[0]).toMatchObject({ kind: 'deliver', connections: [{ id: 't1' }, { id: 't2' }] });
  });

  it('delivers only to connections of the site the command names', () => {
    const { board: b, of } = board([tab('t1', 'alice', 's1'), tab('t2', 'alice', 's2')]);
    expect(b.onCommand(command({ site_id: 's2' }), NOW, of)[0]).toMatchObject({
      connections: [{ id: 't2' }],
    });
  });

  it('never delivers a duplicate (same user and id), from the same or another requester', () => {
    const { board: b, of } = board([tab('t1')]);
    expect(kinds(b.onCommand(command(), NOW, of))).toEqual(['deliver']);
    expect(b.onCommand(command(), NOW + 1, of)).toEqual([]);
    expect(b.onCommand(command({ reply_to: 'r2' }), NOW + 2, of)).toEqual([]);
    expect([...(b.get('alice', 'c1')?.requesters ?? [])]).toEqual(['r1', 'r2']);
  });

  it('treats the same id for another user as another command', () => {
    const { board: b, of } = board([tab('t1'), tab('t2', 'bob')]);
    b.onCommand(command(), NOW, of);
    expect(b.onCommand(command({ user_id: 'bob' }), NOW, of)[0]).toMatchObject({
      kind: 'deliver',
      connections: [{ id: 't2' }],
    });
  });

  it('keeps a command for a user not connected here and hands it over when the user connects before the deadline', () => {
    const { board: b, of } = board([]);
    expect(b.onCommand(command(), NOW, of)).toEqual([]);
    expect(b.onConnectionOpened(tab('t9', 'bob'), NOW + 100)).toEqual([]);
    expect(b.onConnectionOpened(tab('t1'), NOW + 100)[0]).toMatchObject({
      kind: 'deliver',
      connections: [{ id: 't1' }],
    });
    // A second connection of the user gets it too; the same one never twice.
    expect(b.onConnectionOpened(tab('t2'), NOW + 200)).toHaveLength(1);
    expect(b.onConnectionOpened(tab('t2'), NOW + 300)).toEqual([]);
  });

  it('does not hand over a command after its deadline, or once settled elsewhere', () => {
    const late = board([]);
    late.board.onCommand(command(), NOW, late.of);
    expect(late.board.onConnectionOpened(tab('t1'), NOW + 5_001)).toEqual([]);
    const settled = board([]);
    settled.board.onCommand(command(), NOW, settled.of);
    settled.board.onSettled(settleRecord('gw-b'));
    expect(settled.board.onConnectionOpened(tab('t2'), NOW + 10)).toEqual([]);
  });

  it('cuts a deadline beyond the longest timeout, and keeps an already expired command only to refuse duplicates', () => {
    const { board: b, of } = board([tab('t1')]);
    b.onCommand(command({ deadline_ms: NOW + 10 * 60_000 }), NOW, of);
    expect(b.get('alice', 'c1')?.deadlineMs).toBe(NOW + 60_000);
    expect(b.onCommand(command({ id: 'old', deadline_ms: NOW - 1 }), NOW, of)).toEqual([]);
    expect(b.get('alice', 'old')?.state).toBe('expired');
  });
});

describe('CommandBoard: replies', () => {
  it('accepts a reply only from a connection the command was delivered to, of the same user', () => {
    const { board: b, of } = board([tab('t1'), tab('m1', 'mallory')]);
    b.onCommand(command(), NOW, of);
    expect(b.beginReply('mallory', 'm1', 'c1', NOW)).toMatchObject({ ok: false, reason: 'unknown_command' });
    expect(b.beginReply('mallory', 't1', 'c1', NOW)).toMatchObject({ ok: false, reason: 'unknown_command' });
    expect(b.beginReply('alice', 'other', 'c1', NOW)).toMatchObject({ ok: false, reason: 'unknown_command' });
    expect(b.beginReply('alice', 't1', 'nope', NOW)).toMatchObject({ ok: false, reason: 'unknown_command' });
    expect(b.beginReply('alice', 't1', 'c1', NOW)).toMatchObject({ ok: true });
  });

  it('takes the first reply: a second one, here or while the first is being stored, is already_settled', () => {
    const { board: b, of } = board([tab('t1'), tab('t2')]);
    b.onCommand(command(), NOW, of);
    const first = b.beginReply('alice', 't1', 'c1', NOW);
    expect(b.beginReply('alice', 't2', 'c1', NOW)).toMatchObject({ ok: false, reason: 'already_settled' });
    if (!first.ok) throw new Error('expected ok');
    const effects = b.settle(first.entry, settleRecord('gw-a', { connection_id: 't1' }), ['r1']);
    expect(effects).toEqual([
      { kind: 'cancel', entry: first.entry, connectionIds: ['t2'], reason: 'settled' },
    ]);
    expect(b.beginReply('alice', 't2', 'c1', NOW)).toMatchObject({ ok: false, reason: 'already_settled' });
  });

  it('refuses a reply after the deadline', () => {
    const { board: b, of } = board([tab('t1')]);
    b.onCommand(command(), NOW, of);
    expect(b.beginReply('alice', 't1', 'c1', NOW + 5_001)).toMatchObject({ ok: false, reason: 'reply_late' });
  });

  it('lets the command wait again when storing the reply failed', () => {
    const { board: b, of } = board([tab('t1')]);
    b.onCommand(command(), NOW, of);
    const check = b.beginReply('alice', 't1', 'c1', NOW);
    if (!check.ok) throw new Error('expected ok');
    b.abandon(check.entry);
    expect(b.beginReply('alice', 't1', 'c1', NOW)).toMatchObject({ ok: true });
  });

  it('answers a requester whose duplicate arrived while the reply was being stored', () => {
    const { board: b, of } = board([tab('t1')]);
    b.onCommand(command(), NOW, of);
    const check = b.beginReply('alice', 't1', 'c1', NOW);
    if (!check.ok) throw new Error('expected ok');
    const asked = b.requestersToAnswer(check.entry);
    b.onCommand(command({ reply_to: 'r2' }), NOW, of);
    const effects = b.settle(check.entry, settleRecord('gw-a', { connection_id: 't1' }), asked);
    expect(effects).toEqual([
      {
        kind: 'answer',
        requester: 'r2',
        reply: expect.objectContaining({ requester: 'r2', outcome: 'replied' }),
      },
    ]);
  });
});

describe('CommandBoard: settle records and duplicates', () => {
  it('answers a later duplicate with the outcome it settled, once per requester', () => {
    const { board: b, of } = board([tab('t1')]);
    b.onCommand(command(), NOW, of);
    const check = b.beginReply('alice', 't1', 'c1', NOW);
    if (!check.ok) throw new Error('expected ok');
    b.settle(check.entry, settleRecord('gw-a', { connection_id: 't1' }), ['r1']);
    expect(b.onCommand(command(), NOW, of)).toEqual([]); // r1 was answered already
    const effects = b.onCommand(command({ reply_to: 'r3' }), NOW, of);
    expect(effects).toEqual([
      {
        kind: 'answer',
        requester: 'r3',
        reply: expect.objectContaining({ requester: 'r3', payload: '"gw-a"' }),
      },
    ]);
    expect(b.onCommand(command({ reply_to: 'r3' }), NOW, of)).toEqual([]);
  });

  it('leaves duplicates of a command settled by another gateway to that gateway', () => {
    const { board: b, of } = board([tab('t1')]);
    b.onCommand(command(), NOW, of);
    expect(b.onSettled(settleRecord('gw-b'))).toEqual([
      { kind: 'cancel', entry: b.get('alice', 'c1'), connectionIds: ['t1'], reason: 'settled' },
    ]);
    expect(b.onCommand(command({ reply_to: 'r2' }), NOW, of)).toEqual([]);
  });

  it('lets the first settle record in the log win when two gateways settle at once', () => {
    const { board: b, of } = board([tab('t1')]);
    b.onCommand(command(), NOW, of);
    const check = b.beginReply('alice', 't1', 'c1', NOW);
    if (!check.ok) throw new Error('expected ok');
    b.settle(check.entry, settleRecord('gw-a', { connection_id: 't1' }), ['r1']);
    b.onSettled(settleRecord('gw-b')); // theirs is ahead of ours in the log
    b.onSettled(settleRecord('gw-a'));
    expect(b.get('alice', 'c1')).toMatchObject({ settledHere: false, settled: { gateway_id: 'gw-b' } });
    expect(b.onCommand(command({ reply_to: 'r2' }), NOW, of)).toEqual([]);
  });

  it('keeps its own settle when it is first in the log', () => {
    const { board: b, of } = board([tab('t1')]);
    b.onCommand(command(), NOW, of);
    const check = b.beginReply('alice', 't1', 'c1', NOW);
    if (!check.ok) throw new Error('expected ok');
    b.settle(check.entry, settleRecord('gw-a', { connection_id: 't1' }), ['r1']);
    b.onSettled(settleRecord('gw-a'));
    b.onSettled(settleRecord('gw-b'));
    expect(b.get('alice', 'c1')).toMatchObject({ settledHere: true, settled: { gateway_id: 'gw-a' } });
  });

  it('answers a duplicate of a delivered command that expired unanswered with expired, at once', () => {
    const { board: b, of } = board([tab('t1')]);
    b.onCommand(command(), NOW, of);
    expect(b.sweep(NOW + 5_001)).toEqual([
      { kind: 'cancel', entry: b.get('alice', 'c1'), connectionIds: ['t1'], reason: 'expired' },
    ]);
    expect(b.onCommand(command({ reply_to: 'r2' }), NOW + 6_000, of)).toEqual([
      {
        kind: 'answer',
        requester: 'r2',
        reply: expect.objectContaining({ outcome: 'expired', connections: 1 }),
      },
    ]);
  });

  it('forgets commands after their retention, and the oldest first beyond its size', () => {
    const b = new CommandBoard({ gatewayId: 'gw-a', maxTimeoutMs: 60_000, retainMs: 1_000, maxEntries: 2 });
    b.onCommand(command({ id: 'a' }), NOW, () => []);
    b.onCommand(command({ id: 'b' }), NOW, () => []);
    b.onCommand(command({ id: 'c' }), NOW, () => []);
    expect([
      b.get('alice', 'a'),
      b.get('alice', 'b') !== undefined,
      b.get('alice', 'c') !== undefined,
    ]).toEqual([undefined, true, true]);
    b.sweep(NOW + 60_000 + 1_000);
    expect(b.size).toBe(2);
    b.sweep(NOW + 60_000 + 1_001);
    expect(b.size).toBe(0);
  });
});
