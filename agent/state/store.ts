// The agent's single-writer state store: one updater publishes immutable snapshots plus indexes; readers only fetch.
import type { MeshNode, MeshSnapshot, Service, ServicePort, Workload } from '../../core/model/types';
import { workloadAddresses } from '../../core/model/addresses';
import { DEFAULT_TRUST_DOMAIN } from '../../core/identity/defaults';

/** What an original destination resolves to; the outbound decision is made from this. */
export type ResolvedDestination =
  | { readonly kind: 'service'; readonly service: Service; readonly port: ServicePort; readonly endpoints: readonly Workload[] }
  | { readonly kind: 'workload'; readonly workload: Workload; readonly port: number }
  | { readonly kind: 'unknown' };

/** Narrow read-only view the data path uses. */
export interface StateView {
  readonly trustDomain: string;
  snapshot(): MeshSnapshot;
  workloadByIp(ip: string): Workload | undefined;
  resolve(ip: string, port: number): ResolvedDestination;
  node(name: string): MeshNode | undefined;
  /** Workloads scheduled on the given node (in no particular order). */
  workloadsOnNode(node: string): readonly Workload[];
  /** Services whose selector matches the workload, sorted by service key. */
  servicesOf(workload: Workload): readonly Service[];
}

export type StateListener = (next: MeshSnapshot, previous: MeshSnapshot | undefined) => void;

function selectorMatches(selector: Readonly<Record<string, string>>, labels: Readonly<Record<string, string>>): boolean {
  const keys = Object.keys(selector);
  if (keys.length === 0) return false; // Kubernetes: a service without selector has no automatic endpoints
  return keys.every((k) => labels[k] === selector[k]);
}

const byString = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);
const byUid = (a: Workload, b: Workload): number => byString(a.uid, b.uid);
const byServiceKey = (a: Service, b: Service): number => byString(a.key, b.key);

/**
 * Key → value where several values may claim one key (two workloads on one IP, two services on one VIP):
 * the claimant with the smallest id owns it, whatever the order of claims and releases.
 */
export class OwnedIndex<V> {
  private owners = new Map<string, V>();
  /** `owners` was handed out by publishOwners(): the next change works on a copy. */
  private ownersPublished = false;
  /** Every claimant by id, only for keys with more than one. */
  private readonly shared = new Map<string, Map<string, V>>();

  constructor(private readonly idOf: (v: V) => string) {}

  get(key: string): V | undefined {
    return this.owners.get(key);
  }

  /** The key → owner map as it is now; it never changes afterwards (later changes copy it first). */
  publishOwners(): ReadonlyMap<string, V> {
    this.ownersPublished = true;
    return this.owners;
  }

  private writableOwners(): Map<string, V> {
    if (this.ownersPublished) {
      this.owners = new Map(this.owners);
      this.ownersPublished = false;
    }
    return this.owners;
  }

  /** Ids of all claimants of `key`, owner first (empty when none). */
  claimants(key: string): string[] {
    const s = this.shared.get(key);
    if (s) return [...s.keys()].sort(byString);
    const o = this.owners.get(key);
    return o === undefined ? [] : [this.idOf(o)];
  }

  add(key: string, v: V): void {
    const cur = this.owners.get(key);
    if (cur === undefined && this.shared.size === 0) {
      this.writableOwners().set(key, v); // the common case: a key nobody claims yet, no shared keys at all
      return;
    }
    const id = this.idOf(v);
    if (cur === undefined || this.idOf(cur) === id) {
      const s = this.shared.get(key);
      if (s) s.set(id, v);
      this.writableOwners().set(key, v);
      return;
    }
    let s = this.shared.get(key);
    if (!s) this.shared.set(key, (s = new Map([[this.idOf(cur), cur]])));
    s.set(id, v);
    if (id < this.idOf(cur)) this.writableOwners().set(key, v);
  }

  remove(key: string, id: string): void {
    const s = this.shared.get(key);
    if (!s) {
      const cur = this.owners.get(key);
      if (cur !== undefined && this.idOf(cur) === id) this.writableOwners().delete(key);
      return;
    }
    s.delete(id);
    let min: [string, V] | undefined;
    for (const e of s) if (!min || e[0] < min[0]) min = e;
    if (s.size <= 1) this.shared.delete(key);
    if (min) this.writableOwners().set(key, min[1]);
    else this.writableOwners().delete(key);
  }
}

interface Indexes {
  /** Absent when the snapshot carries workloadIpOwners (looked up there instead). */
  byIp?: OwnedIndex<Workload>;
  byVip: OwnedIndex<Service>;
  /**
   * Service key → its endpoints sorted by uid, filled on demand (resolve): a full sync builds none of them.
   * An entry is dropped when the service or one of its members changes.
   */
  endpoints: Map<string, readonly Workload[]>;
  /** Built on the first workloadsOnNode() call, then kept up to date. */
  byNode?: Map<string, readonly Workload[]>;
  /**
   * Workload uid → its services (servicesOf), filled on demand: only the node's own workloads are ever asked for
   * (inbound connections), so a full index of 50k workloads would be memory and sync time spent for nothing.
   */
  servicesOf: Map<string, readonly Service[]>;
}

