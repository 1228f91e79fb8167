// End-to-end HTTP extras on a two-node namespaced topology: HTTP/1.1 Upgrade (WebSocket-style) to same-node and HBONE endpoints with half-close and 101 metrics; invalid HTTP/2 frames from a client answered, counted and isolated.
import { describe, it, expect, beforeAll, beforeEach, afterAll } from 'vitest';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createTopology, privilegeProblem, AGENT_CLI, APPS_DIR, NODE_BIN, type Topology, type AgentHandle, type ServiceSpec } from '../helpers/topology';
import { waitExit, lastJsonLine, tail } from '../helpers/proc';
import { parseMetrics, sum } from '../helpers/metrics';

const problem = privilegeProblem();
const TARGET = 8080;
const VIP = { ws: '198.19.3.10', grpc: '198.19.3.11' } as const;
const GRPC_TARGET = 9090;

interface UpgradeResult {
  status: number;
  pod: string;
  echoed: number;
  last: string;
  error: string | null;
}

const ns = 'default';

describe.skipIf(problem !== null)(`http-extra e2e: HTTP/1.1 Upgrade and HTTP/2 bad input through the mesh${problem ? ` (skipped: ${problem})` : ''}`, () => {
  let topo: Topology;
  const agents: AgentHandle[] = [];
  let setupError: Error | null = null;
  beforeEach(() => {
    if (setupError) throw setupError;
  });

  const diag = () => agents.map((a) => `--- agent ${a.node.name} ---\n${tail(a.logs(), 20)}`).join('\n');

  async function upgrade(pathName: string, messages = 5): Promise<UpgradeResult> {
    const proc = topo.spawnInPod('client', NODE_BIN, [path.join(APPS_DIR, 'upgrade-client.js'), '--host', VIP.ws, '--port', '80', '--path', pathName, '--messages', String(messages)]);
    const r = await waitExit(proc, 20_000);
    if (r.timedOut) throw new Error(`upgrade-client ${pathName} timed out\n${tail(proc.outputText())}\n${diag()}`);
    return lastJsonLine<UpgradeResult>(r.stdout);
  }

  beforeAll(async () => {
    try {
      if (!fs.existsSync(AGENT_CLI)) throw new Error(`${AGENT_CLI} not found: build first`);
      topo = await createTopology({
        nodes: ['node1', 'node2'],
        pods: [
          { name: 'client', node: 'node1' },
          { name: 'ws-1', node: 'node1', labels: { app: 'ws' } },
          { name: 'ws-2', node: 'node2', labels: { app: 'ws' } },
          { name: 'grpc-1', node: 'node2', labels: { app: 'grpc' } },
        ],
      });
      await Promise.all([
        ...['ws-1', 'ws-2'].map((pod) => topo.spawnInPod(pod, NODE_BIN, [path.join(APPS_DIR, 'upgrade-echo.js'), '--port', String(TARGET), '--pod', pod]).waitForLine(/"listening"/, 10_000)),
        topo.spawnInPod('grpc-1', NODE_BIN, [path.join(APPS_DIR, 'grpc-app.js'), 'server', '--port', String(GRPC_TARGET), '--pod', 'grpc-1']).waitForLine(/"listening"/, 10_000),
      ]);
      const services: ServiceSpec[] = [
        { name: 'ws', vip: VIP.ws, ports: [{ name: 'http', port: 80, targetPort: TARGET }], selector: { app: 'ws' } },
        { name: 'grpc', vip: VIP.grpc, ports: [{ name: 'grpc', port: 80, targetPort: GRPC_TARGET }], selector: { app: 'grpc' } },
      ];
      const extraDocs = [
        { apiVersion: 'networking.istio.io/v1', kind: 'DestinationRule', metadata: { name: 'ws', namespace: ns }, spec: { host: 'ws', trafficPolicy: { loadBalancer: { simple: 'ROUND_ROBIN' } } } },
      ];
      const cfgDir = topo.makeTempDir('config');
      topo.writeConfig(cfgDir, { services, extraDocs });
      for (const n of ['node1', 'node2']) {
        const a = topo.startAgent(n, cfgDir);
        agents.push(a);
        await a.waitReady(60_000);
      }
    } catch (e) {
      setupError = e as Error;
    }
  }, 180_000);

  afterAll(async () => {
    for (const a of agents) await a.stop(5000).catch(() => undefined);
    await topo?.cleanup();
  }, 60_000);

  it('upgrades to the same-node and the HBONE endpoint: bytes echo both ways, the half-close passes, each tunnel counts once as 101', async () => {
    const results: UpgradeResult[] = [];
    for (let i = 0; i < 4; i++) results.push(await upgrade(`/ws/${i}`));
    for (const r of results) {
      expect(r, `${JSON.stringify(results)}\n${diag()}`).toMatchObject({ status: 101, echoed: 5, error: null });
      expect(r.last).toBe(`bye ${r.pod}\n`);
    }
    expect(new Set(results.map((r) => r.pod))).toEqual(new Set(['ws-1', 'ws-2']));
    const samples = parseMetrics(await agents[0]!.metrics());
    const base = { reporter: 'source', source_workload: 'client', destination_service: 'ws.default.svc.cluster.local', request_protocol: 'http', response_code: '101' };
    expect(sum(samples, 'istio_requests_total', base), diag()).toBe(4);
    expect(sum(samples, 'istio_requests_total', { ...base, connection_security_policy: 'mutual_tls' })).toBe(2);
  }, 60_000);

  it('a refused upgrade is relayed as the app answered', async () => {
    const r = await upgrade('/nope');
    expect(r, diag()).toMatchObject({ status: 403, error: null });
    expect(r.last).toBe('no upgrade on /nope\n');
    expect(agents[0]!.proc.exitInfo()).toBeNull();
  }, 30_000);

  it('invalid HTTP/2 frames from a client: GOAWAY with the matching code, that connection closed, counted; concurrent gRPC calls all succeed', async () => {
    const grpc = topo.spawnInPod('client', NODE_BIN, [path.join(APPS_DIR, 'grpc-app.js'), 'client', '--target', `${VIP.grpc}:80`, '--calls', '40', '--stream', '20']);
    const cases = [
      { kind: 'settings-size', code: 6, reason: 'h2_goaway_frame_size_error' },
      { kind: 'data-stream0', code: 1, reason: 'h2_goaway_protocol_error' },
      { kind: 'bad-hpack', code: 9, reason: 'h2_goaway_compression_error' },
    ];
    for (const c of cases) {
      const proc = topo.spawnInPod('client', NODE_BIN, [path.join(APPS_DIR, 'h2-bad-client.js'), '--host', VIP.grpc, '--port', '80', '--kind', c.kind]);
      const run = await waitExit(proc, 15_000);
      const r = lastJsonLine<{ goaway: number | null; frames: number[]; closedByServer: boolean }>(run.stdout);
      expect(r, `${c.kind}: ${tail(proc.outputText())}\n${diag()}`).toMatchObject({ goaway: c.code, closedByServer: true });
    }
    const g = await waitExit(grpc, 30_000);
    const res = lastJsonLine<{ unary: { ok: number; errors: unknown[] }; stream: { messages: number; error: unknown } }>(g.stdout);
    expect(res.unary, `${tail(grpc.outputText())}\n${diag()}`).toEqual({ ok: 40, errors: [] });
    expect(res.stream).toEqual({ messages: 20, error: null });
    const samples = parseMetrics(await agents[0]!.metrics());
    for (const c of cases) expect(sum(samples, 'smesh_http_protocol_errors_total', { side: 'client', reason: c.reason }), c.reason).toBe(1);
    expect(agents[0]!.proc.exitInfo()).toBeNull();
  }, 60_000);
});
