// End to end: `smesh supervise` on node1 holds the agent's sockets: SIGKILL of the agent, SIGTERM (drain), SIGHUP (hand-over to a new agent) and a second supervisor started beside the first (a DaemonSet surge pod, SO_REUSEPORT) followed by SIGTERM of the first, under continuous new connections, refuse none; long-lived connections flow through the drain with matching sha256.
import { describe, it, expect, beforeAll, beforeEach, afterAll } from 'vitest';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createTopology, privilegeProblem, AGENT_CLI, APPS_DIR, NODE_BIN, type Topology, type AgentHandle, type NodeInfo } from '../helpers/topology';
import { waitExit, tail, jsonRecords, lastJsonLine, type CapturedProcess } from '../helpers/proc';
import { pollUntil } from '../helpers/logs';
import { stopAgentsKeepingLogs } from '../helpers/e2e-agents';

const problem = privilegeProblem();
const VIP = { remote: '198.19.0.10', local: '198.19.0.11' } as const;
const ECHO = 9000;

interface LoopCounts {
  started: number;
  ok: number;
  refused: number;
  reset: number;
  timeout: number;
  mismatch: number;
  other: number;
}
interface LoopResult {
  result: LoopCounts;
  errors: Array<{ i?: number; outcome?: string; detail?: string; atMs?: number }>;
  long?: { outcome: string; sentBytes: number; receivedBytes: number; sentSha256: string; receivedSha256: string };
}

