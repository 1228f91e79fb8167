// Validates a decoded smesh.traffic.v1alpha1.TrafficPolicy and converts it to the state model (ServiceTrafficPolicy); pure, never throws.
import type { Duration__Output } from '../../proto/generated/google/protobuf/Duration';
import type { ConnectionPool__Output } from '../../proto/generated/smesh/traffic/v1alpha1/ConnectionPool';
import type { LoadBalancer__Output } from '../../proto/generated/smesh/traffic/v1alpha1/LoadBalancer';
import type { OutlierDetection__Output } from '../../proto/generated/smesh/traffic/v1alpha1/OutlierDetection';
import type { RateLimit__Output } from '../../proto/generated/smesh/traffic/v1alpha1/RateLimit';
import type { StringMatch__Output } from '../../proto/generated/smesh/traffic/v1alpha1/StringMatch';
import type { TokenBucket__Output } from '../../proto/generated/smesh/traffic/v1alpha1/TokenBucket';
import type { TrafficPolicy__Output } from '../../proto/generated/smesh/traffic/v1alpha1/TrafficPolicy';
import type {
  ConnectionPoolSettings,
  EndpointSettings,
  HashKey,
  HttpRouteMatch,
  LoadBalancerAlgorithm,
  LoadBalancerSettings,
  LocalityScope,
  OutlierDetectionSettings,
  RateLimitSettings,
  RetrySettings,
  RouteDestination,
  RouteStringMatch,
  ServiceTrafficPolicy,
  TokenBucketSettings,
  TrafficRoute,
  TrafficSubset,
} from '../../core/model/types';

class TrafficFieldError extends Error {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(message);
  }
}

function fail(field: string, message: string): never {
  throw new TrafficFieldError(field, message);
}

const q = JSON.stringify;
const DNS_LABEL_RE = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const ALGORITHMS: readonly LoadBalancerAlgorithm[] = ['ROUND_ROBIN', 'LEAST_REQUEST', 'PEAK_EWMA', 'RANDOM'];
const SCOPES: readonly LocalityScope[] = ['REGION', 'ZONE', 'SUBZONE', 'NODE'];
const RETRY_ON = ['5xx', 'gateway-error', 'reset', 'connect-failure', 'refused-stream', 'retriable-4xx'];

function compact<T extends object>(o: T): T | undefined {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(o)) if (v !== undefined) out[k] = v;
  return Object.keys(out).length > 0 ? (out as T) : undefined;
}

function duration(field: string, d: Duration__Output | null): number | undefined {
  if (!d) return undefined;
  if (!Number.isInteger(d.seconds) || d.seconds < 0 || d.seconds > 315_576_000_000) fail(`${field}.seconds`, `expected a non-negative duration, got ${d.seconds}`);
  if (!Number.isInteger(d.nanos) || d.nanos < 0 || d.nanos > 999_999_999) fail(`${field}.nanos`, `expected 0-999999999, got ${d.nanos}`);
  return d.seconds * 1000 + d.nanos / 1e6;
}

function positive(field: string, d: Duration__Output | null): number | undefined {
  const v = duration(field, d);
  if (v === 0) fail(field, 'expected a positive duration (omit the field for the default)');
  return v;
}

function nonZero(v: number): number | undefined {
  return v === 0 ? undefined : v;
}

/** Name of the service a `<namespace>/<hostname>` reference denotes: `<ns>/<name>` for Kubernetes hostnames. */
export function serviceKeyFromRef(ref: string): string {
  const slash = ref.indexOf('/');
  const ns = ref.slice(0, slash);
  const host = ref.slice(slash + 1);
  const m = /^([^.]+)\.([^.]+)\.svc(\..*)?$/.exec(host);
  return m && m[2] === ns ? `${ns}/${m[1]}` : ref;
}

function checkRef(field: string, ref: string): void {
  const slash = ref.indexOf('/');
  if (slash <= 0 || slash === ref.length - 1 || ref.indexOf('/', slash + 1) !== -1) fail(field, `expected "<namespace>/<hostname>", got ${q(ref)}`);
}

