// Noisy-neighbour bench (issue 14 item 5): a quiet pod's request/response latency and req/s through node1's proxy alone and next to a noisy pod (connection flood + bulk), fair share on and off, rounds rotated; and whether TrafficShaping rate and bandwidth limits hold within ±10 % — recorded in bench/results/noisy-neighbour-<stamp>.md/.json.
//
// Rerun (root, after `make build`; ~5 minutes with the defaults; on a quiet machine — bench/README.md "Noisy neighbour"):
//   sudo npx tsx bench/noisy-neighbour.ts
// Settings (environment): BENCH_DUR (10) seconds per quiet-pod measurement; BENCH_ROUNDS (3); BENCH_QUIET_CONNS (4)
// keep-alive connections of the quiet pod; BENCH_QUIET_DELAY_MS (1) think time before each of its requests (0: back to
// back); BENCH_QUIET_PORT (tcp: Service port 8081 `tcp-web`, relayed per connection; http: port 80 `http`, the agents'
// per-request HTTP path); BENCH_NOISY_CONNS (64) connections of the noisy pod's new-connection flood; BENCH_NOISY_STREAMS
// (4) its bulk streams; BENCH_NOISY ("conns bulk": what the noisy pod runs, one or both); BENCH_LIMIT_S (10) seconds
// per limit measurement; BENCH_PARTS ("quiet direct limits": the quiet-pod rounds through the mesh, the control rows
// with the quiet pod not through the mesh, the limit measurements); BENCH_FAIR_SHARE
// (auto: on and off when the agent has --fair-share; default: never pass the flag); BENCH_IDLE_POLL (1: hold a 0 µs
// /dev/cpu_dma_latency request while the quiet pod is measured, as bench/run.ts does for latency); BENCH_AGENT_ARGS;
// BENCH_OUT (bench/results).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { type CpuGroup, type CpuModel, startCpuModel } from './lib/cpu-model';
import { createTopology, privilegeProblem, AGENT_CLI, NODE_BIN, REPO_ROOT, type Topology, type AgentHandle, type ServiceSpec } from '../test/helpers/topology';
import { sleep, tail, waitExit, type CapturedProcess } from '../test/helpers/proc';
import { parseMetrics, sum } from '../test/helpers/metrics';
import { SmeshError } from '../core/errors';
import { parseIperf, parseWrk } from './lib/tools';
import { cpuWindow } from './lib/procstat';
import { startSweeper } from '../test/helpers/sweeper';
import {
  cell,
  cpuTable,
  goalLines,
  limitTable,
  MODE_LABEL,
  parseWrkLatency,
  quietTable,
  ratios,
  type AgentMode,
  type Condition,
  type LimitResult,
  type NoisyMeasured,
  type QuietSample,
  type RowGroup,
} from './lib/noisy';

function say(text = ''): void {
  process.stdout.write(text + '\n');
}

// ---------------------------------------------------------------------------------------------
// Settings

const env = (k: string, d: string) => process.env[k] ?? d;
function intSetting(name: string, dflt: number, min: number, max: number): number {
  const raw = env(name, String(dflt));
  const v = Number(raw);
  if (!Number.isInteger(v) || v < min || v > max) throw new SmeshError('SMESH_ERR_CONFIG', `${name}: expected an integer ${min}..${max}, got '${raw}'`);
  return v;
}
const DUR_S = intSetting('BENCH_DUR', 10, 2, 60);
const ROUNDS = intSetting('BENCH_ROUNDS', 3, 1, 10);
const QUIET_CONNS = intSetting('BENCH_QUIET_CONNS', 4, 1, 64);
const QUIET_DELAY_MS = intSetting('BENCH_QUIET_DELAY_MS', 1, 0, 1000);
const NOISY_CONNS = intSetting('BENCH_NOISY_CONNS', 64, 2, 256);
const NOISY_STREAMS = intSetting('BENCH_NOISY_STREAMS', 4, 1, 16);
const LIMIT_S = intSetting('BENCH_LIMIT_S', 10, 2, 30);
function listSetting(name: string, dflt: string, known: readonly string[]): string[] {
  const want = env(name, dflt)
    .split(/[\s,]+/)
    .filter(Boolean);
  for (const w of want) if (!known.includes(w)) throw new SmeshError('SMESH_ERR_CONFIG', `${name}: unknown '${w}' (known: ${known.join(' ')})`);
  if (want.length === 0) throw new SmeshError('SMESH_ERR_CONFIG', `${name}: empty (known: ${known.join(' ')})`);
  return want;
}
const PARTS = listSetting('BENCH_PARTS', 'quiet direct limits', ['quiet', 'direct', 'limits']);
const LIMITS = PARTS.includes('limits');
const QUIET_ROUNDS = PARTS.includes('quiet') || PARTS.includes('direct');
const NOISY_KINDS = listSetting('BENCH_NOISY', 'conns bulk', ['conns', 'bulk']);
const IDLE_POLL = env('BENCH_IDLE_POLL', '1') !== '0';
const QUIET_PORT_KIND = env('BENCH_QUIET_PORT', 'tcp');
if (QUIET_PORT_KIND !== 'tcp' && QUIET_PORT_KIND !== 'http') throw new SmeshError('SMESH_ERR_CONFIG', `BENCH_QUIET_PORT: '${QUIET_PORT_KIND}' is neither tcp nor http`);
const FAIR_SHARE_SETTING = env('BENCH_FAIR_SHARE', 'auto');
if (FAIR_SHARE_SETTING !== 'auto' && FAIR_SHARE_SETTING !== 'default') throw new SmeshError('SMESH_ERR_CONFIG', `BENCH_FAIR_SHARE: '${FAIR_SHARE_SETTING}' is neither auto nor default`);
const EXTRA_AGENT_ARGS = env('BENCH_AGENT_ARGS', '').split(/\s+/).filter(Boolean);
/** `requests`: each pod and agent in its own CPU group with shares from its CPU request, as kubelet places them (bench/lib/cpu-model.ts); `none`: one flat group. */
const CPU_MODEL = env('BENCH_CPU_MODEL', 'none');
if (CPU_MODEL !== 'none' && CPU_MODEL !== 'requests') throw new SmeshError('SMESH_ERR_CONFIG', `BENCH_CPU_MODEL: '${CPU_MODEL}' is neither none nor requests`);
const AGENT_CPU_M = intSetting('BENCH_AGENT_CPU_M', 1000, 2, 64000);
const POD_CPU_M = intSetting('BENCH_POD_CPU_M', 250, 2, 64000);
const OUT_DIR = env('BENCH_OUT', path.join(REPO_ROOT, 'bench/results'));
/** CPU (% of one core) used outside the bench's cgroups above which a measurement is flagged (as in bench/run.ts). */
const FOREIGN_CPU_LIMIT = 25;
/** The noisy pod starts this long before the quiet pod is measured and runs until shortly after. */
const NOISY_LEAD_MS = 1000;
const GAP_MS = 300;

