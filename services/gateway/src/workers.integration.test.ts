/**
 * `dwell gateway` with several worker processes on one port: connections spread over the workers,
 * `/metrics` from any worker shows all of them, SIGTERM drains and stops every process.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { freePort } from '@dwell/kafka';
import { ORIGIN, SECRET, SITE, TestClient, token } from '../../../test/gateway-harness.js';
import { eventually, testBrokers, uniqueName } from '../../../test/support.js';

const cli = fileURLToPath(new URL('../../cli/bin/dwell.js', import.meta.url));

describe('gateway worker processes', () => {
  it('serves one port from several processes, merges their metrics, and stops them all on SIGTERM', async () => {
    const port = await freePort();
    const primary = spawn(process.execPath, [cli, 'gateway'], {
      env: {
        ...process.env,
        KAFKA_BROKERS: testBrokers().join(','),
        DWELL_EVENTS_TOPIC: uniqueName('events'),
        DWELL_REJECTED_TOPIC: uniqueName('rejected'),
        DWELL_SITES: JSON.stringify({ [SITE]: { secret: SECRET, origins: [ORIGIN] } }),
        GATEWAY_PORT: String(port),
        GATEWAY_WORKERS: '2',
        GATEWAY_ID: 'gw-cluster',
        LOG_LEVEL: 'warn',
      },
      stdio: ['ignore', 'inherit', 'inherit'],
    });
    const exited = new Promise<number | null>((resolve) => primary.once('exit', (code) => resolve(code)));
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
});
