// Wire compatibility of proto/: bytes are checked against hand-encoded protobuf using Istio's and Envoy's published field numbers, then round-tripped.
import { describe, expect, it } from 'vitest';
import { loadMeshProtos, MESH_PROTO_OPTIONS, TYPE_URL } from '../../../proto';
import type { TrafficPolicy } from '../../../proto/generated/smesh/traffic/v1alpha1/TrafficPolicy';
import { decodeDeltaResponse } from '../../../agent/xds/wire';

const { codecs, codecFor } = loadMeshProtos();

// Minimal protobuf writer, independent of protobufjs, so the expected bytes come from the field
// numbers written in these tests and not from our own .proto files.
function varint(n: number): number[] {
  const out: number[] = [];
  let v = n;
  while (v >= 0x80) {
    out.push((v % 0x80) | 0x80);
    v = Math.floor(v / 0x80);
  }
  out.push(v);
  return out;
}
const VARINT = 0;
const LEN = 2;
const tag = (field: number, wireType: number): number[] => varint(field * 8 + wireType);
const int = (field: number, value: number): number[] => [...tag(field, VARINT), ...varint(value)];
const bytes = (field: number, payload: number[] | Buffer): number[] => [...tag(field, LEN), ...varint(payload.length), ...payload];
const str = (field: number, s: string): number[] => bytes(field, Buffer.from(s, 'utf8'));
const hex = (b: Uint8Array | number[]): string => Buffer.from(b).toString('hex');

const ip = (s: string): Buffer => Buffer.from(s.split('.').map(Number));

describe('proto: options', () => {
  it('are the documented ones', () => {
    expect(MESH_PROTO_OPTIONS).toMatchObject({ keepCase: false, longs: Number, enums: String, defaults: true, oneofs: true, json: false });
  });
});

