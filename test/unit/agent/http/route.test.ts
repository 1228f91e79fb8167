// Table tests for the pure HTTP router, the circuit breaker and outlier detection (fake clock).
import { describe, expect, it } from 'vitest';
import { chooseDestination, routeRequest, type RoutableService, type RouteRequest } from '../../../../agent/http/route';
import { CircuitBreaker } from '../../../../agent/http/circuit-breaker';
import { OutlierDetector, outcomeOfStatus } from '../../../../agent/http/outlier';
import { portProtocol, sniffHttpVersion } from '../../../../core/model/protocol';
import type { Service, ServiceTrafficPolicy, TrafficRoute, Workload } from '../../../../core/model/types';

function wl(name: string, ns = 'default'): Workload {
  return {
    uid: `${ns}/${name}`,
    name,
    namespace: ns,
    serviceAccount: 'sa',
    node: 'n1',
    ip: '10.0.0.1',
    labels: {},
    workloadName: name,
    identity: `spiffe://cluster.local/ns/${ns}/sa/sa`,
    meshed: true,
  };
}
function svc(name: string, ports = [{ name: 'http', port: 80, targetPort: 8080 }]): Service {
  return { key: `default/${name}`, name, namespace: 'default', vips: ['10.96.0.1'], ports, selector: {} };
}
const v1 = wl('web-v1');
const v2 = wl('web-v2');
const web = svc('web', [
  { name: 'http', port: 80, targetPort: 8080 },
  { name: 'admin', port: 81, targetPort: 9090 },
]);
const other = svc('other');
const otherW = wl('other-1');

function policy(routes: TrafficRoute[], extra: Partial<ServiceTrafficPolicy> = {}): ServiceTrafficPolicy {
  return {
    serviceKey: 'default/web',
    subsets: [
      { name: 'v1', labels: { version: 'v1' }, workloadUids: [v1.uid], connectionPool: { maxRequests: 7 } },
      { name: 'v2', labels: { version: 'v2' }, workloadUids: [v2.uid] },
      { name: 'empty', labels: { version: 'none' }, workloadUids: [] },
    ],
    portSettings: [{ port: 81, connectionPool: { maxRequests: 3 } }],
    routes,
    connectionPool: { maxRequests: 100 },
    ...extra,
  };
}
const req = (path = '/', method = 'GET', headers: Record<string, string> = {}): RouteRequest => ({ path, method, headers });

interface Case {
  name: string;
  routes: TrafficRoute[];
  request?: RouteRequest;
  port?: number;
  random?: number;
  noPolicy?: boolean;
  expect: { status?: number; subset?: string; service?: string; endpoints?: string[]; targetPort?: number; routeIndex?: number; maxRequests?: number };
}

