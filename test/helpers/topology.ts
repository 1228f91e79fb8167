// Namespaced e2e topology: "nodes" and "pods" as netns + cgroups on one machine, their processes, the mesh config and agents.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import YAML from 'yaml';
import { spawnCaptured, waitExit, lastJsonLine, sleep, tail, type CapturedProcess, type ExitInfo, type RunResult, type SpawnCapturedOptions } from './proc';

export const PREFIX = 'smesh-test';
export const CGROUP2_ROOT = '/sys/fs/cgroup/unified';
export const BPFFS_ROOT = '/sys/fs/bpf';
export const NETNS_DIR = '/run/netns';
export const CAPTURE_IP = '169.254.7.1';
/** With `ipv6: true`: the IPv6 address on each node's lo that agents dial IPv6 pods from (`--capture-ip6`). ULA, test namespaces only. */
export const CAPTURE_IP6 = 'fd00:5345:ff::1';
export const REPO_ROOT = path.resolve(__dirname, '../..');
/** The built agent; SMESH_E2E_AGENT_CLI points the tests at another build (e.g. a scratch tsc outDir). */
export const AGENT_CLI = process.env.SMESH_E2E_AGENT_CLI || path.join(REPO_ROOT, 'dist/cli/main.js');
export const APPS_DIR = path.join(REPO_ROOT, 'test/apps');
export const NODE_BIN = process.execPath;

/** Ports the agent listens on by default (CONTRACTS.md "Agent CLI"). */
export const AGENT_PORTS = { outbound: 15001, inbound: 15008, metrics: 15020, ready: 15021, admin: 15000 } as const;

/** Records which live process owns a run, so a stale-leftover sweep never tears down a concurrent run. */
const OWNERS_DIR = `/run/${PREFIX}-owners`;
/** Leftovers with no registered owner (made by other tools) are only swept once they are this old. */
const UNOWNED_STALE_MS = 10 * 60 * 1000;

export interface PodSpec {
  name: string;
  node: string;
  /** Listed in the mesh config (so the agent enrolls it). Default true. */
  enrolled?: boolean;
  namespace?: string;
  /** Default `<name>-sa`. */
  serviceAccount?: string;
  /** Extra labels; `app: <name>` is always set. */
  labels?: Record<string, string>;
  /** Write the `smesh.io/netns` annotation into the Pod (default true); false leaves it to the agent's netns discovery. */
  netnsAnnotation?: boolean;
  /**
   * With the topology's `ipv6`: the Pod's address in the mesh (status.podIP) is its IPv6 one; `DualStack`: both, IPv4
   * first (status.podIPs). Default IPv4.
   */
  ipFamily?: 'IPv4' | 'IPv6' | 'DualStack';
}

export interface TopologyOptions {
  nodes: string[];
  pods: PodSpec[];
  runId?: string;
  /**
   * Also give every node and pod an IPv6 ULA address (fd00:5345::/32; traffic stays inside the test's namespaces):
   * node fd00:5345::<index>/64 on the fabric, its bridge fd00:5345:<index>::1/64, pods fd00:5345:<index>::<10+i>,
   * routes between nodes, CAPTURE_IP6 on each node's lo. IPv4 is unchanged.
   */
  ipv6?: boolean;
}

export interface NodeInfo {
  name: string;
  /** 1-based position in `nodes`: node address 198.18.0.<index>, pod subnet 198.18.<index>.0/24. */
  index: number;
  netns: string;
  netnsPath: string;
  ip: string;
  /** Address of the node's pod bridge br0 (pods' default gateway). */
  bridgeIp: string;
  podCidr: string;
  /** With `ipv6`: the node's fabric address, its bridge address and its pod prefix. */
  ip6?: string;
  bridgeIp6?: string;
  podCidr6?: string;
  cgroupRoot: string;
  agentCgroup: string;
  bpffsDir: string;
}

export interface PodInfo {
  name: string;
  node: string;
  netns: string;
  netnsPath: string;
  ip: string;
  /** With the topology's `ipv6`: the pod's IPv6 address (it keeps `ip` too). */
  ip6?: string;
  /** The address the mesh knows the pod by (status.podIP): `ip6` for an `ipFamily: 'IPv6'` pod, else `ip`. */
  meshIp: string;
  /** Every address the mesh knows the pod by (status.podIPs): [meshIp], or [ip, ip6] for a `DualStack` pod. */
  meshIps: string[];
  cgroup: string;
  enrolled: boolean;
  /** Whether the Pod in the config carries `smesh.io/netns`. */
  netnsAnnotation: boolean;
  namespace: string;
  serviceAccount: string;
  labels: Record<string, string>;
}