describe('proto: istio.workload', () => {
  it('Workload.uid is field 20 (bytes a2 01)', () => {
    expect(hex(codecs.workload.encode({ uid: 'x' }))).toBe('a2010178');
    expect(hex(str(20, 'x'))).toBe('a2010178');
  });

  it('Port.smesh_app_protocol is field 1000 (bytes c2 3e), far from Istio numbers; absent is not encoded', () => {
    const port = codecFor<{ servicePort: number; smeshAppProtocol?: string }, { servicePort: number; smeshAppProtocol: string }>('istio.workload.Port');
    expect(hex(port.encode({ servicePort: 80, smeshAppProtocol: 'http' }))).toBe(hex([...int(1, 80), ...str(1000, 'http')]));
    expect(hex(str(1000, 'http')).slice(0, 4)).toBe('c23e');
    expect(hex(port.encode({ servicePort: 80 }))).toBe(hex(int(1, 80)));
    expect(port.decode(Buffer.from([...int(1, 80), ...str(1000, 'grpc')]))).toMatchObject({ servicePort: 80, smeshAppProtocol: 'grpc' });
  });

  it("Port.app_protocol is Istio's field 3, AppProtocol UNKNOWN=0 HTTP11=1 HTTP2=2 GRPC=3 TCP=4 TLS=5", () => {
    const port = codecFor<{ servicePort: number; appProtocol?: string }, { servicePort: number; appProtocol: string }>('istio.workload.Port');
    const values = ['UNKNOWN', 'HTTP11', 'HTTP2', 'GRPC', 'TCP', 'TLS'];
    values.forEach((name, n) => {
      expect(hex(port.encode({ servicePort: 80, appProtocol: name }))).toBe(hex([...int(1, 80), ...int(3, n)]));
      expect(port.decode(Buffer.from([...int(1, 80), ...int(3, n)])).appProtocol).toBe(name);
    });
    expect(port.decode(Buffer.from(int(1, 80))).appProtocol).toBe('UNKNOWN');
  });

  it('encodes the fields ztunnel reads with Istio numbers', () => {
    const encoded = codecs.workload.encode({
      name: 'p',
      namespace: 'ns',
      addresses: [ip('10.0.0.5')],
      tunnelProtocol: 'HBONE',
      trustDomain: 'td',
      serviceAccount: 'sa',
      node: 'n1',
      workloadType: 'POD',
      status: 'UNHEALTHY',
      clusterId: 'c',
      uid: 'u',
      hostname: 'h',
      services: { 'ns/svc': { ports: [{ servicePort: 80, targetPort: 8080 }] } },
      locality: { region: 'r', zone: 'z', subzone: 's' },
      networkMode: 'HOST_NETWORK',
      capacity: { value: 3 },
      authorizationPolicies: ['ns/deny'],
      waypoint: { address: { address: ip('10.0.0.9') }, hboneMtlsPort: 15008 },
      applicationTunnel: { protocol: 'PROXY', port: 15088 },
    });
    // protobufjs writes fields in field-number order.
    const portList = bytes(1, [...int(1, 80), ...int(2, 8080)]);
    const expected = [
      ...str(1, 'p'),
      ...str(2, 'ns'),
      ...bytes(3, ip('10.0.0.5')),
      ...int(5, 1), // HBONE
      ...str(6, 'td'),
      ...str(7, 'sa'),
      ...bytes(8, [...bytes(2, bytes(2, ip('10.0.0.9'))), ...int(3, 15008)]),
      ...str(9, 'n1'),
      ...int(12, 2), // POD
      ...str(16, 'ns/deny'),
      ...int(17, 1), // UNHEALTHY
      ...str(18, 'c'),
      ...str(20, 'u'),
      ...str(21, 'h'),
      ...bytes(22, [...str(1, 'ns/svc'), ...bytes(2, portList)]),
      ...bytes(23, [...int(1, 1), ...int(2, 15088)]),
      ...bytes(24, [...str(1, 'r'), ...str(2, 'z'), ...str(3, 's')]),
      ...int(25, 1), // HOST_NETWORK
      ...bytes(27, int(1, 3)),
    ];
    expect(hex(encoded)).toBe(hex(expected));

    const decoded = codecs.workload.decode(Buffer.from(expected));
    expect(decoded.uid).toBe('u');
    expect(decoded.addresses).toEqual([ip('10.0.0.5')]);
    expect(decoded.tunnelProtocol).toBe('HBONE');
    expect(decoded.services['ns/svc']?.ports).toEqual([{ servicePort: 80, targetPort: 8080, appProtocol: 'UNKNOWN', smeshAppProtocol: '' }]);
    expect(decoded.capacity).toEqual({ value: 3 });
    expect(decoded.waypoint?.destination).toBe('address');
    expect(decoded.waypoint?.address?.address).toEqual(ip('10.0.0.9'));
    expect(decoded.applicationTunnel).toEqual({ protocol: 'PROXY', port: 15088 });
    expect(decoded.networkMode).toBe('HOST_NETWORK');
  });

  it('decodes absent fields to defaults and skips unknown fields', () => {
    // Field 99 (unknown here) and retired field 15 must be ignored, not rejected.
    const withUnknown = [...str(20, 'u'), ...str(99, 'future'), ...bytes(15, str(1, 'old'))];
    const w = codecs.workload.decode(Buffer.from(withUnknown));
    expect(w.uid).toBe('u');
    expect(w.name).toBe('');
    expect(w.addresses).toEqual([]);
    expect(w.services).toEqual({});
    expect(w.tunnelProtocol).toBe('NONE');
    expect(w.waypoint).toBeNull();
    expect(w.capacity).toBeNull();
  });

  it('Address is a oneof of workload (1) and service (2)', () => {
    const svc = codecs.address.encode({
      service: {
        name: 'reviews',
        namespace: 'default',
        hostname: 'reviews.default.svc.cluster.local',
        addresses: [{ network: 'n', address: ip('10.96.0.10') }],
        ports: [{ servicePort: 9080, targetPort: 9080 }],
        subjectAltNames: ['spiffe://td/ns/default/sa/reviews'],
        loadBalancing: { routingPreference: ['ZONE', 'NODE'], mode: 'FAILOVER' },
        ipFamilies: 'IPV4_ONLY',
        canonical: true,
      },
    });
    const service = [
      ...str(1, 'reviews'),
      ...str(2, 'default'),
      ...str(3, 'reviews.default.svc.cluster.local'),
      ...bytes(4, [...str(1, 'n'), ...bytes(2, ip('10.96.0.10'))]),
      ...bytes(5, [...int(1, 9080), ...int(2, 9080)]),
      ...str(6, 'spiffe://td/ns/default/sa/reviews'),
      ...bytes(8, [...bytes(1, [2, 4]), ...int(2, 2)]), // packed repeated enum, mode FAILOVER
      ...int(9, 1),
      ...int(11, 1),
    ];
    expect(hex(svc)).toBe(hex(bytes(2, service)));

    const decoded = codecs.address.decode(svc);
    expect(decoded.type).toBe('service');
    expect(decoded.workload).toBeUndefined();
    expect(decoded.service?.loadBalancing?.routingPreference).toEqual(['ZONE', 'NODE']);

    const wl = codecs.address.decode(Buffer.from(bytes(1, str(20, 'w'))));
    expect(wl.type).toBe('workload');
    expect(wl.workload?.uid).toBe('w');
  });

  it('packs an Address in an Any with the istio type URL', () => {
    const any = codecs.address.pack({ workload: { uid: 'cluster//Pod/default/p', addresses: [ip('10.0.0.7')] } });
    expect(any.type_url).toBe('type.googleapis.com/istio.workload.Address');
    expect(any.type_url).toBe(TYPE_URL.address);
    expect(hex(any.value)).toBe(hex(bytes(1, [...bytes(3, ip('10.0.0.7')), ...str(20, 'cluster//Pod/default/p')])));

    // The Any message itself: type_url = 1, value = 2.
    const anyCodec = codecFor<{ type_url: string; value: Buffer }, { type_url: string; value: Buffer }>('google.protobuf.Any');
    const anyBytes = anyCodec.encode(any);
    expect(hex(anyBytes)).toBe(hex([...str(1, any.type_url), ...bytes(2, any.value)]));
    const back = codecs.address.unpack(anyCodec.decode(anyBytes));
    expect(back.workload?.uid).toBe('cluster//Pod/default/p');

    expect(() => codecs.address.unpack({ type_url: TYPE_URL.authorization, value: Buffer.alloc(0) })).toThrow(TypeError);
  });
});

