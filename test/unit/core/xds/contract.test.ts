// The shared delta ADS contract (core/xds/contract.ts): every enum map's wire names are the .proto's own (they survive an encode/decode through the real codecs), each map inverts exactly, and unknown wire values map to nothing.
import { describe, expect, it } from 'vitest';
import type { PolicyAction, PolicyScope } from '../../../../core/policy/types';
import type { TrafficPriority, WorkloadTunnel } from '../../../../core/model/types';
import { POLICY_ACTION, POLICY_SCOPE, TRAFFIC_PRIORITY, WORKLOAD_TUNNEL, XDS_TYPE_URL, XDS_TYPE_URLS, xdsCodecs } from '../../../../core/xds/contract';

describe('xDS contract: enum maps', () => {
  it('policy scope and action: the wire names round-trip through istio.security.Authorization and back to the model', () => {
    const c = xdsCodecs().authorization;
    for (const scope of ['global', 'namespace', 'workloadSelector'] as PolicyScope[]) {
      for (const action of ['ALLOW', 'DENY', 'AUDIT'] as PolicyAction[]) {
        const wire = c.decode(c.encode({ name: 'p', namespace: 'ns', scope: POLICY_SCOPE.toWire[scope], action: POLICY_ACTION.toWire[action] }));
        expect([wire.scope, wire.action]).toEqual([POLICY_SCOPE.toWire[scope], POLICY_ACTION.toWire[action]]);
        expect([POLICY_SCOPE.fromWire(wire.scope), POLICY_ACTION.fromWire(wire.action)]).toEqual([scope, action]);
      }
    }
  });

  it('workload tunnel: the wire names round-trip through istio.workload.Address', () => {
    const c = xdsCodecs().address;
    for (const tunnel of ['none', 'hbone', 'legacy_istio_mtls'] as WorkloadTunnel[]) {
      const wire = c.decode(c.encode({ workload: { uid: 'u', tunnelProtocol: WORKLOAD_TUNNEL.toWire[tunnel] } }));
      expect(WORKLOAD_TUNNEL.fromWire(wire.workload!.tunnelProtocol)).toBe(tunnel);
    }
  });

  it('traffic priority: the wire names round-trip through smesh.traffic.v1alpha1.TrafficShaping', () => {
    const c = xdsCodecs().trafficShaping;
    for (const p of ['latency', 'normal', 'bulk'] as TrafficPriority[]) {
      const wire = c.decode(c.encode({ workloadUid: 'u', qos: { priority: TRAFFIC_PRIORITY.toWire[p] } }));
      expect(TRAFFIC_PRIORITY.fromWire(wire.qos!.priority)).toBe(p);
    }
  });

  it('unknown wire values, numbers and Object prototype names map to nothing', () => {
    for (const v of ['CUSTOM', 'PRIORITY_UNSPECIFIED', 'constructor', 'toString', '__proto__', 7, '']) {
      expect([POLICY_SCOPE.fromWire(v), POLICY_ACTION.fromWire(v), TRAFFIC_PRIORITY.fromWire(v), WORKLOAD_TUNNEL.fromWire(v)]).toEqual([undefined, undefined, undefined, undefined]);
    }
  });
});

describe('xDS contract: type URLs and codecs', () => {
  it('every type URL has a codec whose type URL it is', () => {
    const codecs = xdsCodecs() as unknown as Record<string, { typeUrl: string }>;
    for (const [key, url] of Object.entries(XDS_TYPE_URL)) expect(codecs[key]?.typeUrl, key).toBe(url);
    expect(new Set(XDS_TYPE_URLS).size).toBe(Object.keys(XDS_TYPE_URL).length);
  });
});
