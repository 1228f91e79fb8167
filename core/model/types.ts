// Mesh state types: what the agent knows about nodes, workloads and services, in the stage each value is in.
import type { AuthorizationPolicy } from '../policy/types';

/** A Kubernetes-style node: where workloads run and where its agent listens for HBONE. */
export interface MeshNode {
  readonly name: string;
  /** Address other agents dial for HBONE (port 15008). */
  readonly address: string;
}

/**
 * Istio's TunnelProtocol: `hbone` (HTTP CONNECT over mTLS to <pod IP>:15008: smesh or ztunnel), `legacy_istio_mtls`
 * (an Istio sidecar terminates mutual TLS on the workload's own ports), `none` (plain TCP).
 */
export type WorkloadTunnel = 'hbone' | 'legacy_istio_mtls' | 'none';

/** One pod (or VM workload) known to the mesh. */
export interface Workload {
  /** `<namespace>/<name>`, unique. */
  readonly uid: string;
  readonly name: string;
  readonly namespace: string;
  readonly serviceAccount: string;
  /** Node the workload is scheduled on. */
  readonly node: string;
  /** Pod IP (IPv4 or IPv6 text form): the first of `addresses`, the one the mesh dials. */
  readonly ip: string;
  /**
   * Every address of the pod when it has more than one (a dual-stack pod: Kubernetes `status.podIPs`, Istio's
   * `Workload.addresses`), `ip` first. Absent: `[ip]`. Read through workloadAddresses() (core/model/addresses.ts).
   */
  readonly addresses?: readonly string[];
  readonly labels: Readonly<Record<string, string>>;
  /** Path of the pod's network namespace (e.g. /run/netns/NAME), when known. */
  readonly netns?: string;
  /** Canonical workload name for telemetry: label `app.kubernetes.io/name`, else `app`, else the pod name. */
  readonly workloadName: string;
  /** SPIFFE identity: spiffe://<td>/ns/<namespace>/sa/<serviceAccount>. */
  readonly identity: string;
  /** False when the pod opted out (label or namespace label smesh.io/dataplane-mode=none). */
  readonly meshed: boolean;
  /**
   * How peers reach it (Istio's Workload.tunnel_protocol). Absent: `hbone` when meshed, else `none`. An Istio sidecar
   * pod (not meshed: smesh does not capture it) is `legacy_istio_mtls`: outbound connections to it originate the
   * sidecar's mutual TLS (agent/proxy/legacy-mtls.ts) instead of plaintext.
   */
  readonly tunnel?: WorkloadTunnel;
  /**
   * `<ns>/<name>` of the selector-scoped AuthorizationPolicies selecting this workload, as the control
   * plane resolved them (xDS Workload.authorization_policies). Absent: resolve from `labels`.
   */
  readonly authorizationPolicies?: readonly string[];
  /** Pod annotation kubernetes.io/egress-bandwidth: what the pod sends is paced to this many bits per second. */
  readonly egressBandwidthBps?: number;
  /** Pod annotation kubernetes.io/ingress-bandwidth: what is sent to the pod is paced to this many bits per second. */
  readonly ingressBandwidthBps?: number;
}

export interface ServicePort {
  readonly name?: string;
  readonly port: number;
  readonly targetPort: number;
  readonly appProtocol?: string;
}

/** A Kubernetes-style service: a VIP, ports and a label selector. */
export interface Service {
  /** `<namespace>/<name>`. */
  readonly key: string;
  readonly name: string;
  readonly namespace: string;
  /** Cluster IPs (VIPs). */
  readonly vips: readonly string[];
  readonly ports: readonly ServicePort[];
  readonly selector: Readonly<Record<string, string>>;
  /**
   * Endpoint workload uids when the source names them explicitly (xDS: Workload.services); when absent,
   * endpoints are the workloads of the service's namespace matching `selector`.
   */
  readonly endpointUids?: readonly string[];
}

/** Everything the agent's state holds at one instant; immutable once published. */
export interface MeshSnapshot {
  readonly trustDomain: string;
  readonly nodes: ReadonlyMap<string, MeshNode>;
  readonly workloads: ReadonlyMap<string, Workload>;
  readonly services: ReadonlyMap<string, Service>;
  /** Namespace name → labels. */
  readonly namespaces: ReadonlyMap<string, Readonly<Record<string, string>>>;
  /** Validated AuthorizationPolicies, sorted by `<ns>/<name>` (absent = none). */
  readonly authorizationPolicies?: readonly AuthorizationPolicy[];
  /** MeshConfig rootNamespace (policies there apply mesh-wide); absent = "istio-system". */
  readonly rootNamespace?: string;
  /**
   * MeshConfig trustDomainAliases: other trust domains whose identities the mesh accepts as its own (HBONE peers,
   * AuthorizationPolicy principals); valid, distinct and never `trustDomain`. Absent = none (the agent's flag may add some).
   */
  readonly trustDomainAliases?: readonly string[];
  /** Service key `<ns>/<name>` → its traffic policy, in key order (absent = none: agent defaults everywhere). */
  readonly trafficPolicies?: ReadonlyMap<string, ServiceTrafficPolicy>;
  /** Workload uid → the TrafficShaping rate-limit rules that apply to it, in uid order (absent = none). */
  readonly trafficShaping?: ReadonlyMap<string, WorkloadShaping>;
  /**
   * Workload IP → uid of the workload that owns it (the smallest uid when several claim one IP), as immutable as the
   * rest. A builder that keeps this index anyway (the xDS client's) publishes it so that StateStore needs no second
   * 50k-entry copy; absent, the store builds its own. Derived data: never part of dumps or equality.
   */
  readonly workloadIpOwners?: ReadonlyMap<string, string>;
}