describe('proto: istio.security', () => {
  it('Authorization uses Istio numbers, including ServiceAccountMatch (Match 11/12)', () => {
    const encoded = codecs.authorization.encode({
      name: 'deny-db',
      namespace: 'prod',
      scope: 'WORKLOAD_SELECTOR',
      action: 'DENY',
      groups: [
        {
          rules: [
            {
              matches: [
                {
                  principals: [{ exact: 'td/ns/prod/sa/web' }],
                  notNamespaces: [{ prefix: 'kube-' }],
                  sourceIps: [{ address: ip('10.1.0.0'), length: 16 }],
                  destinationPorts: [5432, 8080],
                  serviceAccounts: [{ namespace: 'prod', serviceAccount: 'api' }],
                },
              ],
            },
          ],
        },
      ],
    });
    const match = [
      ...bytes(2, bytes(2, Buffer.from('kube-'))),
      ...bytes(3, str(1, 'td/ns/prod/sa/web')),
      ...bytes(5, [...bytes(1, ip('10.1.0.0')), ...int(2, 16)]),
      ...bytes(9, [...varint(5432), ...varint(8080)]), // packed
      ...bytes(11, [...str(1, 'prod'), ...str(2, 'api')]),
    ];
    const expected = [...str(1, 'deny-db'), ...str(2, 'prod'), ...int(3, 2), ...int(4, 1), ...bytes(5, bytes(1, bytes(2, match)))];
    expect(hex(encoded)).toBe(hex(expected));

    const decoded = codecs.authorization.decode(encoded);
    expect(decoded.scope).toBe('WORKLOAD_SELECTOR');
    expect(decoded.action).toBe('DENY');
    const m = decoded.groups[0]?.rules[0]?.matches[0];
    expect(m?.principals[0]).toMatchObject({ matchType: 'exact', exact: 'td/ns/prod/sa/web' });
    expect(m?.notNamespaces[0]).toMatchObject({ matchType: 'prefix', prefix: 'kube-' });
    expect(m?.destinationPorts).toEqual([5432, 8080]);
    expect(m?.serviceAccounts).toEqual([{ namespace: 'prod', serviceAccount: 'api' }]);
  });

  it('StringMatch presence is an Empty in field 4', () => {
    const sm = codecFor('istio.security.StringMatch');
    expect(hex(sm.encode({ presence: {} }))).toBe('2200');
    expect(sm.decode(Buffer.from([0x22, 0x00]))).toMatchObject({ matchType: 'presence', presence: {} });
  });
});

