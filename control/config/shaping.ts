// smesh.io/v1alpha1 TrafficShaping in file (and Kubernetes) config: schema, validation, and resolution into per-workload rate-limit rules.
//
// TrafficShaping.spec
//   selector.matchLabels      the workloads it applies to; absent = every workload of the namespace (the root namespace: the mesh)
//   outbound[]                rules on what the selected workloads originate; buckets per source workload (outbound proxy)
//   inbound[]                 rules on what the selected workloads receive; buckets per destination service (with `service`)
//                             or per destination workload (inbound proxy)
//     name                    rule name (DNS label; default `rule-<index>`), unique in the resource
//     service                 limit the rule to one destination Service (`name`, `name.ns`, `name.ns.svc.cluster.local`)
//     connectionRate          {maxTokens, tokensPerFill, fillInterval}: new connections (Envoy local rate limit)
//     maxConnections          concurrent connections
//     requestRate             {maxTokens, tokensPerFill, fillInterval}: HTTP requests (HTTP ports only)
//     match[]                 which requests requestRate counts and priority/weight classify (HTTP ports): {uri, method:
//                             {exact|prefix|regex}, headers: {name: {...}}}; a rule with match sets QoS per request, not
//                             per connection
//     overLimit               {action: Reject | Queue, maxWait}: a connection over a connection limit (Queue: outbound only)
//     bytesPerSecond          {upload, download}: relay bandwidth each way (native engine), Kubernetes bandwidth quantities
//                             in bits per second ("10M" = 10 Mbit/s) like kubernetes.io/egress-bandwidth; upload = client → server
//     port                    limit the rule to one destination service port (needs `service`)
//     priority, weight, dscp  QoS of the connections the rule matches (override the resource-level ones below)
//   priority                  latency | normal | bulk: relay class of the selected workloads' connections (default normal)
//   weight                    1-1000 (default 100): fair share of the selected workloads inside their class
//   dscp                      0-63: DSCP marked on the engine's sockets of their connections (default: not marked)
import { parseBandwidth } from './bandwidth';
import { checkWorkloadSelector, isDns1123Label } from './istio-names';
import { parseDurationMs, validate, type FieldProblem, type FieldSpec } from './schema';
import { resolveHost } from './istio-traffic';
import type {
  BytesPerSecondSettings,
  HttpRouteMatch,
  LocalRateLimitSettings,
  OverLimitSettings,
  QosSettings,
  RouteStringMatch,
  Service,
  ShapingRule,
  TrafficPriority,
  Workload,
  WorkloadShaping,
} from '../../core/model/types';

export const TRAFFIC_SHAPING_API_VERSION = 'smesh.io/v1alpha1';
/** Envoy's minimum fill interval for the local rate limit. */
export const MIN_FILL_INTERVAL_MS = 50;
export const DEFAULT_QUEUE_WAIT_MS = 1000;
/** A queued connection never waits longer than this, whatever the resource says. */
export const MAX_QUEUE_WAIT_MS = 60_000;
export const DEFAULT_FAIR_SHARE_WEIGHT = 100;
export const MAX_FAIR_SHARE_WEIGHT = 1000;
export const TRAFFIC_PRIORITIES: readonly TrafficPriority[] = ['latency', 'normal', 'bulk'];

const bucket: FieldSpec = { object: { fields: { maxTokens: 'integer', tokensPerFill: 'integer', fillInterval: 'duration' }, required: ['maxTokens', 'fillInterval'] } };
const stringMatch: FieldSpec = { object: { fields: { exact: 'string', prefix: 'string', regex: 'string' } } };
const requestMatch: FieldSpec = { object: { fields: { uri: stringMatch, method: stringMatch, headers: 'ignored' } } };
const rule: FieldSpec = {
  object: {
    fields: {
      name: 'nonEmptyString',
      service: 'nonEmptyString',
      connectionRate: bucket,
      maxConnections: 'integer',
      requestRate: bucket,
      match: { arrayOf: requestMatch },
      overLimit: { object: { fields: { action: { oneOf: ['Reject', 'Queue'] }, maxWait: 'duration' } } },
      bytesPerSecond: { object: { fields: { upload: 'ignored', download: 'ignored' } } },
      port: 'integer',
      priority: { oneOf: TRAFFIC_PRIORITIES },
      weight: 'integer',
      dscp: 'integer',
    },
  },
};

