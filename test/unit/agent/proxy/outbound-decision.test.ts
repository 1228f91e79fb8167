// Table tests for the pure outbound decision and the round-robin pickers.
import { describe, expect, it } from 'vitest';
import { RoundRobinPicker, RoundRobinPickers } from '../../../../agent/lb/picker';
import { decideOutbound, type OutboundDecision, type OutboundInputs } from '../../../../agent/proxy/outbound';
import { StateStore } from '../../../../agent/state/store';
import type { MeshNode, MeshSnapshot, Service, Workload } from '../../../../core/model/types';

const TD = 'cluster.local';
function wl(name: string, ip: string, node: string, extra: Partial<Workload> = {}): Workload {
  return {
    uid: `default/${name}`,
    name,
    namespace: 'default',
    serviceAccount: name.split('-')[0]!,
    node,
    ip,
    labels: { app: name.split('-')[0]! },
    workloadName: name.split('-')[0]!,
    identity: `spiffe://${TD}/ns/default/sa/${name.split('-')[0]}`,
    meshed: true,
    ...extra,
  };
}
const nodes: MeshNode[] = [
  { name: 'node1', address: '198.18.0.1' },
  { name: 'node2', address: '198.18.0.2' },
];
const client = wl('client-1', '198.18.1.10', 'node1');
const remoteClient = wl('client-2', '198.18.2.11', 'node2');
const webLocal = wl('web-1', '198.18.1.20', 'node1');
const webRemote = wl('web-2', '198.18.2.20', 'node2');
const db = wl('db-1', '198.18.2.30', 'node2');
const legacy = wl('legacy-1', '198.18.2.40', 'node2', { meshed: false });
const orphan = wl('orphan-1', '198.18.3.50', 'node3');
const svc = (name: string, vip: string, targetPort: number): Service => ({
  key: `default/${name}`,
  name,
  namespace: 'default',
  vips: [vip],
  ports: [{ name: 'http', port: 80, targetPort }],
  selector: { app: name },
});
const snapshot: MeshSnapshot = {
  trustDomain: TD,
  nodes: new Map(nodes.map((n) => [n.name, n])),
  workloads: new Map([client, remoteClient, webLocal, webRemote, db, legacy, orphan].map((w) => [w.uid, w])),
  services: new Map([svc('web', '198.19.0.10', 8080), svc('db', '198.19.0.20', 5432), svc('empty', '198.19.0.30', 80), svc('legacy', '198.19.0.40', 0)].map((s) => [s.key, s])),
  namespaces: new Map([['default', {}]]),
};
const state = new StateStore(snapshot);

function inputs(over: Partial<OutboundInputs>): OutboundInputs {
  return {
    originalDestination: { ip: '198.19.0.10', port: 80 },
    capture: { ip: '169.254.7.1', port: 15001 },
    source: client,
    localNode: 'node1',
    hbonePort: 15008,
    state,
    pick: (_k, eps) => ({ kind: 'complete', endpoint: eps[0]! }),
    ...over,
  };
}

