// `smesh status`, `smesh config workloads -o json` and `smesh top --once` run in a node's namespace against its real
// agent (admin port 127.0.0.1:15000) after cross-node HTTP and TCP traffic through the mesh.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import { pollUntil } from '../helpers/logs';
import { startAgentsInOrder, stopAgentsKeepingLogs } from '../helpers/e2e-agents';
import { createTopology, privilegeProblem, AGENT_CLI, NODE_BIN, type AgentHandle, type ServiceSpec, type Topology } from '../helpers/topology';

const problem = privilegeProblem();
const VIP = { web: '198.19.12.10', echo: '198.19.12.11' } as const;

describe.skipIf(problem !== null)(`operator commands e2e${problem ? ` (skipped: ${problem})` : ''}`, () => {
  let topo: Topology | undefined;
  const agents: AgentHandle[] = [];
  let setupError: Error | null = null;
  const services: ServiceSpec[] = [
    { name: 'web', namespace: 'shop', vip: VIP.web, ports: [{ name: 'http', port: 80, targetPort: 8080 }], selector: { app: 'web' } },
    { name: 'echo', namespace: 'shop', vip: VIP.echo, ports: [{ name: 'tcp-echo', port: 9000, targetPort: 9000 }], selector: { app: 'web' } },
  ];

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
          { name: 'web', node: 'node2', namespace: 'shop' },
        ],
      });
      await Promise.all([topo.startApp('web', 'http-server', ['--port', '8080', '--pod', 'web']), topo.startApp('web', 'echo-server', ['--port', '9000'])]);
      const cfgDir = topo.makeTempDir('config');
      topo.writeConfig(cfgDir, { services });
      await startAgentsInOrder(topo, ['node1', 'node2'], cfgDir, agents);
    } catch (e) {
      setupError = e as Error;
    }
  }, 180_000);

  afterAll(async () => {
    await stopAgentsKeepingLogs(agents, 'operator-cli');
    await topo?.cleanup();
  });

  async function smesh(node: string, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
    return topo!.execInNode(node, NODE_BIN, [AGENT_CLI, ...args], { timeoutMs: 20_000 });
  }

  it('status: ready, BPF links, the enrolled pod, the control plane, certificates, no warnings', async () => {
    const r = await smesh('node1', ['status', '-o', 'json']);
    expect(r.code, r.stderr).toBe(0);
    const s = JSON.parse(r.stdout);
    expect(s).toMatchObject({
      node: { name: 'node1', address: topo!.node('node1').ip },
      ready: true,
      components: { bpf: true, listeners: true, certificates: true },
      controlPlane: { connected: true, synced: true, nacks: 0 },
      warnings: [],
    });
    expect(s.bpf.links.map((l: string) => l.split('/').pop())).toEqual(expect.arrayContaining(['connect4', 'sockops', 'getsockopt', 'capture-lookup']));
    expect(s.enrolledPods.map((p: { workload: string }) => p.workload)).toEqual(['team-a/caller']);
    const ids = s.certificates.map((c: { identity: string }) => c.identity).sort();
    expect(ids).toEqual(['spiffe://cluster.local/ns/team-a/sa/caller-sa', 'spiffe://cluster.local/smesh/node/node1']);
    for (const c of s.certificates) expect(c.expiresInSeconds).toBeGreaterThan(3600);
    const table = await smesh('node1', ['status']);
    expect(table.code, table.stderr).toBe(0);
    expect(table.stdout).toMatch(/^Ready: +yes /m);
    expect(table.stdout).toMatch(/^Enrolled pods: +1: team-a\/caller$/m);
  });

  it("config workloads -o json: the agent's workloads, both nodes", async () => {
    const r = await smesh('node1', ['config', 'workloads', '-o', 'json']);
    expect(r.code, r.stderr).toBe(0);
    const ws = JSON.parse(r.stdout) as Array<Record<string, unknown>>;
    expect(ws.map((w) => `${w.namespace}/${w.name}@${w.node}`).sort()).toEqual(['shop/web@node2', 'team-a/caller@node1']);
    expect(ws.find((w) => w.name === 'web')).toMatchObject({ ip: topo!.pod('web').ip, identity: 'spiffe://cluster.local/ns/shop/sa/web-sa', meshed: true });
    const services = await smesh('node2', ['config', 'services']);
    expect(services.stdout).toMatch(new RegExp(`^shop +web +${VIP.web.replace(/\./g, '\\.')} +80→8080/http +1$`, 'm'));
  });

  it('top --once: the caller → web pair with its requests and TCP bytes, as each node reports it', async () => {
    for (let i = 0; i < 3; i++) expect((await topo!.runClient('caller', ['http', '--url', `http://${VIP.web}/`])).ok).toBe(true);
    const echo = await topo!.runClient('caller', ['tcp', '--host', VIP.echo, '--port', '9000', '--send', '0123456789abcdef', '--repeat', '4096']);
    expect(echo.error).toBeUndefined();
    // A connection's bytes are counted when it ends; wait until node1's source reporter has all of them.
    const pairOf = async () => {
      const r = await smesh('node1', ['top', '--once', '-o', 'json']);
      expect(r.code, r.stderr).toBe(0);
      return (JSON.parse(r.stdout) as Array<Record<string, any>>).find((p) => p.reporter === 'source' && p.source === 'team-a/caller' && p.destination === 'shop/web');
    };
    const src = await pollUntil(pairOf, (p) => (p?.requests ?? 0) >= 3 && (p?.closed ?? 0) >= 1, 15_000, 200);
    expect(src).toMatchObject({ requests: 3, opened: 1, closed: 1, active: 0 });
    expect(src!.bytesFromSource).toBeGreaterThanOrEqual(65536);
    expect(src!.bytesToSource).toBeGreaterThanOrEqual(65536);
    // node2 counts the same pair as the destination (its HBONE streams; the HTTP one may stay pooled, so open).
    const dstOf = async () => {
      const r = await smesh('node2', ['top', '--once', '-o', 'json']);
      return (JSON.parse(r.stdout) as Array<Record<string, any>>).find((p) => p.reporter === 'destination' && p.source === 'team-a/caller' && p.destination === 'shop/web');
    };
    const dst = await pollUntil(dstOf, (p) => (p?.requests ?? 0) >= 3 && (p?.closed ?? 0) >= 1, 15_000, 200);
    expect(dst).toMatchObject({ requests: 3 });
    expect(dst!.bytesFromSource).toBeGreaterThanOrEqual(65536);
    expect(dst!.bytesToSource).toBeGreaterThanOrEqual(65536);
    const table = await smesh('node2', ['top', '--once']);
    expect(table.stdout).toMatch(/^destination +team-a\/caller +shop\/web +\d+ +\d+ +3 +6\d\.\dKi +6\d\.\dKi$/m);
  });
});
