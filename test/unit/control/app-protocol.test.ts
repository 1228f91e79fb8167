// istio.workload.Port.app_protocol as istiod fills it: the Service port (name / appProtocol / number) → AppProtocol table, what the control plane encodes, and that the agent reads back what the file source decides.
import { describe, expect, it } from 'vitest';
import { buildSnapshot as buildFileSnapshot, parseConfigText, type ConfigProblem } from '../../../control/config/config-dir';
import { istioAppProtocol, portProtocol, type IstioAppProtocol } from '../../../core/model/protocol';
import type { MeshSnapshot, ServicePort } from '../../../core/model/types';
import { buildSnapshot, parseResource, type AcceptedAddress } from '../../../agent/xds/convert';
import { buildResourceSets, serviceAddress } from '../../../control/xds-resources';
import { loadMeshProtos } from '../../../proto';
import { XDS_TYPE_URL } from '../../../core/xds/contract';

const { codecs } = loadMeshProtos();

describe('istioAppProtocol: Service port → AppProtocol, as istiod maps it', () => {
  // [port name, appProtocol, port number, expected]. Facts from istiod's ambient index (ConvertProtocol, then the enum).
  const table: ReadonlyArray<[string | undefined, string | undefined, number, IstioAppProtocol]> = [
    ['http', undefined, 80, 'HTTP11'],
    ['http-web', undefined, 80, 'HTTP11'],
    ['HTTP-Web', undefined, 80, 'HTTP11'], // protocol names are case-insensitive
    ['http2', undefined, 80, 'HTTP2'],
    ['http2-api', undefined, 80, 'HTTP2'],
    ['grpc', undefined, 80, 'GRPC'],
    ['grpc-x', undefined, 80, 'GRPC'],
    ['grpc-web', undefined, 80, 'UNKNOWN'], // GRPC-Web has no enum value
    ['grpc-web-ui', undefined, 80, 'UNKNOWN'],
    ['https-admin', undefined, 443, 'TLS'],
    ['tls', undefined, 443, 'TLS'],
    ['tcp-db', undefined, 5432, 'TCP'],
    ['h2c', undefined, 80, 'UNKNOWN'], // istiod knows h2c only as appProtocol kubernetes.io/h2c
    ['httpbin', undefined, 80, 'UNKNOWN'], // a prefix needs the dash
    ['udp-dns', undefined, 5353, 'UNKNOWN'],
    ['mongo', undefined, 27017, 'UNKNOWN'], // a protocol Istio knows (without a value) is not overridden by the well-known port
    ['redis', undefined, 25, 'UNKNOWN'],
    ['web', undefined, 3306, 'TCP'], // undeclared on a well-known port: TCP
    [undefined, undefined, 25, 'TCP'],
    [undefined, undefined, 53, 'TCP'],
    [undefined, undefined, 27017, 'TCP'],
    [undefined, undefined, 80, 'UNKNOWN'],
    ['http', 'mysql', 80, 'UNKNOWN'], // appProtocol replaces the name entirely
    ['tcp', 'HTTP', 80, 'HTTP11'],
    [undefined, 'http-foo', 80, 'HTTP11'], // appProtocol is read as <protocol>[-<suffix>] too
    [undefined, 'grpc', 80, 'GRPC'],
    [undefined, 'h2c', 80, 'UNKNOWN'],
    [undefined, 'kubernetes.io/h2c', 80, 'HTTP2'],
    [undefined, 'kubernetes.io/ws', 80, 'HTTP11'],
    [undefined, 'kubernetes.io/wss', 443, 'TLS'],
    [undefined, 'mysql', 3306, 'UNKNOWN'],
    ['foo', 'foo', 53, 'TCP'],
  ];
  it.each(table)('name %s, appProtocol %s, port %i → %s', (name, appProtocol, port, expected) => {
    expect(istioAppProtocol({ name, appProtocol, port })).toBe(expected);
  });
});

