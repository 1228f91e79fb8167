// Incremental mesh state: applies each accepted or removed xDS resource to working state and publishes immutable snapshots that share every unchanged Workload/Service object.
import type { AuthorizationPolicy } from '../policy/types';
import { OwnedIndex } from '../state/store';
import type { MeshNode, MeshSnapshot, Service, Workload } from '../state/types';
import {
  DEFAULT_TRUST_DOMAIN,
  q,
  resolveTrafficPolicies,
  toService,
  toWorkload,
  XDS_TYPE_URL,
  type AcceptedAuthorization,
  type AcceptedLocalWorkload,
  type AcceptedMeshConfig,
  type AcceptedResource,
  type AcceptedService,
  type AcceptedTrafficPolicy,
  type AcceptedWorkload,
  type BuiltSnapshot,
  type PortMapping,
  type XdsTypeUrl,
} from './convert';

// What `buildSnapshot` computes from all accepted resources at once, this keeps up to date per resource:
// the cost of a push is proportional to what it changed (plus copying the top-level maps of the published
// snapshot, a few ms at 60k entries), and a 50k-workload state is held once, not rebuilt beside the old one.
// Published snapshots equal buildSnapshot's for the same resources (test/unit/xds/incremental.test.ts), except
// for map iteration order, which is unspecified here. Warnings name only resources changed since the last build.

const byString = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

function samePorts(a: readonly PortMapping[] | undefined, b: readonly PortMapping[] | undefined): boolean {
  if (a === b) return true;
  if (!a || !b || a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!;
    const y = b[i]!;
    if (x.servicePort !== y.servicePort || x.targetPort !== y.targetPort || x.appProtocol !== y.appProtocol) return false;
  }
  return true;
}

const serviceKey = (s: AcceptedService): string => `${s.namespace}/${s.name}`;

export class IncrementalSnapshot {
  // Accepted resources (the only copy: the xDS client keeps just their versions).
  private readonly addresses = new Map<string, AcceptedWorkload | AcceptedService>();
  private readonly localWorkloads = new Map<string, AcceptedLocalWorkload>();
  private readonly authorizations = new Map<string, AcceptedAuthorization>();
  private readonly trafficPolicies = new Map<string, AcceptedTrafficPolicy>();
  private meshConfig: AcceptedMeshConfig | undefined;

  // Derived working state; published as copies.
  private readonly workloads = new Map<string, Workload>();
  private readonly services = new Map<string, Service>();
  private readonly nodes = new Map<string, MeshNode>();
  /** Service resource name → uids of the workloads naming it in Workload.services. */
  private readonly members = new Map<string, Set<string>>();
  /** Service state key `<ns>/<name>` → the resource names claiming it (the smallest wins). */
  private readonly keyClaims = new OwnedIndex<string>((ref) => ref);
  /** Workload IP → uids (the smallest owns it; the others get a warning). */
  private readonly ipClaims = new OwnedIndex<string>((uid) => uid);
  private readonly namespaceUse = new Map<string, number>();
  private trustDomain: string;

  // Changes since the last build.
  private readonly dirtyWorkloads = new Set<string>();
  private readonly dirtyKeys = new Set<string>();
  /** Service resource names whose membership or member port mappings changed. */
  private readonly dirtyRefs = new Set<string>();
  private readonly dirtyLocal = new Set<string>();
  private namespacesChanged = true;
  private policiesChanged = true;
  private trafficChanged = true;
  private published: MeshSnapshot | undefined;
  private publishedPolicies: readonly AuthorizationPolicy[] = [];
  private publishedNamespaces: ReadonlyMap<string, Readonly<Record<string, string>>> = new Map();
  private publishedTraffic: MeshSnapshot['trafficPolicies'];

  constructor(private readonly defaultTrustDomain = DEFAULT_TRUST_DOMAIN) {
    this.trustDomain = defaultTrustDomain;
  }

