// End-to-end --http-engine: outbound HTTP/1.1 on `http` service ports is served by the native HTTP/1.1 engine (smesh_http_engine_requests_total counts it) — same node to the pod (and a per-request DENY), cross node through the loopback HBONE bridge — with the node:http path's request metrics, and an Upgrade taken back to node:http.
import { describe, it, expect, beforeAll, beforeEach, afterAll } from 'vitest';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { http1Engine } from '../../agent/native/http1';
import { createTopology, privilegeProblem, AGENT_CLI, APPS_DIR, NODE_BIN, type Topology, type AgentHandle, type ServiceSpec } from '../helpers/topology';
import { waitExit, lastJsonLine, tail } from '../helpers/proc';
import { parseMetrics, sum } from '../helpers/metrics';
import { waitUntil } from '../helpers/logs';
import { expectedDataplane } from '../helpers/e2e-agents';

const problem = privilegeProblem() ?? (http1Engine() ? null : 'the addon has no HTTP/1.1 engine (make native)');
const TARGET = 8080;
const VIP = { local: '198.19.3.10', remote: '198.19.3.11' } as const;

interface LoadResult {
  statuses: Record<string, number>;
  pods: Record<string, number>;
  count: number;
}

describe.skipIf(problem !== null)(`http-engine e2e: --http-engine serves outbound HTTP/1.1${problem ? ` (skipped: ${problem})` : ''}`, () => {
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

  /** The request metrics lines of an agent, for failure messages. */
  async function requestLines(agent: AgentHandle): Promise<string> {
    return (await agent.metrics())
      .split('\n')
      .filter((l) => l.startsWith('istio_requests_total'))
      .join('\n');
  }

  async function engineServed(agent: AgentHandle, outcome: string): Promise<number> {
    return sum(parseMetrics(await agent.metrics()), 'smesh_http_engine_requests_total', { outcome });
  }

  beforeAll(async () => {
    try {
      if (!fs.existsSync(AGENT_CLI)) throw new Error(`${AGENT_CLI} not found: build first`);
      topo = await createTopology({
        nodes: ['node1', 'node2'],
        pods: [
          { name: 'client', node: 'node1' },
          { name: 'web-1', node: 'node1', labels: { app: 'web-local' } },
          { name: 'web-2', node: 'node2', labels: { app: 'web-remote' } },
        ],
      });
      await topo.spawnInPod('web-1', NODE_BIN, [path.join(APPS_DIR, 'upgrade-echo.js'), '--port', String(TARGET), '--pod', 'web-1']).waitForLine(/"listening"/, 10_000);
      await topo.spawnInPod('web-2', NODE_BIN, [path.join(APPS_DIR, 'http-server2.js'), '--port', String(TARGET), '--pod', 'web-2']).waitForLine(/"listening"/, 10_000);
      const services: ServiceSpec[] = [
        { name: 'local', vip: VIP.local, ports: [{ name: 'http-web', port: 80, targetPort: TARGET }], selector: { app: 'web-local' } },
        { name: 'remote', vip: VIP.remote, ports: [{ name: 'http-web', port: 80, targetPort: TARGET }], selector: { app: 'web-remote' } },
      ];
      const cfgDir = topo.makeTempDir('config');
      // Request-level DENY on the same-node pod: decided by the source agent per request (no inbound sees same-node traffic).
      const denyAdmin = {
        apiVersion: 'security.istio.io/v1',
        kind: 'AuthorizationPolicy',
        metadata: { name: 'deny-admin', namespace: 'default' },
        spec: { selector: { matchLabels: { app: 'web-local' } }, action: 'DENY', rules: [{ to: [{ operation: { paths: ['/admin*'] } }] }] },
      };
      topo.writeConfig(cfgDir, { services, extraDocs: [denyAdmin] });
      for (const n of ['node1', 'node2']) {
        const a = topo.startAgent(n, cfgDir, ['--http-engine']);
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

  it('same node: the engine forwards to the pod; istio_requests_total on both reporters as node:http records them', async () => {
    const before = await engineServed(agents[0]!, 'forwarded');
    const r = await load(`http://${VIP.local}/hello`, 20);
    expect(r.statuses, `${JSON.stringify(r)}\n${diag()}`).toEqual({ 200: 20 });
    expect((await engineServed(agents[0]!, 'forwarded')) - before, diag()).toBeGreaterThanOrEqual(20);
    const samples = parseMetrics(await agents[0]!.metrics());
    const base = { source_workload: 'client', destination_workload: 'web-local', destination_service: 'local.default.svc.cluster.local', request_protocol: 'http', response_code: '200' };
    expect(sum(samples, 'istio_requests_total', { ...base, reporter: 'source' }), await requestLines(agents[0]!)).toBeGreaterThanOrEqual(20);
    expect(sum(samples, 'istio_requests_total', { ...base, reporter: 'destination' }), diag()).toBeGreaterThanOrEqual(20);
    expect(sum(samples, 'istio_response_bytes_sum', { ...base, reporter: 'source' }), diag()).toBeGreaterThan(0);
  }, 60_000);

  it('same node, L7 DENY: the engine answers 403 from the decision (UAEX), and the kept-alive connection goes on', async () => {
    const before = await engineServed(agents[0]!, 'denied');
    const r = await load(`http://${VIP.local}/admin/x`, 6);
    expect(r.statuses, `${JSON.stringify(r)}\n${diag()}`).toEqual({ 403: 6 });
    expect((await engineServed(agents[0]!, 'denied')) - before, diag()).toBe(6);
    const samples = parseMetrics(await agents[0]!.metrics());
    expect(
      sum(samples, 'istio_requests_total', { reporter: 'source', destination_service: 'local.default.svc.cluster.local', response_code: '403', response_flags: 'UAEX' }),
      await requestLines(agents[0]!),
    ).toBe(6);
    const ok = await load(`http://${VIP.local}/fine`, 4);
    expect(ok.statuses).toEqual({ 200: 4 });
  }, 60_000);

  it('cross node: the engine hands its upstream connections to the HBONE engine as socketpairs (no loopback hop, no byte in JS); the destination agent reports the requests', async () => {
    const before = await engineServed(agents[0]!, 'forwarded');
    const bridgeBefore = parseMetrics(await agents[0]!.metrics());
    const r = await load(`http://${VIP.remote}/`, 20);
    expect(r.statuses, `${JSON.stringify(r)}\n${diag()}`).toEqual({ 200: 20 });
    expect(r.pods).toEqual({ 'web-2': 20 });
    expect((await engineServed(agents[0]!, 'forwarded')) - before, diag()).toBeGreaterThanOrEqual(20);
    const src = parseMetrics(await agents[0]!.metrics());
    expect(sum(src, 'istio_requests_total', { reporter: 'source', destination_service: 'remote.default.svc.cluster.local', response_code: '200' }), diag()).toBeGreaterThanOrEqual(20);
    const dst = parseMetrics(await agents[1]!.metrics());
    expect(sum(dst, 'istio_requests_total', { reporter: 'destination', destination_workload: 'web-remote', response_code: '200' }), await requestLines(agents[1]!)).toBeGreaterThanOrEqual(20);
    // With the native data plane the engine's upstream connections are attached to HBONE engine streams: their bytes
    // are counted from the engine's stream counters (relay="native") and none is relayed on the agent's thread
    // (relay="js"); the JS data plane (SMESH_DATAPLANE=js) relays loopback connections in JavaScript instead.
    const relayed = expectedDataplane();
    const other = relayed === 'native' ? 'js' : 'native';
    const bridgeLines = (await agents[0]!.metrics())
      .split('\n')
      .filter((l) => l.startsWith('smesh_http_engine_bridge'))
      .join('\n');
    const grown = (now: ReturnType<typeof parseMetrics>, direction: string) =>
      sum(now, 'smesh_http_engine_bridge_bytes_total', { relay: relayed, direction }) - sum(bridgeBefore, 'smesh_http_engine_bridge_bytes_total', { relay: relayed, direction });
    expect(sum(src, 'smesh_http_engine_bridge_connections_total', { relay: relayed }), bridgeLines).toBeGreaterThanOrEqual(1);
    // Native: the HTTP engine's upstream connections are socketpairs handed to the HBONE engine, no loopback TCP hop.
    const via = relayed === 'native' ? 'socketpair' : 'loopback';
    expect(sum(src, 'smesh_http_engine_bridge_connections_total', { via }), bridgeLines).toBeGreaterThanOrEqual(1);
    expect(sum(src, 'smesh_http_engine_bridge_connections_total', { via: via === 'socketpair' ? 'loopback' : 'socketpair' }), bridgeLines).toBe(0);
    expect(sum(src, 'smesh_http_engine_bridge_connections_total', { relay: other }), bridgeLines).toBe(0);
    expect(sum(src, 'smesh_http_engine_bridge_bytes_total', { relay: other }), bridgeLines).toBe(0);
    // At least 20 request lines ("GET / HTTP/1.1\r\n") out and 20 status lines ("HTTP/1.1 200 OK\r\n") back; the
    // pooled upstream connections stay open, the engine's counts are copied at least every second.
    await waitUntil(
      async () => {
        const now = parseMetrics(await agents[0]!.metrics());
        return grown(now, 'to_tunnel') >= 20 * 16 && grown(now, 'from_tunnel') >= 20 * 17;
      },
      10_000,
      `bridge bytes (relay=${relayed})\n${bridgeLines}`,
    );
  }, 60_000);

  it('an Upgrade request is taken over by node:http: the 101 tunnel echoes and is counted once as code 101', async () => {
    const before = await engineServed(agents[0]!, 'takeover');
    const proc = topo.spawnInPod('client', NODE_BIN, [path.join(APPS_DIR, 'upgrade-client.js'), '--host', VIP.local, '--port', '80', '--messages', '3']);
    const run = await waitExit(proc, 30_000);
    const out = lastJsonLine<{ status: number; pod?: string; echoed?: number; error?: string }>(run.stdout);
    expect(out.status, `${JSON.stringify(out)}\n${diag()}`).toBe(101);
    expect(out.error ?? null).toBeNull();
    expect((await engineServed(agents[0]!, 'takeover')) - before, diag()).toBe(1);
    const samples = parseMetrics(await agents[0]!.metrics());
    expect(sum(samples, 'istio_requests_total', { reporter: 'source', destination_service: 'local.default.svc.cluster.local', response_code: '101' }), diag()).toBeGreaterThanOrEqual(1);
  }, 60_000);

  // Last: it stops node2's agent.
  it('cross node, no tunnel (the destination agent is gone): the bridge ends the engine upstream connection, the engine answers 502/503 UC', async () => {
    await agents[1]!.stop(5000);
    const r = await load(`http://${VIP.remote}/`, 2);
    expect(r.count, JSON.stringify(r)).toBe(2);
    expect(
      Object.keys(r.statuses).every((code) => code === '502' || code === '503'),
      `${JSON.stringify(r)}\n${diag()}`,
    ).toBe(true);
    const src = parseMetrics(await agents[0]!.metrics());
    const failed = ['502', '503'].reduce(
      (n, code) => n + sum(src, 'istio_requests_total', { reporter: 'source', destination_service: 'remote.default.svc.cluster.local', response_code: code, response_flags: 'UC' }),
      0,
    );
    expect(failed, await requestLines(agents[0]!)).toBe(2);
  }, 60_000);
});