// ---- traffic policy (DestinationRule + VirtualService, compiled per service; smesh.traffic.v1alpha1.TrafficPolicy on the wire) ----
// Durations are milliseconds. An absent field means "the agent's default" (see traffic.proto for each).

/** `ROUND_ROBIN`, `LEAST_REQUEST` (power of `choiceCount` choices), `PEAK_EWMA` (Linkerd), `RANDOM`. */
export type LoadBalancerAlgorithm = 'ROUND_ROBIN' | 'LEAST_REQUEST' | 'PEAK_EWMA' | 'RANDOM';

/** What consistent hashing hashes; HTTP keys need an HTTP port (on L4 only `sourceIp` applies). */
export type HashKey =
  | { readonly kind: 'header'; readonly name: string }
  | { readonly kind: 'cookie'; readonly name: string; readonly path?: string; readonly ttlMs?: number }
  | { readonly kind: 'sourceIp' }
  | { readonly kind: 'queryParameter'; readonly name: string };

export type LocalityScope = 'REGION' | 'ZONE' | 'SUBZONE' | 'NODE';

export interface LocalitySettings {
  /** Scopes to keep traffic within, widest first. */
  readonly prefer: readonly LocalityScope[];
  readonly failover: ReadonlyArray<{ readonly from: string; readonly to: string }>;
  readonly strict: boolean;
}

export interface LoadBalancerSettings {
  /** Absent: the agent's default (LEAST_REQUEST), unless `consistentHash` is set. Never both. */
  readonly algorithm?: LoadBalancerAlgorithm;
  readonly consistentHash?: { readonly key: HashKey; readonly tableSize?: number };
  readonly locality?: LocalitySettings;
  /** LEAST_REQUEST: endpoints compared per pick (default 2). */
  readonly choiceCount?: number;
  /** PEAK_EWMA: decay time of the latency average (default 10 s). */
  readonly ewmaDecayMs?: number;
}

/** Envoy-style circuit-breaker thresholds per node proxy per service. */
export interface ConnectionPoolSettings {
  readonly maxConnections?: number;
  readonly maxPendingRequests?: number;
  readonly maxRequests?: number;
  readonly maxRetries?: number;
  readonly connectTimeoutMs?: number;
  readonly maxRequestsPerConnection?: number;
  readonly idleTimeoutMs?: number;
}

/** Explicit 0 is meaningful for the counters (0 disables that detector). */
export interface OutlierDetectionSettings {
  readonly consecutiveServerErrors?: number;
  readonly consecutiveGatewayErrors?: number;
  readonly consecutiveConnectFailures?: number;
  readonly intervalMs?: number;
  readonly baseEjectionTimeMs?: number;
  readonly maxEjectionTimeMs?: number;
  readonly maxEjectionPercent?: number;
}

/** The three endpoint-level setting groups a service, a port or a subset can carry. */
export interface EndpointSettings {
  readonly loadBalancer?: LoadBalancerSettings;
  readonly connectionPool?: ConnectionPoolSettings;
  readonly outlierDetection?: OutlierDetectionSettings;
}

/** A named group of the service's endpoints, already resolved to workload uids (the agent has no labels over xDS). */
export interface TrafficSubset extends EndpointSettings {
  readonly name: string;
  /** The selector it came from (informational). */
  readonly labels: Readonly<Record<string, string>>;
  /** Workload uids in the snapshot's own uid form, sorted. */
  readonly workloadUids: readonly string[];
}

export interface PortTrafficSettings extends EndpointSettings {
  readonly port: number;
}

export interface RouteStringMatch {
  readonly kind: 'exact' | 'prefix' | 'regex';
  /** For `regex`: must match the whole value (RE2 / ECMAScript common subset). */
  readonly value: string;
}

/** All present fields must hold. */
export interface HttpRouteMatch {
  readonly path?: RouteStringMatch;
  readonly method?: RouteStringMatch;
  /** Lower-case header name → match. */
  readonly headers?: Readonly<Record<string, RouteStringMatch>>;
  /** Service port the request arrived on. */
  readonly port?: number;
}

