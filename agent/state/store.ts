// The agent's single-writer state store: one updater publishes immutable snapshots plus indexes; readers only fetch.
import { MeshNode, MeshSnapshot, Service, ServicePort, Workload } from './types';

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
  private readonly owners = new Map<string, V>();
  /** Every claimant by id, only for keys with more than one. */
  private readonly shared = new Map<string, Map<string, V>>();

  constructor(private readonly idOf: (v: V) => string) {}

  get(key: string): V | undefined {
    return this.owners.get(key);
  }

  /** Ids of all claimants of `key`, owner first (empty when none). */
  claimants(key: string): string[] {
    const s = this.shared.get(key);
    if (s) return [...s.keys()].sort(byString);
    const o = this.owners.get(key);
    return o === undefined ? [] : [this.idOf(o)];
  }

  add(key: string, v: V): void {
    const id = this.idOf(v);
    const cur = this.owners.get(key);
    if (cur === undefined || this.idOf(cur) === id) {
      const s = this.shared.get(key);
      if (s) s.set(id, v);
      this.owners.set(key, v);
      return;
    }
    let s = this.shared.get(key);
    if (!s) this.shared.set(key, (s = new Map([[this.idOf(cur), cur]])));
    s.set(id, v);
    if (id < this.idOf(cur)) this.owners.set(key, v);
  }

  remove(key: string, id: string): void {
    const s = this.shared.get(key);
    if (!s) {
      const cur = this.owners.get(key);
      if (cur !== undefined && this.idOf(cur) === id) this.owners.delete(key);
      return;
    }
    s.delete(id);
    let min: [string, V] | undefined;
    for (const e of s) if (!min || e[0] < min[0]) min = e;
    if (s.size <= 1) this.shared.delete(key);
    if (min) this.owners.set(key, min[1]);
    else this.owners.delete(key);
  }
}

interface Indexes {
  byIp: OwnedIndex<Workload>;
  byVip: OwnedIndex<Service>;
  /** Service key → its endpoints sorted by uid (a new array whenever one of them changes). */
  endpoints: Map<string, readonly Workload[]>;
  byNode: Map<string, readonly Workload[]>;
  servicesByWorkload: Map<string, readonly Service[]>;
}

/**
 * `[svc]`, one array per service: most workloads belong to exactly one service, so their servicesOf() lists are
 * shared by all members (10k arrays for 10k services instead of one per workload).
 */
const singles = new WeakMap<Service, readonly Service[]>();
function single(svc: Service): readonly Service[] {
  let a = singles.get(svc);
  if (!a) singles.set(svc, (a = Object.freeze([svc])));
  return a;
}

function endpointsOf(s: MeshSnapshot, svc: Service): Workload[] {
  const members = svc.endpointUids
    ? svc.endpointUids.map((uid) => s.workloads.get(uid)).filter((w): w is Workload => w !== undefined)
    : [...s.workloads.values()].filter((w) => w.namespace === svc.namespace && selectorMatches(svc.selector, w.labels));
  return members.sort(byUid);
}

function buildIndexes(s: MeshSnapshot): Indexes {
  const byIp = new OwnedIndex<Workload>((w) => w.uid);
  const byNode = new Map<string, Workload[]>();
  for (const w of s.workloads.values()) {
    byIp.add(w.ip, w);
    let list = byNode.get(w.node);
    if (!list) byNode.set(w.node, (list = []));
    list.push(w);
  }
  const byVip = new OwnedIndex<Service>((svc) => svc.key);
  const endpoints = new Map<string, Workload[]>();
  const servicesByWorkload = new Map<string, readonly Service[]>();
  for (const svc of s.services.values()) {
    for (const vip of svc.vips) byVip.add(vip, svc);
    const eps = endpointsOf(s, svc);
    // By the uids a service names (present or not), so a workload that appears later finds its services.
    for (const uid of svc.endpointUids ?? eps.map((w) => w.uid)) {
      const list = servicesByWorkload.get(uid);
      if (!list) servicesByWorkload.set(uid, single(svc));
      else if (list.length === 1) servicesByWorkload.set(uid, [list[0]!, svc]); // exact size, not push (~17 slots)
      else (list as Service[]).push(svc);
    }
    endpoints.set(svc.key, eps);
  }
  for (const list of servicesByWorkload.values()) if (list.length > 1) (list as Service[]).sort(byServiceKey);
  return { byIp, byVip, endpoints, byNode, servicesByWorkload };
}

/** Above this share of changed entries a full index rebuild is cheaper than applying the changes. */
const INCREMENTAL_MAX_SHARE = 0.25;

/**
 * Updates `idx` (built for `prev`) to describe `next`, touching only what changed. Entries are compared by
 * identity: a snapshot builder that keeps unchanged Workload/Service objects makes this proportional to the
 * change. Returns false (idx untouched) when the change is too large or not expressible, e.g. selector-based
 * services (their endpoints depend on every workload's labels).
 */