export interface ServicePort {
  name?: string;
  port: number;
  targetPort: number;
}

export interface ServiceSpec {
  name: string;
  namespace?: string;
  /** ClusterIP, from 198.19.0.0/16. */
  vip: string;
  port?: number;
  targetPort?: number;
  ports?: ServicePort[];
  selector: Record<string, string>;
}

export interface ConfigOptions {
  services?: ServiceSpec[];
  /** Further YAML documents appended to mesh.yaml as given. */
  extraDocs?: unknown[];
  /** Further files written verbatim into the directory: { 'bad.yaml': '...' }. */
  extraFiles?: Record<string, string>;
  trustDomain?: string;
  /** MeshConfig spec.trustDomainAliases (absent: the field is not written). */
  trustDomainAliases?: string[];
}

export interface ExecOptions {
  timeoutMs?: number;
  input?: string;
  env?: NodeJS.ProcessEnv;
}

export interface NodeSpawnOptions extends SpawnCapturedOptions {
  /** cgroup to join instead of the node's agent cgroup. */
  cgroup?: string;
}

export interface HttpResult {
  status: number;
  body: string;
}

export interface AgentHandle {
  node: NodeInfo;
  proc: CapturedProcess;
  readonly pid: number;
  /** Everything the agent printed so far (pino JSON lines on stdout, plus stderr). */
  logs(): string;
  /** The stdout lines that parse as JSON. */
  logRecords(): Array<Record<string, unknown>>;
  /** Polls GET http://<node ip>:15021/healthz/ready from inside the node netns until 200. */
  waitReady(timeoutMs?: number): Promise<void>;
  kill(signal?: NodeJS.Signals): void;
  /** GET http://<node ip>:15020/metrics from inside the node netns. */
  metrics(): Promise<string>;
  /** SIGTERM, then SIGKILL after `graceMs`. */
  stop(graceMs?: number): Promise<ExitInfo>;
}

// ---------------------------------------------------------------------------------------------
// Synchronous low-level helpers (usable from process 'exit' handlers).

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

function tryExec(cmd: string, args: string[], input?: string): string {
  try {
    return execFileSync(cmd, args, { input, stdio: ['pipe', 'pipe', 'pipe'], timeout: 30_000 }).toString();
  } catch {
    return '';
  }
}

function ipBatch(lines: string[], netns?: string): Promise<void> {
  if (lines.length === 0) return Promise.resolve();
  const args = netns ? ['-n', netns, '-batch', '-'] : ['-batch', '-'];
  const proc = spawnCaptured('ip', args, { input: lines.join('\n') + '\n' });
  return waitExit(proc, 30_000).then((r) => {
    if (r.code !== 0) throw new Error(`ip ${args.join(' ')} failed (${r.code}): ${r.stderr.trim()}\nbatch:\n${lines.join('\n')}`);
  });
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function cgroupDirsDepthFirst(dir: string): string[] {
  const out: string[] = [];
  let entries: fs.Dirent[] = [];
  try {
    entries = fs.readdirSync(dir, { withFileTypes: true });
  } catch {
    return out;
  }
  for (const e of entries) if (e.isDirectory()) out.push(...cgroupDirsDepthFirst(path.join(dir, e.name)));
  out.push(dir);
  return out;
}

function cgroupPids(dir: string): number[] {
  const pids: number[] = [];
  for (const d of cgroupDirsDepthFirst(dir)) {
    try {
      for (const l of fs.readFileSync(path.join(d, 'cgroup.procs'), 'utf8').split('\n')) if (l.trim()) pids.push(Number(l));
    } catch {
      /* vanished */
    }
  }
  return pids;
}

/** SIGKILLs every process in the cgroup subtree, then removes the directories depth-first. */
export function removeCgroupTree(dir: string): void {
  if (!dir.startsWith(`${CGROUP2_ROOT}/${PREFIX}`)) throw new Error(`refusing to remove cgroup ${dir}`);
  if (!fs.existsSync(dir)) return;
  for (let attempt = 0; attempt < 100; attempt++) {
    const pids = cgroupPids(dir);
    if (pids.length === 0) break;
    try {
      fs.writeFileSync(path.join(dir, 'cgroup.kill'), '1');
    } catch {
      /* older kernels: fall back to signalling each pid */
    }
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }
    sleepSync(20);
  }
  for (const d of cgroupDirsDepthFirst(dir)) {
    for (let attempt = 0; attempt < 50; attempt++) {
      try {
        fs.rmdirSync(d);
        break;
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === 'ENOENT') break;
        sleepSync(20); // EBUSY while the last killed tasks are reaped
      }
    }
  }
}

