// Validates a decoded smesh.traffic.v1alpha1.TrafficShaping and converts it to the state model (WorkloadShaping); pure, reports the first bad field.
import type { Duration__Output } from '../../proto/generated/google/protobuf/Duration';
import type { HttpMatch__Output } from '../../proto/generated/smesh/traffic/v1alpha1/HttpMatch';
import type { QosClass__Output } from '../../proto/generated/smesh/traffic/v1alpha1/QosClass';
import type { LocalRateLimit__Output } from '../../proto/generated/smesh/traffic/v1alpha1/LocalRateLimit';
import type { RateLimitRule__Output } from '../../proto/generated/smesh/traffic/v1alpha1/RateLimitRule';
import type { StringMatch__Output } from '../../proto/generated/smesh/traffic/v1alpha1/StringMatch';
import type { TrafficShaping__Output } from '../../proto/generated/smesh/traffic/v1alpha1/TrafficShaping';
import type { BytesPerSecondSettings, HttpRouteMatch, LocalRateLimitSettings, QosSettings, RouteStringMatch, ShapingRule, TrafficPriority, WorkloadShaping } from '../../core/model/types';
import { TRAFFIC_PRIORITY } from '../../core/xds/contract';

/** Envoy's minimum fill interval; the agent refuses smaller ones rather than spin. */
const MIN_FILL_INTERVAL_MS = 50;
const MAX_QUEUE_WAIT_MS = 60_000;
const DEFAULT_QUEUE_WAIT_MS = 1000;
const q = JSON.stringify;
const MAX_WEIGHT = 1000;
/** The kubelet's bandwidth bounds (control/config/bandwidth.ts), bits per second. */
const MIN_BPS = 1e3;
const MAX_BPS = 1e15;

class ShapingFieldError extends Error {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(message);
  }
}

function fail(field: string, message: string): never {
  throw new ShapingFieldError(field, message);
}

function durationMs(field: string, d: Duration__Output | null): number | undefined {
  if (!d) return undefined;
  if (!Number.isInteger(d.seconds) || d.seconds < 0) fail(`${field}.seconds`, `expected a non-negative duration, got ${d.seconds}`);
  if (!Number.isInteger(d.nanos) || d.nanos < 0 || d.nanos > 999_999_999) fail(`${field}.nanos`, `expected 0-999999999, got ${d.nanos}`);
  return d.seconds * 1000 + d.nanos / 1e6;
}

function bucket(field: string, b: LocalRateLimit__Output | null): LocalRateLimitSettings | undefined {
  if (!b) return undefined;
  if (b.maxTokens < 1) fail(`${field}.max_tokens`, `expected at least 1, got ${b.maxTokens}`);
  const fillIntervalMs = durationMs(`${field}.fill_interval`, b.fillInterval);
  if (fillIntervalMs === undefined || fillIntervalMs < MIN_FILL_INTERVAL_MS)
    fail(`${field}.fill_interval`, `expected at least ${MIN_FILL_INTERVAL_MS}ms, got ${fillIntervalMs === undefined ? 'none' : `${fillIntervalMs}ms`}`);
  return { maxTokens: b.maxTokens, tokensPerFill: b.tokensPerFill === 0 ? 1 : b.tokensPerFill, fillIntervalMs };
}

function stringMatch(field: string, m: StringMatch__Output | null): RouteStringMatch | undefined {
  if (!m) return undefined;
  const kind = m.match;
  if (kind !== 'exact' && kind !== 'prefix' && kind !== 'regex') return fail(field, 'expected one of exact, prefix or regex to be set');
  const value = m[kind] ?? '';
  if (kind === 'regex') {
    try {
      new RegExp(`^(?:${value})$`);
    } catch (err) {
      fail(`${field}.regex`, `invalid regular expression: ${(err as Error).message}`);
    }
  }
  return { kind, value };
}

function match(field: string, m: HttpMatch__Output): HttpRouteMatch {
  const path = stringMatch(`${field}.path`, m.path);
  const method = stringMatch(`${field}.method`, m.method);
  const entries = Object.entries(m.headers ?? {});
  const headers: Record<string, RouteStringMatch> = {};
  for (const [k, v] of entries) headers[k] = stringMatch(`${field}.headers[${q(k)}]`, v)!;
  return { ...(path ? { path } : {}), ...(method ? { method } : {}), ...(entries.length > 0 ? { headers } : {}) };
}

function qos(field: string, c: QosClass__Output | null): QosSettings | undefined {
  if (!c) return undefined;
  const out: { priority?: TrafficPriority; weight?: number; dscp?: number } = {};
  if (c.priority !== 'PRIORITY_UNSPECIFIED') {
    const p = TRAFFIC_PRIORITY.fromWire(c.priority);
    if (!p) fail(`${field}.priority`, `expected LATENCY, NORMAL or BULK, got ${q(c.priority)}`);
    out.priority = p;
  }
  if (c.weight !== 0) {
    if (!Number.isInteger(c.weight) || c.weight > MAX_WEIGHT) fail(`${field}.weight`, `expected 1-${MAX_WEIGHT} (0 = unset), got ${c.weight}`);
    out.weight = c.weight;
  }
  if (c.dscp) {
    if (c.dscp.value > 63) fail(`${field}.dscp`, `expected 0-63, got ${c.dscp.value}`);
    out.dscp = c.dscp.value;
  }
  return Object.keys(out).length > 0 ? out : undefined;
}

