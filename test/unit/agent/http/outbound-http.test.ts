// The HTTP outbound handler against real HTTP servers on 127.0.0.x: balancing, splits, retries, ejection, timeouts, faults, circuit breaking, bad input.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import * as http from 'node:http';
import * as net from 'node:net';
import { HttpOutbound, OVERLOAD_HEADER } from '../../../../agent/http/outbound-http';
import { StateStore } from '../../../../agent/state/store';
import type { MeshSnapshot, Service, ServiceTrafficPolicy, TrafficRoute, Workload } from '../../../../core/model/types';
import { MeshMetrics } from '../../../../agent/telemetry/metrics';

type Mode = 'ok' | 'fail' | 'slow' | 'reset';

interface Backend {
  name: string;
  ip: string;
  mode: Mode;
  hits: number;
  server: http.Server;
}

function wl(name: string, ip: string, labels: Record<string, string> = {}): Workload {
  return {
    uid: `default/${name}`,
    name,
    namespace: 'default',
    serviceAccount: `${name}-sa`,
    node: 'n1',
    ip,
    labels: { app: name, ...labels },
    workloadName: name,
    identity: `spiffe://cluster.local/ns/default/sa/${name}-sa`,
    meshed: true,
  };
}

async function startBackend(name: string, ip: string, port: number): Promise<Backend> {
  const b: Backend = { name, ip, mode: 'ok', hits: 0, server: undefined as unknown as http.Server };
  b.server = http.createServer((req, res) => {
    b.hits++;
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = JSON.stringify({ pod: name, method: req.method, url: req.url, body: Buffer.concat(chunks).toString(), host: req.headers.host });
      if (b.mode === 'reset') return void req.socket.destroy();
      const send = () => res.writeHead(b.mode === 'fail' ? 500 : 200, { 'content-type': 'application/json' }).end(body);
      if (b.mode === 'slow') setTimeout(send, 300);
      else send();
    });
  });
  await new Promise<void>((resolve, reject) => {
    b.server.once('error', reject);
    b.server.listen(port, ip, () => resolve());
  });
  return b;
}

interface Resp {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
  json?: { pod: string; body: string; url: string; host: string };
}

function request(port: number, path = '/', opts: { method?: string; headers?: Record<string, string>; body?: string; agent?: http.Agent } = {}): Promise<Resp> {
  return new Promise((resolve, reject) => {
    const r = http.request({ host: '127.0.0.1', port, path, method: opts.method ?? 'GET', headers: { host: 'web.default', ...opts.headers }, agent: opts.agent ?? false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const body = Buffer.concat(chunks).toString();
        let json: Resp['json'];
        try {
          json = JSON.parse(body);
        } catch {
          json = undefined;
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body, json });
      });
    });
    r.on('error', reject);
    r.end(opts.body);
  });
}

function rawExchange(port: number, data: string): Promise<string> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    let got = '';
    s.on('data', (d) => (got += d.toString()));
    s.on('error', () => resolve(got));
    s.on('close', () => resolve(got));
    s.on('connect', () => s.write(data));
    setTimeout(() => s.destroy(), 3000).unref();
  });
}

