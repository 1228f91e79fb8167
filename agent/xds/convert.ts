// Pure xDS → mesh state conversion: decodes and validates one delta ADS resource at a time, then builds a MeshSnapshot from all accepted ones.
import { X509Certificate } from 'node:crypto';
import { isIP } from 'node:net';
import type { Authorization__Output } from '../../proto/generated/istio/security/Authorization';
import { ipv4Text, keyToIp } from '../../core/net/addr';
import { workloadAddresses } from '../../core/model/addresses';
import type { MeshNode, MeshSnapshot, Service, ServicePort, ServiceTrafficPolicy, Workload, WorkloadShaping, WorkloadTunnel } from '../../core/model/types';
import type { TrafficPolicy__Output } from '../../proto/generated/smesh/traffic/v1alpha1/TrafficPolicy';
import type { TrafficShaping__Output } from '../../proto/generated/smesh/traffic/v1alpha1/TrafficShaping';
import { parseTrafficShaping } from './shaping-decode';
import { parseTrafficPolicy, serviceKeyFromRef } from './traffic-decode';
import { APP_PROTOCOL_OF_ISTIO, type IstioAppProtocol } from '../../core/model/protocol';
import { decodeAddressOf, forgetRepeatedStrings, type AnyMessage, type WireAddress, type WirePort, type WireService, type WireWorkload } from './wire';
import type { StringMatch__Output } from '../../proto/generated/istio/security/StringMatch';
import type { Match__Output } from '../../proto/generated/istio/security/Match';
import type { Address__Output as CidrAddress__Output } from '../../proto/generated/istio/security/Address';
import type { LocalWorkload__Output } from '../../proto/generated/smesh/mesh/v1alpha1/LocalWorkload';
import type { MeshConfig__Output } from '../../proto/generated/smesh/mesh/v1alpha1/MeshConfig';
import type { Node__Output } from '../../proto/generated/smesh/mesh/v1alpha1/Node';
import { MESH_CONFIG_NAME, POLICY_ACTION, POLICY_SCOPE, WORKLOAD_TUNNEL, XDS_TYPE_URL, xdsCodecs } from '../../core/xds/contract';
import { DEFAULT_TRUST_DOMAIN } from '../../core/identity/defaults';
import { SPIFFE_SEGMENT_RE, TRUST_DOMAIN_RE } from '../../core/identity/spiffe';
import { CONVERTED_PEER_AUTHENTICATION_PREFIX, isConvertedPeerAuthentication, type AuthorizationPolicy, type Cidr, type PolicyMatch, type StringMatcher } from '../../core/policy/types';

// ---- validated resources: the stage between "decoded bytes" and "mesh state" ----

/** A Workload that passed validation; `ips` are text form, first one is the workload's address. */
export interface AcceptedWorkload {
  readonly kind: 'workload';
  readonly uid: string;
  readonly name: string;
  readonly namespace: string;
  readonly ips: readonly string[];
  /** Empty: the mesh trust domain applies. */
  readonly trustDomain: string;
  readonly serviceAccount: string;
  readonly node: string;
  readonly workloadName: string;
  readonly canonicalRevision: string;
  /** tunnel_protocol HBONE: the workload is in the HBONE mesh (`meshed` in state). */
  readonly hbone: boolean;
  /** tunnel_protocol as the state names it; absent: `hbone` when `hbone`, else `none`. */
  readonly tunnel?: WorkloadTunnel;
  /** Service resource name (`<ns>/<hostname>`) → port mapping this workload serves. */
  readonly services: ReadonlyMap<string, readonly PortMapping[]>;
  /** `<ns>/<name>` of the WORKLOAD_SELECTOR Authorizations selecting it. */
  readonly authorizationPolicies: readonly string[];
}

export interface PortMapping {
  readonly servicePort: number;
  /** 0: same as the service port. */
  readonly targetPort: number;
  /** effectiveAppProtocol(): Istio's app_protocol first, else smesh_app_protocol; absent when neither is set. */
  readonly appProtocol?: string;
}

export interface AcceptedService {
  readonly kind: 'service';
  /** The xDS resource name, `<namespace>/<hostname>`. */
  readonly resourceName: string;
  readonly name: string;
  readonly namespace: string;
  readonly hostname: string;
  readonly vips: readonly string[];
  readonly ports: readonly PortMapping[];
}

export type AcceptedAddress = AcceptedWorkload | AcceptedService;

export interface AcceptedNode {
  readonly kind: 'node';
  readonly name: string;
  readonly address: string;
}

export interface AcceptedLocalWorkload {
  readonly kind: 'localWorkload';
  readonly uid: string;
  readonly netns: string;
  /** Pod bandwidth limits in bits per second; absent: none. */
  readonly egressBandwidthBps?: number;
  readonly ingressBandwidthBps?: number;
}

export interface AcceptedMeshConfig {
  readonly kind: 'meshConfig';
  readonly trustDomain: string;
  /** PEM, one certificate each, current first. */
  readonly trustAnchors: readonly string[];
  /** Other trust domains accepted as the mesh's (Istio's MeshConfig trustDomainAliases); distinct, never `trustDomain`. */
  readonly trustDomainAliases: readonly string[];
}

/** A validated istio.security.Authorization in the policy model (L4 fields plus the smesh L7 extension). */
export interface AcceptedAuthorization {
  readonly kind: 'authorization';
  readonly policy: AuthorizationPolicy;
}

/** A validated smesh.traffic.v1alpha1.TrafficPolicy; `policy.serviceKey` and destination services are derived from hostnames until buildSnapshot resolves them. */
export interface AcceptedTrafficPolicy {
  readonly kind: 'trafficPolicy';
  /** `<namespace>/<hostname>`. */
  readonly resourceName: string;
  readonly policy: ServiceTrafficPolicy;
}

/** A validated smesh.traffic.v1alpha1.TrafficShaping: the rate-limit rules of one workload (resource name = its uid). */
export interface AcceptedTrafficShaping {
  readonly kind: 'trafficShaping';
  readonly shaping: WorkloadShaping;
}

