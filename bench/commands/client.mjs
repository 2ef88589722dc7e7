#!/usr/bin/env node
// A load client process for the commands benchmark, driven over IPC by run.mjs: it holds many
// authenticated WebSocket connections (one user each), answers every command at once, and sends
// event traffic at a fixed rate across its connections, as pages do.
import { randomBytes } from 'node:crypto';
import WebSocket from 'ws';
import { mintToken } from '@dwell/gateway';

const conns = [];
const counters = {
  answered: 0,
  eventsAcked: 0,
  errors: 0,
  errorReasons: {},
  nacks: 0,
  closed: 0,
  framesSent: 0,
};
let eventTimer;
const reply = (message) => process.send?.(message);
process.on('disconnect', () => process.exit(0));

process.on('message', (message) => {
  const handler = { connect, events, stats, stop }[message.op];
  if (handler === undefined) return reply({ id: message.id, error: `unknown op ${message.op}` });
  Promise.resolve(handler(message)).then(
    (result) => reply({ id: message.id, ...result }),
    (error) => reply({ id: message.id, error: String(error?.stack ?? error) }),
  );
});

function pageViewId() {
  const h = randomBytes(16).toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-7${h.slice(13, 16)}-8${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

function onFrame(conn, data) {
  const text = String(data);
  const frame = JSON.parse(text);
  if (frame.t === 'ack') {
    // Acks are cumulative and cover reply frames too: count the event frames they settle.
    while (conn.eventFrames.length > 0 && conn.eventFrames[0] <= frame.n) {
      conn.eventFrames.shift();
      counters.eventsAcked += conn.eventsPerFrame;
    }
  } else if (frame.t === 'command') {
    // The wall clock (sub-ms) at the page, so run.mjs can split the round trip in its two legs.
    const at = performance.timeOrigin + performance.now();
    conn.ws.send(`{"t":"reply","id":${JSON.stringify(frame.id)},"result":{"ok":true,"at":${at}}}`);
    conn.sent += 1;
    counters.answered += 1;
  } else if (frame.t === 'hello') {
    conn.onHello?.();
  } else if (frame.t === 'error') {
    counters.errors += 1;
    counters.errorReasons[frame.reason] = (counters.errorReasons[frame.reason] ?? 0) + 1;
  } else if (frame.t === 'nack') {
    counters.nacks += 1;
  }
}

async function connect({ url, count, prefix, localAddress, site, secret, concurrency = 100 }) {
  const exp = Math.floor(Date.now() / 1000) + 24 * 3600;
  let next = 0;
  let failed = 0;
  const one = () =>
    new Promise((resolve) => {
      const index = next++;
      const token = mintToken({ site_id: site, user_id: `${prefix}-${index}`, exp }, secret);
      const ws = new WebSocket(`${url}?token=${token}`, { localAddress, perMessageDeflate: false });
      const conn = {
        ws,
        pv: pageViewId(),
        seq: 0,
        sent: 0,
        eventFrames: [],
        eventsPerFrame: 0,
        onHello: undefined,
      };
      let done = false;
      const finish = (ok) => {
        if (done) return;
        done = true;
        if (ok) conns.push(conn);
        else failed += 1;
        resolve();
      };
      conn.onHello = () => finish(true);
      ws.on('message', (data) => onFrame(conn, data));
      ws.on('error', () => finish(false));
      ws.on('close', () => {
        counters.closed += 1;
        finish(false);
      });
    });
  const workers = Array.from({ length: concurrency }, async () => {
    while (next < count) await one();
  });
  await Promise.all(workers);
  return { opened: conns.length, failed };
}

/** Sends `framesPerSecond` frames of `eventsPerFrame` events, round-robin over the connections. */
function events({ framesPerSecond, eventsPerFrame = 10 }) {
  clearInterval(eventTimer);
  if (framesPerSecond === 0 || conns.length === 0) return {};
  const tickMs = 10;
  let owed = 0;
  let cursor = 0;
  eventTimer = setInterval(() => {
    owed += (framesPerSecond * tickMs) / 1000;
    while (owed >= 1) {
      owed -= 1;
      const conn = conns[cursor++ % conns.length];
      if (conn.ws.readyState !== WebSocket.OPEN) continue;
      conn.ws.send(frame(conn, eventsPerFrame));
      conn.sent += 1;
      conn.eventFrames.push(conn.sent);
      conn.eventsPerFrame = eventsPerFrame;
      counters.framesSent += 1;
    }
  }, tickMs);
  return {};
}

function frame(conn, count) {
  const wall = Date.now();
  const events = [];
  for (let i = 0; i < count; i++) {
    const seq = ++conn.seq;
    events.push(
      `{"page_view_id":"${conn.pv}","seq":${seq},"kind":"${seq === 1 ? 'render' : 'tick'}","t_mono_ms":${seq * 1000},"t_wall_ms":${wall},` +
        `"page":{"visible":true,"focused":true,"foreground":true},"impressions":[{"impression_id":"${conn.pv}-1","ad_id":"ad-1",` +
        `"campaign_id":"campaign-1","width":300,"height":250,"media":"display","visible_px":75000,"total_px":75000,"playing":false,"reasons":[]}]}`,
    );
  }
  return `{"events":[${events.join(',')}]}`;
}

function stats() {
  return { ...counters, open: conns.filter((c) => c.ws.readyState === WebSocket.OPEN).length };
}

async function stop() {
  clearInterval(eventTimer);
  for (const conn of conns) conn.ws.terminate();
  setTimeout(() => process.exit(0), 50);
  return {};
}
