// Kubernetes' CPU model for the namespaced benches: each pod and each agent gets CPU shares from its CPU request (kubelet: shares = millicores × 1024 / 1000, a cgroup per pod), so a busy pod competes with the node proxy as it would on a node instead of as one more thread of one flat group. Uses the cgroup v1 cpu controller when it is mounted (this testbed's hybrid layout), else cgroup v2 cpu.weight where the controller can be enabled; processes are moved into their group as they appear.
import * as fs from 'node:fs';
import * as path from 'node:path';

const V1_CPU = '/sys/fs/cgroup/cpu';
const STALE_PREFIX = 'smesh-test-bench';
const MOVE_EVERY_MS = 100;

export interface CpuGroup {
  /** The cgroup v2 directory the topology runs this pod's / agent's processes in. */
  readonly v2: string;
  /** CPU request in millicores (kubelet's shares = m × 1024 / 1000, at least 2). */
  readonly requestMillis: number;
}

export interface CpuModel {
  /** What was applied, for the report (or why nothing was). */
  readonly description: string;
  readonly active: boolean;
  stop(): void;
}

/** kubelet's MilliCPUToShares. */
export function sharesFor(millis: number): number {
  return Math.max(2, Math.floor((millis * 1024) / 1000));
}

/** cgroup v2 cpu.weight from v1 shares, as the OCI runtimes convert it. */
export function weightFor(shares: number): number {
  return Math.max(1, Math.min(10000, 1 + Math.floor(((shares - 2) * 9999) / 262142)));
}

function procsUnder(dir: string): number[] {
  const out: number[] = [];
  const walk = (d: string) => {
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(d, { withFileTypes: true });
    } catch {
      return;
    }
    try {
      for (const l of fs.readFileSync(path.join(d, 'cgroup.procs'), 'utf8').split('\n')) if (l.trim()) out.push(Number(l));
    } catch {
      // removed meanwhile
    }
    for (const e of entries) if (e.isDirectory()) walk(path.join(d, e.name));
  };
  walk(dir);
  return out;
}

/** Removes empty v1 groups an earlier, killed bench run left behind (rmdir refuses a group that still has processes). */
function sweepStaleV1(): void {
  if (!fs.existsSync(V1_CPU)) return;
  for (const e of fs.readdirSync(V1_CPU, { withFileTypes: true })) {
    if (!e.isDirectory() || !e.name.startsWith(STALE_PREFIX)) continue;
    const top = path.join(V1_CPU, e.name);
    try {
      for (const sub of fs.readdirSync(top, { withFileTypes: true })) if (sub.isDirectory()) fs.rmdirSync(path.join(top, sub.name));
      fs.rmdirSync(top);
    } catch {
      // still in use: another run
    }
  }
}

/**
 * Puts every process of each group (now and as they start) into a cgroup with CPU shares from its request. `runName`
 * names the v1 tree (`/sys/fs/cgroup/cpu/<runName>`); stop() moves the processes back and removes it.
 */
export function startCpuModel(runName: string, groups: Record<string, CpuGroup>): CpuModel {
  if (!runName.startsWith(STALE_PREFIX)) throw new Error(`cpu model: run name ${runName} must start with ${STALE_PREFIX}`);
  const parts = Object.entries(groups).map(([name, g]) => `${name} ${g.requestMillis}m (${sharesFor(g.requestMillis)} shares)`);
  if (fs.existsSync(path.join(V1_CPU, 'cpu.shares'))) {
    sweepStaleV1();
    const root = path.join(V1_CPU, runName);
    fs.mkdirSync(root, { recursive: true });
    const dirs = Object.entries(groups).map(([name, g], i) => {
      const d = path.join(root, `g${i}-${name.replace(/[^a-z0-9]+/gi, '-')}`);
      fs.mkdirSync(d, { recursive: true });
      fs.writeFileSync(path.join(d, 'cpu.shares'), String(sharesFor(g.requestMillis)));
      return { v1: d, v2: g.v2 };
    });
    const move = () => {
      for (const d of dirs) {
        for (const pid of procsUnder(d.v2)) {
          try {
            fs.writeFileSync(path.join(d.v1, 'cgroup.procs'), String(pid));
          } catch {
            // exited meanwhile
          }
        }
      }
    };
    move();
    const timer = setInterval(move, MOVE_EVERY_MS);
    return {
      active: true,
      description: `cgroup v1 cpu.shares per pod and agent from CPU requests: ${parts.join(', ')}`,
      stop() {
        clearInterval(timer);
        for (const d of dirs) {
          let pids: string[] = [];
          try {
            pids = fs.readFileSync(path.join(d.v1, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean);
          } catch {
            // gone
          }
          for (const pid of pids) {
            try {
              fs.writeFileSync(path.join(V1_CPU, 'cgroup.procs'), pid);
            } catch {
              // exited
            }
          }
          try {
            fs.rmdirSync(d.v1);
          } catch {
            // a process raced in; the next run's sweep removes it
          }
        }
        try {
          fs.rmdirSync(root);
        } catch {
          // as above
        }
      },
    };
  }
  // cgroup v2: cpu.weight on the groups themselves, once the controller is enabled down to them.
  try {
    for (const g of Object.values(groups)) {
      const rel = path.relative('/sys/fs/cgroup', g.v2).split(path.sep);
      let d = '/sys/fs/cgroup';
      for (const part of rel.slice(0, -1)) {
        fs.writeFileSync(path.join(d, 'cgroup.subtree_control'), '+cpu');
        d = path.join(d, part);
      }
      fs.writeFileSync(path.join(d, 'cgroup.subtree_control'), '+cpu');
      fs.writeFileSync(path.join(g.v2, 'cpu.weight'), String(weightFor(sharesFor(g.requestMillis))));
    }
    return { active: true, description: `cgroup v2 cpu.weight per pod and agent from CPU requests: ${parts.join(', ')}`, stop() {} };
  } catch (err) {
    return { active: false, description: `not available: no cgroup v1 cpu controller and cgroup v2 cpu could not be enabled (${(err as Error).message})`, stop() {} };
  }
}
