// Encodes a MeshSnapshot into the delta ADS resources (type URLs, names, enum maps and codecs from core/xds/contract.ts): packed Anys with content versions, cached per resource.
import * as crypto from 'node:crypto';
import { createHash } from 'node:crypto';
import { isIPv4 } from 'node:net';
import { ipToKey, ipv4Bytes } from '../core/net/addr';
import type { PackedAny } from '../proto';
import type { Address } from '../proto/generated/istio/workload/Address';
import type { PortList } from '../proto/generated/istio/workload/PortList';
import type { Port } from '../proto/generated/istio/workload/Port';
import type { MeshSnapshot, Service, Workload } from '../core/model/types';
import { workloadAddresses } from '../core/model/addresses';
import type { Authorization } from '../proto/generated/istio/security/Authorization';
import type { Match } from '../proto/generated/istio/security/Match';
import type { StringMatch } from '../proto/generated/istio/security/StringMatch';
import { ruleNeedsL7, selectorPolicyKeys } from '../core/policy/evaluate';
import { policyKey, type AuthorizationPolicy, type Cidr, type PolicyMatch, type PolicyRule, type StringMatcher } from '../core/policy/types';
import { trafficPolicyMessages } from './traffic-encode';
import { trafficShapingMessages } from './shaping-encode';
import { declaredAppProtocol, istioAppProtocol } from '../core/model/protocol';
import { CLUSTER_ID, MESH_CONFIG_NAME, POLICY_ACTION, POLICY_SCOPE, serviceHostname, serviceXdsName, workloadXdsUid, XDS_TYPE_URL, xdsCodecs } from '../core/xds/contract';

/** One named, versioned resource ready for a DeltaDiscoveryResponse. */
export interface ResourceEntry {
  readonly name: string;
  /** Hex digest of the encoded message: equal bytes ⇔ equal version, across restarts too. */
  readonly version: string;
  readonly resource: PackedAny;
}

/** Resources of one type by name. */
export type TypedResources = ReadonlyMap<string, ResourceEntry>;

/** Raw 4- or 16-byte form of an IP address, as istio.workload carries it. */
export function ipBytes(ip: string, field = 'ip'): Buffer {
  return isIPv4(ip) ? ipv4Bytes(ip, field) : ipToKey(ip, field);
}

/** One-shot crypto.hash (Node ≥ 20.12; not in @types/node 20): 2-3× faster than a Hash object per resource. */
const oneShotHash = (crypto as unknown as { hash?: (algorithm: string, data: Uint8Array, encoding: 'hex') => string }).hash;

function sha256Hex(data: Uint8Array): string {
  return oneShotHash ? oneShotHash('sha256', data, 'hex') : createHash('sha256').update(data).digest('hex');
}

function entry(name: string, resource: PackedAny): ResourceEntry {
  const version = sha256Hex(resource.value).slice(0, 16);
  return { name, version, resource };
}

function canonicalRevision(w: Workload): string {
  return w.labels['service.istio.io/canonical-revision'] ?? w.labels['app.kubernetes.io/version'] ?? w.labels['version'] ?? 'latest';
}

/** Istio's label on a pod with an injected sidecar (istiod: model.TLSModeLabelName / MutualTLSModeLabel). */
export const ISTIO_TLS_MODE_LABEL = 'security.istio.io/tlsMode';

/**
 * Workload.tunnel_protocol as istiod derives it: HBONE for a pod in the HBONE mesh (smesh-enrolled: meshed), else
 * LEGACY_ISTIO_MTLS for a pod with an Istio sidecar (label security.istio.io/tlsMode=istio, or a source that says so);
 * undefined for any other pod, which is not sent at all (outside the mesh).
 */
export function workloadTunnelProtocol(w: Workload): 'HBONE' | 'LEGACY_ISTIO_MTLS' | undefined {
  if (w.meshed) return 'HBONE';
  if (w.tunnel === 'legacy_istio_mtls' || w.labels[ISTIO_TLS_MODE_LABEL] === 'istio') return 'LEGACY_ISTIO_MTLS';
  return undefined;
}

/** Length-prefixed: a concatenation of these is unambiguous whatever the strings contain. */
function lp(s: string): string {
  return `${s.length}:${s}`;
}

