// Process sampling from /proc (Linux): CPU time, RSS, children; machine-wide CPU.
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

let clockTicks;
/** Clock ticks per second of /proc/<pid>/stat times (usually 100). */
export function clkTck() {
  if (clockTicks === undefined) {
    try {
      clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      clockTicks = 100;
    }
  }
  return clockTicks;
}

function statFields(pid) {
  const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name (field 2) may contain spaces and parentheses: split after the last ')'.
  return text.slice(text.lastIndexOf(')') + 2).split(' ');
}

/** User + system CPU seconds consumed so far by the process (all its threads); NaN if it is gone. */
export function cpuSeconds(pid) {
  try {
    const f = statFields(pid);
    // After the name: [0]=state(3) [1]=ppid(4) … [11]=utime(14) [12]=stime(15)
    return (Number(f[11]) + Number(f[12])) / clkTck();
  } catch {
    return Number.NaN;
  }
}

/** { user, system } CPU seconds of the process so far; NaN fields if it is gone. */
export function cpuTimes(pid) {
  try {
    const f = statFields(pid);
    return { user: Number(f[11]) / clkTck(), system: Number(f[12]) / clkTck() };
  } catch {
    return { user: Number.NaN, system: Number.NaN };
  }
}

/** Summed { user, system } CPU seconds over several pids (gone processes count 0). */
export function cpuTimesOf(pids) {
  const total = { user: 0, system: 0 };
  for (const pid of pids) {
    const t = cpuTimes(pid);
    if (!Number.isNaN(t.user)) {
      total.user += t.user;
      total.system += t.system;
    }
  }
  return total;
}

/** Parent pid, or undefined when the process is gone. */
export function parentPid(pid) {
  try {
    return Number(statFields(pid)[1]);
  } catch {
    return undefined;
  }
}

/** Resident set size in bytes (VmRSS of /proc/<pid>/status); NaN if the process is gone. */
export function rssBytes(pid) {
  try {
    const match = /^VmRSS:\s+(\d+)\s+kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) * 1024 : Number.NaN;
  } catch {
    return Number.NaN;
  }
}

/** Open file descriptors of a process (NaN if unreadable). */
export function openFds(pid) {
  try {
    return readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return Number.NaN;
  }
}

/** Direct children of `pid` (scans /proc: this kernel has no /proc/<pid>/task/<tid>/children). */
export function childPids(pid) {
  const out = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    if (parentPid(Number(entry)) === pid) out.push(Number(entry));
  }
  return out;
}

/** `pid` and all its descendants. */
export function processTree(pid) {
  const all = [pid];
  for (let i = 0; i < all.length; i++) all.push(...childPids(all[i]));
  return all;
}

/** Sum of CPU seconds over several pids (gone processes count 0). */
export function cpuSecondsOf(pids) {
  let total = 0;
  for (const pid of pids) {
    const s = cpuSeconds(pid);
    if (!Number.isNaN(s)) total += s;
  }
  return total;
}

/** Sum of RSS bytes over several pids (gone processes count 0). */
export function rssBytesOf(pids) {
  let total = 0;
  for (const pid of pids) {
    const b = rssBytes(pid);
    if (!Number.isNaN(b)) total += b;
  }
  return total;
}

/** Machine-wide CPU counters from /proc/stat, in seconds: { busy, total }. */
export function machineCpu() {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0];
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  const [user, nice, system, idle, iowait, irq, softirq, steal] = v;
  const idleAll = idle + (iowait ?? 0);
  const busy = user + nice + system + (irq ?? 0) + (softirq ?? 0) + (steal ?? 0);
  return { busy: busy / clkTck(), total: (busy + idleAll) / clkTck() };
}

/**
 * A CPU meter over a set of named process groups: `mark()` then `read()` gives the CPU seconds each
 * group used in between, and the machine's busy fraction (0..cores).
 */
export function cpuMeter(groups) {
  const snap = () => {
    const out = { at: performance.now(), machine: machineCpu(), groups: {} };
    for (const [name, pids] of Object.entries(groups())) out.groups[name] = cpuSecondsOf(pids);
    return out;
  };
  let start = snap();
  return {
    mark() {
      start = snap();
    },
    read() {
      const end = snap();
      const wall = (end.at - start.at) / 1000;
      const used = {};
      for (const name of Object.keys(end.groups)) used[name] = end.groups[name] - (start.groups[name] ?? 0);
      const machineBusyCores = (end.machine.busy - start.machine.busy) / wall;
      return { wallSeconds: wall, cpuSeconds: used, machineBusyCores };
    },
  };
}

/**
 * CPU seconds of a process's threads so far, by thread name (`comm`: "node (main)" for the main
 * thread, "node" for worker threads, libuv's and ClickHouse's pool names…), summed over threads
 * of the same name. Threads that ended are missing.
 */
export function threadCpuSeconds(pid = process.pid) {
  const byName = new Map();
  let tids;
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return byName;
  }
  for (const tid of tids) {
    try {
      const text = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      const comm = text.slice(text.indexOf('(') + 1, text.lastIndexOf(')'));
      // Node names neither its main thread nor worker threads: the main one is told by its tid.
      const name = String(tid) === String(pid) ? `${comm} (main)` : comm;
      const f = text.slice(text.lastIndexOf(')') + 2).split(' ');
      const seconds = (Number(f[11]) + Number(f[12])) / clkTck();
      byName.set(name, (byName.get(name) ?? 0) + seconds);
    } catch {
      // the thread ended meanwhile
    }
  }
  return byName;
}

/** Per-thread-name CPU seconds between two threadCpuSeconds() samples, largest first. */
export function threadCpuDelta(before, after) {
  const out = [];
  for (const [name, seconds] of after) out.push([name, seconds - (before.get(name) ?? 0)]);
  return out.filter(([, s]) => s > 0).sort((a, b) => b[1] - a[1]);
}

/**
 * CPU seconds spent so far by the threads of the given processes whose name matches `pattern`,
 * e.g. a JVM's JIT compiler threads ("C2 CompilerThre…").
 */
export function threadCpuSecondsOf(pids, pattern) {
  let total = 0;
  for (const pid of pids) {
    for (const [name, seconds] of threadCpuSeconds(pid)) if (pattern.test(name)) total += seconds;
  }
  return total;
}

/**
 * The kernel's page-cache writeback settings (`/proc/sys/vm`). With the defaults (background
 * writeback from 10% of memory, dirty pages kept up to 30 s) the broker's log is written back in
 * bursts of a gigabyte or more every half minute here, and each burst stalls every process on the
 * two cores for tens of milliseconds (BENCHMARKS.md, "Writeback of the broker's log").
 */
export function writebackSettings() {
  const read = (name) => {
    try {
      return Number(readFileSync(`/proc/sys/vm/${name}`, 'utf8').trim());
    } catch {
      return undefined;
    }
  };
  const settings = {
    dirtyBackgroundBytes: read('dirty_background_bytes'),
    dirtyBackgroundRatio: read('dirty_background_ratio'),
    dirtyExpireCentisecs: read('dirty_expire_centisecs'),
  };
  /** Whether writeback starts early enough to come in small steps (a background limit of at most 64 MiB, as measured). */
  const steady =
    settings.dirtyBackgroundBytes !== undefined &&
    settings.dirtyBackgroundBytes > 0 &&
    settings.dirtyBackgroundBytes <= 64 * 2 ** 20;
  return { ...settings, steady };
}