const cases: Case[] = [
  { name: 'no policy: whole service, target port', routes: [], noPolicy: true, expect: { endpoints: [v1.uid, v2.uid], targetPort: 8080, routeIndex: -1 } },
  { name: 'policy without routes: whole service', routes: [], expect: { endpoints: [v1.uid, v2.uid], maxRequests: 100 } },
  { name: 'empty match list matches everything', routes: [{ matches: [], destinations: [{ subset: 'v2', weight: 100 }] }], expect: { subset: 'v2', endpoints: [v2.uid] } },
  {
    name: 'exact path',
    routes: [{ matches: [{ path: { kind: 'exact', value: '/a' } }], destinations: [{ subset: 'v1', weight: 100 }] }],
    request: req('/a?x=1'),
    expect: { subset: 'v1', maxRequests: 7 },
  },
  { name: 'exact path miss → 404', routes: [{ matches: [{ path: { kind: 'exact', value: '/a' } }], destinations: [] }], request: req('/ab'), expect: { status: 404 } },
  { name: 'prefix path', routes: [{ matches: [{ path: { kind: 'prefix', value: '/api/' } }], destinations: [{ subset: 'v2', weight: 1 }] }], request: req('/api/x'), expect: { subset: 'v2' } },
  { name: 'regex path must match whole path', routes: [{ matches: [{ path: { kind: 'regex', value: '/u/[0-9]+' } }], destinations: [] }], request: req('/u/12/x'), expect: { status: 404 } },
  { name: 'regex path full match', routes: [{ matches: [{ path: { kind: 'regex', value: '/u/[0-9]+' } }], destinations: [] }], request: req('/u/12'), expect: { routeIndex: 0 } },
  {
    name: 'method match',
    routes: [
      { matches: [{ method: { kind: 'exact', value: 'POST' } }], destinations: [{ subset: 'v1', weight: 1 }] },
      { matches: [], destinations: [{ subset: 'v2', weight: 1 }] },
    ],
    request: req('/', 'POST'),
    expect: { subset: 'v1', routeIndex: 0 },
  },
  {
    name: 'method miss falls to next route',
    routes: [
      { matches: [{ method: { kind: 'exact', value: 'POST' } }], destinations: [{ subset: 'v1', weight: 1 }] },
      { matches: [], destinations: [{ subset: 'v2', weight: 1 }] },
    ],
    request: req('/', 'GET'),
    expect: { subset: 'v2', routeIndex: 1 },
  },
  {
    name: 'header exact',
    routes: [
      { matches: [{ headers: { 'x-canary': { kind: 'exact', value: 'yes' } } }], destinations: [{ subset: 'v2', weight: 1 }] },
      { matches: [], destinations: [{ subset: 'v1', weight: 1 }] },
    ],
    request: req('/', 'GET', { 'x-canary': 'yes' }),
    expect: { subset: 'v2' },
  },
  {
    name: 'missing header does not match',
    routes: [
      { matches: [{ headers: { 'x-canary': { kind: 'prefix', value: '' } } }], destinations: [{ subset: 'v2', weight: 1 }] },
      { matches: [], destinations: [{ subset: 'v1', weight: 1 }] },
    ],
    request: req('/'),
    expect: { subset: 'v1' },
  },
  {
    name: 'all fields of one match must hold',
    routes: [{ matches: [{ path: { kind: 'prefix', value: '/a' }, method: { kind: 'exact', value: 'PUT' } }], destinations: [] }],
    request: req('/a', 'GET'),
    expect: { status: 404 },
  },
  {
    name: 'matches are OR-ed',
    routes: [{ matches: [{ path: { kind: 'exact', value: '/x' } }, { method: { kind: 'exact', value: 'GET' } }], destinations: [] }],
    request: req('/a', 'GET'),
    expect: { routeIndex: 0 },
  },
  {
    name: 'port match',
    routes: [
      { matches: [{ port: 81 }], destinations: [{ subset: 'v1', weight: 1 }] },
      { matches: [], destinations: [{ subset: 'v2', weight: 1 }] },
    ],
    port: 81,
    expect: { subset: 'v1', targetPort: 9090, maxRequests: 7 },
  },
  { name: 'port-level settings apply without subset', routes: [], port: 81, expect: { maxRequests: 3, targetPort: 9090 } },
  {
    name: 'weighted 90/10, low draw → first',
    routes: [
      {
        matches: [],
        destinations: [
          { subset: 'v1', weight: 90 },
          { subset: 'v2', weight: 10 },
        ],
      },
    ],
    random: 0.5,
    expect: { subset: 'v1' },
  },
  {
    name: 'weighted 90/10, high draw → second',
    routes: [
      {
        matches: [],
        destinations: [
          { subset: 'v1', weight: 90 },
          { subset: 'v2', weight: 10 },
        ],
      },
    ],
    random: 0.95,
    expect: { subset: 'v2' },
  },
  { name: 'all weights zero → 503', routes: [{ matches: [], destinations: [{ subset: 'v1', weight: 0 }] }], expect: { status: 503 } },
  { name: 'unknown subset → 503', routes: [{ matches: [], destinations: [{ subset: 'v9', weight: 1 }] }], expect: { status: 503 } },
  { name: 'empty subset → 503', routes: [{ matches: [], destinations: [{ subset: 'empty', weight: 1 }] }], expect: { status: 503 } },
  { name: 'other service destination', routes: [{ matches: [], destinations: [{ service: 'default/other', weight: 1 }] }], expect: { service: 'default/other', endpoints: [otherW.uid] } },
  { name: 'unknown service destination → 503', routes: [{ matches: [], destinations: [{ service: 'default/nope', weight: 1 }] }], expect: { status: 503 } },
  { name: 'destination port not on service → 503', routes: [{ matches: [], destinations: [{ port: 99, weight: 1 }] }], expect: { status: 503 } },
];

