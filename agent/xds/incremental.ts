// Incremental mesh state: applies each accepted or removed xDS resource to working state and publishes immutable snapshots that share every unchanged Workload/Service object.
import type { AuthorizationPolicy } from '../../core/policy/types';
import { OwnedIndex } from '../state/store';
import { workloadAddresses } from '../../core/model/addresses';
import type { MeshNode, MeshSnapshot, Service, Workload } from '../../core/model/types';
import {
  identityOf,
  meshTrustDomainAliases,
  quoted,
  resolveTrafficPolicies,
  shapingByWorkload,
  toService,
  toWorkload,
  type AcceptedAuthorization,
  type AcceptedLocalWorkload,
  type AcceptedMeshConfig,
  type AcceptedResource,
  type AcceptedService,
  type AcceptedTrafficPolicy,
  type AcceptedTrafficShaping,
  type AcceptedWorkload,
  type BuiltSnapshot,
  type EndpointPorts,
  type PortMapping,
} from './convert';
import { XDS_TYPE_URL, type XdsTypeUrl } from '../../core/xds/contract';
import { DEFAULT_TRUST_DOMAIN } from '../../core/identity/defaults';

// What `buildSnapshot` computes from all accepted resources at once, this keeps up to date per resource:
// the cost of a push is proportional to what it changed (plus copying the top-level maps of the published
// snapshot, a few ms at 60k entries), and a 50k-workload state is held once, not rebuilt beside the old one.
// A workload is held as its published Workload object plus a small record shared by equal workloads (its
// service memberships and own trust domain): no accepted copy beside it.
// Published snapshots equal buildSnapshot's for the same resources (test/unit/agent/xds/incremental.test.ts), except
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