function removeNetns(name: string): void {
  if (!name.startsWith(PREFIX)) throw new Error(`refusing to remove netns ${name}`);
  for (const pid of tryExec('ip', ['netns', 'pids', name]).split('\n').filter(Boolean)) {
    try {
      process.kill(Number(pid), 'SIGKILL');
    } catch {
      /* gone */
    }
  }
  tryExec('ip', ['netns', 'del', name]);
}

function removeBpffsPath(p: string): void {
  if (!p.startsWith(`${BPFFS_ROOT}/${PREFIX}`)) throw new Error(`refusing to remove ${p}`);
  fs.rmSync(p, { recursive: true, force: true });
}

function ageMs(p: string): number {
  try {
    return Date.now() - fs.statSync(p).mtimeMs;
  } catch {
    return Infinity;
  }
}

function liveOwnerRuns(): string[] {
  const live: string[] = [];
  let files: string[] = [];
  try {
    files = fs.readdirSync(OWNERS_DIR);
  } catch {
    return live;
  }
  for (const f of files) {
    const pid = Number(fs.readFileSync(path.join(OWNERS_DIR, f), 'utf8').trim());
    if (pid > 0 && isAlive(pid)) live.push(f);
    else fs.rmSync(path.join(OWNERS_DIR, f), { force: true });
  }
  return live;
}

export interface StaleReport {
  netns: string[];
  cgroups: string[];
  bpffs: string[];
  tmp: string[];
  skipped: string[];
}

/**
 * Removes leftovers of earlier runs: netns, cgroups (processes killed first), bpffs pins, temp dirs named `smesh-test*`.
 * Resources of a run whose owner process is still alive are left alone; unregistered ones only once they are old.
 */
export function cleanupStale(): StaleReport {
  const report: StaleReport = { netns: [], cgroups: [], bpffs: [], tmp: [], skipped: [] };
  const live = liveOwnerRuns();
  const owned = (base: string) => {
    for (const run of live) {
      const stem = `${PREFIX}-${run}`;
      if (base === stem || base.startsWith(`${stem}-`)) return true;
    }
    return false;
  };
  const harnessNamed = (base: string) => /^smesh-test-e2e[0-9a-f]{6}(-|$)/.test(base);
  const shouldRemove = (base: string, full: string) => {
    if (owned(base)) return false;
    if (harnessNamed(base)) return true;
    return ageMs(full) > UNOWNED_STALE_MS;
  };
  const scan = (dir: string, onHit: (base: string, full: string) => void) => {
    let names: string[] = [];
    try {
      names = fs.readdirSync(dir);
    } catch {
      return;
    }
    for (const n of names) if (n.startsWith(PREFIX) && n !== path.basename(OWNERS_DIR)) onHit(n, path.join(dir, n));
  };
  // Processes first (cgroups), then pins, then namespaces, so nothing is mid-use while it goes away.
  scan(CGROUP2_ROOT, (base, full) => {
    if (!shouldRemove(base, full)) return void report.skipped.push(full);
    removeCgroupTree(full);
    report.cgroups.push(full);
  });
  scan(BPFFS_ROOT, (base, full) => {
    if (!shouldRemove(base, full)) return void report.skipped.push(full);
    removeBpffsPath(full);
    report.bpffs.push(full);
  });
  scan(NETNS_DIR, (base, full) => {
    if (!shouldRemove(base, full)) return void report.skipped.push(full);
    removeNetns(base);
    report.netns.push(base);
  });
  // Temp dirs: only this harness's own (run-id named) ones; other tools' mkdtemp dirs are theirs to clean.
  scan('/tmp', (base, full) => {
    if (!harnessNamed(base) || owned(base)) return;
    fs.rmSync(full, { recursive: true, force: true });
    report.tmp.push(full);
  });
  return report;
}

// ---------------------------------------------------------------------------------------------
// Exit/signal safety net: every live topology is torn down even if the test process dies.

const liveTopologies = new Set<Topology>();
let handlersInstalled = false;

function installExitHandlers(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  process.on('exit', () => {
    for (const t of liveTopologies) t.cleanupSync();
  });
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(sig, () => {
      for (const t of liveTopologies) t.cleanupSync();
      process.kill(process.pid, sig);
    });
  }
}