describe('routeRequest', () => {
  for (const c of cases) {
    it(c.name, () => {
      const origin: RoutableService = { service: web, endpoints: [v1, v2], policy: c.noPolicy ? undefined : policy(c.routes) };
      const r = routeRequest({
        origin,
        port: web.ports.find((p) => p.port === (c.port ?? 80))!,
        request: c.request ?? req(),
        lookup: (k) => (k === 'default/other' ? { service: other, endpoints: [otherW] } : undefined),
        random: () => c.random ?? 0,
      });
      if (c.expect.status) {
        expect(r.kind).toBe('error');
        if (r.kind === 'error') expect(r.status).toBe(c.expect.status);
        return;
      }
      expect(r.kind, JSON.stringify(r)).toBe('target');
      if (r.kind !== 'target') return;
      const t = r.target;
      if (c.expect.subset !== undefined) expect(t.subset).toBe(c.expect.subset);
      if (c.expect.service) expect(t.service.key).toBe(c.expect.service);
      if (c.expect.endpoints) expect(t.endpoints.map((w) => w.uid)).toEqual(c.expect.endpoints);
      if (c.expect.targetPort) expect(t.targetPort).toBe(c.expect.targetPort);
      if (c.expect.routeIndex !== undefined) expect(t.routeIndex).toBe(c.expect.routeIndex);
      if (c.expect.maxRequests !== undefined) expect(t.settings.connectionPool?.maxRequests).toBe(c.expect.maxRequests);
    });
  }

  it('chooseDestination splits by weight over a uniform grid', () => {
    const counts = { a: 0, b: 0 };
    for (let i = 0; i < 1000; i++)
      counts[
        chooseDestination(
          [
            { subset: 'a', weight: 90 },
            { subset: 'b', weight: 10 },
          ],
          i / 1000,
        )!.subset as 'a' | 'b'
      ]++;
    expect(counts).toEqual({ a: 900, b: 100 });
  });
});