export interface RouteDestination {
  /** Another service's key `<ns>/<name>`; absent = the service the policy belongs to. */
  readonly service?: string;
  /** A subset of the destination service; absent = all its endpoints. */
  readonly subset?: string;
  /** Target service port; absent = the port the request arrived on. */
  readonly port?: number;
  /** Relative weight. */
  readonly weight: number;
}

export interface RetrySettings {
  /** Retries after the first attempt; 0 disables retries; absent = agent default (2). */
  readonly attempts?: number;
  readonly perTryTimeoutMs?: number;
  /** Envoy condition names ("5xx", "gateway-error", "reset", "connect-failure", "refused-stream", "retriable-4xx") or status codes ("503"); empty = default. */
  readonly retryOn: readonly string[];
  readonly budget?: { readonly budgetPercent?: number; readonly minRetryConcurrency?: number };
}

export interface FaultSettings {
  readonly delay?: { readonly fixedDelayMs: number; readonly percent: number };
  readonly abort?: { readonly httpStatus: number; readonly percent: number };
}

export interface TrafficRoute {
  readonly name?: string;
  /** OR-ed; empty matches every request. */
  readonly matches: readonly HttpRouteMatch[];
  /** Weighted split; empty = the whole service. */
  readonly destinations: readonly RouteDestination[];
  readonly timeoutMs?: number;
  readonly retries?: RetrySettings;
  readonly fault?: FaultSettings;
}

export interface TokenBucketSettings {
  readonly ratePerSecond: number;
  /** Absent: one second's worth. */
  readonly burst?: number;
}

export interface RateLimitSettings {
  readonly requests?: TokenBucketSettings;
  readonly connections?: TokenBucketSettings;
  readonly bytes?: TokenBucketSettings;
}

/** Everything about how clients reach one service. Precedence for endpoint settings: subset > port > service. */
export interface ServiceTrafficPolicy extends EndpointSettings {
  /** `<namespace>/<name>` of the service (the key of MeshSnapshot.services). */
  readonly serviceKey: string;
  readonly subsets: readonly TrafficSubset[];
  /** Sorted by port. */
  readonly portSettings: readonly PortTrafficSettings[];
  /** HTTP routes in order; the first whose match holds wins. Only on HTTP ports. */
  readonly routes: readonly TrafficRoute[];
  readonly rateLimit?: RateLimitSettings;
}

/** Envoy's local-rate-limit token bucket: starts full; `tokensPerFill` tokens every `fillIntervalMs`, at most `maxTokens`. */
export interface LocalRateLimitSettings {
  readonly maxTokens: number;
  readonly tokensPerFill: number;
  readonly fillIntervalMs: number;
}

/** What a connection over a connection limit gets: reset at once, or held up to `maxWaitMs` for a token or slot. */
export interface OverLimitSettings {
  readonly action: 'reject' | 'queue';
  readonly maxWaitMs: number;
}

/** One resolved TrafficShaping rule (smesh.io/v1alpha1); every limit present must admit. */
export interface ShapingRule {
  /** `<namespace>/<TrafficShaping name>/<rule name>`. */
  readonly name: string;
  /** Destination service key `<ns>/<name>` the rule is limited to; absent = every destination. */
  readonly service?: string;
  readonly connectionRate?: LocalRateLimitSettings;
  readonly maxConnections?: number;
  readonly requestRate?: LocalRateLimitSettings;
  /** Which requests `requestRate` counts (OR-ed; empty = all). */
  readonly requestMatch: readonly HttpRouteMatch[];
  readonly overLimit: OverLimitSettings;
  /** Relay bandwidth each way, bits per second (the native engine enforces it per bucket scope). */
  readonly bytesPerSecond?: BytesPerSecondSettings;
  /** Destination service port the rule is limited to (with `service`); absent = every port. */
  readonly port?: number;
  /** QoS of the connections the rule matches; overrides the resource-level `WorkloadShaping.qos` field by field. */
  readonly qos?: QosSettings;
}

/** Relay priority classes of the native engine: latency before normal before bulk. */
export type TrafficPriority = 'latency' | 'normal' | 'bulk';

/** TrafficShaping QoS (resource or rule level); absent fields inherit (in the end: normal, weight 100, no DSCP). */
export interface QosSettings {
  readonly priority?: TrafficPriority;
  /** Fair-share weight 1-1000 of the source workload inside its priority class. */
  readonly weight?: number;
  /** DSCP 0-63 marked on the engine's sockets. */
  readonly dscp?: number;
}

/** Bits per second each way; absent = unlimited that way. upload = client → server. */
export interface BytesPerSecondSettings {
  readonly upload?: number;
  readonly download?: number;
}

/** The rules that apply to one workload: as a source (`outbound`) and as a destination (`inbound`). */
export interface WorkloadShaping {
  readonly workloadUid: string;
  readonly outbound: readonly ShapingRule[];
  readonly inbound: readonly ShapingRule[];
  /** Resource-level QoS (the first resource in `<ns>/<name>` order that sets each field). */
  readonly qos?: QosSettings;
}