type Expect = Partial<Record<string, unknown>> & { kind: OutboundDecision['kind'] };
const cases: Array<[string, Partial<OutboundInputs>, Expect]> = [
  ['unknown original destination', { originalDestination: null }, { kind: 'refuse', reason: 'no_original_destination' }],
  ['loop: capture address itself', { originalDestination: { ip: '169.254.7.1', port: 15001 } }, { kind: 'refuse', reason: 'loop' }],
  ['loop: capture ip on another port', { originalDestination: { ip: '169.254.7.1', port: 80 } }, { kind: 'refuse', reason: 'loop' }],
  ['unknown source', { source: undefined }, { kind: 'refuse', reason: 'unknown_source' }],
  ['source on another node', { source: remoteClient }, { kind: 'refuse', reason: 'source_not_local' }],
  ['source opted out', { source: { ...client, meshed: false } }, { kind: 'refuse', reason: 'unknown_source' }],
  ['unknown destination ip', { originalDestination: { ip: '203.0.113.9', port: 80 } }, { kind: 'refuse', reason: 'unknown_destination' }],
  ['service VIP on a port it does not expose', { originalDestination: { ip: '198.19.0.10', port: 81 } }, { kind: 'refuse', reason: 'unknown_destination' }],
  ['service without endpoints', { originalDestination: { ip: '198.19.0.30', port: 80 } }, { kind: 'refuse', reason: 'no_endpoint' }],
  ['picker has nothing', { pick: () => ({ kind: 'transient_failure', reason: 'all ejected' }) }, { kind: 'refuse', reason: 'no_endpoint' }],
  ['service endpoint on this node → local, targetPort', {}, { kind: 'local', ip: '198.18.1.20', port: 8080 }],
  [
    "service endpoint on another node → pod-addressed hbone (default, ztunnel's): the pod's address and workload id",
    { pick: (_k, eps) => ({ kind: 'complete', endpoint: eps.find((e) => e.node === 'node2')! }) },
    { kind: 'hbone', nodeAddr: { host: '198.18.2.20', port: 15008 }, nodeId: 'spiffe://cluster.local/ns/default/sa/web', authority: '198.18.2.20:8080' },
  ],
  [
    "node-addressed hbone (option): the node's agent and node id",
    { hboneAddressing: 'node', pick: (_k, eps) => ({ kind: 'complete', endpoint: eps.find((e) => e.node === 'node2')! }) },
    { kind: 'hbone', nodeAddr: { host: '198.18.0.2', port: 15008 }, nodeId: 'spiffe://cluster.local/smesh/node/node2', authority: '198.18.2.20:8080' },
  ],
  ['pod IP directly on another node keeps the port', { originalDestination: { ip: '198.18.2.30', port: 5432 } }, { kind: 'hbone', authority: '198.18.2.30:5432' }],
  ['pod IP directly on this node', { originalDestination: { ip: '198.18.1.20', port: 9000 } }, { kind: 'local', ip: '198.18.1.20', port: 9000 }],
  ['unmeshed endpoint → passthrough, targetPort 0 uses port', { originalDestination: { ip: '198.19.0.40', port: 80 } }, { kind: 'passthrough', ip: '198.18.2.40', port: 80 }],
  ["pod-addressed: the node's address is not needed", { originalDestination: { ip: '198.18.3.50', port: 80 } }, { kind: 'hbone', nodeAddr: { host: '198.18.3.50', port: 15008 } }],
  ['node-addressed: endpoint on a node with unknown address', { hboneAddressing: 'node', originalDestination: { ip: '198.18.3.50', port: 80 } }, { kind: 'refuse', reason: 'unknown_node' }],
  ['custom hbone port', { hbonePort: 25008, originalDestination: { ip: '198.18.2.30', port: 5432 } }, { kind: 'hbone', nodeAddr: { host: '198.18.2.30', port: 25008 } }],
  [
    'custom hbone port, node-addressed',
    { hboneAddressing: 'node', hbonePort: 25008, originalDestination: { ip: '198.18.2.30', port: 5432 } },
    { kind: 'hbone', nodeAddr: { host: '198.18.0.2', port: 25008 } },
  ],
];

describe('decideOutbound', () => {
  it.each(cases)('%s', (_name, over, expected) => {
    const d = decideOutbound(inputs(over));
    expect(d).toMatchObject(expected);
  });

  it('carries the service and destination workload for telemetry', () => {
    const d = decideOutbound(inputs({}));
    expect(d.kind).toBe('local');
    if (d.kind !== 'local') return;
    expect(d.service?.key).toBe('default/web');
    expect(d.destination.uid).toBe('default/web-1');
  });

  it('round-robins across a service through the production pickers', () => {
    const pickers = new RoundRobinPickers<Workload>();
    const seen = [1, 2, 3, 4].map(() => {
      const d = decideOutbound(inputs({ pick: (k, eps) => pickers.pick(k, eps) }));
      return d.kind === 'local' || d.kind === 'hbone' ? d.destination.name : d.kind;
    });
    expect(seen).toEqual(['web-1', 'web-2', 'web-1', 'web-2']);
  });
});

describe('RoundRobinPicker', () => {
  it('cycles endpoints in order', () => {
    const p = new RoundRobinPicker(['a', 'b', 'c']);
    expect([1, 2, 3, 4, 5].map(() => p.pick())).toEqual(['a', 'b', 'c', 'a', 'b'].map((endpoint) => ({ kind: 'complete', endpoint })));
  });
  it('reports transient failure with no endpoints, never throws', () => {
    expect(new RoundRobinPicker([]).pick()).toEqual({ kind: 'transient_failure', reason: 'no endpoints' });
  });
  it('keeps the cursor when the endpoint list is replaced', () => {
    const pickers = new RoundRobinPickers<string>();
    const v1 = ['a', 'b', 'c'];
    expect(pickers.pick('s', v1)).toMatchObject({ endpoint: 'a' });
    expect(pickers.pick('s', v1)).toMatchObject({ endpoint: 'b' });
    const v2 = ['a', 'b', 'c', 'd'];
    expect(pickers.pick('s', v2)).toMatchObject({ endpoint: 'c' });
    expect(pickers.pick('s', v2)).toMatchObject({ endpoint: 'd' });
    pickers.retain([]);
    expect(pickers.pick('s', v2)).toMatchObject({ endpoint: 'a' });
  });
  it('wraps the start index', () => {
    expect(new RoundRobinPicker(['a', 'b'], 5).pick()).toMatchObject({ endpoint: 'b' });
  });
});