export const TRAFFIC_SHAPING_SPEC: FieldSpec = {
  object: {
    fields: {
      selector: { object: { fields: { matchLabels: 'stringMap' } } },
      outbound: { arrayOf: rule },
      inbound: { arrayOf: rule },
      priority: { oneOf: TRAFFIC_PRIORITIES },
      weight: 'integer',
      dscp: 'integer',
    },
  },
};

/** A rule before its service is resolved against the snapshot's services. */
interface UnresolvedRule extends Omit<ShapingRule, 'service'> {
  readonly host?: string;
  /** Field path of the rule, for resolution problems. */
  readonly path: string;
}

/** One validated TrafficShaping resource. */
export interface TrafficShapingConfig {
  readonly name: string;
  readonly namespace: string;
  /** Absent: every workload of the namespace (of the mesh, in the root namespace). */
  readonly selector?: Readonly<Record<string, string>>;
  readonly outbound: readonly UnresolvedRule[];
  readonly inbound: readonly UnresolvedRule[];
  readonly qos?: QosSettings;
}

type Obj = Record<string, any>;

function convertBucket(v: Obj, path: string, problems: FieldProblem[]): LocalRateLimitSettings | undefined {
  const before = problems.length;
  const maxTokens = v.maxTokens as number;
  const tokensPerFill = (v.tokensPerFill as number | undefined) ?? 1;
  const fillIntervalMs = parseDurationMs(v.fillInterval as string);
  if (maxTokens < 1 || maxTokens > 0xffffffff) problems.push({ field: `${path}.maxTokens`, message: `expected an integer 1-4294967295, got ${maxTokens}` });
  if (tokensPerFill < 1 || tokensPerFill > 0xffffffff) problems.push({ field: `${path}.tokensPerFill`, message: `expected an integer 1-4294967295 (default 1), got ${tokensPerFill}` });
  if (fillIntervalMs < MIN_FILL_INTERVAL_MS)
    problems.push({ field: `${path}.fillInterval`, message: `expected at least ${MIN_FILL_INTERVAL_MS}ms (Envoy's minimum), got ${JSON.stringify(v.fillInterval)}` });
  return problems.length === before ? { maxTokens, tokensPerFill, fillIntervalMs } : undefined;
}

function convertStringMatch(m: Obj, path: string, problems: FieldProblem[]): RouteStringMatch | undefined {
  const kinds = (['exact', 'prefix', 'regex'] as const).filter((k) => m[k] !== undefined && m[k] !== null);
  if (kinds.length !== 1) {
    problems.push({ field: path, message: `expected exactly one of exact, prefix, regex; got ${kinds.length === 0 ? 'none' : kinds.join(' and ')}` });
    return undefined;
  }
  const kind = kinds[0]!;
  const value = m[kind] as string;
  if (kind === 'regex') {
    try {
      new RegExp(`^(?:${value})$`);
    } catch (err) {
      problems.push({ field: `${path}.regex`, message: `invalid regular expression: ${(err as Error).message}` });
      return undefined;
    }
  }
  return { kind, value };
}

