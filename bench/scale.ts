// Scale bench: one agent receives 10,000 services and 50,000 endpoints from `smesh control` and applies them to its state and BPF maps — time, RSS, and an incremental change at that size.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { createTopology, privilegeProblem, AGENT_CLI, AGENT_PORTS, NODE_BIN, type Topology, type NodeInfo } from '../test/helpers/topology';
import { sleep, tail, waitExit, lastJsonLine, type CapturedProcess } from '../test/helpers/proc';

// Sizes (environment overrides for quick runs: SCALE_SERVICES=1000 SCALE_PODS=5000).
const SERVICES = Number(process.env.SCALE_SERVICES ?? 10_000);
const PODS = Number(process.env.SCALE_PODS ?? 50_000);
const NODES = Number(process.env.SCALE_NODES ?? 50);
const NAMESPACES = 10;
const FILES = 20;
/** SCALE_CPU_PROF=DIR: run the agent with --cpu-prof into DIR (inspect with Chrome DevTools / speedscope). */
const CPU_PROF = process.env.SCALE_CPU_PROF;
/** SCALE_AGENT_NODE_FLAGS="--trace-gc …": extra node flags for the agent; SCALE_AGENT_STDOUT=FILE keeps its whole stdout (GC traces included). */
const AGENT_NODE_FLAGS = (process.env.SCALE_AGENT_NODE_FLAGS ?? '').split(' ').filter(Boolean);
const AGENT_STDOUT = process.env.SCALE_AGENT_STDOUT;
/**
 * The agent runs as deployed: `node bin/smesh agent …` (the launcher sets the agent's V8 flags) of the build that
 * SMESH_E2E_AGENT_CLI points at (default this checkout). SCALE_NO_LAUNCHER=1 runs dist/cli/main.js directly
 * (no launcher flags). SCALE_CONTROL_CLI pins the control plane's build, so two agent builds can be compared
 * against the same control plane.
 */
const AGENT_LAUNCHER = path.resolve(path.dirname(AGENT_CLI), '..', '..', 'bin', 'smesh');
const USE_LAUNCHER = process.env.SCALE_NO_LAUNCHER !== '1';
const CONTROL_CLI = process.env.SCALE_CONTROL_CLI || AGENT_CLI;
/** The goals: under 2 s, under 150 MB (10^6 bytes: 143.05 MiB). */
const GOAL = { applyMs: 2000, rssMB: 150 } as const;
const MB_PER_MIB = 1048576 / 1e6;
const ECHO_PORT = 9000;

function say(text = ''): void {
  process.stdout.write(text + '\n');
}

/** Fake pod i: 198.18.40.2 … 198.18.239.251 (inside the test range, never on a route: only map entries). */
const podIp = (i: number) => `198.18.${40 + Math.floor(i / 250)}.${(i % 250) + 2}`;
/** Service j: 198.19.0.2 … (ClusterIP range). */
const vipOf = (j: number) => `198.19.${Math.floor(j / 250)}.${(j % 250) + 2}`;

