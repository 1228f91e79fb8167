// `make bench`: the mesh path against a direct connection between the same pods and against nginx/HAProxy mTLS tunnels on the namespaced topology — bulk, latency, requests/s, new connections/s, proxy CPU, agent RSS — with ratios and the issue-12 goals, recorded in bench/results/.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createTopology, privilegeProblem, AGENT_CLI, REPO_ROOT, type Topology, type AgentHandle, type PodInfo, type ServiceSpec } from '../test/helpers/topology';
import { sleep, tail, type CapturedProcess } from '../test/helpers/proc';
import { parseMetrics, sum } from '../test/helpers/metrics';
import { ALL_TESTS, HTTP_TESTS, runTest, type Measured, type Target, type TestName } from './lib/tools';
import { cpuWindow, memKiB, RssSampler } from './lib/procstat';
import { cpuTable, mainTable, median, mib, summarize, type Pair, type Sample } from './lib/report';
import { checkMtls, makePeerCerts, missingPeerTools, peerDefs, peerVersions, startPeer, stopPeer, type MtlsCheck, type RunningPeer } from './lib/peers';
import { goalLines, httpGoalLines, peerTable, PROXY_GROUPS, PROXY_RSS } from './lib/peer-report';

function say(text = ''): void {
  process.stdout.write(text + '\n');
}

// ---------------------------------------------------------------------------------------------
// Settings (environment; defaults keep the whole run near 5 minutes on 2 cores).

const env = (k: string, d: string) => process.env[k] ?? d;
const DUR_S = Number(env('BENCH_DUR', '4'));
const ROUNDS = Number(env('BENCH_ROUNDS', '3'));
const GAP_MS = 300;
/** CPU (% of one core) used outside the bench's cgroups above which a measurement is flagged as contaminated. */
const FOREIGN_CPU_LIMIT = 25;
const OUT_DIR = env('BENCH_OUT', path.join(REPO_ROOT, 'bench/results'));
/** Hold a 0 µs PM QoS request (/dev/cpu_dma_latency) during the latency test: idle CPUs poll instead of halting (README). */
const IDLE_POLL = env('BENCH_IDLE_POLL', '1') !== '0';

/**
 * Agent flags for the run. The "direct" baselines are plaintext from a pod outside the mesh into the server pods,
 * which the agents would otherwise capture and authorize (README, Policy): `--no-plaintext-capture` keeps them
 * direct. `BENCH_HBONE_ADDRESSING=node` measures smesh's node-addressed HBONE instead of the default pod-addressed
 * (ztunnel's) wire.
 */
const EXTRA_AGENT_ARGS = env('BENCH_AGENT_ARGS', '').split(/\s+/).filter(Boolean);
/**
 * The HTTP-port rows (hrps hlat hcps) measure the mesh's `http` port with the agents' native HTTP/1.1 engine
 * (`--http-engine`) unless BENCH_HTTP_ENGINE=0 (node:http, the agents' default); `both` (default) measures it on
 * node:http too, after everything else, with restarted agents. Only HTTP service ports are affected by the flag: the
 * TCP rows go to ports named `iperf`, `tcp-web` and `ping`.
 */
const HTTP_ENGINE = env('BENCH_HTTP_ENGINE', 'both');
if (HTTP_ENGINE !== '0' && HTTP_ENGINE !== '1' && HTTP_ENGINE !== 'both') throw new Error(`BENCH_HTTP_ENGINE: '${HTTP_ENGINE}' is not 0, 1 or both`);
/** The agents of the rotated rounds run --http-engine (1, both); with `both`, mesh-http-nodehttp is measured after them by agents restarted without it. */
const ENGINE_FIRST = HTTP_ENGINE !== '0';
/** mesh-http measured by agents without --http-engine (node:http), after the rotated rounds (BENCH_HTTP_ENGINE=both). */
const NODEHTTP_PATH = 'mesh-http-nodehttp';

const VIP = { remote: '198.19.0.10', local: '198.19.0.11' } as const;
/**
 * Server apps in each server pod; the Services map port → targetPort 1:1 except HTTP 80 → 8080. The same HTTP server
 * listens twice: 8080 is the target of port 80 named `http` (both agents handle it per request: the source's HTTP
 * proxy, the destination's parsing inbound — agent/http/), 8081 only of port 8081 named `tcp-web` (plain TCP, one
 * relay per connection, as the peers do). `BENCH_HTTP_PORT=tcp` (default) sends every path's rps/cps tests to 8081,
 * `http` sends the mesh's to 80 and the others' to 8080.
 */
const PORT = { iperf: 5201, http: 80, httpTarget: 8080, tcpHttp: 8081, ping: 11111 } as const;
const HTTP_PORT_KIND = env('BENCH_HTTP_PORT', 'tcp');
if (HTTP_PORT_KIND !== 'tcp' && HTTP_PORT_KIND !== 'http') throw new Error(`BENCH_HTTP_PORT: '${HTTP_PORT_KIND}' is neither tcp nor http`);
/** The HTTP server port the rps/cps tests reach in the server pod. */
const APP_HTTP_PORT = HTTP_PORT_KIND === 'http' ? PORT.httpTarget : PORT.tcpHttp;

/** The TCP-port tests (issue 12's peer table) and the HTTP-port tests (issue 13's). */
const TCP_TESTS = ALL_TESTS.filter((t) => !HTTP_TESTS.includes(t));

interface PathDef {
  name: string;
  from: 'client' | 'outsider';
  describe: string;
  /** The tests this path takes part in. */
  tests: readonly TestName[];
  target: (t: Topology, test: TestName) => Target;
  /** cgroups of the processes that proxy this path on node1 and node2 (none for direct paths), for CPU per unit of work. */
  proxies: (t: Topology) => Partial<Record<(typeof PROXY_GROUPS)[number], string>>;
}

