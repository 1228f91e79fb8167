// HBONE on real agents (two-node namespaced topology): foreign trust domains get 401 and alias ones are accepted (from the flag, and from MeshConfig applied live); a fuzz burst of malformed HTTP/2 leaves the agent's descriptors, sessions and pod-side connections at baseline.
import { describe, it, expect, beforeAll, beforeEach, afterAll } from 'vitest';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createTopology, privilegeProblem, AGENT_CLI, AGENT_PORTS, APPS_DIR, NODE_BIN, type Topology, type AgentHandle, type NodeInfo } from '../helpers/topology';
import { waitExit, lastJsonLine, tail } from '../helpers/proc';
import { parseMetrics, sum } from '../helpers/metrics';
import { issueLeaf } from '../helpers/certs';
import { pollUntil, waitUntil } from '../helpers/logs';

const problem = privilegeProblem();
const ECHO_PORT = 9000;
const ALIAS = 'old.example';
/** An alias that only MeshConfig names (no agent has it as a flag). */
const MESH_ALIAS = 'previous.example';

describe.skipIf(problem !== null)(`HBONE hardening on real agents${problem ? ` (skipped: ${problem})` : ''}`, () => {
  let topo: Topology;
  let cfgDir: string;
  let node1: NodeInfo;
  let node2: NodeInfo;
  const agents: AgentHandle[] = [];
  let server: AgentHandle;
  let root: { cert: string; key: string };

  let setupError: Error | null = null;
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
          { name: 'server', node: 'node2' },
        ],
      });
      node1 = topo.node('node1');
      node2 = topo.node('node2');
      await topo.startApp('server', 'echo-server', ['--port', String(ECHO_PORT)]);
      // An echo on node1 too: node1's agent runs without --trust-domain-aliases (MeshConfig aliases alone).
      await topo.startApp('client', 'echo-server', ['--port', String(ECHO_PORT)]);
      cfgDir = topo.makeTempDir('config');
      topo.writeConfig(cfgDir);
      const a1 = topo.startAgent(node1, cfgDir);
      agents.push(a1);
      await a1.waitReady(60_000);
      server = topo.startAgent(node2, cfgDir, ['--trust-domain-aliases', ALIAS]);
      agents.push(server);
      await server.waitReady(60_000);
      root = { cert: path.join(cfgDir, 'ca/root-cert.pem'), key: path.join(cfgDir, 'ca/root-key.pem') };
    } catch (e) {
      setupError = e as Error;
    }
  }, 180_000);

  afterAll(async () => {
    for (const a of agents) await a.stop(5000).catch(() => undefined);
    await topo?.cleanup();
  }, 60_000);

  const diag = () => agents.map((a) => `--- agent ${a.node.name} (pid ${a.pid}) ---\n${tail(a.logs(), 20)}`).join('\n');
  const metric = async (name: string, labels: Record<string, string>) => sum(parseMetrics(await server.metrics()), name, labels);
  /** An HBONE CONNECT with a mesh-root certificate for `spiffeId` to node2's agent (its echo pod), or to node1's. */
  const hbone = (spiffeId: string, name: string, to: 'node2' | 'node1' = 'node2') => {
    const leaf = issueLeaf(topo.makeTempDir(name), root, spiffeId, name);
    const [from, dest, pod] = to === 'node2' ? [node1, node2, 'server'] : [node2, node1, 'client'];
    return topo.runClient(
      { node: from },
      ['hbone', '--host', dest.ip, '--port', String(AGENT_PORTS.inbound), '--ca', root.cert, '--authority', `${topo.pod(pod).ip}:${ECHO_PORT}`, '--cert', leaf.cert, '--key', leaf.key, '--send', name],
      20_000,
    );
  };

  it('a certificate from the mesh root for a foreign trust domain gets 401, counted and logged', async () => {
    const r = await hbone('spiffe://evil.example/ns/default/sa/client', 'evil');
    expect(r.status, `${JSON.stringify(r)}\n${diag()}`).toBe(401);
    expect(await metric('smesh_hbone_handshake_failures_total', { direction: 'inbound', reason: 'foreign_trust_domain' })).toBeGreaterThanOrEqual(1);
    const line = server.logRecords().find((l) => l.reason === 'foreign_trust_domain');
    expect(line, diag()).toMatchObject({ level: 'info', peer: 'spiffe://evil.example/ns/default/sa/client' });
  });

  it('a certificate of a configured alias trust domain is accepted (and one of the mesh trust domain)', async () => {
    const alias = await hbone(`spiffe://${ALIAS}/ns/default/sa/client`, 'alias');
    expect(alias, `${JSON.stringify(alias)}\n${diag()}`).toMatchObject({ ok: true, status: 200, received: 'alias' });
    const mesh = await hbone('spiffe://cluster.local/ns/default/sa/client', 'mesh');
    expect(mesh, JSON.stringify(mesh)).toMatchObject({ ok: true, status: 200, received: 'mesh' });
  });

  it('an alias added to MeshConfig reaches every agent over xDS and applies without a restart: 200 for it, 401 for a foreign one', async () => {
    const cert = `spiffe://${MESH_ALIAS}/ns/default/sa/client`;
    for (const to of ['node1', 'node2'] as const) {
      const before = await hbone(cert, `mesh-alias-before-${to}`, to);
      expect(before.status, `${to}: ${JSON.stringify(before)}\n${diag()}`).toBe(401);
    }
    const pids = agents.map((a) => a.pid);
    topo.writeConfig(cfgDir, { trustDomainAliases: [MESH_ALIAS] });
    // The config directory is watched: the new MeshConfig reaches both agents within a second or so.
    for (const to of ['node1', 'node2'] as const) {
      let n = 0;
      const after = await pollUntil(
        () => hbone(cert, `mesh-alias-${to}-${n++}`, to),
        (r) => r.status !== 401,
        20_000,
        200,
      );
      expect(after, `${to}: ${JSON.stringify(after)}\n${diag()}`).toMatchObject({ ok: true, status: 200, received: `mesh-alias-${to}-${n - 1}` });
      // A trust domain neither MeshConfig nor a flag names is still refused.
      const evil = await hbone('spiffe://evil.example/ns/default/sa/client', `evil-after-${to}`, to);
      expect(evil.status, `${to}: ${JSON.stringify(evil)}`).toBe(401);
    }
    expect(agents.map((a) => a.pid)).toEqual(pids);
    // node2's flag alias is still accepted (aliases in force = the flag's ∪ the MeshConfig's); node1 has no such flag.
    const flagAlias = await hbone(`spiffe://${ALIAS}/ns/default/sa/client`, 'flag-alias-after');
    expect(flagAlias, JSON.stringify(flagAlias)).toMatchObject({ ok: true, status: 200, received: 'flag-alias-after' });
    const noFlag = await hbone(`spiffe://${ALIAS}/ns/default/sa/client`, 'flag-alias-node1', 'node1');
    expect(noFlag.status, JSON.stringify(noFlag)).toBe(401);
  }, 90_000);

  it('a fuzz burst of 150 malformed sessions: the agent returns to its baseline descriptors, sessions and pod connections', async () => {
    const fds = () => fs.readdirSync(`/proc/${server.pid}/fd`).length;
    const podConnections = async () => {
      const r = await topo.execInPod('server', 'ss', ['-Htn', 'state', 'all', `( sport = :${ECHO_PORT} )`]);
      return r.stdout.split('\n').filter((l) => l.trim() && !/LISTEN|TIME-WAIT/.test(l)).length;
    };
    const agentCloseWait = async () => {
      const r = await topo.execInNode(node2, 'ss', ['-Htn', 'state', 'close-wait']);
      return r.stdout.split('\n').filter((l) => l.trim()).length;
    };
    await waitUntil(async () => (await metric('smesh_hbone_sessions', { direction: 'inbound' })) === 0 && (await podConnections()) === 0, 30_000, 'a quiet agent before the burst');
    const baseFds = fds();
    const leaf = issueLeaf(topo.makeTempDir('fuzz'), root, 'spiffe://cluster.local/ns/default/sa/client', 'fuzz');
    const proc = topo.spawnOnNode(node1, NODE_BIN, [
      path.join(APPS_DIR, 'h2-fuzz.js'),
      '--host',
      node2.ip,
      '--port',
      String(AGENT_PORTS.inbound),
      '--cert',
      leaf.cert,
      '--key',
      leaf.key,
      '--ca',
      root.cert,
      '--authority',
      `${topo.pod('server').ip}:${ECHO_PORT}`,
      '--sessions',
      '150',
      '--concurrency',
      '16',
      '--seed',
      '10',
    ]);
    const run = await waitExit(proc, 150_000);
    expect(run.timedOut, tail(proc.outputText())).toBe(false);
    const out = lastJsonLine<{ sessions: number; stuck: number; goaway: Record<string, number> }>(run.stdout);
    // Every session was closed by the agent within the client's 15 s bound; the codes on the wire include the RFC's.
    expect(out.stuck, `${JSON.stringify(out)}\n${diag()}`).toBe(0);
    expect(Object.keys(out.goaway).map(Number)).toEqual(expect.arrayContaining([1, 3, 11]));
    await waitUntil(
      async () => fds() <= baseFds && (await metric('smesh_hbone_sessions', { direction: 'inbound' })) === 0 && (await podConnections()) === 0 && (await agentCloseWait()) === 0,
      30_000,
      `agent back to baseline (fds ${fds()} vs ${baseFds})`,
    );
    expect(await metric('smesh_hbone_session_errors_total', { direction: 'inbound' })).toBeGreaterThan(0);
    // Still serving.
    const after = await hbone('spiffe://cluster.local/ns/default/sa/client', 'after');
    expect(after, `${JSON.stringify(after)}\n${diag()}`).toMatchObject({ ok: true, status: 200, received: 'after' });
  }, 240_000);
});
