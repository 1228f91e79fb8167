// Policy end to end on the namespaced topology: AuthorizationPolicy identities, kernel connect-time deny, PeerAuthentication STRICT/PERMISSIVE, live policy change.
import { describe, it, expect, beforeAll, beforeEach, afterAll } from 'vitest';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createTopology, privilegeProblem, AGENT_CLI, APPS_DIR, NODE_BIN, type Topology, type AgentHandle, type ServiceSpec } from '../helpers/topology';
import { lastJsonLine, sleep, waitExit } from '../helpers/proc';
import { parseMetrics, sum } from '../helpers/metrics';

const problem = privilegeProblem();
const VIP = '198.19.7.10';
const PORT = { strict: 9000, permissive: 9001 } as const;
const WEB = { vip: '198.19.7.11', port: 80, target: 8080 } as const;

function policyDocs(allowedNamespaces: string[]): unknown[] {
  return [
    {
      apiVersion: 'security.istio.io/v1',
      kind: 'AuthorizationPolicy',
      metadata: { name: 'allow-callers', namespace: 'shop' },
      spec: { selector: { matchLabels: { app: 'server' } }, action: 'ALLOW', rules: [{ from: [{ source: { principals: allowedNamespaces.map((ns) => `cluster.local/ns/${ns}/sa/caller-sa`) } }] }] },
    },
    {
      // Request-level (L7) rules: enforced at the destination node's inbound, inside the HBONE tunnel.
      apiVersion: 'security.istio.io/v1',
      kind: 'AuthorizationPolicy',
      metadata: { name: 'deny-admin', namespace: 'shop' },
      spec: {
        selector: { matchLabels: { app: 'server' } },
        action: 'DENY',
        rules: [{ to: [{ operation: { ports: [String(WEB.target)], paths: ['/admin*'] } }] }, { to: [{ operation: { ports: [String(WEB.target)], methods: ['DELETE'] } }] }],
      },
    },
    {
      apiVersion: 'security.istio.io/v1',
      kind: 'PeerAuthentication',
      metadata: { name: 'server-mtls', namespace: 'shop' },
      spec: { selector: { matchLabels: { app: 'server' } }, mtls: { mode: 'STRICT' }, portLevelMtls: { [PORT.permissive]: { mode: 'PERMISSIVE' } } },
    },
  ];
}

