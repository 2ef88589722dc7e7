/** A gateway under test with its own topics, a WebSocket client that records frames, topic readers. */
import WebSocket from 'ws';
import { gatewayConfigFromEnv, mintToken, startGateway, type Gateway } from '../services/gateway/src/index.js';
import { createKafka, type Kafka } from '../packages/kafka/src/index.js';
import { decodePageEvent, decodeRejectedFrame, type PageEvent, type RejectedFrame } from '../packages/protocol/src/index.js';
import { createLogger } from '../packages/runtime/src/index.js';
import { eventually, uniqueName } from './support.js';

export const SITE = 'site-a';
export const SECRET = 'gateway-test-secret-0123456789';
export const ORIGIN = 'https://publisher.example';

export interface ServerFrame {
  readonly t: string;
  readonly n?: number;
  readonly reason?: string;
  readonly detail?: string;
  readonly index?: number;
}

export interface TestGateway {
  readonly gateway: Gateway;
  readonly topic: string;
  readonly rejectedTopic: string;
  readonly port: number;
  readonly kafka: Kafka;
}

export async function startTestGateway(brokers: readonly string[], env: Record<string, string> = {}): Promise<TestGateway> {
  const topic = uniqueName('events');
  const rejectedTopic = uniqueName('rejected');
  const gateway = await startGateway(
    gatewayConfigFromEnv({
      KAFKA_BROKERS: brokers.join(','),
      DWELL_EVENTS_TOPIC: topic,
      DWELL_REJECTED_TOPIC: rejectedTopic,
      DWELL_SITES: JSON.stringify({ [SITE]: { secret: SECRET, origins: [ORIGIN] } }),
      GATEWAY_PORT: '0',
      GATEWAY_ID: 'gw-test',
      ...env,
    }),
    createLogger({ level: 'silent' }),
  );
  return { gateway, topic, rejectedTopic, port: gateway.port, kafka: createKafka({ brokers, clientId: uniqueName('test') }) };
}

export function token(user = 'user-1', expiresInS = 600, secret = SECRET, site = SITE): string {
  return mintToken({ site_id: site, user_id: user, exp: Math.floor(Date.now() / 1000) + expiresInS }, secret);
}

export class TestClient {
  readonly frames: ServerFrame[] = [];
  readonly socket: WebSocket;
  closed: { code: number; reason: string } | undefined;

  private constructor(socket: WebSocket) {
    this.socket = socket;
    socket.on('message', (data) => this.frames.push(JSON.parse(String(data)) as ServerFrame));
    socket.on('close', (code, reason) => (this.closed = { code, reason: String(reason) }));
  }

  static async connect(port: number, query: string, headers: Record<string, string> = { origin: ORIGIN }): Promise<TestClient> {
    const socket = new WebSocket(`ws://127.0.0.1:${port}/v1/ws?${query}`, { headers });
    // Listen before the socket opens: the server's hello can arrive in the same read as the upgrade.
    const client = new TestClient(socket);
    await new Promise<void>((resolve, reject) => {
      socket.once('open', () => resolve());
      socket.once('error', reject);
    });
    return client;
  }

  /** Resolves with the HTTP status the gateway answered an upgrade with, when it refused it. */
  static refusal(port: number, query: string, headers: Record<string, string> = { origin: ORIGIN }): Promise<{ status: number; body: string }> {
    const socket = new WebSocket(`ws://127.0.0.1:${port}/v1/ws?${query}`, { headers });
    return new Promise((resolve, reject) => {
      socket.once('open', () => reject(new Error('upgrade was accepted')));
      socket.once('unexpected-response', (_request, response) => {
        let body = '';
        response.on('data', (chunk: Buffer) => (body += chunk.toString()));
        response.on('end', () => resolve({ status: response.statusCode ?? 0, body }));
      });
      socket.once('error', () => undefined);
    });
  }

  send(data: string | Buffer): void {
    this.socket.send(data);
  }

  /** Waits for the cumulative ack to cover frame n. */
  async acked(n: number): Promise<void> {
    await eventually(`ack of frame ${n}`, async () => (this.frames.some((f) => f.t === 'ack' && (f.n ?? 0) >= n) ? true : undefined), 20_000, 20);
  }

  errors(n?: number): ServerFrame[] {
    return this.frames.filter((f) => f.t === 'error' && (n === undefined || f.n === n));
  }

  close(): void {
    this.socket.close();
  }
}

/** Collects every record of a topic from the beginning, decoded. */
export class TopicReader<T> {
  readonly records: T[] = [];
  private readonly stop: () => Promise<void>;
  private constructor(stop: () => Promise<void>) {
    this.stop = stop;
  }

  static async start<T>(kafka: Kafka, topic: string, decode: (value: Buffer) => T): Promise<TopicReader<T>> {
    const consumer = kafka.consumer({ groupId: uniqueName('reader'), maxWaitTimeInMs: 100 });
    await consumer.connect();
    await consumer.subscribe({ topic, fromBeginning: true });
    const reader: TopicReader<T> = new TopicReader<T>(() => consumer.disconnect());
    await consumer.run({
      eachMessage: async ({ message }) => {
        if (message.value !== null) reader.records.push(decode(message.value));
      },
    });
    return reader;
  }

  async waitFor(what: string, predicate: (records: readonly T[]) => boolean, timeoutMs = 30_000): Promise<T[]> {
    return eventually(what, async () => (predicate(this.records) ? this.records : undefined), timeoutMs, 50);
  }

  close(): Promise<void> {
    return this.stop();
  }
}

export const readEvents = (kafka: Kafka, topic: string): Promise<TopicReader<PageEvent>> => TopicReader.start(kafka, topic, decodePageEvent);
export const readRejected = (kafka: Kafka, topic: string): Promise<TopicReader<RejectedFrame>> =>
  TopicReader.start(kafka, topic, decodeRejectedFrame);
