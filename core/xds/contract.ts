// The delta ADS contract both ends share: type URLs, resource names, the enum maps between the mesh model and the wire, and the resource codecs. control/ encodes with it (xds-resources.ts), agent/ decodes with it (xds/convert.ts).
import { loadMeshProtos, TYPE_URL, type MessageCodec } from '../../proto';
import type { Address, Address__Output } from '../../proto/generated/istio/workload/Address';
import type { Authorization, Authorization__Output } from '../../proto/generated/istio/security/Authorization';
import type { LocalWorkload, LocalWorkload__Output } from '../../proto/generated/smesh/mesh/v1alpha1/LocalWorkload';
import type { MeshConfig, MeshConfig__Output } from '../../proto/generated/smesh/mesh/v1alpha1/MeshConfig';
import type { Node, Node__Output } from '../../proto/generated/smesh/mesh/v1alpha1/Node';
import type { TrafficPolicy, TrafficPolicy__Output } from '../../proto/generated/smesh/traffic/v1alpha1/TrafficPolicy';
import type { TrafficShaping, TrafficShaping__Output } from '../../proto/generated/smesh/traffic/v1alpha1/TrafficShaping';
import type { Service, TrafficPriority, Workload, WorkloadTunnel } from '../model/types';
import type { PolicyAction, PolicyScope } from '../policy/types';

/** The resource types on smesh's delta ADS stream: what `smesh control` serves and the agent subscribes to (wildcard). */
export const XDS_TYPE_URL = Object.freeze({
  address: TYPE_URL.address,
  authorization: TYPE_URL.authorization,
  trafficPolicy: TYPE_URL.trafficPolicy,
  trafficShaping: TYPE_URL.trafficShaping,
  node: TYPE_URL.node,
  localWorkload: TYPE_URL.localWorkload,
  meshConfig: TYPE_URL.meshConfig,
} as const);

export type XdsTypeUrl = (typeof XDS_TYPE_URL)[keyof typeof XDS_TYPE_URL];
export const XDS_TYPE_URLS: readonly XdsTypeUrl[] = Object.freeze(Object.values(XDS_TYPE_URL));

/** Name of the single MeshConfig resource. */
export const MESH_CONFIG_NAME = 'mesh';
/**
 * smesh control splits a large push into several DeltaDiscoveryResponses; all but the last carry this suffix in
 * system_version_info. The client applies and ACKs each, but publishes (and counts the initial sync) only at the last.
 */
export const XDS_PARTIAL_VERSION_SUFFIX = '+partial';
/** Cluster id used in workload uids (ztunnel's convention for the local cluster). */
export const CLUSTER_ID = 'Kubernetes';
/** DNS suffix of service hostnames (the Kubernetes cluster domain, not the trust domain). */
export const CLUSTER_DOMAIN = 'cluster.local';

/** Wire uid of a workload: `Kubernetes//Pod/<ns>/<name>` (the state uid is `<ns>/<name>`). */
export function workloadXdsUid(w: Pick<Workload, 'namespace' | 'name'>): string {
  return `${CLUSTER_ID}//Pod/${w.namespace}/${w.name}`;
}

/** `<name>.<namespace>.svc.cluster.local`. */
export function serviceHostname(s: Pick<Service, 'namespace' | 'name'>): string {
  return `${s.name}.${s.namespace}.svc.${CLUSTER_DOMAIN}`;
}

/** Resource name of a service: `<namespace>/<hostname>`. */
export function serviceXdsName(s: Pick<Service, 'namespace' | 'name'>): string {
  return `${s.namespace}/${serviceHostname(s)}`;
}

// ---- enum maps: each written once, model → wire; the wire → model direction is its inverse ----

/** A model → wire enum table and its inverse; `fromWire` answers undefined for any name (or number) it does not know. */
export interface EnumMap<M extends string, W extends string> {
  readonly toWire: Readonly<Record<M, W>>;
  fromWire(wire: string | number): M | undefined;
}

function enumMap<M extends string, W extends string>(toWire: Record<M, W>): EnumMap<M, W> {
  const back = new Map<string, M>();
  for (const [m, w] of Object.entries(toWire) as [M, W][]) back.set(w, m);
  return { toWire: Object.freeze(toWire), fromWire: (wire) => back.get(String(wire)) };
}

/** AuthorizationPolicy scope ↔ istio.security.Scope. */
export const POLICY_SCOPE = enumMap<PolicyScope, 'GLOBAL' | 'NAMESPACE' | 'WORKLOAD_SELECTOR'>({ global: 'GLOBAL', namespace: 'NAMESPACE', workloadSelector: 'WORKLOAD_SELECTOR' });
/** AuthorizationPolicy action ↔ istio.security.Action (AUDIT is smesh's SMESH_AUDIT). */
export const POLICY_ACTION = enumMap<PolicyAction, 'ALLOW' | 'DENY' | 'SMESH_AUDIT'>({ ALLOW: 'ALLOW', DENY: 'DENY', AUDIT: 'SMESH_AUDIT' });
/** A workload's tunnel ↔ istio.workload.TunnelProtocol. */
export const WORKLOAD_TUNNEL = enumMap<WorkloadTunnel, 'NONE' | 'HBONE' | 'LEGACY_ISTIO_MTLS'>({ none: 'NONE', hbone: 'HBONE', legacy_istio_mtls: 'LEGACY_ISTIO_MTLS' });
/** TrafficShaping QoS priority ↔ smesh.traffic.v1alpha1.QosClass.Priority (PRIORITY_UNSPECIFIED: no priority). */
export const TRAFFIC_PRIORITY = enumMap<TrafficPriority, 'LATENCY' | 'NORMAL' | 'BULK'>({ latency: 'LATENCY', normal: 'NORMAL', bulk: 'BULK' });

// ---- codecs ----

/** Encoders and decoders of every resource type on the stream (and for tests and fake servers). */
export interface XdsCodecs {
  readonly address: MessageCodec<Address, Address__Output>;
  readonly authorization: MessageCodec<Authorization, Authorization__Output>;
  readonly trafficPolicy: MessageCodec<TrafficPolicy, TrafficPolicy__Output>;
  readonly trafficShaping: MessageCodec<TrafficShaping, TrafficShaping__Output>;
  readonly node: MessageCodec<Node, Node__Output>;
  readonly localWorkload: MessageCodec<LocalWorkload, LocalWorkload__Output>;
  readonly meshConfig: MessageCodec<MeshConfig, MeshConfig__Output>;
}

let codecs: XdsCodecs | undefined;

/** The codecs, built once (loadMeshProtos stats the proto directory on every call: too slow per resource). */
export function xdsCodecs(): XdsCodecs {
  if (codecs) return codecs;
  const protos = loadMeshProtos();
  codecs = Object.freeze({
    address: protos.codecs.address,
    authorization: protos.codecs.authorization,
    trafficPolicy: protos.codecs.trafficPolicy,
    trafficShaping: protos.codecs.trafficShaping,
    node: protos.codecFor<Node, Node__Output>('smesh.mesh.v1alpha1.Node'),
    localWorkload: protos.codecFor<LocalWorkload, LocalWorkload__Output>('smesh.mesh.v1alpha1.LocalWorkload'),
    meshConfig: protos.codecFor<MeshConfig, MeshConfig__Output>('smesh.mesh.v1alpha1.MeshConfig'),
  });
  return codecs;
}
