// Plaintext from outside the mesh into a PERMISSIVE pod is captured (sk_lookup in the pod's namespace) and authorized as Istio does: Istio's documented policy examples, from a non-mesh client on the same node and on another node, against a mesh client.
import { describe, it, expect, beforeAll, beforeEach, afterAll } from 'vitest';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { startAgentsInOrder, startHeldClient, stopAgentsKeepingLogs, stopHeldClients, type HeldCommand } from '../helpers/e2e-agents';
import { createTopology, privilegeProblem, AGENT_CLI, type Topology, type AgentHandle, type ServiceSpec } from '../helpers/topology';
import type { CapturedProcess } from '../helpers/proc';
import { pollUntil, waitUntil } from '../helpers/logs';
import { inpodNoListener } from '../helpers/e2e-agents';

const problem = privilegeProblem();
const TCP_PORT = 9001;
const HTTP_PORT = 8080;
const VIP = '198.19.9.10';

type Client = 'outsider-local' | 'outsider-remote' | 'caller' | 'caller-local';

interface Expectation {
  readonly tcp: boolean;
  /** HTTP status of GET /public and GET /admin (0 = connection refused or reset). */
  readonly pub: number;
  readonly admin: number;
}

function policy(name: string, spec: Record<string, unknown>): unknown {
  return { apiVersion: 'security.istio.io/v1', kind: 'AuthorizationPolicy', metadata: { name, namespace: 'shop' }, spec };
}