/** The HTTP-port tests go to the server's 8080, what the mesh's port 80 (`http`) targets. */
const podTarget =
  (pod: string) =>
  (t: Topology, test: TestName): Target => ({ host: t.pod(pod).ip, iperfPort: PORT.iperf, httpPort: HTTP_TESTS.includes(test) ? PORT.httpTarget : APP_HTTP_PORT, pingPort: PORT.ping });
const vipTarget =
  (vip: string, httpPort: number = HTTP_PORT_KIND === 'http' ? PORT.http : PORT.tcpHttp): (() => Target) =>
  () => ({ host: vip, iperfPort: PORT.iperf, httpPort, pingPort: PORT.ping });
const noProxies = () => ({});
const agentProxies = (t: Topology) => ({ 'node1 proxy': t.node('node1').agentCgroup, 'node2 proxy': t.node('node2').agentCgroup });

/** The nginx and HAProxy tunnels (bench/lib/peers.ts), started after the agents; keyed by path name. */
const PEERS = peerDefs();
const runningPeers = new Map<string, RunningPeer>();
function runningPeer(name: string): RunningPeer {
  const p = runningPeers.get(name);
  if (!p) throw new Error(`peer ${name} is not running`);
  return p;
}

const PATHS: PathDef[] = [
  {
    name: 'direct',
    from: 'outsider',
    describe: 'outsider (node1, not enrolled) → remote-server pod IP on node2: plain TCP, same veth/bridge/fabric path',
    tests: ALL_TESTS,
    target: podTarget('remote-server'),
    proxies: noProxies,
  },
  {
    name: 'mesh',
    from: 'client',
    describe: `client (node1, enrolled) → remote VIP ${VIP.remote} → eBPF redirect → node1 agent → HBONE (HTTP/2 CONNECT, mTLS) → node2 agent → remote-server`,
    tests: TCP_TESTS,
    target: vipTarget(VIP.remote),
    proxies: agentProxies,
  },
  {
    name: 'mesh-http',
    from: 'client',
    describe: `client → remote VIP ${VIP.remote} port ${PORT.http} (\`http\`) → eBPF redirect → node1 agent, per request (${ENGINE_FIRST ? '--http-engine: the native HTTP/1.1 engine' : 'node:http'}) → pooled upstream over HBONE (mTLS) → node2 agent, per request → remote-server:${PORT.httpTarget}`,
    tests: HTTP_TESTS,
    target: vipTarget(VIP.remote, PORT.http),
    proxies: agentProxies,
  },
  {
    name: NODEHTTP_PATH,
    from: 'client',
    describe: `as mesh-http, both agents on node:http (no --http-engine): restarted for it after the rotated rounds (BENCH_HTTP_ENGINE=both)`,
    tests: HTTP_TESTS,
    target: vipTarget(VIP.remote, PORT.http),
    proxies: agentProxies,
  },
  {
    name: 'direct-local',
    from: 'outsider',
    describe: 'outsider → local-server pod IP, both on node1: plain TCP over the node bridge',
    tests: TCP_TESTS,
    target: podTarget('local-server'),
    proxies: noProxies,
  },
  {
    name: 'mesh-local',
    from: 'client',
    describe: `client → local VIP ${VIP.local} → eBPF redirect → node1 agent → local-server (same node: plain TCP relay, no TLS)`,
    tests: TCP_TESTS,
    target: vipTarget(VIP.local),
    proxies: agentProxies,
  },
  // The peers are dialled from the outsider: the enrolled client's connections to node1's address would be redirected.
  ...PEERS.map(
    (d): PathDef => ({
      name: d.name,
      from: 'outsider',
      describe: d.describe,
      tests: d.mode === 'http' ? HTTP_TESTS : TCP_TESTS,
      target: () => runningPeer(d.name).target,
      proxies: () => ({ 'node1 proxy': runningPeer(d.name).cgroups.node1, 'node2 proxy': runningPeer(d.name).cgroups.node2 }),
    }),
  ),
];
const PAIRS: Pair[] = [
  { mesh: 'mesh', direct: 'direct', title: 'cross-node', tests: TCP_TESTS },
  { mesh: 'mesh-local', direct: 'direct-local', title: 'same node', tests: TCP_TESTS },
  { mesh: 'mesh-http', direct: 'direct', title: 'cross-node, HTTP port', tests: HTTP_TESTS },
  { mesh: NODEHTTP_PATH, direct: 'direct', title: 'cross-node, HTTP port, node:http', tests: HTTP_TESTS },
];

function listSetting<T extends string>(name: string, all: readonly T[]): T[] {
  const raw = process.env[name];
  if (!raw) return [...all];
  const want = raw.split(/[\s,]+/).filter(Boolean) as T[];
  for (const w of want) if (!all.includes(w)) throw new Error(`${name}: unknown '${w}' (known: ${all.join(' ')})`);
  return want;
}

