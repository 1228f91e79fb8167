// HTTP/1.1 Upgrade (WebSocket-style) through the HTTP outbound: 101 splices raw bytes both ways with half-close, a refused upgrade is relayed, each counts as one request.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as http from 'node:http';
import * as net from 'node:net';
import { HttpOutbound, OVERLOAD_HEADER } from '../../../../agent/http/outbound-http';
import { StateStore } from '../../../../agent/state/store';
import type { MeshSnapshot, Service, ServiceTrafficPolicy, Workload } from '../../../../core/model/types';
import { MeshMetrics } from '../../../../agent/telemetry/metrics';
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { createServer: upgradeEcho } = require('../../../apps/upgrade-echo.js') as { createServer: (pod: string) => http.Server };

function wl(name: string, ip: string): Workload {
  return {
    uid: `default/${name}`,
    name,
    namespace: 'default',
    serviceAccount: `${name}-sa`,
    node: 'n1',
    ip,
    labels: { app: name },
    workloadName: name,
    identity: `spiffe://cluster.local/ns/default/sa/${name}-sa`,
    meshed: true,
  };
}

/** A client that speaks raw bytes: sends `text`, collects everything, resolves on close (or after `ms`). */
class RawClient {
  readonly sock: net.Socket;
  private got = '';
  private waiters: Array<() => void> = [];
  readonly closed: Promise<string>;

  constructor(port: number) {
    this.sock = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    this.sock.on('data', (d: Buffer) => {
      this.got += d.toString('latin1');
      for (const w of this.waiters.splice(0)) w();
    });
    this.sock.on('error', () => undefined);
    // The peer's FIN ends our side too (after what we already wrote).
    this.sock.on('end', () => this.sock.end());
    this.closed = new Promise((resolve) => this.sock.once('close', () => resolve(this.got)));
    setTimeout(() => this.sock.destroy(), 5000).unref();
  }

  get text(): string {
    return this.got;
  }

  async until(pattern: RegExp): Promise<string> {
    while (!pattern.test(this.got)) {
      if (this.sock.destroyed) throw new Error(`closed before ${pattern}; got ${JSON.stringify(this.got)}`);
      await new Promise<void>((r) => {
        this.waiters.push(r);
        this.sock.once('close', r);
      });
    }
    return this.got;
  }
}

const UPGRADE_REQUEST = (path: string) =>
  `GET ${path} HTTP/1.1\r\nhost: ws.default\r\nconnection: Upgrade\r\nupgrade: websocket\r\nsec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`;

