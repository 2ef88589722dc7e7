/** The thread of ThreadProducer: one KafkaJS producer, fed packed batches, answering each send. */
import { parentPort, workerData } from 'node:worker_threads';
import { createKafka, createProducer, type CompressionTypes } from '@dwell/kafka';
import type { LogFields, Logger, LogLevel } from '@dwell/runtime';
import { unpackBatch } from './produce-batch.js';
import { serialiseError, type FromProducerThread, type ProducerThreadData, type ToProducerThread } from './producer-thread.js';

const port = parentPort;
if (port === null) throw new Error('producer-worker runs as a worker thread');
const data = workerData as ProducerThreadData;

const post = (message: FromProducerThread): void => port.postMessage(message);

const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40, silent: 100 };

/** Log lines go to the gateway's logger on the main thread, which decides their format and target. */
function forwardingLogger(bound: LogFields): Logger {
  const emit = (level: Exclude<LogLevel, 'silent'>, message: string, fields?: LogFields): void => {
    if (RANK[level] < RANK[data.logLevel]) return;
    const all = { ...bound, ...fields };
    try {
      post({ op: 'log', level, message, fields: all });
    } catch {
      // Something in the fields does not survive structured cloning: send its text instead.
      const text: Record<string, string> = {};
      for (const [name, value] of Object.entries(all)) text[name] = value instanceof Error ? (value.stack ?? value.message) : String(value);
      post({ op: 'log', level, message, fields: text });
    }
  };
  return {
    level: data.logLevel,
    debug: (message, fields) => emit('debug', message, fields),
    info: (message, fields) => emit('info', message, fields),
    warn: (message, fields) => emit('warn', message, fields),
    error: (message, fields) => emit('error', message, fields),
    child: (fields) => forwardingLogger({ ...bound, ...fields }),
  };
}

const kafka = createKafka({ brokers: data.brokers, clientId: data.clientId, logger: forwardingLogger({ thread: 'producer' }) });
const producer = createProducer(kafka, data.producer);

let connecting: Promise<void> | undefined;
/** Connects once; after a failed attempt, the next send tries again. */
function connect(): Promise<void> {
  connecting ??= producer.connect().catch((error: unknown) => {
    connecting = undefined;
    throw error;
  });
  return connecting;
}

const inFlight = new Set<Promise<void>>();

async function send(request: Extract<ToProducerThread, { op: 'send' }>): Promise<void> {
  let answer: FromProducerThread;
  try {
    await connect();
    const metadata = await producer.send({
      topic: request.batch.topic,
      acks: request.batch.acks,
      messages: unpackBatch(request.batch),
      ...(request.timeout !== undefined ? { timeout: request.timeout } : {}),
      ...(request.compression !== undefined ? { compression: request.compression as CompressionTypes } : {}),
    });
    answer = { op: 'sent', id: request.id, metadata };
  } catch (error) {
    answer = { op: 'failed', id: request.id, error: serialiseError(error) };
  }
  post(answer);
}

async function disconnect(): Promise<void> {
  await Promise.allSettled([...inFlight]);
  let answer: FromProducerThread = { op: 'disconnected' };
  try {
    await producer.disconnect();
  } catch (error) {
    answer = { op: 'disconnected', error: serialiseError(error) };
  }
  post(answer);
}

port.on('message', (request: ToProducerThread) => {
  if (request.op === 'send') {
    const sending = send(request);
    inFlight.add(sending);
    void sending.finally(() => inFlight.delete(sending));
  } else {
    void disconnect();
  }
});

connect().then(
  () => post({ op: 'connected' }),
  (error: unknown) => post({ op: 'connect-failed', error: serialiseError(error) }),
);
