// The one endpoint decision shared by the L4 outbound and the HTTP path (agent/proxy/endpoint-route.ts), and the HTTP path using it: a request to an Istio-sidecar endpoint goes through the sidecar mTLS originator, never plaintext.
import * as http from 'node:http';
import * as net from 'node:net';
import type { Duplex } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HttpOutbound } from '../../../../agent/http/outbound-http';
import { routeToEndpoint, type EndpointRouteInputs } from '../../../../agent/proxy/endpoint-route';
import type { LegacyMtlsRequest } from '../../../../agent/proxy/legacy-mtls';
import { StateStore } from '../../../../agent/state/store';
import type { Service, Workload } from '../../../../core/model/types';
import { MeshMetrics } from '../../../../agent/telemetry/metrics';

const TD = 'cluster.local';

function wl(name: string, ip: string, node: string, extra: Partial<Workload> = {}): Workload {
  return {
    uid: `default/${name}`,
    name,
    namespace: 'default',
    serviceAccount: `${name}-sa`,
    node,
    ip,
    labels: { app: name },
    workloadName: name,
    identity: `spiffe://${TD}/ns/default/sa/${name}-sa`,
    meshed: true,
    ...extra,
  };
}

describe('routeToEndpoint', () => {
  const nodes = new Map([['n2', { name: 'n2', address: '10.0.0.2' }]]);
  const inputs = (over: Partial<EndpointRouteInputs> = {}): EndpointRouteInputs => ({ localNode: 'n1', hbonePort: 15008, trustDomain: TD, node: (n) => nodes.get(n), ...over });

  it.each([
    ['a meshed pod on this node → local', wl('a', '10.1.0.5', 'n1'), inputs(), { kind: 'local', ip: '10.1.0.5', port: 8080 }],
    ['a workload outside the mesh → passthrough', wl('b', '10.1.0.6', 'n2', { meshed: false }), inputs(), { kind: 'passthrough', ip: '10.1.0.6', port: 8080 }],
    [
      'an Istio sidecar pod, even on this node → legacy_mtls with its identity',
      wl('c', '10.1.0.7', 'n1', { meshed: false, tunnel: 'legacy_istio_mtls' }),
      inputs(),
      { kind: 'legacy_mtls', ip: '10.1.0.7', port: 8080, serverId: `spiffe://${TD}/ns/default/sa/c-sa` },
    ],
    [
      'a meshed pod on another node, pod-addressed (default) → HBONE to <pod IP>:15008, its workload identity',
      wl('d', '10.2.0.8', 'n2'),
      inputs(),
      { kind: 'hbone', ip: '10.2.0.8', port: 8080, nodeAddr: { host: '10.2.0.8', port: 15008 }, nodeId: `spiffe://${TD}/ns/default/sa/d-sa`, authority: '10.2.0.8:8080' },
    ],
    [
      'node-addressed → HBONE to the node address, its node identity',
      wl('e', '10.2.0.9', 'n2'),
      inputs({ hboneAddressing: 'node' }),
      { kind: 'hbone', ip: '10.2.0.9', port: 8080, nodeAddr: { host: '10.0.0.2', port: 15008 }, nodeId: `spiffe://${TD}/smesh/node/n2`, authority: '10.2.0.9:8080' },
    ],
    ['node-addressed to a node whose address is unknown → unknown_node', wl('f', '10.3.0.1', 'n3'), inputs({ hboneAddressing: 'node' }), { kind: 'unknown_node' }],
    ['an IPv6 pod on another node → bracketed authority', wl('g', 'fd00::7', 'n2'), inputs(), { kind: 'hbone', authority: '[fd00::7]:8080' }],
  ])('%s', (_name, w, i, expected) => {
    expect(routeToEndpoint(w, 8080, i)).toMatchObject(expected);
  });
});

describe('the HTTP path to an Istio-sidecar endpoint', () => {
  let app: http.Server;
  let front: net.Server;
  let handler: HttpOutbound;
  const originated: LegacyMtlsRequest[] = [];

  beforeAll(async () => {
    // The "sidecar": an HTTP server reached only through the originator below (the mTLS itself is LegacyMtlsConnector's,
    // tested against stand-in sidecars in test/unit/agent/proxy/outbound-legacy-mtls.test.ts).
    app = http.createServer((req, res) => res.end(`sidecar saw ${req.url}`));
    await new Promise<void>((r) => app.listen(0, '127.0.0.1', () => r()));
    const appPort = (app.address() as net.AddressInfo).port;
    const src = wl('client', '127.0.0.1', 'n1');
    const side = wl('legacy', '127.0.0.9', 'n1', { meshed: false, tunnel: 'legacy_istio_mtls' });
    const svc: Service = {
      key: 'default/legacy',
      name: 'legacy',
      namespace: 'default',
      vips: ['10.96.0.20'],
      ports: [{ name: 'http', port: 80, targetPort: appPort }],
      selector: {},
      endpointUids: [side.uid],
    };
    const state = new StateStore({
      trustDomain: TD,
      nodes: new Map([['n1', { name: 'n1', address: '127.0.0.1' }]]),
      workloads: new Map([src, side].map((w) => [w.uid, w])),
      services: new Map([[svc.key, svc]]),
      namespaces: new Map([['default', {}]]),
    });
    handler = new HttpOutbound({
      state,
      hbone: { open: () => Promise.reject(new Error('no hbone')) },
      nodeName: 'n1',
      hbonePort: 15008,
      metrics: new MeshMetrics(),
      legacyMtls: {
        connect: (req: LegacyMtlsRequest): Promise<Duplex> => {
          originated.push(req);
          return new Promise((resolve, reject) => {
            const s = net.connect({ host: '127.0.0.1', port: appPort }, () => resolve(s));
            s.once('error', reject);
          });
        },
      },
    });
    front = net.createServer((sock) => handler.handle(sock, { source: src, sourceIp: '127.0.0.1', service: svc, port: svc.ports[0]! }));
    await new Promise<void>((r) => front.listen(0, '127.0.0.1', () => r()));
  });

  afterAll(async () => {
    handler?.close();
    await new Promise<void>((r) => front.close(() => r()));
    await new Promise<void>((r) => app.close(() => r()));
  });

  it('opens the upstream through the sidecar mTLS originator with the sidecar identity and SNI (no plaintext fallback)', async () => {
    const res = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      http
        .get({ host: '127.0.0.1', port: (front.address() as net.AddressInfo).port, path: '/hello', agent: false }, (r) => {
          let body = '';
          r.on('data', (d: Buffer) => (body += d.toString()));
          r.on('end', () => resolve({ status: r.statusCode ?? 0, body }));
        })
        .on('error', reject);
    });
    expect(res).toEqual({ status: 200, body: 'sidecar saw /hello' });
    expect(originated).toHaveLength(1);
    expect(originated[0]).toMatchObject({ address: { host: '127.0.0.9' }, expectedServerId: `spiffe://${TD}/ns/default/sa/legacy-sa`, sni: 'outbound_.80_._.legacy.default.svc.cluster.local' });
  });
});