function writeMesh(dir: string, node1: NodeInfo, realPod: { name: string; ip: string; netns: string }): { docs: number } {
  if (PODS > 200 * 250 || SERVICES > 250 * 250) throw new Error('address plan holds at most 50,000 pods and 62,500 services');
  const head: string[] = [
    'apiVersion: smesh.io/v1alpha1\nkind: MeshConfig\nmetadata: {name: mesh}\nspec: {trustDomain: cluster.local}',
    `apiVersion: v1\nkind: Node\nmetadata: {name: ${node1.name}}\nstatus: {addresses: [{type: InternalIP, address: ${node1.ip}}]}`,
  ];
  // The other nodes exist only in the config (their agents are never dialled: no traffic goes to their pods).
  for (let n = 2; n <= NODES; n++) head.push(`apiVersion: v1\nkind: Node\nmetadata: {name: fake${n}}\nstatus: {addresses: [{type: InternalIP, address: 198.18.0.${n}}]}`);
  head.push('apiVersion: v1\nkind: Namespace\nmetadata: {name: default}');
  for (let k = 0; k < NAMESPACES; k++) head.push(`apiVersion: v1\nkind: Namespace\nmetadata: {name: ns-${k}}`);
  head.push(
    `apiVersion: v1\nkind: Pod\nmetadata: {name: ${realPod.name}, namespace: default, labels: {app: local}, annotations: {smesh.io/netns: ${realPod.netns}}}\n` +
      `spec: {nodeName: ${node1.name}, serviceAccountName: local-sa}\nstatus: {podIP: ${realPod.ip}}`,
  );
  fs.writeFileSync(path.join(dir, '00-head.yaml'), head.join('\n---\n') + '\n');
  // Service j selects pods 5j … 5j+4 (app: s<j>); pods spread round-robin over the fake nodes; one port per service.
  const perService = Math.max(1, Math.floor(PODS / SERVICES));
  const chunks: string[][] = Array.from({ length: FILES }, () => []);
  for (let j = 0; j < SERVICES; j++) {
    const ns = `ns-${j % NAMESPACES}`;
    chunks[j % FILES]!.push(
      `apiVersion: v1\nkind: Service\nmetadata: {name: s${j}, namespace: ${ns}}\n` +
        `spec: {clusterIP: ${vipOf(j)}, selector: {app: s${j}}, ports: [{name: tcp, port: 80, targetPort: 8080, protocol: TCP}]}`,
    );
  }
  for (let i = 0; i < PODS; i++) {
    const j = Math.min(SERVICES - 1, Math.floor(i / perService));
    const ns = `ns-${j % NAMESPACES}`;
    chunks[i % FILES]!.push(
      `apiVersion: v1\nkind: Pod\nmetadata: {name: p${i}, namespace: ${ns}, labels: {app: s${j}}}\n` +
        `spec: {nodeName: fake${2 + (i % Math.max(1, NODES - 1))}, serviceAccountName: sa-${j % 100}}\nstatus: {podIP: ${podIp(i)}}`,
    );
  }
  chunks.forEach((c, k) => fs.writeFileSync(path.join(dir, `${String(k + 1).padStart(2, '0')}-bulk.yaml`), c.join('\n---\n') + '\n'));
  return { docs: head.length + SERVICES + PODS };
}

/** utime + stime of a process in ms (clock ticks are 10 ms here; /proc/<pid>/stat fields 14 and 15). */
function cpuMs(pid: number): number | null {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) * 10;
  } catch {
    return null;
  }
}

function memMiB(pid: number): { rss: number; hwm: number } | null {
  try {
    const s = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const rss = /VmRSS:\s+(\d+)/.exec(s);
    const hwm = /VmHWM:\s+(\d+)/.exec(s);
    return rss && hwm ? { rss: Number(rss[1]) / 1024, hwm: Number(hwm[1]) / 1024 } : null;
  } catch {
    return null;
  }
}

/** The node process behind a spawnOnNode wrapper (sh → nsenter → node, exec'd in place; checked via comm). */
function nodePid(proc: CapturedProcess, cgroup: string): number {
  const candidates = [proc.pid!, ...fs.readFileSync(path.join(cgroup, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean).map(Number)];
  for (const pid of candidates) {
    try {
      if (fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'node') return pid;
    } catch {
      /* gone */
    }
  }
  return proc.pid!;
}

function records(proc: CapturedProcess): Array<Record<string, any>> {
  const out: Array<Record<string, any>> = [];
  for (const line of proc.stdoutText().split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      out.push(JSON.parse(line));
    } catch {
      /* partial */
    }
  }
  return out;
}

const at = (r: Record<string, any> | undefined) => (r ? Date.parse(r.time) : NaN);

