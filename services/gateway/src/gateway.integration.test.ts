/**
 * The gateway against a real Kafka broker: every transport lands the same stamped events; every
 * class of bad input gets its typed reason and a dead-letter copy, and the connection or process
 * survives as docs/protocol.md says.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeClientBatch, encodeJsonFrame, type PageEvent, type RejectedFrame } from '@dwell/protocol';
import { pageView } from '../../../test/events.js';
import {
  ORIGIN,
  SECRET,
  TestClient,
  readEvents,
  readRejected,
  startTestGateway,
  token,
  type TestGateway,
  type TopicReader,
} from '../../../test/gateway-harness.js';
import { testBrokers } from '../../../test/support.js';

let gw: TestGateway;
let events: TopicReader<PageEvent>;
let rejected: TopicReader<RejectedFrame>;

beforeAll(async () => {
  gw = await startTestGateway(testBrokers(), { GATEWAY_RATE_EVENTS_PER_S: '20', GATEWAY_RATE_BURST: '40', GATEWAY_MAX_EVENTS_PER_FRAME: '30' });
  events = await readEvents(gw.kafka, gw.topic);
  rejected = await readRejected(gw.kafka, gw.rejectedTopic);
});

afterAll(async () => {
  await events?.close();
  await rejected?.close();
  await gw?.gateway.stop();
});

const deadLetter = (reason: string, user?: string): Promise<RejectedFrame> =>
  rejected
    .waitFor(`a dead letter with reason ${reason}`, (all) => all.some((r) => r.reason === reason && (user === undefined || r.user_id === user)))
    .then((all) => all.find((r) => r.reason === reason && (user === undefined || r.user_id === user)) as RejectedFrame);

const eventsOf = async (pageViewId: string, count: number): Promise<PageEvent[]> =>
  (await events.waitFor(`${count} events of ${pageViewId}`, (all) => all.filter((e) => e.event.page_view_id === pageViewId).length >= count))
    .filter((e) => e.event.page_view_id === pageViewId)
    .sort((a, b) => a.event.seq - b.event.seq);

describe('transports', () => {
  it('lands WebSocket JSON, WebSocket Avro, HTTP and beacon events decoded identically and stamped', async () => {
    const [json, avro, http, beacon] = [pageView(3), pageView(3), pageView(3), pageView(3)];
    const client = await TestClient.connect(gw.port, `token=${token('user-ws')}`);
    client.send(encodeJsonFrame(json));
    client.send(encodeClientBatch(avro));
    await client.acked(2);
    client.close();

    const post = await fetch(`http://127.0.0.1:${gw.port}/v1/events`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token('user-http')}`, 'content-type': 'application/json', origin: ORIGIN },
      body: encodeJsonFrame(http),
    });
    expect(post.status).toBe(200);
    expect(await post.json()).toEqual({ accepted: 3, rejected: [] });
    // sendBeacon cannot set headers: token in the query, text/plain body.
    const sent = await fetch(`http://127.0.0.1:${gw.port}/v1/events?token=${token('user-beacon')}`, {
      method: 'POST',
      headers: { 'content-type': 'text/plain;charset=UTF-8', origin: ORIGIN },
      body: encodeJsonFrame(beacon),
    });
    expect(sent.status).toBe(200);

    for (const [batch, transport, user] of [
      [json, 'ws_json', 'user-ws'],
      [avro, 'ws_avro', 'user-ws'],
      [http, 'http', 'user-http'],
      [beacon, 'beacon', 'user-beacon'],
    ] as const) {
      const stored = await eventsOf(batch[0]?.page_view_id ?? '', 3);
      expect(stored.map((e) => e.event)).toEqual(batch);
      for (const e of stored) {
        expect(e).toMatchObject({ gateway_id: 'gw-test', site_id: 'site-a', user_id: user, transport });
        expect(e.recv_ms).toBeGreaterThan(Date.now() - 60_000);
      }
    }
  });

  it('takes user_id and site_id from the token, never from the event body', async () => {
    const [event] = pageView(1);
    const client = await TestClient.connect(gw.port, `token=${token('real-user')}`);
    client.send(JSON.stringify({ events: [{ ...event, user_id: 'someone-else', site_id: 'other-site' }] }));
    await client.acked(1);
    client.close();
    const [stored] = await eventsOf(event?.page_view_id ?? '', 1);
    expect(stored?.user_id).toBe('real-user');
    expect(stored?.site_id).toBe('site-a');
  });
});

describe('bad input: typed reason, dead letter, survival', () => {
  it('malformed JSON: error frame, frame settled, connection stays usable', async () => {
    const client = await TestClient.connect(gw.port, `token=${token('user-malformed')}`);
    client.send('{"events": [');
    await client.acked(1);
    expect(client.errors(1)).toMatchObject([{ reason: 'malformed_json' }]);
    const letter = await deadLetter('malformed_json', 'user-malformed');
    expect(Buffer.from(letter.raw).toString()).toBe('{"events": [');
    expect(letter.transport).toBe('ws_json');
    const good = pageView(1);
    client.send(encodeJsonFrame(good));
    await client.acked(2);
    await eventsOf(good[0]?.page_view_id ?? '', 1);
    expect(client.closed).toBeUndefined();
    client.close();
  });

  it('wrong types: that event is refused with its index, the valid events of the frame go through', async () => {
    const batch = pageView(3);
    const bad = { ...batch[1], seq: '2' };
    const client = await TestClient.connect(gw.port, `token=${token('user-types')}`);
    client.send(JSON.stringify({ events: [batch[0], bad, batch[2]] }));
    await client.acked(1);
    expect(client.errors(1)).toMatchObject([{ reason: 'wrong_type', index: 1 }]);
    const stored = await eventsOf(batch[0]?.page_view_id ?? '', 2);
    expect(stored.map((e) => e.event.seq)).toEqual([1, 3]);
    const letter = await deadLetter('wrong_type', 'user-types');
    expect(JSON.parse(Buffer.from(letter.raw).toString())).toMatchObject({ seq: '2' });
    client.close();
  });

  it('oversize frame: frame_too_large, connection survives', async () => {
    const client = await TestClient.connect(gw.port, `token=${token('user-big')}`);
    client.send('x'.repeat(70_000));
    await client.acked(1);
    expect(client.errors(1)).toMatchObject([{ reason: 'frame_too_large' }]);
    await deadLetter('frame_too_large', 'user-big');
    client.send(encodeJsonFrame(pageView(1)));
    await client.acked(2);
    client.close();
  });

  it('too many events in one frame: too_many_events', async () => {
    const client = await TestClient.connect(gw.port, `token=${token('user-many')}`);
    client.send(encodeJsonFrame(pageView(31)));
    await client.acked(1);
    expect(client.errors(1)).toMatchObject([{ reason: 'too_many_events' }]);
    await deadLetter('too_many_events', 'user-many');
    client.close();
  });

  it('garbage binary frame: malformed_avro', async () => {
    const client = await TestClient.connect(gw.port, `token=${token('user-garbage')}`);
    client.send(Buffer.from([0xc3, 0x01, 1, 2, 3, 4, 5, 6, 7, 8, 0xff, 0xff]));
    client.send(Buffer.from('not avro at all'));
    await client.acked(2);
    expect(client.errors().map((e) => e.reason)).toEqual(['unknown_schema', 'malformed_avro']);
    await deadLetter('malformed_avro', 'user-garbage');
    await deadLetter('unknown_schema', 'user-garbage');
    client.close();
  });

  it('rate limit exceeded: rate_limited, events of that frame not stored', async () => {
    const client = await TestClient.connect(gw.port, `token=${token('user-rate')}`);
    const first = pageView(30);
    const second = pageView(30);
    client.send(encodeJsonFrame(first)); // within the burst of 40
    client.send(encodeJsonFrame(second)); // 60 > 40: refused
    await client.acked(2);
    expect(client.errors(2)).toMatchObject([{ reason: 'rate_limited' }]);
    expect(client.errors(1)).toEqual([]);
    await deadLetter('rate_limited', 'user-rate');
    await eventsOf(first[0]?.page_view_id ?? '', 30);
    expect(events.records.some((e) => e.event.page_view_id === second[0]?.page_view_id)).toBe(false);
    client.close();
  });

  it.each([
    ['missing token', '', 401, 'unauthorized_missing_token'],
    ['expired token', `token=${token('u', -10)}`, 401, 'unauthorized_expired_token'],
    ['forged token', `token=${token('u', 600, 'not-the-secret-0123456789')}`, 401, 'unauthorized_bad_signature'],
  ])('%s: upgrade refused with HTTP %s and a dead letter', async (_name, query, status, reason) => {
    const refusal = await TestClient.refusal(gw.port, query);
    expect(refusal.status).toBe(status);
    expect(JSON.parse(refusal.body)).toMatchObject({ reason });
    await deadLetter(reason);
  });

  it('wrong origin: upgrade refused with 403 forbidden_origin', async () => {
    const refusal = await TestClient.refusal(gw.port, `token=${token('user-origin')}`, { origin: 'https://evil.example' });
    expect(refusal.status).toBe(403);
    expect(JSON.parse(refusal.body)).toMatchObject({ reason: 'forbidden_origin' });
    const letter = await deadLetter('forbidden_origin', 'user-origin');
    expect(letter.origin).toBe('https://evil.example');
  });

  it('HTTP: a bad body gets 400 with the reason, a missing token 401', async () => {
    const bad = await fetch(`http://127.0.0.1:${gw.port}/v1/events?token=${token('user-http-bad')}`, { method: 'POST', body: 'nope' });
    expect(bad.status).toBe(400);
    expect(await bad.json()).toMatchObject({ reason: 'malformed_json' });
    const anonymous = await fetch(`http://127.0.0.1:${gw.port}/v1/events`, { method: 'POST', body: encodeJsonFrame(pageView(1)) });
    expect(anonymous.status).toBe(401);
    const big = await fetch(`http://127.0.0.1:${gw.port}/v1/events?token=${token('user-http-big')}`, { method: 'POST', body: 'x'.repeat(200_000) });
    expect(big.status).toBe(413);
    await deadLetter('frame_too_large', 'user-http-big');
  });

  it('the process survived all of it', async () => {
    const health = await fetch(`http://127.0.0.1:${gw.port}/readyz`);
    expect(health.status).toBe(200);
    const metrics = await (await fetch(`http://127.0.0.1:${gw.port}/metrics`)).text();
    expect(metrics).toMatch(/dwell_gateway_rejected_total\{reason="malformed_json"\} [1-9]/);
    // The event loop has run for a while: its delay is measured, and nothing waits for Kafka now.
    for (const quantile of ['0.5', '0.99', '1']) {
      expect(metrics).toMatch(new RegExp(`^dwell_gateway_event_loop_delay_ms\\{quantile="${quantile}"\\} \\d`, 'm'));
    }
    expect(Number(/^dwell_gateway_event_loop_delay_ms\{quantile="1"\} (\S+)$/m.exec(metrics)?.[1])).toBeGreaterThan(0);
    expect(metrics).toMatch(/^dwell_gateway_oldest_waiting_event_ms 0$/m);
    void SECRET;
  });
});
