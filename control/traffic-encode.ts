// Encodes a service's compiled traffic policy (DestinationRule + VirtualService) as smesh.traffic.v1alpha1.TrafficPolicy: workload uids and service names in their wire form.
import type { ConnectionPool } from '../proto/generated/smesh/traffic/v1alpha1/ConnectionPool';
import type { HttpRoute } from '../proto/generated/smesh/traffic/v1alpha1/HttpRoute';
import type { HttpMatch } from '../proto/generated/smesh/traffic/v1alpha1/HttpMatch';
import type { LoadBalancer } from '../proto/generated/smesh/traffic/v1alpha1/LoadBalancer';
import type { OutlierDetection } from '../proto/generated/smesh/traffic/v1alpha1/OutlierDetection';
import type { RateLimit } from '../proto/generated/smesh/traffic/v1alpha1/RateLimit';
import type { StringMatch } from '../proto/generated/smesh/traffic/v1alpha1/StringMatch';
import type { TrafficPolicy } from '../proto/generated/smesh/traffic/v1alpha1/TrafficPolicy';
import type { Duration } from '../proto/generated/google/protobuf/Duration';
import type {
  ConnectionPoolSettings,
  EndpointSettings,
  LoadBalancerSettings,
  MeshSnapshot,
  OutlierDetectionSettings,
  RateLimitSettings,
  RouteStringMatch,
  ServiceTrafficPolicy,
  TokenBucketSettings,
} from '../core/model/types';

/** Wire forms the encoder needs from the control plane's naming (kept here so this module has no cycle with resources.ts). */
export interface TrafficNaming {
  /** `<ns>/<name>` → `<ns>/<hostname>`. */
  serviceName(serviceKey: string): string;
  /** State uid → istio.workload.Workload uid. */
  workloadUid(stateUid: string): string;
}

export function durationToWire(ms: number | undefined): Duration | null {
  if (ms === undefined) return null;
  const seconds = Math.floor(ms / 1000);
  return { seconds, nanos: Math.round((ms - seconds * 1000) * 1e6) };
}

function u32(v: number | undefined): { value: number } | null {
  return v === undefined ? null : { value: v };
}

function loadBalancerToWire(lb: LoadBalancerSettings | undefined): LoadBalancer | null {
  if (!lb) return null;
  const out: LoadBalancer = {
    locality: lb.locality ? { prefer: [...lb.locality.prefer], failover: lb.locality.failover.map((f) => ({ from: f.from, to: f.to })), strict: lb.locality.strict } : null,
    choiceCount: lb.choiceCount ?? 0,
    ewmaDecay: durationToWire(lb.ewmaDecayMs),
  };
  if (lb.consistentHash) {
    const k = lb.consistentHash.key;
    const ch: NonNullable<LoadBalancer['consistentHash']> = { tableSize: lb.consistentHash.tableSize ?? 0 };
    if (k.kind === 'header') ch.httpHeaderName = k.name;
    else if (k.kind === 'cookie') ch.httpCookie = { name: k.name, path: k.path ?? '', ttl: durationToWire(k.ttlMs) };
    else if (k.kind === 'sourceIp') ch.useSourceIp = true;
    else ch.httpQueryParameterName = k.name;
    out.consistentHash = ch;
  } else if (lb.algorithm) {
    out.simple = lb.algorithm;
  }
  return out;
}

function connectionPoolToWire(cp: ConnectionPoolSettings | undefined): ConnectionPool | null {
  if (!cp) return null;
  return {
    maxConnections: cp.maxConnections ?? 0,
    maxPendingRequests: cp.maxPendingRequests ?? 0,
    maxRequests: cp.maxRequests ?? 0,
    maxRetries: cp.maxRetries ?? 0,
    connectTimeout: durationToWire(cp.connectTimeoutMs),
    maxRequestsPerConnection: cp.maxRequestsPerConnection ?? 0,
    idleTimeout: durationToWire(cp.idleTimeoutMs),
  };
}

