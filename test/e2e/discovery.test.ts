// End-to-end netns discovery: pods declared without `smesh.io/netns` are found by the agent from their processes and meshed; --no-netns-discovery turns it off.
import { describe, it, expect, beforeAll, beforeEach, afterAll } from 'vitest';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createTopology, privilegeProblem, AGENT_CLI, AGENT_PORTS, CAPTURE_IP, type Topology, type AgentHandle, type NodeInfo, type ServiceSpec } from '../helpers/topology';
import { tail } from '../helpers/proc';
import { parseMetrics, sum, describeSeries } from '../helpers/metrics';
import { pollUntil } from '../helpers/wait';

const problem = privilegeProblem();
const VIP = { remote: '198.19.3.10', local: '198.19.3.11' } as const;
const PORT = { http: 80, httpTarget: 8080, peerEcho: 9002 } as const;
const spiffe = (sa: string) => `spiffe://cluster.local/ns/default/sa/${sa}`;

interface ConfigDump {
  datapath: { enrolledPods?: Array<{ cookie: string; workload: string | number }> };
  netnsDiscovery: { disabled?: boolean; discovered?: Record<string, string>; unresolved?: string[] };
}

describe.skipIf(problem !== null)(`netns discovery e2e: pods without the netns annotation${problem ? ` (skipped: ${problem})` : ''}`, () => {
  let topo: Topology;
  let cfgDir: string;
  const agents: Record<string, AgentHandle> = {};
  const started: AgentHandle[] = [];
  let node1: NodeInfo;
  let node2: NodeInfo;
  /** The client pod's first process (its "pause" container), started before the agents. */
  let clientSandboxPid = 0;
  let setupError: Error | null = null;
  beforeEach(() => {
    if (setupError) throw setupError;
  });

  const startAgent = (node: NodeInfo, extra: string[] = []): AgentHandle => {
    const a = topo.startAgent(node, cfgDir, ['--log-level', 'debug', ...extra]);
    started.push(a);
    agents[node.name] = a;
    return a;
  };
  const diag = () =>
    Object.entries(agents)
      .map(([n, a]) => `--- agent ${n} ---\n${tail(a.logs(), 25)}`)
      .join('\n');

  async function configDump(node: NodeInfo): Promise<ConfigDump> {
    const r = await topo.httpGetInNode(node, `http://127.0.0.1:${AGENT_PORTS.admin}/config_dump`);
    expect(r.status, r.body.slice(0, 300)).toBe(200);
    return JSON.parse(r.body) as ConfigDump;
  }
  const enrolledUids = (d: ConfigDump) => (d.datapath.enrolledPods ?? []).map((p) => String(p.workload));

  beforeAll(async () => {
    try {
      if (!fs.existsSync(AGENT_CLI)) throw new Error(`${AGENT_CLI} not found: build first with \`npx tsc -p tsconfig.json\``);
      topo = await createTopology({
        nodes: ['node1', 'node2'],
        pods: [
          { name: 'client', node: 'node1', netnsAnnotation: false },
          { name: 'local-server', node: 'node1', netnsAnnotation: false },
          // Declared and scheduled here, but no process of it ever runs: nothing to discover.
          { name: 'idle', node: 'node1', netnsAnnotation: false },
          { name: 'remote-server', node: 'node2', netnsAnnotation: false },
        ],
      });
      node1 = topo.node('node1');
      node2 = topo.node('node2');
      // Like a pod's pause container: a process that lives as long as the pod, present before the agent starts.
      const sandbox = topo.spawnInPod('client', 'sleep', ['600']);
      clientSandboxPid = sandbox.pid!;
      for (const pod of ['remote-server', 'local-server']) {
        await Promise.all([topo.startApp(pod, 'http-server', ['--port', String(PORT.httpTarget), '--pod', pod]), topo.startApp(pod, 'echo-server', ['--port', String(PORT.peerEcho), '--peer'])]);
      }
      const services: ServiceSpec[] = [
        {
          name: 'remote',
          vip: VIP.remote,
          ports: [
            { name: 'web', port: PORT.http, targetPort: PORT.httpTarget },
            { name: 'peer', port: PORT.peerEcho, targetPort: PORT.peerEcho },
          ],
          selector: { app: 'remote-server' },
        },
        {
          name: 'local',
          vip: VIP.local,
          ports: [
            { name: 'web', port: PORT.http, targetPort: PORT.httpTarget },
            { name: 'peer', port: PORT.peerEcho, targetPort: PORT.peerEcho },
          ],
          selector: { app: 'local-server' },
        },
      ];
      cfgDir = topo.makeTempDir('config');
      topo.writeConfig(cfgDir, { services });
      expect(fs.readFileSync(path.join(cfgDir, 'mesh.yaml'), 'utf8')).not.toContain('smesh.io/netns');
      await startAgent(node1).waitReady(60_000);
      await startAgent(node2).waitReady(60_000);
    } catch (e) {
      setupError = e as Error;
    }
  }, 180_000);

  afterAll(async () => {
    const keep = process.env.SMESH_E2E_LOG_DIR;
    for (const [i, a] of started.entries()) {
      await a.stop(5000).catch(() => undefined);
      if (keep) {
        fs.mkdirSync(keep, { recursive: true });
        fs.writeFileSync(path.join(keep, `discovery-agent-${i}-${a.node.name}.log`), a.logs());
      }
    }
    await topo?.cleanup();
    expect(topo ? topo.leftovers() : []).toEqual([]);
  }, 60_000);

  it('enrolls the pods from their processes: the client through its first process, the idle pod not at all', async () => {
    const dump = await pollUntil(
      () => configDump(node1),
      (d) => enrolledUids(d).filter((u) => /\/(client|local-server)$/.test(u)).length === 2,
      15_000,
      300,
    );
    const uids = enrolledUids(dump);
    expect(
      uids.filter((u) => /\/(client|local-server)$/.test(u)),
      `${JSON.stringify(dump.netnsDiscovery)}\n${diag()}`,
    ).toHaveLength(2);
    expect(uids.some((u) => /\/idle$/.test(u))).toBe(false);
    const discovered = dump.netnsDiscovery.discovered ?? {};
    const clientUid = Object.keys(discovered).find((u) => /\/client$/.test(u));
    expect(clientUid, JSON.stringify(dump.netnsDiscovery)).toBeDefined();
    expect(discovered[clientUid!]).toBe(`/proc/${clientSandboxPid}/ns/net`);
    expect((dump.netnsDiscovery.unresolved ?? []).filter((u) => /\/idle$/.test(u))).toHaveLength(1);
    const debug = agents.node1!.logRecords().filter((r) => r.msg === 'pod network namespace discovered' && /\/client$/.test(String(r.workload)));
    expect(debug.length, diag()).toBeGreaterThanOrEqual(1);
    expect(debug[0]!.addresses).toEqual([topo.pod('client').ip]);
  });

  for (const target of [
    { svc: 'remote', vip: VIP.remote, pod: 'remote-server', security: 'mutual_tls' },
    { svc: 'local', vip: VIP.local, pod: 'local-server', security: undefined },
  ]) {
    it(`a connection to the ${target.svc} service VIP goes through the mesh and is counted as meshed`, async () => {
      const labels: Record<string, string> = { reporter: 'source', source_workload: 'client', destination_workload: target.pod, source_principal: spiffe(topo.pod('client').serviceAccount) };
      if (target.security) labels.connection_security_policy = target.security;
      const opened = async () => sum(parseMetrics(await agents.node1!.metrics()), 'istio_tcp_connections_opened_total', labels);
      const before = await opened();
      const r = await topo.runClient('client', ['http', '--url', `http://${target.vip}:${PORT.http}/via-discovery`]);
      expect(r.ok, `${JSON.stringify(r)}\n${diag()}`).toBe(true);
      expect(r.body).toMatchObject({ pod: target.pod, url: '/via-discovery' });
      expect(r.peer).toEqual({ address: target.vip, port: PORT.http });
      const p = await topo.runClient('client', ['peer', '--host', target.vip, '--port', String(PORT.peerEcho)]);
      expect(p.ok, JSON.stringify(p)).toBe(true);
      // The server sees the proxy (capture address or node), never the client pod itself.
      expect(p.serverSawPeer.address).not.toBe(topo.pod('client').ip);
      if (target.svc === 'remote') expect([node2.ip, node2.bridgeIp, CAPTURE_IP]).toContain(p.serverSawPeer.address);
      const after = await pollUntil(opened, (v) => v >= before + 2, 10_000, 300);
      expect(after - before, describeSeries(parseMetrics(await agents.node1!.metrics()), ['istio_tcp_connections_opened_total'])).toBeGreaterThanOrEqual(2);
    });
  }

  it('warns once about the pod with no process, however many passes run', async () => {
    const passes = () => agents.node1!.logRecords().filter((r) => r.msg === 'netns discovery pass').length;
    // A pass runs at start and on every periodic re-check (10 s): wait for at least two.
    await pollUntil(
      async () => passes(),
      (n) => n >= 2,
      25_000,
      300,
    );
    expect(passes(), diag()).toBeGreaterThanOrEqual(2);
    const warnings = agents.node1!.logRecords().filter((r) => r.level === 'warn' && /\/idle$/.test(String(r.workload)));
    expect(warnings, diag()).toHaveLength(1);
    expect(String(warnings[0]!.msg)).toMatch(/no network namespace found/);
  }, 40_000);

  it('with --no-netns-discovery the pods are no longer enrolled: the client reaches the pod directly', async () => {
    await agents.node1!.stop(10_000);
    await startAgent(node1, ['--no-netns-discovery']).waitReady(60_000);
    const dump = await pollUntil(
      () => configDump(node1),
      (d) => enrolledUids(d).length === 0,
      15_000,
      300,
    );
    expect(enrolledUids(dump), diag()).toEqual([]);
    expect(dump.netnsDiscovery.disabled).toBe(true);
    const target = topo.pod('remote-server');
    const r = await topo.runClient('client', ['peer', '--host', target.ip, '--port', String(PORT.peerEcho)]);
    expect(r.ok, `${JSON.stringify(r)}\n${diag()}`).toBe(true);
    // Not redirected on node1 (plaintext left the client), so node2 captured it as plaintext from outside the mesh.
    expect(r.peer).toEqual({ address: target.ip, port: PORT.peerEcho });
    expect(r.serverSawPeer.address).toBe(CAPTURE_IP);
    const m = await agents.node2!.metrics();
    expect(m).toMatch(/istio_tcp_connections_opened_total\{reporter="destination"[^}]*source_workload="client"[^}]*connection_security_policy="none"\} [1-9]/);
  }, 90_000);
});
