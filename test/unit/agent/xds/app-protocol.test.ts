// The agent reads Istio's Port.app_protocol first and smesh_app_protocol only where Istio's is UNKNOWN (or a value it does not know); what istiod sends alone is enough.
import { describe, expect, it } from 'vitest';
import { portProtocol } from '../../../../core/model/protocol';
import type { ServiceTrafficPolicy } from '../../../../core/model/types';
import { decodeAddress } from '../../../../agent/xds/wire';
import { buildSnapshot, effectiveAppProtocol, parseResource, type AcceptedAddress } from '../../../../agent/xds/convert';
import { loadMeshProtos, TYPE_URL } from '../../../../proto';

const { codecs } = loadMeshProtos();
const NAME = 'default/web.default.svc.cluster.local';

/** The agent's ServicePort for one wire port (through the hand-written decoder and the converter). */
function agentPort(port: { appProtocol?: string | number; smeshAppProtocol?: string }) {
  const any = codecs.address.pack({
    service: {
      name: 'web',
      namespace: 'default',
      hostname: 'web.default.svc.cluster.local',
      addresses: [{ address: Buffer.from([10, 96, 0, 10]) }],
      ports: [{ servicePort: 80, targetPort: 8080, ...port }],
    },
  } as never);
  const r = parseResource(TYPE_URL.address, NAME, any);
  if (!r.ok) throw new Error(r.error);
  const built = buildSnapshot({ addresses: new Map([[NAME, r.value as AcceptedAddress]]), nodes: new Map(), localWorkloads: new Map() });
  return built.snapshot.services.get('default/web')!.ports[0]!;
}

/** A traffic policy with an HTTP route on every port: makes an undeclared port HTTP. */
const WITH_ROUTES = { routes: [{ matches: [] }] } as unknown as ServiceTrafficPolicy;

describe('agent: Port.app_protocol before smesh_app_protocol', () => {
  // [app_protocol, smesh_app_protocol, ServicePort.appProtocol, portProtocol, portProtocol with HTTP routes]
  const table: ReadonlyArray<[string | number | undefined, string | undefined, string | undefined, string, string]> = [
    ['HTTP11', undefined, 'http', 'http', 'http'], // as istiod sends it: no smesh field
    ['HTTP2', undefined, 'http2', 'http2', 'http2'],
    ['GRPC', undefined, 'grpc', 'grpc', 'grpc'],
    ['TCP', undefined, 'tcp', 'tcp', 'tcp'], // declared TCP: HTTP routes do not make it HTTP
    ['TLS', undefined, 'tls', 'tcp', 'tcp'],
    ['HTTP2', 'http', 'http2', 'http2', 'http2'], // Istio's wins over smesh's
    ['TCP', 'grpc', 'tcp', 'tcp', 'tcp'],
    ['UNKNOWN', 'h2c', 'h2c', 'http2', 'http2'], // Istio has nothing: smesh's applies
    ['UNKNOWN', 'kubernetes.io/h2c', 'kubernetes.io/h2c', 'http2', 'http2'],
    [undefined, 'grpc', 'grpc', 'grpc', 'grpc'], // an older control plane: only smesh's
    [9, 'grpc', 'grpc', 'grpc', 'grpc'], // a value this agent does not know counts as nothing
    [9, undefined, undefined, 'tcp', 'http'],
    ['UNKNOWN', undefined, undefined, 'tcp', 'http'], // nothing declared: HTTP only through routes
  ];
  it.each(table)('app_protocol %s, smesh_app_protocol %s → appProtocol %s, %s (%s with HTTP routes)', (istio, smesh, appProtocol, proto, protoWithRoutes) => {
    const p = agentPort({ ...(istio !== undefined ? { appProtocol: istio } : {}), ...(smesh !== undefined ? { smeshAppProtocol: smesh } : {}) });
    expect(p.appProtocol).toBe(appProtocol);
    expect(portProtocol(p)).toBe(proto);
    expect(portProtocol(p, WITH_ROUTES)).toBe(protoWithRoutes);
  });

  it('effectiveAppProtocol on decoded ports', () => {
    expect(effectiveAppProtocol({ appProtocol: 'GRPC', smeshAppProtocol: 'http' })).toBe('grpc');
    expect(effectiveAppProtocol({ appProtocol: 'UNKNOWN', smeshAppProtocol: ' http ' })).toBe('http');
    expect(effectiveAppProtocol({ appProtocol: 'UNKNOWN', smeshAppProtocol: '' })).toBe('');
  });

  it('the hand-written decoder reads field 3 from bytes istiod would write (enum names; unknown numbers kept)', () => {
    // Address{service(2): Service{ports(5): Port{service_port(1)=80, app_protocol(3)=n}}}
    const bytesFor = (n: number) => Buffer.from([0x12, 0x06, 0x2a, 0x04, 0x08, 0x50, 0x18, n]);
    const ports = (n: number) => {
      const a = decodeAddress(bytesFor(n));
      return a.type === 'service' ? a.service.ports : [];
    };
    expect(ports(1)).toEqual([{ servicePort: 80, targetPort: 0, appProtocol: 'HTTP11', smeshAppProtocol: '' }]);
    expect([0, 1, 2, 3, 4, 5, 6].map((n) => ports(n)[0]!.appProtocol)).toEqual(['UNKNOWN', 'HTTP11', 'HTTP2', 'GRPC', 'TCP', 'TLS', 6]);
  });
});
