// IPv6 plaintext from outside the mesh into a meshed IPv6 pod is captured (sk_lookup's IPv6 branch, an IPv6 in-pod listener) and authorized as Istio does: allow-nothing, ipBlocks on IPv6 CIDRs, L7 rules on an HTTP port, from a client on the same node and on another node.
import { describe, it, expect, beforeAll, beforeEach, afterAll } from 'vitest';
import * as fs from 'node:fs';
import { startAgentsInOrder, stopAgentsKeepingLogs } from '../helpers/e2e-agents';
import { createTopology, privilegeProblem, AGENT_CLI, CAPTURE_IP6, type Topology, type AgentHandle, type ServiceSpec } from '../helpers/topology';
import { pollUntil } from '../helpers/logs';

const problem = privilegeProblem();
const TCP_PORT = 9001;
const HTTP_PORT = 8080;

type Client = 'outsider-local' | 'outsider-remote';

interface Expectation {
  readonly tcp: boolean;
  /** HTTP status of GET /public and GET /admin (0 = connection refused or reset). */
  readonly pub: number;
  readonly admin: number;
}

function policy(name: string, spec: Record<string, unknown>): unknown {
  return { apiVersion: 'security.istio.io/v1', kind: 'AuthorizationPolicy', metadata: { name, namespace: 'shop' }, spec };
}