export type AcceptedResource = AcceptedAddress | AcceptedNode | AcceptedLocalWorkload | AcceptedMeshConfig | AcceptedAuthorization | AcceptedTrafficPolicy | AcceptedTrafficShaping;

export type ParseResult = { readonly ok: true; readonly value: AcceptedResource } | { readonly ok: false; readonly error: string };

/** A decoded google.protobuf.Any as it appears in Resource.resource. */
export type { AnyMessage } from './wire';

// ---- validation helpers ----

// Kubernetes DNS-1123 label (namespace) / subdomain (names, node names).
const DNS_LABEL_RE = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const DNS_SUBDOMAIN_RE = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;

class FieldError extends Error {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(message);
  }
}

function fail(field: string, message: string): never {
  throw new FieldError(field, message);
}

/** A value as JSON text, for error messages (`"a b"`, `null`). */
export function quoted(v: unknown): string {
  return JSON.stringify(v);
}

function requireMatch(field: string, value: string, re: RegExp, expected: string): void {
  if (value === '') fail(field, `expected ${expected}, got an empty string`);
  if (!re.test(value)) fail(field, `expected ${expected}, got ${quoted(value)}`);
}

function ipFromBytes(field: string, bytes: Uint8Array): string {
  if (bytes.length === 4) return ipv4Text(bytes[0]!, bytes[1]!, bytes[2]!, bytes[3]!);
  if (bytes.length === 16) return keyToIp(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  return fail(field, `expected 4 or 16 bytes, got ${bytes.length}`);
}

/**
 * The port's declared protocol: Istio's app_protocol as the appProtocol it stands for, and smesh_app_protocol only
 * where Istio's is UNKNOWN (or a value this agent does not know); '' when neither says anything.
 */
export function effectiveAppProtocol(p: { appProtocol?: string | number; smeshAppProtocol?: string }): string {
  const istio = typeof p.appProtocol === 'string' && p.appProtocol !== 'UNKNOWN' ? APP_PROTOCOL_OF_ISTIO[p.appProtocol as Exclude<IstioAppProtocol, 'UNKNOWN'>] : undefined;
  return istio ?? p.smeshAppProtocol?.trim() ?? '';
}

function portMapping(field: string, p: { servicePort: number; targetPort: number; appProtocol?: string | number; smeshAppProtocol?: string }): PortMapping {
  if (!Number.isInteger(p.servicePort) || p.servicePort < 1 || p.servicePort > 65535) {
    fail(`${field}.service_port`, `expected a port 1-65535, got ${p.servicePort}`);
  }
  if (!Number.isInteger(p.targetPort) || p.targetPort < 0 || p.targetPort > 65535) {
    fail(`${field}.target_port`, `expected a port 0-65535 (0 = same as service_port), got ${p.targetPort}`);
  }
  const appProtocol = effectiveAppProtocol(p);
  return appProtocol ? { servicePort: p.servicePort, targetPort: p.targetPort, appProtocol } : { servicePort: p.servicePort, targetPort: p.targetPort };
}

function uniquePorts(field: string, ports: readonly PortMapping[]): void {
  const seen = new Set<number>();
  ports.forEach((p, i) => {
    if (seen.has(p.servicePort)) fail(`${field}[${i}].service_port`, `port ${p.servicePort} is listed twice`);
    seen.add(p.servicePort);
  });
}

/** A Workload.services key: `<namespace>/<hostname>`, as Service resource names are. */
function checkServiceRef(ref: string): void {
  const slash = ref.indexOf('/');
  if (slash <= 0 || slash === ref.length - 1 || ref.indexOf('/', slash + 1) !== -1) {
    fail(`workload.services[${quoted(ref)}]`, `expected "<namespace>/<hostname>", got ${quoted(ref)}`);
  }
}

// ---- per-type parsers ----

/**
 * Decoded strings are fresh copies per resource; the few distinct namespaces, nodes, service accounts, identities
 * … are shared instead (50k workloads repeat ~1k values). Bounded: cleared when it grows past INTERN_MAX.
 */
const interned = new Map<string, string>();
const INTERN_MAX = 50_000;
export function intern(v: string): string {
  const hit = interned.get(v);
  if (hit !== undefined) return hit;
  if (interned.size >= INTERN_MAX) interned.clear();
  interned.set(v, v);
  return v;
}

/**
 * Empties the caches that make equal strings of one push share memory (this module's `interned`, the wire decoder's
 * repeated values). Safe at any time; the xDS client calls it after each complete push.
 */
export function releaseSharingCaches(): void {
  interned.clear();
  forgetRepeatedStrings();
}

/** Two-level cache `a → b → make(a, b)` (values many workloads share); bounded like `interned`. */
class PairCache<T> {
  private readonly byA = new Map<string, Map<string, T>>();
  private size = 0;

  constructor(private readonly make: (a: string, b: string) => T) {}

  get(a: string, b: string): T {
    let inner = this.byA.get(a);
    const hit = inner?.get(b);
    if (hit !== undefined) return hit;
    if (this.size >= INTERN_MAX) {
      this.byA.clear();
      this.size = 0;
      inner = undefined;
    }
    if (!inner) this.byA.set(a, (inner = new Map()));
    const v = this.make(a, b);
    inner.set(b, v);
    this.size++;
    return v;
  }
}

/** Canonical-name/revision labels: one frozen object per distinct pair. */
const sharedLabels = new PairCache<Readonly<Record<string, string>>>((workloadName, canonicalRevision) => {
  const l: Record<string, string> = {};
  if (workloadName) l['service.istio.io/canonical-name'] = workloadName;
  if (canonicalRevision) l['service.istio.io/canonical-revision'] = canonicalRevision;
  return Object.freeze(l);
});
/** SPIFFE identities by trust domain, then `<ns>/sa/<sa>` pieces: no string built per workload to look one up. */
const identities = new Map<string, PairCache<string>>();
export function identityOf(trustDomain: string, namespace: string, serviceAccount: string): string {
  let byTd = identities.get(trustDomain);
  if (!byTd) {
    if (identities.size >= 64) identities.clear();
    identities.set(trustDomain, (byTd = new PairCache((ns, sa) => intern(`spiffe://${trustDomain}/ns/${ns}/sa/${sa}`))));
  }
  return byTd.get(namespace, serviceAccount);
}

const NO_POLICIES: readonly string[] = Object.freeze([]);
/** xDS services list their endpoints instead of selecting them: one shared empty selector. */
const NO_SELECTOR: Readonly<Record<string, string>> = Object.freeze({});
const NO_SERVICES: ReadonlyMap<string, readonly PortMapping[]> = new Map();

/**
 * Values that passed a field check, by check: the fields 50k workloads repeat (namespace, node, service account,
 * trust domain) are checked once per distinct value, not once per workload. Bounded like `interned`.
 */
const CHECK_NAMESPACE = 1;
const CHECK_NODE = 2;
const CHECK_SERVICE_ACCOUNT = 4;
const CHECK_TRUST_DOMAIN = 8;
const passed = new Map<string, number>();
function checkedBefore(value: string, check: number): boolean {
  return ((passed.get(value) ?? 0) & check) !== 0;
}
function markChecked(value: string, check: number): void {
  if (passed.size >= INTERN_MAX) passed.clear();
  passed.set(value, (passed.get(value) ?? 0) | check);
}

/** The first bad port of a port list, as [sub-field, message], or undefined when all are valid and distinct. */
function portProblem(ports: readonly WirePort[]): [string, string] | undefined {
  for (let i = 0; i < ports.length; i++) {
    const p = ports[i]!;
    if (!Number.isInteger(p.servicePort) || p.servicePort < 1 || p.servicePort > 65535) return [`[${i}].service_port`, `expected a port 1-65535, got ${p.servicePort}`];
    if (!Number.isInteger(p.targetPort) || p.targetPort < 0 || p.targetPort > 65535) {
      return [`[${i}].target_port`, `expected a port 0-65535 (0 = same as service_port), got ${p.targetPort}`];
    }
    for (let j = 0; j < i; j++) if (ports[j]!.servicePort === p.servicePort) return [`[${i}].service_port`, `port ${p.servicePort} is listed twice`];
  }
  return undefined;
}

function sameAsWire(held: readonly PortMapping[], wire: readonly WirePort[]): boolean {
  if (held.length !== wire.length) return false;
  for (let i = 0; i < held.length; i++) {
    const h = held[i]!;
    const x = wire[i]!;
    if (h.servicePort !== x.servicePort || h.targetPort !== x.targetPort || (h.appProtocol ?? '') !== effectiveAppProtocol(x)) return false;
  }
  return true;
}

/**
 * Workload.services maps already accepted, by their first service reference: the replicas of one deployment name
 * the same services with the same ports, so a workload's map is found by comparing with the few held for its first
 * reference (no key string per workload) and shared. Bounded like `interned`.
 */
const servicesMaps = new Map<string, Array<ReadonlyMap<string, readonly PortMapping[]>>>();
let servicesMapCount = 0;
function heldServices(wire: WireWorkload['services']): ReadonlyMap<string, readonly PortMapping[]> | undefined {
  let first = '';
  for (const ref of wire.keys()) {
    first = ref;
    break;
  }
  const candidates = servicesMaps.get(first);
  if (!candidates) return undefined;
  next: for (const m of candidates) {
    if (m.size !== wire.size) continue;
    for (const ref of wire.keys()) {
      const ports = m.get(ref);
      if (ports === undefined || !sameAsWire(ports, wire.get(ref)!.ports)) continue next;
    }
    return m;
  }
  return undefined;
}

function parseServices(wire: WireWorkload['services']): ReadonlyMap<string, readonly PortMapping[]> {
  if (wire.size === 0) return NO_SERVICES;
  const held = heldServices(wire);
  if (held) return held; // equal to one that passed the checks below
  const out = new Map<string, readonly PortMapping[]>();
  for (const [ref, list] of wire) {
    checkServiceRef(ref);
    const problem = portProblem(list.ports);
    if (problem) fail(`workload.services[${quoted(ref)}].ports${problem[0]}`, problem[1]);
    out.set(
      intern(ref),
      list.ports.map((p) => portMapping('', p)),
    );
  }
  if (servicesMapCount >= INTERN_MAX) {
    servicesMaps.clear();
    servicesMapCount = 0;
  }
  let first = '';
  for (const ref of out.keys()) {
    first = ref;
    break;
  }
  const candidates = servicesMaps.get(first);
  if (candidates) candidates.push(out);
  else servicesMaps.set(first, [out]);
  servicesMapCount++;
  return out;
}

/** tunnel_protocol → the state's name; a number this agent does not know is plain TCP (`none`), as before it had a name. */
function wireTunnel(p: string | number): WorkloadTunnel {
  return WORKLOAD_TUNNEL.fromWire(p) ?? 'none';
}

function parseWorkload(name: string, w: WireWorkload): AcceptedWorkload {
  if (w.uid !== name) fail('workload.uid', `expected the resource name ${quoted(name)}, got ${quoted(w.uid)}`);
  requireMatch('workload.name', w.name, DNS_SUBDOMAIN_RE, 'a Kubernetes object name');
  // namespace, trust domain, service account, node, canonical name: shared strings already (wire.ts repeatedString).
  const namespace = w.namespace;
  if (!checkedBefore(namespace, CHECK_NAMESPACE)) {
    requireMatch('workload.namespace', namespace, DNS_LABEL_RE, 'a Kubernetes namespace name');
    markChecked(namespace, CHECK_NAMESPACE);
  }
  if (w.addresses.length === 0) fail('workload.addresses', 'expected at least one 4- or 16-byte address');
  const ips: string[] = [];
  for (let i = 0; i < w.addresses.length; i++) {
    const a = w.addresses[i]!;
    ips.push(typeof a === 'string' ? a : ipFromBytes(`workload.addresses[${i}]`, a));
  }
  const trustDomain = w.trustDomain;
  if (trustDomain !== '' && !checkedBefore(trustDomain, CHECK_TRUST_DOMAIN)) {
    if (!TRUST_DOMAIN_RE.test(trustDomain)) fail('workload.trust_domain', `expected empty (mesh default) or lowercase [a-z0-9._-]+, got ${quoted(trustDomain)}`);
    markChecked(trustDomain, CHECK_TRUST_DOMAIN);
  }
  const serviceAccount = w.serviceAccount || 'default';
  if (!checkedBefore(serviceAccount, CHECK_SERVICE_ACCOUNT)) {
    if (!SPIFFE_SEGMENT_RE.test(serviceAccount)) fail('workload.service_account', `expected empty ("default") or [A-Za-z0-9._-]+, got ${quoted(w.serviceAccount)}`);
    markChecked(serviceAccount, CHECK_SERVICE_ACCOUNT);
  }
  const node = w.node;
  if (!checkedBefore(node, CHECK_NODE)) {
    requireMatch('workload.node', node, DNS_SUBDOMAIN_RE, 'the name of the node the workload runs on');
    markChecked(node, CHECK_NODE);
  }
  const services = parseServices(w.services);
  const policies = w.authorizationPolicies ?? [];
  const authorizationPolicies =
    policies.length === 0
      ? NO_POLICIES
      : policies.map((ref, i) => {
          const slash = ref.indexOf('/');
          if (slash <= 0 || slash === ref.length - 1 || ref.indexOf('/', slash + 1) !== -1) {
            fail(`workload.authorization_policies[${i}]`, `expected "<namespace>/<name>", got ${quoted(ref)}`);
          }
          return intern(ref);
        });
  return {
    kind: 'workload',
    authorizationPolicies,
    uid: name, // equal to w.uid (checked above); the resource name's string is the one kept anyway
    name: w.name,
    namespace,
    ips,
    trustDomain,
    serviceAccount,
    node,
    workloadName: intern(w.canonicalName || w.workloadName || w.name),
    canonicalRevision: intern(w.canonicalRevision),
    hbone: w.tunnelProtocol === 'HBONE',
    tunnel: wireTunnel(w.tunnelProtocol),
    services,
  };
}

function parseService(name: string, s: WireService): AcceptedService {
  requireMatch('service.name', s.name, DNS_LABEL_RE, 'a Kubernetes service name');
  requireMatch('service.namespace', s.namespace, DNS_LABEL_RE, 'a Kubernetes namespace name');
  if (s.hostname === '') fail('service.hostname', 'expected the service FQDN, got an empty string');
  if (name !== `${s.namespace}/${s.hostname}`) {
    fail('service.hostname', `expected the resource name ${quoted(name)} to be "<namespace>/<hostname>" = ${quoted(`${s.namespace}/${s.hostname}`)}`);
  }
  const vips = s.addresses.map((a, i) => ipFromBytes(`service.addresses[${i}].address`, a.address));
  const ports = s.ports.map((p, i) => portMapping(`service.ports[${i}]`, p));
  uniquePorts('service.ports', ports);
  return { kind: 'service', resourceName: name, name: s.name, namespace: intern(s.namespace), hostname: s.hostname, vips, ports };
}

function parseAddress(name: string, a: WireAddress): AcceptedAddress {
  if (a.type === 'workload' && a.workload) return parseWorkload(name, a.workload);
  if (a.type === 'service' && a.service) return parseService(name, a.service);
  return fail('type', 'expected a workload or a service, got neither');
}

// ---- istio.security.Authorization ----

function wireStringMatch(field: string, m: StringMatch__Output): StringMatcher {
  switch (m.matchType) {
    case 'exact':
      if (!m.exact) fail(`${field}.exact`, 'empty value not allowed');
      return { kind: 'exact', value: m.exact! };
    case 'prefix':
      return { kind: 'prefix', value: m.prefix ?? '' };
    case 'suffix':
      return { kind: 'suffix', value: m.suffix ?? '' };
    case 'presence':
      return { kind: 'presence' };
    default:
      return fail(field, 'expected one of exact, prefix, suffix or presence to be set');
  }
}

function wireCidr(field: string, a: CidrAddress__Output): Cidr {
  const address = ipFromBytes(`${field}.address`, a.address);
  const max = a.address.length === 4 ? 32 : 128;
  if (!Number.isInteger(a.length) || a.length > max) fail(`${field}.length`, `expected a prefix length 0-${max}, got ${a.length}`);
  return { address, prefixLength: a.length };
}

function wirePorts(field: string, ports: readonly number[]): number[] {
  ports.forEach((p, i) => {
    if (!Number.isInteger(p) || p < 0 || p > 65535) fail(`${field}[${i}]`, `expected a port 0-65535, got ${p}`);
  });
  return [...ports];
}

function wireMatch(field: string, m: Match__Output): PolicyMatch {
  if (m.serviceAccounts.length > 0 || m.notServiceAccounts.length > 0) {
    fail(`${field}.${m.serviceAccounts.length > 0 ? 'service_accounts' : 'not_service_accounts'}`, 'unsupported: service account matches are not implemented by smesh; use principals');
  }
  const out: Record<string, unknown> = {};
  const strs = (key: keyof PolicyMatch, wire: string, list: readonly StringMatch__Output[]) => {
    if (list.length > 0) out[key] = list.map((x, i) => wireStringMatch(`${field}.${wire}[${i}]`, x));
  };
  const ips = (key: keyof PolicyMatch, wire: string, list: readonly CidrAddress__Output[]) => {
    if (list.length > 0) out[key] = list.map((x, i) => wireCidr(`${field}.${wire}[${i}]`, x));
  };
  strs('namespaces', 'namespaces', m.namespaces);
  strs('notNamespaces', 'not_namespaces', m.notNamespaces);
  strs('principals', 'principals', m.principals);
  strs('notPrincipals', 'not_principals', m.notPrincipals);
  ips('sourceIps', 'source_ips', m.sourceIps);
  ips('notSourceIps', 'not_source_ips', m.notSourceIps);
  ips('destinationIps', 'destination_ips', m.destinationIps);
  ips('notDestinationIps', 'not_destination_ips', m.notDestinationIps);
  if (m.destinationPorts.length > 0) out.destinationPorts = wirePorts(`${field}.destination_ports`, m.destinationPorts);
  if (m.notDestinationPorts.length > 0) out.notDestinationPorts = wirePorts(`${field}.not_destination_ports`, m.notDestinationPorts);
  // smesh L7 extension (authorization.proto): absent from istiod's messages, so empty there.
  strs('methods', 'smesh_methods', m.smeshMethods ?? []);
  strs('notMethods', 'smesh_not_methods', m.smeshNotMethods ?? []);
  strs('paths', 'smesh_paths', m.smeshPaths ?? []);
  strs('notPaths', 'smesh_not_paths', m.smeshNotPaths ?? []);
  strs('hosts', 'smesh_hosts', m.smeshHosts ?? []);
  strs('notHosts', 'smesh_not_hosts', m.smeshNotHosts ?? []);
  ips('remoteIps', 'smesh_remote_ips', m.smeshRemoteIps ?? []);
  ips('notRemoteIps', 'smesh_not_remote_ips', m.smeshNotRemoteIps ?? []);
  strs('requestPrincipals', 'smesh_request_principals', m.smeshRequestPrincipals ?? []);
  strs('notRequestPrincipals', 'smesh_not_request_principals', m.smeshNotRequestPrincipals ?? []);
  const headers = m.smeshHeaders ?? [];
  if (headers.length > 0) {
    out.headers = headers.map((h, i) => {
      const hf = `${field}.smesh_headers[${i}]`;
      if (!h.name || h.name !== h.name.toLowerCase()) fail(`${hf}.name`, `expected a lower-case header name, got ${quoted(h.name)}`);
      const sl = (wire: string, list: readonly StringMatch__Output[]) => list.map((x, j) => wireStringMatch(`${hf}.${wire}[${j}]`, x));
      return { name: h.name, values: sl('values', h.values), notValues: sl('not_values', h.notValues) };
    });
  }
  return out as PolicyMatch;
}

function parseAuthorization(name: string, a: Authorization__Output): AcceptedAuthorization {
  // istiod's converted PeerAuthentications use '_' on purpose (illegal in Kubernetes names: no clash).
  if (isConvertedPeerAuthentication({ name: a.name })) {
    const rest = a.name.startsWith(CONVERTED_PEER_AUTHENTICATION_PREFIX) ? a.name.slice(CONVERTED_PEER_AUTHENTICATION_PREFIX.length) : '';
    if (rest !== '') requireMatch('name', rest, DNS_SUBDOMAIN_RE, `${CONVERTED_PEER_AUTHENTICATION_PREFIX}<Kubernetes object name>`);
  } else {
    requireMatch('name', a.name, DNS_SUBDOMAIN_RE, 'a Kubernetes object name');
  }
  requireMatch('namespace', a.namespace, DNS_LABEL_RE, 'a Kubernetes namespace name');
  if (name !== `${a.namespace}/${a.name}`) fail('name', `expected the resource name ${quoted(name)} to be "<namespace>/<name>" = ${quoted(`${a.namespace}/${a.name}`)}`);
  const scope = POLICY_SCOPE.fromWire(a.scope);
  if (!scope) fail('scope', `expected GLOBAL, NAMESPACE or WORKLOAD_SELECTOR, got ${quoted(a.scope)}`);
  const action = POLICY_ACTION.fromWire(a.action);
  if (!action) fail('action', `expected ALLOW, DENY or SMESH_AUDIT, got ${quoted(a.action)} (CUSTOM and unknown actions are not supported)`);
  if (action === 'DENY' && a.groups.length === 0) fail('groups', 'a DENY policy needs at least one group (DENY without rules is invalid)');
  const l7Groups = a.smeshL7Groups ?? [];
  // A DENY/AUDIT rule only smesh could see would not fail closed for other consumers: the encoder never sends one.
  if (action !== 'ALLOW' && l7Groups.length > 0) fail('smesh_l7_groups', 'only an ALLOW policy may carry smesh_l7_groups (DENY/AUDIT rules keep their L7 attributes in groups)');
  const group = (wire: string) => (g: Authorization__Output['groups'][number], gi: number) => ({
    clauses: g.rules.map((r, ri) => ({ matches: r.matches.map((m, mi) => wireMatch(`${wire}[${gi}].rules[${ri}].matches[${mi}]`, m)) })),
  });
  // ALLOW: groups ∪ smesh_l7_groups (OR-ed; see authorization.proto for the encoding).
  const rules = [...a.groups.map(group('groups')), ...l7Groups.map(group('smesh_l7_groups'))];
  const policy: AuthorizationPolicy = { name: a.name, namespace: a.namespace, action: action!, scope: scope!, rules };
  return { kind: 'authorization', policy };
}

function parseTrafficPolicyResource(name: string, p: TrafficPolicy__Output): AcceptedTrafficPolicy {
  const r = parseTrafficPolicy(name, p);
  if (!r.ok) fail(r.field, r.message);
  return { kind: 'trafficPolicy', resourceName: name, policy: r.policy };
}

function parseTrafficShapingResource(name: string, s: TrafficShaping__Output): AcceptedTrafficShaping {
  const r = parseTrafficShaping(name, s, serviceKeyFromRef);
  if (!r.ok) fail(r.field, r.message);
  return { kind: 'trafficShaping', shaping: r.shaping };
}

function parseNode(name: string, n: Node__Output): AcceptedNode {
  if (n.name !== name) fail('name', `expected the resource name ${quoted(name)}, got ${quoted(n.name)}`);
  if (isIP(n.address) === 0) fail('address', `expected an IPv4 or IPv6 address, got ${quoted(n.address)}`);
  return { kind: 'node', name: n.name, address: n.address };
}

function parseLocalWorkload(name: string, l: LocalWorkload__Output): AcceptedLocalWorkload {
  if (l.uid !== name) fail('uid', `expected the resource name ${quoted(name)}, got ${quoted(l.uid)}`);
  if (l.netns !== '' && (!l.netns.startsWith('/') || l.netns.includes('\0'))) {
    fail('netns', `expected an absolute path (e.g. /run/netns/NAME) or empty, got ${quoted(l.netns)}`);
  }
  const bandwidth = (field: string, bps: number | undefined): number | undefined => {
    if (!bps) return undefined; // 0 / absent: no limit
    // The kernel facade's bounds: at least one byte per second, and a rate that fits its 64-bit byte counters.
    if (!Number.isSafeInteger(bps) || bps < 8 || bps > 7.2e16) fail(field, `expected bits per second in 8..7.2e16 (0: no limit), got ${bps}`);
    return bps;
  };
  const egress = bandwidth('egress_bandwidth_bps', l.egressBandwidthBps);
  const ingress = bandwidth('ingress_bandwidth_bps', l.ingressBandwidthBps);
  return { kind: 'localWorkload', uid: l.uid, netns: l.netns, ...(egress !== undefined ? { egressBandwidthBps: egress } : {}), ...(ingress !== undefined ? { ingressBandwidthBps: ingress } : {}) };
}

function parseMeshConfig(name: string, m: MeshConfig__Output): AcceptedMeshConfig {
  if (name !== MESH_CONFIG_NAME) fail('name', `expected the resource name ${quoted(MESH_CONFIG_NAME)}, got ${quoted(name)}`);
  requireMatch('trust_domain', m.trustDomain, TRUST_DOMAIN_RE, 'a lowercase trust domain [a-z0-9._-]+');
  const trustAnchors = m.trustAnchors.map((pem, i) => {
    let cert: X509Certificate;
    try {
      cert = new X509Certificate(pem);
    } catch (err) {
      return fail(`trust_anchors[${i}]`, `expected a PEM X.509 certificate: ${(err as Error).message}`);
    }
    if (!cert.ca) fail(`trust_anchors[${i}]`, `expected a CA certificate, got one without basicConstraints CA:TRUE (subject ${quoted(cert.subject)})`);
    return cert.toString().trim() + '\n';
  });
  const trustDomainAliases: string[] = [];
  (m.trustDomainAliases ?? []).forEach((td, i) => {
    const field = `trust_domain_aliases[${i}]`;
    requireMatch(field, td, TRUST_DOMAIN_RE, 'a lowercase trust domain [a-z0-9._-]+');
    if (td === m.trustDomain) fail(field, `expected a trust domain other than trust_domain, got ${quoted(td)}`);
    if (trustDomainAliases.includes(td)) fail(field, `expected each alias once, ${quoted(td)} is also trust_domain_aliases[${trustDomainAliases.indexOf(td)}]`);
    trustDomainAliases.push(td);
  });
  return { kind: 'meshConfig', trustDomain: m.trustDomain, trustAnchors, trustDomainAliases };
}

/** Short label naming a resource in errors, e.g. `Address Kubernetes//Pod/default/a`. */
export function resourceLabel(typeUrl: string, name: string): string {
  const short = typeUrl.slice(typeUrl.lastIndexOf('.') + 1);
  return `${short} ${name}`;
}

/**
 * Decodes and validates one resource of a delta response. Never throws: a bad resource yields an
 * error naming the resource, the field and what was expected, e.g.
 * `Address Kubernetes//Pod/default/a: workload.addresses[0]: expected 4 or 16 bytes, got 3`.
 */
export function parseResource(typeUrl: string, name: string, any: AnyMessage | null | undefined): ParseResult {
  if (name === '') return { ok: false, error: `${resourceLabel(typeUrl, name).trimEnd()}: name: expected a resource name, got an empty string` };
  if (!any) return { ok: false, error: `${resourceLabel(typeUrl, name)}: resource: expected a resource body, got none` };
  if (any.type_url !== typeUrl) {
    return { ok: false, error: `${resourceLabel(typeUrl, name)}: resource.type_url: expected ${quoted(typeUrl)}, got ${quoted(any.type_url)}` };
  }
  const c = xdsCodecs();
  try {
    let decoded: AcceptedResource;
    try {
      switch (typeUrl) {
        case XDS_TYPE_URL.address:
          decoded = parseAddress(name, decodeAddressOf(any, name));
          break;
        case XDS_TYPE_URL.node:
          decoded = parseNode(name, c.node.decode(any.value));
          break;
        case XDS_TYPE_URL.localWorkload:
          decoded = parseLocalWorkload(name, c.localWorkload.decode(any.value));
          break;
        case XDS_TYPE_URL.meshConfig:
          decoded = parseMeshConfig(name, c.meshConfig.decode(any.value));
          break;
        case XDS_TYPE_URL.authorization:
          decoded = parseAuthorization(name, c.authorization.decode(any.value));
          break;
        case XDS_TYPE_URL.trafficPolicy:
          decoded = parseTrafficPolicyResource(name, c.trafficPolicy.decode(any.value));
          break;
        case XDS_TYPE_URL.trafficShaping:
          decoded = parseTrafficShapingResource(name, c.trafficShaping.decode(any.value));
          break;
        default:
          return { ok: false, error: `${resourceLabel(typeUrl, name)}: type_url: ${quoted(typeUrl)} is not a type this agent subscribes to` };
      }
    } catch (err) {
      if (err instanceof FieldError) throw err;
      // protobufjs decode errors (truncated or malformed bytes).
      throw new FieldError('resource.value', `cannot decode ${typeUrl.slice(typeUrl.lastIndexOf('/') + 1)}: ${(err as Error).message}`);
    }
    return { ok: true, value: decoded };
  } catch (err) {
    const fe = err as FieldError;
    return { ok: false, error: `${resourceLabel(typeUrl, name)}: ${fe.field}: ${fe.message}` };
  }
}

// ---- snapshot ----

/** Every accepted resource, by type, keyed by resource name. */
export interface AcceptedResources {
  readonly addresses: ReadonlyMap<string, AcceptedAddress>;
  readonly nodes: ReadonlyMap<string, AcceptedNode>;
  readonly localWorkloads: ReadonlyMap<string, AcceptedLocalWorkload>;
  readonly meshConfig?: AcceptedMeshConfig;
  /** By resource name `<ns>/<name>`; absent = none. */
  readonly authorizations?: ReadonlyMap<string, AcceptedAuthorization>;
  /** By resource name `<ns>/<hostname>`; absent = none. */
  readonly trafficPolicies?: ReadonlyMap<string, AcceptedTrafficPolicy>;
  /** By resource name (workload uid); absent = none. */
  readonly trafficShapings?: ReadonlyMap<string, AcceptedTrafficShaping>;
}

export interface BuiltSnapshot {
  readonly snapshot: MeshSnapshot;
  /** From MeshConfig.trust_anchors; empty when no MeshConfig (or none listed). */
  readonly trustAnchors: readonly string[];
  /** Cross-resource inconsistencies that did not stop the build (a second workload on one IP, …). */
  readonly warnings: readonly string[];
}

function byKey<T>(entries: Iterable<[string, T]>): Map<string, T> {
  return new Map([...entries].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

/** What a Workload takes from its LocalWorkload (absent: not on this node, or not sent yet). */
export type LocalWorkloadFacts = Pick<AcceptedLocalWorkload, 'netns' | 'egressBandwidthBps' | 'ingressBandwidthBps'>;

/** The state's Workload for an accepted one; `netns` and bandwidth limits from its LocalWorkload, `trustDomain` the mesh's. */
export function toWorkload(w: AcceptedWorkload, local: LocalWorkloadFacts | undefined, trustDomain: string): Workload {
  const labels = sharedLabels.get(w.workloadName, w.canonicalRevision);
  // One literal with every key (runs 50k times at scale; one object shape, no out-of-object properties).
  // Absent optional fields are `undefined` (JSON and deep equality treat that as missing).
  return {
    uid: w.uid,
    name: w.name,
    namespace: w.namespace,
    serviceAccount: w.serviceAccount,
    node: w.node,
    ip: w.ips[0]!,
    // Absent for the usual single address (workloadAddresses() then gives [ip]).
    addresses: w.ips.length > 1 ? w.ips : undefined,
    labels,
    netns: local?.netns || undefined,
    workloadName: w.workloadName,
    identity: identityOf(w.trustDomain || trustDomain, w.namespace, w.serviceAccount),
    meshed: w.hbone,
    // Only the value `meshed` does not already say is kept (absent: hbone when meshed, else none).
    tunnel: w.tunnel === 'legacy_istio_mtls' ? 'legacy_istio_mtls' : undefined,
    // Absent when empty: selector-scoped policies from xDS carry no selector, so none selects it.
    authorizationPolicies: w.authorizationPolicies.length > 0 ? w.authorizationPolicies : undefined,
    egressBandwidthBps: local?.egressBandwidthBps,
    ingressBandwidthBps: local?.ingressBandwidthBps,
  };
}

/** What a service's target port resolution needs of each endpoint. */
export type EndpointPorts = Pick<AcceptedWorkload, 'uid' | 'services'>;

/**
 * The state's Service for an accepted one and its endpoints (sorted by uid). `uids`: the endpoints' uids, when
 * `endpoints` is left empty because every port has its own target port (their port mappings are then not read).
 */
export function toService(s: AcceptedService, endpoints: readonly EndpointPorts[], warnings: string[], uids: readonly string[] = endpoints.map((w) => w.uid)): Service {
  const ports: ServicePort[] = s.ports.map((p) => ({ port: p.servicePort, targetPort: targetPortFor(s, p, endpoints, warnings), ...(p.appProtocol ? { appProtocol: p.appProtocol } : {}) }));
  return { key: `${s.namespace}/${s.name}`, name: s.name, namespace: s.namespace, vips: s.vips, ports, selector: NO_SELECTOR, endpointUids: uids };
}

/** The snapshot's `trustDomainAliases` from an accepted MeshConfig: the accepted list itself (stable identity), absent when none. */
export function meshTrustDomainAliases(m: AcceptedMeshConfig | undefined): { trustDomainAliases?: readonly string[] } {
  return m && m.trustDomainAliases.length > 0 ? { trustDomainAliases: m.trustDomainAliases } : {};
}

/**
 * Builds the complete mesh state from the accepted resources. Pure and deterministic: iteration is
 * in resource-name order, so the same inputs always give the same snapshot.
 */
export function buildSnapshot(accepted: AcceptedResources, defaultTrustDomain = DEFAULT_TRUST_DOMAIN): BuiltSnapshot {
  const warnings: string[] = [];
  const trustDomain = accepted.meshConfig?.trustDomain ?? defaultTrustDomain;

  const nodes = new Map<string, MeshNode>();
  for (const [name, n] of byKey(accepted.nodes)) nodes.set(name, { name: n.name, address: n.address });

  const xdsWorkloads: AcceptedWorkload[] = [];
  const xdsServices: AcceptedService[] = [];
  for (const [, a] of byKey(accepted.addresses)) {
    if (a.kind === 'workload') xdsWorkloads.push(a);
    else xdsServices.push(a);
  }

  const workloads = new Map<string, Workload>();
  const namespaces = new Map<string, Readonly<Record<string, string>>>();
  const ipOwner = new Map<string, string>();
  for (const w of xdsWorkloads) {
    w.ips.forEach((ip, i) => {
      const other = ipOwner.get(ip);
      if (other === w.uid) warnings.push(`Address ${w.uid}: workload.addresses[${i}]: ${ip} is listed twice`);
      else if (other !== undefined) warnings.push(`Address ${w.uid}: workload.addresses[${i}]: ${ip} is also the address of ${other}; lookups by IP find ${other}`);
      else ipOwner.set(ip, w.uid);
    });
    const wl = toWorkload(w, accepted.localWorkloads.get(w.uid), trustDomain);
    workloads.set(w.uid, wl);
    if (!namespaces.has(w.namespace)) namespaces.set(w.namespace, {});
  }
  // The StateStore's byIp index keeps the last writer; make it the first (deterministic) owner.
  const ordered = new Map<string, Workload>();
  const ownsAll = (uid: string, w: Workload) => workloadAddresses(w).every((ip) => ipOwner.get(ip) === uid);
  for (const [uid, w] of workloads) if (!ownsAll(uid, w)) ordered.set(uid, w);
  for (const [uid, w] of workloads) if (ownsAll(uid, w)) ordered.set(uid, w);

  for (const [uid] of byKey(accepted.localWorkloads)) {
    if (!workloads.has(uid)) warnings.push(`LocalWorkload ${uid}: uid: no Address resource with this uid (yet)`);
  }

  // Membership: the workloads whose `services` map names the service.
  const members = new Map<string, AcceptedWorkload[]>();
  for (const w of xdsWorkloads) {
    for (const ref of w.services.keys()) {
      let list = members.get(ref);
      if (!list) members.set(ref, (list = []));
      list.push(w);
    }
  }

  const services = new Map<string, Service>();
  for (const s of xdsServices) {
    const key = `${s.namespace}/${s.name}`;
    const endpoints = members.get(s.resourceName) ?? [];
    if (services.has(key)) {
      warnings.push(`Address ${s.resourceName}: service.name: ${key} is also served by another hostname; keeping the first`);
      continue;
    }
    services.set(key, toService(s, endpoints, warnings));
    if (!namespaces.has(s.namespace)) namespaces.set(s.namespace, {});
  }
  const serviceNames = new Set(xdsServices.map((s) => s.resourceName)); // a Set: 10k services × 10k refs was ~1 s at scale
  for (const ref of members.keys()) {
    if (!serviceNames.has(ref)) {
      const w = members.get(ref)![0]!;
      warnings.push(`Address ${w.uid}: workload.services[${quoted(ref)}]: no Service resource with this name (yet)`);
    }
  }

  const authorizationPolicies = [...byKey(accepted.authorizations ?? new Map<string, AcceptedAuthorization>())].map(([, a]) => a.policy);
  for (const [, w] of ordered) {
    for (const ref of w.authorizationPolicies ?? []) {
      if (!accepted.authorizations?.has(ref)) warnings.push(`Address ${w.uid}: workload.authorization_policies: no Authorization resource ${quoted(ref)} (yet)`);
    }
  }
  const trafficPolicies = resolveTrafficPolicies(accepted.trafficPolicies, xdsServices, ordered, warnings);
  const trafficShaping = shapingByWorkload(accepted.trafficShapings, ordered, warnings);
  return {
    snapshot: {
      trustDomain,
      ...meshTrustDomainAliases(accepted.meshConfig),
      nodes,
      workloads: ordered,
      services,
      namespaces: byKey(namespaces),
      authorizationPolicies,
      ...(trafficPolicies.size > 0 ? { trafficPolicies } : {}),
      ...(trafficShaping.size > 0 ? { trafficShaping } : {}),
    },
    trustAnchors: accepted.meshConfig?.trustAnchors ?? [],
    warnings,
  };
}

/** Each workload's TrafficShaping rules, in uid order; one naming a workload not (yet) known is a warning and kept. */
export function shapingByWorkload(accepted: ReadonlyMap<string, AcceptedTrafficShaping> | undefined, workloads: ReadonlyMap<string, Workload>, warnings: string[]): Map<string, WorkloadShaping> {
  const out = new Map<string, WorkloadShaping>();
  if (!accepted || accepted.size === 0) return out;
  for (const [name, s] of byKey(accepted)) {
    if (!workloads.has(name)) warnings.push(`TrafficShaping ${name}: workload_uid: no Address resource with this uid (yet)`);
    out.set(name, s.shaping);
  }
  return out;
}

/**
 * Keys each TrafficPolicy by its service's state key (`<ns>/<name>` of the Address Service with the
 * same resource name; derived from the hostname while that Service has not arrived). References to
 * unknown services or workloads are warnings.
 */
export function resolveTrafficPolicies(
  accepted: ReadonlyMap<string, AcceptedTrafficPolicy> | undefined,
  xdsServices: readonly AcceptedService[],
  workloads: ReadonlyMap<string, Workload>,
  warnings: string[],
): Map<string, ServiceTrafficPolicy> {
  const out = new Map<string, ServiceTrafficPolicy>();
  if (!accepted || accepted.size === 0) return out;
  const keyByRef = new Map(xdsServices.map((s) => [s.resourceName, `${s.namespace}/${s.name}`]));
  const resolve = (ref: string): string => keyByRef.get(ref) ?? serviceKeyFromRef(ref);
  for (const [name, t] of byKey(accepted)) {
    const key = resolve(name);
    if (!keyByRef.has(name)) warnings.push(`TrafficPolicy ${name}: hostname: no Service resource with this name (yet)`);
    if (out.has(key)) {
      warnings.push(`TrafficPolicy ${name}: hostname: service ${key} already has a TrafficPolicy; keeping the first`);
      continue;
    }
    for (const s of t.policy.subsets) {
      for (const uid of s.workloadUids) if (!workloads.has(uid)) warnings.push(`TrafficPolicy ${name}: subsets[${quoted(s.name)}].workload_uids: no Address resource ${quoted(uid)} (yet)`);
    }
    // Destination services stay as derived from their hostnames (`<name>.<ns>.svc.…` → `<ns>/<name>`).
    out.set(key, { ...t.policy, serviceKey: key });
  }
  return out;
}

/**
 * The state keeps one target port per service port. Precedence: the service's own non-zero
 * target_port; else the endpoints' mapping (Workload.services), which must agree; else the port.
 */
export function targetPortFor(s: AcceptedService, p: PortMapping, endpoints: readonly EndpointPorts[], warnings: string[]): number {
  if (p.targetPort !== 0) return p.targetPort;
  const seen = new Map<number, string>();
  for (const w of endpoints) {
    const m = w.services.get(s.resourceName)?.find((x) => x.servicePort === p.servicePort);
    if (m && m.targetPort !== 0 && !seen.has(m.targetPort)) seen.set(m.targetPort, w.uid);
  }
  if (seen.size === 0) return p.servicePort;
  const [first] = seen.keys();
  if (seen.size > 1) {
    warnings.push(`Address ${s.resourceName}: port ${p.servicePort}: endpoints disagree on target_port (${[...seen].map(([t, uid]) => `${uid}→${t}`).join(', ')}); using ${first}`);
  }
  return first!;
}
