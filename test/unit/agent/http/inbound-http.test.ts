// L7 authorization at the inbound: HBONE tunnels to an HTTP port parsed per request (HTTP/1.1 and HTTP/2 over real TLS), denials answered 403 while the tunnel and other tunnels keep working.
import * as http from 'node:http';
import * as http2 from 'node:http2';
import type * as net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LocalCa } from '../../../../core/identity/local-ca';
import type { IdentityManager } from '../../../../agent/identity/manager';
import { nodeSpiffeId, workloadSpiffeId } from '../../../../core/identity/spiffe';
import { HboneClient } from '../../../../agent/proxy/hbone-client';
import { InboundProxy } from '../../../../agent/proxy/inbound-proxy';
import { InboundHttp, RBAC_DENIED_BODY, TunnelSocket } from '../../../../agent/http/inbound-http';
import { createAuthorizer } from '../../../../agent/policy/authorizer';
import { convertAuthorizationPolicy } from '../../../../control/config/authorization';
import type { AuthorizationPolicy } from '../../../../core/policy/types';
import type { Workload } from '../../../../core/model/types';
import { MeshMetrics } from '../../../../agent/telemetry/metrics';
import '../../../../core/identity/reflect-polyfill';
import { echoServer, identities, listen, meshCa, readAll, TD } from '../../fixtures/proxy';

const NODE = nodeSpiffeId(TD, 'node2');
const ALICE = workloadSpiffeId(TD, 'default', 'alice');
const BOB = workloadSpiffeId(TD, 'default', 'bob');

function policy(name: string, spec: unknown): AuthorizationPolicy {
  const r = convertAuthorizationPolicy(name, 'default', spec);
  if (!r.policy) throw new Error(JSON.stringify(r.problems));
  return r.policy;
}

const SERVER: Workload = {
  uid: 'server',
  name: 'server',
  namespace: 'default',
  labels: { app: 'server' },
  ip: '127.0.0.1',
  node: 'node2',
  identity: workloadSpiffeId(TD, 'default', 'server'),
} as unknown as Workload;