// ---------------------------------------------------------------------------------------------

export class Topology {
  readonly runId: string;
  readonly nodes: NodeInfo[];
  readonly pods: PodInfo[];
  readonly fabricNetns: string;
  readonly runCgroup: string;
  private readonly procs = new Set<CapturedProcess>();
  private readonly tmpDirs = new Set<string>();
  private cleaned = false;

  constructor(runId: string, nodes: NodeInfo[], pods: PodInfo[]) {
    this.runId = runId;
    this.nodes = nodes;
    this.pods = pods;
    this.fabricNetns = `${PREFIX}-${runId}-fabric`;
    this.runCgroup = `${CGROUP2_ROOT}/${PREFIX}-${runId}`;
  }

  node(name: string): NodeInfo {
    const n = this.nodes.find((x) => x.name === name);
    if (!n) throw new Error(`no node ${name} in topology`);
    return n;
  }

  pod(name: string): PodInfo {
    const p = this.pods.find((x) => x.name === name);
    if (!p) throw new Error(`no pod ${name} in topology`);
    return p;
  }

  private resolveNode(n: NodeInfo | string): NodeInfo {
    return typeof n === 'string' ? this.node(n) : n;
  }

  private resolvePod(p: PodInfo | string): PodInfo {
    return typeof p === 'string' ? this.pod(p) : p;
  }

  /** Joins `cgroup` first, then enters `netnsPath` (never `ip netns exec`, which remounts /sys). */
  spawnIn(cgroup: string, netnsPath: string, cmd: string, args: readonly string[], opts: SpawnCapturedOptions = {}): CapturedProcess {
    if (!cgroup.startsWith(this.runCgroup + '/')) throw new Error(`refusing to run a process in cgroup ${cgroup}`);
    const wrapper = 'cg=$1; ns=$2; shift 2; echo $$ > "$cg/cgroup.procs" && exec nsenter --net="$ns" -- "$@"';
    const proc = spawnCaptured('sh', ['-c', wrapper, 'sh', cgroup, netnsPath, cmd, ...args], opts);
    this.procs.add(proc);
    void proc.exited.then(() => this.procs.delete(proc));
    return proc;
  }

  spawnInPod(pod: PodInfo | string, cmd: string, args: readonly string[] = [], opts: SpawnCapturedOptions = {}): CapturedProcess {
    const p = this.resolvePod(pod);
    return this.spawnIn(p.cgroup, p.netnsPath, cmd, args, opts);
  }

  /** Node-level processes (the agent, probes) live in the node's agent cgroup unless told otherwise. */
  spawnOnNode(node: NodeInfo | string, cmd: string, args: readonly string[] = [], opts: NodeSpawnOptions = {}): CapturedProcess {
    const n = this.resolveNode(node);
    const { cgroup, ...rest } = opts;
    return this.spawnIn(cgroup ?? n.agentCgroup, n.netnsPath, cmd, args, rest);
  }

  async execInNode(node: NodeInfo | string, cmd: string, args: readonly string[] = [], opts: ExecOptions = {}): Promise<RunResult> {
    return waitExit(this.spawnOnNode(node, cmd, args, { input: opts.input, env: opts.env }), opts.timeoutMs ?? 30_000);
  }

  async execInPod(pod: PodInfo | string, cmd: string, args: readonly string[] = [], opts: ExecOptions = {}): Promise<RunResult> {
    return waitExit(this.spawnInPod(pod, cmd, args, { input: opts.input, env: opts.env }), opts.timeoutMs ?? 30_000);
  }

  /** Starts test/apps/<app>.js in a pod and waits for its `{"listening":…}` line. */
  async startApp(pod: PodInfo | string, app: 'echo-server' | 'sink-server' | 'http-server', args: readonly string[] = [], timeoutMs = 10_000): Promise<CapturedProcess> {
    const proc = this.spawnInPod(pod, NODE_BIN, [path.join(APPS_DIR, `${app}.js`), ...args]);
    await proc.waitForLine(/"listening"/, timeoutMs);
    return proc;
  }