function loadBalancer(field: string, lb: LoadBalancer__Output | null): LoadBalancerSettings | undefined {
  if (!lb) return undefined;
  let algorithm: LoadBalancerAlgorithm | undefined;
  let consistentHash: LoadBalancerSettings['consistentHash'];
  if (lb.policy === 'simple') {
    const s = String(lb.simple);
    if (s !== 'SIMPLE_UNSPECIFIED') {
      if (!ALGORITHMS.includes(s as LoadBalancerAlgorithm)) fail(`${field}.simple`, `expected one of ${ALGORITHMS.join(', ')}, got ${q(lb.simple)}`);
      algorithm = s as LoadBalancerAlgorithm;
    }
  } else if (lb.policy === 'consistentHash' && lb.consistentHash) {
    const ch = lb.consistentHash;
    const f = `${field}.consistent_hash`;
    let key: HashKey;
    switch (ch.hashKey) {
      case 'httpHeaderName':
        if (!ch.httpHeaderName) fail(`${f}.http_header_name`, 'expected a header name, got an empty string');
        key = { kind: 'header', name: ch.httpHeaderName! };
        break;
      case 'httpCookie': {
        const c = ch.httpCookie;
        if (!c?.name) fail(`${f}.http_cookie.name`, 'expected a cookie name, got an empty string');
        key = compact({ kind: 'cookie' as const, name: c!.name, path: c!.path || undefined, ttlMs: duration(`${f}.http_cookie.ttl`, c!.ttl) })!;
        break;
      }
      case 'useSourceIp':
        if (!ch.useSourceIp) fail(`${f}.use_source_ip`, 'expected true (false hashes nothing)');
        key = { kind: 'sourceIp' };
        break;
      case 'httpQueryParameterName':
        if (!ch.httpQueryParameterName) fail(`${f}.http_query_parameter_name`, 'expected a parameter name, got an empty string');
        key = { kind: 'queryParameter', name: ch.httpQueryParameterName! };
        break;
      default:
        return fail(f, 'expected one hash key (http_header_name, http_cookie, use_source_ip, http_query_parameter_name)');
    }
    consistentHash = compact({ key, tableSize: nonZero(ch.tableSize) });
  }
  let locality: LoadBalancerSettings['locality'];
  if (lb.locality) {
    const prefer = lb.locality.prefer.map((s, i) => {
      if (!SCOPES.includes(String(s) as LocalityScope)) fail(`${field}.locality.prefer[${i}]`, `expected one of ${SCOPES.join(', ')}, got ${q(s)}`);
      return String(s) as LocalityScope;
    });
    const failover = lb.locality.failover.map((x, i) => {
      if (!x.from || !x.to) fail(`${field}.locality.failover[${i}]`, `expected non-empty from and to regions, got ${q({ from: x.from, to: x.to })}`);
      return { from: x.from, to: x.to };
    });
    locality = { prefer, failover, strict: lb.locality.strict };
  }
  if (lb.choiceCount === 1) fail(`${field}.choice_count`, 'expected 0 (default 2) or at least 2, got 1');
  const choiceCount = nonZero(lb.choiceCount);
  if (choiceCount !== undefined && algorithm !== undefined && algorithm !== 'LEAST_REQUEST') fail(`${field}.choice_count`, `only applies to LEAST_REQUEST, not ${algorithm}`);
  const ewmaDecayMs = positive(`${field}.ewma_decay`, lb.ewmaDecay);
  if (ewmaDecayMs !== undefined && algorithm !== 'PEAK_EWMA') fail(`${field}.ewma_decay`, `only applies to PEAK_EWMA, not ${algorithm ?? 'the default'}`);
  return compact({ algorithm, consistentHash, locality, choiceCount, ewmaDecayMs });
}

function connectionPool(field: string, cp: ConnectionPool__Output | null): ConnectionPoolSettings | undefined {
  if (!cp) return undefined;
  return compact({
    maxConnections: nonZero(cp.maxConnections),
    maxPendingRequests: nonZero(cp.maxPendingRequests),
    maxRequests: nonZero(cp.maxRequests),
    maxRetries: nonZero(cp.maxRetries),
    connectTimeoutMs: positive(`${field}.connect_timeout`, cp.connectTimeout),
    maxRequestsPerConnection: nonZero(cp.maxRequestsPerConnection),
    idleTimeoutMs: positive(`${field}.idle_timeout`, cp.idleTimeout),
  });
}

