/**
 * Command tests: gateway processes started with `dwell gateway` (each its own OS process, as in
 * production), clients that record command frames and answer them, an SSE client.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import { freePort } from '../packages/kafka/src/index.js';
import { mintToken } from '../services/gateway/src/index.js';
import { eventually, uniqueName } from './support.js';

export const SITE = 'site-cmd';
export const SECRET = 'commands-test-secret-0123456789';
export const SERVICE_TOKEN = 'commands-test-service-token-0123456789abcdef';

const cli = fileURLToPath(new URL('../services/cli/bin/dwell.js', import.meta.url));

export interface CommandTopicNames {
  readonly commands: string;
  readonly replies: string;
  readonly presence: string;
}

export function commandTopicNames(): CommandTopicNames {
  return {
    commands: uniqueName('commands'),
    replies: uniqueName('replies'),
    presence: uniqueName('presence'),
  };
}

export interface GatewayProcess {
  readonly id: string;
  readonly port: number;
  readonly url: string;
  readonly child: ChildProcess;
  /** SIGTERM and wait; SIGKILL if it does not go. */
  stop(): Promise<void>;
  /** kill -9: no drain, no goodbye on the presence topic. */
  crash(): Promise<void>;
}

/** Starts `dwell gateway` (one worker) on a free port and waits until it is ready. */
export async function startGatewayProcess(
  id: string,
  brokers: readonly string[],
  topics: CommandTopicNames,
  env: Record<string, string> = {},
): Promise<GatewayProcess> {
  const port = await freePort();
  // Started with the gateway's node flag, so that it serves from this very process (no worker
  // beneath it): `crash()` then kills the gateway itself.
  const child = spawn(process.execPath, ['--initial-old-space-size=256', cli, 'gateway'], {
    env: {
      ...process.env,
      KAFKA_BROKERS: brokers.join(','),
      DWELL_EVENTS_TOPIC: uniqueName('events'),
      DWELL_REJECTED_TOPIC: uniqueName('rejected'),
      DWELL_COMMANDS_TOPIC: topics.commands,
      DWELL_REPLIES_TOPIC: topics.replies,
      DWELL_PRESENCE_TOPIC: topics.presence,
      DWELL_SITES: JSON.stringify({ [SITE]: { secret: SECRET, origins: ['*'] } }),
      DWELL_SERVICE_TOKENS: JSON.stringify({ tests: SERVICE_TOKEN }),
      GATEWAY_PORT: String(port),
      GATEWAY_WORKERS: '1',
      GATEWAY_ID: id,
      LOG_LEVEL: 'warn',
      ...env,
    },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const url = `http://127.0.0.1:${port}`;
  await eventually(
    `gateway ${id} ready`,
    async () => {
      if (child.exitCode !== null) throw new Error(`gateway ${id} exited with ${child.exitCode}`);
      const response = await fetch(`${url}/readyz`);
      return response.status === 200 ? true : undefined;
    },
    60_000,
    200,
  );
  const stop = async (signal: NodeJS.Signals): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill(signal);
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    await exited;
    clearTimeout(timer);
  };
  return { id, port, url, child, stop: () => stop('SIGTERM'), crash: () => stop('SIGKILL') };
}

export function userToken(user: string, site = SITE): string {
  return mintToken({ site_id: site, user_id: user, exp: Math.floor(Date.now() / 1000) + 600 }, SECRET);
}

export interface Frame {
  readonly t: string;
  readonly [field: string]: unknown;
}

/** A WebSocket client of one user that records every frame; `answer` decides how it replies to commands. */
export class CommandClient {
  readonly frames: Frame[] = [];
  readonly socket: WebSocket;
  connectionId = '';
  gatewayId = '';
  /** Returns the reply frame for a command, or undefined to stay silent. */
  answer: (command: Frame) => Record<string, unknown> | undefined;
  private sent = 0;

  private constructor(socket: WebSocket, answer: CommandClient['answer']) {
    this.socket = socket;
    this.answer = answer;
    socket.on('message', (data) => {
      const frame = JSON.parse(String(data)) as Frame;
      this.frames.push(frame);
      if (frame.t === 'hello') {
        this.connectionId = String(frame['connection_id']);
        this.gatewayId = String(frame['gateway_id']);
      }
      if (frame.t === 'command') {
        const reply = this.answer(frame);
        if (reply !== undefined) this.send(JSON.stringify({ t: 'reply', id: frame['id'], ...reply }));
      }
    });
  }

  static async connect(
    gateway: GatewayProcess,
    user: string,
    answer: CommandClient['answer'] = echo,
  ): Promise<CommandClient> {
    const socket = new WebSocket(`ws://127.0.0.1:${gateway.port}/v1/ws?token=${userToken(user)}`);
    const client = new CommandClient(socket, answer);
    await new Promise<void>((resolve, reject) => {
      socket.once('open', () => resolve());
      socket.once('error', reject);
    });
    await eventually('hello', async () => (client.connectionId === '' ? undefined : true), 10_000, 10);
    return client;
  }

  /** Sends a frame; returns its number (frames are numbered per connection from 1). */
  send(text: string): number {
    this.socket.send(text);
    return ++this.sent;
  }

  commands(id?: string): Frame[] {
    return this.frames.filter((f) => f.t === 'command' && (id === undefined || f['id'] === id));
  }

  async command(id: string, timeoutMs = 20_000): Promise<Frame> {
    return eventually(`command ${id} at the client`, async () => this.commands(id)[0], timeoutMs, 10);
  }

  /** The ack or error that settled frame n. */
  async settled(n: number): Promise<Frame> {
    return eventually(
      `frame ${n} settled`,
      async () =>
        this.frames.find((f) => (f.t === 'error' || f.t === 'nack') && f['n'] === n) ??
        this.frames.find((f) => f.t === 'ack' && Number(f['n']) >= n),
      20_000,
      10,
    );
  }

  async close(): Promise<void> {
    if (this.socket.readyState === WebSocket.CLOSED) return;
    const closed = new Promise<void>((resolve) => this.socket.once('close', () => resolve()));
    this.socket.close();
    await closed;
  }
}

/** Answers every command with `{ echo: args, name }`. */
export const echo = (command: Frame): Record<string, unknown> => ({
  result: { echo: command['args'], name: command['name'] },
});
export const silent = (): undefined => undefined;

/** An EventSource-like client of `GET /v1/stream` built on fetch (Node has no EventSource). */
export class SseClient {
  readonly frames: Frame[] = [];
  connectionId = '';
  closed = false;
  private readonly abort = new AbortController();

  static async open(gateway: GatewayProcess, user: string): Promise<SseClient> {
    const client = new SseClient();
    const response = await fetch(`${gateway.url}/v1/stream?token=${userToken(user)}`, {
      signal: client.abort.signal,
    });
    if (response.status !== 200 || response.body === null)
      throw new Error(`stream refused: ${response.status} ${await response.text()}`);
    if (!String(response.headers.get('content-type')).startsWith('text/event-stream'))
      throw new Error('not an event stream');
    void client.read(response.body);
    await eventually('sse hello', async () => (client.connectionId === '' ? undefined : true), 10_000, 10);
    return client;
  }

  private async read(body: ReadableStream<Uint8Array>): Promise<void> {
    const decoder = new TextDecoder();
    let buffer = '';
    const reader = body.getReader();
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        let end: number;
        while ((end = buffer.indexOf('\n\n')) !== -1) {
          const event = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const data = event
            .split('\n')
            .filter((line) => line.startsWith('data: '))
            .map((line) => line.slice(6))
            .join('\n');
          if (data === '') continue;
          const frame = JSON.parse(data) as Frame;
          this.frames.push(frame);
          if (frame.t === 'hello') this.connectionId = String(frame['connection_id']);
        }
      }
    } catch {
      // aborted
    }
    this.closed = true;
  }

  async command(id: string): Promise<Frame> {
    return eventually(
      `command ${id} on the stream`,
      async () => this.frames.find((f) => f.t === 'command' && f['id'] === id),
      20_000,
      10,
    );
  }

  close(): void {
    this.abort.abort();
  }
}

/** `POST /v1/replies` as a client without WebSocket sends it. */
export async function postReply(
  gateway: GatewayProcess,
  user: string,
  body: Record<string, unknown>,
): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await fetch(`${gateway.url}/v1/replies`, {
    method: 'POST',
    headers: { authorization: `Bearer ${userToken(user)}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

/** `POST /v1/commands` as a backend without the library sends it. */
export async function postCommand(
  gateway: GatewayProcess,
  body: Record<string, unknown>,
  token = SERVICE_TOKEN,
): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await fetch(`${gateway.url}/v1/commands`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}
