// Incremental snapshot and indexes: over random sequences of adds, updates and removals (workloads, services, local workloads, mesh config, policies) they equal a full rebuild after every step.
import { describe, expect, it } from 'vitest';
import {
  buildSnapshot,
  type AcceptedAddress,
  type AcceptedAuthorization,
  type AcceptedLocalWorkload,
  type AcceptedMeshConfig,
  type AcceptedNode,
  type AcceptedResource,
  type AcceptedService,
  type AcceptedTrafficPolicy,
  type AcceptedWorkload,
  type PortMapping,
} from '../../../../agent/xds/convert';
import { IncrementalSnapshot } from '../../../../agent/xds/incremental';
import { StateStore } from '../../../../agent/state/store';
import type { MeshSnapshot } from '../../../../core/model/types';
import { seeded as rng } from '../../../helpers/prng';
import { XDS_TYPE_URL, type XdsTypeUrl } from '../../../../core/xds/contract';

/** Everything accepted so far, in buildSnapshot's input shape (the reference the incremental state must equal). */
class Reference {
  addresses = new Map<string, AcceptedAddress>();
  nodes = new Map<string, AcceptedNode>();
  localWorkloads = new Map<string, AcceptedLocalWorkload>();
  meshConfig: AcceptedMeshConfig | undefined;
  authorizations = new Map<string, AcceptedAuthorization>();
  trafficPolicies = new Map<string, AcceptedTrafficPolicy>();
  build() {
    return buildSnapshot({
      addresses: this.addresses,
      nodes: this.nodes,
      localWorkloads: this.localWorkloads,
      meshConfig: this.meshConfig,
      authorizations: this.authorizations,
      trafficPolicies: this.trafficPolicies,
    });
  }
}

function randomStep(r: () => number) {
  const int = (n: number) => Math.floor(r() * n);
  const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)]!;
  const namespaces = ['default', 'prod', 'dev'];
  const svcRef = (i: number) => `${namespaces[i % 3]}/s${i}.${namespaces[i % 3]}.svc.cluster.local`;
  const ports = (): PortMapping[] =>
    pick([
      [{ servicePort: 80, targetPort: 0 }],
      [{ servicePort: 80, targetPort: 8080 }],
      [
        { servicePort: 80, targetPort: 9090 },
        { servicePort: 443, targetPort: 0, appProtocol: 'http' },
      ],
      [],
    ]);
  const workload = (): AcceptedWorkload => {
    const i = int(25);
    const services = new Map<string, PortMapping[]>();
    for (let k = int(3); k > 0; k--) services.set(svcRef(int(8)), ports());
    const ns = namespaces[i % 3]!;
    return {
      kind: 'workload',
      uid: `Kubernetes//Pod/${ns}/p${i}`,
      name: `p${i}`,
      namespace: ns,
      ips: [`198.18.1.${int(20)}`], // collisions on purpose: shared IPs
      trustDomain: pick(['', '', 'other.td']),
      serviceAccount: pick(['default', 'sa1']),
      node: pick(['node1', 'node2', 'node3']),
      workloadName: `p${i % 5}`,
      canonicalRevision: pick(['', 'v1']),
      hbone: r() < 0.8,
      services,
      authorizationPolicies: r() < 0.2 ? [pick(['default/allow', 'prod/deny', 'default/missing'])] : [],
    };
  };
  const service = (): AcceptedService => {
    const i = int(8);
    const ns = namespaces[i % 3]!;
    // Two hostnames may map to one `<ns>/<name>` key: s<i> and s<i>-alias share the name on purpose.
    const alias = r() < 0.2;
    const hostname = alias ? `s${i}-alias.${ns}.svc.cluster.local` : `s${i}.${ns}.svc.cluster.local`;
    return {
      kind: 'service',
      resourceName: `${ns}/${hostname}`,
      name: `s${i}`,
      namespace: ns,
      hostname,
      vips: r() < 0.1 ? [] : [`198.19.0.${int(10)}`],
      ports: pick([
        [{ servicePort: 80, targetPort: 0 }],
        [{ servicePort: 80, targetPort: 8080 }],
        [
          { servicePort: 80, targetPort: 0 },
          { servicePort: 443, targetPort: 0 },
        ],
      ]),
    };
  };
  type Step = { set: AcceptedResource } | { remove: XdsTypeUrl; name: string };
  const choice = int(100);
  let step: Step;
  if (choice < 35) step = { set: workload() };
  else if (choice < 50) step = { set: service() };
  else if (choice < 62) step = { remove: XDS_TYPE_URL.address, name: r() < 0.7 ? workload().uid : service().resourceName };
  else if (choice < 72) step = { set: { kind: 'localWorkload', uid: workload().uid, netns: pick(['/run/netns/a', '/run/netns/b', '']) } };
  else if (choice < 77) step = { remove: XDS_TYPE_URL.localWorkload, name: workload().uid };
  else if (choice < 80)
    step = { set: { kind: 'meshConfig', trustDomain: pick(['cluster.local', 'mesh.example']), trustAnchors: [], trustDomainAliases: pick([[], ['old.example'], ['old.example', 'legacy.local']]) } };
  else if (choice < 82) step = { remove: XDS_TYPE_URL.meshConfig, name: 'mesh' };
  else if (choice < 86) step = { set: { kind: 'node', name: pick(['node1', 'node2']), address: `198.18.0.${int(3)}` } };
  else if (choice < 88) step = { remove: XDS_TYPE_URL.node, name: pick(['node1', 'node2']) };
  else if (choice < 92) {
    const [namespace, name] = pick([
      ['default', 'allow'],
      ['prod', 'deny'],
    ]) as [string, string];
    step = { set: { kind: 'authorization', policy: { name, namespace, action: 'ALLOW', scope: 'workloadSelector', rules: [] } } };
  } else if (choice < 94) step = { remove: XDS_TYPE_URL.authorization, name: pick(['default/allow', 'prod/deny']) };
  else if (choice < 98) {
    const ref = svcRef(int(8));
    step = {
      set: {
        kind: 'trafficPolicy',
        resourceName: ref,
        policy: { serviceKey: 'x', subsets: r() < 0.5 ? [] : [{ name: 'v1', labels: {}, workloadUids: ['Kubernetes//Pod/default/p3'] }], portSettings: [], routes: [] },
      },
    };
  } else step = { remove: XDS_TYPE_URL.trafficPolicy, name: svcRef(int(8)) };
  return step;
}