describe('inbound L7 authorization inside HBONE', () => {
  let ca: LocalCa;
  let cleanupCa: () => Promise<void>;
  let serverIds: IdentityManager;
  let clientIds: IdentityManager;
  let h1: http.Server;
  let h2: http2.Http2Server;
  let echo: ReturnType<typeof echoServer>;
  let h1Port = 0;
  let h2Port = 0;
  let tcpPort = 0;
  let inbound: InboundProxy;
  let port = 0;
  let client: HboneClient;
  const metrics = new MeshMetrics();
  let policies: AuthorizationPolicy[] = [];
  const upstreamSeen: string[] = [];

  beforeAll(async () => {
    ({ ca, cleanup: cleanupCa } = await meshCa());
    serverIds = await identities(ca, NODE);
    clientIds = await identities(ca, nodeSpiffeId(TD, 'node1'), [ALICE, BOB]);
    h1 = http.createServer((req, res) => {
      upstreamSeen.push(`h1 ${req.method} ${req.url}`);
      void readAll(req).then((body) => {
        res.setHeader('x-pod', 'server');
        res.end(`h1 ${req.method} ${req.url} ${body.length}`);
      });
    });
    h1.on('upgrade', (req, socket: net.Socket, head: Buffer) => {
      upstreamSeen.push(`upgrade ${req.url}`);
      socket.write('HTTP/1.1 101 Switching Protocols\r\nupgrade: echo\r\nconnection: upgrade\r\n\r\n');
      if (head.length) socket.write(head);
      socket.pipe(socket);
    });
    h1Port = await listen(h1);
    h2 = http2.createServer();
    h2.on('stream', (stream, headers) => {
      upstreamSeen.push(`h2 ${headers[':method']} ${headers[':path']}`);
      void readAll(stream).then((body) => {
        if (headers['content-type'] === 'application/grpc') {
          stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
          stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0', 'grpc-message': 'ok' }));
          stream.end(body);
          return;
        }
        stream.respond({ ':status': 200 });
        stream.end(`h2 ${headers[':method']} ${headers[':path']} ${body.length}`);
      });
    });
    h2Port = await listen(h2 as unknown as net.Server);
    echo = echoServer();
    tcpPort = await listen(echo.server);
    const authorize = createAuthorizer({ state: { snapshot: () => ({ authorizationPolicies: policies }) }, denials: metrics.policyDenials });
    inbound = new InboundProxy({
      identities: serverIds,
      nodeId: NODE,
      listen: { host: '127.0.0.1', port: 0 },
      resolveLocal: (ip, p) => (ip === '127.0.0.1' && [h1Port, h2Port, tcpPort].includes(p) ? { workload: SERVER } : undefined),
      httpProtocolOf: (_w, p) => (p === h1Port || p === h2Port ? 'http' : undefined),
      httpTunnels: new InboundHttp({ authorize, metrics }),
      authorize,
      metrics,
    });
    await inbound.start();
    port = inbound.address().port;
    client = new HboneClient({ identities: clientIds });
  });

  afterAll(async () => {
    client?.close();
    await inbound?.close();
    await new Promise<void>((r) => h1?.close(() => r()));
    await new Promise<void>((r) => h2?.close(() => r()));
    await echo?.close();
    clientIds?.close();
    serverIds?.close();
    await cleanupCa?.();
  });

  const tunnel = (source: string, destPort: number) => client.open({ sourceId: source, node: { host: '127.0.0.1', port }, expectedServerId: NODE, authority: `127.0.0.1:${destPort}` });

  /** Plain HTTP/1.1 requests, one after another, over one tunnel; returns "status body" per request. */
  async function h1Requests(source: string, reqs: Array<{ method: string; path: string; body?: string }>): Promise<string[]> {
    const t = await tunnel(source, h1Port);
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const sock = new TunnelSocket(t);
    (agent as unknown as { createConnection: () => unknown }).createConnection = () => sock;
    const out: string[] = [];
    try {
      for (const r of reqs) {
        out.push(
          await new Promise<string>((resolve, reject) => {
            const q = http.request({ host: '127.0.0.1', port: h1Port, method: r.method, path: r.path, agent }, (res) => {
              void readAll(res).then((b) => resolve(`${res.statusCode} ${b.toString()}`), reject);
            });
            q.on('error', reject);
            q.end(r.body);
          }),
        );
      }
    } finally {
      agent.destroy();
      t.destroy();
    }
    return out;
  }

  async function h2Requests(source: string, reqs: Array<{ method: string; path: string; grpc?: boolean }>): Promise<string[]> {
    const t = await tunnel(source, h2Port);
    const session = http2.connect(`http://127.0.0.1:${h2Port}`, { createConnection: () => new TunnelSocket(t) as unknown as net.Socket });
    session.on('error', () => undefined);
    try {
      return await Promise.all(
        reqs.map(
          (r) =>
            new Promise<string>((resolve, reject) => {
              const s = session.request({ ':method': r.method, ':path': r.path, ...(r.grpc ? { 'content-type': 'application/grpc' } : {}) });
              let status = 0;
              let trailer = '';
              s.on('response', (h) => (status = Number(h[':status'])));
              s.on('trailers', (h) => (trailer = ` grpc-status=${String(h['grpc-status'])}`));
              s.on('error', reject);
              void readAll(s).then((b) => resolve(`${status} ${b.toString()}${trailer}`), reject);
              s.end(r.method === 'POST' ? 'payload' : undefined);
            }),
        ),
      );
    } finally {
      session.destroy();
      t.destroy();
    }
  }

  it('HTTP/1.1: methods and paths are authorized per request on one tunnel; denials answer 403 and the tunnel goes on', async () => {
    policies = [policy('get-public', { selector: { matchLabels: { app: 'server' } }, action: 'ALLOW', rules: [{ to: [{ operation: { methods: ['GET'], paths: ['/public/*'] } }] }] })];
    const res = await h1Requests(ALICE, [
      { method: 'GET', path: '/public/a' },
      { method: 'GET', path: '/private' },
      { method: 'POST', path: '/public/b', body: 'x'.repeat(1000) },
      { method: 'GET', path: '/public/c' },
    ]);
    expect(res).toEqual([`200 h1 GET /public/a 0`, `403 ${RBAC_DENIED_BODY}`, `403 ${RBAC_DENIED_BODY}`, `200 h1 GET /public/c 0`]);
    expect(upstreamSeen).not.toContain('h1 GET /private');
  });

  it('a DENY rule on a path combined with a principal; the other principal passes', async () => {
    policies = [policy('deny-bob-admin', { action: 'DENY', rules: [{ from: [{ source: { principals: [BOB.replace('spiffe://', '')] } }], to: [{ operation: { paths: ['/admin*'] } }] }] })];
    expect(
      await h1Requests(BOB, [
        { method: 'GET', path: '/admin/x' },
        { method: 'GET', path: '/home' },
      ]),
    ).toEqual([`403 ${RBAC_DENIED_BODY}`, '200 h1 GET /home 0']);
    expect(await h1Requests(ALICE, [{ method: 'GET', path: '/admin/x' }])).toEqual(['200 h1 GET /admin/x 0']);
  });

  it('paths are normalized as Istio BASE before policy, and the pod receives the normalized path (HTTP/1.1, HTTP/2, Upgrade)', async () => {
    policies = [policy('deny-admin', { action: 'DENY', rules: [{ to: [{ operation: { paths: ['/admin', '/admin/*', '/ws-admin'] } }] }] })];
    upstreamSeen.length = 0;
    const denied = `403 ${RBAC_DENIED_BODY}`;
    expect(
      await h1Requests(ALICE, [
        { method: 'GET', path: '/public/../admin' },
        { method: 'GET', path: '/%61dmin' },
        { method: 'GET', path: '/public/%2e%2e/admin/x' },
        { method: 'GET', path: '/public/..%5cadmin' }, // %5C is not decoded by BASE: no dot segment, no match
        { method: 'GET', path: '/a/./b/../c?q=/../%61' },
        { method: 'GET', path: '//admin' }, // BASE keeps repeated slashes
      ]),
    ).toEqual([denied, denied, denied, '200 h1 GET /public/..%5cadmin 0', '200 h1 GET /a/c?q=/../%61 0', '200 h1 GET //admin 0']);
    expect(
      await h2Requests(ALICE, [
        { method: 'GET', path: '/x/../admin' },
        { method: 'GET', path: '/%41dmin/./%7e' },
      ]),
    ).toEqual([denied, '200 h2 GET /Admin/~ 0']);
    expect(upstreamSeen.filter((s) => s.includes('admin') && !s.includes('%5c') && !s.includes('//admin') && !s.includes('Admin'))).toEqual([]);
    // An allowed Upgrade is replayed to the pod with the normalized target.
    const t = await tunnel(ALICE, h1Port);
    t.write('GET /x/%2E%2E/ws HTTP/1.1\r\nhost: x\r\nconnection: upgrade\r\nupgrade: echo\r\n\r\n');
    const head = await new Promise<string>((resolve) => {
      let buf = '';
      t.on('data', (d: Buffer) => {
        buf += d.toString();
        if (buf.includes('\r\n\r\n')) resolve(buf);
      });
      t.on('close', () => resolve(buf));
    });
    t.destroy();
    expect(head).toMatch(/^HTTP\/1\.1 101/);
    expect(upstreamSeen).toContain('upgrade /ws');
  });

  it("a request target normalization refuses gets Envoy's status (400 for %00, 404 when not a path), counted by reason, never forwarded", async () => {
    // An L7 rule on the port makes the destination parse its requests.
    policies = [policy('deny-never', { action: 'DENY', rules: [{ to: [{ operation: { paths: ['/never'] } }] }] })];
    upstreamSeen.length = 0;
    const count = async (reason: string) =>
      (await metrics.registry.getSingleMetric('smesh_http_protocol_errors_total')?.get())?.values.find((v) => v.labels.reason === reason && v.labels.direction === 'inbound')?.value ?? 0;
    const nulBefore = await count('nul_in_path');
    const relBefore = await count('non_relative_path');
    for (const [line, status] of [
      ['GET /a%00b HTTP/1.1', 400],
      ['OPTIONS * HTTP/1.1', 404],
    ] as const) {
      const t = await tunnel(ALICE, h1Port);
      t.end(`${line}\r\nhost: x\r\nconnection: close\r\n\r\n`);
      expect((await readAll(t)).toString()).toMatch(new RegExp(`^HTTP/1\\.1 ${status}`));
    }
    const lowerBefore = await count('lowercase_method');
    const [h2res, lower] = await h2Requests(ALICE, [
      { method: 'GET', path: '/b%00' },
      { method: 'get', path: '/ok' },
    ]);
    expect(h2res).toBe('400 ');
    expect(lower).toBe('400 '); // Istio refuses a method that is not upper case (`methods: [GET]` must not be side-stepped)
    expect(await count('lowercase_method')).toBe(lowerBefore + 1);
    expect(await count('nul_in_path')).toBe(nulBefore + 2);
    expect(await count('non_relative_path')).toBe(relBefore + 1);
    expect(upstreamSeen).toEqual([]);
  });

  it('a repeated header is matched with all its values joined by "," as Envoy does (Node alone keeps only the first user-agent)', async () => {
    policies = [
      policy('deny-evil-agent', { action: 'DENY', rules: [{ when: [{ key: 'request.headers[user-agent]', values: ['*evil'] }] }] }),
      policy('deny-both', { action: 'DENY', rules: [{ when: [{ key: 'request.headers[x-a]', values: ['1,2'] }] }] }),
    ];
    for (const extra of ['user-agent: ok\r\nuser-agent: evil', 'x-a: 1\r\nx-a: 2']) {
      const t = await tunnel(ALICE, h1Port);
      t.end(`GET /x HTTP/1.1\r\nhost: x\r\n${extra}\r\nconnection: close\r\n\r\n`);
      expect((await readAll(t)).toString()).toMatch(/^HTTP\/1\.1 403[\s\S]*RBAC: access denied/);
    }
    expect(await h1Requests(ALICE, [{ method: 'GET', path: '/x' }])).toEqual(['200 h1 GET /x 0']);
    // HTTP/2: the raw header list, not Node's merged object.
    const t = await tunnel(ALICE, h2Port);
    const session = http2.connect(`http://127.0.0.1:${h2Port}`, { createConnection: () => new TunnelSocket(t) as unknown as net.Socket });
    session.on('error', () => undefined);
    try {
      const status = await new Promise<number>((resolve, reject) => {
        const s = session.request({ ':method': 'GET', ':path': '/x', 'x-a': ['1', '2'] });
        s.on('response', (h) => resolve(Number(h[':status'])));
        s.on('error', reject);
        s.end();
        s.resume();
      });
      expect(status).toBe(403);
    } finally {
      session.destroy();
      t.destroy();
    }
  });

  it('HTTP/2 and gRPC inside the tunnel: per-stream decisions, trailers pass through', async () => {
    policies = [policy('grpc-only-get', { action: 'ALLOW', rules: [{ to: [{ operation: { paths: ['/pkg.Svc/Allowed', '/ok'] } }] }] })];
    const res = await h2Requests(ALICE, [
      { method: 'GET', path: '/ok' },
      { method: 'GET', path: '/nope' },
      { method: 'POST', path: '/pkg.Svc/Allowed', grpc: true },
      { method: 'POST', path: '/pkg.Svc/Denied', grpc: true },
    ]);
    expect(res[0]).toBe('200 h2 GET /ok 0');
    expect(res[1]).toBe(`403 ${RBAC_DENIED_BODY}`);
    expect(res[2]).toBe('200 payload grpc-status=0');
    expect(res[3]!.startsWith('403')).toBe(true);
  });

  it('an HTTP/2 preface on an HTTP port next to an open HTTP/1.1 tunnel: both work (no crash)', async () => {
    policies = [policy('get-public', { action: 'ALLOW', rules: [{ to: [{ operation: { methods: ['GET', 'POST'] } }] }] })];
    const open1 = await tunnel(ALICE, h1Port);
    open1.write('GET /first HTTP/1.1\r\nhost: x\r\n\r\n');
    const [h2res] = await h2Requests(ALICE, [{ method: 'GET', path: '/second' }]);
    expect(h2res).toBe('200 h2 GET /second 0');
    open1.end();
    const text = (await readAll(open1)).toString();
    expect(text).toMatch(/^HTTP\/1\.1 200/);
    expect(text).toContain('h1 GET /first 0');
  });

  it('an allowed Upgrade is spliced raw to the pod; a denied one gets 403', async () => {
    policies = [policy('ws', { action: 'ALLOW', rules: [{ to: [{ operation: { paths: ['/ws'] } }] }] })];
    for (const [path, expectOk] of [
      ['/ws', true],
      ['/other', false],
    ] as const) {
      const t = await tunnel(ALICE, h1Port);
      t.write(`GET ${path} HTTP/1.1\r\nhost: x\r\nconnection: upgrade\r\nupgrade: echo\r\n\r\n`);
      let buf = '';
      await new Promise<void>((resolve) => {
        t.on('data', (d: Buffer) => {
          buf += d.toString();
          if (buf.includes('\r\n\r\n') && !buf.includes('hello') && buf.startsWith('HTTP/1.1 101')) t.write('hello');
          if (buf.includes('hello') || buf.includes(RBAC_DENIED_BODY)) resolve();
        });
        t.on('close', () => resolve());
      });
      t.destroy();
      if (expectOk) {
        expect(buf).toMatch(/^HTTP\/1\.1 101/);
        expect(buf).toContain('hello');
      } else expect(buf).toMatch(/^HTTP\/1\.1 403[\s\S]*RBAC: access denied/);
    }
  });

  it('garbage inside the tunnel is answered 400 and counted; a TCP port is relayed raw even with L7 rules', async () => {
    policies = [policy('get-only', { action: 'ALLOW', rules: [{ to: [{ operation: { methods: ['GET'] } }] }] })];
    const before = (await metrics.registry.getSingleMetric('smesh_http_protocol_errors_total')?.get())?.values.reduce((a, v) => a + v.value, 0) ?? 0;
    const t = await tunnel(ALICE, h1Port);
    t.end('\x16\x03\x01 not http at all\r\n\r\n');
    const answer = (await readAll(t)).toString();
    expect(answer).toMatch(/^HTTP\/1\.1 400/);
    const after = (await metrics.registry.getSingleMetric('smesh_http_protocol_errors_total')?.get())?.values.reduce((a, v) => a + v.value, 0) ?? 0;
    expect(after).toBeGreaterThan(before);
    // A TCP port: the L7 rule fails closed for the connection (ALLOW with methods never matches L4).
    await expect(tunnel(ALICE, tcpPort).then((s) => readAll(s))).rejects.toThrow();
    // And the HTTP port still serves.
    expect(await h1Requests(ALICE, [{ method: 'GET', path: '/still' }])).toEqual(['200 h1 GET /still 0']);
  });

  it('an open parsed tunnel shows its bytes in the TCP metrics while it is still open', async () => {
    policies = [policy('get-only', { action: 'ALLOW', rules: [{ to: [{ operation: { methods: ['GET'] } }] }] })];
    const sum = async (name: string) => {
      metrics.flush();
      const m = await metrics.registry.getSingleMetric(name)?.get();
      return m?.values.filter((v) => v.labels.reporter === 'destination').reduce((a, v) => a + v.value, 0) ?? 0;
    };
    const [rx0, tx0] = [await sum('istio_tcp_received_bytes_total'), await sum('istio_tcp_sent_bytes_total')];
    const t = await tunnel(ALICE, h1Port);
    const request = 'GET /live HTTP/1.1\r\nhost: x\r\n\r\n';
    t.write(request);
    const head = await new Promise<string>((resolve) => t.once('data', (d: Buffer) => resolve(d.toString())));
    expect(head).toMatch(/^HTTP\/1\.1 200/);
    expect((await sum('istio_tcp_received_bytes_total')) - rx0).toBe(request.length);
    expect((await sum('istio_tcp_sent_bytes_total')) - tx0).toBeGreaterThanOrEqual(head.length);
    t.destroy();
  });

  it('request metrics are reported by the destination with response codes (403 included)', async () => {
    const m = await metrics.registry.getSingleMetric('istio_requests_total')?.get();
    const codes = new Set(m?.values.filter((v) => v.labels.reporter === 'destination').map((v) => String(v.labels.response_code)));
    expect(codes.has('200')).toBe(true);
    expect(codes.has('403')).toBe(true);
  });
});