const VIP = { quiet: '198.19.0.20', noisy: '198.19.0.21' } as const;
const PORT = { http: 80, httpTarget: 8080, tcpWeb: 8081, iperf: 5201 } as const;
const QUIET_URL = `http://${VIP.quiet}:${QUIET_PORT_KIND === 'http' ? PORT.http : PORT.tcpWeb}/`;
/** The control path: from a pod outside the mesh straight to the quiet server pod (same server port as the mesh path's target). */
const directUrl = (topo: Topology) => `http://${topo.pod('quiet-server').ip}:${QUIET_PORT_KIND === 'http' ? PORT.httpTarget : PORT.tcpWeb}/`;
const NOISY_URL = `http://${VIP.noisy}:${PORT.tcpWeb}/`;

/**
 * The limits: each on its own client pod on node1, outbound to the `noisy` Service on node2 (buckets per source
 * workload at node1's proxy). Rates well inside what the mesh carries here, so the limit and not the machine decides.
 */
const LIMIT = {
  conn: { maxTokens: 20, tokensPerFill: 20, fillMs: 100 }, // 200 new connections/s
  req: { maxTokens: 100, tokensPerFill: 100, fillMs: 100 }, // 1000 requests/s
  bytesBps: 100_000_000, // 100 Mbit/s upload (client → server)
} as const;

/**
 * Spellings of a `bytesPerSecond` rule to try with `smesh check` (the field is being added; the first one the agent's
 * validation accepts is used, none accepted = the bandwidth limit is skipped with the check's message).
 */
const BYTES_CANDIDATES: Array<Record<string, unknown>> = [{ upload: '100M' }, { upload: LIMIT.bytesBps }, { uploadBps: LIMIT.bytesBps }];

const shaping = (name: string, app: string, rule: Record<string, unknown>) => ({
  apiVersion: 'smesh.io/v1alpha1',
  kind: 'TrafficShaping',
  metadata: { name, namespace: 'default' },
  spec: { selector: { matchLabels: { app } }, outbound: [{ name: 'limit', service: 'noisy', ...rule }] },
});
const bucket = (b: { maxTokens: number; tokensPerFill: number; fillMs: number }) => ({ maxTokens: b.maxTokens, tokensPerFill: b.tokensPerFill, fillInterval: `${b.fillMs}ms` });
const CONN_SHAPING = shaping('bench-conn-rate', 'limit-conn', { connectionRate: bucket(LIMIT.conn) });
const REQ_SHAPING = shaping('bench-request-rate', 'limit-req', { requestRate: bucket(LIMIT.req) });
const bytesShaping = (v: Record<string, unknown>) => shaping('bench-bytes', 'limit-bytes', { bytesPerSecond: v });

// ---------------------------------------------------------------------------------------------

function requireTools(): void {
  const missing = ['iperf3', 'wrk', 'gcc', 'curl', 'ss'].filter((t) => spawnSync('sh', ['-c', `command -v ${t}`]).status !== 0);
  if (missing.length) throw new SmeshError('SMESH_ERR_CONFIG', `missing ${missing.join(', ')}: run \`bash bench/install.sh\` (as root) first`);
}

/**
 * Whether the agent takes `--fair-share on|off`: listed in `smesh agent --help` and not refused by its argument
 * parser. Returns null when it does, else why not.
 */
function fairShareUnavailable(): string | null {
  if (FAIR_SHARE_SETTING === 'default') return 'BENCH_FAIR_SHARE=default';
  const help = spawnSync(NODE_BIN, [AGENT_CLI, 'agent', '--help'], { timeout: 20_000, encoding: 'utf8' });
  if (!/--fair-share\b/.test(`${help.stdout}${help.stderr}`)) return '`smesh agent --help` does not list --fair-share';
  for (const v of ['on', 'off']) {
    // Without --node etc. the parser stops after the options: a known flag fails on the missing --node, not on itself.
    const r = spawnSync(NODE_BIN, [AGENT_CLI, 'agent', '--fair-share', v], { timeout: 20_000, encoding: 'utf8' });
    const text = `${r.stdout}${r.stderr}`;
    const complaint = text.split('\n').find((l) => /fair-share/.test(l) && /unknown|invalid|expected|must|not supported/i.test(l));
    if (complaint) return `the agent refuses --fair-share ${v}: ${complaint.trim()}`;
  }
  return null;
}

