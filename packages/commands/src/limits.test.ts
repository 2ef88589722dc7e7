import { describe, expect, it } from 'vitest';
import { checkCommand, DEFAULT_COMMAND_LIMITS, parseCommandRequest, parseReply } from './limits.js';

describe('checkCommand', () => {
  const cases: ReadonlyArray<
    readonly [string, unknown, Record<string, unknown>, Record<string, unknown>, string | undefined]
  > = [
    ['a plain command', 'u1', { name: 'ping', args: { a: 1 } }, {}, undefined],
    ['no args means null', 'u1', { name: 'ping' }, {}, undefined],
    ['an empty user', '', { name: 'ping' }, {}, 'invalid_command'],
    ['a user with a space', 'u 1', { name: 'ping' }, {}, 'invalid_command'],
    ['a user of 129 characters', 'u'.repeat(129), { name: 'ping' }, {}, 'invalid_command'],
    ['a name with a space', 'u1', { name: 'show banner' }, {}, 'invalid_command'],
    ['a name of 65 characters', 'u1', { name: 'n'.repeat(65) }, {}, 'invalid_command'],
    ['a name that is not a string', 'u1', { name: 42 }, {}, 'invalid_command'],
    [
      'args that cannot be JSON',
      'u1',
      { name: 'ping', args: { self: undefined as unknown, n: 1n } },
      {},
      'invalid_command',
    ],
    [
      'args too large',
      'u1',
      { name: 'ping', args: 'x'.repeat(DEFAULT_COMMAND_LIMITS.maxArgsBytes) },
      {},
      'command_too_large',
    ],
    ['a timeout of 0', 'u1', { name: 'ping' }, { timeoutMs: 0 }, 'invalid_command'],
    ['a fractional timeout', 'u1', { name: 'ping' }, { timeoutMs: 1.5 }, 'invalid_command'],
    [
      'a timeout above the maximum',
      'u1',
      { name: 'ping' },
      { timeoutMs: DEFAULT_COMMAND_LIMITS.maxTimeoutMs + 1 },
      'invalid_command',
    ],
    [
      'the maximum timeout',
      'u1',
      { name: 'ping' },
      { timeoutMs: DEFAULT_COMMAND_LIMITS.maxTimeoutMs },
      undefined,
    ],
    ['an id with a control character', 'u1', { name: 'ping' }, { id: 'a\nb' }, 'invalid_command'],
    ['a site', 'u1', { name: 'ping' }, { siteId: 'site-a' }, undefined],
    ['an empty site', 'u1', { name: 'ping' }, { siteId: '' }, 'invalid_command'],
  ];
  it.each(cases)('%s', (_name, user, command, options, reason) => {
    const checked = checkCommand(user, command as { name: unknown; args?: unknown }, options);
    if (reason === undefined) expect(checked.ok).toBe(true);
    else expect(checked).toMatchObject({ ok: false, reason });
  });

  it('keeps the args as JSON text and fills the default timeout', () => {
    expect(checkCommand('u1', { name: 'ping', args: [1, 'a'] }, { id: 'k1' })).toEqual({
      ok: true,
      value: {
        userId: 'u1',
        siteId: null,
        name: 'ping',
        argsText: '[1,"a"]',
        timeoutMs: DEFAULT_COMMAND_LIMITS.defaultTimeoutMs,
        id: 'k1',
      },
    });
  });
});

describe('parseCommandRequest (the HTTP body)', () => {
  it('reads user_id, name, args, timeout_ms, id and site_id', () => {
    expect(
      parseCommandRequest(
        '{"user_id":"u1","name":"ping","args":{"a":1},"timeout_ms":500,"id":"k","site_id":"s"}',
      ),
    ).toEqual({
      ok: true,
      value: { userId: 'u1', siteId: 's', name: 'ping', argsText: '{"a":1}', timeoutMs: 500, id: 'k' },
    });
  });
  it.each([
    ['not JSON', '{', 'invalid_command'],
    ['an array', '[]', 'invalid_command'],
    ['no user', '{"name":"ping"}', 'invalid_command'],
    ['a string timeout', '{"user_id":"u","name":"ping","timeout_ms":"5"}', 'invalid_command'],
  ])('refuses %s', (_name, body, reason) => {
    expect(parseCommandRequest(body)).toMatchObject({ ok: false, reason });
  });
});

describe('parseReply', () => {
  it('reads a result reply', () => {
    expect(parseReply('{"t":"reply","id":"c1","result":{"ok":true}}')).toEqual({
      ok: true,
      value: { id: 'c1', result: '{"ok":true}', error: null, detail: null, connectionId: null },
    });
  });
  it('reads a null result as a result', () => {
    expect(parseReply('{"t":"reply","id":"c1","result":null}')).toMatchObject({
      ok: true,
      value: { result: 'null', error: null },
    });
  });
  it('reads an error reply', () => {
    expect(parseReply('{"t":"reply","id":"c1","error":"no_handler","detail":"none"}')).toMatchObject({
      ok: true,
      value: { result: null, error: 'no_handler', detail: 'none' },
    });
  });
  it('needs connection_id over HTTP', () => {
    expect(
      parseReply('{"id":"c1","result":1}', DEFAULT_COMMAND_LIMITS, { needsConnectionId: true }),
    ).toMatchObject({ ok: false, reason: 'invalid_reply' });
    expect(
      parseReply('{"id":"c1","result":1,"connection_id":"abc"}', DEFAULT_COMMAND_LIMITS, {
        needsConnectionId: true,
      }),
    ).toMatchObject({
      ok: true,
      value: { connectionId: 'abc' },
    });
  });
  it.each([
    ['not JSON', 'nope', 'invalid_reply'],
    ['not an object', '"x"', 'invalid_reply'],
    ['no id', '{"t":"reply","result":1}', 'invalid_reply'],
    ['neither result nor error', '{"t":"reply","id":"c1"}', 'invalid_reply'],
    ['both result and error', '{"t":"reply","id":"c1","result":1,"error":"e"}', 'invalid_reply'],
    ['an error code with a space', '{"t":"reply","id":"c1","error":"no handler"}', 'invalid_reply'],
    ['a detail that is not a string', '{"t":"reply","id":"c1","error":"e","detail":5}', 'invalid_reply'],
    [
      'a result over the limit',
      JSON.stringify({ t: 'reply', id: 'c1', result: 'x'.repeat(DEFAULT_COMMAND_LIMITS.maxReplyBytes) }),
      'reply_too_large',
    ],
    [
      'a frame far over the limit',
      'x'.repeat(DEFAULT_COMMAND_LIMITS.maxReplyBytes + 2000),
      'reply_too_large',
    ],
  ])('refuses %s', (_name, text, reason) => {
    expect(parseReply(text)).toMatchObject({ ok: false, reason });
  });
});
