// What the e2e suites share around their agents and pod clients: start agents in order, stop them keeping their logs, and drive a held-client (one kept-open connection in a pod).
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { APPS_DIR, NODE_BIN, type AgentHandle, type Topology } from './topology';
import { tail, waitExit, type CapturedProcess } from './proc';
import { AUTO_DATAPLANE } from '../../agent/config/options';

/** Starts one agent per node, in order (the first creates the standalone CA the next ones reuse), each ready before the next. */
export async function startAgentsInOrder(topo: Topology, nodes: readonly string[], cfgDir: string, into: AgentHandle[], extraArgs: readonly string[] = []): Promise<void> {
  for (const node of nodes) {
    const a = topo.startAgent(node, cfgDir, extraArgs);
    into.push(a);
    await a.waitReady(60_000);
  }
}

/** Stops every agent (SIGTERM, then SIGKILL) and, with SMESH_E2E_LOG_DIR set, writes each one's output there as `<prefix>-agent-<i>-<node>.log`. */
export async function stopAgentsKeepingLogs(agents: readonly AgentHandle[], prefix: string): Promise<void> {
  const keep = process.env.SMESH_E2E_LOG_DIR;
  for (const [i, a] of agents.entries()) {
    await a.stop(5000).catch(() => undefined);
    if (keep) {
      fs.mkdirSync(keep, { recursive: true });
      fs.writeFileSync(path.join(keep, `${prefix}-agent-${i}-${a.node.name}.log`), a.logs());
    }
  }
}

export type HeldCommand = (cmd: Record<string, unknown>) => Promise<Record<string, any>>;

/**
 * test/apps/held-client.js in `pod`, holding one connection (`target`: `--url BASE` or `--host H --port P`) and taking
 * one JSON command per connection to its Unix socket under `ctlDir`. The process is added to `held` for cleanup.
 */
export async function startHeldClient(topo: Topology, pod: string, ctlDir: string, name: string, target: readonly string[], held: CapturedProcess[]): Promise<HeldCommand> {
  const control = path.join(ctlDir, `${name}.sock`);
  const proc = topo.spawnInPod(pod, NODE_BIN, [path.join(APPS_DIR, 'held-client.js'), '--control', control, ...target, '--timeout', '6000']);
  held.push(proc);
  await proc.waitForLine(/"ready"/, 10_000);
  return (cmd) =>
    new Promise((resolve, reject) => {
      const c = net.connect(control);
      let out = '';
      c.setEncoding('utf8');
      c.on('data', (d) => (out += d));
      c.on('end', () => {
        try {
          resolve(JSON.parse(out) as Record<string, any>);
        } catch {
          reject(new Error(`held client ${name}: bad answer ${out}\n${tail(proc.outputText())}`));
        }
      });
      c.on('error', reject);
      c.write(`${JSON.stringify(cmd)}\n`);
    });
}

/** Ends every held client (SIGTERM) and waits for them; empties `held`. */
export async function stopHeldClients(held: CapturedProcess[]): Promise<void> {
  for (const h of held) h.kill('SIGTERM');
  await Promise.all(held.map((h) => waitExit(h, 5000)));
  held.length = 0;
}

/**
 * The kernel's count of plaintext SYNs to captured pods that found no capture listener (an agent restarting), summed
 * over CPUs, read from the pinned `smesh_inpod_stats` map under a node's bpffs dir with bpftool.
 */
export function inpodNoListener(bpffsDir: string): number {
  const raw = execFileSync('bpftool', ['-j', 'map', 'dump', 'pinned', path.join(bpffsDir, 'maps', 'smesh_inpod_stats')], { stdio: 'pipe', timeout: 10_000 }).toString();
  const entries = JSON.parse(raw) as Array<{ formatted?: { values?: Array<{ value: { no_listener?: number } }> }; values?: Array<{ value: string[] }> }>;
  let total = 0;
  for (const e of entries) {
    if (e.formatted?.values) for (const v of e.formatted.values) total += Number(v.value.no_listener ?? 0);
    else for (const v of e.values ?? []) total += Number(Buffer.from(v.value.map((b) => parseInt(b, 16))).readBigUInt64LE(8)); // struct smesh_inpod_counters: no_listener at offset 8
  }
  return total;
}

/** The HBONE data plane the agents of this run use: SMESH_DATAPLANE (inherited by every agent) or the `auto` default. */
export function expectedDataplane(): 'native' | 'js' {
  const v = process.env.SMESH_DATAPLANE ?? 'auto';
  return v === 'native' || v === 'js' ? v : AUTO_DATAPLANE;
}