async function main(): Promise<void> {
  const problem = privilegeProblem();
  if (problem) throw new Error(`bench/scale.ts ${problem}`);
  if (!fs.existsSync(AGENT_CLI)) throw new Error(`${AGENT_CLI} missing: run \`make build\` (or npx tsc -p tsconfig.json) first`);
  let topo: Topology | undefined;
  const procs: CapturedProcess[] = [];
  try {
    topo = await createTopology({ nodes: ['node1'], pods: [{ name: 'local', node: 'node1' }] });
    const node1 = topo.node('node1');
    const local = topo.pod('local');
    await topo.startApp(local, 'echo-server', ['--port', String(ECHO_PORT)]);
    const work = topo.makeTempDir('scale-work');
    const cfg = topo.makeTempDir('scale-config');
    const t0gen = Date.now();
    const { docs } = writeMesh(cfg, node1, { name: local.name, ip: local.ip, netns: local.netnsPath });
    const genMs = Date.now() - t0gen;
    const bytes = fs.readdirSync(cfg).reduce((a, f) => a + fs.statSync(path.join(cfg, f)).size, 0);
    say(`config: ${SERVICES} services, ${PODS} pods on ${NODES} nodes, ${docs} documents, ${(bytes / 1048576).toFixed(1)} MiB in ${FILES + 1} files (written in ${genMs} ms)`);

    const token = randomBytes(24).toString('hex');
    fs.writeFileSync(path.join(work, 'tokens.yaml'), `${token}: node1\n`, { mode: 0o600 });
    fs.writeFileSync(path.join(work, 'node1.token'), token + '\n', { mode: 0o600 });
    const caDir = path.join(work, 'ca');
    const controlAddr = `${node1.ip}:15012`;
    const cg = `${topo.runCgroup}/control`;
    fs.mkdirSync(cg, { recursive: true });
    const tc = Date.now();
    const control = topo.spawnIn(cg, node1.netnsPath, NODE_BIN, [
      CONTROL_CLI,
      'control',
      '--config',
      cfg,
      '--ca-dir',
      caDir,
      '--tokens',
      path.join(work, 'tokens.yaml'),
      '--listen',
      controlAddr,
      '--metrics-listen',
      `${node1.ip}:15014`,
    ]);
    procs.push(control);
    await control.waitForLine(/smesh control serving/, 180_000);
    const controlStartMs = Date.now() - tc;
    const controlPid = nodePid(control, cg);
    say(`smesh control: loaded and serving in ${controlStartMs} ms, RSS ${memMiB(controlPid)?.rss.toFixed(0)} MiB`);

    // The agent.
    const agentArgs = [
      ...(CPU_PROF ? [`--cpu-prof`, `--cpu-prof-dir=${path.resolve(CPU_PROF)}`] : []),
      ...AGENT_NODE_FLAGS,
      USE_LAUNCHER ? AGENT_LAUNCHER : AGENT_CLI,
      'agent',
      '--control-plane',
      controlAddr,
      '--token-file',
      path.join(work, 'node1.token'),
      '--ca-cert',
      path.join(caDir, 'root-cert.pem'),
      '--node',
      'node1',
      '--cgroup-root',
      node1.cgroupRoot,
      '--bpffs',
      node1.bpffsDir,
    ];
    const ta = Date.now();
    const agent = topo.spawnOnNode(node1, NODE_BIN, agentArgs);
    procs.push(agent);
    const agentPid = nodePid(agent, node1.agentCgroup);
    let peakRss = 0;
    // CPU time samples: the agent's own work between two log records, independent of how busy the machine is.
    const cpuSamples: Array<{ t: number; cpu: number }> = [];
    /** The control plane's CPU over the same instants: while it encodes and sends, the agent may be waiting for it. */
    const controlCpuSamples: Array<{ t: number; cpu: number }> = [];
    const sample = () => {
      const m = memMiB(agentPid);
      if (m) peakRss = Math.max(peakRss, m.rss);
      const now = Date.now();
      const c = cpuMs(agentPid);
      if (c !== null) cpuSamples.push({ t: now, cpu: c });
      const cc = cpuMs(controlPid);
      if (cc !== null) controlCpuSamples.push({ t: now, cpu: cc });
    };
    const sampler = setInterval(sample, 20);
    await agent.waitForLine(/"agent ready"/, 120_000);
    const readyMs = Date.now() - ta;
    const recs = records(agent);
    if (AGENT_STDOUT) fs.writeFileSync(AGENT_STDOUT, agent.stdoutText());
    const connected = recs.find((r) => r.msg === 'connected to control plane');
    const received = recs.find((r) => r.msg === 'mesh state received');
    const enrolled = recs.find((r) => r.msg === 'pods enrolled');
    const attached = recs.find((r) => /BPF programs attached|reused pinned BPF links/.test(String(r.msg)));
    const ready = recs.find((r) => r.msg === 'agent ready');
    // Settle, then RSS at rest (after GC had a chance) and the peak.
    await sleep(2000);
    const rest = memMiB(agentPid);
    // Where that memory is, as the agent sees it (admin /memory: V8 heap spaces, external buffers).
    const memRes = await topo.execInNode(node1, 'curl', ['-sSf', '-m', '10', `http://127.0.0.1:${AGENT_PORTS.admin}/memory`], { timeoutMs: 15_000 });
    const memAtRest =
      memRes.code === 0 ? (JSON.parse(memRes.stdout) as { heapUsed: number; heapTotal: number; external: number; heapSpaces: Record<string, { size: number; used: number }> }) : undefined;
    clearInterval(sampler);
    /** Agent CPU ms between two instants (samples interpolated; the log records carry ms timestamps). */
    const cpuAt = (t: number, samples = cpuSamples): number => {
      let prev = samples[0]!;
      for (const x of samples) {
        if (x.t >= t) return prev.t === x.t ? x.cpu : prev.cpu + ((x.cpu - prev.cpu) * (t - prev.t)) / (x.t - prev.t);
        prev = x;
      }
      return prev.cpu;
    };

    // Incremental change at that size: one more Service selecting the real local pod; time until a connection through it works.
    const prober = topo.spawnInPod(local, NODE_BIN, ['-e', PROBE_JS, JSON.stringify({ host: '198.19.250.2', port: ECHO_PORT, deadlineMs: 60_000 })]);
    procs.push(prober);
    await prober.waitForLine(/"initial"/, 10_000);
    const tw = Date.now();
    fs.writeFileSync(
      path.join(cfg, '99-incremental.yaml'),
      `apiVersion: v1\nkind: Service\nmetadata: {name: incremental, namespace: default}\nspec: {clusterIP: 198.19.250.2, selector: {app: local}, ports: [{name: echo, port: ${ECHO_PORT}, targetPort: ${ECHO_PORT}, protocol: TCP}]}\n`,
    );
    const pr = await waitExit(prober, 70_000);
    const probe = lastJsonLine<{ reached?: number; attempts: number }>(pr.stdout);
    const crecs = records(control);
    const reloaded = crecs.filter((r) => r.msg === 'configuration reloaded').at(-1);
    const pushed = crecs.filter((r) => r.msg === 'serving new configuration').at(-1);
    // RSS after the incremental push (and the peak of the whole run), before the admin query below allocates its JSON.
    await sleep(1000);
    const afterIncr = memMiB(agentPid);

    // What the agent holds: state and kernel map (config_dump reads the BPF map itself).
    // (to a file: the dump is larger than the harness captures from a child's stdout)
    const dumpFile = path.join(work, 'config_dump.json');
    const dumpRes = await topo.execInNode(node1, 'curl', ['-sS', '-m', '30', '-o', dumpFile, `http://127.0.0.1:${AGENT_PORTS.admin}/config_dump`], { timeoutMs: 40_000 });
    if (dumpRes.code !== 0) throw new Error(`config_dump: ${dumpRes.stderr}`);
    const dump = JSON.parse(fs.readFileSync(dumpFile, 'utf8'));
    const held = {
      services: dump.services.length as number,
      workloads: dump.workloads.length as number,
      bpfDestinations: dump.datapath.meshedDestinations.length as number,
      bpfPods: dump.datapath.enrolledPods.length as number,
    };
    // After the incremental push: one more service, one more VIP destination.
    const expectedServices = SERVICES + 1;
    const expectedDests = SERVICES + PODS + 1 + 1;

    const applyMs = at(enrolled) - at(connected);
    const r = {
      sizes: { services: SERVICES, pods: PODS, nodes: NODES, documents: docs, configMiB: +(bytes / 1048576).toFixed(1) },
      control: { loadAndServeMs: controlStartMs, rssMiB: +(memMiB(controlPid)?.rss ?? 0).toFixed(0) },
      agent: {
        spawnToConnectedMs: at(connected) - ta,
        connectedToStateMs: at(received) - at(connected),
        stateToBpfMs: at(enrolled) - at(received),
        stateToBpfLoadedMs: at(attached) - at(received),
        bpfLoadedToFilledMs: at(enrolled) - at(attached),
        connectedToBpfMs: applyMs,
        cpuConnectedToBpfMs: Math.round(cpuAt(at(enrolled)) - cpuAt(at(connected))),
        controlCpuConnectedToBpfMs: Math.round(cpuAt(at(enrolled), controlCpuSamples) - cpuAt(at(connected), controlCpuSamples)),
        /** Until the agent serves: certificates issued (concurrently with the BPF load and map fill), listeners up. */
        connectedToReadyMs: at(ready) - at(connected),
        cpuConnectedToReadyMs: Math.round(cpuAt(at(ready)) - cpuAt(at(connected))),
        spawnToReadyMs: readyMs,
        bpfReportedDestinations: enrolled?.destinations,
        launcher: USE_LAUNCHER,
        rssAtRestMiB: +(rest?.rss ?? 0).toFixed(0),
        heapAtRestMiB: memAtRest ? +(memAtRest.heapTotal / 1048576).toFixed(1) : null,
        newSpaceAtRestMiB: memAtRest ? +((memAtRest.heapSpaces.new_space?.size ?? 0) / 1048576).toFixed(1) : null,
        rssPeakMiB: +Math.max(peakRss, rest?.hwm ?? 0).toFixed(0),
        held,
      },
      incremental: {
        fileWriteToFirstConnectionMs: probe.reached ? probe.reached - tw : null,
        fileWriteToControlReloadedMs: at(reloaded) - tw,
        controlReloadToPushMs: at(pushed) - at(reloaded),
        agentRssAfterMiB: +(afterIncr?.rss ?? 0).toFixed(0),
        agentRssPeakWholeRunMiB: +(afterIncr?.hwm ?? 0).toFixed(0),
      },
    };
    say('');
    say(`agent: connected to control plane ${r.agent.spawnToConnectedMs} ms after spawn`);
    say(`agent: full state received and converted   ${r.agent.connectedToStateMs} ms after connect`);
    const loaded =
      r.agent.stateToBpfLoadedMs >= 0
        ? `programs loaded ${r.agent.stateToBpfLoadedMs} ms after the state, maps filled ${r.agent.bpfLoadedToFilledMs} ms after that`
        : `programs loaded ${-r.agent.stateToBpfLoadedMs} ms before the state arrived`;
    say(`agent: BPF maps filled                     ${r.agent.stateToBpfMs} ms later (${r.agent.bpfReportedDestinations} destinations; ${loaded})`);
    say(
      `agent: connect → state + BPF maps          ${applyMs} ms   (goal < ${GOAL.applyMs} ms: ${applyMs < GOAL.applyMs ? 'met' : 'MISSED'}); agent CPU in that span ${r.agent.cpuConnectedToBpfMs} ms, control plane CPU ${r.agent.controlCpuConnectedToBpfMs} ms`,
    );
    say(`agent: connect → ready (certificates, listeners) ${r.agent.connectedToReadyMs} ms; agent CPU ${r.agent.cpuConnectedToReadyMs} ms`);
    say(`agent: spawn → ready                       ${readyMs} ms`);
    const mb = (mib: number) => Math.round(mib * MB_PER_MIB);
    const worst = Math.max(r.agent.rssPeakMiB, r.incremental.agentRssPeakWholeRunMiB);
    say(
      `agent (${USE_LAUNCHER ? 'bin/smesh launcher' : 'no launcher flags'}): RSS at rest ${r.agent.rssAtRestMiB} MiB (${mb(r.agent.rssAtRestMiB)} MB), peak ${r.agent.rssPeakMiB} MiB; ` +
        `after the incremental push ${r.incremental.agentRssAfterMiB} MiB, whole-run peak ${r.incremental.agentRssPeakWholeRunMiB} MiB (${mb(r.incremental.agentRssPeakWholeRunMiB)} MB)   ` +
        `(goal < ${GOAL.rssMB} MB: ${mb(worst) < GOAL.rssMB ? 'met' : 'MISSED'})`,
    );
    if (memAtRest) {
      const mi = (b: number) => (b / 1048576).toFixed(1);
      const sp = memAtRest.heapSpaces;
      say(
        `agent memory at rest (admin /memory): V8 heap ${mi(memAtRest.heapTotal)} MiB committed, ${mi(memAtRest.heapUsed)} used ` +
          `(old ${mi(sp.old_space?.size ?? 0)}, new ${mi(sp.new_space?.size ?? 0)}, large objects ${mi(sp.large_object_space?.size ?? 0)}, code ${mi(sp.code_space?.size ?? 0)}), ` +
          `external ${mi(memAtRest.external)} MiB; the rest of the RSS is the node binary, native heap and stacks`,
      );
    }
    say(
      `agent holds (after the incremental push): ${held.services} services, ${held.workloads} workloads; BPF: ${held.bpfDestinations} destinations (expected ${expectedDests}), ${held.bpfPods} enrolled pods`,
    );
    say(
      `incremental (+1 service): file write → first connection ${r.incremental.fileWriteToFirstConnectionMs} ms ` +
        `(control re-read the directory in ${r.incremental.fileWriteToControlReloadedMs} ms, pushed ${r.incremental.controlReloadToPushMs} ms later)`,
    );
    say('');
    say(JSON.stringify(r));
    if (held.services !== expectedServices) say(`WARNING: agent holds ${held.services} services, expected ${expectedServices}`);
    if (held.bpfDestinations !== expectedDests) say(`WARNING: BPF map holds ${held.bpfDestinations} destinations, expected ${expectedDests}`);
    if (CPU_PROF) say(`CPU profile of the agent will be in ${path.resolve(CPU_PROF)} once it exits`);
    // Stop the agent gracefully so --cpu-prof is written.
    agent.kill('SIGTERM');
    await waitExit(agent, 15_000);
    control.kill('SIGTERM');
    await waitExit(control, 15_000);
  } catch (e) {
    for (const p of procs) say(`--- ${p.spawnargs.slice(-3).join(' ')} ---\n${tail(p.outputText(), 15)}`);
    throw e;
  } finally {
    await topo?.cleanup();
  }
}

