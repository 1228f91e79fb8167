// Port protocol over xDS: a Service port's appProtocol or Istio name prefix travels as istio.workload.Port.smesh_app_protocol and the agent detects the same protocol as the file source.
import { describe, expect, it } from 'vitest';
import { buildSnapshot as buildFileSnapshot, parseConfigText, type ConfigProblem } from '../../../../control/config/config-dir';
import { declaredAppProtocol, portProtocol } from '../../../../core/model/protocol';
import type { MeshSnapshot } from '../../../../core/model/types';
import { buildSnapshot, parseResource, type AcceptedAddress } from '../../../../agent/xds/convert';
import { buildResourceSets } from '../../../../control/xds-resources';
import { XDS_TYPE_URL, xdsCodecs } from '../../../../core/xds/contract';

const CONFIG = `
apiVersion: v1
kind: Node
metadata: {name: node1}
status: {addresses: [{type: InternalIP, address: 198.18.0.1}]}
---
apiVersion: v1
kind: Pod
metadata: {name: web-1, namespace: default, labels: {app: web}}
spec: {nodeName: node1}
status: {podIP: 198.18.1.1}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  clusterIP: 10.96.0.10
  selector: {app: web}
  ports:
  - {name: http-web, port: 80}
  - {name: http2-api, port: 81}
  - {name: grpc, port: 82}
  - {name: grpc-web-ui, port: 83}
  - {name: tcp-db, port: 84}
  - {port: 85}
  - {name: web, port: 86, appProtocol: kubernetes.io/h2c}
  - {name: http-raw, port: 87, appProtocol: mysql}
`;

function fileSnapshot(): MeshSnapshot {
  const problems: ConfigProblem[] = [];
  const s = buildFileSnapshot(parseConfigText('mesh.yaml', CONFIG, problems), problems);
  expect(problems).toEqual([]);
  return s;
}

function viaXds(file: MeshSnapshot): MeshSnapshot {
  const sets = buildResourceSets(file, { trustAnchors: [] });
  const addresses = new Map<string, AcceptedAddress>();
  for (const [name, e] of sets.shared.get(XDS_TYPE_URL.address)!) {
    const r = parseResource(XDS_TYPE_URL.address, name, e.resource);
    if (!r.ok) throw new Error(r.error);
    addresses.set(name, r.value as AcceptedAddress);
  }
  const built = buildSnapshot({ addresses, nodes: new Map(), localWorkloads: new Map() });
  expect(built.warnings).toEqual([]);
  return built.snapshot;
}

describe('port protocol: file → control → agent', () => {
  it('declaredAppProtocol: appProtocol as written, else the name prefix, else nothing', () => {
    expect(declaredAppProtocol({ name: 'http-web' })).toBe('http');
    expect(declaredAppProtocol({ name: 'HTTP2' })).toBe('http2');
    expect(declaredAppProtocol({ name: 'grpc-x' })).toBe('grpc');
    expect(declaredAppProtocol({ name: 'grpc-web' })).toBe('http');
    expect(declaredAppProtocol({ name: 'tcp-db' })).toBeUndefined();
    expect(declaredAppProtocol({ name: 'httpbin' })).toBeUndefined();
    expect(declaredAppProtocol({})).toBeUndefined();
    expect(declaredAppProtocol({ name: 'http', appProtocol: 'mysql' })).toBe('mysql');
  });

  it('encodes smesh_app_protocol on the Service address (empty when undeclared)', () => {
    const sets = buildResourceSets(fileSnapshot(), { trustAnchors: [] });
    const entry = sets.shared.get(XDS_TYPE_URL.address)!.get('default/web.default.svc.cluster.local')!;
    const wire = xdsCodecs().address.decode(entry.resource.value);
    expect(wire.service!.ports.map((p) => [p.servicePort, p.smeshAppProtocol])).toEqual([
      [80, 'http'],
      [81, 'http2'],
      [82, 'grpc'],
      [83, 'http'],
      [84, ''],
      [85, ''],
      [86, 'kubernetes.io/h2c'],
      [87, 'mysql'],
    ]);
  });

  it('the agent detects the same protocol per port as the file source', () => {
    const file = fileSnapshot();
    const agent = viaXds(file);
    const fileSvc = file.services.get('default/web')!;
    const agentSvc = agent.services.get('default/web')!;
    const protos = (ports: typeof fileSvc.ports) => ports.map((p) => [p.port, portProtocol(p)]);
    expect(protos(agentSvc.ports)).toEqual(protos(fileSvc.ports));
    expect(protos(agentSvc.ports)).toEqual([
      [80, 'http'],
      [81, 'http2'],
      [82, 'grpc'],
      [83, 'http'],
      [84, 'tcp'],
      [85, 'tcp'],
      [86, 'http2'],
      [87, 'tcp'],
    ]);
    expect(agentSvc.ports.find((p) => p.port === 85)).not.toHaveProperty('appProtocol');
  });
});
