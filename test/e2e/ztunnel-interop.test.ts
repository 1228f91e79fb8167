// Interop with Istio ambient's wire: independent HBONE peers (test/interop/hbone_peer.py — Python ssl + h2, no smesh code) play the ztunnel of a third node, in both directions, TCP and HTTP, with smesh's policy applied.
import { describe, it, expect, beforeAll, beforeEach, afterAll } from 'vitest';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createTopology, privilegeProblem, AGENT_CLI, REPO_ROOT, type Topology, type AgentHandle, type ServiceSpec, type PodInfo } from '../helpers/topology';
import { makeCa, issueLeaf, type LeafFiles } from '../helpers/certs';
import { waitExit, lastJsonLine, jsonRecords, tail, type CapturedProcess } from '../helpers/proc';
import { parseMetrics, sum, describeSeries } from '../helpers/metrics';
import { pollUntil } from '../helpers/logs';

/** Debian's interpreter: python3-h2 is a Debian package (scripts/install-deps.sh), not installed for other Pythons. */
const PEER_PYTHON = '/usr/bin/python3';
const PEER_SCRIPT = path.join(REPO_ROOT, 'test/interop/hbone_peer.py');
const TD = 'cluster.local';
const HBONE_PORT = 15008;
const TCP = 9000;
const HTTP = 8080;
/** An app that resets every connection after its first bytes (RESET_APP). */
const RESET = 9100;
const SMESH_VIP = '198.19.21.10';
const ZT_VIP = '198.19.21.20';
const spiffe = (ns: string, sa: string) => `spiffe://${TD}/ns/${ns}/sa/${sa}`;
const principal = (ns: string, sa: string) => `${TD}/ns/${ns}/sa/${sa}`;

function peerProblem(): string | null {
  const p = privilegeProblem();
  if (p) return p;
  try {
    execFileSync(PEER_PYTHON, ['-c', 'import h2.connection, ssl'], { stdio: 'pipe', timeout: 10_000 });
    return null;
  } catch {
    return `${PEER_PYTHON} cannot import h2 (install python3-h2: scripts/install-deps.sh)`;
  }
}
const problem = peerProblem();

type PeerResult = Record<string, any>;

/** Accepts, reads the first bytes, closes with SO_LINGER 0 (a TCP RST): the app side of RST_STREAM ↔ reset. */
const RESET_APP = String.raw`
import json, socket, struct, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("0.0.0.0", int(sys.argv[1]))); s.listen(16)
print(json.dumps({"listening": s.getsockname()[1], "app": "reset"}), flush=True)
while True:
    c, _ = s.accept(); c.recv(4096); c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)); c.close()
`;