/** Opens an echo connection every 10 ms (staggered) until one returns intact; prints {"initial"} then {"reached":epochMs}. */
const PROBE_JS = String.raw`
const net = require('net');
const a = JSON.parse(process.argv[1]);
const out = (o) => process.stdout.write(JSON.stringify(o) + '\n');
let n = 0, done = false;
function attempt() {
  return new Promise((resolve) => {
    const msg = 'scale-' + (n++);
    const s = net.connect({ host: a.host, port: a.port, allowHalfOpen: true });
    let got = '', fin = false;
    const end = (ok) => { if (fin) return; fin = true; clearTimeout(t); s.destroy(); resolve(ok); };
    const t = setTimeout(() => end(false), 1000);
    s.on('connect', () => s.end(msg));
    s.on('data', (d) => { got += d; });
    s.on('end', () => end(got === msg));
    s.on('error', () => end(false));
  });
}
(async () => {
  out({ initial: (await attempt()) ? 'up' : 'down' });
  const deadline = Date.now() + a.deadlineMs;
  while (!done && Date.now() < deadline) {
    attempt().then((ok) => { if (ok && !done) { done = true; out({ reached: Date.now(), attempts: n }); process.exit(0); } });
    await new Promise((r) => setTimeout(r, 10));
  }
  if (!done) { out({ timeout: true, attempts: n }); process.exit(0); }
})();
`;

main().catch((e) => {
  process.stderr.write(`bench/scale.ts failed: ${(e as Error).stack ?? e}\n`);
  process.exitCode = 1;
});