describe('proto: envoy.service.discovery.v3', () => {
  it('DeltaDiscoveryRequest uses Envoy numbers', () => {
    const encoded = codecs.deltaDiscoveryRequest.encode({
      node: { id: 'node-1', cluster: 'smesh', metadata: { fields: { NODE_NAME: { stringValue: 'node-1' } } } },
      typeUrl: TYPE_URL.address,
      resourceNamesSubscribe: ['*'],
      resourceNamesUnsubscribe: ['gone'],
      initialResourceVersions: { a: '1' },
      responseNonce: 'n1',
      errorDetail: { code: 3, message: 'bad' },
    });
    const value = str(3, 'node-1'); // google.protobuf.Value.string_value = 3
    const struct = bytes(1, [...str(1, 'NODE_NAME'), ...bytes(2, value)]); // Struct.fields map entry
    const expected = [
      ...bytes(1, [...str(1, 'node-1'), ...str(2, 'smesh'), ...bytes(3, struct)]),
      ...str(2, TYPE_URL.address),
      ...str(3, '*'),
      ...str(4, 'gone'),
      ...bytes(5, [...str(1, 'a'), ...str(2, '1')]),
      ...str(6, 'n1'),
      ...bytes(7, [...int(1, 3), ...str(2, 'bad')]),
    ];
    expect(hex(encoded)).toBe(hex(expected));

    const decoded = codecs.deltaDiscoveryRequest.decode(encoded);
    expect(decoded.typeUrl).toBe(TYPE_URL.address);
    expect(decoded.node?.id).toBe('node-1');
    expect(decoded.node?.metadata?.fields.NODE_NAME?.stringValue).toBe('node-1');
    expect(decoded.resourceNamesSubscribe).toEqual(['*']);
    expect(decoded.initialResourceVersions).toEqual({ a: '1' });
    expect(decoded.errorDetail).toMatchObject({ code: 3, message: 'bad', details: [] });
  });

  it('DeltaDiscoveryResponse and Resource use Envoy numbers', () => {
    const address = codecs.address.pack({ workload: { uid: 'w' } });
    const encoded = codecs.deltaDiscoveryResponse.encode({
      systemVersionInfo: 'v9',
      resources: [{ version: '7', name: 'w', aliases: ['default/10.0.0.1'], resource: address, ttl: { seconds: 30 } }],
      typeUrl: TYPE_URL.address,
      nonce: 'abc',
      removedResources: ['old'],
    });
    const resource = [...str(1, '7'), ...bytes(2, [...str(1, address.type_url), ...bytes(2, address.value)]), ...str(3, 'w'), ...str(4, 'default/10.0.0.1'), ...bytes(6, int(1, 30))];
    const expected = [...str(1, 'v9'), ...bytes(2, resource), ...str(4, TYPE_URL.address), ...str(5, 'abc'), ...str(6, 'old')];
    expect(hex(encoded)).toBe(hex(expected));

    const decoded = codecs.deltaDiscoveryResponse.decode(encoded);
    expect(decoded.removedResources).toEqual(['old']);
    const r = decoded.resources[0];
    expect(r?.ttl).toEqual({ seconds: 30, nanos: 0 });
    expect(typeof r?.ttl?.seconds).toBe('number'); // longs: Number
    expect(codecs.address.unpack(r!.resource!).workload?.uid).toBe('w');
  });

  it("DeltaDiscoveryResponse.control_plane is Envoy's field 7 (ControlPlane.identifier = 1), decoded by the agent's own decoder too", () => {
    const identifier = '{"Component":"istiod","ID":"istiod-5d8f9","Info":{"version":"1.24.2"}}';
    const wire = Buffer.from([...str(4, TYPE_URL.address), ...str(5, 'n1'), ...bytes(7, str(1, identifier))]);
    expect(hex(codecs.deltaDiscoveryResponse.encode({ typeUrl: TYPE_URL.address, nonce: 'n1', controlPlane: { identifier } }))).toBe(hex(wire));
    expect(codecs.deltaDiscoveryResponse.decode(wire).controlPlane).toEqual({ identifier });
    expect(decodeDeltaResponse(wire).controlPlane).toEqual({ identifier });
  });

  it('Node skips the upstream fields smesh leaves out (user_agent_build_version 8, extensions 9)', () => {
    const node = codecFor<Record<string, unknown>, { id: string; userAgentName: string }>('envoy.config.core.v3.Node');
    const decoded = node.decode(Buffer.from([...str(1, 'n'), ...str(6, 'ztunnel'), ...bytes(8, []), ...bytes(9, str(1, 'x'))]));
    expect(decoded).toMatchObject({ id: 'n', userAgentName: 'ztunnel' });
  });
});

