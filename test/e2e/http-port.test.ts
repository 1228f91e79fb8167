// End-to-end port protocol over xDS: a Service port named `http-web` (no VirtualService) is proxied per request by the source agent; an unnamed port to the same pod stays L4.
import { describe, it, expect, beforeAll, beforeEach, afterAll } from 'vitest';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createTopology, privilegeProblem, AGENT_CLI, APPS_DIR, NODE_BIN, type Topology, type AgentHandle, type ServiceSpec } from '../helpers/topology';
import { waitExit, lastJsonLine, tail } from '../helpers/proc';
import { parseMetrics, sum } from '../helpers/metrics';

const problem = privilegeProblem();
const TARGET = 8080;
const VIP = { named: '198.19.2.10', plain: '198.19.2.11' } as const;

interface LoadResult {
  statuses: Record<string, number>;
  pods: Record<string, number>;
  count: number;
}

describe.skipIf(problem !== null)(`http-port e2e: protocol from the port name over xDS${problem ? ` (skipped: ${problem})` : ''}`, () => {
  let topo: Topology;
  const agents: AgentHandle[] = [];
  let setupError: Error | null = null;
  beforeEach(() => {
    if (setupError) throw setupError;
  });

  const diag = () => agents.map((a) => `--- agent ${a.node.name} ---\n${tail(a.logs(), 20)}`).join('\n');

  async function load(url: string, count: number): Promise<LoadResult> {
    const proc = topo.spawnInPod('client', NODE_BIN, [path.join(APPS_DIR, 'http-load.js'), '--url', url, '--count', String(count), '--concurrency', '2']);
    const r = await waitExit(proc, 30_000);
    if (r.timedOut) throw new Error(`http-load ${url} timed out\n${tail(proc.outputText())}\n${diag()}`);
    return lastJsonLine<LoadResult>(r.stdout);
  }

  beforeAll(async () => {
    try {
      if (!fs.existsSync(AGENT_CLI)) throw new Error(`${AGENT_CLI} not found: build first`);
      topo = await createTopology({
        nodes: ['node1', 'node2'],
        pods: [
          { name: 'client', node: 'node1' },
          { name: 'web-1', node: 'node2', labels: { app: 'web' } },
        ],
      });
      await topo.spawnInPod('web-1', NODE_BIN, [path.join(APPS_DIR, 'http-server2.js'), '--port', String(TARGET), '--pod', 'web-1']).waitForLine(/"listening"/, 10_000);
      const services: ServiceSpec[] = [
        { name: 'named', vip: VIP.named, ports: [{ name: 'http-web', port: 80, targetPort: TARGET }], selector: { app: 'web' } },
        { name: 'plain', vip: VIP.plain, ports: [{ port: 80, targetPort: TARGET }], selector: { app: 'web' } },
      ];
      const cfgDir = topo.makeTempDir('config');
      topo.writeConfig(cfgDir, { services });
      for (const n of ['node1', 'node2']) {
        const a = topo.startAgent(n, cfgDir); // --standalone: the agent gets its state from the embedded control plane over xDS
        agents.push(a);
        await a.waitReady(60_000);
      }
    } catch (e) {
      setupError = e as Error;
    }
  }, 120_000);

  afterAll(async () => {
    for (const a of agents) await a.stop(5000).catch(() => undefined);
    await topo?.cleanup();
  }, 60_000);

  it('a port named http-web without a VirtualService is proxied per request: istio_requests_total on the source agent', async () => {
    const r = await load(`http://${VIP.named}/`, 20);
    expect(r.statuses, `${JSON.stringify(r)}\n${diag()}`).toEqual({ 200: 20 });
    const samples = parseMetrics(await agents[0]!.metrics());
    const base = { reporter: 'source', source_workload: 'client', destination_service: 'named.default.svc.cluster.local', request_protocol: 'http', response_code: '200' };
    expect(sum(samples, 'istio_requests_total', base), diag()).toBeGreaterThanOrEqual(20);
  }, 60_000);

  it('an unnamed port to the same pod stays per connection (no request metrics for it)', async () => {
    const r = await load(`http://${VIP.plain}/`, 5);
    expect(r.statuses, `${JSON.stringify(r)}\n${diag()}`).toEqual({ 200: 5 });
    const samples = parseMetrics(await agents[0]!.metrics());
    expect(sum(samples, 'istio_requests_total', { reporter: 'source', destination_service: 'plain.default.svc.cluster.local' })).toBe(0);
    expect(sum(samples, 'istio_tcp_connections_opened_total', { reporter: 'source', destination_service: 'plain.default.svc.cluster.local' })).toBeGreaterThanOrEqual(1);
  }, 60_000);
});