describe('HttpOutbound (HTTP/1.1 against real servers)', () => {
  let a: Backend;
  let b: Backend;
  let port = 0;
  let front: net.Server;
  let handler: HttpOutbound;
  let metrics: MeshMetrics;
  const client = wl('client', '127.0.0.1');
  let wa: Workload;
  let wb: Workload;
  let service: Service;
  const state = new StateStore();

  function setPolicy(p: Partial<ServiceTrafficPolicy> & { routes?: TrafficRoute[] }): void {
    const policy: ServiceTrafficPolicy = {
      serviceKey: service.key,
      subsets: [
        { name: 'va', labels: { version: 'a' }, workloadUids: [wa.uid] },
        { name: 'vb', labels: { version: 'b' }, workloadUids: [wb.uid] },
      ],
      portSettings: [],
      routes: [],
      loadBalancer: { algorithm: 'ROUND_ROBIN' },
      ...p,
    };
    const snap: MeshSnapshot = { ...state.snapshot(), trafficPolicies: new Map([[service.key, policy]]) };
    state.replace(snap);
  }

  beforeAll(async () => {
    a = await startBackend('a', '127.0.0.2', 0);
    port = (a.server.address() as net.AddressInfo).port;
    b = await startBackend('b', '127.0.0.3', port);
    wa = wl('a', a.ip, { version: 'a' });
    wb = wl('b', b.ip, { version: 'b' });
    service = { key: 'default/web', name: 'web', namespace: 'default', vips: ['10.96.0.1'], ports: [{ name: 'http', port: 80, targetPort: port }], selector: {}, endpointUids: [wa.uid, wb.uid] };
    state.replace({
      trustDomain: 'cluster.local',
      nodes: new Map([['n1', { name: 'n1', address: '127.0.0.1' }]]),
      workloads: new Map([client, wa, wb].map((w) => [w.uid, w])),
      services: new Map([[service.key, service]]),
      namespaces: new Map([['default', {}]]),
    });
    metrics = new MeshMetrics();
    handler = new HttpOutbound({
      state,
      hbone: { open: () => Promise.reject(new Error('no hbone in this test')) },
      nodeName: 'n1',
      hbonePort: 15008,
      metrics,
      maxHeaderSize: 4096,
      // L7 policy stand-in: same-node requests are authorized per request, with their HTTP attributes.
      // And a header rule that must see every value of a repeated header (Node's req.headers keeps only the first user-agent).
      authorize: (input) =>
        (input.http?.path.startsWith('/admin') && input.http.method !== 'GET') || [input.http?.headers['user-agent']].flat().includes('evil')
          ? { allow: false, reason: 'no admin writes, no evil agents' }
          : { allow: true },
    });
    front = net.createServer((sock) => handler.handle(sock, { source: client, sourceIp: '127.0.0.1', service, port: service.ports[0]! }));
    await new Promise<void>((r) => front.listen(0, '127.0.0.1', () => r()));
  });

  afterAll(async () => {
    handler.close();
    await new Promise<void>((r) => front.close(() => r()));
    for (const x of [a, b]) {
      x.server.closeAllConnections();
      await new Promise<void>((r) => x.server.close(() => r()));
    }
  });

  afterEach(() => {
    a.mode = 'ok';
    b.mode = 'ok';
    a.hits = 0;
    b.hits = 0;
    setPolicy({});
  });

  const frontPort = () => (front.address() as net.AddressInfo).port;

  it('proxies each request of one keep-alive connection separately, round robin across endpoints, bodies intact', async () => {
    setPolicy({});
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const pods: string[] = [];
    for (let i = 0; i < 6; i++) {
      const r = await request(frontPort(), `/x/${i}?q=1`, { method: 'POST', body: `payload-${i}`, agent });
      expect(r.status).toBe(200);
      expect(r.json).toMatchObject({ url: `/x/${i}?q=1`, body: `payload-${i}`, host: 'web.default' });
      pods.push(r.json!.pod);
    }
    agent.destroy();
    expect(pods.filter((p) => p === 'a').length).toBe(3);
    expect(pods.filter((p) => p === 'b').length).toBe(3);
  });

  it('streams a large request body (beyond the retry buffer) and a large response intact', async () => {
    setPolicy({});
    const big = 'x'.repeat(1024 * 1024);
    const r = await request(frontPort(), '/upload', { method: 'POST', body: big, headers: { 'content-length': String(big.length) } });
    expect(r.status).toBe(200);
    expect(r.json?.body.length).toBe(big.length);
  });

  it('authorizes same-node requests per request with their HTTP attributes (403 on deny)', async () => {
    setPolicy({});
    expect((await request(frontPort(), '/admin/x', { method: 'POST', body: 'x' })).status).toBe(403);
    expect((await request(frontPort(), '/admin/x')).status).toBe(200);
    expect(a.hits + b.hits).toBe(1);
  });

  it('normalizes paths as Istio BASE: policy and routes match the normalized path, the app receives it', async () => {
    setPolicy({
      routes: [
        { matches: [{ path: { kind: 'prefix', value: '/v2/' } }], destinations: [{ subset: 'vb', weight: 100 }] },
        { matches: [], destinations: [{ subset: 'va', weight: 100 }] },
      ],
    });
    for (const sent of ['/public/../admin/x', '/%61dmin/x', '/a/%2e%2e/admin\\x']) expect((await request(frontPort(), sent, { method: 'POST', body: 'x' })).status).toBe(403);
    expect(a.hits + b.hits).toBe(0);
    const routed = await request(frontPort(), '/v1/../v2/%7euser/./x?q=/../v1&%61=1');
    expect(routed.json).toMatchObject({ pod: 'b', url: '/v2/~user/x?q=/../v1&%61=1' });
    expect((await request(frontPort(), '//v2/x')).json).toMatchObject({ pod: 'a', url: '//v2/x' }); // BASE keeps repeated slashes
  });

  it('same-node authorization sees every value of a repeated header', async () => {
    setPolicy({});
    expect(await rawExchange(frontPort(), 'GET /x HTTP/1.1\r\nhost: web.default\r\nuser-agent: ok\r\nuser-agent: evil\r\nconnection: close\r\n\r\n')).toMatch(/^HTTP\/1\.1 403/);
    expect(a.hits + b.hits).toBe(0);
    expect((await request(frontPort(), '/x', { headers: { 'user-agent': 'ok' } })).status).toBe(200);
  });

  it("a request target normalization refuses gets Envoy's status (400 for %00, 404 when not a path), counted, never forwarded", async () => {
    setPolicy({});
    const count = async (reason: string) =>
      (await metrics.registry.getSingleMetric('smesh_http_protocol_errors_total')?.get())?.values.find((v) => v.labels.reason === reason && v.labels.direction === 'outbound')?.value ?? 0;
    const before = await count('nul_in_path');
    expect(await rawExchange(frontPort(), 'GET /a%00b HTTP/1.1\r\nhost: web.default\r\nconnection: close\r\n\r\n')).toMatch(/^HTTP\/1\.1 400/);
    expect(await rawExchange(frontPort(), 'OPTIONS * HTTP/1.1\r\nhost: web.default\r\nconnection: close\r\n\r\n')).toMatch(/^HTTP\/1\.1 404/);
    expect(await count('nul_in_path')).toBe(before + 1);
    expect(await count('non_relative_path')).toBeGreaterThanOrEqual(1);
    expect(a.hits + b.hits).toBe(0);
  });

  it('splits 90/10 between subsets within ±3 % over 2,000 requests', async () => {
    setPolicy({
      routes: [
        {
          matches: [],
          destinations: [
            { subset: 'va', weight: 90 },
            { subset: 'vb', weight: 10 },
          ],
        },
      ],
    });
    const agent = new http.Agent({ keepAlive: true, maxSockets: 20 });
    let toB = 0;
    for (let batch = 0; batch < 100; batch++) {
      const rs = await Promise.all(Array.from({ length: 20 }, () => request(frontPort(), '/', { agent })));
      for (const r of rs) if (r.json?.pod === 'b') toB++;
    }
    agent.destroy();
    expect(Math.abs(toB / 2000 - 0.1)).toBeLessThanOrEqual(0.03);
  }, 30_000);

  it('routes by header to a subset', async () => {
    setPolicy({
      routes: [
        { matches: [{ headers: { 'x-canary': { kind: 'exact', value: '1' } } }], destinations: [{ subset: 'vb', weight: 100 }] },
        { matches: [], destinations: [{ subset: 'va', weight: 100 }] },
      ],
    });
    expect((await request(frontPort(), '/', { headers: { 'x-canary': '1' } })).json?.pod).toBe('b');
    expect((await request(frontPort(), '/')).json?.pod).toBe('a');
  });

  it('retries 5xx on another endpoint: the client sees no errors', async () => {
    b.mode = 'fail';
    setPolicy({ routes: [{ matches: [], destinations: [], retries: { attempts: 2, retryOn: ['5xx'] } }] });
    for (let i = 0; i < 10; i++) expect((await request(frontPort(), '/')).status).toBe(200);
    expect(b.hits).toBeGreaterThan(0);
  });

  it('retries a reset upstream (retryOn reset)', async () => {
    b.mode = 'reset';
    setPolicy({ routes: [{ matches: [], destinations: [], retries: { attempts: 2, retryOn: ['reset'] } }] });
    for (let i = 0; i < 6; i++) expect((await request(frontPort(), '/')).status).toBe(200);
  });

  it('without retries on 5xx, a failing endpoint is visible, then ejected; it returns after its ejection time', async () => {
    b.mode = 'fail';
    setPolicy({
      outlierDetection: { consecutiveServerErrors: 2, baseEjectionTimeMs: 400, maxEjectionPercent: 50, intervalMs: 1000 },
      routes: [{ matches: [], destinations: [], retries: { attempts: 0, retryOn: [] } }],
    });
    const statuses: number[] = [];
    for (let i = 0; i < 20; i++) statuses.push((await request(frontPort(), '/')).status);
    expect(statuses.filter((s) => s === 500).length).toBe(2);
    expect(statuses.slice(-10).every((s) => s === 200)).toBe(true);
    const ej = (await metrics.registry.getSingleMetric('smesh_outlier_ejections_total')!.get()).values;
    expect(ej.reduce((n, v) => n + v.value, 0)).toBeGreaterThanOrEqual(1);
    b.mode = 'ok';
    await new Promise((r) => setTimeout(r, 450));
    b.hits = 0;
    for (let i = 0; i < 6; i++) await request(frontPort(), '/');
    expect(b.hits).toBeGreaterThan(0);
  });

  it('request timeout answers 504; per-try timeout retries elsewhere', async () => {
    a.mode = 'slow';
    b.mode = 'slow';
    setPolicy({ routes: [{ matches: [], destinations: [], timeoutMs: 100 }] });
    const t0 = Date.now();
    const r = await request(frontPort(), '/');
    expect(r.status).toBe(504);
    expect(Date.now() - t0).toBeLessThan(280);
    b.mode = 'ok';
    setPolicy({ routes: [{ matches: [], destinations: [], timeoutMs: 2000, retries: { attempts: 2, perTryTimeoutMs: 80, retryOn: ['5xx'] } }] });
    for (let i = 0; i < 4; i++) {
      const x = await request(frontPort(), '/');
      expect(x.status).toBe(200);
      expect(x.json?.pod).toBe('b');
    }
  });

  it('fault injection: abort with the configured status, delay by the configured time', async () => {
    setPolicy({
      routes: [
        { matches: [{ path: { kind: 'prefix', value: '/abort' } }], destinations: [], fault: { abort: { httpStatus: 418, percent: 100 } } },
        { matches: [], destinations: [], fault: { delay: { fixedDelayMs: 150, percent: 100 } } },
      ],
    });
    expect((await request(frontPort(), '/abort')).status).toBe(418);
    expect(a.hits + b.hits).toBe(0);
    const t0 = Date.now();
    expect((await request(frontPort(), '/slow')).status).toBe(200);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(140);
  });

  it('circuit breaker: over maxRequests a request fails fast with 503 and x-smesh-overload; trips are counted', async () => {
    a.mode = 'slow';
    b.mode = 'slow';
    setPolicy({ connectionPool: { maxRequests: 3 } });
    const rs = await Promise.all(Array.from({ length: 8 }, () => request(frontPort(), '/')));
    const overloaded = rs.filter((r) => r.status === 503);
    expect(rs.filter((r) => r.status === 200).length).toBe(3);
    expect(overloaded.length).toBe(5);
    for (const r of overloaded) expect(r.headers[OVERLOAD_HEADER]).toBe('max_requests');
    const trips = (await metrics.registry.getSingleMetric('smesh_circuit_breaker_trips_total')!.get()).values;
    expect(trips.find((v) => v.labels.reason === 'max_requests')?.value).toBe(5);
  });

  it('circuit breaker: over maxConnections requests wait, over maxPendingRequests they fail with max_pending_requests', async () => {
    a.mode = 'slow';
    b.mode = 'slow';
    setPolicy({ connectionPool: { maxConnections: 1, maxPendingRequests: 1 } });
    const t0 = Date.now();
    const rs = await Promise.all(Array.from({ length: 3 }, () => request(frontPort(), '/').then((r) => ({ ...r, ms: Date.now() - t0 }))));
    const ok = rs.filter((r) => r.status === 200).sort((x, y) => x.ms - y.ms);
    const over = rs.filter((r) => r.status === 503);
    expect(ok.length).toBe(2);
    expect(ok[1]!.ms, 'the pending request waited for the first to finish').toBeGreaterThanOrEqual(550);
    expect(over.map((r) => r.headers[OVERLOAD_HEADER])).toEqual(['max_pending_requests']);
  });

  it('consistent hash keeps a key on one endpoint', async () => {
    setPolicy({ loadBalancer: { consistentHash: { key: { kind: 'header', name: 'x-user' } } } });
    for (const user of ['alice', 'bob', 'carol', 'dave']) {
      const pods = new Set<string>();
      for (let i = 0; i < 8; i++) pods.add((await request(frontPort(), '/', { headers: { 'x-user': user } })).json!.pod);
      expect(pods.size).toBe(1);
    }
  });

  it('malformed requests get 400 / 431, are counted, and do not disturb a concurrent request', async () => {
    a.mode = 'slow';
    b.mode = 'slow';
    const good = request(frontPort(), '/good');
    const bad = await rawExchange(frontPort(), 'GARBAGE\r\n\r\n');
    expect(bad).toMatch(/^HTTP\/1\.1 400/);
    const big = await rawExchange(frontPort(), `GET / HTTP/1.1\r\nhost: x\r\nx-big: ${'a'.repeat(8000)}\r\n\r\n`);
    expect(big).toMatch(/^HTTP\/1\.1 431/);
    expect((await good).status).toBe(200);
    const errs = (await metrics.registry.getSingleMetric('smesh_http_protocol_errors_total')!.get()).values;
    expect(errs.find((v) => v.labels.reason === 'bad_request')?.value).toBeGreaterThanOrEqual(1);
    expect(errs.find((v) => v.labels.reason === 'header_overflow')?.value).toBeGreaterThanOrEqual(1);
  });

  it('records istio_requests_total and istio_request_duration_milliseconds with response_code and workload labels', async () => {
    b.mode = 'fail';
    setPolicy({ routes: [{ matches: [], destinations: [{ subset: 'vb', weight: 100 }], retries: { attempts: 0, retryOn: [] } }] });
    await request(frontPort(), '/');
    const text = await metrics.text();
    expect(text).toMatch(/istio_requests_total\{[^}]*source_workload="client"[^}]*destination_workload="b"[^}]*request_protocol="http"[^}]*response_code="500"/);
    expect(text).toMatch(/istio_request_duration_milliseconds_bucket\{[^}]*response_code="500"/);
  });
});
