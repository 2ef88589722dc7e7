/**
 * Per-thread CPU time, for the services' metrics: Node reports CPU for the whole process only, and
 * a service whose work runs in worker threads needs to see which thread is the limit. Linux only
 * (/proc); elsewhere every function answers undefined.
 */
import { readFileSync, readlinkSync } from 'node:fs';

/** Clock ticks per second of /proc's CPU times (USER_HZ: 100 on every Linux platform Node runs on). */
const TICKS_PER_SECOND = 100;

/** The operating system's id of the calling thread, or undefined where /proc does not tell it. */
export function currentThreadId(): number | undefined {
  try {
    const match = /\/task\/(\d+)$/.exec(readlinkSync('/proc/thread-self'));
    return match === null ? undefined : Number(match[1]);
  } catch {
    return undefined;
  }
}

/** User plus system CPU seconds a thread of this process has used, or undefined (no /proc, or the thread ended). */
export function threadCpuSeconds(threadId: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/self/task/${threadId}/stat`, 'utf8');
    // The name (field 2) may hold spaces and parentheses: the fields after it follow its last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(fields[11]) + Number(fields[12]);
    return Number.isFinite(ticks) ? ticks / TICKS_PER_SECOND : undefined;
  } catch {
    return undefined;
  }
}
