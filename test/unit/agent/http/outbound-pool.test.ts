// DestinationRule connectionPool.http on the HTTP outbound's upstream connections: maxRequestsPerConnection rotates connections, idleTimeout closes idle ones (HTTP/1.1 and HTTP/2).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as http from 'node:http';
import * as http2 from 'node:http2';
import * as net from 'node:net';
import { HttpOutbound } from '../../../../agent/http/outbound-http';
import { StateStore } from '../../../../agent/state/store';
import type { ConnectionPoolSettings, MeshSnapshot, Service, Workload } from '../../../../core/model/types';
import { pollUntil } from '../../../helpers/wait';

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

/** Upstream connections as the server sees them: opened, and closed so far. */
class ConnLog {
  opened = 0;
  closed = 0;
  readonly closedAt: number[] = [];
  track(sock: net.Socket): void {
    this.opened++;
    sock.once('close', () => {
      this.closed++;
      this.closedAt.push(Date.now());
    });
  }
  get open(): number {
    return this.opened - this.closed;
  }
}

describe('HttpOutbound connection pool settings', () => {
  const h1log = new ConnLog();
  const h2log = new ConnLog();
  let h1: http.Server;
  let h2: http2.Http2Server;
  let front: net.Server;
  let handler: HttpOutbound;
  let state: StateStore;
  let h1svc: Service;
  let h2svc: Service;

  function setPool(cp: ConnectionPoolSettings | undefined): void {
    const snap = state.snapshot();
    const policy = (key: string) => ({ serviceKey: key, subsets: [], portSettings: [], routes: [], connectionPool: cp });
    state.replace({ ...snap, trafficPolicies: new Map([h1svc.key, h2svc.key].map((k) => [k, policy(k)])) } as MeshSnapshot);
  }

  beforeAll(async () => {
    h1 = http.createServer((req, res) => {
      req.resume();
      req.on('end', () => res.end(`h1 ${req.url}`));
    });
    h1.on('connection', (s: net.Socket) => h1log.track(s));
    await new Promise<void>((r) => h1.listen(0, '127.0.0.2', () => r()));
    h2 = http2.createServer();
    h2.on('connection', (s: net.Socket) => h2log.track(s));
    h2.on('stream', (st, h) => {
      st.on('error', () => undefined);
      st.resume();
      st.respond({ ':status': 200 });
      st.end(`h2 ${h[':path']}`);
    });
    await new Promise<void>((r) => h2.listen(0, '127.0.0.3', () => r()));
    const src = wl('client', '127.0.0.1');
    const w1 = wl('one', '127.0.0.2');
    const w2 = wl('two', '127.0.0.3');
    h1svc = {
      key: 'default/one',
      name: 'one',
      namespace: 'default',
      vips: ['10.96.0.21'],
      ports: [{ name: 'http', port: 80, targetPort: (h1.address() as net.AddressInfo).port }],
      selector: {},
      endpointUids: [w1.uid],
    };
    h2svc = {
      key: 'default/two',
      name: 'two',
      namespace: 'default',
      vips: ['10.96.0.22'],
      ports: [{ name: 'http2', port: 80, targetPort: (h2.address() as net.AddressInfo).port }],
      selector: {},
      endpointUids: [w2.uid],
    };
    state = new StateStore({
      trustDomain: 'cluster.local',
      nodes: new Map([['n1', { name: 'n1', address: '127.0.0.1' }]]),
      workloads: new Map([src, w1, w2].map((w) => [w.uid, w])),
      services: new Map([h1svc, h2svc].map((s) => [s.key, s])),
      namespaces: new Map([['default', {}]]),
    });
    handler = new HttpOutbound({ state, hbone: { open: () => Promise.reject(new Error('no hbone')) }, nodeName: 'n1', hbonePort: 15008 });
    front = net.createServer((sock) => {
      const svc = sock.localAddress === '127.0.0.6' ? h2svc : h1svc;
      handler.handle(sock, { source: src, sourceIp: '127.0.0.1', service: svc, port: svc.ports[0]! });
    });
    await new Promise<void>((r) => front.listen(0, '0.0.0.0', () => r()));
  });

  afterAll(async () => {
    handler?.close();
    await new Promise<void>((r) => front.close(() => r()));
    h1.closeAllConnections();
    await new Promise<void>((r) => h1.close(() => r()));
    h2.close();
  });

  const port = () => (front.address() as net.AddressInfo).port;

  async function h1requests(n: number): Promise<string[]> {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const out: string[] = [];
    try {
      for (let i = 0; i < n; i++) {
        out.push(
          await new Promise<string>((resolve, reject) => {
            const r = http.get({ host: '127.0.0.1', port: port(), path: `/r${i}`, agent }, (res) => {
              let body = '';
              res.on('data', (d: Buffer) => (body += d.toString()));
              res.on('end', () => resolve(body));
            });
            r.on('error', reject);
          }),
        );
      }
    } finally {
      agent.destroy();
    }
    return out;
  }

  async function h2requests(n: number): Promise<string[]> {
    const session = http2.connect(`http://127.0.0.6:${port()}`);
    session.on('error', () => undefined);
    const out: string[] = [];
    try {
      for (let i = 0; i < n; i++) {
        out.push(
          await new Promise<string>((resolve, reject) => {
            const q = session.request({ ':path': `/r${i}` });
            let body = '';
            q.on('data', (d: Buffer) => (body += d.toString()));
            q.on('end', () => resolve(body));
            q.on('error', reject);
            q.end();
          }),
        );
      }
    } finally {
      session.close();
    }
    return out;
  }

  it('HTTP/1.1: maxRequestsPerConnection 2 → six sequential requests use three upstream connections; unset → one', async () => {
    setPool({ maxRequestsPerConnection: 2 });
    let before = h1log.opened;
    expect(await h1requests(6)).toEqual(Array.from({ length: 6 }, (_, i) => `h1 /r${i}`));
    expect(h1log.opened - before).toBe(3);
    expect(
      await pollUntil(
        () => h1log.open === 0,
        (met) => met,
        1000,
        10,
      ),
      'each connection was closed after its second request',
    ).toBe(true);
    setPool(undefined);
    before = h1log.opened;
    await h1requests(6);
    expect(h1log.opened - before).toBe(1);
  });

  it('HTTP/1.1: idleTimeout closes an idle upstream connection; without it the connection stays', async () => {
    setPool({ idleTimeoutMs: 150 });
    await h1requests(1);
    const t0 = Date.now();
    expect(
      await pollUntil(
        () => h1log.open === 0,
        (met) => met,
        2000,
        10,
      ),
      'idle connection closed',
    ).toBe(true);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(100);
    setPool({ idleTimeoutMs: 5000 });
    await h1requests(1);
    expect(
      await pollUntil(
        () => h1log.open === 0,
        (met) => met,
        400,
        10,
      ),
      'a 5 s idle timeout leaves it open after 0.4 s',
    ).toBe(false);
  });

  it('HTTP/2: maxRequestsPerConnection 2 → a new upstream session every two streams; idleTimeout closes an idle session', async () => {
    setPool({ maxRequestsPerConnection: 2, idleTimeoutMs: 150 });
    const before = h2log.opened;
    expect(await h2requests(6)).toEqual(Array.from({ length: 6 }, (_, i) => `h2 /r${i}`));
    expect(h2log.opened - before).toBe(3);
    expect(
      await pollUntil(
        () => h2log.open === 0,
        (met) => met,
        2000,
        10,
      ),
      'rotated and idle sessions closed',
    ).toBe(true);
    setPool({ idleTimeoutMs: 5000 });
    const before2 = h2log.opened;
    await h2requests(4);
    expect(h2log.opened - before2).toBe(1);
    expect(
      await pollUntil(
        () => h2log.open === 0,
        (met) => met,
        400,
        10,
      ),
    ).toBe(false);
  });
});
