// End-to-end --http-engine at the destination: HTTP/1.1 inside HBONE tunnels and captured plaintext to an `http` port is served by the destination agent's native HTTP/1.1 engine (smesh_http_engine_requests_total{direction="inbound"} moves there), with L7 AuthorizationPolicy per request (403 "RBAC: access denied", also after a DENY added while the connection is open), destination-reporter request metrics (mutual_tls vs none) and the pod dialled from the capture address.
import { describe, it, expect, beforeAll, beforeEach, afterAll } from 'vitest';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { http1Engine } from '../../agent/native/http1';
import { expectedDataplane, startAgentsInOrder, startHeldClient, stopAgentsKeepingLogs, stopHeldClients } from '../helpers/e2e-agents';
import { createTopology, privilegeProblem, AGENT_CLI, APPS_DIR, NODE_BIN, type Topology, type AgentHandle, type ServiceSpec } from '../helpers/topology';
import type { CapturedProcess } from '../helpers/proc';
import { waitExit, lastJsonLine, tail } from '../helpers/proc';
import { parseMetrics, sum } from '../helpers/metrics';

const problem = privilegeProblem() ?? (http1Engine() ? null : 'the addon has no HTTP/1.1 engine (make native)');
const TARGET = 8080;
const VIP = '198.19.13.10';
const CALLER = 'spiffe://cluster.local/ns/team-a/sa/caller-sa';
/**
 * The HBONE data plane of this run: the native one hands an HTTP-port stream over as a socketpair end, which the HTTP/1.1
 * engine serves; the JS one (node:http2 streams, no socket) keeps tunnels on node:http, counted as a fallback.
 */
const HBONE_IN_ENGINE = expectedDataplane() === 'native';
/** The node capture address: the source of every connection the agent makes to a local pod. */
const CAPTURE_IP = '169.254.7.1';

const denyAdmin = {
  apiVersion: 'security.istio.io/v1',
  kind: 'AuthorizationPolicy',
  metadata: { name: 'deny-admin', namespace: 'shop' },
  spec: { selector: { matchLabels: { app: 'web' } }, action: 'DENY', rules: [{ to: [{ operation: { paths: ['/admin*'] } }] }] },
};

interface HttpAnswer {
  status?: number;
  /** Parsed as JSON when it is JSON (client.js). */
  body?: string | { peer?: string };
  error?: string;
  reused?: boolean;
}

