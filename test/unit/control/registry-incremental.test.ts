// The registry's cached rebuild: after random sequences of snapshot changes it serves exactly what a fresh build serves (names, versions, bytes, diffs), and re-encodes only what changed.
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { convertAuthorizationPolicy } from '../../../control/config/authorization';
import { buildTrafficPolicies, convertDestinationRule, convertVirtualService, type DestinationRuleConfig, type VirtualServiceConfig } from '../../../control/config/istio-traffic';
import type { AuthorizationPolicy } from '../../../core/policy/types';
import type { MeshNode, MeshSnapshot, Service, ServicePort, Workload } from '../../../core/model/types';
import { Registry } from '../../../control/registry';
import { buildResourceSets, diffResourceSets, ResourceEntryCache, type ResourceDiff, type ResourceSets, type TypedResources } from '../../../control/xds-resources';
import { seeded as prng } from '../../helpers/prng';
import { XDS_TYPE_URL as T, XDS_TYPE_URLS } from '../../../core/xds/contract';

const NAMESPACES = ['default', 'shop', 'istio-system'];
const APPS = ['web', 'api', 'db'];

/** The mutable model one sequence evolves; `snapshot()` turns it into an immutable MeshSnapshot. */
class Model {
  trustDomain = 'cluster.local';
  rootNamespace: string | undefined = undefined;
  nodes = new Map<string, MeshNode>();
  workloads = new Map<string, Workload>();
  services = new Map<string, Service>();
  policies = new Map<string, { namespace: string; name: string; spec: unknown }>();
  destinationRules = new Map<string, { namespace: string; name: string; spec: unknown }>();
  virtualServices = new Map<string, { namespace: string; name: string; spec: unknown }>();
  anchors: string[] = ['ROOT-A'];
  private seq = 0;

  constructor(private readonly rnd: () => number) {
    for (let i = 1; i <= 3; i++) this.nodes.set(`n${i}`, { name: `n${i}`, address: `10.0.0.${i}` });
    for (let i = 0; i < 14; i++) this.addWorkload();
    for (let i = 0; i < 5; i++) this.addService();
  }

  pick<X>(xs: readonly X[]): X {
    return xs[Math.floor(this.rnd() * xs.length)]!;
  }
  chance(p: number): boolean {
    return this.rnd() < p;
  }
  private any<K, V>(m: Map<K, V>): V | undefined {
    return m.size === 0 ? undefined : this.pick([...m.values()]);
  }

  labels(): Record<string, string> {
    const l: Record<string, string> = { app: this.pick(APPS) };
    if (this.chance(0.6)) l.version = this.pick(['v1', 'v2']);
    if (this.chance(0.2)) l['app.kubernetes.io/version'] = this.pick(['1.0', '2.0']);
    if (this.chance(0.1)) l['smesh.io/dataplane-mode'] = 'none';
    return l;
  }

  addWorkload(): void {
    const n = ++this.seq;
    const namespace = this.pick(NAMESPACES);
    const labels = this.labels();
    const uid = `${namespace}/pod-${n}`;
    this.workloads.set(uid, {
      uid,
      name: `pod-${n}`,
      namespace,
      serviceAccount: this.pick(['sa1', 'sa2']),
      node: this.pick([...this.nodes.keys()]),
      ip: `10.1.${Math.floor(n / 250)}.${n % 250}`,
      labels,
      netns: this.chance(0.8) ? `/run/netns/pod-${n}` : undefined,
      workloadName: labels.app!,
      identity: `spiffe://${this.trustDomain}/ns/${namespace}/sa/sa1`,
      meshed: labels['smesh.io/dataplane-mode'] !== 'none',
    });
  }

  modifyWorkload(): void {
    const w = this.any(this.workloads);
    if (!w) return;
    const change: Partial<Workload> = this.pick<() => Partial<Workload>>([
      () => ({ node: this.pick([...this.nodes.keys()]) }), // a move: LocalWorkload changes node
      () => ({ ip: `10.2.${Math.floor(this.rnd() * 250)}.${++this.seq % 250}` }),
      () => ({ labels: this.labels() }),
      () => ({ labels: { ...w.labels, version: this.pick(['v1', 'v2', 'v3']) } }),
      () => ({ serviceAccount: this.pick(['sa1', 'sa2', 'sa3']) }),
      () => ({ netns: this.chance(0.5) ? undefined : `/run/netns/other-${++this.seq}` }),
      () => ({ meshed: !w.meshed }),
      () => ({ workloadName: this.pick(['x', 'y', w.workloadName]) }),
      () => ({ authorizationPolicies: this.chance(0.3) ? undefined : [...this.policies.keys()].filter(() => this.chance(0.5)).sort() }),
    ])();
    this.workloads.set(w.uid, { ...w, ...change });
  }