function outlierDetection(field: string, od: OutlierDetection__Output | null): OutlierDetectionSettings | undefined {
  if (!od) return undefined;
  const pct = od.maxEjectionPercent?.value;
  if (pct !== undefined && pct > 100) fail(`${field}.max_ejection_percent`, `expected a percentage 0-100, got ${pct}`);
  const baseEjectionTimeMs = positive(`${field}.base_ejection_time`, od.baseEjectionTime);
  const maxEjectionTimeMs = positive(`${field}.max_ejection_time`, od.maxEjectionTime);
  if (baseEjectionTimeMs !== undefined && maxEjectionTimeMs !== undefined && maxEjectionTimeMs < baseEjectionTimeMs) {
    fail(`${field}.max_ejection_time`, `expected at least base_ejection_time (${baseEjectionTimeMs}ms), got ${maxEjectionTimeMs}ms`);
  }
  return compact({
    consecutiveServerErrors: od.consecutiveServerErrors?.value,
    consecutiveGatewayErrors: od.consecutiveGatewayErrors?.value,
    consecutiveConnectFailures: od.consecutiveConnectFailures?.value,
    intervalMs: positive(`${field}.interval`, od.interval),
    baseEjectionTimeMs,
    maxEjectionTimeMs,
    maxEjectionPercent: pct,
  });
}