describe('HttpOutbound: HTTP/1.1 Upgrade', () => {
  let app: http.Server;
  let front: net.Server;
  let handler: HttpOutbound;
  let metrics: MeshMetrics;
  let state: StateStore;
  let service: Service;

  function setPolicy(p: Partial<ServiceTrafficPolicy>): void {
    const policy: ServiceTrafficPolicy = { serviceKey: service.key, subsets: [], portSettings: [], routes: [], ...p };
    state.replace({ ...state.snapshot(), trafficPolicies: new Map([[service.key, policy]]) } as MeshSnapshot);
  }

  beforeAll(async () => {
    app = upgradeEcho('ws-a');
    await new Promise<void>((r) => app.listen(0, '127.0.0.2', () => r()));
    const src = wl('client', '127.0.0.1');
    const wa = wl('ws-a', '127.0.0.2');
    service = {
      key: 'default/ws',
      name: 'ws',
      namespace: 'default',
      vips: ['10.96.0.30'],
      ports: [{ name: 'http', port: 80, targetPort: (app.address() as net.AddressInfo).port }],
      selector: {},
      endpointUids: [wa.uid],
    };
    state = new StateStore({
      trustDomain: 'cluster.local',
      nodes: new Map([['n1', { name: 'n1', address: '127.0.0.1' }]]),
      workloads: new Map([src, wa].map((w) => [w.uid, w])),
      services: new Map([[service.key, service]]),
      namespaces: new Map([['default', {}]]),
    });
    metrics = new MeshMetrics();
    handler = new HttpOutbound({ state, hbone: { open: () => Promise.reject(new Error('no hbone')) }, nodeName: 'n1', hbonePort: 15008, metrics });
    front = net.createServer((sock) => handler.handle(sock, { source: src, sourceIp: '127.0.0.1', service, port: service.ports[0]! }));
    await new Promise<void>((r) => front.listen(0, '127.0.0.1', () => r()));
  });

  afterAll(async () => {
    handler?.close();
    await new Promise<void>((r) => front.close(() => r()));
    app.closeAllConnections();
    await new Promise<void>((r) => app.close(() => r()));
  });

  const port = () => (front.address() as net.AddressInfo).port;

  /** Requests with `code` as reported by `reporter` (a same-node request is reported by both reporters). */
  async function requestsWithCode(code: string, reporter: 'source' | 'destination' = 'source'): Promise<number> {
    return (await metrics.requests.get()).values.filter((v) => v.labels.response_code === code && v.labels.reporter === reporter).reduce((n, v) => n + v.value, 0);
  }

  it('101: the handshake is relayed, bytes echo both ways, the client FIN reaches the app and its last bytes still come back; counted once as 101', async () => {
    setPolicy({});
    const c = new RawClient(port());
    c.sock.write(UPGRADE_REQUEST('/ws/chat'));
    const head = await c.until(/\r\n\r\n/);
    expect(head).toMatch(/^HTTP\/1\.1 101 /);
    expect(head).toMatch(/\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK\+xOo=\r\n/i);
    expect(head).toMatch(/\r\nX-Pod: ws-a\r\n/);
    // A concurrent plain request on another connection is unaffected.
    const plain = await new Promise<number>((resolve, reject) =>
      http
        .get({ host: '127.0.0.1', port: port(), path: '/plain', headers: { host: 'ws.default' } }, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        })
        .on('error', reject),
    );
    expect(plain).toBe(200);
    const binary = Buffer.from([0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58, 0x00, 0xff, 0x0d, 0x0a]);
    c.sock.write(binary);
    await c.until(/\u00ff\r\n$/);
    c.sock.write('second message');
    await c.until(/second message$/);
    c.sock.end(); // half-close: the app answers "bye" after seeing our FIN
    const all = await c.closed;
    expect(all.endsWith('second messagebye ws-a\n')).toBe(true);
    expect(all.slice(head.length)).toBe(`${binary.toString('latin1')}second messagebye ws-a\n`);
    await new Promise((r) => setTimeout(r, 20));
    expect(await requestsWithCode('101')).toBe(1);
    expect(await requestsWithCode('101', 'destination')).toBe(1);
  });

  it('a refused upgrade is relayed as the app answered (403 with body), then the connection closes', async () => {
    setPolicy({});
    const before = await requestsWithCode('403');
    const c = new RawClient(port());
    c.sock.write(UPGRADE_REQUEST('/nows'));
    const all = await c.closed;
    expect(all).toMatch(/^HTTP\/1\.1 403 Forbidden\r\n/);
    expect(all).toMatch(/\r\nconnection: close\r\n/i);
    expect(all.endsWith('\r\n\r\nno upgrade on /nows\n')).toBe(true);
    await new Promise((r) => setTimeout(r, 20));
    expect((await requestsWithCode('403')) - before).toBe(1);
  });

  it('routing and the circuit breaker apply: no route → 404, an open tunnel holds its request slot (maxRequests 1 → second upgrade 503)', async () => {
    setPolicy({ routes: [{ matches: [{ path: { kind: 'prefix', value: '/ws' } }], destinations: [] }] });
    const nr = new RawClient(port());
    nr.sock.write(UPGRADE_REQUEST('/other'));
    expect(await nr.closed).toMatch(/^HTTP\/1\.1 404 /);

    setPolicy({ connectionPool: { maxRequests: 1 } });
    const first = new RawClient(port());
    first.sock.write(UPGRADE_REQUEST('/ws/1'));
    await first.until(/^HTTP\/1\.1 101 [^]*\r\n\r\n/);
    const second = new RawClient(port());
    second.sock.write(UPGRADE_REQUEST('/ws/2'));
    const refused = await second.closed;
    expect(refused).toMatch(/^HTTP\/1\.1 503 /);
    expect(refused).toMatch(new RegExp(`\\r\\n${OVERLOAD_HEADER}: max_requests\\r\\n`));
    first.sock.end();
    await first.closed;
    await new Promise((r) => setTimeout(r, 20));
    const third = new RawClient(port());
    third.sock.write(UPGRADE_REQUEST('/ws/3'));
    await third.until(/^HTTP\/1\.1 101 /);
    third.sock.destroy();
  });

  it('an app that is down: 503 with the connect error', async () => {
    const down: Service = { ...service, key: 'default/down', name: 'down', vips: ['10.96.0.31'], ports: [{ name: 'http', port: 80, targetPort: 1 }] };
    const snap = state.snapshot();
    state.replace({ ...snap, services: new Map([...snap.services, [down.key, down]]), trafficPolicies: new Map() } as MeshSnapshot);
    const f2 = net.createServer((sock) => handler.handle(sock, { source: wl('client', '127.0.0.1'), sourceIp: '127.0.0.1', service: down, port: down.ports[0]! }));
    await new Promise<void>((r) => f2.listen(0, '127.0.0.1', () => r()));
    try {
      const c = new RawClient((f2.address() as net.AddressInfo).port);
      c.sock.write(UPGRADE_REQUEST('/ws'));
      expect(await c.closed).toMatch(/^HTTP\/1\.1 503 [^]*upstream connect error/);
    } finally {
      await new Promise<void>((r) => f2.close(() => r()));
    }
  });
});