/** What belonging to one service contributes to a member workload's Address. */
interface Membership {
  /** The service's resource name (the key of Workload.services). */
  readonly name: string;
  readonly ports: PortList;
  /** Name and ports, unambiguously: part of the member's cache key. */
  readonly key: string;
}

/**
 * For each workload of `snapshot.workloads`, by its position in iteration order: the services it is a member of
 * (workloads sent at all: meshed or sidecar, see workloadTunnelProtocol), from explicit endpoints or the selector. Positions, not uids: arrays instead of
 * 50k-entry string maps on every rebuild.
 */
function membershipsByWorkload(snapshot: MeshSnapshot): Array<Membership[] | undefined> {
  const all = [...snapshot.workloads.values()];
  const out = new Array<Membership[] | undefined>(all.length);
  const services = [...snapshot.services.values()].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  // Index namespace → label → value → workload positions, for the labels some selector starts with, so each selector
  // only scans the workloads carrying its first label (a linear scan per service is 10k services × 50k pods = 5·10⁸
  // label checks at scale). Nested maps keyed by the snapshot's own strings: no string is built per workload.
  const firstKeys = new Set<string>();
  let explicit = false;
  for (const s of services) {
    if (s.endpointUids) {
      explicit = true;
      continue;
    }
    for (const k in s.selector) {
      firstKeys.add(k);
      break;
    }
  }
  const index = new Map<string, Map<string, Map<string, number[]>>>();
  if (firstKeys.size > 0) {
    for (let i = 0; i < all.length; i++) {
      const w = all[i]!;
      if (!workloadTunnelProtocol(w)) continue;
      let byKey: Map<string, Map<string, number[]>> | undefined;
      for (const k of firstKeys) {
        if (!Object.prototype.hasOwnProperty.call(w.labels, k)) continue;
        const v = w.labels[k]!;
        if (!byKey) {
          byKey = index.get(w.namespace);
          if (!byKey) index.set(w.namespace, (byKey = new Map()));
        }
        let byValue = byKey.get(k);
        if (!byValue) byKey.set(k, (byValue = new Map()));
        const list = byValue.get(v);
        if (list) list.push(i);
        else byValue.set(v, [i]);
      }
    }
  }
  let positionOf: Map<Workload, number> | undefined;
  if (explicit) {
    positionOf = new Map();
    for (let i = 0; i < all.length; i++) positionOf.set(all[i]!, i);
  }
  for (const s of services) {
    let members: readonly number[];
    if (s.endpointUids) {
      members = [];
      for (const uid of s.endpointUids) {
        const w = snapshot.workloads.get(uid);
        if (w && workloadTunnelProtocol(w)) (members as number[]).push(positionOf!.get(w)!);
      }
    } else {
      const keys = Object.keys(s.selector);
      const first = keys[0];
      const candidates = first === undefined ? undefined : index.get(s.namespace)?.get(first)?.get(s.selector[first]!);
      members = !candidates ? [] : keys.length === 1 ? candidates : candidates.filter((i) => keys.every((k) => all[i]!.labels[k] === s.selector[k]));
    }
    if (members.length === 0) continue;
    const name = serviceXdsName(s);
    const ports: PortList = { ports: s.ports.map((p) => ({ servicePort: p.port, targetPort: p.targetPort })) };
    let key = lp(name);
    for (const p of s.ports) key += `${p.port}>${p.targetPort},`;
    const m: Membership = { name, ports, key };
    for (const i of members) {
      const list = out[i];
      if (!list) out[i] = [m];
      else if (!list.some((x) => x.name === name)) list.push(m); // an endpoint listed twice is one membership
    }
  }
  return out;
}

function membershipMap(members: readonly Membership[] | undefined): Map<string, PortList> | undefined {
  return members && new Map(members.map((m) => [m.name, m.ports]));
}

/** Workload state uid → (service resource name → port list), from explicit endpoints or the selector. */
export function serviceMemberships(snapshot: MeshSnapshot): Map<string, Map<string, PortList>> {
  const out = new Map<string, Map<string, PortList>>();
  const byPosition = membershipsByWorkload(snapshot);
  let i = 0;
  for (const w of snapshot.workloads.values()) {
    const members = byPosition[i++];
    if (members) out.set(w.uid, membershipMap(members)!);
  }
  return out;
}

