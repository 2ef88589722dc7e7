import { describe, expect, it } from 'vitest';
import type { CommandReply } from '@dwell/protocol';
import { CommandInFlight, type CommandOutcome } from './outcome.js';

const DEADLINE = 10_000;

const record = (outcome: CommandReply['outcome'], patch: Partial<CommandReply> = {}): CommandReply => ({
  command_id: 'c1',
  requester: 'r1',
  site_id: null,
  user_id: 'u1',
  outcome,
  payload: null,
  reason: null,
  detail: null,
  gateway_id: 'gw-a',
  connection_id: 'conn-1',
  connections: outcome === 'delivered' ? 2 : 0,
  at_ms: 5_000,
  ...patch,
});

type Step = { reply: CommandReply; at: number } | { deadline: number } | { local: CommandOutcome };

/** Each row: inputs in arrival order, and the one outcome the command must end with. */
const CASES: ReadonlyArray<readonly [string, readonly Step[], Partial<CommandOutcome> | undefined]> = [
  [
    'a reply settles it',
    [{ reply: record('replied', { payload: '{"ok":true}' }), at: 5_000 }],
    { outcome: 'replied', payload: { ok: true }, gatewayId: 'gw-a', connectionId: 'conn-1' },
  ],
  [
    'delivered, then replied',
    [
      { reply: record('delivered'), at: 4_000 },
      { reply: record('replied', { payload: '1' }), at: 5_000 },
    ],
    { outcome: 'replied', payload: 1 },
  ],
  [
    'the first reply wins over a second',
    [
      { reply: record('replied', { payload: '"first"' }), at: 5_000 },
      { reply: record('replied', { payload: '"second"', gateway_id: 'gw-b' }), at: 5_001 },
    ],
    { outcome: 'replied', payload: 'first' },
  ],
  [
    'nothing: expired at the deadline, undelivered',
    [{ deadline: DEADLINE }],
    { outcome: 'expired', delivered: false },
  ],
  [
    'delivered, silent: expired, delivered',
    [{ reply: record('delivered'), at: 4_000 }, { deadline: DEADLINE }],
    { outcome: 'expired', delivered: true },
  ],
  ['a timer a moment early changes nothing', [{ deadline: DEADLINE - 1 }], undefined],
  [
    'a reply after the expiry is ignored',
    [{ deadline: DEADLINE }, { reply: record('replied', { payload: '1' }), at: DEADLINE + 5 }],
    { outcome: 'expired', delivered: false },
  ],
  [
    'a reply taken before the deadline but read after it still wins',
    [{ reply: record('replied', { payload: '1', at_ms: DEADLINE - 1 }), at: DEADLINE + 3 }],
    { outcome: 'replied', payload: 1 },
  ],
  [
    'a reply stamped after the deadline loses to it',
    [{ reply: record('replied', { payload: '1', at_ms: DEADLINE + 1 }), at: DEADLINE + 2 }],
    { outcome: 'expired', delivered: false },
  ],
  [
    'a client refusal is rejected: client_refused',
    [{ reply: record('rejected', { reason: 'client_refused', detail: 'no_handler: nope' }), at: 5_000 }],
    { outcome: 'rejected', reason: 'client_refused', detail: 'no_handler: nope', gatewayId: 'gw-a' },
  ],
  [
    'an expired record (answer to a duplicate) keeps its delivered flag',
    [{ reply: record('expired', { connections: 1 }), at: 5_000 }],
    { outcome: 'expired', delivered: true },
  ],
  [
    'offline decided locally is final',
    [{ local: { outcome: 'offline', id: 'c1' } }, { reply: record('replied'), at: 5_000 }],
    { outcome: 'offline' },
  ],
  [
    'a reply payload that is not JSON is passed on as text',
    [{ reply: record('replied', { payload: 'not json' }), at: 5_000 }],
    { outcome: 'replied', payload: 'not json' },
  ],
];

describe('CommandInFlight', () => {
  it.each(CASES)('%s', (_name, steps, expected) => {
    const command = new CommandInFlight('c1', DEADLINE);
    const settled: CommandOutcome[] = [];
    for (const step of steps) {
      const outcome =
        'reply' in step
          ? command.onReply(step.reply, step.at)
          : 'deadline' in step
            ? command.onDeadline(step.deadline)
            : command.onLocal(step.local);
      if (outcome !== undefined) settled.push(outcome);
    }
    // At most one input ever settles it, and that is the outcome it keeps.
    expect(settled.length).toBe(expected === undefined ? 0 : 1);
    if (expected === undefined) {
      expect(command.outcome).toBeUndefined();
      return;
    }
    expect(command.outcome).toBe(settled[0]);
    expect(command.outcome).toMatchObject({ id: 'c1', ...expected });
    expect(command.state).toBe('settled');
  });

  it('counts deliveries across gateways', () => {
    const command = new CommandInFlight('c1', DEADLINE);
    command.onReply(record('delivered', { connections: 2 }), 1);
    command.onReply(record('delivered', { connections: 1, gateway_id: 'gw-b' }), 2);
    expect(command.state).toBe('delivered');
    expect(command.deliveries).toBe(3);
  });
});
