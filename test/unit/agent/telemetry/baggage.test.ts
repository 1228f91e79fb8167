// The HBONE baggage header: round trip, ztunnel's keys, smesh's destination-service key, and what is ignored.
import { describe, it, expect } from 'vitest';
import { baggageHeader, parseBaggage, BAGGAGE_DESTINATION_SERVICE } from '../../../../agent/telemetry/baggage';

describe('baggage', () => {
  it('round-trips every key it writes', () => {
    const b = { cluster: 'Kubernetes', namespace: 'shop', workloadName: 'web', serviceName: 'web', serviceVersion: 'v2', destinationService: 'web.shop.svc.cluster.local' };
    expect(parseBaggage(baggageHeader(b))).toEqual(b);
  });

  it('reads ztunnel-written baggage (other workload kinds, several header lines, empty values, properties, unknown keys)', () => {
    const b = parseBaggage(['k8s.cluster.name=K1,k8s.namespace.name=NS1', 'k8s.job.name=J1;prop=x,service.name=,foo=bar', `${BAGGAGE_DESTINATION_SERVICE}=a.b.svc.cluster.local`]);
    expect(b).toEqual({ cluster: 'K1', namespace: 'NS1', workloadName: 'J1', destinationService: 'a.b.svc.cluster.local' });
  });

  it('drops values that would break the list instead of writing them', () => {
    expect(baggageHeader({ namespace: 'a,b', serviceName: 'ok' })).toBe('service.name=ok');
    expect(baggageHeader({})).toBe('');
    expect(parseBaggage(undefined)).toEqual({});
    expect(parseBaggage('garbage,=x,novalue')).toEqual({});
  });
});