describe.skipIf(problem !== null)(`plaintext inbound policy e2e${problem ? ` (skipped: ${problem})` : ''}`, () => {
  let topo: Topology | undefined;
  let cfgDir = '';
  const agents: AgentHandle[] = [];
  let setupError: Error | null = null;
  const held: CapturedProcess[] = [];
  let ctlDir = '';
  const services: ServiceSpec[] = [
    {
      name: 'server',
      namespace: 'shop',
      vip: VIP,
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
        nodes: ['node1', 'node2'],
        pods: [
          { name: 'caller', node: 'node1', namespace: 'team-a', serviceAccount: 'caller-sa' },
          // A mesh client on the server's node: the same-node (no TLS, no inbound) placement of mTLS identities.
          { name: 'caller-local', node: 'node2', namespace: 'team-a', serviceAccount: 'caller-sa' },
          // Not in the mesh: plaintext clients that keep their own pod address.
          { name: 'outsider-remote', node: 'node1', enrolled: false },
          { name: 'outsider-local', node: 'node2', enrolled: false },
          { name: 'server', node: 'node2', namespace: 'shop' },
        ],
      });
      await Promise.all([topo.startApp('server', 'echo-server', ['--port', String(TCP_PORT)]), topo.startApp('server', 'http-server', ['--port', String(HTTP_PORT), '--pod', 'server'])]);
      cfgDir = topo.makeTempDir('config');
      ctlDir = topo.makeTempDir('ctl');
      topo.writeConfig(cfgDir, { services });
      await startAgentsInOrder(topo, ['node1', 'node2'], cfgDir, agents);
    } catch (e) {
      setupError = e as Error;
    }
  }, 180_000);

  afterAll(async () => {
    await stopHeldClients(held);
    await stopAgentsKeepingLogs(agents, 'plaintext');
    await topo?.cleanup();
  }, 60_000);

  const server = () => topo!.pod('server');

  async function observe(client: Client): Promise<Expectation> {
    const host = server().ip;
    const [tcp, pub, admin] = await Promise.all([
      topo!.runClient(client, ['tcp', '--host', host, '--port', String(TCP_PORT), '--send', 'ping', '--expect', 'ping'], 8000),
      topo!.runClient(client, ['http', '--url', `http://${host}:${HTTP_PORT}/public`], 8000),
      topo!.runClient(client, ['http', '--url', `http://${host}:${HTTP_PORT}/admin`], 8000),
    ]);
    return { tcp: tcp.ok === true, pub: Number(pub.status ?? 0), admin: Number(admin.status ?? 0) };
  }

  /** Polls until every client sees what the case expects (the policy takes a moment to reach the agents), then asserts it. */
  async function expectAll(cases: Partial<Record<Client, Expectation>>): Promise<void> {
    const observeAll = async (): Promise<Partial<Record<Client, Expectation>>> => {
      const seen: Partial<Record<Client, Expectation>> = {};
      for (const c of Object.keys(cases) as Client[]) seen[c] = await observe(c);
      return seen;
    };
    expect(await pollUntil(observeAll, (seen) => JSON.stringify(seen) === JSON.stringify(cases), 15_000)).toEqual(cases);
  }

  /** Holds one plaintext TCP connection open from `pod` (test/apps/held-client.js); resolves the command sender. */
  const holdTcp = (pod: Client): Promise<HeldCommand> => startHeldClient(topo!, pod, ctlDir, pod, ['--host', server().ip, '--port', String(TCP_PORT)], held);

  const open: Expectation = { tcp: true, pub: 200, admin: 200 };
  const closed: Expectation = { tcp: false, pub: 0, admin: 0 };

  it('without a policy, plaintext reaches the app through the capture (same node and across nodes) and is reported as connection_security_policy="none"', async () => {
    await expectAll({ 'outsider-local': open, 'outsider-remote': open, caller: open });
    const m = await agents[1]!.metrics();
    expect(m).toMatch(/^smesh_plaintext_inbound_captured_total [1-9]/m);
    expect(m).toMatch(/istio_tcp_connections_opened_total\{reporter="destination"[^}]*destination_workload="server"[^}]*connection_security_policy="none"\} [1-9]/);
    expect(m).toMatch(
      /istio_requests_total\{reporter="destination"[^}]*destination_workload="server"[^}]*response_code="200"[^}]*connection_security_policy="none"|istio_requests_total\{reporter="destination"[^}]*connection_security_policy="none"[^}]*response_code="200"/,
    );
    // The app sees the capture address, never a client that bypassed the node proxy.
    const echoed = await topo!.runClient('outsider-local', ['http', '--url', `http://${server().ip}:${HTTP_PORT}/public`], 8000);
    expect(echoed.status).toBe(200);
  });

  it('allow-nothing (an ALLOW policy with no rules) denies plaintext and mesh clients alike', async () => {
    topo!.writeConfig(cfgDir, { services, extraDocs: [policy('allow-nothing', { selector: { matchLabels: { app: 'server' } }, action: 'ALLOW' })] });
    await expectAll({ 'outsider-local': closed, 'outsider-remote': closed, caller: closed });
    const m = await agents[1]!.metrics();
    expect(m).toMatch(/^smesh_policy_denials_total\{[^}]*\} [1-9]/m);
    // Denied connections appear in Istio's TCP metrics with response_flags DENY (the mesh caller is refused in the kernel on its own node).
    expect(m).toMatch(/istio_tcp_connections_opened_total\{reporter="destination"[^}]*destination_workload="server"[^}]*response_flags="DENY",connection_security_policy="none"\} [1-9]/);
  });

  it('deny-all (DENY with one empty rule) denies plaintext on every port', async () => {
    topo!.writeConfig(cfgDir, { services, extraDocs: [policy('deny-all', { selector: { matchLabels: { app: 'server' } }, action: 'DENY', rules: [{}] })] });
    await expectAll({ 'outsider-local': closed, 'outsider-remote': closed });
  });

  it('DENY by ipBlocks matches the plaintext client by its own pod address', async () => {
    const remote = topo!.pod('outsider-remote').ip;
    topo!.writeConfig(cfgDir, {
      services,
      extraDocs: [policy('deny-remote', { selector: { matchLabels: { app: 'server' } }, action: 'DENY', rules: [{ from: [{ source: { ipBlocks: [`${remote}/32`] } }] }] })],
    });
    await expectAll({ 'outsider-local': open, 'outsider-remote': closed, caller: open });
  });

  it('DENY notPrincipals ["*"] (requests without an identity) stops plaintext and lets mTLS through', async () => {
    topo!.writeConfig(cfgDir, {
      services,
      extraDocs: [policy('require-mtls', { selector: { matchLabels: { app: 'server' } }, action: 'DENY', rules: [{ from: [{ source: { notPrincipals: ['*'] } }] }] })],
    });
    await expectAll({ 'outsider-local': closed, 'outsider-remote': closed, caller: open });
  });

  it('an ALLOW naming only mesh identities does not let plaintext in', async () => {
    topo!.writeConfig(cfgDir, {
      services,
      extraDocs: [policy('allow-team-a', { selector: { matchLabels: { app: 'server' } }, action: 'ALLOW', rules: [{ from: [{ source: { principals: ['cluster.local/ns/team-a/sa/caller-sa'] } }] }] })],
    });
    await expectAll({ 'outsider-local': closed, 'outsider-remote': closed, caller: open });
  });

  it('a DENY with L7 attributes on a TCP port denies the whole connection (Istio: HTTP-only fields widen a DENY on TCP)', async () => {
    topo!.writeConfig(cfgDir, {
      services,
      extraDocs: [policy('deny-admin-any-port', { selector: { matchLabels: { app: 'server' } }, action: 'DENY', rules: [{ to: [{ operation: { paths: ['/admin'] } }] }] })],
    });
    const l7: Expectation = { tcp: false, pub: 200, admin: 403 };
    await expectAll({ 'outsider-local': l7, 'outsider-remote': l7, caller: l7 });
  });

  it('L7 rules apply per request to plaintext on HTTP ports: DENY /admin gives 403, /public passes', async () => {
    topo!.writeConfig(cfgDir, {
      services,
      extraDocs: [policy('deny-admin', { selector: { matchLabels: { app: 'server' } }, action: 'DENY', rules: [{ to: [{ operation: { ports: [String(HTTP_PORT)], paths: ['/admin'] } }] }] })],
    });
    const l7: Expectation = { tcp: true, pub: 200, admin: 403 };
    await expectAll({ 'outsider-local': l7, 'outsider-remote': l7, caller: l7 });
    // Paths are matched after Istio's BASE normalization, sent raw (client libraries would resolve `..` themselves).
    const raw = (client: Client, target: string) =>
      topo!.runClient(client, ['garbage', '--host', server().ip, '--port', String(HTTP_PORT), '--data', `GET ${target} HTTP/1.1\\r\\nHost: server\\r\\nConnection: close\\r\\n\\r\\n`], 8000);
    for (const client of ['outsider-local', 'outsider-remote', 'caller', 'caller-local'] as const) {
      for (const [target, status] of [
        ['/public/../admin', 403],
        ['/%61dmin', 403],
        ['/public/./x/..', 200],
        ['/admin/../public', 200],
      ] as const) {
        const r = await raw(client, target);
        expect(String(r.receivedHead), `${client} ${target}: ${JSON.stringify(r)}`).toMatch(new RegExp(`^HTTP/1\\.1 ${status} `));
      }
    }
    const m = await agents[1]!.metrics();
    expect(m).toMatch(/istio_requests_total\{reporter="destination"[^}]*connection_security_policy="none"[^}]*\} [1-9]/);
    expect(m).toMatch(/istio_requests_total\{reporter="destination"[^}]*response_code="403"/);
  });

  it('hosts match as Istio documents: an exact entry does not match host:port (plaintext and mTLS, both placements)', async () => {
    topo!.writeConfig(cfgDir, {
      services,
      extraDocs: [policy('deny-host', { selector: { matchLabels: { app: 'server' } }, action: 'DENY', rules: [{ to: [{ operation: { ports: [String(HTTP_PORT)], hosts: ['server.shop'] } }] }] })],
    });
    const raw = (client: Client, host: string) =>
      topo!.runClient(client, ['garbage', '--host', server().ip, '--port', String(HTTP_PORT), '--data', `GET /public HTTP/1.1\\r\\nHost: ${host}\\r\\nConnection: close\\r\\n\\r\\n`], 8000);
    await pollUntil(
      () => raw('outsider-local', 'server.shop'),
      (r) => /^HTTP\/1\.1 403 /.test(String(r.receivedHead)),
      15_000,
    );
    for (const client of ['outsider-local', 'outsider-remote', 'caller', 'caller-local'] as const) {
      for (const [host, status] of [
        ['server.shop', 403],
        ['SERVER.shop', 403],
        ['server.shop:8080', 200],
        ['other', 200],
      ] as const) {
        const r = await raw(client, host);
        expect(String(r.receivedHead), `${client} Host: ${host}: ${JSON.stringify(r)}`).toMatch(new RegExp(`^HTTP/1\\.1 ${status} `));
      }
    }
  });

  it('an open plaintext connection that a new policy denies is closed and counted (same node and across nodes)', async () => {
    topo!.writeConfig(cfgDir, { services });
    await expectAll({ 'outsider-local': open, 'outsider-remote': open });
    const sends = new Map<Client, HeldCommand>();
    for (const pod of ['outsider-local', 'outsider-remote'] as const) {
      const send = await holdTcp(pod);
      const r = await send({ op: 'echo', data: 'hello' });
      expect(r.ok, JSON.stringify(r)).toBe(true);
      sends.set(pod, send);
    }
    const closedNow = async (): Promise<number> => Number(/^smesh_policy_connections_closed_total\{direction="inbound",reason="policy_denied"\} (\d+)/m.exec(await agents[1]!.metrics())?.[1] ?? 0);
    const closedBefore = await closedNow();
    topo!.writeConfig(cfgDir, {
      services,
      extraDocs: [policy('require-mtls', { selector: { matchLabels: { app: 'server' } }, action: 'DENY', rules: [{ from: [{ source: { notPrincipals: ['*'] } }] }] })],
    });
    expect(await pollUntil(closedNow, (n) => n >= closedBefore + 2, 15_000)).toBe(closedBefore + 2);
    for (const [pod, send] of sends) {
      const r = await send({ op: 'echo', data: 'again' });
      expect(r.closed, `${pod}: ${JSON.stringify(r)}`).toBe(true);
    }
  });

  it('while the agent restarts (SIGKILL), plaintext is held back in the kernel, never let through to the app unchecked', async () => {
    const requireMtls = policy('require-mtls', { selector: { matchLabels: { app: 'server' } }, action: 'DENY', rules: [{ from: [{ source: { notPrincipals: ['*'] } }] }] });
    topo!.writeConfig(cfgDir, { services, extraDocs: [requireMtls] });
    await expectAll({ 'outsider-local': closed, 'outsider-remote': closed });
    const node2 = topo!.node('node2');
    agents[1]!.kill('SIGKILL');
    await agents[1]!.proc.exited;
    // The capture link is pinned: it stays attached while no agent runs.
    const pins = fs.readdirSync(path.join(node2.bpffsDir, 'links')).filter((n) => n.startsWith('inpod-'));
    expect(pins.length).toBeGreaterThan(0);
    // A plaintext connection attempt while the agent is down: its SYNs are dropped until the next agent captures one.
    const heldBefore = inpodNoListener(node2.bpffsDir);
    const attempt = topo!.runClient('outsider-remote', ['tcp', '--host', server().ip, '--port', String(TCP_PORT), '--send', 'ping', '--expect', 'ping'], 20_000);
    // Restart only once the kernel has held a SYN of that attempt back (no capture listener while the agent is down).
    await waitUntil(() => inpodNoListener(node2.bpffsDir) > heldBefore, 10_000, 'a plaintext SYN held back while no agent runs');
    const restarted = topo!.startAgent('node2', cfgDir);
    agents[1] = restarted;
    await restarted.waitReady(60_000);
    const r = await attempt;
    expect(r.ok, JSON.stringify(r)).toBe(false);
    // Held back silently (no RST): the retransmitted SYN reached the restarted agent, which denied it.
    expect(r.error?.code, JSON.stringify(r)).toBe('ECONNRESET');
    expect(r.ms, JSON.stringify(r)).toBeGreaterThan(900);
    // The restarted agent reused the pinned link and captures again.
    expect(fs.readdirSync(path.join(node2.bpffsDir, 'links')).filter((n) => n.startsWith('inpod-'))).toEqual(pins);
    await expectAll({ 'outsider-local': closed, 'outsider-remote': closed });
    topo!.writeConfig(cfgDir, { services });
    await expectAll({ 'outsider-local': open, 'outsider-remote': open });
  }, 90_000);

  it('a policy Istio would refuse (a wildcard in a selector label value) is refused by file, resource and field; the policy set in force stays', async () => {
    await expectAll({ 'outsider-local': open });
    const rejectedBefore = agents[1]!.logRecords().filter((r) => r['msg'] === 'rejected configuration change; still serving the previous configuration').length;
    topo!.writeConfig(cfgDir, {
      services,
      extraDocs: [
        policy('require-mtls', { selector: { matchLabels: { app: 'server' } }, action: 'DENY', rules: [{ from: [{ source: { notPrincipals: ['*'] } }] }] }),
        policy('wildcard', { selector: { matchLabels: { app: 'serv*' } }, action: 'DENY', rules: [{}] }),
      ],
    });
    const rejected = await pollUntil(
      () => agents[1]!.logRecords().filter((r) => r['msg'] === 'rejected configuration change; still serving the previous configuration'),
      (list) => list.length > rejectedBefore,
      15_000,
    );
    expect(rejected.length).toBeGreaterThan(rejectedBefore);
    const problems = rejected[rejected.length - 1]!['problems'] as Array<Record<string, unknown>>;
    expect(problems).toEqual(expect.arrayContaining([expect.objectContaining({ resource: 'AuthorizationPolicy shop/wildcard', field: expect.stringContaining('selector.matchLabels') })]));
    // The whole change was refused: the valid policy of the same change is not in force either.
    await expectAll({ 'outsider-local': open, 'outsider-remote': open });
  });

  it('STRICT is still a kernel drop for plaintext (not captured), mesh clients pass', async () => {
    topo!.writeConfig(cfgDir, {
      services,
      extraDocs: [
        {
          apiVersion: 'security.istio.io/v1',
          kind: 'PeerAuthentication',
          metadata: { name: 'strict', namespace: 'shop' },
          spec: { selector: { matchLabels: { app: 'server' } }, mtls: { mode: 'STRICT' } },
        },
      ],
    });
    const r = await pollUntil(
      () => topo!.runClient('outsider-remote', ['tcp', '--host', server().ip, '--port', String(TCP_PORT), '--send', 'ping', '--expect', 'ping'], 5000),
      (x) => !x.ok && !x.connected && x.error?.code === 'ETIMEOUT',
      15_000,
    );
    expect(r.ok, JSON.stringify(r)).toBe(false);
    expect(r.connected ?? false, JSON.stringify(r)).toBe(false); // SYN dropped, never accepted by the capture
    expect(r.error?.code, JSON.stringify(r)).toBe('ETIMEOUT');
    const mesh = await topo!.runClient('caller', ['tcp', '--host', VIP, '--port', String(TCP_PORT), '--send', 'ping', '--expect', 'ping'], 8000);
    expect(mesh.ok, JSON.stringify(mesh)).toBe(true);
    expect(await agents[1]!.metrics()).toMatch(/^smesh_strict_dropped_total [1-9]/m);
  });
});