/** The istio.workload.Address for one workload sent (meshed or sidecar); `policies` = its Workload.authorization_policies. */
export function workloadAddress(w: Workload, trustDomain: string, services: ReadonlyMap<string, PortList> | undefined, policies: readonly string[] = []): Address {
  const servicesObj: Record<string, PortList> = {};
  for (const key of [...(services?.keys() ?? [])].sort()) servicesObj[key] = services!.get(key)!;
  return {
    workload: {
      uid: workloadXdsUid(w),
      name: w.name,
      namespace: w.namespace,
      addresses: workloadAddresses(w).map((ip) => ipBytes(ip)),
      tunnelProtocol: workloadTunnelProtocol(w) ?? 'NONE',
      trustDomain,
      serviceAccount: w.serviceAccount,
      node: w.node,
      canonicalName: w.workloadName,
      canonicalRevision: canonicalRevision(w),
      workloadType: 'POD',
      workloadName: w.name,
      services: servicesObj,
      status: 'HEALTHY',
      clusterId: CLUSTER_ID,
      authorizationPolicies: [...policies],
    },
  };
}

function stringMatchToWire(m: StringMatcher): StringMatch {
  switch (m.kind) {
    case 'exact':
      return { exact: m.value };
    case 'prefix':
      return { prefix: m.value };
    case 'suffix':
      return { suffix: m.value };
    case 'presence':
      return { presence: {} };
  }
}

function cidrToWire(c: Cidr): { address: Buffer; length: number } {
  return { address: ipBytes(c.address, 'cidr'), length: c.prefixLength };
}

/** The L4 fields istiod defines plus the L7 attributes in the smesh_* extension fields (proto/istio/security/authorization.proto). */
function matchToWire(m: PolicyMatch): Match {
  const sm = (l: readonly StringMatcher[] | undefined) => (l ?? []).map(stringMatchToWire);
  const cm = (l: readonly Cidr[] | undefined) => (l ?? []).map(cidrToWire);
  return {
    smeshMethods: sm(m.methods),
    smeshNotMethods: sm(m.notMethods),
    smeshPaths: sm(m.paths),
    smeshNotPaths: sm(m.notPaths),
    smeshHosts: sm(m.hosts),
    smeshNotHosts: sm(m.notHosts),
    smeshHeaders: (m.headers ?? []).map((h) => ({ name: h.name, values: sm(h.values), notValues: sm(h.notValues) })),
    smeshRemoteIps: cm(m.remoteIps),
    smeshNotRemoteIps: cm(m.notRemoteIps),
    smeshRequestPrincipals: sm(m.requestPrincipals),
    smeshNotRequestPrincipals: sm(m.notRequestPrincipals),
    namespaces: sm(m.namespaces),
    notNamespaces: sm(m.notNamespaces),
    principals: sm(m.principals),
    notPrincipals: sm(m.notPrincipals),
    sourceIps: cm(m.sourceIps),
    notSourceIps: cm(m.notSourceIps),
    destinationIps: cm(m.destinationIps),
    notDestinationIps: cm(m.notDestinationIps),
    destinationPorts: [...(m.destinationPorts ?? [])],
    notDestinationPorts: [...(m.notDestinationPorts ?? [])],
  };
}

function groupToWire(r: PolicyRule): { rules: Array<{ matches: Match[] }> } {
  return { rules: r.clauses.map((c) => ({ matches: c.matches.map(matchToWire) })) };
}

/**
 * The istio.security.Authorization for one policy. The fields istiod defines carry what istiod
 * builds for ztunnel, the L4 projection (ALLOW rules needing L7 attributes dropped, DENY/AUDIT
 * rules stripped of them), each rule a Group whose Rules are its from / to / when clauses. The
 * smesh L7 extension carries the rest: the dropped ALLOW rules whole in smesh_l7_groups, L7
 * attributes in the Match smesh_* fields (see authorization.proto). AUDIT is SMESH_AUDIT.
 */
export function authorizationResource(p: AuthorizationPolicy): Authorization {
  const allow = p.action === 'ALLOW';
  return {
    name: p.name,
    namespace: p.namespace,
    scope: POLICY_SCOPE.toWire[p.scope],
    action: POLICY_ACTION.toWire[p.action],
    groups: p.rules.filter((r) => !allow || !ruleNeedsL7(r)).map(groupToWire),
    smeshL7Groups: allow ? p.rules.filter(ruleNeedsL7).map(groupToWire) : [],
  };
}

