/**
 * Commands end to end against a real Kafka broker and two gateway processes (`dwell gateway`, one
 * OS process each, as deployed): a backend anywhere reaches a user on either node, every outcome
 * arrives as docs/commands.md says, and clients can only answer their own commands.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { commandTopicSpecs, createCommandBus, type CommandBus, type CommandOutcome } from '@dwell/commands';
import { createKafka, createProducer, ensureTopics, type Producer } from '@dwell/kafka';
import { encodeCommand } from '@dwell/protocol';
import {
  CommandClient,
  SseClient,
  commandTopicNames,
  echo,
  postCommand,
  postReply,
  silent,
  startGatewayProcess,
  type CommandTopicNames,
  userToken,
  type GatewayProcess,
} from '../../../../test/commands-harness.js';
import { eventually, testBrokers, uniqueName } from '../../../../test/support.js';

let topics: CommandTopicNames;
let nodeA: GatewayProcess;
let nodeB: GatewayProcess;
let bus: CommandBus;
let producer: Producer;
const clients: Array<CommandClient | SseClient> = [];

beforeAll(async () => {
  topics = commandTopicNames();
  const kafka = createKafka({ brokers: testBrokers(), clientId: uniqueName('commands-test') });
  // Created once up front, so the two gateways do not race to create them.
  await ensureTopics(kafka, commandTopicSpecs(topics));
  // allSettled: when one node fails to start, the other is still stopped by afterAll.
  const [a, b] = await Promise.allSettled([
    startGatewayProcess('gw-a', testBrokers(), topics),
    startGatewayProcess('gw-b', testBrokers(), topics),
  ]);
  if (a.status === 'fulfilled') nodeA = a.value;
  if (b.status === 'fulfilled') nodeB = b.value;
  if (a.status === 'rejected') throw a.reason;
  if (b.status === 'rejected') throw b.reason;
  bus = await createCommandBus({ brokers: testBrokers(), topics, createTopics: false });
  producer = createProducer(kafka);
  await producer.connect();
});

afterAll(async () => {
  for (const client of clients) {
    if (client instanceof SseClient) client.close();
    else await client.close();
  }
  await bus?.close();
  await producer?.disconnect();
  await Promise.all([nodeA?.stop(), nodeB?.stop()]);
});

const connect = async (
  node: GatewayProcess,
  user: string,
  answer: CommandClient['answer'] = echo,
): Promise<CommandClient> => {
  const client = await CommandClient.connect(node, user, answer);
  clients.push(client);
  return client;
};

/** The presence view has seen the user (connecting and being visible to requesters are two steps). */
const online = (user: string): Promise<true> =>
  eventually(`${user} online`, async () => (bus.isOnline(user) ? true : undefined), 10_000, 10);