/** Runs `smesh check` on a directory; null when the config is valid, else what it printed. */
function checkConfig(dir: string): string | null {
  const r = spawnSync(NODE_BIN, [AGENT_CLI, 'check', dir], { timeout: 60_000, encoding: 'utf8' });
  return r.status === 0 ? null : `${r.stdout}${r.stderr}`.trim() || `exit ${r.status}`;
}

/** A 0 µs PM QoS request until released (idle vCPUs poll instead of halting; bench/README.md "Latency and idle vCPUs"). */
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

function git(args: string[]): string {
  try {
    return execFileSync('git', ['-C', REPO_ROOT, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
      .toString()
      .trim();
  } catch {
    return '?';
  }
}

/** The command that reruns this bench with the settings of this run. */
function rerunCommand(): string {
  const names = [
    'BENCH_DUR',
    'BENCH_ROUNDS',
    'BENCH_QUIET_CONNS',
    'BENCH_QUIET_DELAY_MS',
    'BENCH_QUIET_PORT',
    'BENCH_NOISY_CONNS',
    'BENCH_NOISY_STREAMS',
    'BENCH_NOISY',
    'BENCH_LIMIT_S',
    'BENCH_PARTS',
    'BENCH_FAIR_SHARE',
    'BENCH_IDLE_POLL',
    'BENCH_AGENT_ARGS',
    'BENCH_CPU_MODEL',
    'BENCH_AGENT_CPU_M',
    'BENCH_POD_CPU_M',
  ];
  const set = names.filter((n) => process.env[n] !== undefined).map((n) => `${n}=${/\s/.test(process.env[n]!) ? `"${process.env[n]}"` : process.env[n]}`);
  return `sudo ${set.length ? `${set.join(' ')} ` : ''}npx tsx bench/noisy-neighbour.ts`;
}

async function waitListening(topo: Topology, pod: string, port: number, proc: CapturedProcess): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    if (proc.exitInfo()) throw new SmeshError('SMESH_ERR_CONNECT', `server for port ${port} in ${pod} exited: ${tail(proc.outputText(), 8)}`);
    const r = await topo.execInPod(pod, 'ss', ['-Hltn', `sport = :${port}`], { timeoutMs: 5000 });
    if (r.stdout.trim()) return;
    await sleep(100);
  }
  throw new SmeshError('SMESH_ERR_CONNECT', `nothing listens on port ${port} in ${pod} after 10 s`);
}

function agentWarnings(a: AgentHandle): string[] {
  return a
    .logRecords()
    .filter((r) => typeof r.level === 'number' && r.level >= 40)
    .map((r) => `${r.level}: ${String(r.msg)}`);
}

async function agentMetric(a: AgentHandle, name: string, labels: Record<string, string>): Promise<number> {
  return sum(parseMetrics(await a.metrics().catch(() => '')), name, labels);
}

/** wrk's "N requests in T": completed requests and the run time in seconds. */
function wrkCount(out: string): { requests: number; seconds: number } | undefined {
  const m = /(\d+) requests in ([\d.]+)(ms|s|m)\b/.exec(out);
  if (!m) return undefined;
  const f = m[3] === 'ms' ? 1e-3 : m[3] === 'm' ? 60 : 1;
  return { requests: Number(m[1]), seconds: Number(m[2]) * f };
}

const rotate = <T>(xs: readonly T[], k: number): T[] => xs.map((_, i) => xs[(i + k) % xs.length]!);