function apply(ref: Reference, inc: IncrementalSnapshot, step: ReturnType<typeof randomStep>): void {
  if ('set' in step) {
    const v = step.set;
    inc.set(v);
    if (v.kind === 'workload') ref.addresses.set(v.uid, v);
    else if (v.kind === 'service') ref.addresses.set(v.resourceName, v);
    else if (v.kind === 'localWorkload') ref.localWorkloads.set(v.uid, v);
    else if (v.kind === 'meshConfig') ref.meshConfig = v;
    else if (v.kind === 'node') ref.nodes.set(v.name, v);
    else if (v.kind === 'authorization') ref.authorizations.set(`${v.policy.namespace}/${v.policy.name}`, v);
    else if (v.kind === 'trafficPolicy') ref.trafficPolicies.set(v.resourceName, v);
    return;
  }
  inc.remove(step.remove, step.name);
  if (step.remove === XDS_TYPE_URL.address) ref.addresses.delete(step.name);
  else if (step.remove === XDS_TYPE_URL.localWorkload) ref.localWorkloads.delete(step.name);
  else if (step.remove === XDS_TYPE_URL.meshConfig) ref.meshConfig = undefined;
  else if (step.remove === XDS_TYPE_URL.node) ref.nodes.delete(step.name);
  else if (step.remove === XDS_TYPE_URL.authorization) ref.authorizations.delete(step.name);
  else if (step.remove === XDS_TYPE_URL.trafficPolicy) ref.trafficPolicies.delete(step.name);
}

/** Every answer a StateStore gives, in a comparable form. */
function storeView(store: StateStore, s: MeshSnapshot) {
  const ips = new Set<string>();
  for (const w of s.workloads.values()) ips.add(w.ip);
  const byIp = [...ips].sort().map((ip) => [ip, store.workloadByIp(ip)?.uid]);
  const resolved: unknown[] = [];
  for (let i = 0; i < 10; i++) {
    for (const port of [80, 443, 8080]) {
      const d = store.resolve(`198.19.0.${i}`, port);
      resolved.push([i, port, d.kind, d.kind === 'service' ? [d.service, d.port, d.endpoints] : undefined]);
    }
  }
  for (const ip of ips) {
    const d = store.resolve(ip, 1234);
    resolved.push([ip, d.kind === 'workload' ? d.workload : d.kind]);
  }
  const nodes = ['node1', 'node2', 'node3'].map((n) =>
    store
      .workloadsOnNode(n)
      .map((w) => w)
      .sort((a, b) => (a.uid < b.uid ? -1 : 1)),
  );
  const servicesOf = [...s.workloads.values()].map((w) => [w.uid, store.servicesOf(w)]);
  return { byIp, resolved, nodes, servicesOf };
}