  ports(): ServicePort[] {
    const out: ServicePort[] = [];
    const count = 1 + Math.floor(this.rnd() * 2);
    for (let i = 0; i < count; i++) {
      const port = this.pick([80, 443, 8080, 9090]) + i;
      out.push({
        name: this.pick([undefined, 'http', 'grpc-x', 'tcp', 'web']),
        port,
        targetPort: this.chance(0.5) ? port : port + 1000,
        appProtocol: this.pick([undefined, undefined, 'http', 'HTTP2']),
      });
    }
    return out;
  }

  addService(): void {
    const n = ++this.seq;
    const namespace = this.pick(NAMESPACES);
    const key = `${namespace}/svc-${n}`;
    this.services.set(key, { key, name: `svc-${n}`, namespace, vips: [`10.96.${Math.floor(n / 250)}.${n % 250}`], ports: this.ports(), selector: { app: this.pick(APPS) } });
  }

  modifyService(): void {
    const s = this.any(this.services);
    if (!s) return;
    const change: Partial<Service> = this.pick<() => Partial<Service>>([
      () => ({ vips: this.chance(0.3) ? [] : [`10.97.0.${++this.seq % 250}`, ...(this.chance(0.3) ? ['fd00::9'] : [])] }),
      () => ({ ports: this.ports() }),
      () => ({ selector: { app: this.pick(APPS) } }),
      () => ({ selector: { app: this.pick(APPS), version: this.pick(['v1', 'v2']) } }),
      () => ({ selector: (this.chance(0.5) ? {} : { version: 'v1' }) as Record<string, string> }),
      () => ({ endpointUids: this.chance(0.3) ? undefined : [...[...this.workloads.keys()].filter(() => this.chance(0.2)), 'default/ghost'] }),
    ])();
    const next = { ...s, ...change };
    if ('endpointUids' in change && change.endpointUids === undefined) delete next.endpointUids;
    this.services.set(s.key, next);
  }

  setPolicy(): void {
    const namespace = this.pick(NAMESPACES);
    const name = `ap-${this.pick(['a', 'b', 'c'])}`;
    const spec = this.pick([
      { selector: { matchLabels: { app: this.pick(APPS) } }, rules: [{ from: [{ source: { principals: ['cluster.local/ns/default/sa/sa1'] } }] }] },
      { selector: { matchLabels: { version: 'v1' } }, action: 'DENY', rules: [{ to: [{ operation: { ports: ['8080'] } }] }] },
      { rules: [{ to: [{ operation: { paths: ['/admin*'], methods: ['GET'] } }] }] },
      { action: 'AUDIT', rules: [{}] },
    ]);
    this.policies.set(`${namespace}/${name}`, { namespace, name, spec });
  }

  setTraffic(): void {
    const s = this.any(this.services);
    if (!s) return;
    const host = `${s.name}.${s.namespace}.svc.cluster.local`;
    if (this.chance(0.5)) {
      this.destinationRules.set(s.key, {
        namespace: s.namespace,
        name: `dr-${s.name}`,
        spec: {
          host,
          trafficPolicy: { loadBalancer: { simple: this.pick(['ROUND_ROBIN', 'RANDOM', 'LEAST_REQUEST']) } },
          subsets: [
            { name: 'v1', labels: { version: 'v1' } },
            { name: 'v2', labels: { version: 'v2' } },
          ],
        },
      });
    } else {
      this.virtualServices.set(s.key, {
        namespace: s.namespace,
        name: `vs-${s.name}`,
        spec: { hosts: [host], http: [{ route: [{ destination: { host }, weight: 100 }], timeout: this.pick(['1s', '2s', '250ms']) }] },
      });
    }
  }

  mutate(): void {
    const r = this.rnd();
    if (r < 0.12) this.addWorkload();
    else if (r < 0.2) this.workloads.delete(this.any(this.workloads)?.uid ?? '');
    else if (r < 0.45) this.modifyWorkload();
    else if (r < 0.53) this.addService();
    else if (r < 0.58) this.services.delete(this.any(this.services)?.key ?? '');
    else if (r < 0.7) this.modifyService();
    else if (r < 0.76) this.setPolicy();
    else if (r < 0.79) this.policies.delete(this.pick([...this.policies.keys(), 'none']));
    else if (r < 0.85) this.setTraffic();
    else if (r < 0.88) {
      this.destinationRules.delete(this.pick([...this.destinationRules.keys(), 'none']));
      this.virtualServices.delete(this.pick([...this.virtualServices.keys(), 'none']));
    } else if (r < 0.91) {
      const n = `n${1 + Math.floor(this.rnd() * 5)}`;
      if (this.chance(0.7)) this.nodes.set(n, { name: n, address: this.pick(['10.0.0.7', '10.0.0.8', 'fd00::7']) });
      else if (![...this.workloads.values()].some((w) => w.node === n)) this.nodes.delete(n);
    } else if (r < 0.93) this.trustDomain = this.pick(['cluster.local', 'example.org']);
    else if (r < 0.95) this.rootNamespace = this.pick([undefined, 'istio-system', 'shop']);
    else this.anchors = this.pick([['ROOT-A'], ['ROOT-A', 'ROOT-B'], ['ROOT-B']]);
  }

