import { readdirSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { currentThreadId, threadCpuSeconds } from './threads.js';

const linux = process.platform === 'linux';

describe.runIf(linux)('thread CPU time (Linux)', () => {
  it('names the calling thread among the process\'s threads', () => {
    const id = currentThreadId();
    expect(id).toBeDefined();
    expect(readdirSync('/proc/self/task').map(Number)).toContain(id);
  });

  it('counts the CPU time the calling thread spends, within what the process spent', () => {
    const id = currentThreadId() as number;
    const threadBefore = threadCpuSeconds(id) as number;
    const processBefore = process.cpuUsage();
    // Busy until the process as a whole has spent 300 ms more (this thread most of it).
    let spin = 0;
    while (process.cpuUsage(processBefore).user + process.cpuUsage(processBefore).system < 300_000) spin++;
    const processSpent = (process.cpuUsage(processBefore).user + process.cpuUsage(processBefore).system) / 1e6;
    const threadSpent = (threadCpuSeconds(id) as number) - threadBefore;
    expect(spin).toBeGreaterThan(0);
    expect(threadSpent).toBeGreaterThan(0.05);
    // /proc counts in ticks of 10 ms: allow one on each reading.
    expect(threadSpent).toBeLessThanOrEqual(processSpent + 0.02);
  });

  it('answers undefined for a thread that is not there', () => {
    expect(threadCpuSeconds(2 ** 31 - 1)).toBeUndefined();
  });
});