/**
 * `[svc]`, one array per service: most workloads belong to exactly one service, so their servicesOf() lists are
 * shared by all members.
 */
const singles = new WeakMap<Service, readonly Service[]>();
function single(svc: Service): readonly Service[] {
  let a = singles.get(svc);
  if (!a) singles.set(svc, (a = Object.freeze([svc])));
  return a;
}
const NO_SERVICES: readonly Service[] = Object.freeze([]);

function endpointsOf(s: MeshSnapshot, svc: Service): Workload[] {
  const members: Workload[] = [];
  if (svc.endpointUids) {
    for (const uid of svc.endpointUids) {
      const w = s.workloads.get(uid);
      if (w !== undefined) members.push(w);
    }
  } else for (const w of s.workloads.values()) if (w.namespace === svc.namespace && selectorMatches(svc.selector, w.labels)) members.push(w);
  return members.length > 1 ? members.sort(byUid) : members;
}

/** The services naming `uid` as an endpoint (or selecting the workload), sorted by key: one pass over the services. */
function servicesOfUid(s: MeshSnapshot, uid: string): readonly Service[] {
  const w = s.workloads.get(uid);
  let found: Service[] | undefined;
  for (const svc of s.services.values()) {
    const member = svc.endpointUids ? svc.endpointUids.includes(uid) : w !== undefined && w.namespace === svc.namespace && selectorMatches(svc.selector, w.labels);
    if (member) (found ??= []).push(svc);
  }
  if (!found) return NO_SERVICES;
  return found.length === 1 ? single(found[0]!) : found.sort(byServiceKey);
}

function nodeIndex(s: MeshSnapshot): Map<string, Workload[]> {
  const byNode = new Map<string, Workload[]>();
  for (const w of s.workloads.values()) {
    let list = byNode.get(w.node);
    if (!list) byNode.set(w.node, (list = []));
    list.push(w);
  }
  return byNode;
}

function buildIndexes(s: MeshSnapshot): Indexes {
  let byIp: OwnedIndex<Workload> | undefined;
  if (!s.workloadIpOwners) {
    byIp = new OwnedIndex<Workload>((w) => w.uid);
    for (const w of s.workloads.values()) for (const ip of workloadAddresses(w)) byIp.add(ip, w);
  }
  const byVip = new OwnedIndex<Service>((svc) => svc.key);
  for (const svc of s.services.values()) for (const vip of svc.vips) byVip.add(vip, svc);
  return { byIp, byVip, endpoints: new Map(), servicesOf: new Map() };
}

/** Above this share of changed entries a full index rebuild is cheaper than applying the changes. */
const INCREMENTAL_MAX_SHARE = 0.25;

/**
 * Updates `idx` (built for `prev`) to describe `next`, touching only what changed. Entries are compared by
 * identity: a snapshot builder that keeps unchanged Workload/Service objects makes this proportional to the
 * change. Returns false (idx untouched) when the change is too large, e.g. the first full push.
 */
