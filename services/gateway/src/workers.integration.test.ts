/**
 * `dwell gateway` with several worker processes on one port: connections spread over the workers,
 * `/metrics` from any worker shows all of them, SIGTERM drains and stops every process.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { freePort } from '@dwell/kafka';
import { ORIGIN, SECRET, SITE, TestClient, token } from '../../../test/gateway-harness.js';
import { eventually, testBrokers, uniqueName } from '../../../test/support.js';

const cli = fileURLToPath(new URL('../../cli/bin/dwell.js', import.meta.url));

/** The command lines (arguments) of the processes whose parent is `pid`, from /proc. */
function childCommandLines(pid: number): string[][] {
  const lines: string[][] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      // The parent pid is the 4th field of /proc/<pid>/stat, after the parenthesised command name.
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) lines.push(readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0').filter(Boolean));
    } catch {
      // the process ended meanwhile
    }
  }
  return lines;
}

/** `dwell gateway` on `port` with these settings (besides the test broker, topics and site); and its exit. */
function startPrimary(port: number, settings: Record<string, string>): { primary: ChildProcess; exited: Promise<number | null> } {
  const primary = spawn(process.execPath, [cli, 'gateway'], {
    env: {
      ...process.env,
      KAFKA_BROKERS: testBrokers().join(','),
      DWELL_EVENTS_TOPIC: uniqueName('events'),
      DWELL_REJECTED_TOPIC: uniqueName('rejected'),
      DWELL_SITES: JSON.stringify({ [SITE]: { secret: SECRET, origins: [ORIGIN] } }),
      GATEWAY_PORT: String(port),
      LOG_LEVEL: 'warn',
      ...settings,
    },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  return { primary, exited: new Promise((resolve) => primary.once('exit', (code) => resolve(code))) };
}

describe('gateway worker processes', () => {
  it('serves one port from several processes, merges their metrics, and stops them all on SIGTERM', async () => {
    const port = await freePort();
    const { primary, exited } = startPrimary(port, { GATEWAY_WORKERS: '2', GATEWAY_ID: 'gw-cluster' });
    try {
      await eventually('both workers listening', async () => {
        const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
        return text.includes('worker="0"') && text.includes('worker="1"') ? true : undefined;
      }, 60_000, 250);

      const clients = await Promise.all(Array.from({ length: 16 }, (_, i) => TestClient.connect(port, `token=${token(`u${i}`)}`)));
      const hellos = await eventually('hello frames', async () => {
        const all = clients.map((c) => c.frames.find((f) => f.t === 'hello') as { gateway_id?: string } | undefined);
        return all.every((h) => h !== undefined) ? all : undefined;
      });
      const served = new Set(hellos.map((h) => h?.gateway_id));
      expect([...served].sort()).toEqual(['gw-cluster-w0', 'gw-cluster-w1']);
      // Every worker runs with the old-space floor (GATEWAY_OLD_SPACE_FLOOR_MB, default 256).
      const workers = childCommandLines(primary.pid as number);
      expect(workers).toHaveLength(2);
      for (const args of workers) expect(args).toContain('--initial-old-space-size=256');

      const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      const perWorker = [...text.matchAll(/^dwell_gateway_connections\{worker="(\d)"\} (\d+)$/gm)].map((m) => Number(m[2]));
      expect(perWorker).toHaveLength(2);
      expect(perWorker.reduce((a, b) => a + b, 0)).toBe(16);
      expect(text.match(/^# TYPE dwell_gateway_connections gauge$/gm)).toHaveLength(1);

      primary.kill('SIGTERM');
      expect(await exited).toBe(0);
      await Promise.all(clients.map((c) => eventually('close after drain', async () => c.closed)));
      expect(clients.every((c) => c.closed?.code === 1012)).toBe(true);
      await expect(fetch(`http://127.0.0.1:${port}/healthz`)).rejects.toThrow();
    } finally {
      if (primary.exitCode === null) primary.kill('SIGKILL');
    }
  });

  it('runs a single gateway process as a worker with the old-space floor when node was started without it', async () => {
    const port = await freePort();
    const { primary, exited } = startPrimary(port, { GATEWAY_WORKERS: '1', GATEWAY_OLD_SPACE_FLOOR_MB: '128', GATEWAY_ID: 'gw-single' });
    try {
      const client = await eventually('gateway listening', async () => {
        try {
          return await TestClient.connect(port, `token=${token('u-single')}`);
        } catch {
          return undefined;
        }
      }, 60_000, 250);
      const hello = await eventually('hello frame', async () => client.frames.find((f) => f.t === 'hello') as { gateway_id?: string } | undefined);
      // One worker keeps the gateway's id as it is.
      expect(hello.gateway_id).toBe('gw-single');
      const workers = childCommandLines(primary.pid as number);
      expect(workers).toHaveLength(1);
      expect(workers[0]).toContain('--initial-old-space-size=128');

      primary.kill('SIGTERM');
      expect(await exited).toBe(0);
      await eventually('close after drain', async () => client.closed);
      expect(client.closed?.code).toBe(1012);
    } finally {
      if (primary.exitCode === null) primary.kill('SIGKILL');
    }
  });
});