describe.skipIf(problem !== null)(`http-engine inbound e2e: the destination serves HTTP/1.1 in the engine${problem ? ` (skipped: ${problem})` : ''}`, () => {
  let topo: Topology;
  let cfgDir = '';
  let ctlDir = '';
  const agents: AgentHandle[] = [];
  const held: CapturedProcess[] = [];
  let setupError: Error | null = null;
  const services: ServiceSpec[] = [{ name: 'web', namespace: 'shop', vip: VIP, ports: [{ name: 'http', port: 80, targetPort: TARGET }], selector: { app: 'web' } }];
  beforeEach(() => {
    if (setupError) throw setupError;
  });

  const diag = () => agents.map((a) => `--- agent ${a.node.name} ---\n${tail(a.logs(), 25)}`).join('\n');
  const dest = () => agents[1]!;

  async function engineServed(agent: AgentHandle, outcome: string, direction = 'inbound'): Promise<number> {
    return sum(parseMetrics(await agent.metrics()), 'smesh_http_engine_requests_total', { direction, outcome });
  }

  async function engineFallbacks(agent: AgentHandle, reason: string): Promise<number> {
    return sum(parseMetrics(await agent.metrics()), 'smesh_http_engine_fallbacks_total', { direction: 'inbound', reason });
  }

  async function requestLines(agent: AgentHandle): Promise<string> {
    return (await agent.metrics())
      .split('\n')
      .filter((l) => l.startsWith('istio_requests_total') || l.startsWith('smesh_http_engine'))
      .join('\n');
  }

  async function load(pod: string, url: string, count: number): Promise<{ statuses: Record<string, number>; pods: Record<string, number> }> {
    const proc = topo.spawnInPod(pod, NODE_BIN, [path.join(APPS_DIR, 'http-load.js'), '--url', url, '--count', String(count), '--concurrency', '2']);
    const r = await waitExit(proc, 30_000);
    if (r.timedOut) throw new Error(`http-load ${url} timed out\n${tail(proc.outputText())}\n${diag()}`);
    return lastJsonLine(r.stdout);
  }

  /** Fresh one-shot requests until `done` says the new policy is in force at the destination (bounded). */
  async function waitFresh(url: string, done: (r: HttpAnswer) => boolean, what: string): Promise<void> {
    let last: HttpAnswer = {};
    const started = Date.now();
    for (let i = 0; i < 40 && Date.now() - started < 15_000; i++) {
      last = await topo.runClient<HttpAnswer>('caller', ['http', '--url', url], 6000);
      if (done(last)) return;
    }
    throw new Error(`${what}: fresh requests still answer ${JSON.stringify(last)}\n${diag()}`);
  }

  beforeAll(async () => {
    try {
      if (!fs.existsSync(AGENT_CLI)) throw new Error(`${AGENT_CLI} not found: build first (npx tsc -p tsconfig.json)`);
      topo = await createTopology({
        nodes: ['node1', 'node2'],
        pods: [
          { name: 'caller', node: 'node1', namespace: 'team-a', serviceAccount: 'caller-sa' },
          // Not in the mesh: a plaintext client keeping its own address, captured at the destination node.
          { name: 'outsider', node: 'node1', enrolled: false },
          { name: 'web', node: 'node2', namespace: 'shop', labels: { app: 'web' } },
        ],
      });
      await topo.startApp('web', 'http-server', ['--port', String(TARGET), '--pod', 'web']);
      cfgDir = topo.makeTempDir('config');
      ctlDir = topo.makeTempDir('ctl');
      topo.writeConfig(cfgDir, { services });
      await startAgentsInOrder(topo, ['node1', 'node2'], cfgDir, agents, ['--http-engine']);
    } catch (e) {
      setupError = e as Error;
    }
  }, 180_000);

  afterAll(async () => {
    await stopHeldClients(held);
    await stopAgentsKeepingLogs(agents, 'http-engine-inbound');
    await topo?.cleanup();
  }, 60_000);

  it(`HBONE: the destination agent ${HBONE_IN_ENGINE ? 'serves the tunnel in the engine' : "keeps the JS data plane's tunnel on node:http (fallback no_fd)"}, dials the pod from the capture address and reports mutual_tls requests`, async () => {
    const before = await engineServed(dest(), 'forwarded');
    const fallbacksBefore = await engineFallbacks(dest(), 'no_fd');
    const r = await load('caller', `http://${VIP}/hello`, 20);
    expect(r.statuses, `${JSON.stringify(r)}\n${diag()}`).toEqual({ 200: 20 });
    if (HBONE_IN_ENGINE) expect((await engineServed(dest(), 'forwarded')) - before, await requestLines(dest())).toBeGreaterThanOrEqual(20);
    else expect((await engineFallbacks(dest(), 'no_fd')) - fallbacksBefore, await requestLines(dest())).toBeGreaterThanOrEqual(1);
    const one = await topo.runClient<HttpAnswer>('caller', ['http', '--url', `http://${VIP}/who`], 8000);
    expect(one.status).toBe(200);
    expect((one.body as { peer?: string }).peer, JSON.stringify(one)).toMatch(new RegExp(`^${CAPTURE_IP.replaceAll('.', '\\.')}:`));
    const m = parseMetrics(await dest().metrics());
    const labels = {
      reporter: 'destination',
      source_workload: 'caller',
      source_principal: CALLER,
      destination_workload: 'web',
      destination_service: 'web.shop.svc.cluster.local',
      request_protocol: 'http',
      response_code: '200',
      response_flags: '-',
      connection_security_policy: 'mutual_tls',
    };
    expect(sum(m, 'istio_requests_total', labels), await requestLines(dest())).toBeGreaterThanOrEqual(21);
    expect(sum(m, 'istio_response_bytes_sum', labels)).toBeGreaterThan(0);
  }, 60_000);

  it('HBONE: an L7 DENY is answered 403 "RBAC: access denied" at the destination, also on a connection opened before the DENY, counted as node:http counts it', async () => {
    const held403 = await startHeldClient(topo, 'caller', ctlDir, 'deny', ['--url', `http://${VIP}`], held);
    const first = (await held403({ op: 'http', path: '/admin/a' })) as HttpAnswer;
    expect(first.status, JSON.stringify(first)).toBe(200);
    const deniedBefore = await engineServed(dest(), 'denied');
    topo.writeConfig(cfgDir, { services, extraDocs: [denyAdmin] });
    await waitFresh(`http://${VIP}/admin/x`, (r) => r.status === 403, 'deny-admin');
    // The connection opened before the DENY: its next request is decided under the new policy, the one after passes.
    const denied = (await held403({ op: 'http', path: '/admin/b' })) as HttpAnswer;
    expect(denied.status, `${JSON.stringify(denied)}\n${diag()}`).toBe(403);
    expect(denied.body).toBe('RBAC: access denied');
    expect(denied.reused, 'same client connection').toBe(true);
    const allowed = (await held403({ op: 'http', path: '/public' })) as HttpAnswer;
    expect(allowed.status, JSON.stringify(allowed)).toBe(200);
    expect(allowed.reused).toBe(true);
    const r = await load('caller', `http://${VIP}/admin/y`, 6);
    expect(r.statuses).toEqual({ 403: 6 });
    if (HBONE_IN_ENGINE) expect((await engineServed(dest(), 'denied')) - deniedBefore, await requestLines(dest())).toBeGreaterThanOrEqual(8);
    const m = parseMetrics(await dest().metrics());
    expect(
      sum(m, 'istio_requests_total', {
        reporter: 'destination',
        source_principal: CALLER,
        destination_workload: 'web',
        response_code: '403',
        response_flags: 'RBAC',
        connection_security_policy: 'mutual_tls',
      }),
      await requestLines(dest()),
    ).toBeGreaterThanOrEqual(8);
    await stopHeldClients(held);
    topo.writeConfig(cfgDir, { services });
    await waitFresh(`http://${VIP}/admin/x`, (x) => x.status === 200, 'reset');
  }, 120_000);

  it('plaintext captured at the destination: served by the engine with an empty principal (connection_security_policy none), L7 DENY included', async () => {
    const webIp = topo.pod('web').ip;
    const before = await engineServed(dest(), 'forwarded');
    const ok = await topo.runClient<HttpAnswer>('outsider', ['http', '--url', `http://${webIp}:${TARGET}/public`], 8000);
    expect(ok.status, `${JSON.stringify(ok)}\n${diag()}`).toBe(200);
    expect((ok.body as { peer?: string }).peer, JSON.stringify(ok)).toMatch(new RegExp(`^${CAPTURE_IP.replaceAll('.', '\\.')}:`));
    expect((await engineServed(dest(), 'forwarded')) - before, await requestLines(dest())).toBeGreaterThanOrEqual(1);
    topo.writeConfig(cfgDir, { services, extraDocs: [denyAdmin] });
    await waitFresh(`http://${VIP}/admin/x`, (r) => r.status === 403, 'deny-admin');
    const deniedBefore = await engineServed(dest(), 'denied');
    const denied = await topo.runClient<HttpAnswer>('outsider', ['http', '--url', `http://${webIp}:${TARGET}/admin`], 8000);
    expect(denied.status, JSON.stringify(denied)).toBe(403);
    expect(denied.body).toBe('RBAC: access denied');
    expect((await engineServed(dest(), 'denied')) - deniedBefore).toBe(1);
    const m = parseMetrics(await dest().metrics());
    const base = { reporter: 'destination', destination_workload: 'web', connection_security_policy: 'none', source_principal: 'unknown' };
    expect(sum(m, 'istio_requests_total', { ...base, response_code: '200' }), await requestLines(dest())).toBeGreaterThanOrEqual(1);
    expect(sum(m, 'istio_requests_total', { ...base, response_code: '403', response_flags: 'RBAC' }), await requestLines(dest())).toBe(1);
    topo.writeConfig(cfgDir, { services });
    await waitFresh(`http://${VIP}/admin/x`, (x) => x.status === 200, 'reset');
  }, 90_000);
});