  snapshot(): MeshSnapshot {
    const root = this.rootNamespace ?? 'istio-system';
    const authorizationPolicies: AuthorizationPolicy[] = [];
    for (const p of this.policies.values()) {
      const { policy, problems } = convertAuthorizationPolicy(p.name, p.namespace, p.spec, root);
      expect(problems).toEqual([]);
      authorizationPolicies.push(policy!);
    }
    authorizationPolicies.sort((a, b) => (`${a.namespace}/${a.name}` < `${b.namespace}/${b.name}` ? -1 : 1));
    const drs: DestinationRuleConfig[] = [];
    for (const d of this.destinationRules.values()) if (this.services.has(`${d.namespace}/${d.name.slice(3)}`)) drs.push(convertDestinationRule(d.name, d.namespace, d.spec).rule!);
    const vss: VirtualServiceConfig[] = [];
    for (const v of this.virtualServices.values()) if (this.services.has(`${v.namespace}/${v.name.slice(3)}`)) vss.push(convertVirtualService(v.name, v.namespace, v.spec).service!);
    const traffic = buildTrafficPolicies(drs, vss, this.services, this.workloads);
    return {
      trustDomain: this.trustDomain,
      nodes: new Map(this.nodes),
      // Half the time every object is a copy: the cache must not depend on object identity.
      workloads: new Map([...this.workloads].map(([k, w]) => [k, this.chance(0.5) ? { ...w, labels: { ...w.labels } } : w])),
      services: new Map(this.services),
      namespaces: new Map(NAMESPACES.map((n) => [n, {}])),
      authorizationPolicies,
      ...(this.rootNamespace ? { rootNamespace: this.rootNamespace } : {}),
      ...(traffic.policies.size > 0 ? { trafficPolicies: traffic.policies } : {}),
    };
  }
}

/** Every entry as name, version and bytes, in map order. */
function dump(r: TypedResources | undefined): string[] {
  return [...(r ?? new Map()).values()].map((e) => `${e.name} ${e.version} ${e.resource.type_url} ${Buffer.from(e.resource.value).toString('hex')}`);
}

function normalize(d: ResourceDiff): Record<string, { added: string[]; changed: string[]; removed: string[] }> {
  const out: Record<string, { added: string[]; changed: string[]; removed: string[] }> = {};
  for (const [t, x] of d) out[t] = { added: [...x.added].sort(), changed: [...x.changed].sort(), removed: [...x.removed].sort() };
  return out;
}

function expectSameAsFresh(registry: Registry, fresh: ResourceSets, nodes: Iterable<string>): void {
  for (const t of XDS_TYPE_URLS) {
    if (t === T.localWorkload) continue;
    expect(dump(registry.resources('any', t))).toEqual(dump(fresh.shared.get(t)));
  }
  for (const n of nodes) expect(dump(registry.resources(n, T.localWorkload))).toEqual(dump(fresh.localByNode.get(n)));
}