describe('IncrementalSnapshot', () => {
  it('equals a full buildSnapshot after every step of 60 random delta sequences (batches of 1–6 changes)', () => {
    for (let seed = 1; seed <= 60; seed++) {
      const r = rng(seed);
      const ref = new Reference();
      const inc = new IncrementalSnapshot();
      const store = new StateStore();
      let published: { map: ReadonlyMap<string, string>; entries: Array<[string, string]> } | undefined;
      for (let round = 0; round < 40; round++) {
        for (let k = 1 + Math.floor(r() * 6); k > 0; k--) apply(ref, inc, randomStep(r));
        const got = inc.build();
        const want = ref.build();
        // A published IP index never changes afterwards (the builder copies before writing).
        if (published) expect([...published.map], `seed ${seed} round ${round} (published IP index kept)`).toEqual(published.entries);
        const { workloadIpOwners, ...gotRest } = got.snapshot;
        expect(workloadIpOwners, 'the xDS builder publishes its IP index').toBeDefined();
        published = { map: workloadIpOwners!, entries: [...workloadIpOwners!] };
        expect(gotRest, `seed ${seed} round ${round}`).toEqual(want.snapshot);
        expect(got.trustAnchors).toEqual(want.trustAnchors);
        // Indexes updated from the previous snapshot equal indexes built from scratch, and the published IP index
        // answers like the index the store builds itself when a snapshot has none (the full builder's).
        store.replace(got.snapshot);
        const view = storeView(store, got.snapshot);
        expect(view, `seed ${seed} round ${round} (indexes)`).toEqual(storeView(new StateStore(got.snapshot), got.snapshot));
        expect(view, `seed ${seed} round ${round} (own IP index)`).toEqual(storeView(new StateStore(gotRest as MeshSnapshot), got.snapshot));
      }
    }
  });

  it('keeps unchanged Workload and Service objects, so consumers that cache by identity keep their caches', () => {
    const inc = new IncrementalSnapshot();
    const ws: AcceptedWorkload[] = [1, 2, 3].map((i) => ({
      kind: 'workload',
      uid: `w${i}`,
      name: `w${i}`,
      namespace: 'default',
      ips: [`198.18.1.${i}`],
      trustDomain: '',
      serviceAccount: 'default',
      node: 'node1',
      workloadName: `w${i}`,
      canonicalRevision: '',
      hbone: true,
      services: new Map([['default/a.default.svc.cluster.local', [{ servicePort: 80, targetPort: 0 }]]]),
      authorizationPolicies: [],
    }));
    const svc = (name: string): AcceptedService => ({
      kind: 'service',
      resourceName: `default/${name}.default.svc.cluster.local`,
      name,
      namespace: 'default',
      hostname: `${name}.default.svc.cluster.local`,
      vips: ['198.19.0.1'],
      ports: [{ servicePort: 80, targetPort: 0 }],
    });
    for (const w of ws) inc.set(w);
    inc.set(svc('a'));
    inc.set(svc('b'));
    const one = inc.build().snapshot;
    inc.set({ ...ws[0]!, ips: ['198.18.1.9'] }); // same membership: service a keeps its object
    inc.set({ ...svc('b'), vips: ['198.19.0.2'] });
    const two = inc.build().snapshot;
    expect(two.workloads.get('w1')).not.toBe(one.workloads.get('w1'));
    expect(two.workloads.get('w2')).toBe(one.workloads.get('w2'));
    expect(two.services.get('default/a')).toBe(one.services.get('default/a'));
    expect(two.services.get('default/b')).not.toBe(one.services.get('default/b'));
    expect(one.workloads.get('w1')!.ip).toBe('198.18.1.1'); // the published snapshot never changes
    expect(inc.build().snapshot.workloads.get('w3')).toBe(one.workloads.get('w3'));
    // A version that changes only its service memberships keeps the Workload object (and the published map).
    inc.set({ ...ws[1]!, services: new Map([['default/b.default.svc.cluster.local', [{ servicePort: 80, targetPort: 0 }]]]) });
    const three = inc.build().snapshot;
    expect(three.workloads).toBe(two.workloads);
    expect(three.services.get('default/b')!.endpointUids).toEqual(['w2']);
    expect(three.services.get('default/a')!.endpointUids).toEqual(['w1', 'w3']);
    // The store follows: w1's new IP resolves, its old one does not; service a's endpoints carry the new w1.
    const store = new StateStore(one);
    store.replace(two);
    expect(store.workloadByIp('198.18.1.9')?.uid).toBe('w1');
    expect(store.workloadByIp('198.18.1.1')).toBeUndefined();
    const d = store.resolve('198.19.0.1', 80);
    expect(d.kind === 'service' && d.endpoints.map((w) => w.ip)).toEqual(['198.18.1.9', '198.18.1.2', '198.18.1.3']);
  });

  it('reports warnings for the resources that changed', () => {
    const inc = new IncrementalSnapshot();
    inc.set({ kind: 'localWorkload', uid: 'ghost', netns: '/run/netns/x' });
    expect(inc.build().warnings).toEqual(['LocalWorkload ghost: uid: no Address resource with this uid (yet)']);
    expect(inc.build().warnings).toEqual([]);
  });
});