function updateIndexes(idx: Indexes, prev: MeshSnapshot, next: MeshSnapshot): boolean {
  const total = next.workloads.size + next.services.size;
  if (Math.abs(total - prev.workloads.size - prev.services.size) > INCREMENTAL_MAX_SHARE * total) return false; // e.g. the first full push
  const limit = INCREMENTAL_MAX_SHARE * total;
  const changedWorkloads: string[] = [];
  const changedServices: string[] = [];
  for (const [uid, w] of next.workloads) if (prev.workloads.get(uid) !== w && changedWorkloads.push(uid) > limit) return false;
  for (const uid of prev.workloads.keys()) if (!next.workloads.has(uid) && changedWorkloads.push(uid) > limit) return false;
  for (const [key, s] of next.services) if (prev.services.get(key) !== s && changedServices.push(key) + changedWorkloads.length > limit) return false;
  for (const key of prev.services.keys()) if (!next.services.has(key) && changedServices.push(key) + changedWorkloads.length > limit) return false;
  for (const key of changedServices) {
    const o = prev.services.get(key);
    const n = next.services.get(key);
    if ((o && !o.endpointUids) || (n && !n.endpointUids)) return false;
  }
  if (changedWorkloads.length > 0) for (const s of next.services.values()) if (!s.endpointUids) return false;

  // Workloads: IP owners and per-node lists.
  const nodeChanges = new Map<string, { drop: Set<string>; add: Workload[] }>();
  const nodeChange = (node: string) => {
    let c = nodeChanges.get(node);
    if (!c) nodeChanges.set(node, (c = { drop: new Set(), add: [] }));
    return c;
  };
  /** Services whose endpoint arrays must be rebuilt (a member changed). */
  const staleEndpoints = new Set<string>(changedServices);
  for (const uid of changedWorkloads) {
    const o = prev.workloads.get(uid);
    const n = next.workloads.get(uid);
    if (o) {
      idx.byIp.remove(o.ip, uid);
      nodeChange(o.node).drop.add(uid);
    }
    if (n) {
      idx.byIp.add(n.ip, n);
      nodeChange(n.node).add.push(n);
    }
    for (const svc of idx.servicesByWorkload.get(uid) ?? []) staleEndpoints.add(svc.key);
  }
  for (const [node, c] of nodeChanges) {
    const list = (idx.byNode.get(node) ?? []).filter((w) => !c.drop.has(w.uid)).concat(c.add);
    if (list.length > 0) idx.byNode.set(node, list);
    else idx.byNode.delete(node);
  }

  // Services: VIP owners, and each member's service list.
  const memberChanges = new Map<string, { drop: Set<string>; add: Service[] }>();
  const memberChange = (uid: string) => {
    let c = memberChanges.get(uid);
    if (!c) memberChanges.set(uid, (c = { drop: new Set(), add: [] }));
    return c;
  };
  for (const key of changedServices) {
    const o = prev.services.get(key);
    const n = next.services.get(key);
    if (o) {
      for (const vip of o.vips) idx.byVip.remove(vip, key);
      for (const uid of o.endpointUids ?? []) memberChange(uid).drop.add(key);
    }
    if (n) {
      for (const vip of n.vips) idx.byVip.add(vip, n);
      for (const uid of n.endpointUids ?? []) memberChange(uid).add.push(n);
    }
  }
  for (const [uid, c] of memberChanges) {
    const list = (idx.servicesByWorkload.get(uid) ?? []).filter((s) => !c.drop.has(s.key)).concat(c.add);
    if (list.length === 1) idx.servicesByWorkload.set(uid, single(list[0]!));
    else if (list.length > 0) idx.servicesByWorkload.set(uid, list.sort(byServiceKey));
    else idx.servicesByWorkload.delete(uid);
  }
  for (const key of staleEndpoints) {
    const svc = next.services.get(key);
    if (svc) idx.endpoints.set(key, endpointsOf(next, svc));
    else idx.endpoints.delete(key);
  }
  return true;
}

export function emptySnapshot(trustDomain = 'cluster.local'): MeshSnapshot {
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
    return this.idx.byIp.get(ip);
  }

  node(name: string): MeshNode | undefined {
    return this.current.nodes.get(name);
  }

  workloadsOnNode(node: string): readonly Workload[] {
    return this.idx.byNode.get(node) ?? [];
  }

  servicesOf(workload: Workload): readonly Service[] {
    return this.idx.servicesByWorkload.get(workload.uid) ?? [];
  }

  resolve(ip: string, port: number): ResolvedDestination {
    const svc = this.idx.byVip.get(ip);
    if (svc) {
      const sp = svc.ports.find((p) => p.port === port);
      if (!sp) return { kind: 'unknown' };
      return { kind: 'service', service: svc, port: sp, endpoints: this.idx.endpoints.get(svc.key) ?? [] };
    }
    const w = this.idx.byIp.get(ip);
    if (w && w.meshed) return { kind: 'workload', workload: w, port };
    return { kind: 'unknown' };
  }
}