describe('reaching a user', () => {
  it('delivers a command to a user on node B and returns the reply, from the library anywhere and from HTTP on node A', async () => {
    const user = uniqueName('u');
    const client = await connect(nodeB, user);
    await online(user);

    const outcome = await bus.send(
      user,
      { name: 'show-banner', args: { text: 'hi', n: 1 } },
      { timeoutMs: 10_000 },
    );
    expect(outcome).toMatchObject({
      outcome: 'replied',
      payload: { echo: { text: 'hi', n: 1 }, name: 'show-banner' },
      gatewayId: 'gw-b',
      connectionId: client.connectionId,
    });
    const frame = client.commands(outcome.id)[0];
    expect(frame).toMatchObject({
      t: 'command',
      id: outcome.id,
      name: 'show-banner',
      args: { text: 'hi', n: 1 },
    });
    expect(Number(frame?.['deadline_ms'])).toBeGreaterThan(Date.now() - 10_000);

    const viaHttp = await postCommand(nodeA, {
      user_id: user,
      name: 'ping',
      args: [1, 2],
      timeout_ms: 10_000,
      id: uniqueName('http'),
    });
    expect(viaHttp.status).toBe(200);
    expect(viaHttp.body).toMatchObject({
      outcome: 'replied',
      payload: { echo: [1, 2], name: 'ping' },
      gateway_id: 'gw-b',
      connection_id: client.connectionId,
    });
  });

  it('answers offline within 1 s for a user connected nowhere, from the library and over HTTP', async () => {
    const user = uniqueName('nobody');
    let started = Date.now();
    const outcome = await bus.send(user, { name: 'ping' }, { timeoutMs: 10_000 });
    expect(outcome.outcome).toBe('offline');
    expect(Date.now() - started).toBeLessThan(1000);

    started = Date.now();
    const viaHttp = await postCommand(nodeA, { user_id: user, name: 'ping', timeout_ms: 10_000 });
    expect(viaHttp.body['outcome']).toBe('offline');
    expect(Date.now() - started).toBeLessThan(1000);
  });

  it('answers offline once the user has disconnected', async () => {
    const user = uniqueName('left');
    const client = await connect(nodeA, user);
    await online(user);
    await client.close();
    await eventually(`${user} offline`, async () => (bus.isOnline(user) ? undefined : true), 10_000, 10);
    expect((await bus.send(user, { name: 'ping' })).outcome).toBe('offline');
    expect(client.commands()).toEqual([]);
  });

  it('gives expired at the deadline when the client never answers, and cancels the command on the client', async () => {
    const user = uniqueName('mute');
    const client = await connect(nodeB, user, silent);
    await online(user);
    const timeoutMs = 1500;
    const started = Date.now();
    const outcome = await bus.send(user, { name: 'ping' }, { timeoutMs });
    const took = Date.now() - started;
    expect(outcome).toMatchObject({ outcome: 'expired', delivered: true });
    expect(took).toBeGreaterThanOrEqual(timeoutMs);
    expect(took).toBeLessThan(timeoutMs + 500);
    expect(client.commands(outcome.id)).toHaveLength(1);
    await eventually('cancel frame', async () =>
      client.frames.find((f) => f.t === 'cancel' && f['id'] === outcome.id && f['reason'] === 'expired'),
    );

    // A reply after the deadline is refused, never counted.
    const n = client.send(JSON.stringify({ t: 'reply', id: outcome.id, result: 'late' }));
    expect(await client.settled(n)).toMatchObject({ t: 'error', n, reason: 'reply_late' });
  });

  it('delivers to every connection of the user, takes the first reply and cancels the command on the others', async () => {
    const user = uniqueName('tabs');
    const first = await connect(nodeA, user, silent);
    const second = await connect(nodeB, user, silent);
    await online(user);
    const id = uniqueName('multi');
    const pending = bus.send(user, { name: 'ping' }, { id, timeoutMs: 10_000 });
    await Promise.all([first.command(id), second.command(id)]);

    const n = second.send(JSON.stringify({ t: 'reply', id, result: 'from B' }));
    expect(await pending).toMatchObject({
      outcome: 'replied',
      payload: 'from B',
      gatewayId: 'gw-b',
      connectionId: second.connectionId,
    });
    expect(await second.settled(n)).toMatchObject({ t: 'ack' });
    await eventually('cancel on the other tab', async () =>
      first.frames.find((f) => f.t === 'cancel' && f['id'] === id && f['reason'] === 'settled'),
    );
    const late = first.send(JSON.stringify({ t: 'reply', id, result: 'from A' }));
    expect(await first.settled(late)).toMatchObject({ t: 'error', reason: 'already_settled' });
  });

  it('turns a client error into rejected: client_refused', async () => {
    const user = uniqueName('refuser');
    await connect(nodeA, user, () => ({ error: 'no_handler', detail: 'nothing handles reboot' }));
    await online(user);
    expect(await bus.send(user, { name: 'reboot' })).toMatchObject({
      outcome: 'rejected',
      reason: 'client_refused',
      detail: 'no_handler: nothing handles reboot',
      gatewayId: 'gw-a',
    });
  });
});