function updateIndexes(idx: Indexes, prev: MeshSnapshot, next: MeshSnapshot): boolean {
  // Switching between an own IP index and the snapshot's: rebuild.
  if ((prev.workloadIpOwners === undefined) !== (next.workloadIpOwners === undefined)) return false;
  const total = next.workloads.size + next.services.size;
  if (Math.abs(total - prev.workloads.size - prev.services.size) > INCREMENTAL_MAX_SHARE * total) return false; // e.g. the first full push
  const limit = INCREMENTAL_MAX_SHARE * total;
  const changedWorkloads: string[] = [];
  const changedServices: string[] = [];
  for (const [uid, w] of next.workloads) if (prev.workloads.get(uid) !== w && changedWorkloads.push(uid) > limit) return false;
  for (const uid of prev.workloads.keys()) if (!next.workloads.has(uid) && changedWorkloads.push(uid) > limit) return false;
  for (const [key, s] of next.services) if (prev.services.get(key) !== s && changedServices.push(key) + changedWorkloads.length > limit) return false;
  for (const key of prev.services.keys()) if (!next.services.has(key) && changedServices.push(key) + changedWorkloads.length > limit) return false;

  // Workloads: IP owners and per-node lists (when built).
  const nodeChanges = new Map<string, { drop: Set<string>; add: Workload[] }>();
  const nodeChange = (node: string) => {
    let c = nodeChanges.get(node);
    if (!c) nodeChanges.set(node, (c = { drop: new Set(), add: [] }));
    return c;
  };
  for (const uid of changedWorkloads) {
    const o = prev.workloads.get(uid);
    const n = next.workloads.get(uid);
    if (o) {
      if (idx.byIp) for (const ip of workloadAddresses(o)) idx.byIp.remove(ip, uid);
      if (idx.byNode) nodeChange(o.node).drop.add(uid);
    }
    if (n) {
      if (idx.byIp) for (const ip of workloadAddresses(n)) idx.byIp.add(ip, n);
      if (idx.byNode) nodeChange(n.node).add.push(n);
    }
    // Its own service list may change with its labels (selector-based services).
    idx.servicesOf.delete(uid);
  }
  if (idx.byNode) {
    for (const [node, c] of nodeChanges) {
      const list = (idx.byNode.get(node) ?? []).filter((w) => !c.drop.has(w.uid)).concat(c.add);
      if (list.length > 0) idx.byNode.set(node, list);
      else idx.byNode.delete(node);
    }
  }
  // Endpoint lists hold Workload objects: a changed member makes its services' lists stale. Without a reverse index
  // (not kept: see servicesOf) the lists are dropped and refilled on demand, a few lookups per resolved service.
  if (changedWorkloads.length > 0) idx.endpoints.clear();

  // Services: VIP owners, and the cached service lists of their members (old and new).
  let selectorChanged = false;
  for (const key of changedServices) {
    const o = prev.services.get(key);
    const n = next.services.get(key);
    if (o) {
      for (const vip of o.vips) idx.byVip.remove(vip, key);
      if (o.endpointUids) for (const uid of o.endpointUids) idx.servicesOf.delete(uid);
      else selectorChanged = true;
    }
    if (n) {
      for (const vip of n.vips) idx.byVip.add(vip, n);
      if (n.endpointUids) for (const uid of n.endpointUids) idx.servicesOf.delete(uid);
      else selectorChanged = true;
    }
    idx.endpoints.delete(key);
  }
  if (selectorChanged) idx.servicesOf.clear();
  return true;
}

export function emptySnapshot(trustDomain = DEFAULT_TRUST_DOMAIN): MeshSnapshot {
  return { trustDomain, nodes: new Map(), workloads: new Map(), services: new Map(), namespaces: new Map() };
}

/** The single writer: only `replace` changes state; listeners run after each publish. */
export class StateStore implements StateView {
  private current: MeshSnapshot;
  private idx: Indexes;
  private readonly listeners: StateListener[] = [];

  constructor(initial: MeshSnapshot = emptySnapshot()) {
    this.current = initial;
    this.idx = buildIndexes(initial);
  }

  get trustDomain(): string {
    return this.current.trustDomain;
  }

  snapshot(): MeshSnapshot {
    return this.current;
  }

  /**
   * Publishes a complete new snapshot (built off-line by the caller) and notifies listeners. Indexes follow
   * the entries that changed (by object identity) when that is a small part of the state, else are rebuilt.
   */
  replace(next: MeshSnapshot): void {
    const previous = this.current;
    if (next !== previous && !updateIndexes(this.idx, previous, next)) this.idx = buildIndexes(next);
    this.current = next;
    for (const l of this.listeners) l(next, previous);
  }

  onChange(listener: StateListener): void {
    this.listeners.push(listener);
  }

  workloadByIp(ip: string): Workload | undefined {
    if (this.idx.byIp) return this.idx.byIp.get(ip);
    const uid = this.current.workloadIpOwners!.get(ip);
    return uid === undefined ? undefined : this.current.workloads.get(uid);
  }

  node(name: string): MeshNode | undefined {
    return this.current.nodes.get(name);
  }

  workloadsOnNode(node: string): readonly Workload[] {
    this.idx.byNode ??= nodeIndex(this.current);
    return this.idx.byNode.get(node) ?? [];
  }

  servicesOf(workload: Workload): readonly Service[] {
    let list = this.idx.servicesOf.get(workload.uid);
    if (list === undefined) this.idx.servicesOf.set(workload.uid, (list = servicesOfUid(this.current, workload.uid)));
    return list;
  }

  resolve(ip: string, port: number): ResolvedDestination {
    const svc = this.idx.byVip.get(ip);
    if (svc) {
      const sp = svc.ports.find((p) => p.port === port);
      if (!sp) return { kind: 'unknown' };
      let endpoints = this.idx.endpoints.get(svc.key);
      if (endpoints === undefined) this.idx.endpoints.set(svc.key, (endpoints = endpointsOf(this.current, svc)));
      return { kind: 'service', service: svc, port: sp, endpoints };
    }
    const w = this.workloadByIp(ip);
    if (w && w.meshed) return { kind: 'workload', workload: w, port };
    return { kind: 'unknown' };
  }
}
