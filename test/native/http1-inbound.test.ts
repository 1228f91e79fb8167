// The destination side of --http-engine on loopback: EngineInboundHttp hands accepted sockets to the native HTTP/1.1 engine and decides each request with InboundHttp's decision (normalized path, L7 policy read per request, 403 on the kept-alive connection), dials the pod from the configured source, reports reporter="destination" requests, takes Upgrade and h2c back to node:http, resets a session its caller closes, and leaves gRPC ports on node:http.
import * as http from 'node:http';
import * as http2 from 'node:http2';
import * as net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { convertAuthorizationPolicy } from '../../control/config/authorization';
import { EngineInboundHttp } from '../../agent/http/engine-inbound';
import { InboundHttp, RBAC_DENIED_BODY } from '../../agent/http/inbound-http';
import { http1Engine } from '../../agent/native/http1';
import { createAuthorizer } from '../../agent/policy/authorizer';
import type { AuthorizationPolicy } from '../../core/policy/types';
import type { TunnelContext, TunnelOutcome } from '../../agent/proxy/types';
import type { Workload } from '../../core/model/types';
import { MeshMetrics } from '../../agent/telemetry/metrics';
import { parseMetrics, sum } from '../helpers/metrics';
import { pollUntil } from '../helpers/logs';

const engine = http1Engine();
const describeNative = engine ? describe : describe.skip;
const TD = 'cluster.local';
const PEER = `spiffe://${TD}/ns/default/sa/alice`;
/** The "capture address" of this test: the pod must see connections from it. */
const SOURCE = '127.0.0.2';
const POD: Workload = { uid: 'pod', name: 'pod', namespace: 'default', labels: { app: 'pod' }, ip: '127.0.0.1', node: 'n', identity: `spiffe://${TD}/ns/default/sa/pod` } as unknown as Workload;

function policy(name: string, spec: unknown): AuthorizationPolicy {
  const r = convertAuthorizationPolicy(name, 'default', spec);
  if (!r.policy) throw new Error(JSON.stringify(r.problems));
  return r.policy;
}

/** One keep-alive client connection sending raw requests one at a time and reading each response (content-length framed). */
class KeptAlive {
  private readonly sock: net.Socket;
  private buf = Buffer.alloc(0);
  private waiting: (() => void) | undefined;
  closed = false;
  constructor(port: number) {
    this.sock = net.connect({ host: '127.0.0.1', port });
    this.sock.on('data', (d: Buffer) => {
      this.buf = Buffer.concat([this.buf, d]);
      this.waiting?.();
    });
    this.sock.on('error', () => undefined);
    this.sock.on('close', () => {
      this.closed = true;
      this.waiting?.();
    });
  }
  async get(path: string, method = 'GET'): Promise<{ status: number; body: string }> {
    this.sock.write(`${method} ${path} HTTP/1.1\r\nHost: pod.test\r\n\r\n`);
    for (;;) {
      const text = this.buf.toString('latin1');
      const end = text.indexOf('\r\n\r\n');
      if (end >= 0) {
        const len = Number(/content-length: *(\d+)/i.exec(text.slice(0, end))?.[1] ?? '0');
        if (this.buf.length >= end + 4 + len) {
          this.buf = this.buf.subarray(end + 4 + len);
          return { status: Number(text.slice(9, 12)), body: text.slice(end + 4, end + 4 + len) };
        }
      }
      if (this.closed) throw new Error(`connection closed before the response to ${path}: ${text}`);
      await new Promise<void>((r) => (this.waiting = r));
    }
  }
  destroy(): void {
    this.sock.destroy();
  }
}