describe('idempotency', () => {
  it('delivers a duplicated id once and gives every copy the same outcome', async () => {
    const user = uniqueName('dup');
    let answered = 0;
    const client = await connect(nodeB, user, (command) => {
      answered += 1;
      return { result: { n: answered, args: command['args'] } };
    });
    await online(user);
    const id = uniqueName('cmd');

    // The same id from this process's bus, from the HTTP API on node A (another requester), and a
    // raw second copy of the record on the topic (what a producer retry leaves behind).
    const first = bus.send(user, { name: 'ping', args: 'once' }, { id, timeoutMs: 10_000 });
    const again = bus.send(user, { name: 'ping', args: 'once' }, { id, timeoutMs: 10_000 });
    const viaHttp = postCommand(nodeA, { user_id: user, name: 'ping', args: 'once', id, timeout_ms: 10_000 });
    await producer.send({
      topic: topics.commands,
      acks: -1,
      messages: [
        {
          key: user,
          value: encodeCommand({
            id,
            site_id: null,
            user_id: user,
            name: 'ping',
            args: '"once"',
            sent_ms: Date.now(),
            deadline_ms: Date.now() + 10_000,
            reply_to: bus.requesterId,
          }),
        },
      ],
    });
    const outcomes: CommandOutcome[] = await Promise.all([first, again]);
    const http = await viaHttp;
    expect(outcomes[0]).toMatchObject({ outcome: 'replied', payload: { n: 1, args: 'once' } });
    expect(outcomes[1]).toBe(outcomes[0]);
    expect(http.body).toMatchObject({
      outcome: 'replied',
      id,
      payload: { n: 1, args: 'once' },
      connection_id: client.connectionId,
    });

    // A resend after the outcome: the same outcome, no new delivery.
    expect(await bus.send(user, { name: 'ping', args: 'once' }, { id })).toBe(outcomes[0]);

    // Commands of one user are read in order: once a later command arrived, any second copy of
    // the first would have arrived before it.
    const later = await bus.send(user, { name: 'sentinel' });
    expect(later.outcome).toBe('replied');
    expect(client.commands(id)).toHaveLength(1);
    expect(answered).toBe(2);
  });
});

describe('moving between nodes', () => {
  it('hands a command in flight to the user on the other node after a reconnect', async () => {
    const user = uniqueName('mover');
    const onA = await connect(nodeA, user, silent);
    await online(user);
    const id = uniqueName('cmd');
    const pending = bus.send(user, { name: 'sync', args: { v: 7 } }, { id, timeoutMs: 15_000 });
    await onA.command(id);

    // The connection drops before the client answered; the user comes back on node B.
    await onA.close();
    const onB = await connect(nodeB, user, echo);
    const outcome = await pending;
    expect(outcome).toMatchObject({
      outcome: 'replied',
      payload: { echo: { v: 7 }, name: 'sync' },
      gatewayId: 'gw-b',
      connectionId: onB.connectionId,
    });
    expect(onB.commands(id)).toHaveLength(1);
  });

  it('delivers a command sent while the user is between connections when it reconnects on the other node', async () => {
    const user = uniqueName('gap');
    const onA = await connect(nodeA, user, silent);
    await online(user);
    await onA.close();
    // Sent before presence caught up with the disconnect: it is stored, and waits for the user.
    const id = uniqueName('cmd');
    const pending = bus.send(user, { name: 'sync' }, { id, timeoutMs: 15_000 });
    const onB = await connect(nodeB, user, echo);
    const outcome = await pending;
    // Either the bus saw the disconnect first (offline, never stored, never delivered) or the
    // command was stored and reached the user on B: never both, never neither.
    if (outcome.outcome === 'offline') expect(onB.commands(id)).toEqual([]);
    else expect(outcome).toMatchObject({ outcome: 'replied', gatewayId: 'gw-b' });
  });
});