/** The istio.workload.Address for one service. */
export function serviceAddress(s: Service): Address {
  return {
    service: {
      name: s.name,
      namespace: s.namespace,
      hostname: serviceHostname(s),
      addresses: s.vips.map((ip) => ({ network: '', address: ipBytes(ip) })),
      ports: s.ports.map((p) => {
        // Both absent rather than UNKNOWN / '' (protobufjs writes a set default on the wire). smesh_app_protocol
        // still goes out where app_protocol is set too: agents that predate app_protocol read only it.
        const port: Port = { servicePort: p.port, targetPort: p.targetPort };
        const istio = istioAppProtocol(p);
        if (istio !== 'UNKNOWN') port.appProtocol = istio;
        const smesh = declaredAppProtocol(p);
        if (smesh) port.smeshAppProtocol = smesh;
        return port;
      }),
    },
  };
}

/** Everything the control plane serves for one snapshot: shared types plus LocalWorkloads per node. */
export interface ResourceSets {
  readonly shared: ReadonlyMap<string, TypedResources>;
  /** node name → LocalWorkload resources for that node only. */
  readonly localByNode: ReadonlyMap<string, TypedResources>;
}

export interface BuildOptions {
  /** PEM roots to publish in MeshConfig.trust_anchors. */
  readonly trustAnchors: readonly string[];
}

/** A workload's two entries and every input of workloadAddress() they were encoded from. */
interface CachedWorkload {
  ns: string;
  name: string;
  /** Every address, comma-joined. */
  ip: string;
  td: string;
  sa: string;
  node: string;
  /** workloadName, canonical revision (from the labels), memberships (names and ports), policy keys. */
  wn: string;
  rev: string;
  svc: string;
  pol: string;
  /** workloadTunnelProtocol. */
  tun: string;
  address: ResourceEntry;
  netns: string;
  /** Bandwidth limits (bits/s, 0: none) the LocalWorkload was encoded with, `egress/ingress`. */
  bw: string;
  local: ResourceEntry;
  used: number;
}

interface CachedEntry {
  key: string;
  entry: ResourceEntry;
  /** The (immutable) object the key was computed from, when the caller passed one: the same object ⇒ the same key. */
  input?: object;
  /** Build that last used it; entries no build used in the latest round are dropped. */
  used: number;
}

/**
 * Encoded entries of earlier builds, each with the key of the inputs that determined its bytes, so a rebuild
 * re-encodes and re-hashes only resources whose inputs changed. A key covers every input the encoder reads (see
 * the `*Key` functions next to the encoders): equal key ⇒ equal message ⇒ equal bytes and version. Owned by one
 * Registry; after each build it holds exactly the entries that build produced.
 */
export class ResourceEntryCache {
  private readonly slots = new Map<string, Map<string, CachedEntry>>();
  /** By workload state uid: its Address and LocalWorkload with the inputs they were encoded from. */
  private readonly workloads = new Map<string, CachedWorkload>();
  private build = 0;
  /** Entries the last build encoded (the rest were reused): for tests and logs. */
  encoded = 0;

  /** The slot (one per resource kind) for `name`s; use its `get` during one build. */
  slot(kind: string): Map<string, CachedEntry> {
    let m = this.slots.get(kind);
    if (!m) this.slots.set(kind, (m = new Map()));
    return m;
  }

  /** The entry for `name`: reused when `key` equals the cached one, else made by `make` (and cached). */
  get(slot: Map<string, CachedEntry>, name: string, key: string, make: () => PackedAny): ResourceEntry {
    const c = slot.get(name);
    if (c && c.key === key) {
      c.used = this.build;
      return c.entry;
    }
    const e = entry(name, make());
    this.encoded++;
    if (c) {
      c.key = key;
      c.entry = e;
      c.used = this.build;
      c.input = undefined;
    } else slot.set(name, { key, entry: e, used: this.build });
    return e;
  }

  /**
   * `get` for an entry made from one immutable `input` object: when the cached entry was made from this very
   * object (sources hand unchanged objects back, see buildSnapshot), the key is not even computed.
   */
  getFor(slot: Map<string, CachedEntry>, name: string, input: object, keyOf: () => string, make: () => PackedAny): ResourceEntry {
    const c = slot.get(name);
    if (c && c.input === input) {
      c.used = this.build;
      return c.entry;
    }
    const e = this.get(slot, name, keyOf(), make);
    slot.get(name)!.input = input;
    return e;
  }

