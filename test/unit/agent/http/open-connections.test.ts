// Policy changes reach open and pooled connections, and a pooled connection to a restarted app is not a hang: HttpOutbound → HBONE → InboundProxy (with the connection tracker) → app, all real on 127.0.0.1.
import * as http from 'node:http';
import * as http2 from 'node:http2';
import * as net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LocalCa } from '../../../../core/identity/local-ca';
import type { IdentityManager } from '../../../../agent/identity/manager';
import { nodeSpiffeId } from '../../../../core/identity/spiffe';
import { HboneClient } from '../../../../agent/proxy/hbone-client';
import { InboundProxy } from '../../../../agent/proxy/inbound-proxy';
import { ConnectionTracker, policyInputsChanged } from '../../../../agent/proxy/connection-tracker';
import { InboundHttp } from '../../../../agent/http/inbound-http';
import { HttpOutbound } from '../../../../agent/http/outbound-http';
import { createAuthorizer } from '../../../../agent/policy/authorizer';
import { convertAuthorizationPolicy } from '../../../../control/config/authorization';
import { StateStore } from '../../../../agent/state/store';
import type { AuthorizationPolicy } from '../../../../core/policy/types';
import type { MeshSnapshot, Service, Workload } from '../../../../core/model/types';
import { MeshMetrics } from '../../../../agent/telemetry/metrics';
import '../../../../core/identity/reflect-polyfill';
import { identities, listen, meshCa, TD, waitFor, wl } from '../../fixtures/proxy';

function policy(name: string, spec: unknown): AuthorizationPolicy {
  const r = convertAuthorizationPolicy(name, 'default', spec);
  if (!r.policy) throw new Error(JSON.stringify(r.problems));
  return r.policy;
}

const DENY_ADMIN = policy('deny-admin', { selector: { matchLabels: { app: 'web' } }, action: 'DENY', rules: [{ to: [{ operation: { paths: ['/admin*'] } }] }] });
const ALLOW_OTHERS = policy('allow-others', { selector: { matchLabels: { app: 'web' } }, action: 'ALLOW', rules: [{ from: [{ source: { namespaces: ['elsewhere'] } }] }] });

interface Answer {
  status: number;
  body: string;
  reused: boolean;
  ms: number;
}

/** An app server that can be restarted on the same port (as a pod's process). */
class App {
  server?: http.Server;
  port = 0;
  constructor(private readonly host: string) {}
  async start(): Promise<void> {
    const s = http.createServer((req, res) => {
      req.resume();
      req.on('end', () => res.end(`ok ${req.method} ${req.url}`));
    });
    s.on('upgrade', (_req, sock: net.Socket) => {
      sock.write('HTTP/1.1 101 Switching Protocols\r\nupgrade: echo\r\nconnection: upgrade\r\n\r\n');
      sock.pipe(sock);
    });
    await new Promise<void>((resolve, reject) => {
      s.once('error', reject);
      s.listen(this.port, this.host, () => resolve());
    });
    this.port = (s.address() as net.AddressInfo).port;
    this.server = s;
  }
  /** Exits as a process does: listener and every connection closed. */
  async stop(): Promise<void> {
    const s = this.server!;
    s.closeAllConnections();
    await new Promise<void>((r) => s.close(() => r()));
  }
}

/** The same as an h2c (prior knowledge) app. */
class H2App {
  server?: http2.Http2Server;
  port = 0;
  private readonly sockets = new Set<net.Socket>();
  constructor(private readonly host: string) {}
  async start(): Promise<void> {
    const s = http2.createServer();
    s.on('connection', (c: net.Socket) => {
      this.sockets.add(c);
      c.once('close', () => this.sockets.delete(c));
    });
    s.on('stream', (st, h) => {
      st.on('error', () => undefined);
      st.resume();
      st.on('end', () => {
        st.respond({ ':status': 200 });
        st.end(`ok ${h[':method']} ${h[':path']}`);
      });
    });
    await new Promise<void>((resolve, reject) => {
      s.once('error', reject);
      s.listen(this.port, this.host, () => resolve());
    });
    this.port = (s.address() as net.AddressInfo).port;
    this.server = s;
  }
  async stop(): Promise<void> {
    for (const c of this.sockets) c.destroy();
    await new Promise<void>((r) => this.server!.close(() => r()));
  }
}

