// Dual-stack pods (status.podIPs with an IPv4 and an IPv6 address): plaintext to either address is captured and authorized, STRICT drops it on both, and a dual-stack mesh client reaches either address over HBONE — its IPv6 connections redirected by the kernel to the agent's IPv6 capture listener.
import { describe, it, expect, beforeAll, beforeEach, afterAll } from 'vitest';
import * as fs from 'node:fs';
import { startAgentsInOrder, stopAgentsKeepingLogs } from '../helpers/e2e-agents';
import { createTopology, privilegeProblem, AGENT_CLI, CAPTURE_IP6, type Topology, type AgentHandle } from '../helpers/topology';
import { pollUntil } from '../helpers/logs';

const problem = privilegeProblem();
const TCP_PORT = 9001;
const HTTP_PORT = 8080;

/** `client` is a dual-stack mesh pod on the other node, `client-local` one on the pod's node (same-node path). */
type Client = 'outsider-local' | 'outsider-remote' | 'client' | 'client-local';
/** Per client: whether a TCP echo through each address of the dual-stack pod succeeded. */
type Seen = Partial<Record<Client, { v4: boolean; v6: boolean }>>;

function doc(kind: string, name: string, spec: Record<string, unknown>): unknown {
  return { apiVersion: 'security.istio.io/v1', kind, metadata: { name, namespace: 'shop' }, spec };
}

describe.skipIf(problem !== null)(`dual-stack pods e2e${problem ? ` (skipped: ${problem})` : ''}`, () => {
  let topo: Topology | undefined;
  let cfgDir = '';
  const agents: AgentHandle[] = [];
  let setupError: Error | null = null;

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
          { name: 'outsider-remote', node: 'node1', enrolled: false },
          { name: 'outsider-local', node: 'node2', enrolled: false },
          { name: 'client', node: 'node1', namespace: 'shop', ipFamily: 'DualStack' },
          { name: 'client-local', node: 'node2', namespace: 'shop', ipFamily: 'DualStack' },
          { name: 'dual', node: 'node2', namespace: 'shop', ipFamily: 'DualStack' },
        ],
      });
      await Promise.all([
        topo.startApp('dual', 'echo-server', ['--port', String(TCP_PORT), '--host', '::']),
        topo.startApp('dual', 'http-server', ['--port', String(HTTP_PORT), '--host', '::', '--pod', 'dual']),
      ]);
      cfgDir = topo.makeTempDir('config');
      topo.writeConfig(cfgDir, { services: [] });
      await startAgentsInOrder(topo, ['node1', 'node2'], cfgDir, agents, ['--capture-ip6', CAPTURE_IP6]);
    } catch (e) {
      setupError = e as Error;
    }
  }, 180_000);

  afterAll(async () => {
    await stopAgentsKeepingLogs(agents, 'dual-stack');
    await topo?.cleanup();
  }, 60_000);

  const dual = () => topo!.pod('dual');

  async function echo(client: Client, host: string): Promise<boolean> {
    const r = await topo!.runClient(client, ['tcp', '--host', host, '--port', String(TCP_PORT), '--send', 'ping', '--expect', 'ping', '--timeout', '3000'], 8000);
    return r.ok === true;
  }

  async function expectAll(cases: Seen): Promise<void> {
    const observe = async (): Promise<Seen> => {
      const seen: Seen = {};
      for (const c of Object.keys(cases) as Client[]) seen[c] = { v4: await echo(c, dual().ip), v6: await echo(c, dual().ip6!) };
      return seen;
    };
    expect(await pollUntil(observe, (seen) => JSON.stringify(seen) === JSON.stringify(cases), 30_000)).toEqual(cases);
  }

  const both = { v4: true, v6: true };
  const neither = { v4: false, v6: false };

  it('the mesh knows both addresses; a mesh client reaches the IPv6 one over HBONE (redirected by the kernel to the IPv6 capture listener), the app sees the proxy', async () => {
    expect(dual().meshIps).toEqual([dual().ip, dual().ip6]);
    await expectAll({ client: both, 'client-local': both, 'outsider-local': both, 'outsider-remote': both });
    const seen = await topo!.runClient('client', ['http', '--url', `http://[${dual().ip6}]:${HTTP_PORT}/`], 8000);
    expect(seen.status).toBe(200);
    // Dialled by the destination agent from its IPv6 capture address, after the HBONE hop.
    expect(String((seen.body as { peer?: string }).peer)).toMatch(new RegExp(`^${CAPTURE_IP6.replace(/[.]/g, '\\.')}:\\d+$`));
    const src = await agents[0]!.metrics();
    expect(src).toMatch(/^smesh_redirected_connections_total\{direction="outbound"\} [1-9]/m);
    expect(src).toMatch(/istio_tcp_connections_opened_total\{reporter="source"[^}]*source_workload="client"[^}]*destination_workload="dual"[^}]*connection_security_policy="mutual_tls"\} [1-9]/);
    const dst = await agents[1]!.metrics();
    expect(dst).toMatch(/istio_tcp_connections_opened_total\{reporter="destination"[^}]*source_workload="client"[^}]*destination_workload="dual"[^}]*connection_security_policy="mutual_tls"\} [1-9]/);
    // Same node: the IPv6 connection is redirected to this node's IPv6 listener and dialled from its IPv6 capture address.
    const local = await topo!.runClient('client-local', ['http', '--url', `http://[${dual().ip6}]:${HTTP_PORT}/`], 8000);
    expect(local.status).toBe(200);
    expect(String((local.body as { peer?: string }).peer)).toMatch(new RegExp(`^${CAPTURE_IP6.replace(/[.]/g, '\\.')}:\\d+$`));
    expect(await agents[1]!.metrics()).toMatch(/istio_tcp_connections_opened_total\{reporter="source"[^}]*source_workload="client-local"[^}]*destination_workload="dual"/);
  });

  it('allow-nothing denies plaintext and mesh clients on both addresses', async () => {
    topo!.writeConfig(cfgDir, { services: [], extraDocs: [doc('AuthorizationPolicy', 'allow-nothing', { selector: { matchLabels: { app: 'dual' } }, action: 'ALLOW' })] });
    await expectAll({ client: neither, 'client-local': neither, 'outsider-local': neither, 'outsider-remote': neither });
    const m = await agents[1]!.metrics();
    expect(m).toMatch(/istio_tcp_connections_opened_total\{reporter="destination"[^}]*destination_workload="dual"[^}]*response_flags="DENY",connection_security_policy="none"\} [1-9]/);
  });

  it('STRICT drops plaintext to both addresses; the mesh client still reaches both over mutual TLS', async () => {
    topo!.writeConfig(cfgDir, { services: [], extraDocs: [doc('PeerAuthentication', 'strict', { selector: { matchLabels: { app: 'dual' } }, mtls: { mode: 'STRICT' } })] });
    await expectAll({ client: both, 'client-local': both, 'outsider-local': neither, 'outsider-remote': neither });
  });
});
