import { fork, type ChildProcess } from 'node:child_process';
import { availableParallelism } from 'node:os';
import type { Logger } from '@dwell/runtime';
import type { GatewayConfig } from './config.js';
import { startGateway, type Gateway } from './gateway.js';

/** Set in a worker's environment: its index among the gateway's worker processes. */
export const WORKER_INDEX_ENV = 'DWELL_GATEWAY_WORKER_INDEX';

/** V8's flag for the old-generation size below which no full collection runs (GATEWAY_OLD_SPACE_FLOOR_MB). */
const OLD_SPACE_FLAG = '--initial-old-space-size';

/**
 * The node flags a gateway process should run with and `execArgv` (this process's, by default)
 * lacks: `--initial-old-space-size=<GATEWAY_OLD_SPACE_FLOOR_MB>`, unless that is 0 or the flag is
 * already given (with any value: an operator's own choice wins).
 */
export function gatewayNodeFlags(config: Pick<GatewayConfig, 'GATEWAY_OLD_SPACE_FLOOR_MB'>, execArgv: readonly string[] = process.execArgv): string[] {
  const floor = config.GATEWAY_OLD_SPACE_FLOOR_MB;
  if (floor === 0) return [];
  const given = execArgv.some((arg) => arg === OLD_SPACE_FLAG || arg.startsWith(`${OLD_SPACE_FLAG}=`) || arg.startsWith('--initial_old_space_size'));
  return given ? [] : [`${OLD_SPACE_FLAG}=${floor}`];
}

/** Gateway processes: GATEWAY_WORKERS, or one per core when it is 0. */
function workerCount(config: Pick<GatewayConfig, 'GATEWAY_WORKERS'>): number {
  return config.GATEWAY_WORKERS === 0 ? availableParallelism() : config.GATEWAY_WORKERS;
}

type WorkerMessage =
  | { readonly type: 'metrics-request'; readonly id: number }
  | { readonly type: 'metrics-reply'; readonly id: number; readonly text: string }
  | { readonly type: 'aggregate-request'; readonly id: number }
  | { readonly type: 'aggregate-reply'; readonly id: number; readonly text: string };

export interface GatewayCluster {
  readonly workers: number;
  stop(): Promise<void>;
}

/**
 * Runs the gateway as one process per core (GATEWAY_WORKERS, 0 = one per core), each with the node
 * flags of `gatewayNodeFlags` (a single process runs in this one when it already has them). Every worker
 * listens on the same port: uWebSockets.js sets SO_REUSEPORT, so the kernel spreads connections
 * across them. The primary only supervises: it restarts a worker that dies, forwards SIGTERM for a
 * graceful drain, and assembles `/metrics` from all workers (any worker answers a scrape with the
 * whole picture, each series labelled with its worker).
 */
export async function runGatewayCluster(
  config: GatewayConfig,
  logger: Logger,
  cliArgs: readonly string[],
): Promise<GatewayCluster> {
  const workerIndex = process.env[WORKER_INDEX_ENV];
  const count = workerCount(config);
  if (workerIndex !== undefined) return runWorker(config, logger, Number(workerIndex));
  // V8's heap flags can only be given when a process starts: without them here, even a single
  // gateway process runs as a worker that has them.
  const flags = gatewayNodeFlags(config);
  if (count === 1 && flags.length === 0) {
    const gateway = await startGateway(config, logger);
    return { workers: 1, stop: () => gateway.stop() };
  }
  if (count > 1 && config.GATEWAY_PORT === 0) throw new Error('GATEWAY_WORKERS > 1 needs a fixed GATEWAY_PORT (workers share it)');
  return runPrimary(config, logger.child({ component: 'gateway-primary' }), count, cliArgs, flags);
}

async function runWorker(config: GatewayConfig, logger: Logger, index: number): Promise<GatewayCluster> {
  let nextId = 0;
  const pending = new Map<number, (text: string) => void>();
  const aggregate = (): Promise<string> =>
    new Promise((resolve) => {
      const id = ++nextId;
      pending.set(id, resolve);
      process.send?.({ type: 'aggregate-request', id } satisfies WorkerMessage);
      setTimeout(() => {
        if (pending.delete(id)) resolve('');
      }, 2000).unref();
    });
  // The only worker keeps GATEWAY_ID as it is (its primary reads the same settings on this machine).
  const gatewayId = workerCount(config) === 1 ? config.GATEWAY_ID : `${config.GATEWAY_ID}-w${index}`;
  const gateway: Gateway = await startGateway({ ...config, GATEWAY_ID: gatewayId }, logger, {
    metricsText: aggregate,
  });
  process.on('message', (message: WorkerMessage) => {
    if (message.type === 'metrics-request') {
      process.send?.({ type: 'metrics-reply', id: message.id, text: gateway.metricsText() } satisfies WorkerMessage);
    } else if (message.type === 'aggregate-reply') {
      pending.get(message.id)?.(message.text);
      pending.delete(message.id);
    }
  });
  // The primary going away (crash, kill -9) must not leave workers behind.
  process.on('disconnect', () => void gateway.stop().then(() => process.exit(0)));
  return { workers: 1, stop: () => gateway.stop() };
}