  /**
   * A workload's Address and LocalWorkload entries, each re-encoded only when one of its inputs differs from the
   * cached one. Inputs are compared one by one (mostly the same string objects build after build: cheap).
   */
  workload(w: Workload, trustDomain: string, members: readonly Membership[] | undefined, policies: readonly string[]): CachedWorkload {
    let svc = '';
    if (members) {
      if (members.length === 1) svc = members[0]!.key;
      else for (const m of [...members].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) svc += m.key + ';';
    }
    let pol = '';
    for (const p of policies) pol += lp(p);
    const rev = canonicalRevision(w);
    const netns = w.netns ?? '';
    const egress = w.egressBandwidthBps ?? 0;
    const ingress = w.ingressBandwidthBps ?? 0;
    const bw = egress === 0 && ingress === 0 ? '' : `${egress}/${ingress}`;
    const tun = workloadTunnelProtocol(w) ?? '';
    const ipsKey = workloadAddresses(w).join(',');
    let c = this.workloads.get(w.uid);
    const sameName = c !== undefined && c.ns === w.namespace && c.name === w.name;
    if (
      !c ||
      !sameName ||
      c.ip !== ipsKey ||
      c.td !== trustDomain ||
      c.sa !== w.serviceAccount ||
      c.node !== w.node ||
      c.wn !== w.workloadName ||
      c.rev !== rev ||
      c.svc !== svc ||
      c.pol !== pol ||
      c.tun !== tun
    ) {
      const uid = sameName ? c!.address.name : workloadXdsUid(w);
      const address = entry(uid, xdsCodecs().address.pack(workloadAddress(w, trustDomain, membershipMap(members), policies)));
      this.encoded++;
      const local = sameName && c!.netns === netns && c!.bw === bw ? c!.local : this.encodeLocal(uid, netns, egress, ingress);
      c = { ns: w.namespace, name: w.name, ip: ipsKey, td: trustDomain, sa: w.serviceAccount, node: w.node, wn: w.workloadName, rev, svc, pol, tun, address, netns, bw, local, used: this.build };
      this.workloads.set(w.uid, c);
    } else {
      if (c.netns !== netns || c.bw !== bw) {
        c.netns = netns;
        c.bw = bw;
        c.local = this.encodeLocal(c.address.name, netns, egress, ingress);
      }
      c.used = this.build;
    }
    return c;
  }

  private encodeLocal(uid: string, netns: string, egressBandwidthBps: number, ingressBandwidthBps: number): ResourceEntry {
    this.encoded++;
    // Zero (no limit) is left out: protobufjs would write an explicit 0, and a pod without limits keeps its bytes and version.
    return entry(uid, xdsCodecs().localWorkload.pack({ uid, netns, ...(egressBandwidthBps ? { egressBandwidthBps } : {}), ...(ingressBandwidthBps ? { ingressBandwidthBps } : {}) }));
  }

  begin(): void {
    this.build++;
    this.encoded = 0;
  }

  /**
   * Drops the entries the build that just ended did not use. (A build that threw skips this: whatever it cached
   * is still correct for its key, and the next completed build prunes.)
   */
  end(): void {
    for (const m of this.slots.values()) for (const [name, c] of m) if (c.used !== this.build) m.delete(name);
    for (const [uid, c] of this.workloads) if (c.used !== this.build) this.workloads.delete(uid);
  }

  /** Cached entries (all kinds): for tests. */
  get size(): number {
    let n = 0;
    for (const m of this.slots.values()) n += m.size;
    n += 2 * this.workloads.size;
    return n;
  }
}

function serviceAddressKey(s: Service): string {
  return JSON.stringify([s.namespace, s.name, s.vips, s.ports.map((p) => [p.port, p.targetPort, istioAppProtocol(p), declaredAppProtocol(p) ?? null])]);
}

/**
 * Pure conversion of a snapshot to resource sets; deterministic (same snapshot ⇒ same versions). With `cache`,
 * entries whose inputs are unchanged since the previous build with that cache are reused (same bytes, no re-encoding).
 */