describe('control plane: Service.ports carry app_protocol (field 3) besides smesh_app_protocol', () => {
  const service = (ports: ServicePort[]) => ({ key: 'default/web', name: 'web', namespace: 'default', vips: ['10.96.0.10'], ports, selector: {} });

  it('encodes HTTP11 as varint 1 in field 3; UNKNOWN and an empty smesh_app_protocol are not written', () => {
    const bytes = codecs.service.encode(
      serviceAddress(
        service([
          { name: 'http-web', port: 80, targetPort: 8080 },
          { name: 'web', port: 81, targetPort: 81 },
        ]),
      ).service!,
    );
    const decoded = codecs.service.decode(bytes);
    expect(decoded.ports).toEqual([
      { servicePort: 80, targetPort: 8080, appProtocol: 'HTTP11', smeshAppProtocol: 'http' },
      { servicePort: 81, targetPort: 81, appProtocol: 'UNKNOWN', smeshAppProtocol: '' },
    ]);
    const portBytes = (p: object) => Buffer.from(codecs.address.encode({ service: { ports: [p] } } as never)).toString('hex');
    // Port{service_port=80 (08 50), target_port=8080 (10 90 3f), app_protocol=HTTP11 (18 01), smesh_app_protocol="http" (c2 3e 04 …)}
    expect(portBytes(serviceAddress(service([{ name: 'http-web', port: 80, targetPort: 8080 }])).service!.ports![0]!)).toContain('0850' + '10903f' + '1801' + 'c23e0468747470');
    // Port{81, 81} alone: no field 3, no field 1000.
    expect(portBytes(serviceAddress(service([{ name: 'web', port: 81, targetPort: 81 }])).service!.ports![0]!)).toMatch(/08511051$/);
  });

  it('a port whose name changes its AppProtocol but not smesh_app_protocol gets a new resource version', () => {
    const version = (name: string) => {
      const file = {
        trustDomain: 'cluster.local',
        nodes: new Map(),
        workloads: new Map(),
        namespaces: new Map(),
        services: new Map([['default/web', service([{ name, port: 5432, targetPort: 5432 }])]]),
      } as unknown as MeshSnapshot;
      return buildResourceSets(file, { trustAnchors: [] }).shared.get(XDS_TYPE_URL.address)!.get('default/web.default.svc.cluster.local')!.version;
    };
    expect(version('tcp-db')).not.toBe(version('db')); // TCP vs UNKNOWN; smesh_app_protocol is empty for both
  });
});

describe('port protocol: file source and agent over xDS agree on the ports Istio declares', () => {
  const CONFIG = `
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  clusterIP: 10.96.0.10
  ports:
  - {name: https-admin, port: 443}
  - {name: web, port: 3306}
  - {name: ws, port: 90, appProtocol: kubernetes.io/ws}
  - {name: raw, port: 91, appProtocol: http-raw}
  - {name: h2c-x, port: 92, appProtocol: h2c}
  - {name: grpc-web, port: 93}
  - {name: tcp-db, port: 94}
`;
  it('per port', () => {
    const problems: ConfigProblem[] = [];
    const file = buildFileSnapshot(parseConfigText('mesh.yaml', CONFIG, problems), problems);
    expect(problems).toEqual([]);
    const addresses = new Map<string, AcceptedAddress>();
    for (const [name, e] of buildResourceSets(file, { trustAnchors: [] }).shared.get(XDS_TYPE_URL.address)!) {
      const r = parseResource(XDS_TYPE_URL.address, name, e.resource);
      if (!r.ok) throw new Error(r.error);
      addresses.set(name, r.value as AcceptedAddress);
    }
    const agent = buildSnapshot({ addresses, nodes: new Map(), localWorkloads: new Map() }).snapshot;
    const protos = (s: MeshSnapshot) => s.services.get('default/web')!.ports.map((p) => [p.port, portProtocol(p)]);
    expect(protos(agent)).toEqual(protos(file));
    expect(protos(agent)).toEqual([
      [443, 'tcp'],
      [3306, 'tcp'],
      [90, 'http'],
      [91, 'http'],
      [92, 'http2'], // Istio: UNKNOWN; smesh_app_protocol "h2c"
      [93, 'http'], // Istio: UNKNOWN; smesh_app_protocol "http"
      [94, 'tcp'],
    ]);
    // What the agent holds: Istio's value as the appProtocol it stands for, smesh's only where Istio has none.
    expect(agent.services.get('default/web')!.ports.map((p) => p.appProtocol)).toEqual(['tls', 'tcp', 'http', 'http', 'h2c', 'http', 'tcp']);
  });
});
