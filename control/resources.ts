// Encodes a MeshSnapshot into the delta ADS resources of the Issue 3 contract (type URLs, names, packed Anys, versions).
import { createHash } from 'node:crypto';
import { isIPv4 } from 'node:net';
import { ipToKey, ipv4Bytes } from '../agent/native/addr';
import { loadMeshProtos, MESH_XDS_TYPE_URL, MessageCodec, PackedAny } from '../proto';
import type { LocalWorkload, LocalWorkload__Output } from '../proto/generated/smesh/mesh/v1alpha1/LocalWorkload';
import type { MeshConfig, MeshConfig__Output } from '../proto/generated/smesh/mesh/v1alpha1/MeshConfig';
import type { Node, Node__Output } from '../proto/generated/smesh/mesh/v1alpha1/Node';
import type { Address } from '../proto/generated/istio/workload/Address';
import type { PortList } from '../proto/generated/istio/workload/PortList';
import type { MeshSnapshot, Service, Workload } from '../agent/state/types';
import type { Authorization } from '../proto/generated/istio/security/Authorization';
import type { Match } from '../proto/generated/istio/security/Match';
import type { StringMatch } from '../proto/generated/istio/security/StringMatch';
import { ruleNeedsL7, selectorPolicyKeys } from '../agent/policy/evaluate';
import { policyKey, type AuthorizationPolicy, type Cidr, type PolicyMatch, type PolicyRule, type StringMatcher } from '../agent/policy/types';
import { trafficPolicyMessages } from './traffic';
import { declaredAppProtocol } from '../agent/http/protocol';

/** Every type URL the control plane serves on the delta ADS stream. */
export const CONTROL_TYPE_URL = MESH_XDS_TYPE_URL;

/** Types a client may subscribe to; anything else gets an empty set (and a debug log). */
export const SERVED_TYPE_URLS: readonly string[] = Object.values(CONTROL_TYPE_URL);

/** Name of the single MeshConfig resource. */
export const MESH_CONFIG_NAME = 'mesh';
/** Cluster id used in workload uids (ztunnel's convention for the local cluster). */
export const CLUSTER_ID = 'Kubernetes';
/** DNS suffix of service hostnames (the Kubernetes cluster domain, not the trust domain). */
export const CLUSTER_DOMAIN = 'cluster.local';

export interface MeshResourceCodecs {
  node: MessageCodec<Node, Node__Output>;
  localWorkload: MessageCodec<LocalWorkload, LocalWorkload__Output>;
  meshConfig: MessageCodec<MeshConfig, MeshConfig__Output>;
}

let cachedCodecs: MeshResourceCodecs | undefined;

/** Codecs for smesh.mesh.v1alpha1 (proto/index.ts only carries the Istio and traffic ones). */
export function meshResourceCodecs(): MeshResourceCodecs {
  if (!cachedCodecs) {
    const protos = loadMeshProtos();
    cachedCodecs = {
      node: protos.codecFor<Node, Node__Output>('smesh.mesh.v1alpha1.Node'),
      localWorkload: protos.codecFor<LocalWorkload, LocalWorkload__Output>('smesh.mesh.v1alpha1.LocalWorkload'),
      meshConfig: protos.codecFor<MeshConfig, MeshConfig__Output>('smesh.mesh.v1alpha1.MeshConfig'),
    };
  }
  return cachedCodecs;
}

/** One named, versioned resource ready for a DeltaDiscoveryResponse. */
export interface ResourceEntry {
  readonly name: string;
  /** Hex digest of the encoded message: equal bytes ⇔ equal version, across restarts too. */
  readonly version: string;
  readonly resource: PackedAny;
}

/** Resources of one type by name. */
export type TypedResources = ReadonlyMap<string, ResourceEntry>;

/** Wire uid of a workload: `Kubernetes//Pod/<ns>/<name>` (the state uid is `<ns>/<name>`). */
export function workloadXdsUid(w: Pick<Workload, 'namespace' | 'name'>): string {
  return `${CLUSTER_ID}//Pod/${w.namespace}/${w.name}`;
}

export function serviceHostname(s: Pick<Service, 'namespace' | 'name'>): string {
  return `${s.name}.${s.namespace}.svc.${CLUSTER_DOMAIN}`;
}

/** Resource name of a service: `<namespace>/<hostname>`. */
export function serviceXdsName(s: Pick<Service, 'namespace' | 'name'>): string {
  return `${s.namespace}/${serviceHostname(s)}`;
}

/** Raw 4- or 16-byte form of an IP address, as istio.workload carries it. */
export function ipBytes(ip: string, field = 'ip'): Buffer {
  return isIPv4(ip) ? ipv4Bytes(ip, field) : ipToKey(ip, field);
}

function entry(name: string, resource: PackedAny): ResourceEntry {
  const version = createHash('sha256').update(resource.value).digest('hex').slice(0, 16);
  return { name, version, resource };
}

function canonicalRevision(w: Workload): string {
  return w.labels['service.istio.io/canonical-revision'] ?? w.labels['app.kubernetes.io/version'] ?? w.labels['version'] ?? 'latest';
}

function selects(s: Service, w: Workload): boolean {
  const keys = Object.keys(s.selector);
  if (w.namespace !== s.namespace || keys.length === 0) return false;
  return keys.every((k) => w.labels[k] === s.selector[k]);
}