describe.skipIf(problem !== null)(`ztunnel interop e2e${problem ? ` (skipped: ${problem})` : ''}`, () => {
  let topo: Topology | undefined;
  const agents: AgentHandle[] = [];
  let setupError: Error | null = null;
  let cfgDir = '';
  /** node3's "ztunnel" inbound in each node3 pod that serves (zt-server with its own certificate, zt-imposter with zt-server's). */
  let ztServer: CapturedProcess;
  let ztImposter: CapturedProcess;
  const certs: Record<string, LeafFiles> = {};
  const services: ServiceSpec[] = [
    {
      name: 'server',
      namespace: 'shop',
      vip: SMESH_VIP,
      ports: [
        { name: 'tcp-echo', port: TCP, targetPort: TCP },
        { name: 'http', port: 80, targetPort: HTTP },
      ],
      selector: { app: 'server' },
    },
    {
      name: 'zt-server',
      namespace: 'legacy',
      vip: ZT_VIP,
      ports: [
        { name: 'tcp-echo', port: TCP, targetPort: TCP },
        { name: 'http', port: 80, targetPort: HTTP },
      ],
      selector: { app: 'zt-server' },
    },
  ];
  const ids = {
    client: spiffe('front', 'client-sa'),
    server: spiffe('shop', 'server-sa'),
    ztClient: spiffe('legacy', 'zt-client-sa'),
    ztServer: spiffe('legacy', 'zt-server-sa'),
  };

  beforeEach(() => {
    if (setupError) throw setupError;
  });

  beforeAll(async () => {
    try {
      if (!fs.existsSync(AGENT_CLI)) throw new Error(`${AGENT_CLI} not found: build first (npx tsc -p tsconfig.json)`);
      topo = await createTopology({
        nodes: ['node1', 'node2', 'node3'],
        pods: [
          { name: 'client', node: 'node1', namespace: 'front', serviceAccount: 'client-sa' },
          { name: 'server', node: 'node2', namespace: 'shop', serviceAccount: 'server-sa' },
          // node3 runs no smesh agent: its pods are mesh workloads (listed, HBONE) served by the Python "ztunnel".
          { name: 'zt-server', node: 'node3', namespace: 'legacy', serviceAccount: 'zt-server-sa', netnsAnnotation: false },
          { name: 'zt-client', node: 'node3', namespace: 'legacy', serviceAccount: 'zt-client-sa', netnsAnnotation: false },
          { name: 'zt-imposter', node: 'node3', namespace: 'legacy', serviceAccount: 'zt-imposter-sa', netnsAnnotation: false },
        ],
      });
      cfgDir = topo.makeTempDir('config');
      // The mesh root, made before any agent starts (the agents load it from <config>/ca), and the node3 peers' workload
      // certificates issued from it. Signing uses a copy so openssl's serial file never lands in the watched CA dir.
      const made = makeCa(topo.makeTempDir('root'), 'smesh-test interop mesh root');
      fs.mkdirSync(path.join(cfgDir, 'ca'), { recursive: true });
      fs.copyFileSync(made.cert, path.join(cfgDir, 'ca', 'root-cert.pem'));
      fs.copyFileSync(made.key, path.join(cfgDir, 'ca', 'root-key.pem'));
      const certDir = topo.makeTempDir('peer-certs');
      certs.ztClient = issueLeaf(certDir, made, ids.ztClient, 'zt-client');
      certs.ztServer = issueLeaf(certDir, made, ids.ztServer, 'zt-server');

      await Promise.all([
        topo.startApp('server', 'echo-server', ['--port', String(TCP)]),
        topo.startApp('server', 'http-server', ['--port', String(HTTP), '--pod', 'server']),
        topo.startApp('zt-server', 'echo-server', ['--port', String(TCP)]),
        topo.startApp('zt-server', 'http-server', ['--port', String(HTTP), '--pod', 'zt-server']),
        topo.startApp('zt-imposter', 'echo-server', ['--port', String(TCP)]),
        ...['server', 'zt-server'].map((p) => topo!.spawnInPod(p, PEER_PYTHON, ['-c', RESET_APP, String(RESET)]).waitForLine(/"listening"/, 10_000)),
      ]);
      const peerServer = async (pod: string, leaf: LeafFiles) => {
        const p = topo!.spawnInPod(pod, PEER_PYTHON, [PEER_SCRIPT, 'server', '--listen', `0.0.0.0:${HBONE_PORT}`, '--cert', leaf.cert, '--key', leaf.key, '--ca', leaf.ca, '--trust-domain', TD]);
        await p.waitForLine(/"listening"/, 10_000);
        return p;
      };
      ztServer = await peerServer('zt-server', certs.ztServer);
      // Serves zt-server's certificate from zt-imposter's address: a workload that is not the one dialled.
      ztImposter = await peerServer('zt-imposter', certs.ztServer);

      topo.writeConfig(cfgDir, { services });
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
        fs.writeFileSync(path.join(keep, `ztunnel-interop-agent-${i}-${a.node.name}.log`), a.logs());
      }
    }
    if (keep) {
      if (ztServer) fs.writeFileSync(path.join(keep, 'ztunnel-interop-zt-server.log'), ztServer.outputText());
      if (ztImposter) fs.writeFileSync(path.join(keep, 'ztunnel-interop-zt-imposter.log'), ztImposter.outputText());
    }
    await topo?.cleanup();
  }, 60_000);

  const pod = (name: string): PodInfo => topo!.pod(name);

  /** Runs the Python HBONE client in a node3 pod's namespace (the ztunnel's outbound) and returns its JSON line. */
  async function peerClient(host: string, authority: string, expectId: string, extra: string[], leaf: LeafFiles = certs.ztClient!): Promise<PeerResult> {
    const proc = topo!.spawnInPod('zt-client', PEER_PYTHON, [
      PEER_SCRIPT,
      'client',
      '--host',
      host,
      '--port',
      String(HBONE_PORT),
      '--cert',
      leaf.cert,
      '--key',
      leaf.key,
      '--ca',
      leaf.ca,
      '--expect-id',
      expectId,
      '--authority',
      authority,
      '--timeout',
      '8',
      '--forwarded',
      'auto',
      '--baggage',
      'k8s.cluster.name=Kubernetes,k8s.namespace.name=legacy,k8s.pod.name=zt-client,service.name=zt-client,service.version=latest',
      ...extra,
    ]);
    const r = await waitExit(proc, 15_000);
    if (r.timedOut) throw new Error(`peer client timed out; output:\n${tail(proc.outputText())}`);
    return lastJsonLine<PeerResult>(r.stdout);
  }

  /**
   * The Python server's record of the stream whose first client bytes contain `marker`: `stream_data` as soon as
   * they arrive, `stream` once the stream has ended (a pooled HTTP/1.1 keep-alive tunnel may stay open).
   */
  async function streamSeen(server: CapturedProcess, marker: string, event: 'stream_data' | 'stream' = 'stream'): Promise<PeerResult> {
    const escaped = marker.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
    await server.waitForLine(new RegExp(`"event": "${event}".*${escaped}`), 10_000);
    return jsonRecords(server.stdoutText()).find((r) => r['event'] === event && String(r['head']).includes(marker))!;
  }

  function connectionOf(server: CapturedProcess, stream: PeerResult): PeerResult | undefined {
    return jsonRecords(server.stdoutText()).find((r) => r['event'] === 'connection' && r['peer'] === stream['peer']);
  }

  /** Polls until the CONNECT statuses the node3 client gets for the TCP and HTTP ports of `server` are `want` (config changes take a moment to reach the agents). */
  async function expectConnectStatus(want: { tcp: number; http: number }): Promise<void> {
    const server = pod('server');
    const statuses = (results: PeerResult[]) => ({ tcp: Number(results[0]!.status ?? 0), http: Number(results[1]!.status ?? 0) });
    const last = await pollUntil(
      () =>
        Promise.all([peerClient(server.ip, `${server.ip}:${TCP}`, ids.server, ['--send', 'policy-probe']), peerClient(server.ip, `${server.ip}:${HTTP}`, ids.server, ['--http-get', '/policy-probe'])]),
      (results) => statuses(results).tcp === want.tcp && statuses(results).http === want.http,
      20_000,
      200,
    );
    const seen = statuses(last);
    expect(seen, JSON.stringify(last)).toEqual(want);
    if (want.tcp === 200) expect(last[0]!.received).toBe('policy-probe');
    if (want.http === 200) expect(last[1]!.http?.status).toBe(200);
  }

  const policy = (name: string, spec: Record<string, unknown>) => ({ apiVersion: 'security.istio.io/v1', kind: 'AuthorizationPolicy', metadata: { name, namespace: 'shop' }, spec });

  it('the peers speak HBONE to each other on node3, where smesh is not involved (harness check)', async () => {
    const zt = pod('zt-server');
    const r = await peerClient(zt.ip, `${zt.ip}:${TCP}`, ids.ztServer, ['--send', 'zt-to-zt-marker']);
    expect(r, JSON.stringify(r)).toMatchObject({ ok: true, status: 200, received: 'zt-to-zt-marker', tls: 'TLSv1.3', alpn: 'h2', serverId: ids.ztServer });
    const s = await streamSeen(ztServer, 'zt-to-zt-marker');
    expect(s).toMatchObject({ clientId: ids.ztClient, authority: `${zt.ip}:${TCP}`, status: 200, clientEnd: 'fin', upstreamEnd: 'fin' });
  });

  describe('ztunnel → smesh: a node3 peer dials `<smesh pod IP>:15008` on node2', () => {
    it("TCP: TLS 1.3, h2, the server is the pod's workload identity; bytes echo with half-close, also 2 × 6 MiB on one connection", async () => {
      const server = pod('server');
      const r = await peerClient(server.ip, `${server.ip}:${TCP}`, ids.server, ['--send', 'zt-to-smesh-tcp']);
      expect(r, JSON.stringify(r)).toMatchObject({ ok: true, status: 200, received: 'zt-to-smesh-tcp', end: 'fin', tls: 'TLSv1.3', alpn: 'h2', serverId: ids.server });
      const bulk = await peerClient(server.ip, `${server.ip}:${TCP}`, ids.server, ['--send-bytes', String(6 << 20), '--streams', '2']);
      expect(bulk.ok, JSON.stringify({ ...bulk, received: undefined, streams: undefined })).toBe(true);
      for (const s of bulk.streams) expect([s.status, s.end, s.receivedBytes, s.receivedSha256]).toEqual([200, 'fin', bulk.sentBytes, bulk.sentSha256]);
      const m = parseMetrics(await agents[1]!.metrics());
      expect(
        sum(m, 'istio_tcp_connections_opened_total', { reporter: 'destination', destination_workload: 'server', source_principal: ids.ztClient }),
        describeSeries(m, ['istio_tcp_connections_opened_total']),
      ).toBeGreaterThanOrEqual(3);
    });

    it('HTTP: an HTTP/1.1 request through the tunnel reaches the http app on node2', async () => {
      const server = pod('server');
      const r = await peerClient(server.ip, `${server.ip}:${HTTP}`, ids.server, ['--http-get', '/zt-to-smesh-http']);
      expect(r, JSON.stringify(r)).toMatchObject({ ok: true, status: 200, serverId: ids.server });
      expect(r.http).toMatchObject({ status: 200, body: { pod: 'server', method: 'GET', url: '/zt-to-smesh-http' } });
    });

    it('a reset by the app on node2 reaches the peer as RST_STREAM (after 200), not as END_STREAM', async () => {
      const server = pod('server');
      const r = await peerClient(server.ip, `${server.ip}:${RESET}`, ids.server, ['--send', 'zt-to-smesh-reset']);
      expect([r.status, r.end, r.receivedBytes], JSON.stringify(r)).toEqual([200, 'reset', 0]);
    });

    it('AuthorizationPolicy on the smesh side: DENY of the node3 identity → 401, ALLOW of it → 200, ALLOW of another identity only → 401', async () => {
      const selector = { matchLabels: { app: 'server' } };
      const from = (p: string) => [{ from: [{ source: { principals: [p] } }] }];
      const before = sum(parseMetrics(await agents[1]!.metrics()), 'smesh_policy_denials_total');
      try {
        topo!.writeConfig(cfgDir, { services, extraDocs: [policy('deny-zt-client', { selector, action: 'DENY', rules: from(principal('legacy', 'zt-client-sa')) })] });
        await expectConnectStatus({ tcp: 401, http: 401 });
        expect(sum(parseMetrics(await agents[1]!.metrics()), 'smesh_policy_denials_total')).toBeGreaterThan(before);
        topo!.writeConfig(cfgDir, { services, extraDocs: [policy('allow-zt-client', { selector, action: 'ALLOW', rules: from(principal('legacy', 'zt-client-sa')) })] });
        await expectConnectStatus({ tcp: 200, http: 200 });
        topo!.writeConfig(cfgDir, { services, extraDocs: [policy('allow-someone-else', { selector, action: 'ALLOW', rules: from(principal('front', 'client-sa')) })] });
        await expectConnectStatus({ tcp: 401, http: 401 });
      } finally {
        topo!.writeConfig(cfgDir, { services });
      }
      await expectConnectStatus({ tcp: 200, http: 200 });
    });
  });

  describe('smesh → ztunnel: a smesh pod on node1 reaches a node3 pod through `<node3 pod IP>:15008`', () => {
    async function expectSeenByZtunnel(marker: string, authority: string): Promise<void> {
      const s = await streamSeen(ztServer, marker, 'stream_data');
      expect(s, JSON.stringify(s)).toMatchObject({ clientId: ids.client, authority, local: `${pod('zt-server').ip}:${HBONE_PORT}` });
      expect(connectionOf(ztServer, s), 'the connection that carried the stream').toMatchObject({ tls: 'TLSv1.3', alpn: 'h2', sni: null, clientId: ids.client, refused: null });
    }

    it("TCP by pod IP and by Service VIP: the peer sees the client's workload identity; bytes flow back, half-close both ways, 4 MiB intact", async () => {
      const zt = pod('zt-server');
      const direct = await topo!.runClient('client', ['tcp', '--host', zt.ip, '--port', String(TCP), '--send', 'smesh-to-zt-pod', '--expect', 'smesh-to-zt-pod'], 12_000);
      expect(direct.ok, JSON.stringify(direct)).toBe(true);
      await expectSeenByZtunnel('smesh-to-zt-pod', `${zt.ip}:${TCP}`);
      const s = await streamSeen(ztServer, 'smesh-to-zt-pod');
      expect([s.method, s.status, s.clientEnd, s.upstreamEnd, s.bytesFromClient, s.bytesToClient]).toEqual(['CONNECT', 200, 'fin', 'fin', 15, 15]);

      const viaVip = await topo!.runClient('client', ['tcp', '--host', ZT_VIP, '--port', String(TCP), '--send', 'smesh-to-zt-vip', '--expect', 'smesh-to-zt-vip'], 12_000);
      expect(viaVip.ok, JSON.stringify(viaVip)).toBe(true);
      await expectSeenByZtunnel('smesh-to-zt-vip', `${zt.ip}:${TCP}`);

      const bulk = await topo!.runClient('client', ['tcp', '--host', zt.ip, '--port', String(TCP), '--send', 'smesh-to-zt-bulk:0123456789abcdef', '--repeat', String(1 << 17)], 20_000);
      expect([bulk.ok, bulk.receivedBytes, bulk.receivedSha256], JSON.stringify({ ...bulk, received: undefined })).toEqual([true, bulk.sentBytes, bulk.sentSha256]);

      const m = parseMetrics(await agents[0]!.metrics());
      expect(
        sum(m, 'istio_tcp_connections_opened_total', { reporter: 'source', source_workload: 'client', destination_workload: 'zt-server' }),
        describeSeries(m, ['istio_tcp_connections_opened_total']),
      ).toBeGreaterThanOrEqual(3);
    });

    it('HTTP by pod IP and by Service VIP: the request arrives as HTTP/1.1 bytes in the CONNECT stream and the answer flows back', async () => {
      const zt = pod('zt-server');
      const direct = await topo!.runClient('client', ['http', '--url', `http://${zt.ip}:${HTTP}/smesh-to-zt-http-pod`], 12_000);
      expect(direct, JSON.stringify(direct)).toMatchObject({ ok: true, status: 200, body: { pod: 'zt-server', url: '/smesh-to-zt-http-pod' } });
      await expectSeenByZtunnel('GET /smesh-to-zt-http-pod', `${zt.ip}:${HTTP}`);
      const viaVip = await topo!.runClient('client', ['http', '--url', `http://${ZT_VIP}/smesh-to-zt-http-vip`], 12_000);
      expect(viaVip, JSON.stringify(viaVip)).toMatchObject({ ok: true, status: 200, body: { pod: 'zt-server', url: '/smesh-to-zt-http-vip' } });
      await expectSeenByZtunnel('GET /smesh-to-zt-http-vip', `${zt.ip}:${HTTP}`);
    });

    it('a reset by the app on node3 (the peer answers RST_STREAM) reaches the smesh client as a TCP reset', async () => {
      const zt = pod('zt-server');
      const r = await topo!.runClient('client', ['tcp', '--host', zt.ip, '--port', String(RESET), '--send', 'smesh-to-zt-reset'], 12_000);
      expect([r.ok, r.connected, r.error?.code], JSON.stringify(r)).toEqual([false, true, 'ECONNRESET']);
      const s = await streamSeen(ztServer, 'smesh-to-zt-reset');
      expect([s.clientId, s.status, s.note], JSON.stringify(s)).toEqual([ids.client, 200, 'app reset']);
    });

    it("a node3 peer presenting another workload's certificate is refused: the connection fails and no stream reaches it", async () => {
      const imposter = pod('zt-imposter');
      const r = await topo!.runClient('client', ['tcp', '--host', imposter.ip, '--port', String(TCP), '--send', 'to-the-imposter', '--expect', 'to-the-imposter'], 15_000);
      expect(r.ok, JSON.stringify(r)).toBe(false);
      expect(r.received ?? '').toBe('');
      expect(
        jsonRecords(ztImposter.stdoutText()).filter((x) => x['event'] === 'stream'),
        ztImposter.outputText(),
      ).toEqual([]);
      // smesh did dial it (TLS got as far as the certificates: the imposter saw a connection, or a handshake the client
      // abandoned after reading the server's certificate) and refused the identity, counted as such.
      const dialled = jsonRecords(ztImposter.stdoutText()).filter((x) => (x['event'] === 'connection' && x['clientId'] === ids.client) || x['event'] === 'handshake_failed');
      expect(dialled.length, ztImposter.outputText()).toBeGreaterThanOrEqual(1);
      const m = parseMetrics(await agents[0]!.metrics());
      expect(sum(m, 'smesh_hbone_handshake_failures_total', { direction: 'outbound', reason: 'wrong_identity' }), describeSeries(m, ['smesh_hbone_handshake_failures_total'])).toBeGreaterThanOrEqual(
        1,
      );
    });
  });
});
