// End-to-end HTTP traffic management on a two-node namespaced topology: weighted canary split, retries with outlier ejection, circuit breaking, consistent hash, timeouts and faults, HTTP metrics, malformed HTTP.
import { describe, it, expect, beforeAll, beforeEach, afterAll } from 'vitest';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createTopology, privilegeProblem, AGENT_CLI, APPS_DIR, NODE_BIN, type Topology, type AgentHandle, type ServiceSpec } from '../helpers/topology';
import { waitExit, lastJsonLine, tail } from '../helpers/proc';
import { parseMetrics, sum } from '../helpers/metrics';

const problem = privilegeProblem();
const TARGET = 8080;
const VIP = { web: '198.19.1.10', pool: '198.19.1.11', slow: '198.19.1.12', sticky: '198.19.1.13', grpc: '198.19.1.14' } as const;
const GRPC_TARGET = 9090;

interface LoadResult {
  statuses: Record<string, number>;
  pods: Record<string, number>;
  overload: Record<string, number>;
  errors: Record<string, number>;
  durationsMs: number[];
  count: number;
}

const ns = 'default';
const vs = (name: string, host: string, http: unknown[]) => ({ apiVersion: 'networking.istio.io/v1', kind: 'VirtualService', metadata: { name, namespace: ns }, spec: { hosts: [host], http } });
const dr = (name: string, host: string, spec: Record<string, unknown>) => ({
  apiVersion: 'networking.istio.io/v1',
  kind: 'DestinationRule',
  metadata: { name, namespace: ns },
  spec: { host, ...spec },
});

