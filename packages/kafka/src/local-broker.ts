import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Kafka, logLevel } from 'kafkajs';

/** The repository root, found from this file (packages/kafka/{src,dist}/local-broker.*). */
const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const INFRA_DIR = join(REPO_ROOT, 'infra', 'kafka');

export interface LocalKafkaOptions {
  /**
   * Folder for the broker's logs and metadata. Reused (not reformatted) when it already holds a
   * formatted KRaft log, so `dwell up` keeps its topics across restarts.
   * Default: a fresh temporary folder, removed on stop.
   */
  readonly dataDir?: string;
  /** Client port on 127.0.0.1. Default 0: a free port. */
  readonly port?: number;
  /** Where downloaded broker jars are kept. Default `<repo>/.cache/kafka`. */
  readonly cacheDir?: string;
  /** JVM heap ceiling. Default `512m`: enough for development on a 2-core machine. */
  readonly heap?: string;
  /** How long to wait for the broker to answer a metadata request. Default 90 s. */
  readonly readyTimeoutMs?: number;
  /** Progress lines (download, format, start). Default: none. */
  readonly onProgress?: (line: string) => void;
}

export interface LocalKafka {
  /** `127.0.0.1:<port>`, ready for `KAFKA_BROKERS`. */
  readonly brokers: string;
  readonly version: string;
  readonly dataDir: string;
  readonly pid: number | undefined;
  /** Controlled shutdown; resolves when the JVM has exited. Idempotent. */
  stop(): Promise<void>;
}

export class LocalKafkaError extends Error {
  override readonly name = 'LocalKafkaError';
}

/** The broker version comes from infra/kafka/pom.xml, the one place it is pinned. */
export async function localKafkaVersion(): Promise<string> {
  const pom = await readFile(join(INFRA_DIR, 'pom.xml'), 'utf8');
  const match = /<kafka\.version>([^<]+)<\/kafka\.version>/.exec(pom);
  if (match?.[1] == null) throw new LocalKafkaError(`no <kafka.version> in ${join(INFRA_DIR, 'pom.xml')}`);
  return match[1];
}

/**
 * Fetches the broker jars from Maven Central once into the cache folder; later calls reuse them.
 * The download lands in a temporary folder that is renamed into place, so an interrupted download
 * never leaves a half-filled cache behind.
 */