describe('protocol detection', () => {
  it.each([
    [{ port: 80, targetPort: 80, appProtocol: 'http' }, 'http'],
    [{ port: 80, targetPort: 80, appProtocol: 'kubernetes.io/h2c' }, 'http2'],
    [{ port: 80, targetPort: 80, appProtocol: 'grpc' }, 'grpc'],
    [{ port: 80, targetPort: 80, appProtocol: 'mysql', name: 'http' }, 'tcp'],
    [{ port: 80, targetPort: 80, name: 'http-web' }, 'http'],
    [{ port: 80, targetPort: 80, name: 'grpc-api' }, 'grpc'],
    [{ port: 80, targetPort: 80, name: 'http2' }, 'http2'],
    [{ port: 80, targetPort: 80, name: 'httpx' }, 'tcp'],
    [{ port: 80, targetPort: 80 }, 'tcp'],
  ] as const)('%j → %s', (port, want) => expect(portProtocol(port)).toBe(want));

  it('a port with VirtualService http routes is HTTP', () => {
    const p = policy([{ matches: [{ port: 81 }], destinations: [] }]);
    expect(portProtocol({ port: 81, targetPort: 81 }, p)).toBe('http');
    expect(portProtocol({ port: 80, targetPort: 80 }, p)).toBe('tcp');
  });

  it('sniffs the HTTP/2 preface', () => {
    expect(sniffHttpVersion(Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'))).toBe('h2');
    expect(sniffHttpVersion(Buffer.from('PRI * HT'))).toBe('more');
    expect(sniffHttpVersion(Buffer.from('GET / HTTP/1.1\r\n'))).toBe('h1');
  });
});

describe('CircuitBreaker', () => {
  it('fails requests over maxRequests and admits again after release', () => {
    const b = new CircuitBreaker({ maxRequests: 2 });
    expect(b.admitRequest()).toBeUndefined();
    expect(b.admitRequest()).toBeUndefined();
    expect(b.admitRequest()).toBe('max_requests');
    b.releaseRequest();
    expect(b.admitRequest()).toBeUndefined();
  });
  it('queues requests over maxConnections up to maxPendingRequests, FIFO, and fails the rest', async () => {
    const b = new CircuitBreaker({ maxConnections: 1, maxPendingRequests: 1 });
    expect(await b.acquireConnection()).toBeUndefined();
    let second: string | undefined = 'waiting';
    const p = b.acquireConnection().then((r) => (second = r));
    expect(b.pending).toBe(1);
    expect(await b.acquireConnection()).toBe('max_pending_requests');
    expect(second).toBe('waiting');
    b.releaseConnection();
    await p;
    expect(second).toBeUndefined();
    expect(b.connections).toBe(1);
    b.releaseConnection();
    expect(b.connections).toBe(0);
  });
  it('limits concurrent retries and the retry budget', () => {
    const b = new CircuitBreaker({ maxRetries: 5 });
    for (let i = 0; i < 5; i++) expect(b.admitRetry()).toBeUndefined();
    expect(b.admitRetry()).toBe('max_retries');
    const c = new CircuitBreaker({});
    expect(c.admitRetry({ budgetPercent: 10, minRetryConcurrency: 1 })).toBeUndefined();
    expect(c.admitRetry({ budgetPercent: 10, minRetryConcurrency: 1 })).toBe('retry_budget');
  });
  it('unset thresholds are unlimited', async () => {
    const b = new CircuitBreaker({});
    for (let i = 0; i < 10_000; i++) expect(b.admitRequest()).toBeUndefined();
    for (let i = 0; i < 1000; i++) expect(await b.acquireConnection()).toBeUndefined();
  });
});

describe('OutlierDetector (fake clock)', () => {
  it('ejects after consecutive 5xx, returns after base time, doubles on the second ejection, capped', () => {
    let now = 0;
    const o = new OutlierDetector(
      { consecutiveServerErrors: 3, consecutiveGatewayErrors: 0, baseEjectionTimeMs: 1000, maxEjectionTimeMs: 1500, maxEjectionPercent: 100, intervalMs: 100_000 },
      () => now,
    );
    expect(o.record('a', 'server_error', 4)).toBe(false);
    expect(o.record('a', 'server_error', 4)).toBe(false);
    expect(o.record('a', 'server_error', 4)).toBe(true);
    expect(o.isEjected('a')).toBe(true);
    now = 999;
    expect(o.isEjected('a')).toBe(true);
    now = 1000;
    expect(o.isEjected('a')).toBe(false);
    for (let i = 0; i < 3; i++) o.record('a', 'server_error', 4);
    expect(o.isEjected('a')).toBe(true);
    now = 1000 + 1499;
    expect(o.isEjected('a')).toBe(true); // 2 × 1000 capped at 1500
    now = 1000 + 1500;
    expect(o.isEjected('a')).toBe(false);
  });
  it('a success resets the streak; gateway errors and connect failures have their own counters', () => {
    let now = 0;
    const o = new OutlierDetector({ consecutiveServerErrors: 0, consecutiveGatewayErrors: 2, consecutiveConnectFailures: 2, maxEjectionPercent: 100 }, () => now);
    o.record('a', 'gateway_error', 3);
    o.record('a', 'success', 3);
    expect(o.record('a', 'gateway_error', 3)).toBe(false);
    expect(o.record('a', 'gateway_error', 3)).toBe(true);
    expect(o.record('b', 'server_error', 3)).toBe(false);
    expect(o.record('c', 'connect_failure', 3)).toBe(false);
    expect(o.record('c', 'connect_failure', 3)).toBe(true);
    now += 1;
    expect(o.ejectedCount()).toBe(2);
  });
  it('respects maxEjectionPercent but always allows one', () => {
    const o = new OutlierDetector({ consecutiveServerErrors: 1, maxEjectionPercent: 10 }, () => 0);
    expect(o.record('a', 'server_error', 3)).toBe(true);
    expect(o.record('b', 'server_error', 3)).toBe(false);
    expect(o.ejectedCount()).toBe(1);
  });
  it('classifies statuses', () => {
    expect([200, 404, 500, 502, 503, 504].map(outcomeOfStatus)).toEqual(['success', 'success', 'server_error', 'gateway_error', 'gateway_error', 'gateway_error']);
  });
});