function bandwidthBps(field: string, v: number): number | undefined {
  if (v === 0) return undefined;
  if (!Number.isInteger(v) || v < MIN_BPS || v > MAX_BPS) fail(field, `expected 0 (no limit) or ${MIN_BPS}-${MAX_BPS} bits per second, got ${v}`);
  return v;
}

function rule(field: string, r: RateLimitRule__Output, serviceKey: (ref: string) => string): ShapingRule {
  if (r.name === '') fail(`${field}.name`, 'expected a rule name, got an empty string');
  const connectionRate = bucket(`${field}.connection_rate`, r.connectionRate);
  const requestRate = bucket(`${field}.request_rate`, r.requestRate);
  let bytesPerSecond: BytesPerSecondSettings | undefined;
  if (r.bytesPerSecond) {
    const upload = bandwidthBps(`${field}.bytes_per_second.upload_bps`, r.bytesPerSecond.uploadBps);
    const download = bandwidthBps(`${field}.bytes_per_second.download_bps`, r.bytesPerSecond.downloadBps);
    if (upload === undefined && download === undefined) fail(`${field}.bytes_per_second`, 'expected upload_bps, download_bps or both');
    bytesPerSecond = { ...(upload !== undefined ? { upload } : {}), ...(download !== undefined ? { download } : {}) };
  }
  const ruleQos = qos(`${field}.qos`, r.qos);
  if (r.port > 65535) fail(`${field}.port`, `expected 0-65535, got ${r.port}`);
  if (r.port !== 0 && r.service === '') fail(`${field}.port`, 'a port needs service');
  if (!connectionRate && !requestRate && r.maxConnections === 0 && !bytesPerSecond && !ruleQos)
    fail(field, 'expected at least one of connection_rate, max_connections, request_rate, bytes_per_second, qos');
  if (r.service !== '' && !/^[^/]+\/[^/]+$/.test(r.service)) fail(`${field}.service`, `expected "namespace/hostname" or empty, got ${q(r.service)}`);
  const queue = r.overLimit?.action === 'QUEUE';
  let maxWaitMs = 0;
  if (queue) {
    maxWaitMs = durationMs(`${field}.over_limit.max_wait`, r.overLimit!.maxWait) ?? DEFAULT_QUEUE_WAIT_MS;
    if (maxWaitMs <= 0 || maxWaitMs > MAX_QUEUE_WAIT_MS) fail(`${field}.over_limit.max_wait`, `expected more than 0 and at most ${MAX_QUEUE_WAIT_MS}ms, got ${maxWaitMs}ms`);
  }
  return {
    name: r.name,
    ...(r.service !== '' ? { service: serviceKey(r.service) } : {}),
    ...(connectionRate ? { connectionRate } : {}),
    ...(r.maxConnections > 0 ? { maxConnections: r.maxConnections } : {}),
    ...(requestRate ? { requestRate } : {}),
    requestMatch: r.requestMatch.map((m, i) => match(`${field}.request_match[${i}]`, m)),
    overLimit: { action: queue ? 'queue' : 'reject', maxWaitMs },
    ...(bytesPerSecond ? { bytesPerSecond } : {}),
    ...(r.port !== 0 ? { port: r.port } : {}),
    ...(ruleQos ? { qos: ruleQos } : {}),
  };
}

/**
 * The state form of one TrafficShaping resource named `name` (a workload uid). Services stay as their wire
 * reference `namespace/hostname` until `serviceKey` maps them (the agent resolves them against Address services).
 */
export function parseTrafficShaping(
  name: string,
  s: TrafficShaping__Output,
  serviceKey: (ref: string) => string = (ref) => ref,
): { ok: true; shaping: WorkloadShaping } | { ok: false; field: string; message: string } {
  try {
    if (s.workloadUid !== name) fail('workload_uid', `expected the resource name ${q(name)}, got ${q(s.workloadUid)}`);
    if (s.inbound.some((r) => r.overLimit?.action === 'QUEUE'))
      fail(`inbound[${s.inbound.findIndex((r) => r.overLimit?.action === 'QUEUE')}].over_limit.action`, 'QUEUE is supported on outbound rules only');
    const resourceQos = qos('qos', s.qos);
    return {
      ok: true,
      shaping: {
        workloadUid: name,
        outbound: s.outbound.map((r, i) => rule(`outbound[${i}]`, r, serviceKey)),
        inbound: s.inbound.map((r, i) => rule(`inbound[${i}]`, r, serviceKey)),
        ...(resourceQos ? { qos: resourceQos } : {}),
      },
    };
  } catch (err) {
    if (err instanceof ShapingFieldError) return { ok: false, field: err.field, message: err.message };
    throw err;
  }
}
