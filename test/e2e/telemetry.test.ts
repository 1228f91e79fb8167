// Destination-side telemetry end to end: every HTTP port reported by reporter="destination" (no policy needed), the dialled service named alike by both reporters (baggage) when one pod port sits behind two services, same-node traffic counted by both reporters, request/response sizes.
import { describe, it, expect, beforeAll, beforeEach, afterAll } from 'vitest';
import * as fs from 'node:fs';
import { startAgentsInOrder, stopAgentsKeepingLogs } from '../helpers/e2e-agents';
import { createTopology, privilegeProblem, AGENT_CLI, type Topology, type AgentHandle, type ServiceSpec } from '../helpers/topology';
import { parseMetrics, sum } from '../helpers/metrics';
import { pollUntil } from '../helpers/logs';

const problem = privilegeProblem();
const TARGET = 8080;
const TCP = 9000;
const VIP = { web: '198.19.11.10', alias: '198.19.11.11', local: '198.19.11.12', echo: '198.19.11.13', deadLocal: '198.19.11.14', deadRemote: '198.19.11.15' } as const;
/** A service port whose pods have nothing listening: every connection fails at the pod. */
const DEAD = 9100;
const HOST = (name: string) => `${name}.shop.svc.cluster.local`;

describe.skipIf(problem !== null)(`telemetry e2e: both reporters${problem ? ` (skipped: ${problem})` : ''}`, () => {
  let topo: Topology | undefined;
  const agents: AgentHandle[] = [];
  let setupError: Error | null = null;
  const services: ServiceSpec[] = [
    { name: 'web', namespace: 'shop', vip: VIP.web, ports: [{ name: 'http', port: 80, targetPort: TARGET }], selector: { app: 'web' } },
    // The same pod port behind a second service: the destination must name the one the client dialled.
    { name: 'web-alias', namespace: 'shop', vip: VIP.alias, ports: [{ name: 'http', port: 80, targetPort: TARGET }], selector: { app: 'web' } },
    { name: 'web-local', namespace: 'shop', vip: VIP.local, ports: [{ name: 'http', port: 80, targetPort: TARGET }], selector: { app: 'web-local' } },
    { name: 'echo', namespace: 'shop', vip: VIP.echo, ports: [{ name: 'tcp', port: TCP, targetPort: TCP }], selector: { app: 'web-local' } },
    { name: 'dead-local', namespace: 'shop', vip: VIP.deadLocal, ports: [{ name: 'tcp', port: DEAD, targetPort: DEAD }], selector: { app: 'web-local' } },
    { name: 'dead-remote', namespace: 'shop', vip: VIP.deadRemote, ports: [{ name: 'tcp', port: DEAD, targetPort: DEAD }], selector: { app: 'web' } },
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
          { name: 'web-local', node: 'node1', namespace: 'shop' },
          { name: 'web', node: 'node2', namespace: 'shop' },
        ],
      });
      await Promise.all([
        topo.startApp('web', 'http-server', ['--port', String(TARGET), '--pod', 'web']),
        topo.startApp('web-local', 'http-server', ['--port', String(TARGET), '--pod', 'web-local']),
        topo.startApp('web-local', 'echo-server', ['--port', String(TCP)]),
      ]);
      const cfgDir = topo.makeTempDir('config');
      topo.writeConfig(cfgDir, { services });
      await startAgentsInOrder(topo, ['node1', 'node2'], cfgDir, agents, ['--access-log-requests']);
    } catch (e) {
      setupError = e as Error;
    }
  }, 180_000);

  afterAll(async () => {
    await stopAgentsKeepingLogs(agents, 'telemetry');
    await topo?.cleanup();
  }, 60_000);

  /** Polls an agent's metrics until `pred` holds (counters of finished requests land as the responses end). */
  async function metricsUntil(agent: AgentHandle, pred: (text: string) => boolean): Promise<ReturnType<typeof parseMetrics>> {
    return parseMetrics(await pollUntil(() => agent.metrics(), pred, 10_000));
  }

  it('across nodes, an HTTP port without any policy is reported by both reporters, naming the service the client dialled (two services, one pod port)', async () => {
    for (let i = 0; i < 3; i++) expect((await topo!.runClient('caller', ['http', '--url', `http://${VIP.web}/x`], 8000)).status).toBe(200);
    for (let i = 0; i < 2; i++) expect((await topo!.runClient('caller', ['http', '--url', `http://${VIP.alias}/y`], 8000)).status).toBe(200);
    const dest = { reporter: 'destination', destination_workload: 'web', response_code: '200' };
    const src = { reporter: 'source', destination_workload: 'web', response_code: '200' };
    const d = await metricsUntil(agents[1]!, (t) => sum(parseMetrics(t), 'istio_requests_total', dest) >= 5);
    const s = await metricsUntil(agents[0]!, (t) => sum(parseMetrics(t), 'istio_requests_total', src) >= 5);
    expect(sum(d, 'istio_requests_total', { ...dest, destination_service: HOST('web') })).toBe(3);
    expect(sum(d, 'istio_requests_total', { ...dest, destination_service: HOST('web-alias') })).toBe(2);
    expect(sum(s, 'istio_requests_total', { ...src, destination_service: HOST('web') })).toBe(3);
    expect(sum(s, 'istio_requests_total', { ...src, destination_service: HOST('web-alias') })).toBe(2);
    // The destination knows the calling workload and its identity (mutual TLS).
    expect(sum(d, 'istio_requests_total', { ...dest, source_workload: 'caller', source_principal: 'spiffe://cluster.local/ns/team-a/sa/caller-sa', connection_security_policy: 'mutual_tls' })).toBe(5);
    // Sizes: every request has a response body (the app's JSON), so all 5 land above the 1-byte bucket.
    expect(sum(d, 'istio_response_bytes_count', dest)).toBe(5);
    expect(sum(d, 'istio_response_bytes_bucket', { ...dest, le: '1' })).toBe(0);
    expect(sum(d, 'istio_request_bytes_count', dest)).toBe(5);
    expect(sum(d, 'istio_request_duration_milliseconds_count', dest)).toBe(5);
  });

  it('same node: HTTP requests and TCP connections are reported by both reporters of the one agent', async () => {
    for (let i = 0; i < 2; i++) expect((await topo!.runClient('caller', ['http', '--url', `http://${VIP.local}/z`], 8000)).status).toBe(200);
    const echo = await topo!.runClient('caller', ['tcp', '--host', VIP.echo, '--port', String(TCP), '--send', 'ping', '--expect', 'ping'], 8000);
    expect(echo.ok, JSON.stringify(echo)).toBe(true);
    const base = { destination_workload: 'web-local', destination_service: HOST('web-local'), response_code: '200' };
    const m = await metricsUntil(
      agents[0]!,
      (t) =>
        sum(parseMetrics(t), 'istio_requests_total', { ...base, reporter: 'destination' }) >= 2 &&
        sum(parseMetrics(t), 'istio_tcp_connections_closed_total', { destination_service: HOST('echo'), reporter: 'destination' }) >= 1,
    );
    expect(sum(m, 'istio_requests_total', { ...base, reporter: 'source' })).toBe(2);
    expect(sum(m, 'istio_requests_total', { ...base, reporter: 'destination', source_workload: 'caller' })).toBe(2);
    const tcp = { destination_service: HOST('echo'), destination_workload: 'web-local' };
    expect(sum(m, 'istio_tcp_connections_opened_total', { ...tcp, reporter: 'source' })).toBe(1);
    expect(sum(m, 'istio_tcp_connections_opened_total', { ...tcp, reporter: 'destination' })).toBe(1);
    // Bytes counted once by the relay, visible under both reporters.
    expect(sum(m, 'istio_tcp_received_bytes_total', { ...tcp, reporter: 'destination' })).toBe(4);
    expect(sum(m, 'istio_tcp_sent_bytes_total', { ...tcp, reporter: 'source' })).toBe(4);
  });

  it('connections that cannot reach the pod are counted with response_flags CONNECT (same node: both reporters; across nodes: the destination)', async () => {
    for (const vip of [VIP.deadLocal, VIP.deadRemote]) {
      const r = await topo!.runClient('caller', ['tcp', '--host', vip, '--port', String(DEAD), '--send', 'x'], 8000);
      expect(r.ok && r.receivedBytes > 0, JSON.stringify(r)).toBe(false);
    }
    const flags = { response_flags: 'CONNECT' };
    const local = await metricsUntil(
      agents[0]!,
      (t) => sum(parseMetrics(t), 'istio_tcp_connections_opened_total', { ...flags, destination_service: HOST('dead-local'), reporter: 'destination' }) >= 1,
    );
    expect(sum(local, 'istio_tcp_connections_opened_total', { ...flags, destination_service: HOST('dead-local'), reporter: 'source', source_workload: 'caller' })).toBe(1);
    expect(sum(local, 'istio_tcp_connections_closed_total', { ...flags, destination_service: HOST('dead-local'), reporter: 'destination', destination_workload: 'web-local' })).toBe(1);
    const remote = await metricsUntil(agents[1]!, (t) => sum(parseMetrics(t), 'istio_tcp_connections_opened_total', { ...flags, destination_service: HOST('dead-remote') }) >= 1);
    expect(
      sum(remote, 'istio_tcp_connections_opened_total', {
        ...flags,
        reporter: 'destination',
        destination_service: HOST('dead-remote'),
        destination_workload: 'web',
        source_workload: 'caller',
        connection_security_policy: 'mutual_tls',
      }),
    ).toBe(1);
  });

  it('access log: one "connection complete" record per finished connection and one "request complete" per request, each field with one type', async () => {
    const records = agents[0]!.logRecords();
    const access = records.filter((r) => r['component'] === 'access');
    const echo = access.filter((r) => r['msg'] === 'connection complete' && r['dst.service'] === HOST('echo'));
    // The same-node echo connection of the previous case: one line per reporter (outbound and inbound direction).
    expect(echo.map((r) => r['direction']).sort()).toEqual(['inbound', 'outbound']);
    for (const r of echo) {
      expect(r['bytes_recv']).toBe(4);
      expect(r['bytes_sent']).toBe(4);
      expect(typeof r['duration_ms']).toBe('number');
      expect(r['src.workload']).toBe('caller');
      expect(r['dst.workload']).toBe('web-local');
      expect(r['src.identity']).toBe('spiffe://cluster.local/ns/team-a/sa/caller-sa');
      expect(r['response_flags']).toBe('-');
    }
    const requests = access.filter((r) => r['msg'] === 'request complete' && r['dst.service'] === HOST('web-local'));
    expect(requests.length).toBeGreaterThanOrEqual(2);
    for (const r of requests) expect(r['response_code']).toBe(200);
    // Every field keeps one JSON type across all of the agent's records (e.g. node is always the node name).
    const types = new Map<string, Set<string>>();
    for (const r of records) for (const [k, v] of Object.entries(r)) (types.get(k) ?? types.set(k, new Set()).get(k)!).add(v === null ? 'null' : typeof v);
    const mixed = [...types].filter(([k, t]) => t.size > 1 && k !== 'err' && k !== 'error');
    expect(mixed, JSON.stringify(mixed.map(([k, t]) => [k, [...t]]))).toEqual([]);
    expect(types.get('node')).toEqual(new Set(['string']));
  });
});
