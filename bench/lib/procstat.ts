// Bench resource sampling: machine CPU (/proc/stat), per-cgroup CPU (cgroup2 cpu.stat), agent and proxy RSS (/proc/<pid>/status).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

/** Busy (user nice system irq softirq), steal and total jiffies of the whole machine (all cores). */
function machineTicks(): { busy: number; steal: number; total: number } {
  const line = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0]!;
  const v = line.trim().split(/\s+/).slice(1).map(Number); // user nice system idle iowait irq softirq steal
  const total = v.slice(0, 8).reduce((a, b) => a + b, 0);
  const steal = v[7] ?? 0;
  const idle = (v[3] ?? 0) + (v[4] ?? 0);
  return { busy: total - idle - steal, steal, total };
}

/** CPU time (µs) used by every process of a cgroup2 subtree; 0 when the cgroup is gone. */
export function cgroupUsageUsec(cgroup: string): number {
  try {
    const m = /usage_usec (\d+)/.exec(fs.readFileSync(path.join(cgroup, 'cpu.stat'), 'utf8'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

const CLK_TCK = 100; // USER_HZ: /proc/<pid>/stat times are in 1/100 s on Linux

/** CPU ticks of the kernel's softirq threads: packet processing deferred out of the senders' context lands there. */
function ksoftirqdTicks(): number {
  let t = 0;
  for (const pid of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
      const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      if (!comm.startsWith('ksoftirqd/')) continue;
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      t += Number(f[11]) + Number(f[12]); // utime stime
    } catch {
      /* gone */
    }
  }
  return t;
}

export interface CpuWindow {
  /** Whole machine, in % of one core (max = 100 × cores). */
  machine: number;
  /** Time the hypervisor gave the vCPUs to someone else (steal), % of one core. */
  steal: number;
  /** The kernel's ksoftirqd threads (network work deferred out of the bench processes' context), % of one core. */
  ksoftirqd: number;
  /**
   * Machine busy time used neither inside the bench's own cgroup subtree (`outside`) nor by ksoftirqd, % of one core:
   * other processes on the machine, the bench runner itself, other kernel threads, polling idle CPUs (latency test).
   * Large values mean the numbers are contaminated.
   */
  other: number;
  /** Per named cgroup, in % of one core. */
  groups: Record<string, number>;
}

/** Starts a CPU window over the machine and the given cgroups; `end()` returns the averages since `start`. */
export function cpuWindow(groups: Record<string, string>, outside: string): { end(): CpuWindow } {
  const t0 = process.hrtime.bigint();
  const m0 = machineTicks();
  const o0 = cgroupUsageUsec(outside);
  const k0 = ksoftirqdTicks();
  const g0 = Object.fromEntries(Object.entries(groups).map(([k, cg]) => [k, cgroupUsageUsec(cg)]));
  return {
    end() {
      const wallUs = Number(process.hrtime.bigint() - t0) / 1000;
      const m1 = machineTicks();
      const cores = os.cpus().length;
      const share = (d: number) => (m1.total > m0.total ? (100 * cores * d) / (m1.total - m0.total) : 0);
      const machine = share(m1.busy - m0.busy);
      const pct = (usec: number) => (wallUs > 0 ? (100 * usec) / wallUs : 0);
      const out: Record<string, number> = {};
      for (const [k, cg] of Object.entries(groups)) out[k] = pct(cgroupUsageUsec(cg) - g0[k]!);
      const mine = pct(cgroupUsageUsec(outside) - o0);
      const ksoftirqd = pct(((ksoftirqdTicks() - k0) * 1e6) / CLK_TCK);
      return { machine, steal: share(m1.steal - m0.steal), ksoftirqd, other: Math.max(0, machine - mine - ksoftirqd), groups: out };
    },
  };
}

/** VmRSS and VmHWM of a process in KiB (null when it is gone). */
export function memKiB(pid: number): { rss: number; hwm: number } | null {
  try {
    const s = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const rss = /VmRSS:\s+(\d+)/.exec(s);
    const hwm = /VmHWM:\s+(\d+)/.exec(s);
    return rss && hwm ? { rss: Number(rss[1]), hwm: Number(hwm[1]) } : null;
  } catch {
    return null;
  }
}

/** Sum of VmRSS (KiB) of every process in the given cgroups (not their children cgroups); 0 when none. */
export function cgroupsRssKiB(cgroups: string[]): number {
  let total = 0;
  for (const cg of cgroups) {
    let pids: string[] = [];
    try {
      pids = fs.readFileSync(path.join(cg, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean);
    } catch {
      continue;
    }
    for (const pid of pids) total += memKiB(Number(pid))?.rss ?? 0;
  }
  return total;
}

/**
 * Samples the RSS of named processes every `everyMs`; keeps the overall peak and the peak since the last
 * `resetWindow()`. A window can also follow named groups of cgroups (the sum of their processes' RSS), e.g. a path's
 * proxies.
 */
export class RssSampler {
  private timer: NodeJS.Timeout | undefined;
  readonly peak: Record<string, number> = {};
  windowPeak: Record<string, number> = {};
  private windowCgroups: Record<string, string[]> = {};

  constructor(
    private readonly pids: Record<string, number>,
    private readonly everyMs = 200,
  ) {}

  sample(): Record<string, number> {
    const now: Record<string, number> = {};
    for (const [k, pid] of Object.entries(this.pids)) {
      const m = memKiB(pid);
      if (!m) continue;
      now[k] = m.rss;
      this.peak[k] = Math.max(this.peak[k] ?? 0, m.rss);
      this.windowPeak[k] = Math.max(this.windowPeak[k] ?? 0, m.rss);
    }
    for (const [k, cgs] of Object.entries(this.windowCgroups)) {
      const rss = cgroupsRssKiB(cgs);
      if (rss > 0) this.windowPeak[k] = Math.max(this.windowPeak[k] ?? 0, rss);
    }
    return now;
  }

  start(): void {
    this.sample();
    this.timer = setInterval(() => this.sample(), this.everyMs);
    this.timer.unref();
  }

  /** Starts a new window; `cgroups` (name → cgroup dirs) are followed during it. */
  resetWindow(cgroups: Record<string, string[]> = {}): void {
    this.windowPeak = {};
    this.windowCgroups = cgroups;
    this.sample();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }
}