  /** Accepts a new version of a resource (of the type its `kind` says). */
  set(value: AcceptedResource): void {
    switch (value.kind) {
      case 'workload':
      case 'service': {
        const name = value.kind === 'workload' ? value.uid : value.resourceName;
        const old = this.addresses.get(name);
        if (old) this.unlink(old, value.kind === 'workload' ? value : undefined);
        this.addresses.set(name, value);
        this.link(value, old?.kind === 'workload' ? old : undefined);
        return;
      }
      case 'node':
        this.nodes.set(value.name, { name: value.name, address: value.address });
        return;
      case 'localWorkload':
        this.localWorkloads.set(value.uid, value);
        this.dirtyWorkloads.add(value.uid);
        this.dirtyLocal.add(value.uid);
        return;
      case 'meshConfig':
        this.meshConfig = value;
        this.retrust();
        return;
      case 'authorization':
        this.authorizations.set(`${value.policy.namespace}/${value.policy.name}`, value);
        this.policiesChanged = true;
        return;
      case 'trafficPolicy':
        this.trafficPolicies.set(value.resourceName, value);
        this.trafficChanged = true;
        return;
    }
  }

  /** Drops a resource of type `typeUrl` (no-op when not held). */
  remove(typeUrl: XdsTypeUrl, name: string): void {
    switch (typeUrl) {
      case XDS_TYPE_URL.address: {
        const old = this.addresses.get(name);
        if (!old) return;
        this.addresses.delete(name);
        this.unlink(old, undefined);
        return;
      }
      case XDS_TYPE_URL.node:
        this.nodes.delete(name);
        return;
      case XDS_TYPE_URL.localWorkload:
        if (this.localWorkloads.delete(name)) this.dirtyWorkloads.add(name);
        this.dirtyLocal.add(name);
        return;
      case XDS_TYPE_URL.meshConfig:
        if (!this.meshConfig) return;
        this.meshConfig = undefined;
        this.retrust();
        return;
      case XDS_TYPE_URL.authorization:
        if (this.authorizations.delete(name)) this.policiesChanged = true;
        return;
      case XDS_TYPE_URL.trafficPolicy:
        if (this.trafficPolicies.delete(name)) this.trafficChanged = true;
        return;
    }
  }

  private retrust(): void {
    const td = this.meshConfig?.trustDomain ?? this.defaultTrustDomain;
    if (td === this.trustDomain) return;
    this.trustDomain = td;
    for (const uid of this.workloads.keys()) this.dirtyWorkloads.add(uid);
  }

  private useNamespace(ns: string, delta: 1 | -1): void {
    const n = (this.namespaceUse.get(ns) ?? 0) + delta;
    if (n === 0) {
      this.namespaceUse.delete(ns);
      this.namespacesChanged = true;
    } else {
      if (n === 1 && delta === 1) this.namespacesChanged = true;
      this.namespaceUse.set(ns, n);
    }
  }

  /** Removes `old`'s contributions; `next` (its replacement, if a workload) spares unchanged memberships. */
  private unlink(old: AcceptedWorkload | AcceptedService, next: AcceptedWorkload | undefined): void {
    this.useNamespace(old.namespace, -1);
    if (old.kind === 'service') {
      const key = serviceKey(old);
      this.keyClaims.remove(key, old.resourceName);
      this.dirtyKeys.add(key);
      return;
    }
    this.dirtyWorkloads.add(old.uid);
    this.ipClaims.remove(old.ips[0]!, old.uid);
    for (const [ref, ports] of old.services) {
      if (next && samePorts(next.services.get(ref), ports)) continue;
      const set = this.members.get(ref);
      if (set) {
        set.delete(old.uid);
        if (set.size === 0) this.members.delete(ref);
      }
      this.dirtyRefs.add(ref);
    }
  }

  private link(a: AcceptedWorkload | AcceptedService, previous: AcceptedWorkload | undefined): void {
    this.useNamespace(a.namespace, 1);
    if (a.kind === 'service') {
      const key = serviceKey(a);
      this.keyClaims.add(key, a.resourceName);
      this.dirtyKeys.add(key);
      this.dirtyRefs.add(a.resourceName);
      return;
    }
    this.dirtyWorkloads.add(a.uid);
    this.ipClaims.add(a.ips[0]!, a.uid);
    for (const [ref, ports] of a.services) {
      if (previous && samePorts(previous.services.get(ref), ports)) continue;
      let set = this.members.get(ref);
      if (!set) this.members.set(ref, (set = new Set()));
      set.add(a.uid);
      this.dirtyRefs.add(ref);
    }
  }

  private acceptedWorkload(uid: string): AcceptedWorkload | undefined {
    const a = this.addresses.get(uid);
    return a?.kind === 'workload' ? a : undefined;
  }