function sameList(a: readonly string[] | undefined, b: readonly string[] | undefined): boolean {
  if (a === b) return true;
  if (!a || !b || a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Field by field (labels are shared objects, see convert.ts): equal Workloads from two versions of a resource. */
function sameWorkload(a: Workload, b: Workload): boolean {
  return (
    a.uid === b.uid &&
    a.name === b.name &&
    a.namespace === b.namespace &&
    a.serviceAccount === b.serviceAccount &&
    a.node === b.node &&
    a.ip === b.ip &&
    sameList(a.addresses, b.addresses) &&
    a.labels === b.labels &&
    a.netns === b.netns &&
    a.egressBandwidthBps === b.egressBandwidthBps &&
    a.ingressBandwidthBps === b.ingressBandwidthBps &&
    a.workloadName === b.workloadName &&
    a.identity === b.identity &&
    a.meshed === b.meshed &&
    a.tunnel === b.tunnel &&
    sameList(a.authorizationPolicies, b.authorizationPolicies)
  );
}

/** A workload's accepted data that its Workload object does not carry. */
interface WorkloadExtra {
  readonly kind: 'workload';
  readonly services: AcceptedWorkload['services'];
  /** Its own trust domain; empty: the mesh's. */
  readonly trustDomain: string;
}

/** Shared records: convert.ts already shares equal `services` maps, so (map, trust domain) identifies one. */
const extraCache = new WeakMap<AcceptedWorkload['services'], Map<string, WorkloadExtra>>();
function extraOf(a: AcceptedWorkload): WorkloadExtra {
  let byTd = extraCache.get(a.services);
  if (!byTd) extraCache.set(a.services, (byTd = new Map()));
  let e = byTd.get(a.trustDomain);
  if (!e) byTd.set(a.trustDomain, (e = { kind: 'workload', services: a.services, trustDomain: a.trustDomain }));
  return e;
}

export class IncrementalSnapshot {
  /** Address resources: a service as accepted, a workload as its extra record (the rest is in `workloads`). */
  private readonly addresses = new Map<string, WorkloadExtra | AcceptedService>();
  private readonly localWorkloads = new Map<string, AcceptedLocalWorkload>();
  private readonly authorizations = new Map<string, AcceptedAuthorization>();
  private readonly trafficPolicies = new Map<string, AcceptedTrafficPolicy>();
  private readonly trafficShapings = new Map<string, AcceptedTrafficShaping>();
  private shapingChanged = true;
  private publishedShaping: MeshSnapshot['trafficShaping'];
  private meshConfig: AcceptedMeshConfig | undefined;

  // Working state. A build publishes these maps themselves; the next change copies a map before writing to it
  // (copy on write), so a published snapshot never changes and an idle state holds each map once.
  private workloads = new Map<string, Workload>();
  private services = new Map<string, Service>();
  private nodes = new Map<string, MeshNode>();
  private published = { workloads: false, services: false, nodes: false };
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
  /** Until the first build every workload is new: checked all at once then, not listed one by one in dirtyWorkloads. */
  private allWorkloadsDirty = true;
  /** Workloads whose Workload object must be derived again (netns or trust domain changed). */
  private readonly rederive = new Set<string>();
  private readonly dirtyKeys = new Set<string>();
  /** Service resource names whose membership or member port mappings changed. */
  private readonly dirtyRefs = new Set<string>();
  private readonly dirtyLocal = new Set<string>();
  private namespacesChanged = true;
  private policiesChanged = true;
  private trafficChanged = true;
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
        const nextExtra = value.kind === 'workload' ? extraOf(value) : undefined;
        if (old) this.unlink(name, old, nextExtra);
        if (value.kind === 'workload') {
          this.addresses.set(name, nextExtra!);
          const w = toWorkload(value, this.localWorkloads.get(name), this.trustDomain);
          // A new version that changed only what the Workload object does not carry (its service memberships, e.g.
          // when a Service selecting it arrives) keeps the published object: no copy of the 50k-entry map for it.
          const held = old?.kind === 'workload' ? this.workloads.get(name) : undefined;
          if (!held || !sameWorkload(held, w)) this.ownWorkloads().set(name, w);
          this.link(name, nextExtra!, old?.kind === 'workload' ? old : undefined);
        } else {
          if (old?.kind === 'workload') this.ownWorkloads().delete(name);
          this.addresses.set(name, value);
          this.link(name, value, undefined);
        }
        return;
      }
      case 'node':
        this.ownNodes().set(value.name, { name: value.name, address: value.address });
        return;
      case 'localWorkload':
        this.localWorkloads.set(value.uid, value);
        this.rederive.add(value.uid);
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
      case 'trafficShaping':
        this.trafficShapings.set(value.shaping.workloadUid, value);
        this.shapingChanged = true;
        return;
    }
  }

  /** Drops a resource of type `typeUrl` (no-op when not held). */
  remove(typeUrl: XdsTypeUrl, name: string): void {
    switch (typeUrl) {
      case XDS_TYPE_URL.address: {
        const old = this.addresses.get(name);
        if (!old) return;
        this.unlink(name, old, undefined);
        this.addresses.delete(name);
        if (old.kind === 'workload') this.ownWorkloads().delete(name);
        return;
      }
      case XDS_TYPE_URL.node:
        this.ownNodes().delete(name);
        return;
      case XDS_TYPE_URL.localWorkload:
        if (this.localWorkloads.delete(name)) this.rederive.add(name);
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
      case XDS_TYPE_URL.trafficShaping:
        if (this.trafficShapings.delete(name)) this.shapingChanged = true;
        return;
    }
  }

  private retrust(): void {
    const td = this.meshConfig?.trustDomain ?? this.defaultTrustDomain;
    if (td === this.trustDomain) return;
    this.trustDomain = td;
    for (const uid of this.workloads.keys()) this.rederive.add(uid);
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

  /** Removes the contributions of `name`'s current resource; `next` (its replacement workload, if any) spares unchanged memberships. */
  private unlink(name: string, old: WorkloadExtra | AcceptedService, next: WorkloadExtra | undefined): void {
    if (old.kind === 'service') {
      this.useNamespace(old.namespace, -1);
      const key = serviceKey(old);
      this.keyClaims.remove(key, old.resourceName);
      this.dirtyKeys.add(key);
      return;
    }
    const w = this.workloads.get(name)!;
    this.useNamespace(w.namespace, -1);
    if (!this.allWorkloadsDirty) this.dirtyWorkloads.add(name);
    for (const ip of workloadAddresses(w)) this.ipClaims.remove(ip, name);
    if (next && next.services === old.services) return;
    for (const [ref, ports] of old.services) {
      if (next && samePorts(next.services.get(ref), ports)) continue;
      const set = this.members.get(ref);
      if (set) {
        set.delete(name);
        if (set.size === 0) this.members.delete(ref);
      }
      this.dirtyRefs.add(ref);
    }
  }

  private link(name: string, a: WorkloadExtra | AcceptedService, previous: WorkloadExtra | undefined): void {
    if (a.kind === 'service') {
      this.useNamespace(a.namespace, 1);
      const key = serviceKey(a);
      this.keyClaims.add(key, a.resourceName);
      this.dirtyKeys.add(key);
      this.dirtyRefs.add(a.resourceName);
      return;
    }
    const w = this.workloads.get(name)!;
    this.useNamespace(w.namespace, 1);
    if (!this.allWorkloadsDirty) this.dirtyWorkloads.add(name);
    for (const ip of workloadAddresses(w)) this.ipClaims.add(ip, name);
    if (previous && previous.services === a.services) return;
    for (const [ref, ports] of a.services) {
      if (previous && samePorts(previous.services.get(ref), ports)) continue;
      let set = this.members.get(ref);
      if (!set) this.members.set(ref, (set = new Set()));
      set.add(name);
      this.dirtyRefs.add(ref);
    }
  }

  private extra(uid: string): WorkloadExtra | undefined {
    const a = this.addresses.get(uid);
    return a?.kind === 'workload' ? a : undefined;
  }

  /** The Workload again, for a new LocalWorkload (netns, bandwidth limits) or mesh trust domain (everything else is unchanged). */
  private derive(uid: string, w: Workload, extra: WorkloadExtra): Workload {
    const local = this.localWorkloads.get(uid);
    const netns = local?.netns || undefined;
    const egressBandwidthBps = local?.egressBandwidthBps;
    const ingressBandwidthBps = local?.ingressBandwidthBps;
    const identity = identityOf(extra.trustDomain || this.trustDomain, w.namespace, w.serviceAccount);
    if (netns === w.netns && identity === w.identity && egressBandwidthBps === w.egressBandwidthBps && ingressBandwidthBps === w.ingressBandwidthBps) return w;
    return { ...w, netns, identity, egressBandwidthBps, ingressBandwidthBps };
  }

  /** Applies every change since the last build and publishes a new snapshot. */
  build(): BuiltSnapshot {
    const warnings: string[] = [];
    const td = this.trustDomain;

    for (const uid of this.rederive) {
      const w = this.workloads.get(uid);
      const extra = this.extra(uid);
      if (!w || !extra) continue;
      const next = this.derive(uid, w, extra);
      if (next !== w) {
        this.ownWorkloads().set(uid, next);
        if (!this.allWorkloadsDirty) this.dirtyWorkloads.add(uid);
      }
    }
    for (const uid of this.allWorkloadsDirty ? this.workloads.keys() : this.dirtyWorkloads) {
      const w = this.workloads.get(uid);
      if (!w) continue;
      workloadAddresses(w).forEach((ip, i) => {
        const owner = this.ipClaims.get(ip);
        if (owner !== undefined && owner !== uid) warnings.push(`Address ${uid}: workload.addresses[${i}]: ${ip} is also the address of ${owner}; lookups by IP find ${owner}`);
      });
      for (const ref of w.authorizationPolicies ?? []) {
        if (!this.authorizations.has(ref)) warnings.push(`Address ${uid}: workload.authorization_policies: no Authorization resource ${quoted(ref)} (yet)`);
      }
    }
    for (const uid of this.dirtyLocal) {
      if (this.localWorkloads.has(uid) && !this.workloads.has(uid)) warnings.push(`LocalWorkload ${uid}: uid: no Address resource with this uid (yet)`);
    }

    let servicesChanged = this.dirtyKeys.size > 0;
    for (const ref of this.dirtyRefs) {
      const s = this.addresses.get(ref);
      if (s?.kind === 'service') this.dirtyKeys.add(serviceKey(s));
      else {
        const set = this.members.get(ref);
        if (set && set.size > 0) {
          const first = [...set].sort(byString)[0]!;
          warnings.push(`Address ${first}: workload.services[${quoted(ref)}]: no Service resource with this name (yet)`);
        }
      }
    }
    for (const key of this.dirtyKeys) {
      const claimants = this.keyClaims.claimants(key);
      if (claimants.length === 0) {
        if (this.services.has(key)) {
          this.ownServices().delete(key);
          servicesChanged = true;
        }
        continue;
      }
      for (const other of claimants.slice(1)) warnings.push(`Address ${other}: service.name: ${key} is also served by another hostname; keeping the first`);
      const s = this.addresses.get(claimants[0]!) as AcceptedService;
      const uids = [...(this.members.get(s.resourceName) ?? [])].sort(byString);
      // The members' port mappings matter only for a service port without its own target port.
      const endpoints: EndpointPorts[] = s.ports.some((p) => p.targetPort === 0) ? uids.map((uid) => ({ uid, services: this.extra(uid)!.services })) : [];
      this.ownServices().set(key, toService(s, endpoints, warnings, uids));
      servicesChanged = true;
    }

    if (this.policiesChanged) {
      this.publishedPolicies = [...this.authorizations].sort(([a], [b]) => byString(a, b)).map(([, a]) => a.policy);
      // Workloads naming a policy that just arrived or left: recheck all references (policies are few, pushes of them rare).
      for (const [uid, w] of this.workloads) {
        if (this.allWorkloadsDirty || this.dirtyWorkloads.has(uid)) continue;
        for (const ref of w.authorizationPolicies ?? []) {
          if (!this.authorizations.has(ref)) warnings.push(`Address ${uid}: workload.authorization_policies: no Authorization resource ${quoted(ref)} (yet)`);
        }
      }
    }
    if (this.namespacesChanged) this.publishedNamespaces = new Map([...this.namespaceUse.keys()].sort(byString).map((ns) => [ns, {}]));
    if (this.trafficPolicies.size === 0) this.publishedTraffic = undefined;
    else if (this.trafficChanged || servicesChanged || this.dirtyWorkloads.size > 0 || (this.allWorkloadsDirty && this.workloads.size > 0)) {
      const xdsServices = [...this.addresses.values()].filter((a): a is AcceptedService => a.kind === 'service');
      const resolved = resolveTrafficPolicies(this.trafficPolicies, xdsServices, this.workloads, this.trafficChanged ? warnings : []);
      this.publishedTraffic = resolved.size > 0 ? resolved : undefined;
    }

    if (this.shapingChanged) {
      const shaping = shapingByWorkload(this.trafficShapings, this.workloads, warnings);
      this.publishedShaping = shaping.size > 0 ? shaping : undefined;
      this.shapingChanged = false;
    }

    this.dirtyWorkloads.clear();
    this.allWorkloadsDirty = false;
    this.rederive.clear();
    this.dirtyKeys.clear();
    this.dirtyRefs.clear();
    this.dirtyLocal.clear();
    this.namespacesChanged = this.policiesChanged = this.trafficChanged = false;

    const snapshot: MeshSnapshot = {
      trustDomain: td,
      ...meshTrustDomainAliases(this.meshConfig),
      nodes: this.nodes,
      workloads: this.workloads,
      services: this.services,
      namespaces: this.publishedNamespaces,
      authorizationPolicies: this.publishedPolicies,
      ...(this.publishedTraffic ? { trafficPolicies: this.publishedTraffic } : {}),
      ...(this.publishedShaping ? { trafficShaping: this.publishedShaping } : {}),
      // The owner rule of StateStore's own index (smallest uid): the store uses this map instead of a second one.
      workloadIpOwners: this.ipClaims.publishOwners(),
    };
    this.published = { workloads: true, services: true, nodes: true };
    return { snapshot, trustAnchors: this.meshConfig?.trustAnchors ?? [], warnings };
  }

  private ownWorkloads(): Map<string, Workload> {
    if (this.published.workloads) {
      this.workloads = new Map(this.workloads);
      this.published.workloads = false;
    }
    return this.workloads;
  }

  private ownServices(): Map<string, Service> {
    if (this.published.services) {
      this.services = new Map(this.services);
      this.published.services = false;
    }
    return this.services;
  }

  private ownNodes(): Map<string, MeshNode> {
    if (this.published.nodes) {
      this.nodes = new Map(this.nodes);
      this.published.nodes = false;
    }
    return this.nodes;
  }
}
