// L4 load balancing from DestinationRule: decideOutbound with the production ConnectionBalancer (least request over open connections, source-IP affinity, round-robin default).
import { describe, expect, it } from 'vitest';
import { ConnectionBalancer, l4LoadBalancerSettings } from '../../../../agent/proxy/balancer';
import { decideOutbound, type OutboundInputs } from '../../../../agent/proxy/outbound';
import { StateStore } from '../../../../agent/state/store';
import type { LoadBalancerSettings, MeshSnapshot, Service, ServiceTrafficPolicy, Workload } from '../../../../core/model/types';

const TD = 'cluster.local';
function wl(name: string, ip: string, node = 'node1'): Workload {
  const app = name.split('-')[0]!;
  return { uid: `default/${name}`, name, namespace: 'default', serviceAccount: app, node, ip, labels: { app }, workloadName: app, identity: `spiffe://${TD}/ns/default/sa/${app}`, meshed: true };
}
const clients = Array.from({ length: 16 }, (_, i) => wl(`client-${i}`, `198.18.1.${100 + i}`));
const web = [wl('web-1', '198.18.1.20'), wl('web-2', '198.18.2.20', 'node2')];
const service: Service = {
  key: 'default/web',
  name: 'web',
  namespace: 'default',
  vips: ['198.19.0.10'],
  ports: [
    { port: 80, targetPort: 8080 },
    { port: 81, targetPort: 8081 },
  ],
  selector: { app: 'web' },
};

function policy(loadBalancer: LoadBalancerSettings | undefined, port81?: LoadBalancerSettings): ServiceTrafficPolicy {
  return { serviceKey: service.key, subsets: [], portSettings: port81 ? [{ port: 81, loadBalancer: port81 }] : [], routes: [], ...(loadBalancer ? { loadBalancer } : {}) };
}

function setup(p: ServiceTrafficPolicy | undefined, random?: () => number) {
  const snapshot: MeshSnapshot = {
    trustDomain: TD,
    nodes: new Map([
      ['node1', { name: 'node1', address: '198.18.0.1' }],
      ['node2', { name: 'node2', address: '198.18.0.2' }],
    ]),
    workloads: new Map([...clients, ...web].map((w) => [w.uid, w])),
    services: new Map([[service.key, service]]),
    namespaces: new Map([['default', {}]]),
    ...(p ? { trafficPolicies: new Map([[service.key, p]]) } : {}),
  };
  const state = new StateStore(snapshot);
  const balancer = new ConnectionBalancer({ policies: () => state.snapshot().trafficPolicies, random });
  /** One connection's decision, as OutboundProxy makes it (source IP from the socket). */
  const connect = (source: Workload = clients[0]!, port = 80): string => {
    const i: OutboundInputs = {
      originalDestination: { ip: '198.19.0.10', port },
      capture: { ip: '169.254.7.1', port: 15001 },
      source,
      localNode: 'node1',
      hbonePort: 15008,
      state,
      pick: (_k, eps, ctx) => balancer.pick(ctx.service, ctx.port, eps, source.ip),
    };
    const d = decideOutbound(i);
    if (d.kind === 'refuse') throw new Error(d.detail);
    return d.destination.name;
  };
  return { balancer, connect };
}

/** Draws alternate low/high, so two-choice least request always compares both endpoints. */
function alternating(): () => number {
  let n = 0;
  return () => (n++ % 2 === 0 ? 0.1 : 0.9);
}

describe('L4 load balancing (ConnectionBalancer)', () => {
  it('round-robins when the service has no traffic policy', () => {
    const { connect } = setup(undefined);
    expect([1, 2, 3, 4].map(() => connect())).toEqual(['web-1', 'web-2', 'web-1', 'web-2']);
  });

  it('round-robins when the policy sets no loadBalancer (not the LEAST_REQUEST default)', () => {
    const { connect } = setup(policy(undefined), () => 0);
    expect([1, 2, 3, 4].map(() => connect())).toEqual(['web-1', 'web-2', 'web-1', 'web-2']);
  });

  it('LEAST_REQUEST: new connections go to the endpoint without open connections', () => {
    const { balancer, connect } = setup(policy({ algorithm: 'LEAST_REQUEST' }), alternating());
    const held = [1, 2, 3].map(() => balancer.open(web[0]!)); // web-1 holds 3 open connections
    const opened: Array<() => void> = [];
    const picks = [1, 2, 3].map(() => {
      const name = connect();
      opened.push(balancer.open(web.find((w) => w.name === name)!)); // held open as the proxy does until close
      return name;
    });
    expect(picks).toEqual(['web-2', 'web-2', 'web-2']);
    for (const close of held) close();
    held[0]!(); // closing twice counts once
    expect(balancer.load.activeRequests({ key: 'default/web-1' })).toBe(0);
    expect(balancer.load.activeRequests({ key: 'default/web-2' })).toBe(3);
    expect(connect()).toBe('web-1');
    for (const close of opened) close();
    expect(balancer.load.activeRequests({ key: 'default/web-2' })).toBe(0);
  });

  it('LEAST_REQUEST with real random draws still avoids a busy endpoint most of the time', () => {
    const { balancer, connect } = setup(policy({ algorithm: 'LEAST_REQUEST' }));
    for (let i = 0; i < 50; i++) balancer.open(web[0]!);
    const picks = Array.from({ length: 400 }, () => connect());
    // Two choices with replacement pick the busy one only when both draws hit it (p = 1/4).
    expect(picks.filter((n) => n === 'web-2').length).toBeGreaterThan(240);
  });

  it('consistentHash useSourceIp: each source sticks to one endpoint, and sources spread', () => {
    const { connect } = setup(policy({ consistentHash: { key: { kind: 'sourceIp' } } }));
    const chosen = clients.map((c) => {
      const picks = new Set(Array.from({ length: 10 }, () => connect(c)));
      expect(picks.size).toBe(1);
      return [...picks][0]!;
    });
    expect(new Set(chosen)).toEqual(new Set(['web-1', 'web-2']));
  });

  it('port-level loadBalancer wins over the service-level one', () => {
    const p = policy({ algorithm: 'LEAST_REQUEST' }, { algorithm: 'ROUND_ROBIN' });
    expect(l4LoadBalancerSettings(p, 81)).toEqual({ algorithm: 'ROUND_ROBIN' });
    expect(l4LoadBalancerSettings(p, 80)).toEqual({ algorithm: 'LEAST_REQUEST' });
    expect(l4LoadBalancerSettings(undefined, 80)).toBeUndefined();
    const { balancer, connect } = setup(p, alternating());
    for (let i = 0; i < 5; i++) balancer.open(web[0]!);
    expect([1, 2, 3, 4].map(() => connect(clients[0], 81)).sort()).toEqual(['web-1', 'web-1', 'web-2', 'web-2']);
    expect(connect(clients[0], 80)).toBe('web-2');
  });
});