  /** Runs test/apps/client.js in a pod (or a node, with `{ node }`) and parses its JSON line. */
  async runClient<T = Record<string, any>>(where: PodInfo | string | { node: NodeInfo | string }, args: readonly string[], timeoutMs = 30_000): Promise<T> {
    const full = [path.join(APPS_DIR, 'client.js'), ...args, '--timeout', String(Math.max(1000, timeoutMs - 2000))];
    const proc = typeof where === 'object' && 'node' in where && !('netnsPath' in where) ? this.spawnOnNode(where.node, NODE_BIN, full) : this.spawnInPod(where as PodInfo | string, NODE_BIN, full);
    const r = await waitExit(proc, timeoutMs);
    if (r.timedOut) throw new Error(`client ${args.join(' ')} timed out after ${timeoutMs} ms; output:\n${tail(proc.outputText())}`);
    try {
      return lastJsonLine<T>(r.stdout);
    } catch (e) {
      throw new Error(`client ${args.join(' ')} exited ${r.code}/${r.signal} without a result: ${(e as Error).message}\nstderr:\n${tail(r.stderr)}`);
    }
  }

  /** HTTP GET performed from inside the node netns (the runner's host netns cannot reach 198.18.x). */
  async httpGetInNode(node: NodeInfo | string, url: string, timeoutMs = 5000): Promise<HttpResult> {
    const secs = String(Math.max(1, Math.ceil(timeoutMs / 1000)));
    const r = await this.execInNode(node, 'curl', ['-sS', '-m', secs, '-o', '-', '-w', '\n%{http_code}', url], { timeoutMs: timeoutMs + 5000 });
    const cut = r.stdout.lastIndexOf('\n');
    const status = Number(r.stdout.slice(cut + 1).trim()) || 0;
    return { status, body: cut >= 0 ? r.stdout.slice(0, cut) : '' };
  }

  /** A fresh temp directory `/tmp/smesh-test-<run>-<name>`, removed by cleanup(). */
  makeTempDir(name: string): string {
    const dir = `/tmp/${PREFIX}-${this.runId}-${name}`;
    fs.rmSync(dir, { recursive: true, force: true });
    fs.mkdirSync(dir, { recursive: true });
    this.tmpDirs.add(dir);
    return dir;
  }