/** Workload state uid → (service resource name → port list), from explicit endpoints or the selector. */
export function serviceMemberships(snapshot: MeshSnapshot): Map<string, Map<string, PortList>> {
  const out = new Map<string, Map<string, PortList>>();
  const services = [...snapshot.services.values()].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  // Index namespace → "label=value" → workloads, so each selector only scans the workloads carrying its first label
  // (a linear scan per service is 10k services × 50k pods = 5·10⁸ label checks at scale).
  const byLabel = new Map<string, Map<string, Workload[]>>();
  for (const w of snapshot.workloads.values()) {
    let ns = byLabel.get(w.namespace);
    if (!ns) byLabel.set(w.namespace, (ns = new Map()));
    for (const [k, v] of Object.entries(w.labels)) {
      const key = `${k}=${v}`;
      const list = ns.get(key);
      if (list) list.push(w);
      else ns.set(key, [w]);
    }
  }
  for (const s of services) {
    const first = Object.keys(s.selector)[0];
    const members = s.endpointUids
      ? s.endpointUids.map((uid) => snapshot.workloads.get(uid)).filter((w): w is Workload => w !== undefined)
      : first === undefined
        ? []
        : (byLabel.get(s.namespace)?.get(`${first}=${s.selector[first]}`) ?? []).filter((w) => selects(s, w));
    const ports: PortList = { ports: s.ports.map((p) => ({ servicePort: p.port, targetPort: p.targetPort })) };
    for (const w of members) {
      if (!w.meshed) continue;
      let m = out.get(w.uid);
      if (!m) out.set(w.uid, (m = new Map()));
      m.set(serviceXdsName(s), ports);
    }
  }
  return out;
}

/** The istio.workload.Address for one (meshed) workload; `policies` = its Workload.authorization_policies. */
export function workloadAddress(w: Workload, trustDomain: string, services: ReadonlyMap<string, PortList> | undefined, policies: readonly string[] = []): Address {
  const servicesObj: Record<string, PortList> = {};
  for (const key of [...(services?.keys() ?? [])].sort()) servicesObj[key] = services!.get(key)!;
  return {
    workload: {
      uid: workloadXdsUid(w),
      name: w.name,
      namespace: w.namespace,
      addresses: [ipBytes(w.ip)],
      tunnelProtocol: 'HBONE',
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

const WIRE_SCOPE = { global: 'GLOBAL', namespace: 'NAMESPACE', workloadSelector: 'WORKLOAD_SELECTOR' } as const;
const WIRE_ACTION = { ALLOW: 'ALLOW', DENY: 'DENY', AUDIT: 'SMESH_AUDIT' } as const;

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
    scope: WIRE_SCOPE[p.scope],
    action: WIRE_ACTION[p.action],
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
        const appProtocol = declaredAppProtocol(p); // absent rather than '' (protobufjs writes a set '' on the wire)
        return appProtocol ? { servicePort: p.port, targetPort: p.targetPort, smeshAppProtocol: appProtocol } : { servicePort: p.port, targetPort: p.targetPort };
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

/** Pure conversion of a snapshot to resource sets; deterministic (same snapshot ⇒ same versions). */
export function buildResourceSets(snapshot: MeshSnapshot, opts: BuildOptions): ResourceSets {
  const protos = loadMeshProtos();
  const codecs = meshResourceCodecs();
  const addresses = new Map<string, ResourceEntry>();
  const memberships = serviceMemberships(snapshot);
  const localByNode = new Map<string, Map<string, ResourceEntry>>();
  const policies = snapshot.authorizationPolicies ?? [];
  for (const w of snapshot.workloads.values()) {
    if (!w.meshed) continue; // opted-out pods are outside the mesh
    const uid = workloadXdsUid(w);
    const selected = w.authorizationPolicies ?? selectorPolicyKeys(policies, w, snapshot.rootNamespace);
    addresses.set(uid, entry(uid, protos.codecs.address.pack(workloadAddress(w, snapshot.trustDomain, memberships.get(w.uid), selected))));
    let local = localByNode.get(w.node);
    if (!local) localByNode.set(w.node, (local = new Map()));
    local.set(uid, entry(uid, codecs.localWorkload.pack({ uid, netns: w.netns ?? '' })));
  }
  for (const s of snapshot.services.values()) {
    const name = serviceXdsName(s);
    addresses.set(name, entry(name, protos.codecs.address.pack(serviceAddress(s))));
  }
  const nodes = new Map<string, ResourceEntry>();
  for (const n of snapshot.nodes.values()) nodes.set(n.name, entry(n.name, codecs.node.pack({ name: n.name, address: n.address })));
  const meshConfig = new Map<string, ResourceEntry>([
    [MESH_CONFIG_NAME, entry(MESH_CONFIG_NAME, codecs.meshConfig.pack({ trustDomain: snapshot.trustDomain, trustAnchors: [...opts.trustAnchors] }))],
  ]);
  const authorizations = new Map<string, ResourceEntry>();
  for (const p of policies) {
    const name = policyKey(p);
    authorizations.set(name, entry(name, protos.codecs.authorization.pack(authorizationResource(p))));
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
    trafficPolicies.set(name, entry(name, protos.codecs.trafficPolicy.pack(msg)));
  }
  const shared = new Map<string, TypedResources>([
    [CONTROL_TYPE_URL.address, addresses],
    [CONTROL_TYPE_URL.node, nodes],
    [CONTROL_TYPE_URL.meshConfig, meshConfig],
    [CONTROL_TYPE_URL.authorization, authorizations],
    [CONTROL_TYPE_URL.trafficPolicy, trafficPolicies],
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
    out.set(CONTROL_TYPE_URL.localWorkload, { added: [...d.added], changed: [...d.changed], removed: [...d.removed] });
  }
  return out;
}