function settings(field: string, s: { loadBalancer: LoadBalancer__Output | null; connectionPool: ConnectionPool__Output | null; outlierDetection: OutlierDetection__Output | null }): EndpointSettings {
  return (
    compact({
      loadBalancer: loadBalancer(`${field}load_balancer`, s.loadBalancer),
      connectionPool: connectionPool(`${field}connection_pool`, s.connectionPool),
      outlierDetection: outlierDetection(`${field}outlier_detection`, s.outlierDetection),
    }) ?? {}
  );
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

function bucket(field: string, b: TokenBucket__Output | null): TokenBucketSettings | undefined {
  if (!b) return undefined;
  if (!(b.ratePerSecond > 0)) fail(`${field}.rate_per_second`, `expected a positive rate, got ${b.ratePerSecond}`);
  return compact({ ratePerSecond: b.ratePerSecond, burst: nonZero(b.burst) }) as TokenBucketSettings;
}

function rateLimit(field: string, r: RateLimit__Output | null): RateLimitSettings | undefined {
  if (!r) return undefined;
  return compact({ requests: bucket(`${field}.requests`, r.requests), connections: bucket(`${field}.connections`, r.connections), bytes: bucket(`${field}.bytes`, r.bytes) });
}

function percent(field: string, v: number): number {
  if (!(v >= 0 && v <= 100)) fail(field, `expected a percentage 0-100, got ${v}`);
  return v;
}

function port(field: string, p: number): number | undefined {
  if (!Number.isInteger(p) || p < 0 || p > 65535) fail(field, `expected a port 1-65535 (0 = unset), got ${p}`);
  return nonZero(p);
}

function parse(name: string, p: TrafficPolicy__Output): ServiceTrafficPolicy {
  if (!DNS_LABEL_RE.test(p.namespace)) fail('namespace', `expected a Kubernetes namespace name, got ${q(p.namespace)}`);
  if (p.hostname === '') fail('hostname', 'expected the service hostname, got an empty string');
  if (name !== `${p.namespace}/${p.hostname}`) fail('hostname', `expected the resource name ${q(name)} to be "<namespace>/<hostname>" = ${q(`${p.namespace}/${p.hostname}`)}`);

  const subsets: TrafficSubset[] = [];
  p.subsets.forEach((s, i) => {
    const f = `subsets[${i}]`;
    if (s.name === '') fail(`${f}.name`, 'expected a subset name, got an empty string');
    if (subsets.some((x) => x.name === s.name)) fail(`${f}.name`, `subset ${q(s.name)} is listed twice`);
    s.workloadUids.forEach((u, j) => {
      if (u === '') fail(`${f}.workload_uids[${j}]`, 'expected a workload uid, got an empty string');
    });
    subsets.push({ name: s.name, labels: { ...s.labels }, workloadUids: [...s.workloadUids].sort(), ...settings(`${f}.`, s) });
  });

  const portSettings = p.portLevelSettings.map((ps, i) => {
    const f = `port_level_settings[${i}]`;
    const n = port(`${f}.port`, ps.port);
    if (n === undefined) fail(`${f}.port`, 'expected a port 1-65535, got 0');
    if (p.portLevelSettings.findIndex((x) => x.port === ps.port) !== i) fail(`${f}.port`, `port ${ps.port} is listed twice`);
    return { port: n!, ...settings(`${f}.`, ps) };
  });
  portSettings.sort((a, b) => a.port - b.port);

  const routes: TrafficRoute[] = p.routes.map((r, i) => {
    const f = `routes[${i}]`;
    const matches: HttpRouteMatch[] = r.match.map((m, j) => {
      const mf = `${f}.match[${j}]`;
      const headers: Record<string, RouteStringMatch> = {};
      for (const [h, hm] of Object.entries(m.headers ?? {})) {
        if (h === '' || h !== h.toLowerCase()) fail(`${mf}.headers[${q(h)}]`, `expected a lower-case header name, got ${q(h)}`);
        headers[h] = stringMatch(`${mf}.headers[${q(h)}]`, hm)!;
        if (!headers[h]) fail(`${mf}.headers[${q(h)}]`, 'expected a match');
      }
      return (
        compact({
          path: stringMatch(`${mf}.path`, m.path),
          method: stringMatch(`${mf}.method`, m.method),
          headers: Object.keys(headers).length > 0 ? headers : undefined,
          port: port(`${mf}.port`, m.port),
        }) ?? {}
      );
    });
    let total = 0;
    const destinations: RouteDestination[] = r.destinations.map((d, j) => {
      const df = `${f}.destinations[${j}]`;
      if (d.service !== '') checkRef(`${df}.service`, d.service);
      const own = d.service === '' || d.service === name;
      if (own && d.subset !== '' && !subsets.some((s) => s.name === d.subset))
        fail(`${df}.subset`, `no subset ${q(d.subset)} in this policy (subsets: ${subsets.map((s) => s.name).join(', ') || 'none'})`);
      total += d.weight;
      return compact({ service: own ? undefined : serviceKeyFromRef(d.service), subset: d.subset || undefined, port: port(`${df}.port`, d.port), weight: d.weight }) as RouteDestination;
    });
    if (destinations.length > 0 && total === 0) fail(`${f}.destinations`, 'expected at least one destination with a positive weight');
    let retries: RetrySettings | undefined;
    if (r.retries) {
      const rf = `${f}.retries`;
      r.retries.retryOn.forEach((c, k) => {
        if (!RETRY_ON.includes(c) && !/^[1-5]\d\d$/.test(c)) fail(`${rf}.retry_on[${k}]`, `expected a status code or one of ${RETRY_ON.join(', ')}, got ${q(c)}`);
      });
      const b = r.retries.budget;
      if (b && !(b.budgetPercent >= 0 && b.budgetPercent <= 100)) fail(`${rf}.budget.budget_percent`, `expected a percentage 0-100, got ${b.budgetPercent}`);
      retries = compact({
        attempts: r.retries.attempts?.value,
        perTryTimeoutMs: positive(`${rf}.per_try_timeout`, r.retries.perTryTimeout),
        retryOn: [...r.retries.retryOn],
        budget: b ? (compact({ budgetPercent: nonZero(b.budgetPercent), minRetryConcurrency: nonZero(b.minRetryConcurrency) }) ?? {}) : undefined,
      }) as RetrySettings;
    }
    let fault: TrafficRoute['fault'];
    if (r.fault) {
      const ff = `${f}.fault`;
      const { delay, abort } = r.fault;
      if (delay && !delay.fixedDelay) fail(`${ff}.delay.fixed_delay`, 'expected a duration');
      if (abort && (abort.httpStatus < 200 || abort.httpStatus > 599)) fail(`${ff}.abort.http_status`, `expected an HTTP status 200-599, got ${abort.httpStatus}`);
      fault = compact({
        delay: delay ? { fixedDelayMs: duration(`${ff}.delay.fixed_delay`, delay.fixedDelay)!, percent: percent(`${ff}.delay.percent`, delay.percent) } : undefined,
        abort: abort ? { httpStatus: abort.httpStatus, percent: percent(`${ff}.abort.percent`, abort.percent) } : undefined,
      });
    }
    return compact({ name: r.name || undefined, matches, destinations, timeoutMs: positive(`${f}.timeout`, r.timeout), retries, fault }) as TrafficRoute;
  });

  return {
    serviceKey: serviceKeyFromRef(name),
    ...settings('', p),
    subsets,
    portSettings,
    routes,
    ...(p.rateLimit ? { rateLimit: rateLimit('rate_limit', p.rateLimit) ?? {} } : {}),
  };
}

/** Validates one TrafficPolicy named `<namespace>/<hostname>`; an error names the wire field (snake_case) and what was expected. */
export function parseTrafficPolicy(name: string, p: TrafficPolicy__Output): { ok: true; policy: ServiceTrafficPolicy } | { ok: false; field: string; message: string } {
  try {
    return { ok: true, policy: parse(name, p) };
  } catch (err) {
    if (err instanceof TrafficFieldError) return { ok: false, field: err.field, message: err.message };
    throw err;
  }
}