describe('policy changes on open connections; pooled connections to a restarted app', () => {
  let ca: LocalCa;
  let cleanupCa: () => Promise<void>;
  let node1Ids: IdentityManager;
  let node2Ids: IdentityManager;
  let hbone: HboneClient;
  let inbound: InboundProxy;
  let outbound: HttpOutbound;
  let front: net.Server;
  let state: StateStore;
  const metrics = new MeshMetrics();
  const near = new App('127.0.0.2');
  const far = new App('127.0.0.3');
  const near2 = new H2App('127.0.0.2');
  const far2 = new H2App('127.0.0.3');
  const src = wl('client-1', '127.0.0.1', 'node1');
  let services: Service[] = [];
  let tracker: ConnectionTracker;
  /** Whether the inbound treats the far pod's ports as HTTP: not at first (tunnels relayed raw), as if a Service port were renamed http-* later. */
  let farHttp: 'http' | undefined;

  /** The web workloads as the control plane sends them: with references to the policies that select them (xDS). */
  function publish(policies: AuthorizationPolicy[]): void {
    const refs = policies.map((p) => `${p.namespace}/${p.name}`);
    const web = (name: string, ip: string, node: string): Workload => ({ ...wl(name, ip, node), labels: { app: 'web' }, authorizationPolicies: refs });
    const snap: MeshSnapshot = {
      trustDomain: TD,
      nodes: new Map([
        ['node1', { name: 'node1', address: '127.0.0.1' }],
        ['node2', { name: 'node2', address: '127.0.0.1' }],
      ]),
      workloads: new Map([src, web('web-near', '127.0.0.2', 'node1'), web('web-far', '127.0.0.3', 'node2')].map((w) => [w.uid, w])),
      services: new Map(services.map((s) => [s.key, s])),
      namespaces: new Map([['default', {}]]),
      authorizationPolicies: policies,
    };
    state.replace(snap);
  }

  beforeAll(async () => {
    ({ ca, cleanup: cleanupCa } = await meshCa());
    node1Ids = await identities(ca, nodeSpiffeId(TD, 'node1'), [src.identity]);
    node2Ids = await identities(ca, nodeSpiffeId(TD, 'node2'));
    await near.start();
    await far.start();
    await near2.start();
    await far2.start();
    services = [
      { key: 'default/near', name: 'near', namespace: 'default', vips: ['10.96.0.31'], ports: [{ name: 'http', port: 80, targetPort: near.port }], selector: {}, endpointUids: ['default/web-near'] },
      { key: 'default/far', name: 'far', namespace: 'default', vips: ['10.96.0.32'], ports: [{ name: 'http', port: 80, targetPort: far.port }], selector: {}, endpointUids: ['default/web-far'] },
      {
        key: 'default/near2',
        name: 'near2',
        namespace: 'default',
        vips: ['10.96.0.33'],
        ports: [{ name: 'http2', port: 80, targetPort: near2.port }],
        selector: {},
        endpointUids: ['default/web-near'],
      },
      { key: 'default/far2', name: 'far2', namespace: 'default', vips: ['10.96.0.34'], ports: [{ name: 'http2', port: 80, targetPort: far2.port }], selector: {}, endpointUids: ['default/web-far'] },
    ] as Service[];
    state = new StateStore();
    publish([]);
    const authorize = createAuthorizer({ state, denials: metrics.policyDenials });
    tracker = new ConnectionTracker({ decide: authorize.decide, closed: metrics.policyConnectionsClosed });
    state.onChange((next, prev) => {
      if (policyInputsChanged(prev, next)) tracker.reevaluate();
    });
    inbound = new InboundProxy({
      identities: node2Ids,
      nodeId: nodeSpiffeId(TD, 'node2'),
      listen: { host: '127.0.0.1', port: 0 },
      state,
      resolveLocal: (ip, p) => (ip === '127.0.0.3' && (p === far.port || p === far2.port) ? { workload: state.workloadByIp(ip) } : undefined),
      httpProtocolOf: () => farHttp,
      httpTunnels: new InboundHttp({ authorize, metrics, connections: tracker }),
      authorize,
      connections: tracker,
      metrics,
    });
    await inbound.start();
    hbone = new HboneClient({ identities: node1Ids });
    // The in-process inbound stands in for the remote node's agent (pod-addressed HBONE needs the in-pod capture: test/e2e/pod-hbone).
    outbound = new HttpOutbound({ state, hbone, nodeName: 'node1', hbonePort: inbound.address().port, hboneAddressing: 'node', authorize, metrics, connections: tracker });
    front = net.createServer((sock) => {
      const svc = services[{ '127.0.0.5': 1, '127.0.0.6': 2, '127.0.0.7': 3 }[sock.localAddress ?? ''] ?? 0]!;
      outbound.handle(sock, { source: src, sourceIp: '127.0.0.1', service: svc, port: svc.ports[0]! });
    });
    await listen(front, '0.0.0.0');
  });

  afterAll(async () => {
    outbound?.close();
    await new Promise<void>((r) => front?.close(() => r()));
    hbone?.close();
    await inbound?.close();
    await near.stop().catch(() => undefined);
    await far.stop().catch(() => undefined);
    await near2.stop().catch(() => undefined);
    await far2.stop().catch(() => undefined);
    node1Ids?.close();
    node2Ids?.close();
    await cleanupCa?.();
  });

  /** A client holding one kept-alive connection to the outbound (near: 127.0.0.4, far: 127.0.0.5). */
  function client(to: 'near' | 'far'): { send: (method: string, path: string, body?: string) => Promise<Answer>; close: () => void } {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const host = to === 'near' ? '127.0.0.4' : '127.0.0.5';
    const send = (method: string, path: string, body?: string) =>
      new Promise<Answer>((resolve, reject) => {
        const t0 = Date.now();
        const q = http.request({ host, port: (front.address() as net.AddressInfo).port, method, path, agent }, (res) => {
          let text = '';
          res.on('data', (d: Buffer) => (text += d.toString()));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text, reused: q.reusedSocket, ms: Date.now() - t0 }));
        });
        q.setTimeout(5000, () => q.destroy(new Error('client timeout: no response in 5 s')));
        q.on('error', reject);
        q.end(body);
      });
    return { send, close: () => agent.destroy() };
  }

  const closed = async (reason: string) => (await metrics.policyConnectionsClosed.get()).values.filter((v) => v.labels.reason === reason).reduce((a, v) => a + v.value, 0);

  it('a DENY on /admin applies to the next request on kept-alive connections; a pooled raw HBONE stream to a port that became HTTP is closed (l7_inspection) and the next one is inspected', async () => {
    for (const to of ['near', 'far'] as const) {
      const c = client(to);
      try {
        expect((await c.send('GET', '/admin/1')).status).toBe(200);
        expect((await c.send('GET', '/admin/2')).reused).toBe(true);
      } finally {
        c.close();
      }
    }
    const near1 = client('near');
    const far1 = client('far');
    expect((await near1.send('GET', '/admin')).status).toBe(200);
    expect((await far1.send('GET', '/admin')).status).toBe(200);
    expect(tracker.size).toBeGreaterThanOrEqual(1); // the far pooled stream, relayed raw at the inbound
    farHttp = 'http';
    publish([DENY_ADMIN]);
    expect(await closed('l7_inspection')).toBeGreaterThanOrEqual(1);
    for (const c of [near1, far1]) {
      const denied = await c.send('GET', '/admin/x');
      expect(denied.status, denied.body).toBe(403);
      expect(denied.reused).toBe(true);
      expect((await c.send('GET', '/public')).status).toBe(200);
    }
    near1.close();
    far1.close();
    publish([]);
  });

  it('a new workload-level ALLOW applies on the same-node path and across nodes, to open connections too', async () => {
    const near1 = client('near');
    const far1 = client('far');
    expect((await near1.send('GET', '/')).status).toBe(200);
    expect((await far1.send('GET', '/')).status).toBe(200);
    publish([ALLOW_OTHERS]);
    for (const c of [near1, far1]) {
      const r = await c.send('GET', '/');
      expect(r.status, r.body).toBe(403);
    }
    near1.close();
    far1.close();
    publish([]);
  });

  it('after the app restarts, the next request over the pooled upstream connection succeeds at once (GET and a buffered POST, same node and across nodes)', async () => {
    for (const [to, app] of [
      ['near', near],
      ['far', far],
    ] as const) {
      const c = client(to);
      try {
        expect((await c.send('GET', '/before')).status).toBe(200);
        for (const method of ['GET', 'POST']) {
          await app.stop();
          await app.start();
          const r = await c.send(method, '/after', method === 'POST' ? 'body' : undefined);
          expect(r.status, `${to} ${method}: ${r.body}`).toBe(200);
          expect(r.body).toBe(`ok ${method} /after`);
          expect(r.ms).toBeLessThan(2000);
        }
      } finally {
        c.close();
      }
    }
  });
  it('after the app restarts, a request whose body cannot be replayed either succeeds or fails fast with 503 UC (never hangs)', async () => {
    for (const [to, app] of [
      ['near', near],
      ['far', far],
    ] as const) {
      const c = client(to);
      try {
        expect((await c.send('GET', '/before')).status).toBe(200);
        await app.stop();
        await app.start();
        const r = await c.send('POST', '/big', 'x'.repeat(100 * 1024)); // past MAX_RETRY_BODY
        expect([200, 503], `${to}: ${r.status} ${r.body}`).toContain(r.status);
        if (r.status === 503) expect(r.body).toMatch(/pooled connection closed by the upstream/);
        expect(r.ms).toBeLessThan(2000);
        expect((await c.send('GET', '/next')).status).toBe(200);
      } finally {
        c.close();
      }
    }
  });

  it('HTTP/2: after the app restarts, the next stream gets a new upstream session at once (same node and across nodes)', async () => {
    for (const [host, app] of [
      ['127.0.0.6', near2],
      ['127.0.0.7', far2],
    ] as const) {
      const session = http2.connect(`http://${host}:${(front.address() as net.AddressInfo).port}`);
      session.on('error', () => undefined);
      const get = (path: string, method = 'GET') =>
        new Promise<{ status: number; body: string; ms: number }>((resolve, reject) => {
          const t0 = Date.now();
          const q = session.request({ ':path': path, ':method': method });
          let status = 0;
          let body = '';
          q.on('response', (h) => (status = Number(h[':status'])));
          q.on('data', (d: Buffer) => (body += d.toString()));
          q.on('end', () => resolve({ status, body, ms: Date.now() - t0 }));
          q.on('error', reject);
          q.setTimeout(5000, () => q.close(http2.constants.NGHTTP2_CANCEL));
          q.end(method === 'POST' ? 'body' : undefined);
        });
      try {
        expect((await get('/before')).status).toBe(200);
        for (const method of ['GET', 'POST']) {
          await app.stop();
          await app.start();
          const r = await get('/after', method);
          expect(r.status, `${host} ${method}: ${r.body}`).toBe(200);
          expect(r.ms).toBeLessThan(2000);
        }
      } finally {
        session.destroy();
      }
    }
  });

  it('an upgraded (WebSocket) connection that a new DENY on its path covers is closed and counted (same node at the outbound, across nodes at the inbound)', async () => {
    for (const host of ['127.0.0.4', '127.0.0.5']) await upgradeThenDeny(host);
  });

  async function upgradeThenDeny(host: string): Promise<void> {
    const sock = net.connect({ host, port: (front.address() as net.AddressInfo).port });
    sock.on('error', () => undefined);
    let got = '';
    let isClosed = false;
    sock.on('data', (d: Buffer) => (got += d.toString()));
    sock.once('close', () => (isClosed = true));
    sock.write('GET /ws HTTP/1.1\r\nhost: near\r\nconnection: upgrade\r\nupgrade: echo\r\n\r\n');
    await waitFor(() => got.includes('\r\n\r\n'));
    expect(got).toMatch(/^HTTP\/1.1 101/);
    got = '';
    sock.write('ping');
    await waitFor(() => got === 'ping');
    const before = await closed('policy_denied');
    publish([policy('deny-ws', { selector: { matchLabels: { app: 'web' } }, action: 'DENY', rules: [{ to: [{ operation: { paths: ['/ws'] } }] }] })]);
    await waitFor(() => isClosed);
    expect(await closed('policy_denied')).toBe(before + 1);
    publish([]);
  }
});