export function buildResourceSets(snapshot: MeshSnapshot, opts: BuildOptions, cache: ResourceEntryCache = new ResourceEntryCache(), prev?: ResourceSets): ResourceSets {
  cache.begin();
  const sets = buildWith(snapshot, opts, cache, prev);
  cache.end();
  return sets;
}

/** Names and entries of one type in build order (arrays first: a Map is made only when the content changed). */
class EntryList {
  readonly names: string[] = [];
  readonly entries: ResourceEntry[] = [];

  push(e: ResourceEntry): void {
    this.names.push(e.name);
    this.entries.push(e);
  }

  /**
   * The map of these entries; `prev` itself when it holds exactly the same entries in the same order (maps are
   * never changed once built, so an unchanged type or node keeps its map and the diff skips it).
   */
  toMap(prev: TypedResources | undefined): TypedResources {
    const n = this.names.length;
    if (prev && prev.size === n) {
      let i = 0;
      let same = true;
      for (const [name, e] of prev) {
        if (this.entries[i] !== e || this.names[i] !== name) {
          same = false;
          break;
        }
        i++;
      }
      if (same) return prev;
    }
    const m = new Map<string, ResourceEntry>();
    for (let i = 0; i < n; i++) m.set(this.names[i]!, this.entries[i]!);
    return m;
  }
}

function buildWith(snapshot: MeshSnapshot, opts: BuildOptions, cache: ResourceEntryCache, prev: ResourceSets | undefined): ResourceSets {
  const codecs = xdsCodecs();
  const addresses = new Map<string, ResourceEntry>();
  const memberships = membershipsByWorkload(snapshot);
  const localLists = new Map<string, EntryList>();
  const policies = snapshot.authorizationPolicies ?? [];
  const td = snapshot.trustDomain;
  const [slotA, slotN, slotM, slotZ, slotT, slotS] = ['address', 'node', 'mesh', 'authz', 'traffic', 'shaping'].map((k) => cache.slot(k));
  let lastNode: string | undefined;
  let local: EntryList | undefined;
  let position = -1;
  for (const w of snapshot.workloads.values()) {
    position++;
    const tunnel = workloadTunnelProtocol(w);
    if (!tunnel) continue; // opted-out pods without a sidecar are outside the mesh
    const selected = w.authorizationPolicies ?? (policies.length === 0 ? [] : selectorPolicyKeys(policies, w, snapshot.rootNamespace));
    const c = cache.workload(w, td, memberships[position], selected);
    addresses.set(c.address.name, c.address);
    if (tunnel !== 'HBONE') continue; // a sidecar pod is reached, never enrolled: no LocalWorkload for its node
    if (w.node !== lastNode) {
      lastNode = w.node;
      local = localLists.get(w.node);
      if (!local) localLists.set(w.node, (local = new EntryList()));
    }
    local!.push(c.local);
  }
  const localByNode = new Map<string, TypedResources>();
  for (const [node, list] of localLists) localByNode.set(node, list.toMap(prev?.localByNode.get(node)));
  for (const s of snapshot.services.values()) {
    const name = serviceXdsName(s);
    addresses.set(
      name,
      cache.getFor(
        slotA,
        name,
        s,
        () => serviceAddressKey(s),
        () => codecs.address.pack(serviceAddress(s)),
      ),
    );
  }
  const nodes = new EntryList();
  for (const n of snapshot.nodes.values()) nodes.push(cache.get(slotN, n.name, n.address, () => codecs.node.pack({ name: n.name, address: n.address })));
  const anchors = [...opts.trustAnchors];
  const meshConfig = new EntryList();
  const aliases = [...(snapshot.trustDomainAliases ?? [])];
  meshConfig.push(cache.get(slotM, MESH_CONFIG_NAME, JSON.stringify([td, anchors, aliases]), () => codecs.meshConfig.pack({ trustDomain: td, trustAnchors: anchors, trustDomainAliases: aliases })));
  const authorizations = new Map<string, ResourceEntry>();
  for (const p of policies) {
    const name = policyKey(p);
    // The policy model is plain data (no Maps, no functions): its JSON is every input of authorizationResource().
    authorizations.set(
      name,
      cache.get(slotZ, name, JSON.stringify(p), () => codecs.authorization.pack(authorizationResource(p))),
    );
  }
  // One TrafficPolicy per service with a DestinationRule or VirtualService, sent to every node.
  const trafficPolicies = new Map<string, ResourceEntry>();
  const naming = {
    serviceName: (key: string) => {
      const s = snapshot.services.get(key);
      return s ? serviceXdsName(s) : key;
    },
    workloadUid: (uid: string) => {
      const w = snapshot.workloads.get(uid);
      return w ? workloadXdsUid(w) : uid;
    },
  };
  for (const [name, msg] of trafficPolicyMessages(snapshot, naming)) {
    // The message holds no bytes fields: its JSON is the whole input of the encoding.
    trafficPolicies.set(
      name,
      cache.get(slotT, name, JSON.stringify(msg), () => codecs.trafficPolicy.pack(msg)),
    );
  }
  // One TrafficShaping per workload that a TrafficShaping resource selects, sent to every node (inbound and outbound rules).
  const trafficShaping = new Map<string, ResourceEntry>();
  for (const [name, msg] of trafficShapingMessages(snapshot, naming)) {
    trafficShaping.set(
      name,
      cache.get(slotS, name, JSON.stringify(msg), () => codecs.trafficShaping.pack(msg)),
    );
  }
  const shared = new Map<string, TypedResources>([
    [XDS_TYPE_URL.address, addresses],
    [XDS_TYPE_URL.node, nodes.toMap(prev?.shared.get(XDS_TYPE_URL.node))],
    [XDS_TYPE_URL.meshConfig, meshConfig.toMap(prev?.shared.get(XDS_TYPE_URL.meshConfig))],
    [XDS_TYPE_URL.authorization, authorizations],
    [XDS_TYPE_URL.trafficPolicy, trafficPolicies],
    [XDS_TYPE_URL.trafficShaping, trafficShaping],
  ]);
  return { shared, localByNode };
}

