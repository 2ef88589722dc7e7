#!/usr/bin/env node
// A load client process for the gateway benchmark, driven over IPC by run.mjs. It opens many
// authenticated WebSocket connections (bound to one local address), then either stays idle,
// keeps a window of frames in flight per connection (max throughput), or sends at a fixed rate
// (latency), counting acks, nacks and errors and timing send → cumulative ack per frame.
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import WebSocket from 'ws';
import { mintToken } from '@dwell/gateway';

const USER_AGENT =
  'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36';
const conns = [];
let mode = 'idle';
let eventsPerFrame = 10;
let windowFrames = 4;
let collectLatency = false;
let latencies = [];
let rateTimer;

const counters = {
  sentFrames: 0,
  ackedFrames: 0,
  ackedEvents: 0,
  nackedFrames: 0,
  errorFrames: 0,
  closed: 0,
  closeCodes: {},
};

// This process's own event-loop lateness: an ack it reads late counts in the measured latency.
// Node records each sample as the whole interval; the interval is subtracted below.
const LOOP_RESOLUTION_MS = 2;
const loopDelay = monitorEventLoopDelay({ resolution: LOOP_RESOLUTION_MS });
loopDelay.enable();
const lateMs = (ns) => Math.max(0, ns / 1e6 - LOOP_RESOLUTION_MS);

const reply = (message) => process.send?.(message);
process.on('disconnect', () => process.exit(0));

process.on('message', (message) => {
  const handle = {
    connect,
    load,
    snapshot,
    stop,
    status,
    close,
  }[message.op];
  if (handle === undefined) return reply({ op: 'error', id: message.id, error: `unknown op ${message.op}` });
  Promise.resolve(handle(message)).then(
    (result) => reply({ op: 'done', id: message.id, ...result }),
    (error) => reply({ op: 'error', id: message.id, error: String(error?.stack ?? error) }),
  );
});