describe('proto: istio.v1.auth', () => {
  it('IstioCertificateRequest/Response use Istio numbers', () => {
    const req = codecs.istioCertificateRequest.encode({
      csr: 'PEM',
      validityDuration: 86400,
      metadata: { fields: { ClusterID: { stringValue: 'c1' } } },
    });
    const expected = [...str(1, 'PEM'), ...int(3, 86400), ...bytes(4, bytes(1, [...str(1, 'ClusterID'), ...bytes(2, str(3, 'c1'))]))];
    expect(hex(req)).toBe(hex(expected));
    expect(codecs.istioCertificateRequest.decode(req).validityDuration).toBe(86400);

    const resp = codecs.istioCertificateResponse.encode({ certChain: ['leaf', 'root'], rootCert: { caCert: ['root'] } });
    expect(hex(resp)).toBe(hex([...str(1, 'leaf'), ...str(1, 'root'), ...bytes(2, str(1, 'root'))]));
    expect(codecs.istioCertificateResponse.decode(resp).certChain).toEqual(['leaf', 'root']);
  });
});

describe('proto: smesh.traffic.v1alpha1', () => {
  it('round-trips a full TrafficPolicy', () => {
    const policy = {
      namespace: 'default',
      hostname: 'reviews.default.svc.cluster.local',
      loadBalancer: {
        consistentHash: { httpCookie: { name: 'session', path: '/', ttl: { seconds: 3600, nanos: 0 } }, tableSize: 65537 },
        locality: { prefer: ['REGION', 'ZONE'], failover: [{ from: 'us-east', to: 'us-west' }], strict: false },
      },
      connectionPool: {
        maxConnections: 100,
        maxPendingRequests: 10,
        maxRequests: 1000,
        maxRetries: 3,
        connectTimeout: { seconds: 1, nanos: 500_000_000 },
      },
      outlierDetection: {
        consecutiveServerErrors: { value: 0 },
        consecutiveGatewayErrors: { value: 3 },
        consecutiveConnectFailures: { value: 5 },
        interval: { seconds: 10, nanos: 0 },
        baseEjectionTime: { seconds: 30, nanos: 0 },
        maxEjectionTime: { seconds: 300, nanos: 0 },
        maxEjectionPercent: { value: 50 },
      },
      subsets: [{ name: 'v2', labels: { version: 'v2' }, workloadUids: ['u1', 'u2'] }],
      routes: [
        {
          name: 'canary',
          match: [{ path: { prefix: '/api' }, method: { exact: 'GET' }, headers: { 'x-canary': { regex: 'on|yes' } } }],
          destinations: [{ subset: 'v2', weight: 10 }, { weight: 90 }],
          timeout: { seconds: 5, nanos: 0 },
          retries: {
            attempts: { value: 2 },
            perTryTimeout: { seconds: 1, nanos: 0 },
            retryOn: ['5xx', 'connect-failure'],
            budget: { budgetPercent: 20, minRetryConcurrency: 3 },
          },
          fault: { delay: { fixedDelay: { seconds: 0, nanos: 5_000_000 }, percent: 1.5 }, abort: { httpStatus: 503, percent: 0.1 } },
        },
      ],
      rateLimit: { requests: { ratePerSecond: 100, burst: 200 }, bytes: { ratePerSecond: 10_000_000_000, burst: 0 } },
    } satisfies TrafficPolicy;
    const decoded = codecs.trafficPolicy.decode(codecs.trafficPolicy.encode(policy));
    expect(decoded.loadBalancer?.policy).toBe('consistentHash');
    expect(decoded.loadBalancer?.consistentHash?.hashKey).toBe('httpCookie');
    expect(decoded.loadBalancer?.locality?.prefer).toEqual(['REGION', 'ZONE']);
    expect(decoded.connectionPool).toMatchObject(policy.connectionPool);
    // Explicit 0 survives in a wrapper: "disabled", not "unset".
    expect(decoded.outlierDetection?.consecutiveServerErrors).toEqual({ value: 0 });
    expect(decoded.outlierDetection?.maxEjectionPercent).toEqual({ value: 50 });
    expect(decoded.subsets).toEqual(policy.subsets.map((s) => ({ ...s, loadBalancer: null, connectionPool: null, outlierDetection: null })));
    const route = decoded.routes[0]!;
    expect(route.match[0]?.path).toMatchObject({ match: 'prefix', prefix: '/api' });
    expect(route.match[0]?.headers['x-canary']).toMatchObject({ match: 'regex', regex: 'on|yes' });
    expect(route.destinations).toEqual([
      { subset: 'v2', weight: 10, service: '', port: 0 },
      { subset: '', weight: 90, service: '', port: 0 },
    ]);
    expect(route.retries?.attempts).toEqual({ value: 2 });
    expect(route.retries?.budget).toEqual({ budgetPercent: 20, minRetryConcurrency: 3 });
    expect(route.fault?.abort).toEqual({ httpStatus: 503, percent: 0.1 });
    expect(decoded.rateLimit?.bytes).toEqual({ ratePerSecond: 10_000_000_000, burst: 0 });
    expect(decoded.rateLimit?.connections).toBeNull();

    const any = codecs.trafficPolicy.pack(policy);
    expect(any.type_url).toBe('type.googleapis.com/smesh.traffic.v1alpha1.TrafficPolicy');
  });

  it('round-trips a TrafficShaping keyed by workload uid', () => {
    const shaping = { workloadUid: 'cluster//Pod/default/p', limits: { connections: { ratePerSecond: 50, burst: 100 } }, maxConnections: 200, fairShareWeight: 2 };
    const decoded = codecs.trafficShaping.decode(codecs.trafficShaping.encode(shaping));
    expect(decoded).toMatchObject(shaping);
    expect(codecs.trafficShaping.typeUrl).toBe(TYPE_URL.trafficShaping);
  });
});
