// TunnelProtocol LEGACY_ISTIO_MTLS (= 2, Istio's number): hand-encoded bytes decode to it, our encoder writes it, the agent's state and smesh control carry it.
import { describe, expect, it } from 'vitest';
import { loadMeshProtos } from '../../../../proto';
import { decodeAddress } from '../../../../agent/xds/wire';
import { buildSnapshot, parseResource, type AcceptedAddress, type AcceptedWorkload } from '../../../../agent/xds/convert';
import { buildResourceSets, workloadAddress, workloadTunnelProtocol } from '../../../../control/xds-resources';
import type { MeshSnapshot, Workload } from '../../../../core/model/types';
import { workload } from '../../fixtures/xds';
import { XDS_TYPE_URL } from '../../../../core/xds/contract';

const { codecs } = loadMeshProtos();

// Workload{uid=20 "u", tunnel_protocol=5 n} wrapped in Address.workload (1), written by hand from the field numbers.
function addressBytes(tunnel: number): Buffer {
  const inner = [0xa2, 0x01, 0x01, 0x75, 0x28, tunnel];
  return Buffer.from([0x0a, inner.length, ...inner]);
}

describe('TunnelProtocol on the wire', () => {
  it.each([
    [0, 'NONE'],
    [1, 'HBONE'],
    [2, 'LEGACY_ISTIO_MTLS'],
  ])('%i decodes as %s in both decoders', (n, name) => {
    const a = decodeAddress(addressBytes(n));
    expect(a.type === 'workload' && a.workload.tunnelProtocol).toBe(name);
    expect(codecs.address.decode(addressBytes(n)).workload?.tunnelProtocol).toBe(name);
  });

  it('LEGACY_ISTIO_MTLS encodes as field 5 varint 2 (bytes 28 02)', () => {
    expect(Buffer.from(codecs.workload.encode({ uid: 'u', tunnelProtocol: 'LEGACY_ISTIO_MTLS' })).toString('hex')).toBe('2802a2010175'); // protobufjs writes in declaration order (field 5 before 20)
  });

  it('an unknown value stays a number and is plain TCP to the agent', () => {
    const a = decodeAddress(addressBytes(7));
    expect(a.type === 'workload' && a.workload.tunnelProtocol).toBe(7);
  });
});

describe('TunnelProtocol in the agent state', () => {
  const accept = (over: Parameters<typeof workload>[3]): AcceptedWorkload => {
    const r = workload('default', 'web-1', '10.0.0.2', over);
    const res = parseResource(XDS_TYPE_URL.address, r.name, r.any);
    if (!res.ok) throw new Error(res.error);
    return res.value as AcceptedWorkload;
  };
  const stateOf = (w: AcceptedWorkload): Workload => {
    const addresses = new Map<string, AcceptedAddress>([[w.uid, w]]);
    return buildSnapshot({ addresses, nodes: new Map(), localWorkloads: new Map() }).snapshot.workloads.get(w.uid)!;
  };

  it.each([
    ['HBONE', 'hbone', true, undefined],
    ['LEGACY_ISTIO_MTLS', 'legacy_istio_mtls', false, 'legacy_istio_mtls'],
    ['NONE', 'none', false, undefined],
  ] as const)('%s → accepted tunnel %s, meshed %s, state tunnel %s', (wire, tunnel, meshed, stateTunnel) => {
    const a = accept({ tunnelProtocol: wire });
    expect(a.tunnel).toBe(tunnel);
    expect(a.hbone).toBe(meshed);
    const w = stateOf(a);
    expect(w.meshed).toBe(meshed);
    expect(w.tunnel).toBe(stateTunnel);
  });
});

describe('TunnelProtocol from smesh control', () => {
  const pod = (name: string, ip: string, labels: Record<string, string>, meshed: boolean): Workload => ({
    uid: `default/${name}`,
    name,
    namespace: 'default',
    serviceAccount: 'web',
    node: 'node2',
    ip,
    labels,
    workloadName: 'web',
    identity: 'spiffe://cluster.local/ns/default/sa/web',
    meshed,
  });
  const enrolled = pod('web-1', '10.0.0.1', { app: 'web' }, true);
  const sidecar = pod('web-2', '10.0.0.2', { app: 'web', 'security.istio.io/tlsMode': 'istio' }, false);
  const outside = pod('web-3', '10.0.0.3', { app: 'web' }, false);

  it('derives it as istiod does: enrolled → HBONE, sidecar label → LEGACY_ISTIO_MTLS, else not sent', () => {
    expect(workloadTunnelProtocol(enrolled)).toBe('HBONE');
    expect(workloadTunnelProtocol({ ...enrolled, labels: sidecar.labels })).toBe('HBONE');
    expect(workloadTunnelProtocol(sidecar)).toBe('LEGACY_ISTIO_MTLS');
    expect(workloadTunnelProtocol({ ...outside, tunnel: 'legacy_istio_mtls' })).toBe('LEGACY_ISTIO_MTLS');
    expect(workloadTunnelProtocol(outside)).toBeUndefined();
    expect(workloadAddress(sidecar, 'cluster.local', undefined).workload?.tunnelProtocol).toBe('LEGACY_ISTIO_MTLS');
  });

  it('sends the sidecar pod as a service endpoint, without a LocalWorkload', () => {
    const snapshot: MeshSnapshot = {
      trustDomain: 'cluster.local',
      nodes: new Map([['node2', { name: 'node2', address: '10.1.0.2' }]]),
      workloads: new Map([enrolled, sidecar, outside].map((w) => [w.uid, w])),
      services: new Map([['default/web', { key: 'default/web', name: 'web', namespace: 'default', vips: ['10.96.0.10'], ports: [{ port: 80, targetPort: 8080 }], selector: { app: 'web' } }]]),
      namespaces: new Map([['default', {}]]),
    };
    const sets = buildResourceSets(snapshot, { trustAnchors: [] });
    const addresses = sets.shared.get(XDS_TYPE_URL.address)!;
    const sent = (name: string) => {
      const e = addresses.get(`Kubernetes//Pod/default/${name}`);
      return e && decodeAddress(e.resource.value);
    };
    const w2 = sent('web-2');
    expect(w2?.type === 'workload' && w2.workload.tunnelProtocol).toBe('LEGACY_ISTIO_MTLS');
    expect(w2?.type === 'workload' && [...w2.workload.services.keys()]).toEqual(['default/web.default.svc.cluster.local']);
    const w1 = sent('web-1');
    expect(w1?.type === 'workload' && w1.workload.tunnelProtocol).toBe('HBONE');
    expect(sent('web-3')).toBeUndefined();
    expect([...(sets.localByNode.get('node2')?.keys() ?? [])]).toEqual(['Kubernetes//Pod/default/web-1']);
  });
});
