// Encodes each workload's resolved TrafficShaping rules as smesh.traffic.v1alpha1.TrafficShaping (one per workload uid, service names in their wire form).
import type { HttpMatch } from '../proto/generated/smesh/traffic/v1alpha1/HttpMatch';
import type { QosClass } from '../proto/generated/smesh/traffic/v1alpha1/QosClass';
import type { LocalRateLimit } from '../proto/generated/smesh/traffic/v1alpha1/LocalRateLimit';
import type { RateLimitRule } from '../proto/generated/smesh/traffic/v1alpha1/RateLimitRule';
import type { StringMatch } from '../proto/generated/smesh/traffic/v1alpha1/StringMatch';
import type { TrafficShaping } from '../proto/generated/smesh/traffic/v1alpha1/TrafficShaping';
import type { HttpRouteMatch, LocalRateLimitSettings, MeshSnapshot, QosSettings, RouteStringMatch, ShapingRule, WorkloadShaping } from '../core/model/types';
import { TRAFFIC_PRIORITY } from '../core/xds/contract';
import { durationToWire, type TrafficNaming } from './traffic-encode';

function bucketToWire(b: LocalRateLimitSettings | undefined): LocalRateLimit | null {
  return b ? { maxTokens: b.maxTokens, tokensPerFill: b.tokensPerFill, fillInterval: durationToWire(b.fillIntervalMs) } : null;
}

function stringMatchToWire(m: RouteStringMatch | undefined): StringMatch | null {
  return m ? { [m.kind]: m.value } : null;
}

function matchToWire(m: HttpRouteMatch): HttpMatch {
  const headers: Record<string, StringMatch> = {};
  for (const [k, v] of Object.entries(m.headers ?? {})) headers[k] = stringMatchToWire(v)!;
  return { path: stringMatchToWire(m.path), method: stringMatchToWire(m.method), headers, port: 0 };
}

function qosToWire(q: QosSettings | undefined): QosClass | null {
  if (!q) return null;
  return { priority: q.priority ? TRAFFIC_PRIORITY.toWire[q.priority] : 'PRIORITY_UNSPECIFIED', weight: q.weight ?? 0, dscp: q.dscp !== undefined ? { value: q.dscp } : null };
}

function ruleToWire(r: ShapingRule, naming: TrafficNaming): RateLimitRule {
  return {
    name: r.name,
    service: r.service ? naming.serviceName(r.service) : '',
    connectionRate: bucketToWire(r.connectionRate),
    maxConnections: r.maxConnections ?? 0,
    requestRate: bucketToWire(r.requestRate),
    requestMatch: r.requestMatch.map(matchToWire),
    overLimit: { action: r.overLimit.action === 'queue' ? 'QUEUE' : 'REJECT', maxWait: r.overLimit.action === 'queue' ? durationToWire(r.overLimit.maxWaitMs) : null },
    bytesPerSecond: r.bytesPerSecond ? { uploadBps: r.bytesPerSecond.upload ?? 0, downloadBps: r.bytesPerSecond.download ?? 0 } : null,
    port: r.port ?? 0,
    qos: qosToWire(r.qos),
  };
}

/** The TrafficShaping message of one workload; its resource name is the workload's wire uid. */
export function trafficShapingMessage(s: WorkloadShaping, naming: TrafficNaming): TrafficShaping {
  return {
    workloadUid: naming.workloadUid(s.workloadUid),
    limits: null,
    maxConnections: 0,
    fairShareWeight: 0,
    outbound: s.outbound.map((r) => ruleToWire(r, naming)),
    inbound: s.inbound.map((r) => ruleToWire(r, naming)),
    qos: qosToWire(s.qos),
  };
}

/** Every workload's TrafficShaping message, by resource name (wire uid). */
export function trafficShapingMessages(snapshot: MeshSnapshot, naming: TrafficNaming): Map<string, TrafficShaping> {
  const out = new Map<string, TrafficShaping>();
  for (const s of snapshot.trafficShaping?.values() ?? []) {
    const msg = trafficShapingMessage(s, naming);
    out.set(msg.workloadUid!, msg);
  }
  return out;
}