  /** Applies every change since the last build and publishes a new snapshot (or the same one when nothing changed). */
  build(): BuiltSnapshot {
    const warnings: string[] = [];
    const td = this.trustDomain;

    for (const uid of this.dirtyWorkloads) {
      const a = this.acceptedWorkload(uid);
      if (!a) {
        this.workloads.delete(uid);
        continue;
      }
      this.workloads.set(uid, toWorkload(a, this.localWorkloads.get(uid)?.netns, td));
      const ip = a.ips[0]!;
      const owner = this.ipClaims.get(ip);
      if (owner !== undefined && owner !== uid) warnings.push(`Address ${uid}: workload.addresses[0]: ${ip} is also the address of ${owner}; lookups by IP find ${owner}`);
      for (const ref of a.authorizationPolicies) {
        if (!this.authorizations.has(ref)) warnings.push(`Address ${uid}: workload.authorization_policies: no Authorization resource ${q(ref)} (yet)`);
      }
    }
    for (const uid of this.dirtyLocal) {
      if (this.localWorkloads.has(uid) && !this.acceptedWorkload(uid)) warnings.push(`LocalWorkload ${uid}: uid: no Address resource with this uid (yet)`);
    }

    let servicesChanged = this.dirtyKeys.size > 0;
    for (const ref of this.dirtyRefs) {
      const s = this.addresses.get(ref);
      if (s?.kind === 'service') this.dirtyKeys.add(serviceKey(s));
      else {
        const set = this.members.get(ref);
        if (set && set.size > 0) {
          const first = [...set].sort(byString)[0]!;
          warnings.push(`Address ${first}: workload.services[${q(ref)}]: no Service resource with this name (yet)`);
        }
      }
    }
    for (const key of this.dirtyKeys) {
      const claimants = this.keyClaims.claimants(key);
      if (claimants.length === 0) {
        if (this.services.delete(key)) servicesChanged = true;
        continue;
      }
      for (const other of claimants.slice(1)) warnings.push(`Address ${other}: service.name: ${key} is also served by another hostname; keeping the first`);
      const s = this.addresses.get(claimants[0]!) as AcceptedService;
      const uids = [...(this.members.get(s.resourceName) ?? [])].sort(byString);
      const endpoints = uids.map((uid) => this.acceptedWorkload(uid)!);
      this.services.set(key, toService(s, endpoints, warnings));
      servicesChanged = true;
    }

    if (this.policiesChanged) {
      this.publishedPolicies = [...this.authorizations].sort(([a], [b]) => byString(a, b)).map(([, a]) => a.policy);
      // Workloads naming a policy that just arrived or left: recheck all references (policies are few, pushes of them rare).
      for (const [uid, w] of this.workloads) {
        if (this.dirtyWorkloads.has(uid)) continue;
        for (const ref of w.authorizationPolicies ?? []) {
          if (!this.authorizations.has(ref)) warnings.push(`Address ${uid}: workload.authorization_policies: no Authorization resource ${q(ref)} (yet)`);
        }
      }
    }
    if (this.namespacesChanged) this.publishedNamespaces = new Map([...this.namespaceUse.keys()].sort(byString).map((ns) => [ns, {}]));
    if (this.trafficPolicies.size === 0) this.publishedTraffic = undefined;
    else if (this.trafficChanged || servicesChanged || this.dirtyWorkloads.size > 0) {
      const xdsServices = [...this.addresses.values()].filter((a): a is AcceptedService => a.kind === 'service');
      const resolved = resolveTrafficPolicies(this.trafficPolicies, xdsServices, this.workloads, this.trafficChanged ? warnings : []);
      this.publishedTraffic = resolved.size > 0 ? resolved : undefined;
    }

    this.dirtyWorkloads.clear();
    this.dirtyKeys.clear();
    this.dirtyRefs.clear();
    this.dirtyLocal.clear();
    this.namespacesChanged = this.policiesChanged = this.trafficChanged = false;

    const snapshot: MeshSnapshot = {
      trustDomain: td,
      nodes: new Map(this.nodes),
      workloads: new Map(this.workloads),
      services: new Map(this.services),
      namespaces: this.publishedNamespaces,
      authorizationPolicies: this.publishedPolicies,
      ...(this.publishedTraffic ? { trafficPolicies: this.publishedTraffic } : {}),
    };
    this.published = snapshot;
    return { snapshot, trustAnchors: this.meshConfig?.trustAnchors ?? [], warnings };
  }

  /** The last published snapshot, if any. */
  latest(): MeshSnapshot | undefined {
    return this.published;
  }
}