// ---------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const problem = privilegeProblem();
  if (problem) throw new SmeshError('SMESH_ERR_CONFIG', `bench/noisy-neighbour.ts needs root: ${problem}`);
  if (!fs.existsSync(AGENT_CLI)) throw new SmeshError('SMESH_ERR_CONFIG', `${AGENT_CLI} is missing: run make build`);
  requireTools();
  const started = Date.now();
  const commit = git(['rev-parse', '--short', 'HEAD']) + (git(['status', '--porcelain', '--untracked-files=no']) ? ' (uncommitted changes in the tree)' : '');
  let fairShareNote = fairShareUnavailable();
  let modes: AgentMode[] = fairShareNote === null ? ['on', 'off'] : ['default'];
  say(
    `noisy-neighbour bench: ${ROUNDS} rounds × ${modes.map((m) => MODE_LABEL[m]).join(' / ')}${PARTS.includes('direct') ? ' (+ direct control)' : ''} × alone / with the noisy pod, ${DUR_S} s each; parts ${PARTS.join(' ')}; commit ${commit}; agent ${path.relative(REPO_ROOT, AGENT_CLI)}`,
  );
  say(`  fair share: ${fairShareNote === null ? 'the agent has --fair-share: measured on and off' : `not available (${fairShareNote}): only the with/without-noisy rows`}`);
  say(`  ${os.cpus().length} cores, kernel ${os.release()}, node ${process.version}`);

  const runId = `bench${randomBytes(3).toString('hex')}`;
  // The harness cleans up at the end, on failure and on Ctrl-C; the sweeper also when this process is killed during that.
  startSweeper(runId);
  const topo = await createTopology({
    runId,
    nodes: ['node1', 'node2'],
    pods: [
      { name: 'quiet', node: 'node1' },
      { name: 'noisy', node: 'node1' },
      { name: 'limit-conn', node: 'node1' },
      { name: 'limit-req', node: 'node1' },
      { name: 'limit-bytes', node: 'node1' },
      // Not enrolled: the control rows' client (its connections to the server pod's address are not redirected).
      { name: 'quiet-direct', node: 'node1', enrolled: false },
      { name: 'quiet-server', node: 'node2' },
      { name: 'noisy-server', node: 'node2' },
    ],
  });
  const allAgents: AgentHandle[] = [];
  let agents: AgentHandle[] = [];
  let release: (() => void) | null = null;
  let cpuModel: CpuModel | undefined;
  try {
    if (CPU_MODEL === 'requests') {
      const pod = (name: string): CpuGroup => ({ v2: topo.pod(name).cgroup, requestMillis: POD_CPU_M });
      const agent = (name: string): CpuGroup => ({ v2: topo.node(name).agentCgroup, requestMillis: AGENT_CPU_M });
      cpuModel = startCpuModel(`smesh-test-${runId}`, {
        'node1 agent': agent('node1'),
        'node2 agent': agent('node2'),
        ...Object.fromEntries(['quiet', 'noisy', 'quiet-direct', 'quiet-server', 'noisy-server', 'limit-conn', 'limit-req', 'limit-bytes'].map((p) => [p, pod(p)])),
      });
      say(`  CPU model: ${cpuModel.description}`);
      if (!cpuModel.active) throw new SmeshError('SMESH_ERR_CONFIG', `BENCH_CPU_MODEL=requests: ${cpuModel.description}`);
    }
    // Servers: the bench's one-thread epoll HTTP server on 8080 and 8081 in both server pods; iperf3 in the noisy one.
    const buildDir = topo.makeTempDir('build');
    const httpd = path.join(buildDir, 'httpd');
    execFileSync('gcc', ['-O2', '-pthread', '-o', httpd, path.join(REPO_ROOT, 'bench/httpd.c')], { stdio: 'pipe' });
    const serverWaits: Array<Promise<void>> = [];
    for (const pod of ['quiet-server', 'noisy-server']) {
      const ip = topo.pod(pod).ip;
      for (const port of [PORT.httpTarget, PORT.tcpWeb]) serverWaits.push(waitListening(topo, pod, port, topo.spawnInPod(pod, httpd, [ip, String(port), '1'])));
    }
    let iperfServer: CapturedProcess | undefined;
    const startIperf = async () => {
      if (iperfServer && !iperfServer.exitInfo()) {
        iperfServer.kill('SIGKILL');
        await iperfServer.exited;
      }
      iperfServer = topo.spawnInPod('noisy-server', 'iperf3', ['-s', '-B', topo.pod('noisy-server').ip, '-p', String(PORT.iperf)]);
      await waitListening(topo, 'noisy-server', PORT.iperf, iperfServer);
    };
    serverWaits.push(startIperf());
    await Promise.all(serverWaits);

    const ports = [
      { name: 'http', port: PORT.http, targetPort: PORT.httpTarget },
      { name: 'tcp-web', port: PORT.tcpWeb, targetPort: PORT.tcpWeb },
      { name: 'iperf', port: PORT.iperf, targetPort: PORT.iperf },
    ];
    const services: ServiceSpec[] = [
      { name: 'quiet', vip: VIP.quiet, ports, selector: { app: 'quiet-server' } },
      { name: 'noisy', vip: VIP.noisy, ports, selector: { app: 'noisy-server' } },
    ];

    // The limits' resources: checked with `smesh check` first; bytesPerSecond only in a spelling the agent accepts.
    const shapings: unknown[] = LIMITS ? [CONN_SHAPING, REQ_SHAPING] : [];
    let bytesSkip: string | null = null;
    let bytesSpelling: Record<string, unknown> | undefined;
    if (LIMITS) {
      const probe = topo.makeTempDir('check');
      topo.writeConfig(probe, { services, extraDocs: shapings });
      const base = checkConfig(probe);
      if (base) throw new SmeshError('SMESH_ERR_CONFIG', `smesh check refuses the bench's own config: ${tail(base, 10)}`);
      let firstRefusal = '';
      for (const c of BYTES_CANDIDATES) {
        topo.writeConfig(probe, { services, extraDocs: [...shapings, bytesShaping(c)] });
        const r = checkConfig(probe);
        if (r === null) {
          bytesSpelling = c;
          break;
        }
        firstRefusal ||=
          r
            .split('\n')
            .find((l) => /bytesPerSecond/.test(l))
            ?.trim() ?? tail(r, 1).trim();
      }
      if (bytesSpelling) shapings.push(bytesShaping(bytesSpelling));
      else bytesSkip = `TrafficShaping bytesPerSecond refused by the agent's validation (${firstRefusal.slice(0, 200)})`;
      say(`  bytesPerSecond: ${bytesSpelling ? `accepted as ${JSON.stringify(bytesSpelling)}` : bytesSkip}`);
    }
    const cfgDir = topo.makeTempDir('config');
    topo.writeConfig(cfgDir, { services, extraDocs: shapings });
    const lua = path.join(buildDir, 'think-time.lua');
    fs.writeFileSync(lua, `-- wrk: wait ${QUIET_DELAY_MS} ms before each request on a connection (the quiet pod's think time)\nfunction delay()\n  return ${QUIET_DELAY_MS}\nend\n`);
    const quietArgs = (durS: number, url = QUIET_URL) => ['-t1', `-c${QUIET_CONNS}`, `-d${durS}s`, '--timeout', '5s', '--latency', ...(QUIET_DELAY_MS > 0 ? ['-s', lua] : []), url];

    let running: AgentMode | undefined;
    const startAgents = async (mode: AgentMode) => {
      for (const a of agents) await a.stop(10_000).catch(() => undefined);
      agents = [];
      running = undefined;
      // --no-plaintext-capture: the control rows' plaintext from outside the mesh reaches the server pod unchecked (as in bench/run.ts).
      const args = [...(mode === 'default' ? [] : ['--fair-share', mode]), ...(PARTS.includes('direct') ? ['--no-plaintext-capture'] : []), ...EXTRA_AGENT_ARGS];
      // Sequential: the first agent creates the standalone CA, the second reuses it.
      for (const n of ['node1', 'node2']) {
        const a = topo.startAgent(n, cfgDir, args);
        agents.push(a);
        allAgents.push(a);
        try {
          await a.waitReady(60_000);
        } catch (e) {
          throw new SmeshError('SMESH_ERR_CONFIG', `agent on ${n} (${args.join(' ') || 'default flags'}) did not get ready: ${(e as Error).message}`);
        }
      }
      const sanity: Array<[string, string]> = [['quiet', QUIET_URL], ['noisy', NOISY_URL], ...(PARTS.includes('direct') ? [['quiet-direct', directUrl(topo)] as [string, string]] : [])];
      for (const [pod, url] of sanity) {
        const r = await topo.execInPod(pod, 'curl', ['-sS', '-m', '5', url], { timeoutMs: 10_000 });
        if (r.stdout.trim() !== 'hello') throw new SmeshError('SMESH_ERR_CONNECT', `GET ${url} from ${pod} failed: ${r.stdout}${r.stderr}\n${tail(agents[0]!.logs(), 20)}`);
      }
      // Warm-up: pooled HBONE sessions, V8 and the engine's workers, before anything is recorded.
      await waitExit(topo.spawnInPod('quiet', 'wrk', quietArgs(2)), 30_000);
      await waitExit(topo.spawnInPod('noisy', 'wrk', ['-t1', '-c8', '-d1s', '-H', 'Connection: close', NOISY_URL]), 30_000);
      running = mode;
    };

    try {
      await startAgents(modes[0]!);
    } catch (e) {
      // Taken by the parser but refused when the agent starts (e.g. an engine without it): report it, go on without.
      const refusal =
        modes[0] !== 'default'
          ? String((e as Error).message)
              .split('\n')
              .find((l) => /fair.share/i.test(l) && !/did not get ready/.test(l))
          : undefined;
      if (!refusal) throw e;
      fairShareNote = `the agent exits with --fair-share ${modes[0]}: ${refusal.trim().slice(0, 200)}`;
      modes = ['default'];
      say(`  fair share: not available (${fairShareNote}): only the with/without-noisy rows`);
      await startAgents('default');
    }
    say(
      `  agents ready (${MODE_LABEL[modes[0]!]}); quiet pod: wrk ${QUIET_CONNS} keep-alive connections, ${QUIET_DELAY_MS} ms think time → ${QUIET_URL}; noisy pod: ${NOISY_KINDS.includes('conns') ? `wrk ${NOISY_CONNS} × Connection: close` : ''}${NOISY_KINDS.length === 2 ? ' + ' : ''}${NOISY_KINDS.includes('bulk') ? `iperf3 -P ${NOISY_STREAMS}` : ''} → ${VIP.noisy}`,
    );

    // Other work on the machine distorts every number: wait (bounded) for a quiet moment, then say how quiet it was.
    let quietBefore = 0;
    for (let i = 0; i < 30; i++) {
      const w = cpuWindow({}, topo.runCgroup);
      await sleep(1000);
      quietBefore = w.end().other;
      if (quietBefore <= FOREIGN_CPU_LIMIT) break;
      if (i === 0) say(`  machine busy outside the bench (${quietBefore.toFixed(0)}% of a core): waiting up to 30 s for it to calm down`);
    }
    say(`  CPU used outside the bench before measuring: ${quietBefore.toFixed(0)}% of a core${quietBefore > FOREIGN_CPU_LIMIT ? ' — NOT QUIET: numbers will be contaminated' : ''}`);
    say('');

    const groups = {
      'node1 agent': topo.node('node1').agentCgroup,
      'node2 agent': topo.node('node2').agentCgroup,
      'quiet pod': topo.pod('quiet').cgroup,
      'noisy pod': topo.pod('noisy').cgroup,
      'quiet server': topo.pod('quiet-server').cgroup,
      'noisy server': topo.pod('noisy-server').cgroup,
    };
    const samples: QuietSample[] = [];

    const measure = async (round: number, mode: AgentMode, condition: Condition, direct = false): Promise<QuietSample> => {
      const w = cpuWindow(groups, topo.runCgroup);
      const t0 = Date.now();
      type Run = Awaited<ReturnType<typeof waitExit>>;
      let noisyRuns: [Promise<Run> | undefined, Promise<Run> | undefined] | undefined;
      if (condition === 'noisy') {
        const noisyS = DUR_S + Math.ceil(NOISY_LEAD_MS / 1000) + 1;
        noisyRuns = [
          NOISY_KINDS.includes('conns')
            ? waitExit(topo.spawnInPod('noisy', 'wrk', ['-t2', `-c${NOISY_CONNS}`, `-d${noisyS}s`, '--timeout', '5s', '-H', 'Connection: close', NOISY_URL]), (noisyS + 20) * 1000)
            : undefined,
          NOISY_KINDS.includes('bulk')
            ? waitExit(
                topo.spawnInPod('noisy', 'iperf3', ['-c', VIP.noisy, '-p', String(PORT.iperf), '-t', String(noisyS), '-P', String(NOISY_STREAMS), '-J', '--connect-timeout', '3000']),
                (noisyS + 20) * 1000,
              )
            : undefined,
        ];
        await sleep(NOISY_LEAD_MS);
      }
      release = IDLE_POLL ? holdZeroCpuLatency() : null;
      let quietRun: Awaited<ReturnType<typeof waitExit>>;
      try {
        quietRun = await waitExit(direct ? topo.spawnInPod('quiet-direct', 'wrk', quietArgs(DUR_S, directUrl(topo))) : topo.spawnInPod('quiet', 'wrk', quietArgs(DUR_S)), (DUR_S + 20) * 1000);
      } finally {
        release?.();
        release = null;
      }
      const quiet = quietRun.timedOut ? { errors: 0, error: `wrk timed out after ${DUR_S + 20} s` } : parseWrkLatency(quietRun.stdout);
      if (!quiet.error && quietRun.code !== 0) quiet.error = `wrk exited ${quietRun.code}: ${tail(quietRun.stderr, 3)}`;
      let noisy: NoisyMeasured | undefined;
      if (noisyRuns) {
        const [conns, bulk] = await Promise.all(noisyRuns);
        const c = conns ? parseWrk(conns.stdout) : undefined;
        const b = bulk ? parseIperf(bulk.stdout) : undefined;
        const errs = [c?.error, b?.error].filter(Boolean);
        noisy = { connPerS: c?.value, connErrors: c?.errors, bulkGbit: b?.value, ...(errs.length ? { error: errs.join('; ') } : {}) };
        if (b?.error) await startIperf();
      }
      const cpu = w.end();
      const s: QuietSample = { round, mode: direct ? 'direct' : mode, agents: mode, condition, quiet, ...(noisy ? { noisy } : {}), cpu, wallS: (Date.now() - t0) / 1000 };
      const shown = quiet.error
        ? `FAILED: ${quiet.error.split('\n')[0]}`
        : `p50 ${quiet.p50Us!.toFixed(0)} µs  p99 ${quiet.p99Us!.toFixed(0)} µs  ${Math.round(quiet.value!)} req/s${quiet.errors ? ` (${quiet.errorDetail})` : ''}`;
      const noisyText = noisy
        ? `  noisy ${noisy.connPerS === undefined ? '—' : Math.round(noisy.connPerS)} conn/s ${noisy.bulkGbit?.toFixed(2) ?? '—'} Gbit/s${noisy.error ? ` (${noisy.error.split('\n')[0]})` : ''}`
        : '';
      const flag = cpu.other > FOREIGN_CPU_LIMIT ? `  ! ${cpu.other.toFixed(0)}% CPU used outside the bench` : '';
      say(
        `  r${round} ${(direct ? `direct (${mode})` : MODE_LABEL[mode]).padEnd(16)} ${condition.padEnd(5)} ${shown.padEnd(44)} agents ${cpu.groups['node1 agent']!.toFixed(0)}%/${cpu.groups['node2 agent']!.toFixed(0)}% machine ${cpu.machine.toFixed(0)}%${noisyText}${flag}`,
      );
      return s;
    };

    for (let round = 1; QUIET_ROUNDS && round <= ROUNDS; round++) {
      // Only the control rows: one agent setting is enough (they are measured with the round's first agents).
      const modeOrder = PARTS.includes('quiet') ? rotate(modes, round - 1) : [rotate(modes, round - 1)[0]!];
      for (const [i, mode] of modeOrder.entries()) {
        if (running !== mode) await startAgents(mode);
        // The control rows once per round, with the round's first agents, before or after its mesh rows (rotated).
        const paths = [...(PARTS.includes('quiet') ? [false] : []), ...(PARTS.includes('direct') && i === 0 ? [true] : [])];
        for (const direct of rotate(paths, round - 1)) {
          for (const condition of rotate<Condition>(['alone', 'noisy'], (round - 1 + i) % 2)) {
            samples.push(await measure(round, mode, condition, direct));
            await sleep(GAP_MS);
          }
        }
      }
    }

    // Limits, with the agents of the last round.
    const limits: LimitResult[] = [];
    if (LIMITS) {
      const node1 = agents[0]!;
      const limited = (pod: string, reason: string) => agentMetric(node1, 'smesh_rate_limited_total', { direction: 'outbound', source_workload: pod, reason });
      say('');
      say(`  limits (agents: ${MODE_LABEL[running!]}), ${LIMIT_S} s each:`);
      {
        const rate = (LIMIT.conn.tokensPerFill * 1000) / LIMIT.conn.fillMs;
        const before = await limited('limit-conn', 'connection_rate');
        const w = cpuWindow(groups, topo.runCgroup);
        const r = await waitExit(topo.spawnInPod('limit-conn', 'wrk', ['-t1', '-c8', `-d${LIMIT_S}s`, '--timeout', '5s', '-H', 'Connection: close', NOISY_URL]), (LIMIT_S + 20) * 1000);
        const cpu = w.end();
        const m = parseWrk(r.stdout);
        const n = wrkCount(r.stdout);
        const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(r.stdout)?.[1] ?? 0);
        const secs = n?.seconds ?? LIMIT_S;
        const refused = (await limited('limit-conn', 'connection_rate')) - before;
        limits.push({
          name: 'connectionRate (new connections/s, Reject)',
          configured: `${LIMIT.conn.tokensPerFill} per ${LIMIT.conn.fillMs}ms, burst ${LIMIT.conn.maxTokens} (${rate}/s)`,
          unit: 'conn/s',
          rate,
          expected: (LIMIT.conn.maxTokens + rate * secs) / secs,
          achieved: n ? (n.requests - non2xx) / secs : undefined,
          refused: `${refused} connections reset by the limit (wrk: ${m.errorDetail ?? 'no errors'})`,
          refusedCount: refused,
          ...(m.error ? { error: m.error.split('\n')[0] } : {}),
          cpu,
          durS: secs,
        });
      }
      {
        const rate = (LIMIT.req.tokensPerFill * 1000) / LIMIT.req.fillMs;
        const before = await limited('limit-req', 'request_rate');
        const w = cpuWindow(groups, topo.runCgroup);
        const r = await waitExit(topo.spawnInPod('limit-req', 'wrk', ['-t1', '-c8', `-d${LIMIT_S}s`, '--timeout', '5s', `http://${VIP.noisy}:${PORT.http}/`]), (LIMIT_S + 20) * 1000);
        const cpu = w.end();
        const m = parseWrk(r.stdout);
        const n = wrkCount(r.stdout);
        const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(r.stdout)?.[1] ?? 0);
        const secs = n?.seconds ?? LIMIT_S;
        const refused = (await limited('limit-req', 'request_rate')) - before;
        limits.push({
          name: 'requestRate (HTTP requests/s, port `http`)',
          configured: `${LIMIT.req.tokensPerFill} per ${LIMIT.req.fillMs}ms, burst ${LIMIT.req.maxTokens} (${rate}/s)`,
          unit: 'req/s',
          rate,
          expected: (LIMIT.req.maxTokens + rate * secs) / secs,
          achieved: n ? (n.requests - non2xx) / secs : undefined,
          refused: `${refused} requests answered 429 (wrk non-2xx: ${non2xx})`,
          refusedCount: refused,
          ...(m.error ? { error: m.error.split('\n')[0] } : {}),
          cpu,
          durS: secs,
        });
      }
      {
        const rateMbit = LIMIT.bytesBps / 1e6;
        if (bytesSkip) {
          limits.push({ name: 'bytesPerSecond (upload)', configured: `${rateMbit} Mbit/s`, unit: 'Mbit/s', rate: rateMbit, expected: rateMbit, skipped: bytesSkip, durS: 0 });
        } else {
          const w = cpuWindow(groups, topo.runCgroup);
          const r = await waitExit(
            topo.spawnInPod('limit-bytes', 'iperf3', ['-c', VIP.noisy, '-p', String(PORT.iperf), '-t', String(LIMIT_S), '-P', '2', '-J', '--connect-timeout', '3000']),
            (LIMIT_S + 20) * 1000,
          );
          const cpu = w.end();
          const m = parseIperf(r.stdout);
          if (m.error) await startIperf();
          // The sender's per-second intervals show the shape (a slow ramp, stalls, or a steady rate off the limit).
          let perSecond: number[] = [];
          try {
            perSecond = ((JSON.parse(r.stdout) as { intervals?: Array<{ sum?: { bits_per_second?: number } }> }).intervals ?? []).map((i) => (i.sum?.bits_per_second ?? 0) / 1e6);
          } catch {
            /* no JSON: m.error says why */
          }
          limits.push({
            name: 'bytesPerSecond (upload, iperf3 -P 2, at the receiver)',
            configured: `${JSON.stringify(bytesSpelling)} = ${rateMbit} Mbit/s`,
            unit: 'Mbit/s',
            rate: rateMbit,
            expected: rateMbit,
            achieved: m.value === undefined ? undefined : m.value * 1000,
            ...(m.error ? { error: m.error.split('\n')[0] } : {}),
            cpu,
            durS: LIMIT_S,
            refused: perSecond.length ? `sent per second (Mbit/s): ${perSecond.map((x) => x.toFixed(0)).join(' ')}` : undefined,
          });
        }
      }
      for (const l of limits) {
        const flag = l.cpu && l.cpu.other > FOREIGN_CPU_LIMIT ? `  ! ${l.cpu.other.toFixed(0)}% CPU used outside the bench` : '';
        say(`    ${l.name}: ${l.skipped ? `skipped (${l.skipped})` : `${l.achieved?.toFixed(1) ?? 'failed'} ${l.unit}, expected ${l.expected.toFixed(1)}${l.error ? ` (${l.error})` : ''}`}${flag}`);
      }
    }

    // ------------------------------------------------------------------- report
    const warnings = allAgents.flatMap((a) => agentWarnings(a).map((w) => `${a.node.name}: ${w}`));
    const exited = agents.filter((a) => a.proc.exitInfo()).map((a) => a.node.name);
    const contaminated = samples.filter((s) => s.cpu.other > FOREIGN_CPU_LIMIT);
    const limitsContaminated = limits.filter((l) => l.cpu && l.cpu.other > FOREIGN_CPU_LIMIT);
    const failed = samples.filter((s) => s.quiet.error);
    const elapsed = Math.round((Date.now() - started) / 1000);
    const now = new Date();
    const rowGroups: RowGroup[] = [...(PARTS.includes('quiet') ? modes : []), ...(PARTS.includes('direct') ? ['direct' as const] : [])];
    const quietRun = contaminated.length === 0 && limitsContaminated.length === 0 && quietBefore <= FOREIGN_CPU_LIMIT;
    const md = [
      `# noisy-neighbour bench ${now.toISOString()}`,
      '',
      `Command: \`${rerunCommand()}\`; ${elapsed} s in all. Commit ${commit}; agent ${path.relative(REPO_ROOT, AGENT_CLI)}. ${os.cpus().length} cores (${os.cpus()[0]?.model ?? '?'}), kernel ${os.release()}, node ${process.version}.`,
      `Quiet pod: wrk -t1 -c${QUIET_CONNS} keep-alive, ${QUIET_DELAY_MS} ms think time before each request, ${DUR_S} s → ${QUIET_URL} (Service \`quiet\`, pod on node2). Noisy pod (same node): ${[NOISY_KINDS.includes('conns') ? `wrk -t2 -c${NOISY_CONNS} with Connection: close` : '', NOISY_KINDS.includes('bulk') ? `iperf3 -P ${NOISY_STREAMS}` : ''].filter(Boolean).join(' + ')} → ${VIP.noisy} (Service \`noisy\`, another pod on node2), from ${NOISY_LEAD_MS} ms before until after the quiet pod's measurement. ${IDLE_POLL ? '0 µs /dev/cpu_dma_latency held while the quiet pod is measured.' : 'Idle vCPUs may halt (BENCH_IDLE_POLL=0).'}`,
      `CPU model: ${CPU_MODEL === 'requests' ? (cpuModel?.description ?? 'requests') : 'none (every process of the bench in one flat CPU group, as before 2026-12-08)'}.`,
      `Fair share: ${fairShareNote === null ? 'agents started with `--fair-share on` and `--fair-share off`, order rotated per round' : `**not available** (${fairShareNote}); agents with their default flags`}.`,
      '',
      ...(QUIET_ROUNDS
        ? [
            `## Quiet pod: median [min–max] over ${ROUNDS} rounds; ratios = median with the noisy pod / median alone, same agents`,
            '',
            quietTable(samples, rowGroups),
            '',
            ...(PARTS.includes('direct')
              ? [`(d), (e): control — the quiet pod's same load from \`quiet-direct\` (node1, not in the mesh) straight to the quiet server pod, ${directUrl(topo)}, the noisy pod unchanged.`, '']
              : []),
            'Goals (issue 14 item 5):',
            '',
            ...goalLines(samples, rowGroups, fairShareNote),
          ]
        : []),
      ...(rowGroups.includes('on') && rowGroups.includes('off')
        ? [
            `- cost of fair share with the quiet pod alone: p99 ${(() => {
              const a = cell(samples, 'on', 'alone').p99.median;
              const b = cell(samples, 'off', 'alone').p99.median;
              return a && b ? (a / b).toFixed(2) : '—';
            })()}× / req/s ${(() => {
              const a = cell(samples, 'on', 'alone').rps.median;
              const b = cell(samples, 'off', 'alone').rps.median;
              return a && b ? (a / b).toFixed(2) : '—';
            })()}× (on / off)`,
          ]
        : []),
      '',
      ...(LIMITS ? [`## Limits (TrafficShaping, outbound from a pod on node1 to Service \`noisy\`; ${LIMIT_S} s each; agents: ${MODE_LABEL[running ?? modes[0]!]})`, '', limitTable(limits), ''] : []),
      ...(QUIET_ROUNDS ? ['## CPU during each quiet-pod measurement (median, % of one core)', '', cpuTable(samples, rowGroups, Object.keys(groups)), ''] : []),
      '## Checks',
      '',
      `- CPU used outside the bench before measuring: ${quietBefore.toFixed(0)}% of a core`,
      `- measurements during which more than ${FOREIGN_CPU_LIMIT}% of a core was used outside the bench: ${contaminated.length} of ${samples.length} quiet-pod measurements${
        contaminated.length
          ? ` (${contaminated
              .slice(0, 8)
              .map((s) => `r${s.round} ${s.mode} ${s.condition} ${s.cpu.other.toFixed(0)}%`)
              .join(', ')}${contaminated.length > 8 ? ', …' : ''})`
          : ''
      }, ${limitsContaminated.length} of ${limits.filter((l) => !l.skipped).length} limit measurements`,
      `- failed quiet-pod measurements: ${failed.length} of ${samples.length}${
        failed.length
          ? ` (${failed
              .slice(0, 3)
              .map((s) => `r${s.round} ${s.mode} ${s.condition}: ${s.quiet.error!.split('\n')[0]}`)
              .join('; ')})`
          : ''
      }; quiet-pod socket errors or non-2xx: ${samples.reduce((a, s) => a + (s.quiet.errors ?? 0), 0)}`,
      `- agent warnings/errors logged: ${warnings.length}${warnings.length ? ` (first: ${warnings.slice(0, 3).join('; ')})` : ''}`,
      `- agents still running at the end: ${exited.length ? `NO, exited: ${exited.join(', ')}` : 'yes'}`,
      `- CPU steal (hypervisor), median: ${((): string => {
        const xs = samples.map((s) => s.cpu.steal).sort((a, b) => a - b);
        return (xs[xs.length >> 1] ?? 0).toFixed(0);
      })()}% of a core`,
      '',
      quietRun ? 'Machine quiet during every measurement.' : `**The machine was not quiet (see Checks): not a result — rerun on a quiet machine: \`${rerunCommand()}\`**`,
    ].join('\n');
    say('');
    say(md);
    fs.mkdirSync(OUT_DIR, { recursive: true });
    const stamp = now.toISOString().slice(0, 19).replace(/[:T]/g, '-');
    const file = path.join(OUT_DIR, `noisy-neighbour-${stamp}.md`);
    fs.writeFileSync(file, md + '\n');
    fs.writeFileSync(
      file.replace(/\.md$/, '.json'),
      JSON.stringify(
        {
          date: now.toISOString(),
          commit,
          command: rerunCommand(),
          fairShare: fairShareNote === null ? 'on/off' : `not available: ${fairShareNote}`,
          settings: {
            durS: DUR_S,
            rounds: ROUNDS,
            quietConns: QUIET_CONNS,
            quietDelayMs: QUIET_DELAY_MS,
            quietUrl: QUIET_URL,
            noisyConns: NOISY_CONNS,
            noisyStreams: NOISY_STREAMS,
            noisy: NOISY_KINDS,
            parts: PARTS,
            limitS: LIMIT_S,
            idlePoll: IDLE_POLL,
            agentArgs: EXTRA_AGENT_ARGS,
            bytesSpelling,
          },
          ratios: rowGroups.map((m) => ratios(samples, m)),
          quietBeforePct: quietBefore,
          contaminated: contaminated.length,
          quiet: quietRun,
          samples,
          limits,
          warnings,
          exited,
          elapsedS: elapsed,
        },
        null,
        1,
      ) + '\n',
    );
    say('');
    say(`recorded: ${path.relative(process.cwd(), file)} and .json`);
    say(`rerun: ${rerunCommand()}`);
  } finally {
    (release as (() => void) | null)?.();
    cpuModel?.stop();
    for (const a of agents) await a.stop(10_000).catch(() => undefined);
    await topo.cleanup();
  }
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    process.stderr.write(`noisy-neighbour bench failed: ${(e as Error).stack ?? String(e)}\n`);
    process.exit(1);
  },
);