describeNative('EngineInboundHttp: the destination side in the native HTTP/1.1 engine', () => {
  let pod: http.Server;
  let podH2: http2.Http2Server;
  let podPort = 0;
  let podH2Port = 0;
  const seen: Array<{ method: string; url: string; peer: string }> = [];
  let policies: AuthorizationPolicy[] = [];
  const metrics = new MeshMetrics();
  let front: net.Server;
  let frontPort = 0;
  let inbound: EngineInboundHttp;
  let ctxFor: () => TunnelContext;
  const served: Array<{ sock: net.Socket; done: Promise<TunnelOutcome>; counts: { received: number; sent: number } }> = [];

  beforeAll(async () => {
    pod = http.createServer((req, res) => {
      seen.push({ method: req.method ?? '', url: req.url ?? '', peer: req.socket.remoteAddress ?? '' });
      req.resume();
      req.on('end', () => res.end(`pod ${req.method} ${req.url}`));
    });
    pod.on('upgrade', (req: http.IncomingMessage, sock: net.Socket, head: Buffer) => {
      sock.write('HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n');
      sock.write(head);
      sock.pipe(sock);
    });
    await new Promise<void>((r) => pod.listen(0, '127.0.0.1', r));
    podPort = (pod.address() as net.AddressInfo).port;
    podH2 = http2.createServer();
    podH2.on('stream', (stream, headers) => {
      stream.respond({ ':status': 200 });
      stream.end(`h2 ${headers[':path']}`);
    });
    await new Promise<void>((r) => podH2.listen(0, '127.0.0.1', r));
    podH2Port = (podH2.address() as net.AddressInfo).port;
    const authorize = createAuthorizer({ state: { snapshot: () => ({ authorizationPolicies: policies }) }, denials: metrics.policyDenials });
    const http1 = new InboundHttp({ authorize, metrics, upstreamSourceIp: SOURCE });
    inbound = new EngineInboundHttp({ http: http1, engine: engine!, metrics });
    ctxFor = () => ({
      peer: PEER,
      sourceIp: '127.0.0.1',
      destination: { ip: '127.0.0.1', port: podPort },
      workload: POD,
      protocol: 'http',
      telemetry: { reporter: 'destination', destination: POD, sourcePrincipal: PEER, mtls: true },
    });
    front = net.createServer({ allowHalfOpen: true }, (sock) => {
      const counts = { received: 0, sent: 0 };
      served.push({ sock, done: inbound.serve(sock, ctxFor(), counts), counts });
    });
    await new Promise<void>((r) => front.listen(0, '127.0.0.1', r));
    frontPort = (front.address() as net.AddressInfo).port;
  });

  afterAll(async () => {
    inbound?.close();
    engine?.closeAll();
    await new Promise((r) => front?.close(r));
    pod?.closeAllConnections();
    await new Promise((r) => pod?.close(r));
    await new Promise((r) => podH2?.close(r));
  });

  const counter = (name: string, labels: Record<string, string>) => metrics.registry.metrics().then((t) => sum(parseMetrics(t), name, labels));

  it('forwards the normalized path from the configured source; a DENY added while the connection is open applies to its next request', async () => {
    const before = await counter('smesh_http_engine_requests_total', { direction: 'inbound', outcome: 'forwarded' });
    const c = new KeptAlive(frontPort);
    try {
      expect(await c.get('/a/../admin/x')).toEqual({ status: 200, body: 'pod GET /admin/x' });
      expect(seen.at(-1)?.peer).toBe(SOURCE);
      policies = [policy('deny-admin', { action: 'DENY', rules: [{ from: [{ source: { principals: [`${TD}/ns/default/sa/alice`] } }], to: [{ operation: { paths: ['/admin*'] } }] }] })];
      expect(await c.get('/admin/y')).toEqual({ status: 403, body: RBAC_DENIED_BODY });
      expect(await c.get('/public')).toEqual({ status: 200, body: 'pod GET /public' });
      // Lower-case methods are refused as Istio does (the engine's parser takes any token).
      expect((await c.get('/public', 'get')).status).toBe(400);
      policies = [];
      expect((await c.get('/admin/z')).status).toBe(200);
    } finally {
      c.destroy();
      policies = [];
    }
    expect(seen.some((s) => s.url === '/admin/y')).toBe(false);
    expect((await counter('smesh_http_engine_requests_total', { direction: 'inbound', outcome: 'forwarded' })) - before).toBe(3);
    const requests = await pollUntil(
      () => counter('istio_requests_total', { reporter: 'destination', source_principal: PEER, connection_security_policy: 'mutual_tls' }),
      (n) => n >= 5,
      5_000,
      20,
    );
    expect(requests).toBe(5);
    expect(await counter('istio_requests_total', { reporter: 'destination', response_code: '403', response_flags: 'RBAC' })).toBe(1);
  });

  it('an Upgrade is taken back to node:http and spliced to the pod; an h2c preface goes to node:http2', async () => {
    const before = await counter('smesh_http_engine_requests_total', { direction: 'inbound', outcome: 'takeover' });
    const up = net.connect({ host: '127.0.0.1', port: frontPort });
    let got = '';
    up.on('data', (d: Buffer) => (got += d.toString('latin1')));
    up.write('GET /ws HTTP/1.1\r\nHost: pod.test\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\nping');
    await pollUntil(
      () => got,
      (t) => t.includes('ping'),
      5_000,
      20,
    );
    expect(got.startsWith('HTTP/1.1 101')).toBe(true);
    expect(got.endsWith('\r\n\r\nping')).toBe(true);
    up.destroy();
    // h2c prior knowledge on an HTTP port: the pod here speaks h2.
    const saved = ctxFor;
    ctxFor = () => ({ ...saved(), destination: { ip: '127.0.0.1', port: podH2Port } });
    try {
      const session = http2.connect(`http://127.0.0.1:${frontPort}`);
      const body = await new Promise<string>((resolve, reject) => {
        const req = session.request({ ':path': '/h2/../x' });
        let b = '';
        req.on('data', (d: Buffer) => (b += d.toString()));
        req.on('end', () => resolve(b));
        req.on('error', reject);
        req.end();
      });
      session.close();
      expect(body).toBe('h2 /x');
    } finally {
      ctxFor = saved;
    }
    expect((await counter('smesh_http_engine_requests_total', { direction: 'inbound', outcome: 'takeover' })) - before).toBe(2);
  });

  it("the caller destroying its socket (a policy change closing the connection) resets the engine session; the serve promise ends with the socket's byte counts", async () => {
    const c = new KeptAlive(frontPort);
    expect((await c.get('/one')).status).toBe(200);
    const entry = await pollUntil(
      () => served.at(-1),
      (e) => e !== undefined,
      1_000,
      10,
    );
    entry!.sock.destroy();
    await pollUntil(
      () => c.closed,
      (x) => x,
      5_000,
      20,
    );
    const outcome = await entry!.done;
    expect(outcome).toMatchObject({ version: 'h1', requests: 1 });
    // The tunnel's byte counts are the client socket's, heads included.
    expect(entry!.counts.received).toBe('GET /one HTTP/1.1\r\nHost: pod.test\r\n\r\n'.length);
    expect(entry!.counts.sent).toBeGreaterThan('pod GET /one'.length + 20);
  });

  it('a gRPC port stays on node:http, counted as a fallback', async () => {
    const before = await counter('smesh_http_engine_fallbacks_total', { direction: 'inbound', reason: 'not_http1_port' });
    const saved = ctxFor;
    ctxFor = () => ({ ...saved(), protocol: 'grpc' });
    try {
      const c = new KeptAlive(frontPort);
      expect((await c.get('/g')).status).toBe(200);
      c.destroy();
    } finally {
      ctxFor = saved;
    }
    expect((await counter('smesh_http_engine_fallbacks_total', { direction: 'inbound', reason: 'not_http1_port' })) - before).toBe(1);
  });
});
