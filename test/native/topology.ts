// Native-test harness: a private cgroup, network namespaces, bpffs pins and child "pod" processes, all removed afterwards.
import { execFileSync, spawn } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';

export const CGROUP2_ROOT = '/sys/fs/cgroup/unified';
export const BPFFS_ROOT = '/sys/fs/bpf';
const REPO_ROOT = path.resolve(__dirname, '../..');
const TSX = path.join(REPO_ROOT, 'node_modules', '.bin', 'tsx');
const PROBE = path.join(__dirname, 'fixtures', 'pod-probe.ts');

export const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;

export function run(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

function tryRun(cmd: string, args: string[]): void {
  try {
    run(cmd, args);
  } catch {
    // cleanup is best effort; the next step still runs
  }
}

export function ensureBpffs(): void {
  const mounts = fs.readFileSync('/proc/mounts', 'utf8');
  if (!mounts.split('\n').some((l) => l.split(' ')[1] === BPFFS_ROOT && l.split(' ')[2] === 'bpf')) {
    fs.mkdirSync(BPFFS_ROOT, { recursive: true });
    run('mount', ['-t', 'bpf', 'bpf', BPFFS_ROOT]);
  }
}

export interface ProbeEvent {
  event: 'listening' | 'accepted' | 'connected' | 'connect-error' | 'timeout' | 'fatal';
  [key: string]: unknown;
}

export interface ProbePlan {
  listen: Array<{ name: string; ip: string; port: number }>;
  connect: Array<{ ip: string; port: number; localPort?: number; localIp?: string; connectTimeoutMs?: number }>;
  resetOnAccept?: boolean;
  expectAccepts: number;
  timeoutMs?: number;
}

export interface ProbeHandle {
  events: ProbeEvent[];
  listening: Promise<void>;
  exited: Promise<number | null>;
  kill(): void;
}

/** A test run's resources. Every name carries the smesh-test-<run> prefix. */
export class TestTopology {
  readonly run = crypto.randomBytes(4).toString('hex');
  readonly prefix = `smesh-test-${this.run}`;
  readonly cgroupPath = path.join(CGROUP2_ROOT, this.prefix);
  readonly bpffsDir = path.join(BPFFS_ROOT, this.prefix);
  // A test-unique capture address on the netns lo (169.254.0.0/16, avoiding .0 and .255).
  readonly captureIp = `169.254.${2 + crypto.randomInt(250)}.${2 + crypto.randomInt(250)}`;
  private readonly netnsNames: string[] = [];
  private readonly childCgroups: string[] = [];
  private readonly extraPins: string[] = [];
  private readonly children = new Set<ProbeHandle>();

  createCgroup(): void {
    fs.mkdirSync(this.cgroupPath);
  }

  /** A cgroup below the test cgroup (removed before it). */
  createChildCgroup(name: string): string {
    const p = path.join(this.cgroupPath, name);
    fs.mkdirSync(p);
    this.childCgroups.push(p);
    return p;
  }

  /** Another pin dir of this run: /sys/fs/bpf/smesh-test-<run>-<suffix>. */
  extraBpffsDir(suffix: string): string {
    const p = `${this.bpffsDir}-${suffix}`;
    this.extraPins.push(p);
    return p;
  }

  /** Creates netns smesh-test-<run>-<suffix> with lo up and the given /32 addresses on lo. */
  createNetns(suffix: string, loAddresses: string[]): string {
    const name = `${this.prefix}-${suffix}`;
    run('ip', ['netns', 'add', name]);
    this.netnsNames.push(name);
    run('ip', ['-n', name, 'link', 'set', 'lo', 'up']);
    for (const a of loAddresses) run('ip', ['-n', name, 'addr', 'add', `${a}/32`, 'dev', 'lo']);
    return `/run/netns/${name}`;
  }

  /** Starts the probe; `inCgroup` joins the test cgroup first, then nsenter --net. */
  probe(netnsPath: string, inCgroup: boolean, plan: ProbePlan): ProbeHandle {
    const full = { ...plan, bpffsDir: this.bpffsDir, timeoutMs: plan.timeoutMs ?? 8000 };
    const procs = inCgroup ? path.join(this.cgroupPath, 'cgroup.procs') : '';
    const script = 'if [ -n "$1" ]; then echo $$ > "$1" || exit 97; fi; exec nsenter --net="$2" -- "$3" "$4" "$5"';
    const child = spawn('sh', ['-c', script, 'sh', procs, netnsPath, TSX, PROBE, JSON.stringify(full)], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const events: ProbeEvent[] = [];
    let stderr = '';
    let buffered = '';
    let onListening: () => void = () => undefined;
    const listening = new Promise<void>((resolve) => {
      onListening = resolve;
    });
    child.stdout.on('data', (chunk: Buffer) => {
      buffered += chunk.toString('utf8');
      let nl: number;
      while ((nl = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        if (!line.trim()) continue;
        const ev = JSON.parse(line) as ProbeEvent;
        events.push(ev);
        if (ev.event === 'listening') onListening();
      }
    });
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString('utf8');
    });
    const handle: ProbeHandle = {
      events,
      listening,
      exited: new Promise((resolve) => {
        child.once('exit', (code) => {
          this.children.delete(handle);
          if (code !== 0 && stderr) events.push({ event: 'fatal', message: stderr.slice(-2000) });
          onListening();
          resolve(code);
        });
      }),
      kill: () => {
        if (child.exitCode === null) child.kill('SIGKILL');
      },
    };
    this.children.add(handle);
    return handle;
  }

  /** Programs attached to the test cgroup, per bpftool. */
  attachedPrograms(cgroup = this.cgroupPath): Array<{ id: number; attach_type: string; name: string }> {
    const out = run('bpftool', ['-j', 'cgroup', 'show', cgroup]).trim();
    return out ? JSON.parse(out) : [];
  }

  /** Removes everything this run created; safe to call after any failure, and more than once. */
  async cleanup(): Promise<void> {
    for (const child of [...this.children]) {
      child.kill();
      await child.exited;
    }
    // Pinned links outlive processes (and even rmdir of their cgroup): detach by removing the pins.
    for (const dir of [this.bpffsDir, ...this.extraPins]) {
      if (fs.existsSync(dir)) fs.rmSync(dir, { recursive: true, force: true });
    }
    for (const cg of [...this.childCgroups.splice(0).reverse(), this.cgroupPath]) {
      // rmdir fails while a killed child is still leaving the cgroup: retry briefly (bounded).
      for (let i = 0; i < 50 && fs.existsSync(cg); i++) {
        try {
          fs.rmdirSync(cg);
        } catch {
          await new Promise((r) => setTimeout(r, 100));
        }
      }
    }
    for (const name of this.netnsNames.splice(0)) {
      tryRun('ip', ['-n', name, 'addr', 'flush', 'dev', 'lo']);
      tryRun('ip', ['netns', 'del', name]);
    }
  }
}