const TESTS = listSetting<TestName>('BENCH_TESTS', ALL_TESTS);
/** The selected paths that take part in a selected test (a peer with nothing to run is not started). */
const PATH_NAMES = listSetting(
  'BENCH_PATHS',
  PATHS.map((p) => p.name).filter((n) => n !== NODEHTTP_PATH || HTTP_ENGINE === 'both'),
).filter((n) => PATHS.find((p) => p.name === n)!.tests.some((t) => TESTS.includes(t)));
if (PATH_NAMES.includes(NODEHTTP_PATH) && HTTP_ENGINE !== 'both') throw new Error(`BENCH_PATHS: ${NODEHTTP_PATH} needs BENCH_HTTP_ENGINE=both`);
const paths = PATHS.filter((p) => PATH_NAMES.includes(p.name) && p.name !== NODEHTTP_PATH);
/** Measured after the rotated rounds, by restarted agents (BENCH_HTTP_ENGINE=both). */
const laterPaths = PATHS.filter((p) => PATH_NAMES.includes(p.name) && p.name === NODEHTTP_PATH && TESTS.some((t) => p.tests.includes(t)));
const peerPaths = PEERS.filter((d) => PATH_NAMES.includes(d.name));
const tcpPeers = peerPaths.filter((d) => d.mode === 'tcp').map((d) => d.name);
const httpPeers = peerPaths.filter((d) => d.mode === 'http').map((d) => d.name);
/** Whether any selected path runs any selected HTTP-port test (then the agents get --http-engine, unless BENCH_HTTP_ENGINE=0). */
const HTTP_ROWS = paths.some((p) => p.tests.some((t) => HTTP_TESTS.includes(t) && TESTS.includes(t)));
const BASE_AGENT_ARGS = ['--no-plaintext-capture', '--hbone-addressing', env('BENCH_HBONE_ADDRESSING', 'pod')];
const AGENT_ARGS = [...BASE_AGENT_ARGS, ...(HTTP_ROWS && ENGINE_FIRST && !EXTRA_AGENT_ARGS.includes('--http-engine') ? ['--http-engine'] : []), ...EXTRA_AGENT_ARGS];
/** The restarted agents of mesh-http-nodehttp: the same without --http-engine. */
const NODEHTTP_AGENT_ARGS = [...BASE_AGENT_ARGS, ...EXTRA_AGENT_ARGS.filter((a) => a !== '--http-engine')];

// ---------------------------------------------------------------------------------------------

function requireTools(): void {
  const missing = ['iperf3', 'wrk', 'sockperf', 'gcc', 'curl', 'ss'].filter((t) => {
    try {
      execFileSync('sh', ['-c', `command -v ${t}`], { stdio: 'pipe' });
      return false;
    } catch {
      return true;
    }
  });
  if (peerPaths.length) missing.push(...missingPeerTools());
  if (missing.length) throw new Error(`missing ${missing.join(', ')}: run \`bash bench/install.sh\` (as root) first`);
}

function sh(cmd: string, args: string[]): string {
  try {
    return execFileSync(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], timeout: 10_000 })
      .toString()
      .trim();
  } catch (e) {
    const err = e as { stdout?: Buffer; stderr?: Buffer };
    return `${err.stdout?.toString() ?? ''}${err.stderr?.toString() ?? ''}`.trim();
  }
}

function machineInfo(): Record<string, string> {
  const rev = sh('git', ['-C', REPO_ROOT, 'rev-parse', '--short', 'HEAD']);
  const dirty = sh('git', ['-C', REPO_ROOT, 'status', '--porcelain', '--untracked-files=no']) ? ' (uncommitted changes)' : '';
  return {
    cores: String(os.cpus().length),
    cpu: os.cpus()[0]?.model ?? '?',
    kernel: os.release(),
    node: process.version,
    commit: rev + dirty,
    iperf3: sh('iperf3', ['--version']).split('\n')[0] ?? '?',
    wrk: (/wrk [^\s]+/.exec(sh('wrk', ['-v'])) ?? ['?'])[0],
    sockperf: (/version ([^\s]+)/.exec(sh('sockperf', ['--version'])) ?? ['', '?'])[1]!,
    cpuidle: sh('cat', ['/sys/devices/system/cpu/cpuidle/current_driver']) || 'none',
    peers: peerPaths.length ? peerVersions() : 'not run',
  };
}

/** Waits until `port` is listening inside the pod (ss in the pod's netns). */
async function waitListening(topo: Topology, pod: PodInfo, port: number, proc: CapturedProcess): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    if (proc.exitInfo()) throw new Error(`server for port ${port} in ${pod.name} exited: ${tail(proc.outputText(), 8)}`);
    const r = await topo.execInPod(pod, 'ss', ['-Hltn', `sport = :${port}`], { timeoutMs: 5000 });
    if (r.stdout.trim()) return;
    await sleep(100);
  }
  throw new Error(`nothing listens on ${pod.ip}:${port} in ${pod.name} after 10 s`);
}

class Servers {
  private iperf = new Map<string, CapturedProcess>();
  constructor(
    private readonly topo: Topology,
    private readonly httpd: string,
  ) {}

  async startIperf(pod: PodInfo): Promise<void> {
    const p = this.topo.spawnInPod(pod, 'iperf3', ['-s', '-B', pod.ip, '-p', String(PORT.iperf)]);
    this.iperf.set(pod.name, p);
    await waitListening(this.topo, pod, PORT.iperf, p);
  }

  /** A failed test can leave the iperf3 server stuck in it: restart it. */
  async restartIperf(pod: PodInfo): Promise<void> {
    const p = this.iperf.get(pod.name);
    if (p && !p.exitInfo()) {
      p.kill('SIGKILL');
      await p.exited;
    }
    await this.startIperf(pod);
  }

  async start(pod: PodInfo): Promise<void> {
    const httpd = this.topo.spawnInPod(pod, this.httpd, [pod.ip, String(PORT.httpTarget), '1']);
    const tcpHttpd = this.topo.spawnInPod(pod, this.httpd, [pod.ip, String(PORT.tcpHttp), '1']);
    const ping = this.topo.spawnInPod(pod, 'sockperf', ['server', '--tcp', '-i', pod.ip, '-p', String(PORT.ping)]);
    await Promise.all([
      this.startIperf(pod),
      waitListening(this.topo, pod, PORT.httpTarget, httpd),
      waitListening(this.topo, pod, PORT.tcpHttp, tcpHttpd),
      waitListening(this.topo, pod, PORT.ping, ping),
    ]);
  }
}