describe('the fallback transport', () => {
  it('delivers over SSE and takes the reply over HTTP, on the node holding the stream or forwarded from another', async () => {
    const user = uniqueName('sse');
    const stream = await SseClient.open(nodeB, user);
    clients.push(stream);
    await online(user);

    // Reply posted to node A, which does not hold the stream: forwarded through Kafka to node B.
    const id1 = uniqueName('cmd');
    const first = bus.send(user, { name: 'ping', args: 1 }, { id: id1, timeoutMs: 10_000 });
    expect(await stream.command(id1)).toMatchObject({ t: 'command', id: id1, name: 'ping', args: 1 });
    const forwarded = await postReply(nodeA, user, {
      connection_id: stream.connectionId,
      id: id1,
      result: { over: 'sse' },
    });
    expect(forwarded).toEqual({ status: 202, body: { status: 'forwarded' } });
    expect(await first).toMatchObject({
      outcome: 'replied',
      payload: { over: 'sse' },
      gatewayId: 'gw-b',
      connectionId: stream.connectionId,
    });

    // Reply posted to node B itself: taken at once.
    const id2 = uniqueName('cmd');
    const second = postCommand(nodeA, { user_id: user, name: 'ping', args: 2, id: id2 });
    await stream.command(id2);
    expect(
      await postReply(nodeB, user, { connection_id: stream.connectionId, id: id2, result: 'direct' }),
    ).toEqual({ status: 200, body: { status: 'accepted' } });
    expect((await second).body).toMatchObject({
      outcome: 'replied',
      payload: 'direct',
      connection_id: stream.connectionId,
    });
    // A second answer to the same command: the first won.
    expect(
      (await postReply(nodeB, user, { connection_id: stream.connectionId, id: id2, result: 'again' })).body,
    ).toMatchObject({ reason: 'already_settled' });
  });
});