function uuidLike() {
  const h = randomBytes(16).toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-7${h.slice(13, 16)}-8${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

/** The JSON text of the connection's next frame: `eventsPerFrame` events of its page view. */
function nextFrame(conn) {
  let text = '{"events":[';
  const wall = Date.now();
  for (let i = 0; i < eventsPerFrame; i++) {
    const seq = ++conn.seq;
    if (i > 0) text += ',';
    text +=
      `{"page_view_id":"${conn.pv}","seq":${seq},"kind":"${seq === 1 ? 'render' : 'tick'}","t_mono_ms":${seq * 1000},"t_wall_ms":${wall},` +
      `"page":{"visible":true,"focused":true,"foreground":true},"impressions":[{"impression_id":"${conn.pv}-1","ad_id":"ad-1",` +
      `"campaign_id":"campaign-1","width":300,"height":250,"media":"display","visible_px":75000,"total_px":75000,"playing":false,"reasons":[]}]}`;
  }
  return `${text}]}`;
}

function sendFrame(conn) {
  if (!conn.open) return false;
  conn.ws.send(nextFrame(conn));
  conn.sent += 1;
  conn.sentAt.push(performance.now());
  counters.sentFrames += 1;
  return true;
}

function onServerFrame(conn, data) {
  const frame = JSON.parse(String(data));
  switch (frame.t) {
    case 'hello':
      conn.hello = true;
      conn.onHello?.();
      return;
    case 'ack': {
      const now = performance.now();
      while (conn.acked < frame.n) {
        conn.acked += 1;
        const sentAt = conn.sentAt[conn.sentHead];
        conn.sentAt[conn.sentHead++] = undefined;
        if (conn.sentHead > 1024) {
          conn.sentAt = conn.sentAt.slice(conn.sentHead);
          conn.sentHead = 0;
        }
        if (conn.nacked.delete(conn.acked)) continue;
        counters.ackedFrames += 1;
        counters.ackedEvents += eventsPerFrame;
        if (collectLatency && sentAt !== undefined) latencies.push(now - sentAt);
      }
      if (mode === 'max') while (conn.sent - conn.acked < windowFrames && sendFrame(conn));
      return;
    }
    case 'nack':
      counters.nackedFrames += 1;
      conn.nacked.add(frame.n);
      return;
    case 'error':
      counters.errorFrames += 1;
      if (counters.errorFrames <= 3)
        process.stderr.write(`load client: error frame ${JSON.stringify(frame)}\n`);
      return;
    default:
  }
}

/** Opens `count` connections, at most `concurrency` handshakes at a time; resolves when each has its hello or failed. */
async function connect({
  url,
  count,
  localAddress,
  concurrency = 64,
  origin,
  site,
  secret,
  userPrefix = 'u',
  timeoutMs = 60_000,
  lean = false,
}) {
  const started = performance.now();
  const failures = {};
  let opened = 0;
  let next = 0;
  const exp = Math.floor(Date.now() / 1000) + 24 * 3600;
  const target = new URL(url);
  // A local port some other process holds (a server on 0.0.0.0) fails with EADDRINUSE: skip it.
  const one = async () => {
    const index = next++;
    const token = mintToken({ site_id: site, user_id: `${userPrefix}-${index}`, exp }, secret);
    for (let attempt = 1; ; attempt++) {
      const failure = await connectOne(token);
      if (failure === undefined) return;
      if (failure !== 'EADDRINUSE' || attempt >= 10) {
        failures[failure] = (failures[failure] ?? 0) + 1;
        return;
      }
    }
  };
  /** Resolves undefined once the hello arrived, else with why it failed. */
  const connectOne = (token) =>
    new Promise((resolve) => {
      if (lean) {
        leanConnect(target, token, origin, localAddress, nextLocalPort(), timeoutMs).then(
          (conn) => {
            opened += 1;
            conns.push(conn);
            resolve(undefined);
          },
          (error) => resolve(error.message),
        );
        return;
      }
      const ws = new WebSocket(`${url}?token=${token}`, {
        // A browser's User-Agent: the gateway stamps it on every event it stores.
        headers: { 'user-agent': USER_AGENT, ...(origin ? { origin } : {}) },
        localAddress,
        localPort: nextLocalPort(),
        perMessageDeflate: false,
        handshakeTimeout: timeoutMs,
      });
      const conn = {
        ws,
        pv: uuidLike(),
        seq: 0,
        sent: 0,
        acked: 0,
        sentAt: [],
        sentHead: 0,
        nacked: new Set(),
        open: false,
        hello: false,
      };
      let settled = false;
      const finish = (ok, why) => {
        if (settled) return;
        settled = true;
        if (ok) {
          opened += 1;
          conn.open = true;
          conns.push(conn);
        } else {
          ws.terminate();
        }
        resolve(ok ? undefined : why);
      };
      conn.onHello = () => finish(true);
      ws.on('message', (data) => onServerFrame(conn, data));
      ws.on('unexpected-response', (_req, res) => finish(false, `http ${res.statusCode}`));
      ws.on('error', (error) => finish(false, error.code ?? error.message));
      ws.on('close', (code) => {
        if (conn.open) {
          conn.open = false;
          counters.closed += 1;
          counters.closeCodes[code] = (counters.closeCodes[code] ?? 0) + 1;
        }
        finish(false, `closed ${code} before hello`);
      });
    });
  const lanes = Array.from({ length: Math.min(concurrency, count) }, async () => {
    while (next < count) await one();
  });
  await Promise.all(lanes);
  return { opened, failures, ms: performance.now() - started };
}

/**
 * Local ports are assigned here, one after another, below the kernel's ephemeral range
 * (32768-60999): with bind(address, 0) the kernel searches for a free port on every connect, which
 * grows with the ports already in use and cost over 1 ms of CPU per connection at 12,500 sockets
 * per address. Each client process has its own local address, so its ports are its own.
 */
let localPortCursor = 2000;
function nextLocalPort() {
  if (localPortCursor >= 32_000) throw new Error('out of local ports for this address');
  return localPortCursor++;
}

/**
 * A lean WebSocket client for idle connections: a bare TCP socket, the HTTP upgrade written by
 * hand, server frames parsed just enough to see the hello, answer pings and notice a close.
 * `ws` spends 0.3-1.8 ms of CPU per connection (and ~20 KB of heap), which made opening 50,000
 * connections from the same two cores take minutes; this needs a fraction of that.
 */
function leanConnect(target, token, origin, localAddress, localPort, timeoutMs) {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: target.hostname, port: Number(target.port), localAddress, localPort });
    socket.setNoDelay(true);
    const conn = { lean: true, socket, open: false, hello: false };
    let buffer = Buffer.alloc(0);
    let upgraded = false;
    let settled = false;
    const fail = (why) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      reject(new Error(why));
    };
    const timer = setTimeout(() => fail('timeout'), timeoutMs);
    socket.once('connect', () => {
      socket.write(
        `GET ${target.pathname}?token=${token} HTTP/1.1\r\nHost: ${target.host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
          `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n` +
          `User-Agent: ${USER_AGENT}\r\n${origin ? `Origin: ${origin}\r\n` : ''}\r\n`,
      );
    });
    socket.on('error', (error) => fail(error.code ?? error.message));
    socket.on('close', () => {
      if (conn.open) {
        conn.open = false;
        counters.closed += 1;
        counters.closeCodes[conn.closeCode ?? 1006] = (counters.closeCodes[conn.closeCode ?? 1006] ?? 0) + 1;
      }
      fail('closed before hello');
    });
    socket.on('data', (chunk) => {
      buffer = buffer.length === 0 ? chunk : Buffer.concat([buffer, chunk]);
      if (!upgraded) {
        const end = buffer.indexOf('\r\n\r\n');
        if (end === -1) return;
        const head = buffer.subarray(0, end).toString('latin1');
        if (!head.startsWith('HTTP/1.1 101')) return fail(`http ${head.slice(9, 12)}`);
        upgraded = true;
        buffer = buffer.subarray(end + 4);
      }
      // Server frames are unmasked; payloads here are small (hello, pings, close).
      while (buffer.length >= 2) {
        const opcode = buffer[0] & 0x0f;
        let length = buffer[1] & 0x7f;
        let offset = 2;
        if (length === 126) {
          if (buffer.length < 4) return;
          length = buffer.readUInt16BE(2);
          offset = 4;
        } else if (length === 127) {
          if (buffer.length < 10) return;
          length = Number(buffer.readBigUInt64BE(2));
          offset = 10;
        }
        if (buffer.length < offset + length) return;
        const payload = buffer.subarray(offset, offset + length);
        buffer = buffer.subarray(offset + length);
        if (opcode === 0x1 && !conn.hello) {
          conn.hello = true;
          conn.open = true;
          settled = true;
          clearTimeout(timer);
          resolve(conn);
        } else if (opcode === 0x9) {
          socket.write(maskedFrame(0xa, payload));
        } else if (opcode === 0x8) {
          conn.closeCode = payload.length >= 2 ? payload.readUInt16BE(0) : 1005;
          socket.end(maskedFrame(0x8, payload.subarray(0, 2)));
        }
      }
    });
  });
}

/** A client → server frame (FIN set, masked) with a payload below 126 bytes. */
function maskedFrame(opcode, payload) {
  const mask = randomBytes(4);
  const frame = Buffer.alloc(6 + payload.length);
  frame[0] = 0x80 | opcode;
  frame[1] = 0x80 | payload.length;
  mask.copy(frame, 2);
  for (let i = 0; i < payload.length; i++) frame[6 + i] = payload[i] ^ mask[i % 4];
  return frame;
}

function load({ mode: newMode, window = 4, events = 10, eventsPerSecond, latency = false }) {
  mode = newMode;
  eventsPerFrame = events;
  windowFrames = window;
  collectLatency = latency;
  latencies = [];
  clearTimeout(rateTimer);
  if (mode === 'max') {
    for (const conn of conns) while (conn.sent - conn.acked < windowFrames && sendFrame(conn));
  } else if (mode === 'rate') {
    const framesPerSecond = eventsPerSecond / events;
    const t0 = performance.now();
    let sent = 0;
    let cursor = 0;
    const tick = () => {
      const due = Math.floor(((performance.now() - t0) / 1000) * framesPerSecond) - sent;
      for (let i = 0; i < due && conns.length > 0; i++) {
        // Round robin over the open connections.
        for (let tries = 0; tries < conns.length; tries++) {
          const conn = conns[cursor++ % conns.length];
          if (sendFrame(conn)) break;
        }
        sent += 1;
      }
      rateTimer = setTimeout(tick, 1);
    };
    tick();
  }
  return {};
}

function snapshot({ resetLatency = false, withLatency = false }) {
  const out = {
    ...counters,
    closeCodes: { ...counters.closeCodes },
    open: conns.filter((c) => c.open).length,
  };
  if (withLatency) out.latencies = latencies;
  if (resetLatency) latencies = [];
  // Event-loop delay since the previous snapshot that reset it.
  out.loopDelayP99Ms = loopDelay.count > 0 ? lateMs(loopDelay.percentile(99)) : 0;
  out.loopDelayMaxMs = loopDelay.count > 0 ? lateMs(loopDelay.max) : 0;
  if (resetLatency || withLatency) loopDelay.reset();
  return out;
}

async function stop({ waitMs = 10_000 }) {
  mode = 'idle';
  clearTimeout(rateTimer);
  const deadline = performance.now() + waitMs;
  const outstanding = () => conns.reduce((sum, c) => sum + (c.open ? c.sent - c.acked : 0), 0);
  while (outstanding() > 0 && performance.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  return { outstanding: outstanding() };
}

function status() {
  return {
    open: conns.filter((c) => c.open).length,
    total: conns.length,
    closed: counters.closed,
    closeCodes: counters.closeCodes,
  };
}

async function close() {
  for (const conn of conns) {
    conn.open = false;
    if (conn.lean) conn.socket.destroy();
    else conn.ws.terminate();
  }
  return {};
}