describe.skipIf(problem !== null)(`policy e2e: AuthorizationPolicy and PeerAuthentication${problem ? ` (skipped: ${problem})` : ''}`, () => {
  let topo: Topology | undefined;
  let cfgDir = '';
  const agents: AgentHandle[] = [];
  let setupError: Error | null = null;
  const services: ServiceSpec[] = [
    {
      name: 'server',
      namespace: 'shop',
      vip: VIP,
      ports: [
        { port: PORT.strict, targetPort: PORT.strict },
        { port: PORT.permissive, targetPort: PORT.permissive },
      ],
      selector: { app: 'server' },
    },
    { name: 'web', namespace: 'shop', vip: WEB.vip, ports: [{ name: 'http', port: WEB.port, targetPort: WEB.target }], selector: { app: 'server' } },
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
          { name: 'caller-a', node: 'node1', namespace: 'team-a', serviceAccount: 'caller-sa' },
          { name: 'caller-b', node: 'node1', namespace: 'team-b', serviceAccount: 'caller-sa' },
          { name: 'outsider', node: 'node1', enrolled: false },
          { name: 'server', node: 'node2', namespace: 'shop' },
        ],
      });
      await Promise.all([
        topo.startApp('server', 'echo-server', ['--port', String(PORT.strict)]),
        topo.startApp('server', 'echo-server', ['--port', String(PORT.permissive)]),
        topo.startApp('server', 'http-server', ['--port', String(WEB.target), '--pod', 'server']),
      ]);
      cfgDir = topo.makeTempDir('config');
      topo.writeConfig(cfgDir, { services, extraDocs: policyDocs(['team-a']) });
      for (const node of ['node1', 'node2']) {
        const a = topo.startAgent(node, cfgDir);
        agents.push(a);
        await a.waitReady(60_000);
      }
    } catch (e) {
      setupError = e as Error;
    }
  }, 180_000);

  afterAll(async () => {
    const keep = process.env.SMESH_E2E_LOG_DIR;
    for (const [i, a] of agents.entries()) {
      await a.stop(5000).catch(() => undefined);
      if (keep) {
        fs.mkdirSync(keep, { recursive: true });
        fs.writeFileSync(path.join(keep, `policy-agent-${i}-${a.node.name}.log`), a.logs());
      }
    }
    await topo?.cleanup();
  }, 60_000);

  const echo = (pod: string, host: string, port: number, timeoutMs = 8000) => topo!.runClient(pod, ['tcp', '--host', host, '--port', String(port), '--send', 'ping', '--expect', 'ping'], timeoutMs);

  it('an ALLOWed principal reaches the server through the mesh (both ports, VIP and pod address)', async () => {
    for (const [host, port] of [
      [VIP, PORT.strict],
      [VIP, PORT.permissive],
      [topo!.pod('server').ip, PORT.strict],
    ] as const) {
      const r = await echo('caller-a', host, port);
      expect(r.ok, JSON.stringify(r)).toBe(true);
    }
  });

  it('a principal no ALLOW matches is refused in the kernel at connect time: immediate ECONNREFUSED', async () => {
    for (const [host, port] of [
      [VIP, PORT.strict],
      [topo!.pod('server').ip, PORT.permissive],
    ] as const) {
      const r = await echo('caller-b', host, port);
      expect(r.ok, JSON.stringify(r)).toBe(false);
      expect(r.connected).toBe(false);
      expect(r.error?.code, JSON.stringify(r)).toBe('ECONNREFUSED');
    }
    // Counted once per refused connection, by source workload, in Istio's TCP metrics with response_flags DENY.
    const m = parseMetrics(await agents[0]!.metrics());
    expect(sum(m, 'smesh_connect_denied_total', { source_workload: 'caller-b', source_workload_namespace: 'team-b' })).toBe(2);
    expect(sum(m, 'istio_tcp_connections_opened_total', { reporter: 'source', source_workload: 'caller-b', response_flags: 'DENY' })).toBe(2);
    expect(sum(m, 'istio_tcp_connections_closed_total', { reporter: 'source', source_workload: 'caller-b', response_flags: 'DENY' })).toBe(2);
    // One attempt dialled the service VIP (named by its service), the other the pod address (named by its workload).
    expect(sum(m, 'istio_tcp_connections_closed_total', { reporter: 'source', source_workload: 'caller-b', response_flags: 'DENY', destination_service_name: 'server' })).toBe(1);
    expect(sum(m, 'istio_tcp_connections_closed_total', { reporter: 'source', source_workload: 'caller-b', response_flags: 'DENY', destination_workload: 'server' })).toBe(1);
  });

  it('HTTP methods and paths are enforced at the remote inbound (VIP and pod address): 403 "RBAC: access denied", other requests pass', async () => {
    const server = topo!.pod('server');
    for (const base of [`http://${WEB.vip}:${WEB.port}`, `http://${server.ip}:${WEB.target}`]) {
      const cases: Array<[string, string, number]> = [
        ['GET', '/public', 200],
        ['GET', '/admin/users', 403],
        ['DELETE', '/public', 403],
        ['POST', '/public', 200],
      ];
      for (const [method, p, status] of cases) {
        const r = await topo!.runClient('caller-a', ['http', '--url', `${base}${p}`, '--method', method], 8000);
        expect(r.status, `${method} ${base}${p}: ${JSON.stringify(r)}`).toBe(status);
        if (status === 403) expect(r.body).toBe('RBAC: access denied');
      }
    }
    // Counted by the destination agent under the DENY policy, with an access-log line naming it.
    const metrics = await agents[1]!.metrics();
    expect(metrics).toMatch(/^smesh_policy_denials_total\{reason="deny_policy",policy="shop\/deny-admin"\} [1-9]/m);
    expect(metrics).toMatch(/istio_requests_total\{[^}]*reporter="destination"[^}]*response_code="403"/);
    expect(agents[1]!.logs()).toMatch(/"policy":"shop\/deny-admin"[^\n]*request denied by authorization policy/);
  });

  it('STRICT drops plaintext from a non-enrolled pod; on the PERMISSIVE port it is captured and the ALLOW (mesh principals only) denies it (all counted)', async () => {
    const server = topo!.pod('server');
    const strict = await topo!.runClient('outsider', ['tcp', '--host', server.ip, '--port', String(PORT.strict), '--send', 'ping', '--expect', 'ping'], 6000);
    expect(strict.ok, JSON.stringify(strict)).toBe(false);
    expect(strict.connected ?? false, JSON.stringify(strict)).toBe(false); // SYNs dropped: the client's own timeout ends it
    const permissive = await echo('outsider', server.ip, PORT.permissive);
    expect(permissive.ok, JSON.stringify(permissive)).toBe(false);
    expect(permissive.error?.code, JSON.stringify(permissive)).toBe('ECONNRESET'); // accepted by the capture, then reset by policy
    const metrics = await agents[1]!.metrics();
    // The STRICT client's SYN was retransmitted during its 6 s wait; it is one connection, counted once.
    expect(strict.ms, JSON.stringify(strict)).toBeGreaterThan(3500);
    expect(metrics).toMatch(/^smesh_strict_dropped_total 1$/m);
    const m = parseMetrics(metrics);
    expect(
      sum(m, 'istio_tcp_connections_opened_total', { reporter: 'destination', destination_workload: 'server', response_flags: 'DENY', connection_security_policy: 'none', source_workload: 'unknown' }),
    ).toBeGreaterThanOrEqual(2); // STRICT drop + captured-and-denied
    expect(metrics).toMatch(/^smesh_plaintext_inbound_total [1-9]/m);
    expect(metrics).toMatch(/^smesh_plaintext_inbound_captured_total [1-9]/m);
  });

  it("kubelet-style probes from the node's own host address pass STRICT; plaintext from another node's host is still dropped", async () => {
    const server = topo!.pod('server');
    const probe = (node: string, timeoutMs: number) =>
      topo!.execInNode(
        node,
        NODE_BIN,
        [path.join(APPS_DIR, 'client.js'), 'tcp', '--host', server.ip, '--port', String(PORT.strict), '--send', 'ping', '--expect', 'ping', '--timeout', String(timeoutMs)],
        { timeoutMs: timeoutMs + 5000 },
      );
    const local = lastJsonLine<Record<string, unknown>>((await probe('node2', 6000)).stdout);
    expect(local.ok, JSON.stringify(local)).toBe(true);
    const remote = lastJsonLine<Record<string, unknown>>((await probe('node1', 3000)).stdout);
    expect(remote.ok, JSON.stringify(remote)).toBe(false);
    expect(remote.connected ?? false, JSON.stringify(remote)).toBe(false);
  });

  it('a policy change (file rewritten) applies to new connections quickly (first success < 1.5 s incl. client start); the still-allowed caller keeps working', async () => {
    topo!.writeConfig(cfgDir, { services, extraDocs: policyDocs(['team-a', 'team-b']) });
    const started = Date.now();
    let last: Record<string, any> = {};
    for (let i = 0; i < 20 && Date.now() - started < 5000; i++) {
      last = await echo('caller-b', VIP, PORT.strict, 4000);
      if (last.ok) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    const tookMs = Date.now() - started;
    expect(last.ok, JSON.stringify(last)).toBe(true);
    // Each client run includes a node process start (~100-300 ms); the first success must come within 1 s plus that.
    expect(tookMs).toBeLessThan(1500);
    const stillAllowed = await echo('caller-a', VIP, PORT.strict);
    expect(stillAllowed.ok, JSON.stringify(stillAllowed)).toBe(true);
  });
  it('an established, still-allowed connection keeps flowing while a policy change denies another caller', async () => {
    // One connection from caller-a that echoes a line every 50 ms for 2.5 s; the policy is rewritten in the middle.
    const script = `
      const net = require('net');
      const s = net.connect({ host: '${VIP}', port: ${PORT.strict} });
      let sent = 0, received = 0, error = null;
      s.on('data', (c) => { received += c.length; });
      s.on('error', (e) => { error = e.code || e.message; });
      s.on('connect', () => {
        const t = setInterval(() => { if (!s.destroyed) { s.write('tick\\n'); sent += 5; } }, 50);
        setTimeout(() => { clearInterval(t); setTimeout(() => { s.end(); console.log(JSON.stringify({ sent, received, error })); process.exit(0); }, 300); }, 2500);
      });
      setTimeout(() => { console.log(JSON.stringify({ sent, received, error: error || 'timeout' })); process.exit(1); }, 8000);
    `;
    const longLived = topo!.spawnInPod('caller-a', NODE_BIN, ['-e', script]);
    await sleep(800);
    topo!.writeConfig(cfgDir, { services, extraDocs: policyDocs(['team-a']) });
    // The change reaches the kernel and the inbound: caller-b's new connections are refused again.
    const started = Date.now();
    let denied: Record<string, any> = {};
    for (let i = 0; i < 20 && Date.now() - started < 5000; i++) {
      denied = await echo('caller-b', VIP, PORT.strict, 4000);
      if (!denied.ok) break;
      await sleep(100);
    }
    expect(denied.ok, JSON.stringify(denied)).toBe(false);
    const done = await waitExit(longLived, 15_000);
    const r = lastJsonLine<{ sent: number; received: number; error: string | null }>(done.stdout);
    expect(r.error, JSON.stringify(r)).toBeNull();
    expect(r.sent).toBeGreaterThan(200);
    expect(r.received).toBe(r.sent);
  });
});