export async function ensureKafkaJars(
  options: Pick<LocalKafkaOptions, 'cacheDir' | 'onProgress'> = {},
): Promise<{ libDir: string; version: string }> {
  const version = await localKafkaVersion();
  const cacheDir = options.cacheDir ?? join(REPO_ROOT, '.cache', 'kafka');
  const libDir = join(cacheDir, version, 'libs');
  if (existsSync(join(libDir, '.complete'))) return { libDir, version };

  await mkdir(join(cacheDir, version), { recursive: true });
  const staging = await mkdtemp(join(cacheDir, version, 'download-'));
  options.onProgress?.(`fetching Apache Kafka ${version} broker jars from Maven Central (first run only)`);
  const started = Date.now();
  await run('mvn', [
    '-B',
    '-q',
    '-f',
    join(INFRA_DIR, 'pom.xml'),
    'dependency:copy-dependencies',
    '-DincludeScope=runtime',
    `-DoutputDirectory=${staging}`,
  ]).catch((error: unknown) => {
    throw new LocalKafkaError(
      `could not fetch the Kafka broker jars with Maven (is 'mvn' installed and Maven Central reachable?): ${String(error)}`,
    );
  });
  await writeFile(join(staging, '.complete'), `${version}\n`);
  try {
    await rename(staging, libDir);
  } catch (error) {
    // Another process finished the same download first: use theirs.
    if (!existsSync(join(libDir, '.complete'))) throw error;
    await rm(staging, { recursive: true, force: true });
  }
  options.onProgress?.(`fetched Kafka ${version} jars in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  return { libDir, version };
}

/**
 * Starts a real single-node KRaft broker on 127.0.0.1 from the Maven Central jars and resolves once
 * it answers a metadata request. The JVM is stopped when `stop()` is called, and also when this
 * process dies (see infra/kafka/run-with-parent.sh).
 */
export async function startLocalKafka(options: LocalKafkaOptions = {}): Promise<LocalKafka> {
  const { libDir, version } = await ensureKafkaJars(options);
  const progress = options.onProgress ?? (() => undefined);
  const ownsDataDir = options.dataDir === undefined;
  const dataDir = options.dataDir ?? (await mkdtemp(join(tmpdir(), 'dwell-kafka-')));
  await mkdir(dataDir, { recursive: true });
  const port = options.port !== undefined && options.port !== 0 ? options.port : await freePort();
  const logDir = join(dataDir, 'kraft-logs');
  const propertiesFile = join(dataDir, 'server.properties');
  // A restarted broker keeps its controller address: the KRaft quorum state names it.
  const controllerPort = (await previousControllerPort(propertiesFile)) ?? (await freePort());
  await writeFile(propertiesFile, serverProperties({ port, controllerPort, logDir }));

  const classpath = `${libDir}/*`;
  const jvm = [
    `-Xmx${options.heap ?? '512m'}`,
    '-Xms128m',
    '-XX:+UseG1GC',
    '-XX:MaxGCPauseMillis=20',
    '-Djava.awt.headless=true',
    `-Dkafka.logs.dir=${dataDir}`,
    `-Dlog4j2.configurationFile=${join(INFRA_DIR, 'log4j2.properties')}`,
  ];

  if (!existsSync(join(logDir, 'meta.properties'))) {
    progress(`formatting KRaft storage in ${logDir}`);
    // A KRaft cluster id is 16 random bytes in base64url; one starting with '-' would be read by
    // the storage tool as an option, so draw again until it starts with a letter or digit.
    let clusterId: string;
    do clusterId = randomBytes(16).toString('base64url');
    while (!/^[A-Za-z0-9]/.test(clusterId));
    await run('java', [
      ...jvm,
      '-cp',
      classpath,
      'kafka.tools.StorageTool',
      'format',
      '-t',
      clusterId,
      '-c',
      propertiesFile,
    ]);
  }

  progress(`starting Kafka ${version} on 127.0.0.1:${port}`);
  const child = spawn(
    join(INFRA_DIR, 'run-with-parent.sh'),
    ['java', ...jvm, '-cp', classpath, 'kafka.Kafka', propertiesFile],
    { stdio: ['pipe', 'ignore', 'pipe'] },
  );
  let stderr = '';
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
    stderr = (stderr + chunk).slice(-4000);
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));

  const brokers = `127.0.0.1:${port}`;
  const stop = once(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      await exited;
    }
    if (ownsDataDir) await rm(dataDir, { recursive: true, force: true });
  });

  try {
    await waitUntilReady(brokers, options.readyTimeoutMs ?? 90_000, exited, () => stderr, dataDir);
  } catch (error) {
    await stop();
    throw error;
  }
  return { brokers, version, dataDir, pid: child.pid, stop };
}

async function previousControllerPort(propertiesFile: string): Promise<number | undefined> {
  if (!existsSync(propertiesFile)) return undefined;
  const match = /^controller\.quorum\.voters=1@127\.0\.0\.1:(\d+)$/m.exec(await readFile(propertiesFile, 'utf8'));
  return match?.[1] === undefined ? undefined : Number(match[1]);
}

function serverProperties(p: { port: number; controllerPort: number; logDir: string }): string {
  return `# Written by dwell's local broker launcher: a single-node KRaft broker for development and tests.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:${p.controllerPort}
listeners=PLAINTEXT://127.0.0.1:${p.port},CONTROLLER://127.0.0.1:${p.controllerPort}
advertised.listeners=PLAINTEXT://127.0.0.1:${p.port}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=${p.logDir}
num.partitions=4
auto.create.topics.enable=false
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
num.network.threads=2
num.io.threads=4
num.recovery.threads.per.data.dir=1
log.retention.hours=-1
`;
}

async function waitUntilReady(
  brokers: string,
  timeoutMs: number,
  exited: Promise<number | null>,
  stderr: () => string,
  dataDir: string,
): Promise<void> {
  const kafka = new Kafka({
    clientId: 'dwell-local-readiness',
    brokers: [brokers],
    logLevel: logLevel.NOTHING,
    retry: { retries: 0 },
    connectionTimeout: 1000,
  });
  const deadline = Date.now() + timeoutMs;
  let exitCode: number | null | undefined;
  void exited.then((code) => (exitCode = code ?? -1));
  for (;;) {
    if (exitCode !== undefined) {
      throw new LocalKafkaError(
        `the Kafka broker exited with code ${exitCode} during start; see ${join(dataDir, 'broker.log')}\n${stderr()}`,
      );
    }
    const admin = kafka.admin();
    try {
      await admin.connect();
      await admin.describeCluster();
      return;
    } catch {
      if (Date.now() > deadline) {
        throw new LocalKafkaError(
          `the Kafka broker at ${brokers} did not answer a metadata request within ${timeoutMs} ms; see ${join(dataDir, 'broker.log')}`,
        );
      }
      await new Promise((resolve) => setTimeout(resolve, 250));
    } finally {
      await admin.disconnect().catch(() => undefined);
    }
  }
}

function run(command: string, args: readonly string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child: ChildProcess = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    const collect = (chunk: Buffer): void => {
      output = (output + chunk.toString('utf8')).slice(-4000);
    };
    child.stdout?.on('data', collect);
    child.stderr?.on('data', collect);
    child.once('error', reject);
    child.once('exit', (code) =>
      code === 0 ? resolve() : reject(new Error(`${command} exited with ${code}: ${output.trim()}`)),
    );
  });
}

/** A port the OS reports free right now on 127.0.0.1. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => {
        if (address !== null && typeof address === 'object') resolve(address.port);
        else reject(new Error('no port'));
      });
    });
  });
}

function once(fn: () => Promise<void>): () => Promise<void> {
  let pending: Promise<void> | undefined;
  return () => (pending ??= fn());
}