  /** Writes the standalone config (CONTRACTS.md "Config directory") for this topology into `dir/mesh.yaml`. */
  writeConfig(dir: string, opts: ConfigOptions = {}): string {
    fs.mkdirSync(dir, { recursive: true });
    const docs: unknown[] = [];
    docs.push({
      apiVersion: 'smesh.io/v1alpha1',
      kind: 'MeshConfig',
      metadata: { name: 'mesh' },
      spec: { trustDomain: opts.trustDomain ?? 'cluster.local', ...(opts.trustDomainAliases ? { trustDomainAliases: opts.trustDomainAliases } : {}) },
    });
    for (const n of this.nodes) {
      docs.push({ apiVersion: 'v1', kind: 'Node', metadata: { name: n.name }, status: { addresses: [{ type: 'InternalIP', address: n.ip }] } });
    }
    const namespaces = new Set<string>(['default']);
    for (const p of this.pods) namespaces.add(p.namespace);
    for (const s of opts.services ?? []) namespaces.add(s.namespace ?? 'default');
    for (const ns of namespaces) docs.push({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns, labels: {} } });
    for (const p of this.pods) {
      if (!p.enrolled) continue;
      docs.push({
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: p.name, namespace: p.namespace, labels: { ...p.labels }, ...(p.netnsAnnotation ? { annotations: { 'smesh.io/netns': p.netnsPath } } : {}) },
        spec: { nodeName: p.node, serviceAccountName: p.serviceAccount },
        status: { podIP: p.meshIp, ...(p.meshIps.length > 1 ? { podIPs: p.meshIps.map((ip) => ({ ip })) } : {}) },
      });
    }
    for (const s of opts.services ?? []) {
      const ports = s.ports ?? [{ name: 'tcp', port: s.port!, targetPort: s.targetPort ?? s.port! }];
      if (ports.some((x) => x.port === undefined)) throw new Error(`service ${s.name}: give port or ports`);
      docs.push({
        apiVersion: 'v1',
        kind: 'Service',
        metadata: { name: s.name, namespace: s.namespace ?? 'default' },
        spec: {
          clusterIP: s.vip,
          selector: { ...s.selector },
          ports: ports.map((x, i) => ({ name: x.name ?? `p${i}-${x.port}`, port: x.port, targetPort: x.targetPort, protocol: 'TCP' })),
        },
      });
    }
    docs.push(...(opts.extraDocs ?? []));
    const file = path.join(dir, 'mesh.yaml');
    fs.writeFileSync(file, docs.map((d) => YAML.stringify(d)).join('---\n'));
    for (const [name, text] of Object.entries(opts.extraFiles ?? {})) fs.writeFileSync(path.join(dir, name), text);
    return file;
  }

  /** Starts `node dist/cli/main.js agent --standalone …` in the node netns, inside the node's agent cgroup. */
  startAgent(node: NodeInfo | string, configDir: string, extraArgs: readonly string[] = []): AgentHandle {
    const n = this.resolveNode(node);
    if (!fs.existsSync(AGENT_CLI)) {
      throw new Error(`${AGENT_CLI} is missing: build the agent first (npx tsc -p tsconfig.json, done by \`make test\`)`);
    }
    const args = [AGENT_CLI, 'agent', '--standalone', '--config', configDir, '--node', n.name, '--cgroup-root', n.cgroupRoot, '--bpffs', n.bpffsDir, ...extraArgs];
    const proc = this.spawnOnNode(n, NODE_BIN, args);
    return makeAgentHandle(this, n, proc);
  }

  /** Idempotent teardown: processes, cgroups, pins, namespaces, temp dirs. */
  async cleanup(): Promise<void> {
    this.cleanupSync();
  }

  cleanupSync(): void {
    if (this.cleaned) return;
    this.cleaned = true;
    liveTopologies.delete(this);
    for (const p of this.procs) {
      try {
        p.kill('SIGKILL');
      } catch {
        /* gone */
      }
    }
    removeCgroupTree(this.runCgroup);
    for (const n of this.nodes) removeBpffsPath(n.bpffsDir);
    let names: string[] = [];
    try {
      names = fs.readdirSync(BPFFS_ROOT);
    } catch {
      /* no bpffs */
    }
    for (const b of names) if (b.startsWith(`${PREFIX}-${this.runId}-`)) removeBpffsPath(path.join(BPFFS_ROOT, b));
    const netns = fs.existsSync(NETNS_DIR) ? fs.readdirSync(NETNS_DIR).filter((x) => x.startsWith(`${PREFIX}-${this.runId}-`)) : [];
    // Pods first, then nodes, then the fabric: veth peers go with whichever end is deleted first.
    const order = (x: string) => (x === this.fabricNetns ? 2 : this.nodes.some((n) => n.netns === x) ? 1 : 0);
    for (const ns of netns.sort((a, b) => order(a) - order(b))) removeNetns(ns);
    for (const d of this.tmpDirs) fs.rmSync(d, { recursive: true, force: true });
    fs.rmSync(path.join(OWNERS_DIR, this.runId), { force: true });
  }

  /** Lists everything of this run still present on the machine (for leak assertions). */
  leftovers(): string[] {
    const found: string[] = [];
    const stem = `${PREFIX}-${this.runId}`;
    const scan = (dir: string) => {
      try {
        for (const n of fs.readdirSync(dir)) if (n === stem || n.startsWith(`${stem}-`)) found.push(path.join(dir, n));
      } catch {
        /* absent */
      }
    };
    scan(NETNS_DIR);
    scan(CGROUP2_ROOT);
    scan(BPFFS_ROOT);
    scan('/tmp');
    return found;
  }
}

function makeAgentHandle(topo: Topology, node: NodeInfo, proc: CapturedProcess): AgentHandle {
  const base = `http://${node.ip}`;
  return {
    node,
    proc,
    get pid() {
      return proc.pid ?? -1;
    },
    logs: () => proc.outputText(),
    logRecords: () => {
      const recs: Array<Record<string, unknown>> = [];
      for (const line of proc.stdoutText().split('\n')) {
        if (!line.startsWith('{')) continue;
        try {
          recs.push(JSON.parse(line) as Record<string, unknown>);
        } catch {
          /* partial line */
        }
      }
      return recs;
    },
    async waitReady(timeoutMs = 30_000) {
      const deadline = Date.now() + timeoutMs;
      let last = '';
      while (Date.now() < deadline) {
        const exit = proc.exitInfo();
        if (exit) throw new Error(`agent on ${node.name} exited (${JSON.stringify(exit)}) before it was ready; output:\n${tail(proc.outputText(), 60)}`);
        const r = await topo.httpGetInNode(node, `${base}:${AGENT_PORTS.ready}/healthz/ready`, 2000);
        if (r.status === 200) return;
        last = `status ${r.status} ${r.body.slice(0, 200)}`;
        await sleep(200);
      }
      throw new Error(`agent on ${node.name} not ready after ${timeoutMs} ms (last probe: ${last}); output:\n${tail(proc.outputText(), 60)}`);
    },
    kill(signal: NodeJS.Signals = 'SIGTERM') {
      proc.kill(signal);
    },
    async metrics() {
      const r = await topo.httpGetInNode(node, `${base}:${AGENT_PORTS.metrics}/metrics`, 5000);
      if (r.status !== 200) throw new Error(`GET /metrics on ${node.name}: status ${r.status} ${r.body.slice(0, 300)}`);
      return r.body;
    },
    async stop(graceMs = 10_000) {
      if (proc.exitInfo()) return proc.exitInfo()!;
      proc.kill('SIGTERM');
      const timer = setTimeout(() => proc.kill('SIGKILL'), graceMs);
      const info = await proc.exited;
      clearTimeout(timer);
      return info;
    },
  };
}