describe('dwell command', () => {
  const cli = fileURLToPath(new URL('../../../cli/bin/dwell.js', import.meta.url));
  const run = (args: string[]): Promise<{ code: number | null; stdout: string }> =>
    new Promise((resolve) => {
      const child = spawn(process.execPath, [cli, 'command', ...args], {
        env: {
          ...process.env,
          KAFKA_BROKERS: testBrokers().join(','),
          DWELL_COMMANDS_TOPIC: topics.commands,
          DWELL_REPLIES_TOPIC: topics.replies,
          DWELL_PRESENCE_TOPIC: topics.presence,
          LOG_LEVEL: 'warn',
        },
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      let stdout = '';
      child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
      child.once('exit', (code) => resolve({ code, stdout }));
    });

  it('sends a command from the command line and prints the outcome; the exit code tells which', async () => {
    const user = uniqueName('cli');
    const client = await connect(nodeB, user);
    await online(user);
    const replied = await run([user, 'show-banner', '--args', '{"text":"hello"}', '--timeout', '5000']);
    expect(replied.code).toBe(0);
    expect(JSON.parse(replied.stdout)).toMatchObject({
      outcome: 'replied',
      payload: { echo: { text: 'hello' }, name: 'show-banner' },
      gateway_id: 'gw-b',
      connection_id: client.connectionId,
    });

    const offline = await run([uniqueName('nobody'), 'ping']);
    expect(offline.code).toBe(4);
    expect(JSON.parse(offline.stdout)).toMatchObject({ outcome: 'offline' });

    expect((await run([user, 'ping', '--args', '{not json'])).code).toBe(2);
  });
});

describe('security', () => {
  it('lets only service credentials send commands', async () => {
    const missing = await fetch(`${nodeA.url}/v1/commands`, {
      method: 'POST',
      body: JSON.stringify({ user_id: 'u', name: 'ping' }),
    });
    expect(missing.status).toBe(401);
    expect(await missing.json()).toMatchObject({ reason: 'unauthorized_service' });
    const wrong = await postCommand(nodeA, { user_id: 'u', name: 'ping' }, `${'x'.repeat(40)}`);
    expect(wrong).toMatchObject({ status: 401, body: { reason: 'unauthorized_service' } });
    // A user's connection token is not a service credential either.
    const asUser = await postCommand(nodeA, { user_id: 'u', name: 'ping' }, userToken('u'));
    expect(asUser.status).toBe(401);
  });

  it('refuses malformed and oversized commands with typed reasons', async () => {
    expect(await postCommand(nodeA, { user_id: 'u', name: 'no spaces allowed' })).toMatchObject({
      status: 400,
      body: { reason: 'invalid_command' },
    });
    expect(await postCommand(nodeA, { user_id: 'u', name: 'ping', timeout_ms: 3_600_000 })).toMatchObject({
      status: 400,
      body: { reason: 'invalid_command' },
    });
    expect(await postCommand(nodeA, { user_id: 'u', name: 'ping', args: 'x'.repeat(20_000) })).toMatchObject({
      status: 413,
      body: { reason: 'command_too_large' },
    });
    expect(await bus.send('u', { name: 'ping', args: 'x'.repeat(20_000) })).toMatchObject({
      outcome: 'rejected',
      reason: 'command_too_large',
    });
  });

  it('accepts replies only for commands delivered to that connection of that user', async () => {
    const victim = uniqueName('victim');
    const attacker = uniqueName('attacker');
    const target = await connect(nodeB, victim, silent);
    const mallory = await connect(nodeB, attacker, silent);
    const malloryStream = await SseClient.open(nodeB, attacker);
    clients.push(malloryStream);
    await online(victim);
    const id = uniqueName('cmd');
    const pending = bus.send(victim, { name: 'ping' }, { id, timeoutMs: 10_000 });
    await target.command(id);

    // Another user's WebSocket names the command: it was not delivered there.
    const n = mallory.send(JSON.stringify({ t: 'reply', id, result: 'forged' }));
    expect(await mallory.settled(n)).toMatchObject({ t: 'error', reason: 'unknown_command' });
    // Over HTTP with the victim's connection id but the attacker's token: refused.
    expect(
      await postReply(nodeB, attacker, { connection_id: target.connectionId, id, result: 'forged' }),
    ).toMatchObject({ status: 404, body: { reason: 'unknown_command' } });
    // Forwarded from another node: the owner checks it and refuses it the same way.
    expect(
      (await postReply(nodeA, attacker, { connection_id: malloryStream.connectionId, id, result: 'forged' }))
        .status,
    ).toBe(202);
    await eventually('refusal on the attacker stream', async () =>
      malloryStream.frames.find(
        (f) => f.t === 'error' && f['id'] === id && f['reason'] === 'unknown_command',
      ),
    );
    // A client cannot send commands, to itself or anyone.
    const m = mallory.send(JSON.stringify({ t: 'command', id: 'x', name: 'ping', user_id: victim }));
    expect(await mallory.settled(m)).toMatchObject({ t: 'error', reason: 'invalid_reply' });

    const good = target.send(JSON.stringify({ t: 'reply', id, result: 'genuine' }));
    expect(await target.settled(good)).toMatchObject({ t: 'ack' });
    expect(await pending).toMatchObject({
      outcome: 'replied',
      payload: 'genuine',
      connectionId: target.connectionId,
    });
  });

  it('refuses oversized and malformed replies with typed reasons', async () => {
    const user = uniqueName('sloppy');
    const client = await connect(nodeA, user, silent);
    await online(user);
    const id = uniqueName('cmd');
    const pending = bus.send(user, { name: 'ping' }, { id, timeoutMs: 10_000 });
    await client.command(id);
    const big = client.send(JSON.stringify({ t: 'reply', id, result: 'x'.repeat(20_000) }));
    expect(await client.settled(big)).toMatchObject({ t: 'error', reason: 'reply_too_large' });
    const both = client.send(JSON.stringify({ t: 'reply', id, result: 1, error: 'oops' }));
    expect(await client.settled(both)).toMatchObject({ t: 'error', reason: 'invalid_reply' });
    const ok = client.send(JSON.stringify({ t: 'reply', id, result: 'fine' }));
    expect(await client.settled(ok)).toMatchObject({ t: 'ack' });
    expect(await pending).toMatchObject({ outcome: 'replied', payload: 'fine' });
  });
});

describe('presence', () => {
  it('takes the users of a gateway that died without a word offline when its lease runs out', async () => {
    const nodeC = await startGatewayProcess('gw-c', testBrokers(), topics, {
      GATEWAY_PRESENCE_HEARTBEAT_MS: '300',
    });
    try {
      const user = uniqueName('orphan');
      await CommandClient.connect(nodeC, user, silent);
      await online(user);
      await nodeC.crash();
      // No tombstone was written: only the lease (3 heartbeats) ends the user's presence.
      await eventually(
        `${user} offline after the lease`,
        async () => (bus.isOnline(user) ? undefined : true),
        15_000,
        50,
      );
      expect((await bus.send(user, { name: 'ping' })).outcome).toBe('offline');
    } finally {
      await nodeC.stop();
    }
  });
});