describe.skipIf(problem !== null)(`IPv6 plaintext inbound policy e2e${problem ? ` (skipped: ${problem})` : ''}`, () => {
  let topo: Topology | undefined;
  let cfgDir = '';
  const agents: AgentHandle[] = [];
  let setupError: Error | null = null;
  const services: ServiceSpec[] = [
    {
      name: 'server',
      namespace: 'shop',
      vip: '198.19.9.60',
      ports: [
        { name: 'tcp-echo', port: TCP_PORT, targetPort: TCP_PORT },
        { name: 'http', port: 80, targetPort: HTTP_PORT },
      ],
      selector: { app: 'server' },
    },
  ];

  beforeEach(() => {
    if (setupError) throw setupError;
  });

  beforeAll(async () => {
    try {
      if (!fs.existsSync(AGENT_CLI)) throw new Error(`${AGENT_CLI} not found: build first (npx tsc -p tsconfig.json)`);
      topo = await createTopology({
        ipv6: true,
        nodes: ['node1', 'node2'],
        pods: [
          // Not in the mesh: plaintext clients that keep their own pod address.
          { name: 'outsider-remote', node: 'node1', enrolled: false },
          { name: 'outsider-local', node: 'node2', enrolled: false },
          // The mesh knows this pod by its IPv6 address.
          { name: 'server', node: 'node2', namespace: 'shop', ipFamily: 'IPv6' },
        ],
      });
      await Promise.all([
        topo.startApp('server', 'echo-server', ['--port', String(TCP_PORT), '--host', '::']),
        topo.startApp('server', 'http-server', ['--port', String(HTTP_PORT), '--host', '::', '--pod', 'server']),
      ]);
      cfgDir = topo.makeTempDir('config');
      topo.writeConfig(cfgDir, { services });
      await startAgentsInOrder(topo, ['node1', 'node2'], cfgDir, agents, ['--capture-ip6', CAPTURE_IP6]);
    } catch (e) {
      setupError = e as Error;
    }
  }, 180_000);

  afterAll(async () => {
    await stopAgentsKeepingLogs(agents, 'plaintext-ipv6');
    await topo?.cleanup();
  }, 60_000);

  const server = () => topo!.pod('server');

  async function observe(client: Client): Promise<Expectation> {
    const host = server().ip6!;
    const [tcp, pub, admin] = await Promise.all([
      topo!.runClient(client, ['tcp', '--host', host, '--port', String(TCP_PORT), '--send', 'ping', '--expect', 'ping'], 8000),
      topo!.runClient(client, ['http', '--url', `http://[${host}]:${HTTP_PORT}/public`], 8000),
      topo!.runClient(client, ['http', '--url', `http://[${host}]:${HTTP_PORT}/admin`], 8000),
    ]);
    return { tcp: tcp.ok === true, pub: Number(pub.status ?? 0), admin: Number(admin.status ?? 0) };
  }

  async function expectAll(cases: Partial<Record<Client, Expectation>>): Promise<void> {
    const observeAll = async (): Promise<Partial<Record<Client, Expectation>>> => {
      const seen: Partial<Record<Client, Expectation>> = {};
      for (const c of Object.keys(cases) as Client[]) seen[c] = await observe(c);
      return seen;
    };
    expect(await pollUntil(observeAll, (seen) => JSON.stringify(seen) === JSON.stringify(cases), 15_000)).toEqual(cases);
  }

  const open: Expectation = { tcp: true, pub: 200, admin: 200 };
  const closed: Expectation = { tcp: false, pub: 0, admin: 0 };

  it('the mesh knows the pod by its IPv6 address; without a policy IPv6 plaintext reaches the app through the capture (same node and across nodes), from the IPv6 capture address', async () => {
    expect(server().meshIp).toBe(server().ip6);
    await expectAll({ 'outsider-local': open, 'outsider-remote': open });
    const seen = await topo!.runClient('outsider-remote', ['http', '--url', `http://[${server().ip6}]:${HTTP_PORT}/public`], 8000);
    expect(seen.status).toBe(200);
    // The app sees the agent's IPv6 source address, never a client that bypassed the node proxy.
    expect(String((seen.body as { peer?: string }).peer)).toMatch(new RegExp(`^${CAPTURE_IP6.replace(/[.]/g, '\\.')}:\\d+$`));
    const m = await agents[1]!.metrics();
    expect(m).toMatch(/^smesh_plaintext_inbound_captured_total [1-9]/m);
    expect(m).toMatch(/istio_tcp_connections_opened_total\{reporter="destination"[^}]*destination_workload="server"[^}]*connection_security_policy="none"\} [1-9]/);
  });

  it('allow-nothing denies IPv6 plaintext on every port', async () => {
    topo!.writeConfig(cfgDir, { services, extraDocs: [policy('allow-nothing', { selector: { matchLabels: { app: 'server' } }, action: 'ALLOW' })] });
    await expectAll({ 'outsider-local': closed, 'outsider-remote': closed });
    const m = await agents[1]!.metrics();
    expect(m).toMatch(/istio_tcp_connections_opened_total\{reporter="destination"[^}]*destination_workload="server"[^}]*response_flags="DENY",connection_security_policy="none"\} [1-9]/);
  });

  it("DENY by ipBlocks on an IPv6 prefix (the other node's pods) and ALLOW by an IPv6 /128 match the client by its own address", async () => {
    const remotePrefix = topo!.node('node1').podCidr6!;
    topo!.writeConfig(cfgDir, {
      services,
      extraDocs: [policy('deny-node1-pods', { selector: { matchLabels: { app: 'server' } }, action: 'DENY', rules: [{ from: [{ source: { ipBlocks: [remotePrefix] } }] }] })],
    });
    await expectAll({ 'outsider-local': open, 'outsider-remote': closed });
    const local = topo!.pod('outsider-local').ip6!;
    topo!.writeConfig(cfgDir, {
      services,
      extraDocs: [policy('allow-local', { selector: { matchLabels: { app: 'server' } }, action: 'ALLOW', rules: [{ from: [{ source: { ipBlocks: [`${local}/128`] } }] }] })],
    });
    await expectAll({ 'outsider-local': open, 'outsider-remote': closed });
  });

  it('L7 rules apply per request on the HTTP port (403 for /admin); a DENY limited to that port leaves the TCP port open', async () => {
    topo!.writeConfig(cfgDir, {
      services,
      extraDocs: [policy('deny-admin', { selector: { matchLabels: { app: 'server' } }, action: 'DENY', rules: [{ to: [{ operation: { ports: [String(HTTP_PORT)], paths: ['/admin'] } }] }] })],
    });
    await expectAll({ 'outsider-local': { tcp: true, pub: 200, admin: 403 }, 'outsider-remote': { tcp: true, pub: 200, admin: 403 } });
    const m = await agents[1]!.metrics();
    expect(m).toMatch(
      /istio_requests_total\{reporter="destination"[^}]*response_code="403"[^}]*response_flags="RBAC"[^}]*connection_security_policy="none"\} [1-9]|istio_requests_total\{reporter="destination"[^}]*connection_security_policy="none"[^}]*response_code="403"/,
    );
  });
});