/**
 * Opt-in profiling hook: with `SMESH_AGENT_CPU_PROF=<dir>` each agent is CPU-profiled from start to exit and writes
 * <dir>/agent-<pid>.cpuprofile when it stops at the end (bench/lib/cpu-prof-preload.js; `--cpu-prof` itself is not
 * allowed in NODE_OPTIONS). `SMESH_AGENT_NODE_OPTIONS` adds other NODE_OPTIONS for the agents only.
 */
function startAgentWithNodeOptions(topo: Topology, node: string, cfgDir: string, args: readonly string[] = AGENT_ARGS): AgentHandle {
  const profDir = process.env.SMESH_AGENT_CPU_PROF;
  const extra = [profDir ? `--require ${path.join(REPO_ROOT, 'bench/lib/cpu-prof-preload.js')}` : '', process.env.SMESH_AGENT_NODE_OPTIONS ?? ''].filter(Boolean).join(' ');
  if (!extra) return topo.startAgent(node, cfgDir, args);
  const saved = { NODE_OPTIONS: process.env.NODE_OPTIONS, SMESH_CPU_PROF_DIR: process.env.SMESH_CPU_PROF_DIR };
  // spawn() in startAgent copies the environment: set for that call only, restored at once.
  process.env.NODE_OPTIONS = extra;
  if (profDir) process.env.SMESH_CPU_PROF_DIR = path.resolve(profDir);
  try {
    return topo.startAgent(node, cfgDir, args);
  } finally {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
}

function agentWarnings(a: AgentHandle): string[] {
  return a
    .logRecords()
    .filter((r) => typeof r.level === 'number' && r.level >= 40)
    .map((r) => `${r.level}: ${String(r.msg)}`);
}

async function meshCounters(a: AgentHandle): Promise<Record<string, number>> {
  const s = parseMetrics(await a.metrics().catch(() => ''));
  return {
    opened_source_mtls: sum(s, 'istio_tcp_connections_opened_total', { reporter: 'source', connection_security_policy: 'mutual_tls' }),
    opened_source_plain: sum(s, 'istio_tcp_connections_opened_total', { reporter: 'source', connection_security_policy: 'none' }),
    opened_destination_mtls: sum(s, 'istio_tcp_connections_opened_total', { reporter: 'destination', connection_security_policy: 'mutual_tls' }),
    // The HTTP port (--http-engine): requests the native HTTP/1.1 engine forwarded, and who relayed the source side's
    // upstream connections into HBONE (native: the HBONE engine; js: the agent thread).
    http_engine_outbound_forwarded: sum(s, 'smesh_http_engine_requests_total', { direction: 'outbound', outcome: 'forwarded' }),
    http_engine_inbound_forwarded: sum(s, 'smesh_http_engine_requests_total', { direction: 'inbound', outcome: 'forwarded' }),
    http_engine_bridge_native: sum(s, 'smesh_http_engine_bridge_connections_total', { relay: 'native' }),
    http_engine_bridge_js: sum(s, 'smesh_http_engine_bridge_connections_total', { relay: 'js' }),
    http_engine_bridge_socketpair: sum(s, 'smesh_http_engine_bridge_connections_total', { via: 'socketpair' }),
    http_requests_source: sum(s, 'istio_requests_total', { reporter: 'source' }),
  };
}

/**
 * Asks the kernel (PM QoS) for 0 µs wake-up latency until the returned release is called (or the process exits, which
 * closes the fd): the cpuidle governor then polls instead of halting the vCPU. Returns null when not possible.
 */
function holdZeroCpuLatency(): (() => void) | null {
  try {
    const fd = fs.openSync('/dev/cpu_dma_latency', 'w');
    const v = Buffer.alloc(4);
    v.writeInt32LE(0);
    fs.writeSync(fd, v);
    return () => fs.closeSync(fd);
  } catch {
    return null;
  }
}

function resultFile(ext: string, stamp: string): string {
  return path.join(OUT_DIR, `${stamp}.${ext}`);
}

async function main(): Promise<void> {
  const problem = privilegeProblem();
  if (problem) throw new Error(`make bench needs root: ${problem}`);
  if (!fs.existsSync(AGENT_CLI)) throw new Error(`${AGENT_CLI} is missing: run make build`);
  requireTools();
  if (!(DUR_S >= 1 && DUR_S <= 30) || !(ROUNDS >= 1 && ROUNDS <= 10)) throw new Error('BENCH_DUR must be 1..30 s and BENCH_ROUNDS 1..10');
  const started = Date.now();
  const info = machineInfo();
  say(`smesh bench: ${paths.map((p) => p.name).join(', ')} × ${TESTS.join(' ')} × ${ROUNDS} rounds, ${DUR_S} s each`);
  say(`  ${info.cores} cores (${info.cpu}), kernel ${info.kernel}, node ${info.node}, commit ${info.commit}`);

  const topo = await createTopology({
    runId: `bench${randomBytes(3).toString('hex')}`,
    nodes: ['node1', 'node2'],
    pods: [
      { name: 'client', node: 'node1' },
      { name: 'outsider', node: 'node1', enrolled: false },
      { name: 'local-server', node: 'node1' },
      { name: 'remote-server', node: 'node2' },
    ],
  });
  const agents: AgentHandle[] = [];
  let sampler: RssSampler | undefined;
  try {
    const buildDir = topo.makeTempDir('build');
    const httpd = path.join(buildDir, 'httpd');
    execFileSync('gcc', ['-O2', '-pthread', '-o', httpd, path.join(REPO_ROOT, 'bench/httpd.c')], { stdio: 'pipe' });
    const servers = new Servers(topo, httpd);
    await Promise.all([servers.start(topo.pod('remote-server')), servers.start(topo.pod('local-server'))]);

    const ports = [
      { name: 'iperf', port: PORT.iperf, targetPort: PORT.iperf },
      { name: 'http', port: PORT.http, targetPort: PORT.httpTarget },
      { name: 'tcp-web', port: PORT.tcpHttp, targetPort: PORT.tcpHttp },
      { name: 'ping', port: PORT.ping, targetPort: PORT.ping },
    ];
    const services: ServiceSpec[] = [
      { name: 'remote', vip: VIP.remote, ports, selector: { app: 'remote-server' } },
      { name: 'local', vip: VIP.local, ports, selector: { app: 'local-server' } },
    ];
    const cfgDir = topo.makeTempDir('config');
    topo.writeConfig(cfgDir, { services });
    // Sequential start: the first agent creates the standalone CA, the second reuses it.
    for (const n of ['node1', 'node2']) {
      const a = startAgentWithNodeOptions(topo, n, cfgDir);
      agents.push(a);
      await a.waitReady(60_000);
    }
    const [agent1, agent2] = agents as [AgentHandle, AgentHandle];
    for (const a of agents) {
      const comm = sh('cat', [`/proc/${a.pid}/comm`]);
      if (comm !== 'node') throw new Error(`agent pid ${a.pid} is '${comm}', not node: RSS would be measured on the wrong process`);
    }

    // Peers: certificates made now, both proxies of each selected peer started in the node namespaces.
    const peerChecks: Record<string, MtlsCheck> = {};
    if (peerPaths.length) {
      const certDir = topo.makeTempDir('peer-certs');
      const workDir = topo.makeTempDir('peers');
      makePeerCerts(certDir);
      for (const d of peerPaths) {
        // HTTP-mode peers forward to 8080, as the mesh's `http` port does.
        const http = d.mode === 'http' ? PORT.httpTarget : APP_HTTP_PORT;
        runningPeers.set(d.name, await startPeer(topo, d, topo.pod('remote-server'), { iperf: PORT.iperf, http, ping: PORT.ping }, workDir, certDir));
        const c = await checkMtls(topo, runningPeer(d.name), certDir);
        peerChecks[d.name] = c;
        if (!c.withClientCert || !c.withoutClientCertRefused || c.protocol !== 'TLSv1.3') {
          throw new Error(`peer ${d.name}: mTLS check failed (with client cert answered: ${c.withClientCert}, without refused: ${c.withoutClientCertRefused}, protocol ${c.protocol})`);
        }
      }
      say(`  peers started: ${peerPaths.map((d) => `${d.name} (${peerChecks[d.name]!.protocol} ${peerChecks[d.name]!.cipher}, client certificate required)`).join(', ')}`);
    }

    // Sanity: every path answers HTTP (a VIP has no route: an answer proves the redirect into the mesh).
    const firstTest = (p: PathDef): TestName => p.tests.find((t) => TESTS.includes(t)) ?? p.tests[0]!;
    for (const p of paths) {
      const t = p.target(topo, firstTest(p));
      const r = await topo.execInPod(p.from, 'curl', ['-sS', '-m', '5', `http://${t.host}:${t.httpPort}/`], { timeoutMs: 10_000 });
      if (r.stdout.trim() !== 'hello') throw new Error(`path ${p.name}: GET http://${t.host}:${t.httpPort}/ from ${p.from} failed: ${r.stdout}${r.stderr}\n${tail(agent1.logs(), 20)}`);
    }
    say('  sanity: every path answers; agents ready');

    // Other work on the machine distorts every number: wait (bounded) for a quiet moment, then say how quiet it was.
    let quiet = 0;
    for (let i = 0; i < 30; i++) {
      const w = cpuWindow({}, topo.runCgroup);
      await sleep(1000);
      quiet = w.end().other;
      if (quiet <= FOREIGN_CPU_LIMIT) break;
      if (i === 0) say(`  machine busy outside the bench (${quiet.toFixed(0)}% of a core): waiting up to 30 s for it to calm down`);
    }
    say(`  CPU used outside the bench before measuring: ${quiet.toFixed(0)}% of a core${quiet > FOREIGN_CPU_LIMIT ? ' — NOT QUIET: numbers will be contaminated' : ''}`);

    sampler = new RssSampler({ node1: agent1.pid, node2: agent2.pid });
    await sleep(2000);
    const idleBefore = sampler.sample();
    sampler.start();
    say(`  agent RSS idle: node1 ${mib(idleBefore.node1)} MiB, node2 ${mib(idleBefore.node2)} MiB`);

    // Warm-up: opens the pooled HBONE tunnel and lets V8 optimize the relay before anything is recorded.
    for (const p of paths) {
      const http = HTTP_TESTS.includes(firstTest(p));
      await runTest(topo, topo.pod(p.from), http ? 'hrps' : 'rps', p.target(topo, http ? 'hrps' : 'rps'), 1);
    }

    const cgroups = {
      'node1 agent': topo.node('node1').agentCgroup,
      'node2 agent': topo.node('node2').agentCgroup,
      'load gen pod': topo.pod('client').cgroup, // replaced per path below (client or outsider)
      'server pod': topo.pod('remote-server').cgroup,
    };
    const groupNames = [...Object.keys(cgroups), ...PROXY_GROUPS];
    const samples: Sample[] = [];
    const warnAt = agents.map((a) => agentWarnings(a).length);

    /** One measurement of `test` on `p`, recorded in `samples` (the agents' RSS from `rss`). */
    const measure = async (round: number, test: TestName, p: PathDef, rss: RssSampler): Promise<void> => {
      const target = p.target(topo, test);
      const serverPod = target.host === topo.pod('local-server').ip || target.host === VIP.local ? 'local-server' : 'remote-server';
      const groups = { ...cgroups, 'load gen pod': topo.pod(p.from).cgroup, 'server pod': topo.pod(serverPod).cgroup, ...p.proxies(topo) };
      rss.resetWindow({ [PROXY_RSS]: Object.values(p.proxies(topo)) });
      const w = cpuWindow(groups, topo.runCgroup);
      const t0 = Date.now();
      const latencyTest = test === 'lat' || test === 'hlat';
      const release = latencyTest && IDLE_POLL ? holdZeroCpuLatency() : null;
      if (latencyTest && IDLE_POLL && !release && round === 1) say('  (cannot open /dev/cpu_dma_latency: latency measured with halting idle CPUs)');
      let m: Measured;
      try {
        m = await runTest(topo, topo.pod(p.from), test, target, DUR_S);
      } finally {
        release?.();
      }
      const cpu = w.end();
      rss.sample();
      const s: Sample = { round, path: p.name, test, m, cpu, rssPeakKiB: { ...rss.windowPeak }, wallS: (Date.now() - t0) / 1000 };
      samples.push(s);
      const shown = m.error
        ? `FAILED: ${m.error.split('\n')[0]}`
        : latencyTest
          ? `p50 ${m.p50Us?.toFixed(1)} µs  p99 ${m.p99Us?.toFixed(1)} µs`
          : test.startsWith('bw')
            ? `${m.value!.toFixed(2)} Gbit/s`
            : `${Math.round(m.value!)} /s${m.reqP50Us !== undefined ? ` p50 ${Math.round(m.reqP50Us)} µs p99 ${Math.round(m.reqP99Us ?? 0)} µs` : ''}`;
      const busyElsewhere = cpu.other > FOREIGN_CPU_LIMIT ? `  ! ${cpu.other.toFixed(0)}% CPU used outside the bench` : '';
      const cpuText = `cpu machine ${cpu.machine.toFixed(0)}% ksoftirqd ${cpu.ksoftirqd.toFixed(0)}% agents ${cpu.groups['node1 agent']!.toFixed(0)}%/${cpu.groups['node2 agent']!.toFixed(0)}%${busyElsewhere}`;
      say(`  r${round} ${test.padEnd(3)} ${p.name.padEnd(12)} ${shown.padEnd(34)} ${cpuText}${m.errorDetail ? `  (${m.errorDetail})` : ''}`);
      if (m.error && test.startsWith('bw')) await servers.restartIperf(topo.pod(serverPod));
      await sleep(GAP_MS);
    };

    say('');
    for (let round = 1; round <= ROUNDS; round++) {
      const k = (round - 1) % paths.length;
      const order = [...paths.slice(k), ...paths.slice(0, k)]; // rotate so no path always runs first
      for (const test of TESTS) {
        for (const p of order) if (p.tests.includes(test)) await measure(round, test, p, sampler);
      }
    }

    await sleep(3000);
    const idleAfter = sampler.sample();
    sampler.stop();
    const hwm = { node1: memKiB(agent1.pid)?.hwm, node2: memKiB(agent2.pid)?.hwm };
    const counters = { node1: await meshCounters(agent1), node2: await meshCounters(agent2) };
    const warnings = agents.map((a, i) => agentWarnings(a).slice(warnAt[i]));
    const contaminated = samples.filter((s) => s.cpu.other > FOREIGN_CPU_LIMIT);
    const exited = agents.filter((a) => a.proc.exitInfo()).map((a) => a.node.name);

    // BENCH_HTTP_ENGINE=both: the HTTP port once more, on node:http — the flag is per agent process, so both agents
    // are restarted without it (not rotated with the other paths: measured last).
    const later: { warnings: string[][]; exited: string[]; counters?: Record<string, Record<string, number>>; error?: string } = { warnings: [], exited: [] };
    if (laterPaths.length) {
      say('');
      say(`  restarting both agents without --http-engine for ${laterPaths.map((p) => p.name).join(', ')}`);
      let rss: RssSampler | undefined;
      // A failure here costs these rows only: everything measured before is still reported.
      try {
        for (const a of agents) await a.stop(5000);
        agents.length = 0;
        for (const n of ['node1', 'node2']) {
          const a = startAgentWithNodeOptions(topo, n, cfgDir, NODEHTTP_AGENT_ARGS);
          agents.push(a);
          await a.waitReady(60_000);
        }
        rss = new RssSampler({ node1: agents[0]!.pid, node2: agents[1]!.pid });
        rss.start();
        // Fresh agents: a longer warm-up than the rotated paths' 1 s (those agents had run everything before).
        for (const p of laterPaths) await runTest(topo, topo.pod(p.from), 'hrps', p.target(topo, 'hrps'), Math.max(2, DUR_S));
        const from = agents.map((a) => agentWarnings(a).length);
        for (let round = 1; round <= ROUNDS; round++) {
          for (const test of TESTS) for (const p of laterPaths) if (p.tests.includes(test)) await measure(round, test, p, rss);
        }
        later.warnings = agents.map((a, i) => agentWarnings(a).slice(from[i]));
        later.exited = agents.filter((a) => a.proc.exitInfo()).map((a) => a.node.name);
        later.counters = { node1: await meshCounters(agents[0]!), node2: await meshCounters(agents[1]!) };
      } catch (e) {
        later.error = (e as Error).message;
        say(`  ${NODEHTTP_PATH} not measured: ${later.error}`);
      } finally {
        rss?.stop();
      }
    }

    // ------------------------------------------------------------------- report
    const now = new Date();
    const date = now.toISOString().slice(0, 10);
    const stamp = fs.existsSync(resultFile('md', date)) ? `${date}-${now.toISOString().slice(11, 19).replace(/:/g, '')}` : date;
    const rssTable = [
      '| agent | idle before (MiB) | peak under load, sampled every 200 ms (MiB) | VmHWM (MiB) | idle after (MiB) |',
      '|---|---:|---:|---:|---:|',
      ...(['node1', 'node2'] as const).map((n) => `| ${n} | ${mib(idleBefore[n])} | ${mib(sampler!.peak[n])} | ${mib(hwm[n])} | ${mib(idleAfter[n])} |`),
    ].join('\n');
    const rssPerTest = [
      '| test | ' + paths.map((p) => p.name).join(' | ') + ' |',
      '|---|' + paths.map(() => '---:').join('|') + '|',
      ...TESTS.map(
        (t) =>
          `| ${t} | ${paths
            .map((p) => {
              const xs = samples.filter((s) => s.test === t && s.path === p.name);
              const pk = (n: string) => Math.max(0, ...xs.map((s) => s.rssPeakKiB[n] ?? 0));
              return `${mib(pk('node1'))} / ${mib(pk('node2'))}`;
            })
            .join(' | ')} |`,
      ),
    ].join('\n');
    const elapsed = Math.round((Date.now() - started) / 1000);
    const goals = goalLines({
      samples,
      smesh: 'mesh',
      direct: 'direct',
      smeshLocal: 'mesh-local',
      directLocal: 'direct-local',
      peers: tcpPeers,
      rssIdleKiB: idleBefore,
      rssPeakKiB: sampler.peak,
      standalone: true,
    });
    const httpGoals = httpGoalLines({ samples, smesh: 'mesh-http', direct: 'direct', peers: httpPeers });
    const hasPath = (name: string) => paths.some((p) => p.name === name);
    const md = [
      `# smesh bench ${now.toISOString()}`,
      '',
      `Command: \`make bench\` (${[`BENCH_DUR=${DUR_S}`, `BENCH_ROUNDS=${ROUNDS}`, process.env.BENCH_TESTS ? `BENCH_TESTS="${TESTS.join(' ')}"` : '', process.env.BENCH_PATHS ? `BENCH_PATHS="${PATH_NAMES.join(' ')}"` : '', process.env.BENCH_HTTP_PORT ? `BENCH_HTTP_PORT=${HTTP_PORT_KIND}` : '', process.env.BENCH_HTTP_ENGINE ? `BENCH_HTTP_ENGINE=${HTTP_ENGINE}` : '', process.env.BENCH_AGENT_ARGS ? `BENCH_AGENT_ARGS="${EXTRA_AGENT_ARGS.join(' ')}"` : '', IDLE_POLL ? '' : 'BENCH_IDLE_POLL=0'].filter(Boolean).join(' ')}); ${elapsed} s in all.`,
      `Machine: ${info.cores} cores, ${info.cpu}, kernel ${info.kernel}, node ${info.node}, ${info.iperf3}, ${info.wrk}, sockperf ${info.sockperf}, cpuidle driver ${info.cpuidle}. Peers: ${info.peers}. Commit ${info.commit}.`,
      `Agents: \`smesh agent --standalone ${AGENT_ARGS.join(' ')}\`.`,
      `Latency test: ${IDLE_POLL ? 'with a 0 µs /dev/cpu_dma_latency request held (idle vCPUs poll instead of halting; see bench/README.md)' : 'idle vCPUs may halt (BENCH_IDLE_POLL=0)'}.`,
      '',
      'Paths:',
      ...paths.map((p) => `- **${p.name}**: ${p.describe}`),
      '',
      `## Results: median [min–max] over ${ROUNDS} rounds of ${DUR_S} s; ratio = mesh median / direct median`,
      '(throughput: < 1 is slower than direct; latency: > 1 is slower)',
      '',
      mainTable(samples, PAIRS, PATH_NAMES),
      '',
      ...(tcpPeers.length && hasPath('mesh')
        ? [
            `## Against the peers: median over ${ROUNDS} rounds; ratio = smesh (mesh) median / peer median`,
            "(throughput: > 1 is smesh faster; latency and CPU per unit of work: < 1 is smesh better. Proxy CPU = both agents for smesh, both proxies' processes for a peer, from their cgroups)",
            '',
            peerTable(samples, 'mesh', 'direct', tcpPeers, TCP_TESTS),
            '',
            'Goals (issue 12 item 5; ratios within this run):',
            '',
            ...goals,
            '',
          ]
        : []),
      ...(httpPeers.length && hasPath('mesh-http')
        ? [
            `## HTTP port against HTTP reverse proxies: median over ${ROUNDS} rounds; ratio = smesh (mesh-http) median / peer median`,
            `(mesh-http: the Service port named \`http\`, proxied per request by both agents${ENGINE_FIRST ? ' with --http-engine' : ' on node:http (BENCH_HTTP_ENGINE=0)'}${laterPaths.length ? `; ${NODEHTTP_PATH}: the same on node:http, agents restarted without --http-engine after the other measurements` : ''}; the peers: nginx and HAProxy HTTP reverse proxies, keep-alive upstreams, mTLS between the hops)`,
            '',
            // With BENCH_HTTP_ENGINE=both the node:http run is a column too: mesh-http/mesh-http-nodehttp is what the engine gains.
            peerTable(samples, 'mesh-http', 'direct', [...httpPeers, ...laterPaths.map((p) => p.name)], HTTP_TESTS),
            '',
            'Goals (issue 13 item 5; ratios within this run):',
            '',
            ...httpGoals,
            '',
          ]
        : []),
      '## Agent memory (VmRSS of the agent process)',
      '',
      rssTable,
      '',
      'Peak RSS per test, node1 / node2 agent (MiB):',
      '',
      rssPerTest,
      '',
      '## CPU during each measurement (median, % of one core; the machine has ' + info.cores + ' cores)',
      '',
      cpuTable(samples, PATH_NAMES, groupNames),
      '',
      '## Checks',
      '',
      `- mesh connections counted by the agents: node1 source mTLS ${counters.node1.opened_source_mtls}, node1 source plain (same node) ${counters.node1.opened_source_plain}, node2 destination mTLS ${counters.node2.opened_destination_mtls}`,
      ...(later.error ? [`- ${NODEHTTP_PATH}: NOT MEASURED (restarting the agents without --http-engine failed: ${later.error.split('\n')[0]})`] : []),
      ...(later.counters
        ? [
            `- ${NODEHTTP_PATH} (agents restarted without --http-engine): requests reported by node1 ${later.counters.node1!.http_requests_source}, forwarded by an HTTP/1.1 engine ${later.counters.node1!.http_engine_outbound_forwarded + later.counters.node2!.http_engine_inbound_forwarded} (expected 0); warnings/errors node1 ${later.warnings[0]!.length}, node2 ${later.warnings[1]!.length}; agents still running at the end: ${later.exited.length ? `NO, exited: ${later.exited.join(', ')}` : 'yes'}`,
          ]
        : []),
      ...(HTTP_ROWS
        ? [
            `- HTTP port: requests reported by node1 (reporter=source) ${counters.node1.http_requests_source}; forwarded by the HTTP/1.1 engine: node1 outbound ${counters.node1.http_engine_outbound_forwarded}, node2 inbound ${counters.node2.http_engine_inbound_forwarded}; node1's upstream connections into HBONE relayed by the HBONE engine ${counters.node1.http_engine_bridge_native} (handed over as socketpairs, no loopback hop: ${counters.node1.http_engine_bridge_socketpair}), in JavaScript ${counters.node1.http_engine_bridge_js}`,
          ]
        : []),
      `- agent warnings/errors logged during the measurements: node1 ${warnings[0]!.length}, node2 ${warnings[1]!.length}${warnings.flat().length ? ` (first: ${warnings.flat().slice(0, 3).join('; ')})` : ''}`,
      `- agents still running at the end: ${exited.length ? `NO, exited: ${exited.join(', ')}` : 'yes'}`,
      ...Object.entries(peerChecks).map(
        ([n, c]) =>
          `- peer ${n}: node2 proxy answered through TLS with the client certificate: ${c.withClientCert ? 'yes' : 'NO'}; refused without one: ${c.withoutClientCertRefused ? 'yes' : 'NO'}; ${c.protocol} ${c.cipher}; proxies still running at the end: ${runningPeer(n).procs.every((pr) => !pr.exitInfo()) ? 'yes' : 'NO'}`,
      ),
      `- failed measurements: ${samples.filter((s) => s.m.error).length} of ${samples.length}`,
      `- measurements during which more than ${FOREIGN_CPU_LIMIT}% of a core was used outside the bench (other processes on the machine, the bench runner, kernel threads other than ksoftirqd): ${contaminated.length} of ${samples.length}${
        contaminated.length
          ? ` (${contaminated
              .slice(0, 8)
              .map((s) => `r${s.round} ${s.test} ${s.path} ${s.cpu.other.toFixed(0)}%`)
              .join(', ')}${contaminated.length > 8 ? ', …' : ''}) — rerun on a quiet machine before quoting`
          : ''
      }`,
      `- CPU steal (hypervisor), median over measurements: ${(median(samples.map((s) => s.cpu.steal)) ?? 0).toFixed(0)}% of a core`,
    ].join('\n');

    say('');
    say(md);
    if (OUT_DIR) {
      fs.mkdirSync(OUT_DIR, { recursive: true });
      fs.writeFileSync(resultFile('md', stamp), md + '\n');
      fs.writeFileSync(
        resultFile('json', stamp),
        JSON.stringify(
          {
            date: now.toISOString(),
            settings: {
              durS: DUR_S,
              rounds: ROUNDS,
              tests: TESTS,
              paths: PATH_NAMES,
              idlePollDuringLatency: IDLE_POLL,
              httpPort: HTTP_PORT_KIND,
              httpEngine: HTTP_ENGINE,
              agentArgs: AGENT_ARGS,
            },
            machine: info,
            paths: paths.map((p) => ({ name: p.name, describe: p.describe })),
            summary: summarize(samples, PAIRS, PATH_NAMES),
            peers: Object.fromEntries(peerPaths.map((d) => [d.name, { kind: d.kind, mode: d.mode, workers: d.workers, mtls: peerChecks[d.name] }])),
            goals,
            httpGoals,
            rssKiB: { idleBefore, peak: sampler.peak, hwm, idleAfter },
            counters,
            warnings,
            exited,
            quietBeforePct: quiet,
            contaminated: contaminated.length,
            elapsedS: elapsed,
            samples,
          },
          null,
          2,
        ) + '\n',
      );
      say('');
      say(`recorded: ${path.relative(process.cwd(), resultFile('md', stamp))} and .json`);
    }
  } finally {
    sampler?.stop();
    for (const p of runningPeers.values()) await stopPeer(p).catch(() => undefined);
    for (const a of agents) await a.stop(5000).catch(() => undefined);
    await topo.cleanup();
  }
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    process.stderr.write(`bench failed: ${(e as Error).stack ?? String(e)}\n`);
    process.exit(1);
  },
);
