// Pod-addressed HBONE (ztunnel's wire) end to end: `<pod IP>:15008` is captured in the pod's namespace and served with that workload's certificate; smesh's own outbound dials pods, not nodes; STRICT pods stay reachable over it; CONNECTs to another pod are refused.
import { describe, it, expect, beforeAll, beforeEach, afterAll } from 'vitest';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { startAgentsInOrder, stopAgentsKeepingLogs } from '../helpers/e2e-agents';
import { createTopology, privilegeProblem, AGENT_CLI, CAPTURE_IP, type Topology, type AgentHandle, type ServiceSpec } from '../helpers/topology';
import { issueLeaf } from '../helpers/certs';
import { parseMetrics, sum } from '../helpers/metrics';

const problem = privilegeProblem();
const TCP = 9000;
const PEER = 9002;
const VIP = '198.19.12.10';
const spiffe = (ns: string, sa: string) => `spiffe://cluster.local/ns/${ns}/sa/${sa}`;

describe.skipIf(problem !== null)(`pod-addressed HBONE e2e${problem ? ` (skipped: ${problem})` : ''}`, () => {
  let topo: Topology | undefined;
  const agents: AgentHandle[] = [];
  let setupError: Error | null = null;
  let cfgDir = '';
  const services: ServiceSpec[] = [
    {
      name: 'echo',
      namespace: 'shop',
      vip: VIP,
      ports: [
        { name: 'tcp', port: TCP, targetPort: TCP },
        { name: 'tcp-peer', port: PEER, targetPort: PEER },
      ],
      selector: { app: 'server' },
    },
  ];
  const strictPolicy = { apiVersion: 'security.istio.io/v1', kind: 'PeerAuthentication', metadata: { name: 'strict', namespace: 'shop' }, spec: { mtls: { mode: 'STRICT' } } };

  beforeEach(() => {
    if (setupError) throw setupError;
  });

  beforeAll(async () => {
    try {
      if (!fs.existsSync(AGENT_CLI)) throw new Error(`${AGENT_CLI} not found: build first (npx tsc -p tsconfig.json)`);
      topo = await createTopology({
        nodes: ['node1', 'node2'],
        pods: [
          { name: 'caller', node: 'node1', namespace: 'team-a', serviceAccount: 'caller-sa' },
          { name: 'server', node: 'node2', namespace: 'shop', serviceAccount: 'server-sa' },
          { name: 'other', node: 'node2', namespace: 'shop', serviceAccount: 'other-sa' },
        ],
      });
      await topo.startApp('server', 'echo-server', ['--port', String(TCP)]);
      await topo.startApp('server', 'echo-server', ['--port', String(PEER), '--peer']);
      cfgDir = topo.makeTempDir('config');
      topo.writeConfig(cfgDir, { services, extraDocs: [strictPolicy] });
      await startAgentsInOrder(topo, ['node1', 'node2'], cfgDir, agents);
    } catch (e) {
      setupError = e as Error;
    }
  }, 180_000);

  afterAll(async () => {
    await stopAgentsKeepingLogs(agents, 'pod-hbone');
    await topo?.cleanup();
  }, 60_000);

  /** A workload certificate from the mesh root (the first agent created it under the config dir). */
  const workloadCert = (name: string, id: string) =>
    issueLeaf(topo!.makeTempDir(`cert-${name}`), { cert: path.join(cfgDir, 'ca', 'root-cert.pem'), key: path.join(cfgDir, 'ca', 'root-key.pem') }, id, name);

  it("smesh's outbound reaches a STRICT pod on another node through `<pod IP>:15008`, and both sides count mutual TLS", async () => {
    const r = await topo!.runClient('caller', ['tcp', '--host', VIP, '--port', String(TCP), '--send', 'hello', '--expect', 'hello'], 10_000);
    expect(r.ok, JSON.stringify(r)).toBe(true);
    const d = parseMetrics(await agents[1]!.metrics());
    expect(
      sum(d, 'istio_tcp_connections_opened_total', { reporter: 'destination', destination_workload: 'server', source_workload: 'caller', connection_security_policy: 'mutual_tls' }),
    ).toBeGreaterThanOrEqual(1);
    // The source pooled its session towards the pod, not the node: the server's pod-addressed listener took it.
    const served = agents[1]!.logRecords().filter((x) => x['msg'] === 'pod-addressed HBONE served' && x['address'] === `${topo!.pod('server').ip}:15008`);
    expect(served.length).toBe(1);
  });

  it('the app sees mesh traffic arrive from the capture address (never from an address it could take for its own or a local one)', async () => {
    const r = await topo!.runClient('caller', ['peer', '--host', VIP, '--port', String(PEER)], 10_000);
    expect(r.ok, JSON.stringify(r)).toBe(true);
    expect(r.serverSawPeer.address).toBe(CAPTURE_IP);
  });

  it("an independent HBONE client dialling `<pod IP>:15008` gets that workload's certificate, CONNECTs to the pod, and is refused for another pod", async () => {
    const cert = workloadCert('ext', spiffe('team-a', 'caller-sa'));
    const server = topo!.pod('server');
    const run = (authority: string) =>
      topo!.runClient(
        { node: 'node1' },
        ['hbone', '--host', server.ip, '--port', '15008', '--authority', authority, '--cert', cert.cert, '--key', cert.key, '--ca', cert.ca, '--send', 'ping'],
        10_000,
      );
    const ok = await run(`${server.ip}:${TCP}`);
    expect(ok, JSON.stringify(ok)).toMatchObject({ ok: true, status: 200, alpn: 'h2', serverSan: spiffe('shop', 'server-sa'), received: 'ping' });
    // A tunnel to one pod's address carries CONNECTs to that pod only.
    const other = await run(`${topo!.pod('other').ip}:${TCP}`);
    expect(other.status, JSON.stringify(other)).toBe(400);
    // The other pod's own address answers with its own identity.
    const o = await topo!.runClient(
      { node: 'node1' },
      ['hbone', '--host', topo!.pod('other').ip, '--port', '15008', '--authority', `${topo!.pod('other').ip}:1`, '--cert', cert.cert, '--key', cert.key, '--ca', cert.ca],
      10_000,
    );
    expect(o.serverSan, JSON.stringify(o)).toBe(spiffe('shop', 'other-sa'));
    expect(o.status, JSON.stringify(o)).toBe(503); // nothing listens on port 1 of that pod
  });
});