/** Names that differ between two resource sets, per type. */
export interface TypeDiff {
  readonly added: readonly string[];
  readonly changed: readonly string[];
  readonly removed: readonly string[];
}
export type ResourceDiff = ReadonlyMap<string, TypeDiff>;

function diffTyped(a: TypedResources | undefined, b: TypedResources | undefined, into: { added: Set<string>; changed: Set<string>; removed: Set<string> }): void {
  if (a === b) return; // a map reused from the previous build (see EntryList.toMap)
  const empty = new Map<string, ResourceEntry>();
  const before = a ?? empty;
  const after = b ?? empty;
  for (const [name, e] of after) {
    const old = before.get(name);
    if (!old) into.added.add(name);
    else if (old.version !== e.version) into.changed.add(name);
  }
  for (const name of before.keys()) if (!after.has(name)) into.removed.add(name);
}

/**
 * Per type, which names were added, changed or removed. For LocalWorkload the comparison is per
 * node, and a name counts once: a workload moving nodes is "changed" (removed for one node, added
 * for another); each stream then resolves the name against its own node.
 */
export function diffResourceSets(prev: ResourceSets | undefined, next: ResourceSets): ResourceDiff {
  const out = new Map<string, TypeDiff>();
  const types = new Set<string>([...(prev?.shared.keys() ?? []), ...next.shared.keys()]);
  for (const t of types) {
    const d = { added: new Set<string>(), changed: new Set<string>(), removed: new Set<string>() };
    diffTyped(prev?.shared.get(t), next.shared.get(t), d);
    if (d.added.size + d.changed.size + d.removed.size > 0) out.set(t, { added: [...d.added], changed: [...d.changed], removed: [...d.removed] });
  }
  const d = { added: new Set<string>(), changed: new Set<string>(), removed: new Set<string>() };
  const nodes = new Set<string>([...(prev?.localByNode.keys() ?? []), ...next.localByNode.keys()]);
  for (const n of nodes) diffTyped(prev?.localByNode.get(n), next.localByNode.get(n), d);
  // A name both removed (old node) and added (new node) moved: report it as changed.
  for (const name of [...d.added]) {
    if (d.removed.has(name)) {
      d.added.delete(name);
      d.removed.delete(name);
      d.changed.add(name);
    }
  }
  for (const name of d.changed) {
    d.added.delete(name);
    d.removed.delete(name);
  }
  if (d.added.size + d.changed.size + d.removed.size > 0) {
    out.set(XDS_TYPE_URL.localWorkload, { added: [...d.added], changed: [...d.changed], removed: [...d.removed] });
  }
  return out;
}