function requireTool(cmd: string): void {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'pipe' });
  } catch {
    throw new Error(`required tool '${cmd}' is not installed`);
  }
}

/** Mounts bpffs at /sys/fs/bpf when it is absent (statfs magic check through `stat -f`). */
function ensureBpffs(): void {
  const kind = tryExec('stat', ['-f', '-c', '%T', BPFFS_ROOT]).trim();
  if (kind === 'bpf_fs') return;
  fs.mkdirSync(BPFFS_ROOT, { recursive: true });
  execFileSync('mount', ['-t', 'bpf', 'bpf', BPFFS_ROOT], { stdio: 'pipe' });
}

/** Why namespaced tests cannot run here, or null when they can. */
export function privilegeProblem(): string | null {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return 'requires root (network namespaces, cgroups, BPF)';
  return null;
}

const NAME_RE = /^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$/;

export async function createTopology(opts: TopologyOptions): Promise<Topology> {
  const problem = privilegeProblem();
  if (problem) throw new Error(problem);
  for (const tool of ['ip', 'nsenter', 'curl']) requireTool(tool);
  if (!fs.existsSync(path.join(CGROUP2_ROOT, 'cgroup.procs'))) throw new Error(`cgroup2 is not mounted at ${CGROUP2_ROOT}`);
  ensureBpffs();
  if (opts.nodes.length === 0 || opts.nodes.length > 200) throw new Error('between 1 and 200 nodes');
  for (const n of [...opts.nodes, ...opts.pods.map((p) => p.name)]) {
    if (!NAME_RE.test(n) || n === 'fabric' || n === 'smesh-agent') throw new Error(`bad node/pod name '${n}'`);
  }
  if (new Set(opts.pods.map((p) => p.name)).size !== opts.pods.length) throw new Error('pod names must be unique');

  cleanupStale();
  const runId = opts.runId ?? `e2e${randomBytes(3).toString('hex')}`;
  fs.mkdirSync(OWNERS_DIR, { recursive: true });
  fs.writeFileSync(path.join(OWNERS_DIR, runId), String(process.pid));

  const stem = `${PREFIX}-${runId}`;
  const runCgroup = `${CGROUP2_ROOT}/${stem}`;
  const nodes: NodeInfo[] = opts.nodes.map((name, i) => {
    const index = i + 1;
    const cgroupRoot = `${runCgroup}/${name}`;
    return {
      name,
      index,
      netns: `${stem}-${name}`,
      netnsPath: `${NETNS_DIR}/${stem}-${name}`,
      ip: `198.18.0.${index}`,
      bridgeIp: `198.18.${index}.1`,
      podCidr: `198.18.${index}.0/24`,
      ...(opts.ipv6 ? { ip6: `fd00:5345::${index}`, bridgeIp6: `fd00:5345:${index}::1`, podCidr6: `fd00:5345:${index}::/64` } : {}),
      cgroupRoot,
      agentCgroup: `${cgroupRoot}/smesh-agent`,
      bpffsDir: `${BPFFS_ROOT}/${stem}-${name}`,
    };
  });
  const perNode = new Map<string, number>();
  const pods: PodInfo[] = opts.pods.map((spec) => {
    const node = nodes.find((n) => n.name === spec.node);
    if (!node) throw new Error(`pod ${spec.name}: unknown node ${spec.node}`);
    const i = perNode.get(node.name) ?? 0;
    perNode.set(node.name, i + 1);
    if (i >= 200) throw new Error(`too many pods on ${node.name}`);
    const netns = `${stem}-${node.name}-${spec.name}`;
    if ((spec.ipFamily === 'IPv6' || spec.ipFamily === 'DualStack') && !opts.ipv6) throw new Error(`pod ${spec.name}: ipFamily ${spec.ipFamily} needs the topology's ipv6 option`);
    const ip = `198.18.${node.index}.${10 + i}`;
    const ip6 = opts.ipv6 ? `fd00:5345:${node.index}::${(10 + i).toString(16)}` : undefined;
    return {
      name: spec.name,
      node: node.name,
      netns,
      netnsPath: `${NETNS_DIR}/${netns}`,
      ip,
      ...(ip6 ? { ip6 } : {}),
      meshIp: spec.ipFamily === 'IPv6' && ip6 ? ip6 : ip,
      meshIps: spec.ipFamily === 'IPv6' && ip6 ? [ip6] : spec.ipFamily === 'DualStack' && ip6 ? [ip, ip6] : [ip],
      cgroup: `${node.cgroupRoot}/${spec.name}`,
      enrolled: spec.enrolled ?? true,
      netnsAnnotation: spec.netnsAnnotation ?? true,
      namespace: spec.namespace ?? 'default',
      serviceAccount: spec.serviceAccount ?? `${spec.name}-sa`,
      labels: { app: spec.name, ...(spec.labels ?? {}) },
    };
  });

  const topo = new Topology(runId, nodes, pods);
  liveTopologies.add(topo);
  installExitHandlers();
  try {
    for (const n of nodes) {
      fs.mkdirSync(n.agentCgroup, { recursive: true });
      fs.mkdirSync(n.bpffsDir, { recursive: true });
    }
    for (const p of pods) fs.mkdirSync(p.cgroup, { recursive: true });

    await ipBatch([topo.fabricNetns, ...nodes.map((n) => n.netns), ...pods.map((p) => p.netns)].map((ns) => `netns add ${ns}`));

    // Fabric: one bridge, one veth per node (created straight into the node netns: nothing lands in the host netns).
    const fabric = ['link set lo up', 'link add br-fab type bridge', 'link set br-fab up'];
    for (const n of nodes) fabric.push(`link add n${n.index} type veth peer name eth0 netns ${n.netns}`, `link set n${n.index} master br-fab up`);
    await ipBatch(fabric, topo.fabricNetns);

    await Promise.all(
      nodes.map((n) => {
        const lines = [
          'link set lo up',
          `addr add ${CAPTURE_IP}/32 dev lo`,
          `addr add ${n.ip}/24 dev eth0`,
          'link set eth0 up',
          'link add br0 type bridge',
          `addr add ${n.bridgeIp}/24 dev br0`,
          'link set br0 up',
        ];
        pods
          .filter((p) => p.node === n.name)
          .forEach((p, i) => {
            lines.push(`link add pv${i} type veth peer name eth0 netns ${p.netns}`, `link set pv${i} master br0 up`);
          });
        for (const m of nodes) if (m !== n) lines.push(`route add ${m.podCidr} via ${m.ip} dev eth0`);
        if (opts.ipv6) {
          // nodad: the addresses are usable at once (no duplicate address detection wait).
          lines.push(`addr add ${CAPTURE_IP6}/128 dev lo nodad`, `addr add ${n.ip6}/64 dev eth0 nodad`, `addr add ${n.bridgeIp6}/64 dev br0 nodad`);
          for (const m of nodes) if (m !== n) lines.push(`route add ${m.podCidr6} via ${m.ip6} dev eth0`);
        }
        return ipBatch(lines, n.netns);
      }),
    );

    await Promise.all([
      ...pods.map((p) => {
        const gw = topo.node(p.node).bridgeIp;
        const v6 = p.ip6 ? [`addr add ${p.ip6}/64 dev eth0 nodad`, `route add default via ${topo.node(p.node).bridgeIp6} dev eth0`] : [];
        return ipBatch(['link set lo up', `addr add ${p.ip}/24 dev eth0`, 'link set eth0 up', `route add default via ${gw} dev eth0`, ...v6], p.netns);
      }),
      ...nodes.map(async (n) => {
        const sysctls = ['net.ipv4.ip_forward=1', ...(opts.ipv6 ? ['net.ipv6.conf.all.forwarding=1'] : [])];
        const r = await waitExit(spawnCaptured('nsenter', [`--net=${n.netnsPath}`, '--', 'sysctl', '-q', '-w', ...sysctls]), 10_000);
        if (r.code !== 0) throw new Error(`sysctl ip_forward in ${n.netns}: ${r.stderr}`);
      }),
    ]);
  } catch (e) {
    topo.cleanupSync();
    throw e;
  }
  return topo;
}
