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
  /** Workloads scheduled on the given node. */
  workloadsOnNode(node: string): readonly Workload[];
  /** Services whose selector matches the workload. */
  servicesOf(workload: Workload): readonly Service[];
}

export type StateListener = (next: MeshSnapshot, previous: MeshSnapshot | undefined) => void;

function selectorMatches(selector: Readonly<Record<string, string>>, labels: Readonly<Record<string, string>>): boolean {
  const keys = Object.keys(selector);
  if (keys.length === 0) return false; // Kubernetes: a service without selector has no automatic endpoints
  return keys.every((k) => labels[k] === selector[k]);
}

interface Indexes {
  byIp: Map<string, Workload>;
  byVip: Map<string, Service>;
  endpoints: Map<string, Workload[]>;
  byNode: Map<string, Workload[]>;
  servicesByWorkload: Map<string, Service[]>;
}

function buildIndexes(s: MeshSnapshot): Indexes {
  const byIp = new Map<string, Workload>();
  const byNode = new Map<string, Workload[]>();
  for (const w of s.workloads.values()) {
    byIp.set(w.ip, w);
    let list = byNode.get(w.node);
    if (!list) byNode.set(w.node, (list = []));
    list.push(w);
  }
  const byVip = new Map<string, Service>();
  const endpoints = new Map<string, Workload[]>();
  const servicesByWorkload = new Map<string, Service[]>();
  for (const svc of s.services.values()) {
    for (const vip of svc.vips) byVip.set(vip, svc);
    const eps: Workload[] = [];
    const members = svc.endpointUids
      ? svc.endpointUids.map((uid) => s.workloads.get(uid)).filter((w): w is Workload => w !== undefined)
      : [...s.workloads.values()].filter((w) => w.namespace === svc.namespace && selectorMatches(svc.selector, w.labels));
    for (const w of members) {
      eps.push(w);
      let list = servicesByWorkload.get(w.uid);
      if (!list) servicesByWorkload.set(w.uid, (list = []));
      list.push(svc);
    }
    eps.sort((a, b) => (a.uid < b.uid ? -1 : a.uid > b.uid ? 1 : 0));
    endpoints.set(svc.key, eps);
  }
  return { byIp, byVip, endpoints, byNode, servicesByWorkload };
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

  /** Publishes a complete new snapshot (built off-line by the caller) and notifies listeners. */
  replace(next: MeshSnapshot): void {
    const previous = this.current;
    this.idx = buildIndexes(next);
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