async function runPrimary(
  config: GatewayConfig,
  logger: Logger,
  count: number,
  cliArgs: readonly string[],
  nodeFlags: readonly string[],
): Promise<GatewayCluster> {
  const script = process.argv[1];
  if (script === undefined) throw new Error('cannot find the script to start workers with');
  const workers = new Array<ChildProcess | undefined>(count);
  let stopping = false;
  let nextId = 0;

  const collect = async (): Promise<string> => {
    const texts = await Promise.all(
      workers.map(
        (worker, index) =>
          new Promise<[number, string]>((resolve) => {
            if (worker === undefined || !worker.connected) return resolve([index, '']);
            const id = ++nextId;
            const onMessage = (message: WorkerMessage): void => {
              if (message.type === 'metrics-reply' && message.id === id) {
                worker.off('message', onMessage);
                resolve([index, message.text]);
              }
            };
            worker.on('message', onMessage);
            worker.send({ type: 'metrics-request', id } satisfies WorkerMessage);
            setTimeout(() => {
              worker.off('message', onMessage);
              resolve([index, '']);
            }, 1500).unref();
          }),
      ),
    );
    return mergeMetrics(texts);
  };

  const start = (index: number): void => {
    // Own process group: a Ctrl-C reaches only the primary, which then drains the workers in order.
    const worker = fork(script, [...cliArgs], {
      execArgv: [...process.execArgv, ...nodeFlags],
      env: { ...process.env, [WORKER_INDEX_ENV]: String(index) },
      stdio: 'inherit',
      detached: true,
    });
    workers[index] = worker;
    const startedAt = Date.now();
    worker.on('message', (message: WorkerMessage) => {
      if (message.type === 'aggregate-request') {
        void collect().then((text) => {
          if (worker.connected) worker.send({ type: 'aggregate-reply', id: message.id, text } satisfies WorkerMessage);
        });
      }
    });
    worker.on('exit', (code, signal) => {
      workers[index] = undefined;
      if (stopping) return;
      // Restart, but not in a tight loop when a worker cannot start at all.
      const delay = Date.now() - startedAt < 5000 ? 5000 : 100;
      logger.error('gateway worker exited; restarting', { worker: index, code, signal, restartInMs: delay });
      setTimeout(() => !stopping && start(index), delay).unref();
    });
  };

  for (let i = 0; i < count; i++) start(i);
  logger.info('started gateway workers', { workers: count, port: config.GATEWAY_PORT, nodeFlags });
  return {
    workers: count,
    stop: async () => {
      stopping = true;
      await Promise.all(
        workers.map(
          (worker) =>
            new Promise<void>((resolve) => {
              if (worker === undefined || worker.exitCode !== null) return resolve();
              worker.once('exit', () => resolve());
              worker.kill('SIGTERM');
            }),
        ),
      );
    },
  };
}

/**
 * Concatenates the Prometheus texts of several workers into one exposition: HELP and TYPE lines
 * once per metric, every sample labelled `worker="<index>"`.
 */
export function mergeMetrics(texts: ReadonlyArray<readonly [number, string]>): string {
  const order: string[] = [];
  const families = new Map<string, { meta: string[]; samples: string[] }>();
  const family = (name: string): { meta: string[]; samples: string[] } => {
    let entry = families.get(name);
    if (entry === undefined) {
      entry = { meta: [], samples: [] };
      families.set(name, entry);
      order.push(name);
    }
    return entry;
  };
  for (const [worker, text] of texts) {
    let current = '';
    for (const line of text.split('\n')) {
      if (line === '') continue;
      const meta = /^# (HELP|TYPE) (\S+)/.exec(line);
      if (meta !== null) {
        current = meta[2] as string;
        const entry = family(current);
        if (entry.meta.length < 2 && !entry.meta.some((m) => m.startsWith(`# ${meta[1]} `))) entry.meta.push(line);
        continue;
      }
      const brace = line.indexOf('{');
      const space = line.indexOf(' ');
      const labelled =
        brace !== -1 && brace < space
          ? `${line.slice(0, brace + 1)}worker="${worker}",${line.slice(brace + 1)}`
          : `${line.slice(0, space)}{worker="${worker}"}${line.slice(space)}`;
      family(current === '' ? line.slice(0, space) : current).samples.push(labelled.replace(',}', '}'));
    }
  }
  return order.map((name) => {
    const entry = families.get(name) as { meta: string[]; samples: string[] };
    return [...entry.meta, ...entry.samples].join('\n');
  }).join('\n') + '\n';
}