describe.skipIf(problem !== null)(`traffic e2e: HTTP routing, resilience and telemetry${problem ? ` (skipped: ${problem})` : ''}`, () => {
  let topo: Topology;
  const agents: AgentHandle[] = [];
  let setupError: Error | null = null;
  beforeEach(() => {
    if (setupError) throw setupError;
  });

  const diag = () => agents.map((a) => `--- agent ${a.node.name} ---\n${tail(a.logs(), 20)}`).join('\n');

  async function startServer(pod: string, args: string[]): Promise<void> {
    const proc = topo.spawnInPod(pod, NODE_BIN, [path.join(APPS_DIR, 'http-server2.js'), '--port', String(TARGET), '--pod', pod, ...args]);
    await proc.waitForLine(/"listening"/, 10_000);
  }

  async function load(url: string, count: number, concurrency: number, extra: string[] = [], timeoutMs = 60_000): Promise<LoadResult> {
    const proc = topo.spawnInPod('client', NODE_BIN, [path.join(APPS_DIR, 'http-load.js'), '--url', url, '--count', String(count), '--concurrency', String(concurrency), ...extra]);
    const r = await waitExit(proc, timeoutMs);
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
          { name: 'web-v1', node: 'node1', labels: { app: 'web', version: 'v1' } },
          { name: 'web-v2', node: 'node2', labels: { app: 'web', version: 'v2' } },
          { name: 'pool-good', node: 'node1', labels: { app: 'pool' } },
          { name: 'pool-good2', node: 'node2', labels: { app: 'pool' } },
          { name: 'pool-bad', node: 'node2', labels: { app: 'pool' } },
          { name: 'slow', node: 'node2', labels: { app: 'slow' } },
          { name: 'grpc-a', node: 'node1', labels: { app: 'grpc' } },
          { name: 'grpc-b', node: 'node2', labels: { app: 'grpc' } },
        ],
      });
      await Promise.all([
        startServer('web-v1', []),
        startServer('web-v2', []),
        startServer('pool-good', []),
        startServer('pool-good2', []),
        startServer('pool-bad', ['--fail', '503']),
        startServer('slow', ['--delay', '500']),
        ...['grpc-a', 'grpc-b'].map((pod) =>
          topo.spawnInPod(pod, NODE_BIN, [path.join(APPS_DIR, 'grpc-app.js'), 'server', '--port', String(GRPC_TARGET), '--pod', pod]).waitForLine(/"listening"/, 10_000),
        ),
      ]);
      const http = (port = 80) => [{ name: 'http', port, targetPort: TARGET }];
      const services: ServiceSpec[] = [
        { name: 'web', vip: VIP.web, ports: http(), selector: { app: 'web' } },
        { name: 'pool', vip: VIP.pool, ports: http(), selector: { app: 'pool' } },
        { name: 'slow', vip: VIP.slow, ports: http(), selector: { app: 'slow' } },
        { name: 'sticky', vip: VIP.sticky, ports: http(), selector: { app: 'web' } },
        { name: 'grpc', vip: VIP.grpc, ports: [{ name: 'grpc', port: 80, targetPort: GRPC_TARGET }], selector: { app: 'grpc' } },
      ];
      const extraDocs = [
        dr('web', 'web', {
          subsets: [
            { name: 'v1', labels: { version: 'v1' } },
            { name: 'v2', labels: { version: 'v2' } },
          ],
        }),
        vs('web', 'web', [
          {
            route: [
              { destination: { host: 'web', subset: 'v1' }, weight: 90 },
              { destination: { host: 'web', subset: 'v2' }, weight: 10 },
            ],
          },
        ]),
        dr('pool', 'pool', {
          trafficPolicy: { loadBalancer: { simple: 'ROUND_ROBIN' }, outlierDetection: { consecutive5xxErrors: 2, interval: '1s', baseEjectionTime: '60s', maxEjectionPercent: 50 } },
        }),
        vs('pool', 'pool', [{ route: [{ destination: { host: 'pool' } }], retries: { attempts: 3, retryOn: '5xx' } }]),
        dr('slow', 'slow', { trafficPolicy: { connectionPool: { http: { http2MaxRequests: 4 } } } }),
        vs('slow', 'slow', [
          { match: [{ uri: { prefix: '/abort' } }], route: [{ destination: { host: 'slow' } }], fault: { abort: { httpStatus: 418, percentage: { value: 100 } } } },
          { match: [{ uri: { prefix: '/timeout' } }], route: [{ destination: { host: 'slow' } }], timeout: '200ms' },
          { match: [{ uri: { prefix: '/delay' } }], route: [{ destination: { host: 'slow' } }], fault: { delay: { fixedDelay: '300ms', percentage: { value: 100 } } } },
          { route: [{ destination: { host: 'slow' } }] },
        ]),
        dr('sticky', 'sticky', { trafficPolicy: { loadBalancer: { consistentHash: { httpHeaderName: 'x-user' } } } }),
        vs('sticky', 'sticky', [{ route: [{ destination: { host: 'sticky' } }] }]),
        // The port name `grpc` already declares the port (smesh_app_protocol over xDS); the http route exercises routing too; the client's preface makes it HTTP/2.
        vs('grpc', 'grpc', [{ route: [{ destination: { host: 'grpc' } }] }]),
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

  it('splits web 90/10 between subsets v1 (same node) and v2 (over HBONE) within ±3 % over 2,000 requests', async () => {
    const r = await load(`http://${VIP.web}/split`, 2000, 20);
    expect(r.statuses, `${JSON.stringify(r)}\n${diag()}`).toEqual({ 200: 2000 });
    const v2 = (r.pods['web-v2'] ?? 0) / 2000;
    expect(Math.abs(v2 - 0.1), JSON.stringify(r.pods)).toBeLessThanOrEqual(0.03);
    expect((r.pods['web-v1'] ?? 0) + (r.pods['web-v2'] ?? 0)).toBe(2000);
  }, 90_000);

  it('exports istio_requests_total and istio_request_duration_milliseconds with response_code, source and destination labels', async () => {
    const samples = parseMetrics(await agents[0]!.metrics());
    const base = { reporter: 'source', source_workload: 'client', destination_service: 'web.default.svc.cluster.local', request_protocol: 'http', response_code: '200' };
    // Both pods carry app=web, so destination_workload is "web" for both; the version label tells them apart.
    const v1 = sum(samples, 'istio_requests_total', {
      ...base,
      destination_workload: 'web',
      destination_version: 'v1',
      destination_principal: 'spiffe://cluster.local/ns/default/sa/web-v1-sa',
      connection_security_policy: 'none',
    });
    const v2 = sum(samples, 'istio_requests_total', {
      ...base,
      destination_workload: 'web',
      destination_version: 'v2',
      destination_principal: 'spiffe://cluster.local/ns/default/sa/web-v2-sa',
      connection_security_policy: 'mutual_tls',
    });
    expect(v1 + v2, diag()).toBeGreaterThanOrEqual(2000);
    expect(v2).toBeGreaterThan(0);
    expect(sum(samples, 'istio_request_duration_milliseconds_count', base)).toBeGreaterThanOrEqual(2000);
  });

  it('with retries on 5xx the client sees no errors, and the failing endpoint is ejected so traffic moves to the healthy ones', async () => {
    const first = await load(`http://${VIP.pool}/`, 60, 1);
    expect(first.statuses, `${JSON.stringify(first)}\n${diag()}`).toEqual({ 200: 60 });
    expect(first.pods['pool-bad'] ?? 0).toBe(0);
    const samples = parseMetrics(await agents[0]!.metrics());
    expect(sum(samples, 'smesh_outlier_ejections_total', { destination_service: 'pool.default.svc.cluster.local' })).toBeGreaterThanOrEqual(1);
    const second = await load(`http://${VIP.pool}/`, 40, 1);
    expect(second.statuses).toEqual({ 200: 40 });
    expect(new Set(Object.keys(second.pods))).toEqual(new Set(['pool-good', 'pool-good2']));
    // Ejected, so no longer tried: round robin over the two healthy endpoints is exactly even.
    expect(second.pods['pool-good']).toBe(20);
  }, 60_000);

  it('trips the circuit breaker at the configured concurrency (http2MaxRequests 4) with 503 and x-smesh-overload', async () => {
    const r = await load(`http://${VIP.slow}/cb`, 10, 10);
    expect(r.statuses['200'], `${JSON.stringify(r)}\n${diag()}`).toBe(4);
    expect(r.statuses['503']).toBe(6);
    expect(r.overload).toEqual({ max_requests: 6 });
    const trips = sum(parseMetrics(await agents[0]!.metrics()), 'smesh_circuit_breaker_trips_total', { reason: 'max_requests' });
    expect(trips).toBeGreaterThanOrEqual(6);
  }, 30_000);

  it('consistent hash keeps each key on one endpoint while the endpoint set is stable', async () => {
    const seen = new Set<string>();
    for (const user of ['alice', 'bob', 'carol', 'dave', 'erin', 'frank', 'grace', 'heidi', 'ivan', 'judy']) {
      const r = await load(`http://${VIP.sticky}/`, 10, 2, ['--header', `x-user: ${user}`]);
      expect(r.statuses, JSON.stringify(r)).toEqual({ 200: 10 });
      expect(Object.keys(r.pods), `${user}: ${JSON.stringify(r.pods)}`).toHaveLength(1);
      seen.add(Object.keys(r.pods)[0]!);
    }
    expect(seen.size, 'ten keys all hashed to one endpoint').toBe(2);
  }, 60_000);

  it('fires request timeouts and injected faults as configured', async () => {
    const abort = await load(`http://${VIP.slow}/abort`, 5, 1);
    expect(abort.statuses, JSON.stringify(abort)).toEqual({ 418: 5 });
    const timeout = await load(`http://${VIP.slow}/timeout`, 3, 1);
    expect(timeout.statuses, JSON.stringify(timeout)).toEqual({ 504: 3 });
    for (const ms of timeout.durationsMs) expect(ms).toBeLessThan(450);
    const delay = await load(`http://${VIP.slow}/delay`, 2, 1);
    expect(delay.statuses).toEqual({ 200: 2 });
    for (const ms of delay.durationsMs) expect(ms).toBeGreaterThanOrEqual(780); // 300 ms injected + 500 ms server
  }, 30_000);

  it('gRPC unary and server-streaming calls pass through the mesh (same node and HBONE) with grpc metrics', async () => {
    const proc = topo.spawnInPod('client', NODE_BIN, [path.join(APPS_DIR, 'grpc-app.js'), 'client', '--target', `${VIP.grpc}:80`, '--calls', '20', '--stream', '25']);
    const run = await waitExit(proc, 30_000);
    const r = lastJsonLine<{ unary: { ok: number; errors: unknown[] }; stream: { messages: number; error: unknown }; fail: { code: number } | null; pods: Record<string, number> }>(run.stdout);
    expect(r.unary, `${JSON.stringify(r)}\n${tail(proc.outputText())}\n${diag()}`).toEqual({ ok: 20, errors: [] });
    expect(new Set(Object.keys(r.pods))).toEqual(new Set(['grpc-a', 'grpc-b']));
    expect(r.stream).toEqual({ messages: 25, error: null });
    expect(r.fail?.code).toBe(5); // NOT_FOUND, end to end
    const samples = parseMetrics(await agents[0]!.metrics());
    const base = { reporter: 'source', source_workload: 'client', destination_service: 'grpc.default.svc.cluster.local', request_protocol: 'grpc', response_code: '200' };
    expect(sum(samples, 'istio_requests_total', { ...base, grpc_response_status: '0' })).toBe(21);
    expect(sum(samples, 'istio_requests_total', { ...base, grpc_response_status: '5' })).toBe(1);
    expect(sum(samples, 'istio_requests_total', { ...base, grpc_response_status: '0', connection_security_policy: 'mutual_tls' })).toBeGreaterThan(0);
    // Calls that stayed on this node are also reported by this agent as the destination.
    expect(sum(samples, 'istio_requests_total', { ...base, reporter: 'destination', grpc_response_status: '0' })).toBeGreaterThan(0);
  }, 60_000);

  it('answers malformed HTTP with 400 / 431, counts it, and leaves other connections alone', async () => {
    const good = load(`http://${VIP.web}/during-bad`, 200, 4);
    const bad1 = await topo.runClient('client', ['garbage', '--host', VIP.web, '--port', '80', '--data', 'NOT HTTP AT ALL\\r\\n\\r\\n'], 20_000);
    expect(bad1.receivedHead, JSON.stringify(bad1)).toMatch(/^HTTP\/1\.1 400/);
    const bad2 = await topo.runClient('client', ['garbage', '--host', VIP.web, '--port', '80', '--data', `GET / HTTP/1.1\\r\\nHost: web\\r\\nX-Big: ${'a'.repeat(20_000)}\\r\\n\\r\\n`], 20_000);
    expect(bad2.receivedHead, JSON.stringify(bad2).slice(0, 400)).toMatch(/^HTTP\/1\.1 431/);
    const g = await good;
    expect(g.statuses).toEqual({ 200: 200 });
    const errs = parseMetrics(await agents[0]!.metrics());
    expect(sum(errs, 'smesh_http_protocol_errors_total', { side: 'client' })).toBeGreaterThanOrEqual(2);
    expect(agents[0]!.proc.exitInfo()).toBeNull();
  }, 60_000);
});