function convertMatch(m: Obj, path: string, problems: FieldProblem[]): HttpRouteMatch {
  const out: { path?: RouteStringMatch; method?: RouteStringMatch; headers?: Record<string, RouteStringMatch> } = {};
  if (m.uri) out.path = convertStringMatch(m.uri, `${path}.uri`, problems);
  if (m.method) out.method = convertStringMatch(m.method, `${path}.method`, problems);
  if (m.headers !== undefined && m.headers !== null) {
    if (typeof m.headers !== 'object' || Array.isArray(m.headers)) {
      problems.push({ field: `${path}.headers`, message: 'expected a mapping of lower-case header name → {exact|prefix|regex}' });
    } else {
      out.headers = {};
      for (const [name, hm] of Object.entries(m.headers as Obj)) {
        const hp = `${path}.headers[${name}]`;
        if (!/^[a-z0-9!#$%&'*+\-.^_`|~]+$/.test(name)) {
          problems.push({ field: hp, message: `expected a lower-case HTTP header name, got ${JSON.stringify(name)}` });
          continue;
        }
        const shape = validate(hm, stringMatch, hp);
        if (shape.length > 0) {
          problems.push(...shape);
          continue;
        }
        const sm = convertStringMatch(hm as Obj, hp, problems);
        if (sm) out.headers[name] = sm;
      }
    }
  }
  if (!m.uri && !m.method && !m.headers) problems.push({ field: path, message: 'expected at least one of uri, method, headers (an empty match counts every request: leave match out instead)' });
  return out;
}

/** priority / weight / dscp of a resource or rule (shape already checked); undefined when none is set. */
function convertQos(v: Obj, path: string, problems: FieldProblem[]): QosSettings | undefined {
  const out: { priority?: TrafficPriority; weight?: number; dscp?: number } = {};
  if (v.priority !== undefined && v.priority !== null) out.priority = v.priority as TrafficPriority;
  if (v.weight !== undefined && v.weight !== null) {
    if (v.weight < 1 || v.weight > MAX_FAIR_SHARE_WEIGHT)
      problems.push({ field: `${path}weight`, message: `expected an integer 1-${MAX_FAIR_SHARE_WEIGHT} (default ${DEFAULT_FAIR_SHARE_WEIGHT}), got ${v.weight}` });
    else out.weight = v.weight as number;
  }
  if (v.dscp !== undefined && v.dscp !== null) {
    if (v.dscp < 0 || v.dscp > 63) problems.push({ field: `${path}dscp`, message: `expected an integer 0-63 (a DSCP code point, e.g. 46 for EF), got ${v.dscp}` });
    else out.dscp = v.dscp as number;
  }
  return Object.keys(out).length > 0 ? out : undefined;
}

function convertBytesPerSecond(v: Obj, path: string, problems: FieldProblem[]): BytesPerSecondSettings | undefined {
  const out: { upload?: number; download?: number } = {};
  for (const dir of ['upload', 'download'] as const) {
    const raw = v[dir];
    if (raw === undefined || raw === null) continue;
    if (typeof raw !== 'string' && typeof raw !== 'number') {
      problems.push({ field: `${path}.${dir}`, message: `expected a bandwidth quantity in bits per second such as 10M, got ${JSON.stringify(raw)}` });
      continue;
    }
    const r = parseBandwidth(String(raw));
    if ('error' in r) problems.push({ field: `${path}.${dir}`, message: /bits per second/.test(r.error) ? r.error : `${r.error} (bits per second, as kubernetes.io/egress-bandwidth)` });
    else out[dir] = r.bitsPerSecond;
  }
  if (v.upload === undefined && v.download === undefined) problems.push({ field: path, message: 'expected upload, download or both' });
  return out.upload !== undefined || out.download !== undefined ? out : undefined;
}

function convertRule(r: Obj, path: string, index: number, direction: 'outbound' | 'inbound', resource: string, problems: FieldProblem[]): UnresolvedRule | undefined {
  const before = problems.length;
  const ruleName: string = r.name ?? `rule-${index}`;
  if (r.name !== undefined && !isDns1123Label(r.name)) problems.push({ field: `${path}.name`, message: `expected a DNS-1123 label (lower-case letters, digits, '-'), got ${JSON.stringify(r.name)}` });
  const connectionRate = r.connectionRate ? convertBucket(r.connectionRate, `${path}.connectionRate`, problems) : undefined;
  const requestRate = r.requestRate ? convertBucket(r.requestRate, `${path}.requestRate`, problems) : undefined;
  const maxConnections: number | undefined = r.maxConnections ?? undefined;
  if (maxConnections !== undefined && (maxConnections < 1 || maxConnections > 0xffffffff))
    problems.push({ field: `${path}.maxConnections`, message: `expected an integer 1-4294967295, got ${maxConnections}` });
  const bytesPerSecond = r.bytesPerSecond ? convertBytesPerSecond(r.bytesPerSecond, `${path}.bytesPerSecond`, problems) : undefined;
  const qos = convertQos(r, `${path}.`, problems);
  const port: number | undefined = r.port ?? undefined;
  if (port !== undefined) {
    if (port < 1 || port > 65535) problems.push({ field: `${path}.port`, message: `expected a service port 1-65535, got ${port}` });
    else if (!r.service) problems.push({ field: `${path}.port`, message: 'a port belongs to a service: set service too' });
  }
  if (!r.connectionRate && !r.requestRate && maxConnections === undefined && !r.bytesPerSecond && r.priority == null && r.weight == null && r.dscp == null) {
    problems.push({ field: path, message: 'expected at least one limit or QoS setting: connectionRate, maxConnections, requestRate, bytesPerSecond, priority, weight or dscp' });
  }
  const match = ((r.match ?? []) as Obj[]).map((m, i) => convertMatch(m, `${path}.match[${i}]`, problems));
  if (match.length > 0 && !r.requestRate && r.priority == null && r.weight == null)
    problems.push({ field: `${path}.match`, message: 'selects the requests requestRate counts or priority/weight classify: set requestRate, priority or weight, or leave match out' });
  const action: 'reject' | 'queue' = r.overLimit?.action === 'Queue' ? 'queue' : 'reject';
  let maxWaitMs = DEFAULT_QUEUE_WAIT_MS;
  if (r.overLimit?.maxWait !== undefined && r.overLimit?.maxWait !== null) {
    maxWaitMs = parseDurationMs(r.overLimit.maxWait);
    if (action !== 'queue') problems.push({ field: `${path}.overLimit.maxWait`, message: 'applies to action Queue only' });
    else if (maxWaitMs <= 0 || maxWaitMs > MAX_QUEUE_WAIT_MS)
      problems.push({ field: `${path}.overLimit.maxWait`, message: `expected more than 0 and at most ${MAX_QUEUE_WAIT_MS / 1000}s, got ${JSON.stringify(r.overLimit.maxWait)}` });
  }
  if (r.overLimit && !r.connectionRate && maxConnections === undefined)
    problems.push({ field: `${path}.overLimit`, message: 'applies to connection limits (connectionRate, maxConnections); requests over requestRate get 429' });
  if (action === 'queue' && direction === 'inbound')
    problems.push({ field: `${path}.overLimit.action`, message: 'Queue is supported on outbound rules only; an inbound connection over a limit gets HBONE status 429' });
  if (problems.length > before) return undefined;
  const overLimit: OverLimitSettings = { action, maxWaitMs: action === 'queue' ? maxWaitMs : 0 };
  return {
    name: `${resource}/${ruleName}`,
    path,
    ...(r.service ? { host: r.service as string } : {}),
    ...(connectionRate ? { connectionRate } : {}),
    ...(maxConnections !== undefined ? { maxConnections } : {}),
    ...(requestRate ? { requestRate } : {}),
    requestMatch: match,
    overLimit,
    ...(bytesPerSecond ? { bytesPerSecond } : {}),
    ...(port !== undefined ? { port } : {}),
    ...(qos ? { qos } : {}),
  };
}

/** Validates one TrafficShaping spec (already checked against TRAFFIC_SHAPING_SPEC for shape). */
export function convertTrafficShaping(name: string, namespace: string, spec: any): { shaping?: TrafficShapingConfig; problems: FieldProblem[] } {
  const problems: FieldProblem[] = [];
  const s: Obj = spec ?? {};
  const matchLabels = s.selector?.matchLabels;
  if (s.selector !== undefined && s.selector !== null) problems.push(...checkWorkloadSelector(matchLabels, 'spec.selector.matchLabels'));
  const resource = `${namespace}/${name}`;
  const rules = (direction: 'outbound' | 'inbound'): UnresolvedRule[] => {
    const list = (s[direction] ?? []) as Obj[];
    const seen = new Map<string, number>();
    const out: UnresolvedRule[] = [];
    list.forEach((r, i) => {
      const path = `spec.${direction}[${i}]`;
      const ruleName = r.name ?? `rule-${i}`;
      if (seen.has(ruleName)) problems.push({ field: `${path}.name`, message: `duplicate rule name ${JSON.stringify(ruleName)} (also spec.${direction}[${seen.get(ruleName)}])` });
      else seen.set(ruleName, i);
      const converted = convertRule(r, path, i, direction, resource, problems);
      if (converted) out.push(converted);
    });
    return out;
  };
  const outbound = rules('outbound');
  const inbound = rules('inbound');
  const qos = convertQos(s, 'spec.', problems);
  if (outbound.length === 0 && inbound.length === 0 && !qos && problems.length === 0)
    problems.push({ field: 'spec', message: 'expected at least one rule in spec.outbound or spec.inbound, or a priority, weight or dscp' });
  if (problems.length > 0) return { problems };
  const hasSelector = matchLabels !== undefined && matchLabels !== null && Object.keys(matchLabels).length > 0;
  return { shaping: { name, namespace, ...(hasSelector ? { selector: { ...matchLabels } } : {}), outbound, inbound, ...(qos ? { qos } : {}) }, problems };
}

/** A problem found while resolving a resource against the mesh (a service that does not exist). */
export interface ShapingResolutionProblem {
  readonly namespace: string;
  readonly name: string;
  readonly field: string;
  readonly message: string;
}

function selects(c: TrafficShapingConfig, w: Workload, rootNamespace: string): boolean {
  if (c.namespace !== rootNamespace && c.namespace !== w.namespace) return false;
  if (!c.selector) return true;
  return Object.entries(c.selector).every(([k, v]) => w.labels[k] === v);
}

/**
 * Resolves validated TrafficShapings into the rules per workload: services by host, workloads by selector (the
 * resource's namespace; every namespace from the root namespace). A resource with an unresolvable service
 * contributes nothing. Rules keep resource order (sorted by `<ns>/<name>`), then rule order.
 */
export function resolveTrafficShaping(
  configs: readonly TrafficShapingConfig[],
  workloads: ReadonlyMap<string, Workload>,
  services: ReadonlyMap<string, Service>,
  rootNamespace: string,
): { shaping: Map<string, WorkloadShaping>; problems: ShapingResolutionProblem[] } {
  const problems: ShapingResolutionProblem[] = [];
  const resolved: Array<{ config: TrafficShapingConfig; outbound: ShapingRule[]; inbound: ShapingRule[] }> = [];
  const sorted = [...configs].sort((a, b) => (`${a.namespace}/${a.name}` < `${b.namespace}/${b.name}` ? -1 : 1));
  for (const c of sorted) {
    let ok = true;
    const resolveRules = (rules: readonly UnresolvedRule[]): ShapingRule[] =>
      rules.map(({ host, path, ...rest }) => {
        if (host === undefined) return rest;
        const r = resolveHost(host, c.namespace, services);
        if ('error' in r) {
          problems.push({ namespace: c.namespace, name: c.name, field: `${path}.service`, message: r.error });
          ok = false;
          return rest;
        }
        return { ...rest, service: r.key };
      });
    const outbound = resolveRules(c.outbound);
    const inbound = resolveRules(c.inbound);
    if (ok) resolved.push({ config: c, outbound, inbound });
  }
  const shaping = new Map<string, WorkloadShaping>();
  if (resolved.length === 0) return { shaping, problems };
  for (const uid of [...workloads.keys()].sort()) {
    const w = workloads.get(uid)!;
    if (!w.meshed) continue;
    const outbound: ShapingRule[] = [];
    const inbound: ShapingRule[] = [];
    let qos: QosSettings | undefined;
    for (const r of resolved) {
      if (!selects(r.config, w, rootNamespace)) continue;
      outbound.push(...r.outbound);
      inbound.push(...r.inbound);
      if (r.config.qos) qos = { ...r.config.qos, ...qos };
    }
    if (outbound.length > 0 || inbound.length > 0 || qos) shaping.set(uid, { workloadUid: uid, outbound, inbound, ...(qos ? { qos } : {}) });
  }
  return { shaping, problems };
}
