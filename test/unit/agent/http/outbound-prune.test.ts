// Per-service HTTP state of the outbound (breakers, outlier trackers, pools, HTTP/2 sessions) is dropped when services and endpoints leave the mesh state: churn does not grow it.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as http from 'node:http';
import * as http2 from 'node:http2';
import * as net from 'node:net';
import { HttpOutbound } from '../../../../agent/http/outbound-http';
import { StateStore } from '../../../../agent/state/store';
import type { MeshSnapshot, Service, Workload } from '../../../../core/model/types';
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

describe('HttpOutbound: state of departed services is pruned', () => {
  let h1: http.Server;
  let h2: http2.Http2Server;
  let h1open = 0;
  let h2open = 0;
  let front: net.Server;
  let handler: HttpOutbound;
  const src = wl('client', '127.0.0.1');
  const state = new StateStore({
    trustDomain: 'cluster.local',
    nodes: new Map([['n1', { name: 'n1', address: '127.0.0.1' }]]),
    workloads: new Map([[src.uid, src]]),
    services: new Map(),
    namespaces: new Map([['default', {}]]),
  });
  /** The service a new client connection is for (set before connecting). */
  let current: Service | undefined;

  beforeAll(async () => {
    h1 = http.createServer((req, res) => {
      req.resume();
      res.end('h1');
    });
    h1.on('connection', (s: net.Socket) => {
      h1open++;
      s.once('close', () => h1open--);
    });
    await new Promise<void>((r) => h1.listen(0, '127.0.0.2', () => r()));
    h2 = http2.createServer();
    h2.on('connection', (s: net.Socket) => {
      h2open++;
      s.once('close', () => h2open--);
    });
    h2.on('stream', (st) => {
      st.on('error', () => undefined);
      st.resume();
      st.respond({ ':status': 200 });
      st.end('h2');
    });
    await new Promise<void>((r) => h2.listen(0, '127.0.0.3', () => r()));
    handler = new HttpOutbound({ state, hbone: { open: () => Promise.reject(new Error('no hbone')) }, nodeName: 'n1', hbonePort: 15008, pruneIntervalMs: 30 });
    front = net.createServer((sock) => handler.handle(sock, { source: src, sourceIp: '127.0.0.1', service: current!, port: current!.ports[0]! }));
    await new Promise<void>((r) => front.listen(0, '127.0.0.1', () => r()));
  });

  afterAll(async () => {
    handler?.close();
    await new Promise<void>((r) => front.close(() => r()));
    h1.closeAllConnections();
    await new Promise<void>((r) => h1.close(() => r()));
    h2.close();
  });

  const port = () => (front.address() as net.AddressInfo).port;

  /** Adds service `name` with one endpoint (h1 on 127.0.0.2 or h2 on 127.0.0.3) and a DestinationRule with a subset and a breaker. */
  function addService(name: string, kind: 'h1' | 'h2'): Service {
    const w = wl(`${name}-pod`, kind === 'h1' ? '127.0.0.2' : '127.0.0.3');
    const target = ((kind === 'h1' ? h1 : h2).address() as net.AddressInfo).port;
    const svc: Service = {
      key: `default/${name}`,
      name,
      namespace: 'default',
      vips: [`10.97.${Math.floor(Math.random() * 250)}.${Math.floor(Math.random() * 250)}`],
      ports: [{ name: kind === 'h1' ? 'http' : 'http2', port: 80, targetPort: target }],
      selector: {},
      endpointUids: [w.uid],
    };
    const snap = state.snapshot();
    state.replace({
      ...snap,
      workloads: new Map([...snap.workloads, [w.uid, w]]),
      services: new Map([...snap.services, [svc.key, svc]]),
      trafficPolicies: new Map([
        ...(snap.trafficPolicies ?? new Map()),
        [
          svc.key,
          {
            serviceKey: svc.key,
            subsets: [{ name: 'v1', labels: {}, workloadUids: [w.uid] }],
            portSettings: [],
            routes: [{ matches: [], destinations: [{ subset: 'v1', weight: 100 }] }],
            connectionPool: { maxRequests: 100 },
            outlierDetection: { consecutiveServerErrors: 3 },
          },
        ],
      ]),
    } as MeshSnapshot);
    return svc;
  }

  function removeService(svc: Service): void {
    const snap = state.snapshot();
    const services = new Map(snap.services);
    services.delete(svc.key);
    const workloads = new Map(snap.workloads);
    for (const uid of svc.endpointUids ?? []) workloads.delete(uid);
    const policies = new Map(snap.trafficPolicies ?? new Map());
    policies.delete(svc.key);
    state.replace({ ...snap, services, workloads, trafficPolicies: policies } as MeshSnapshot);
  }

  async function call(svc: Service, kind: 'h1' | 'h2'): Promise<string> {
    current = svc;
    if (kind === 'h1') {
      return new Promise((resolve, reject) => {
        http
          .get({ host: '127.0.0.1', port: port(), path: '/', agent: false }, (res) => {
            let b = '';
            res.on('data', (d: Buffer) => (b += d.toString()));
            res.on('end', () => resolve(b));
          })
          .on('error', reject);
      });
    }
    const session = http2.connect(`http://127.0.0.1:${port()}`);
    try {
      return await new Promise<string>((resolve, reject) => {
        const q = session.request({ ':path': '/' });
        let b = '';
        q.on('data', (d: Buffer) => (b += d.toString()));
        q.on('end', () => resolve(b));
        q.on('error', reject);
        q.end();
      });
    } finally {
      session.close();
    }
  }

  it('a departed service loses its backend, pool and HTTP/2 session; its upstream connections close', async () => {
    const s1 = addService('web', 'h1');
    const s2 = addService('rpc', 'h2');
    expect(await call(s1, 'h1')).toBe('h1');
    expect(await call(s2, 'h2')).toBe('h2');
    expect(handler.stats()).toEqual({ backends: 2, upstreamPools: 1, h2Sessions: 1 });
    expect(h1open).toBe(1);
    expect(h2open).toBe(1);
    removeService(s1);
    expect(
      await pollUntil(
        () => handler.stats().backends === 1,
        (met) => met,
        1000,
        10,
      ),
    ).toBe(true);
    expect(handler.stats()).toEqual({ backends: 1, upstreamPools: 0, h2Sessions: 1 });
    expect(
      await pollUntil(
        () => h1open === 0,
        (met) => met,
        1000,
        10,
      ),
      'the idle upstream HTTP/1.1 connection is closed',
    ).toBe(true);
    removeService(s2);
    expect(
      await pollUntil(
        () => handler.stats().backends === 0,
        (met) => met,
        1000,
        10,
      ),
    ).toBe(true);
    expect(handler.stats()).toEqual({ backends: 0, upstreamPools: 0, h2Sessions: 0 });
    expect(
      await pollUntil(
        () => h2open === 0,
        (met) => met,
        1000,
        10,
      ),
      'the upstream HTTP/2 session is closed',
    ).toBe(true);
  });

  it('service churn leaves nothing behind', async () => {
    for (let i = 0; i < 30; i++) {
      const kind = i % 2 === 0 ? 'h1' : 'h2';
      const svc = addService(`churn-${i}`, kind);
      expect(await call(svc, kind)).toBe(kind);
      removeService(svc);
    }
    expect(
      await pollUntil(
        () => handler.stats().backends === 0,
        (met) => met,
        1000,
        10,
      ),
    ).toBe(true);
    expect(handler.stats()).toEqual({ backends: 0, upstreamPools: 0, h2Sessions: 0 });
    // A service that comes back starts afresh and works.
    const again = addService('churn-0', 'h1');
    expect(await call(again, 'h1')).toBe('h1');
  });
});