describe('control: incremental registry rebuild', () => {
  for (const seed of [1, 2, 3, 4, 5, 6]) {
    it(`matches a fresh build after every step of random changes (seed ${seed})`, () => {
      const rnd = prng(seed);
      const model = new Model(rnd);
      const registry = new Registry({ trustAnchors: model.anchors });
      let prevFresh: ResourceSets | undefined;
      let prevAnchors = model.anchors;
      const everNodes = new Set<string>();
      let changedSteps = 0;
      for (let step = 0; step < 60; step++) {
        const count = step === 0 ? 0 : 1 + Math.floor(rnd() * 3);
        for (let i = 0; i < count; i++) model.mutate();
        const snap = model.snapshot();
        // Anchors go through setTrustAnchors (root rotation), the rest through update.
        let diff: ResourceDiff;
        if (model.anchors !== prevAnchors && prevFresh) {
          const anchorsOnly = buildResourceSets(registry.snapshot!, { trustAnchors: model.anchors });
          const d1 = registry.setTrustAnchors(model.anchors);
          expect(normalize(d1)).toEqual(normalize(diffResourceSets(prevFresh, anchorsOnly)));
          prevFresh = anchorsOnly;
          prevAnchors = model.anchors;
        }
        const generation = registry.generation;
        diff = registry.update(snap);
        const fresh = buildResourceSets(snap, { trustAnchors: model.anchors });
        for (const w of snap.workloads.values()) everNodes.add(w.node);
        for (const n of fresh.localByNode.keys()) everNodes.add(n);
        expect(normalize(diff), `step ${step}`).toEqual(normalize(diffResourceSets(prevFresh, fresh)));
        expect(registry.generation).toBe(diff.size > 0 ? generation + 1 : generation);
        if (diff.size > 0) changedSteps++;
        expectSameAsFresh(registry, fresh, everNodes);
        prevFresh = fresh;
      }
      expect(changedSteps).toBeGreaterThan(30); // the sequence did exercise changes
    });
  }

  it('re-encodes only the resources whose inputs changed', () => {
    const workloads: Workload[] = [];
    for (let i = 0; i < 200; i++) {
      workloads.push({
        uid: `default/p${i}`,
        name: `p${i}`,
        namespace: 'default',
        serviceAccount: 'sa',
        node: `n${i % 4}`,
        ip: `10.1.0.${i}`,
        labels: { app: `s${Math.floor(i / 2)}` },
        netns: `/run/netns/p${i}`,
        workloadName: `s${Math.floor(i / 2)}`,
        identity: 'spiffe://td/ns/default/sa/sa',
        meshed: true,
      });
    }
    const services = new Map<string, Service>();
    for (let j = 0; j < 100; j++)
      services.set(`default/s${j}`, { key: `default/s${j}`, name: `s${j}`, namespace: 'default', vips: [`10.96.0.${j}`], ports: [{ port: 80, targetPort: 8080 }], selector: { app: `s${j}` } });
    const base: MeshSnapshot = {
      trustDomain: 'td',
      nodes: new Map([0, 1, 2, 3].map((n) => [`n${n}`, { name: `n${n}`, address: `10.0.0.${n}` }])),
      workloads: new Map(workloads.map((w) => [w.uid, w])),
      services,
      namespaces: new Map(),
    };
    const cache = new ResourceEntryCache();
    const first = buildResourceSets(base, { trustAnchors: [] }, cache);
    expect(cache.encoded).toBe(200 * 2 + 100 + 4 + 1); // Address + LocalWorkload per pod, services, nodes, MeshConfig

    // One more service selecting pods p10 and p11: that service and those two pods' Addresses.
    const plus = new Map(services);
    plus.set('default/extra', { key: 'default/extra', name: 'extra', namespace: 'default', vips: ['10.96.1.1'], ports: [{ port: 9000, targetPort: 9000 }], selector: { app: 's5' } });
    const copy = (s: MeshSnapshot): MeshSnapshot => ({ ...s, workloads: new Map([...s.workloads].map(([k, w]) => [k, { ...w, labels: { ...w.labels } }])) });
    const sets = buildResourceSets(copy({ ...base, services: plus }), { trustAnchors: [] }, cache, first);
    expect(cache.encoded).toBe(3);
    // Types and nodes whose entries did not change keep their maps (and the diff skips them).
    expect(sets.shared.get(T.node)).toBe(first.shared.get(T.node));
    expect(sets.localByNode.get('n2')).toBe(first.localByNode.get('n2'));
    expect(sets.shared.get(T.address)).not.toBe(first.shared.get(T.address));
    expect(cache.size).toBe(200 * 2 + 101 + 4 + 1);
    // Versions are the sha256 of the bytes (16 hex digits): the same across restarts and builds.
    for (const e of [...sets.shared.get(T.address)!.values()].slice(0, 5)) expect(e.version).toBe(createHash('sha256').update(e.resource.value).digest('hex').slice(0, 16));
    // A node move re-encodes nothing (LocalWorkload bytes do not name the node) but moves the entry.
    const moved = new Map(base.workloads);
    moved.set('default/p0', { ...moved.get('default/p0')!, node: 'n3' });
    const d = diffResourceSets(sets, buildResourceSets({ ...base, services: plus, workloads: moved }, { trustAnchors: [] }, cache));
    expect(cache.encoded).toBe(1); // the Address (Workload.node)
    expect(d.get(T.localWorkload)).toEqual({ added: [], changed: ['Kubernetes//Pod/default/p0'], removed: [] });
    // Nothing changed: nothing encoded.
    buildResourceSets({ ...base, services: plus, workloads: moved }, { trustAnchors: [] }, cache);
    expect(cache.encoded).toBe(0);
    // The service goes away again: its members' Addresses re-encoded, its entry leaves the cache.
    buildResourceSets({ ...base, workloads: moved }, { trustAnchors: [] }, cache);
    expect(cache.encoded).toBe(2);
    expect(cache.size).toBe(200 * 2 + 100 + 4 + 1);
  });
});
