// Child processes a benchmark starts, tracked so every one of them is stopped, even on failure.
import { fork, spawn } from 'node:child_process';
import { processTree } from './proc.mjs';

const tracked = new Set();
let installed = false;

function install() {
  if (installed) return;
  installed = true;
  // Last resort: whatever is still tracked when this process exits gets SIGKILL (tree included).
  process.on('exit', () => {
    for (const entry of tracked) killTree(entry.child.pid, 'SIGKILL', entry.extraPids);
  });
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    process.once(signal, () => {
      process.stderr.write(`\n${signal}: stopping every process this benchmark started\n`);
      void stopAll().finally(() => process.exit(130));
    });
  }
}

function killTree(pid, signal, extraPids = []) {
  if (pid === undefined) return;
  let pids = [];
  try {
    pids = processTree(pid);
  } catch {
    pids = [pid];
  }
  for (const p of [...pids, ...extraPids]) {
    try {
      process.kill(p, signal);
    } catch {
      // already gone
    }
  }
}

function track(child, name) {
  install();
  const entry = { child, name, extraPids: [] };
  entry.exited = new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    else child.once('exit', () => resolve());
  });
  tracked.add(entry);
  void entry.exited.then(() => tracked.delete(entry));
  return {
    child,
    name,
    pid: child.pid,
    exited: entry.exited,
    /** Remember pids (e.g. detached workers) that must die with this process. */
    adopt(pids) {
      for (const p of pids) if (!entry.extraPids.includes(p)) entry.extraPids.push(p);
    },
    /** SIGTERM, then SIGKILL (tree and adopted pids) after `graceMs`. */
    async stop(graceMs = 15_000) {
      const extra = [...entry.extraPids];
      if (child.exitCode === null && child.signalCode === null) {
        try {
          child.kill('SIGTERM');
        } catch {
          // gone
        }
        const timer = new Promise((resolve) => setTimeout(resolve, graceMs).unref());
        await Promise.race([entry.exited, timer]);
        if (child.exitCode === null && child.signalCode === null) killTree(child.pid, 'SIGKILL', extra);
        await Promise.race([entry.exited, new Promise((resolve) => setTimeout(resolve, 2000).unref())]);
      }
      // Adopted processes (detached workers) must not outlive their parent.
      const deadline = Date.now() + graceMs;
      for (const p of extra) {
        while (alive(p) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 100));
        if (alive(p)) {
          try {
            process.kill(p, 'SIGKILL');
          } catch {
            // gone
          }
        }
      }
    },
  };
}

export function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** `child_process.spawn`, tracked. */
export function spawnTracked(name, command, args, options = {}) {
  return track(spawn(command, args, options), name);
}

/** `child_process.fork` (IPC channel), tracked. */
export function forkTracked(name, module, args, options = {}) {
  return track(fork(module, args, options), name);
}

/** Stops every tracked process (SIGTERM, then SIGKILL). */
export async function stopAll(graceMs = 5000) {
  const entries = [...tracked];
  await Promise.all(
    entries.map(async (entry) => {
      killTree(entry.child.pid, 'SIGTERM', entry.extraPids);
      await Promise.race([entry.exited, new Promise((resolve) => setTimeout(resolve, graceMs).unref())]);
      killTree(entry.child.pid, 'SIGKILL', entry.extraPids);
    }),
  );
}
