// Walks the pods' cgroup v2 tree and names each pod network namespace found there: inode, a live pid's ns path, local addresses.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { parseFibTrieLocal, parseIfInet6 } from './proc-net';

/** One network namespace seen through a live process of a cgroup below the root. */
export interface DiscoveredNetns {
  /** Inode of the namespace (nsfs): the same for every process in it, new when the namespace is recreated. */
  readonly ino: number;
  /** The process the namespace was read through. */
  readonly pid: number;
  /** `<proc>/<pid>/ns/net`: valid while that process lives; rediscovered on every scan. */
  readonly path: string;
  /** The cgroups whose processes live in this namespace. */
  readonly cgroups: readonly string[];
  /** Local IPv4 (`/32 host LOCAL`) and non-link-local IPv6 addresses, loopback excluded. */
  readonly addresses: readonly string[];
}

export interface NetnsScan {
  readonly namespaces: readonly DiscoveredNetns[];
  /** cgroup directories visited (the root included). */
  readonly cgroups: number;
  /** cgroups with at least one process (the agent's own not counted). */
  readonly populated: number;
  /** cgroups whose process shares the agent's network namespace (hostNetwork pods): never enrolled. */
  readonly hostNetwork: number;
  readonly durationMs: number;
}

export interface ScanOptions {
  /** The pods' cgroup root (the agent's --cgroup-root). */
  readonly cgroupRoot: string;
  /** Where procfs is mounted (default /proc; on Kubernetes the agent needs hostPID to see the pods' processes). */
  readonly procRoot?: string;
  /** The agent's own pid: its cgroup is skipped (default process.pid). */
  readonly selfPid?: number;
  /** Inode of the agent's own network namespace (default: stat of <proc>/self/ns/net). */
  readonly hostNetnsIno?: number;
  /** netns inode → pid read through last time: kept while alive, so the path (and the reconciler's cookie cache) stays put. */
  readonly preferredPids?: ReadonlyMap<number, number>;
}

/** Directories this many levels below the root are not walked (a loop guard; kubepods trees are 3-4 deep). */
const MAX_DEPTH = 16;
/**
 * cgroupfs and procfs reads are answered from kernel memory in microseconds, so they are made synchronously (a
 * thread-pool round trip per read costs more than the read) in slices of this many cgroups or namespaces, yielding
 * to the event loop between slices so the proxies are never held up for more than about a millisecond.
 */
const SLICE = 16;

const yieldToEventLoop = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

function errnoOf(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | undefined)?.code;
}

/** Every cgroup directory at and below `root`. A subtree vanishing mid-walk is skipped; an unreadable root throws. */
export async function cgroupDirs(root: string): Promise<string[]> {
  const out: string[] = [];
  let level = [root];
  for (let depth = 0; level.length > 0 && depth <= MAX_DEPTH; depth++) {
    out.push(...level);
    const next: string[] = [];
    for (let i = 0; i < level.length; i++) {
      if (i > 0 && i % SLICE === 0) await yieldToEventLoop();
      const dir = level[i]!;
      try {
        for (const e of readdirSync(dir, { withFileTypes: true })) if (e.isDirectory()) next.push(join(dir, e.name));
      } catch (err) {
        if (dir === root) throw err;
        // removed while we walked
      }
    }
    level = next;
  }
  return out;
}

function readPids(cgroup: string): number[] {
  try {
    const text = readFileSync(join(cgroup, 'cgroup.procs'), 'utf8');
    const pids: number[] = [];
    for (const line of text.split('\n')) {
      const pid = Number(line);
      if (line !== '' && Number.isInteger(pid) && pid > 0) pids.push(pid); // 0: a process outside our pid namespace
    }
    return pids;
  } catch {
    return []; // gone, or a threaded cgroup (EOPNOTSUPP): nothing to learn here
  }
}

function netnsIno(procRoot: string, pid: number): number | undefined {
  try {
    return statSync(join(procRoot, String(pid), 'ns', 'net')).ino;
  } catch {
    return undefined; // exited (ENOENT), or not ours to read (EACCES without CAP_SYS_PTRACE)
  }
}

/** The first live pid of `pids` (ascending) and its namespace inode. */
function firstLive(procRoot: string, pids: number[]): { pid: number; ino: number } | undefined {
  for (const pid of [...pids].sort((a, b) => a - b)) {
    const ino = netnsIno(procRoot, pid);
    if (ino !== undefined) return { pid, ino };
  }
  return undefined;
}

/**
 * Reads the namespace's addresses through `pid`, then checks that the pid still lives in the same namespace (a pid
 * that exited and was reused would otherwise lend us another namespace's addresses).
 */
function addressesVia(procRoot: string, pid: number, ino: number): string[] | undefined {
  const base = join(procRoot, String(pid), 'net');
  let fib: string;
  try {
    fib = readFileSync(join(base, 'fib_trie'), 'utf8');
  } catch {
    return undefined;
  }
  let inet6 = '';
  try {
    inet6 = readFileSync(join(base, 'if_inet6'), 'utf8');
  } catch (err) {
    if (errnoOf(err) !== 'ENOENT') return undefined; // ENOENT: IPv6 disabled in that namespace
  }
  if (netnsIno(procRoot, pid) !== ino) return undefined;
  return [...parseFibTrieLocal(fib), ...parseIfInet6(inet6)];
}

/** One pass over the cgroup tree. Processes that exit during the pass are simply not seen; only an unreadable root throws. */
export async function scanNetns(opts: ScanOptions): Promise<NetnsScan> {
  const started = performance.now();
  const procRoot = opts.procRoot ?? '/proc';
  const selfPid = opts.selfPid ?? process.pid;
  const hostIno = opts.hostNetnsIno ?? statSync(join(procRoot, 'self', 'ns', 'net')).ino;
  const dirs = await cgroupDirs(opts.cgroupRoot);

  // cgroup → one live process of it (the lowest pid: in a container that is usually its first process).
  const byIno = new Map<number, Array<{ cgroup: string; pid: number }>>();
  let populated = 0;
  let hostNetwork = 0;
  for (let i = 0; i < dirs.length; i++) {
    if (i > 0 && i % SLICE === 0) await yieldToEventLoop();
    const cgroup = dirs[i]!;
    const pids = readPids(cgroup);
    if (pids.length === 0 || pids.includes(selfPid)) continue;
    populated++;
    const live = firstLive(procRoot, pids);
    if (!live) continue;
    if (live.ino === hostIno) {
      hostNetwork++;
      continue;
    }
    const list = byIno.get(live.ino) ?? [];
    list.push({ cgroup, pid: live.pid });
    byIno.set(live.ino, list);
  }

  const namespaces: DiscoveredNetns[] = [];
  let n = 0;
  for (const [ino, members] of byIno) {
    if (n++ > 0 && n % SLICE === 0) await yieldToEventLoop();
    const preferred = opts.preferredPids?.get(ino);
    const order = [...new Set(members.map((m) => m.pid))].sort((a, b) => (a === preferred ? -1 : b === preferred ? 1 : a - b));
    for (const pid of order) {
      const addresses = addressesVia(procRoot, pid, ino);
      if (!addresses) continue;
      namespaces.push({ ino, pid, path: join(procRoot, String(pid), 'ns', 'net'), cgroups: members.map((m) => m.cgroup), addresses });
      break;
    }
  }
  return { namespaces, cgroups: dirs.length, populated, hostNetwork, durationMs: performance.now() - started };
}