function outlierDetectionToWire(od: OutlierDetectionSettings | undefined): OutlierDetection | null {
  if (!od) return null;
  return {
    consecutiveServerErrors: u32(od.consecutiveServerErrors),
    consecutiveGatewayErrors: u32(od.consecutiveGatewayErrors),
    consecutiveConnectFailures: u32(od.consecutiveConnectFailures),
    interval: durationToWire(od.intervalMs),
    baseEjectionTime: durationToWire(od.baseEjectionTimeMs),
    maxEjectionTime: durationToWire(od.maxEjectionTimeMs),
    maxEjectionPercent: u32(od.maxEjectionPercent),
  };
}

function settingsToWire(s: EndpointSettings): Pick<TrafficPolicy, 'loadBalancer' | 'connectionPool' | 'outlierDetection'> {
  return { loadBalancer: loadBalancerToWire(s.loadBalancer), connectionPool: connectionPoolToWire(s.connectionPool), outlierDetection: outlierDetectionToWire(s.outlierDetection) };
}

function stringMatchToWire(m: RouteStringMatch | undefined): StringMatch | null {
  return m ? { [m.kind]: m.value } : null;
}

function bucketToWire(b: TokenBucketSettings | undefined): { ratePerSecond: number; burst: number } | null {
  return b ? { ratePerSecond: b.ratePerSecond, burst: b.burst ?? 0 } : null;
}

function rateLimitToWire(r: RateLimitSettings | undefined): RateLimit | null {
  return r ? { requests: bucketToWire(r.requests), connections: bucketToWire(r.connections), bytes: bucketToWire(r.bytes) } : null;
}

/** The TrafficPolicy message for one service; its resource name is the service's `<ns>/<hostname>`. */
export function trafficPolicyMessage(p: ServiceTrafficPolicy, naming: TrafficNaming): TrafficPolicy {
  const name = naming.serviceName(p.serviceKey);
  const slash = name.indexOf('/');
  return {
    namespace: name.slice(0, slash),
    hostname: name.slice(slash + 1),
    ...settingsToWire(p),
    subsets: p.subsets.map((s) => ({ name: s.name, labels: { ...s.labels }, workloadUids: s.workloadUids.map((u) => naming.workloadUid(u)), ...settingsToWire(s) })),
    portLevelSettings: p.portSettings.map((ps) => ({ port: ps.port, ...settingsToWire(ps) })),
    routes: p.routes.map(
      (r): HttpRoute => ({
        name: r.name ?? '',
        match: r.matches.map(
          (m): HttpMatch => ({
            path: stringMatchToWire(m.path),
            method: stringMatchToWire(m.method),
            headers: Object.fromEntries(Object.entries(m.headers ?? {}).map(([k, v]) => [k, stringMatchToWire(v)!])),
            port: m.port ?? 0,
          }),
        ),
        destinations: r.destinations.map((d) => ({ subset: d.subset ?? '', weight: d.weight, service: d.service ? naming.serviceName(d.service) : '', port: d.port ?? 0 })),
        timeout: durationToWire(r.timeoutMs),
        retries: r.retries
          ? {
              attempts: u32(r.retries.attempts),
              perTryTimeout: durationToWire(r.retries.perTryTimeoutMs),
              retryOn: [...r.retries.retryOn],
              budget: r.retries.budget ? { budgetPercent: r.retries.budget.budgetPercent ?? 0, minRetryConcurrency: r.retries.budget.minRetryConcurrency ?? 0 } : null,
            }
          : null,
        fault: r.fault
          ? {
              delay: r.fault.delay ? { fixedDelay: durationToWire(r.fault.delay.fixedDelayMs), percent: r.fault.delay.percent } : null,
              abort: r.fault.abort ? { httpStatus: r.fault.abort.httpStatus, percent: r.fault.abort.percent } : null,
            }
          : null,
      }),
    ),
    rateLimit: rateLimitToWire(p.rateLimit),
  };
}

/** Every service's policy, by resource name. Policies for services not in the snapshot are skipped. */
export function trafficPolicyMessages(snapshot: MeshSnapshot, naming: TrafficNaming): Map<string, TrafficPolicy> {
  const out = new Map<string, TrafficPolicy>();
  for (const [key, p] of snapshot.trafficPolicies ?? []) {
    if (!snapshot.services.has(key)) continue;
    out.set(naming.serviceName(key), trafficPolicyMessage(p, naming));
  }
  return out;
}