describe.skipIf(problem !== null)(`supervisor e2e: restarts, drain and hand-over refuse nothing${problem ? ` (skipped: ${problem})` : ''}`, () => {
  let topo: Topology;
  let cfgDir: string;
  let node1: NodeInfo;
  let supervisor: CapturedProcess;
  /** Every supervisor started (the surge test starts a second one on node1). */
  const supervisors: CapturedProcess[] = [];
  /** Readiness files of the supervisors started with SMESH_READY_FILE (deploy/smesh-agent.yaml's exec probe). */
  const readyFiles: string[] = [];
  const agents: AgentHandle[] = [];
  const loops: CapturedProcess[] = [];
  /** Per event, what the loops saw: written to $SMESH_RESTART_RESULTS (JSON) for bench/README.md. */
  const measured: Record<string, unknown> = {};
  let setupError: Error | null = null;

  const records = () => jsonRecords(supervisor.stdoutText());
  const supervisorEvents = (msg: string) => records().filter((r) => r.component === 'supervisor' && r.msg === msg);
  const readyPids = () => supervisorEvents('agent ready').map((r) => r.agentPid as number);
  const exited = (pid: number) => supervisorEvents('agent exited').find((r) => r.agentPid === pid);
  const diag = () => `--- supervisor + node1 agents ---\n${tail(supervisor.outputText(), 40)}`;

  beforeEach(() => {
    if (setupError) throw setupError;
  });

  beforeAll(async () => {
    try {
      if (!fs.existsSync(AGENT_CLI)) throw new Error(`${AGENT_CLI} not found: build first with \`npx tsc -p tsconfig.json\``);
      topo = await createTopology({
        nodes: ['node1', 'node2'],
        pods: [
          { name: 'client', node: 'node1' },
          { name: 'local-server', node: 'node1' },
          { name: 'client2', node: 'node2' },
          { name: 'remote-server', node: 'node2' },
        ],
      });
      node1 = topo.node('node1');
      for (const pod of ['remote-server', 'local-server']) await topo.startApp(pod, 'echo-server', ['--port', String(ECHO)]);
      cfgDir = topo.makeTempDir('config');
      topo.writeConfig(cfgDir, {
        services: [
          { name: 'remote', vip: VIP.remote, port: ECHO, selector: { app: 'remote-server' } },
          { name: 'local', vip: VIP.local, port: ECHO, selector: { app: 'local-server' } },
        ],
      });
      // node1's agent runs under the supervisor (it creates the standalone CA); node2's runs plain.
      readyFiles.push(path.join(topo.makeTempDir('ready'), 'first'));
      supervisor = topo.spawnOnNode(node1, NODE_BIN, [AGENT_CLI, 'supervise', '--standalone', '--config', cfgDir, '--node', 'node1', '--cgroup-root', node1.cgroupRoot, '--bpffs', node1.bpffsDir], {
        env: { ...process.env, SMESH_READY_FILE: readyFiles[0] },
      });
      supervisors.push(supervisor);
      await pollUntil(
        () => readyPids().length,
        (n) => n >= 1,
        60_000,
      ).catch(() => undefined);
      if (readyPids().length < 1) throw new Error(`supervised agent never ready\n${diag()}`);
      const a2 = topo.startAgent('node2', cfgDir);
      agents.push(a2);
      await a2.waitReady(60_000);
    } catch (e) {
      setupError = e as Error;
    }
  }, 180_000);

  afterAll(async () => {
    for (const l of loops) l.kill('SIGKILL');
    for (const sup of supervisors) {
      if (sup.exitCode !== null || sup.signalCode !== null) continue;
      sup.kill('SIGTERM');
      await waitExit(sup, 10_000);
    }
    await stopAgentsKeepingLogs(agents, 'supervisor');
    if (process.env.SMESH_E2E_LOG_DIR) supervisors.forEach((sup, n) => fs.writeFileSync(path.join(process.env.SMESH_E2E_LOG_DIR!, `supervisor-node1${n ? `-${n + 1}` : ''}.log`), sup.outputText()));
    if (process.env.SMESH_RESTART_RESULTS) fs.writeFileSync(process.env.SMESH_RESTART_RESULTS, JSON.stringify(measured, null, 2));
    await topo?.cleanup();
  }, 60_000);

  /** Starts conn-loop in `pod` and waits until it has run for about a second (its progress lines). */
  async function startLoop(pod: string, vip: string, extra: readonly string[] = []): Promise<CapturedProcess> {
    const p = topo.spawnInPod(pod, NODE_BIN, [path.join(APPS_DIR, 'conn-loop.js'), '--host', vip, '--port', String(ECHO), '--rate', '50', ...extra]);
    loops.push(p);
    await pollUntil(
      () => jsonRecords(p.stdoutText()).filter((r) => r.progress).length,
      (n) => n >= 2,
      15_000,
    );
    return p;
  }

  async function loopResult(p: CapturedProcess): Promise<LoopResult> {
    const r = await waitExit(p, 90_000);
    try {
      return lastJsonLine<LoopResult>(r.stdout);
    } catch {
      throw new Error(`conn-loop gave no result (${r.code}/${r.signal}): ${tail(r.stdout + r.stderr)}`);
    }
  }

  /** Waits for the supervisor to report an agent ready that is not in `before`. */
  async function nextReady(before: readonly number[]): Promise<number> {
    const pids = await pollUntil(readyPids, (l) => l.some((p) => !before.includes(p)), 60_000);
    const pid = pids.find((p) => !before.includes(p));
    if (pid === undefined) throw new Error(`no new agent ready\n${diag()}`);
    return pid;
  }

  const current = () => readyPids().at(-1)!;

  it('SIGKILL of the agent under 50 new connections/s each way: none refused, bytes right; the supervisor restarts it with the same sockets', async () => {
    const outbound = await startLoop('client', VIP.remote, ['--seconds', '6']);
    const inbound = await startLoop('client2', VIP.local, ['--seconds', '6']);
    const before = readyPids();
    const victim = current();
    process.kill(victim, 'SIGKILL');
    const successor = await nextReady(before);
    expect(successor).not.toBe(victim);
    const [o, i] = [await loopResult(outbound), await loopResult(inbound)];
    measured.sigkill = { outbound: o.result, inbound: i.result, errors: [...o.errors, ...i.errors] };
    const msg = `${JSON.stringify(measured.sigkill)}\n${diag()}`;
    for (const loop of [o, i]) {
      const r = loop.result;
      // Only connections the killed agent was relaying at that instant may be cut: reset, or — when the kernel closed
      // the dead agent's socket with nothing unread — ended by a FIN before any byte came back (a "mismatch" with
      // nothing received). Either way a handful at most; a wrong byte or a refusal is never allowed.
      const cutByFin = loop.errors.filter((e) => e.outcome === 'mismatch' && e.detail === '').length;
      expect(r.refused, msg).toBe(0);
      expect(r.mismatch - cutByFin + r.other + r.timeout, msg).toBe(0);
      expect(r.ok + r.reset + cutByFin, msg).toBe(r.started);
      expect(r.reset + cutByFin, msg).toBeLessThanOrEqual(5);
    }
    expect(exited(victim)?.signal, msg).toBe('SIGKILL');
  }, 120_000);

  it('SIGTERM of the agent: a long-lived connection keeps flowing through the drain (sha256 both ways), new connections go to the successor, none refused or reset', async () => {
    const outbound = await startLoop('client', VIP.remote, ['--seconds', '6', '--long-seconds', '6']);
    const inbound = await startLoop('client2', VIP.local, ['--seconds', '6']);
    const before = readyPids();
    const victim = current();
    process.kill(victim, 'SIGTERM');
    await nextReady(before);
    const [o, i] = [await loopResult(outbound), await loopResult(inbound)];
    measured.sigterm = { outbound: o.result, inbound: i.result, long: o.long, errors: [...o.errors, ...i.errors] };
    const msg = `${JSON.stringify(measured.sigterm)}\n${diag()}`;
    expect(o.long?.outcome, msg).toBe('ended');
    expect(o.long!.receivedBytes, msg).toBe(o.long!.sentBytes);
    expect(o.long!.receivedSha256, msg).toBe(o.long!.sentSha256);
    expect(o.result.ok, msg).toBe(o.result.started);
    for (const r of [o.result, i.result]) {
      expect(r.refused, msg).toBe(0);
      expect(r.mismatch + r.other + r.timeout, msg).toBe(0);
    }
    // The drained agent exits by itself once its last connection ended.
    await pollUntil(
      () => exited(victim),
      (e) => e !== undefined,
      40_000,
    );
    expect(exited(victim)?.code, msg).toBe(0);
    expect(supervisor.outputText(), msg).toMatch(/drained: no open connection left/);
  }, 120_000);

  it('SIGHUP hand-over: a new agent takes the sockets, the old one drains and exits; none refused or reset', async () => {
    const outbound = await startLoop('client', VIP.remote, ['--seconds', '6', '--long-seconds', '5']);
    const inbound = await startLoop('client2', VIP.local, ['--seconds', '6']);
    const before = readyPids();
    const old = current();
    supervisor.kill('SIGHUP');
    const fresh = await nextReady(before);
    const [o, i] = [await loopResult(outbound), await loopResult(inbound)];
    measured.sighup = { outbound: o.result, inbound: i.result, long: o.long, errors: [...o.errors, ...i.errors] };
    const msg = `${JSON.stringify(measured.sighup)}\n${diag()}`;
    expect(fresh).not.toBe(old);
    expect(o.result.ok, msg).toBe(o.result.started);
    expect(o.long?.receivedSha256, msg).toBe(o.long?.sentSha256);
    for (const r of [o.result, i.result]) {
      expect(r.refused, msg).toBe(0);
      expect(r.mismatch + r.other + r.timeout, msg).toBe(0);
    }
    await pollUntil(
      () => exited(old),
      (e) => e !== undefined,
      40_000,
    );
    expect(exited(old)?.code, msg).toBe(0);
  }, 120_000);

  it('surge pod: a second supervisor binds the same sockets beside the first (SO_REUSEPORT), then the first gets SIGTERM: none refused or reset, the long-lived connection finishes on the old agent, the new one owns the maps after', async () => {
    const first = supervisor;
    const firstLog = () => jsonRecords(first.stdoutText());
    const outbound = await startLoop('client', VIP.remote, ['--seconds', '10', '--long-seconds', '6']);
    const inbound = await startLoop('client2', VIP.local, ['--seconds', '10']);
    const secondReadyFile = path.join(topo.makeTempDir('ready-surge'), 'second');
    expect(fs.existsSync(readyFiles[0]!), 'the first pod is ready (its readiness file)').toBe(true);
    const second = topo.spawnOnNode(node1, NODE_BIN, [AGENT_CLI, 'supervise', '--standalone', '--config', cfgDir, '--node', 'node1', '--cgroup-root', node1.cgroupRoot, '--bpffs', node1.bpffsDir], {
      env: { ...process.env, SMESH_READY_FILE: secondReadyFile },
    });
    supervisors.push(second);
    const secondReady = () => jsonRecords(second.stdoutText()).filter((r) => r.component === 'supervisor' && r.msg === 'agent ready');
    const both = () => `${diag()}\n--- second supervisor ---\n${tail(second.outputText(), 40)}`;
    await pollUntil(secondReady, (l) => l.length >= 1, 60_000).catch(() => undefined);
    if (secondReady().length < 1) throw new Error(`the surge supervisor's agent never got ready\n${both()}`);
    // Each pod's readiness is its own supervisor's file (a probe of :15021 could be answered by either pod's agent).
    expect(fs.existsSync(secondReadyFile), both()).toBe(true);
    const migration = jsonRecords(second.stdoutText()).find((r) => r.component === 'supervisor' && /tcp_migrate_req/.test(String(r.msg)));
    // Both pods serve side by side (the kernel spreads new connections over both reuseport listeners, and the new agent
    // registered its in-pod listeners): the new agent completes connections before the old pod is deleted.
    const servedByNew = () => jsonRecords(second.stdoutText()).filter((r) => r.msg === 'connection complete').length;
    await pollUntil(servedByNew, (n) => n >= 20, 15_000).catch(() => undefined);
    expect(servedByNew(), both()).toBeGreaterThanOrEqual(20);
    // Old pod deleted once the new one is ready: its supervisor closes its sockets and its agent drains.
    first.kill('SIGTERM');
    const [o, i] = [await loopResult(outbound), await loopResult(inbound)];
    const firstExit = await waitExit(first, 45_000);
    measured.surge = { outbound: o.result, inbound: i.result, long: o.long, errors: [...o.errors, ...i.errors], migration: migration?.msg };
    const msg = `${JSON.stringify(measured.surge)}\n${both()}`;
    expect(migration?.level, msg).toBe('info'); // net.ipv4.tcp_migrate_req=1 in the node's namespace
    expect(o.long?.outcome, msg).toBe('ended');
    expect(o.long!.receivedBytes, msg).toBe(o.long!.sentBytes);
    expect(o.long!.receivedSha256, msg).toBe(o.long!.sentSha256);
    for (const r of [o.result, i.result]) {
      expect(r.refused, msg).toBe(0);
      expect(r.reset, msg).toBe(0);
      expect(r.mismatch + r.other + r.timeout, msg).toBe(0);
      expect(r.ok, msg).toBe(r.started);
    }
    expect(firstExit.code, msg).toBe(0);
    expect(fs.existsSync(readyFiles[0]!), `${msg}\nthe old pod's readiness file outlived it`).toBe(false);
    expect(fs.existsSync(secondReadyFile), msg).toBe(true);
    expect(
      firstLog().some((r) => r.msg === 'drained: no open connection left'),
      msg,
    ).toBe(true);
    // Only the new pod's agent is left: captured connections and HBONE into node1 still work, through it.
    supervisor = second;
    const after = [await startLoop('client', VIP.remote, ['--seconds', '2']), await startLoop('client2', VIP.local, ['--seconds', '2'])];
    const [ao, ai] = [await loopResult(after[0]!), await loopResult(after[1]!)];
    measured.surgeAfter = { outbound: ao.result, inbound: ai.result };
    for (const r of [ao.result, ai.result]) {
      expect(r.started, JSON.stringify(measured.surgeAfter)).toBeGreaterThan(0);
      expect(r.ok, `${JSON.stringify(measured.surgeAfter)}\n${both()}`).toBe(r.started);
    }
  }, 180_000);

  it('SIGTERM of the supervisor: the agent drains and both exit 0', async () => {
    supervisor.kill('SIGTERM');
    const r = await waitExit(supervisor, 45_000);
    expect(r.code, diag()).toBe(0);
    expect(supervisorEvents('supervisor exiting').length).toBe(1);
  }, 60_000);
});
