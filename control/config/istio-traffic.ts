// DestinationRule and VirtualService (networking.istio.io) in file config: the supported subset, validation, and compilation into one ServiceTrafficPolicy per service.
//
// Supported subset (anything else in Istio's schema is refused as "not supported by smesh"; fields
// outside Istio's schema are "unknown field"; nothing is silently dropped):
//
// DestinationRule.spec
//   host                      a Service: `name` (the rule's namespace), `name.ns`, `name.ns.svc[.cluster.local]`
//   exportTo                  only ["*"] (the default)
//   trafficPolicy             loadBalancer, connectionPool, outlierDetection, portLevelSettings, tls.mode ISTIO_MUTUAL (a no-op: HBONE is always mTLS)
//     loadBalancer            simple ROUND_ROBIN | LEAST_REQUEST | RANDOM | UNSPECIFIED (LEAST_CONN = LEAST_REQUEST);
//                             consistentHash {httpHeaderName | httpCookie{name,path,ttl} | useSourceIp | httpQueryParameterName, maglev.tableSize};
//                             localityLbSetting {enabled, failover[{from,to}]}
//     connectionPool          tcp {maxConnections, connectTimeout}; http {http1MaxPendingRequests, http2MaxRequests,
//                             maxRequestsPerConnection, maxRetries, idleTimeout}
//     outlierDetection        consecutive5xxErrors, consecutiveGatewayErrors, consecutiveLocalOriginFailures (needs
//                             splitExternalLocalOriginErrors: true), interval, baseEjectionTime, maxEjectionPercent
//     portLevelSettings       [{port.number (a port of the service), loadBalancer, connectionPool, outlierDetection}]
//   subsets                   [{name, labels, trafficPolicy (no portLevelSettings)}] → resolved to the service's endpoints carrying the labels
// smesh extensions (annotations on the DestinationRule, because Istio's CRD has no such enum values):
//   smesh.io/load-balancer: PEAK_EWMA | LEAST_REQUEST | ROUND_ROBIN | RANDOM   service-level algorithm (instead of loadBalancer.simple)
//   smesh.io/ewma-decay: <duration>                                            PEAK_EWMA decay time
//   smesh.io/least-request-choices: <integer ≥ 2>                              LEAST_REQUEST choice count
//
// VirtualService.spec
//   hosts                     Services, resolved as DestinationRule.host
//   gateways                  only ["mesh"]; exportTo only ["*"]
//   http[]                    name, match[] {name, uri|method {exact|prefix|regex}, headers{<lower-case name>: {exact|prefix|regex}}, port},
//                             route[] {destination {host, subset, port.number}, weight} (weights sum to 100),
//                             timeout, retries {attempts, perTryTimeout, retryOn}, fault {delay {fixedDelay, percentage.value},
//                             abort {httpStatus, percentage.value}}
//   tcp, tls                  not supported (L4 traffic goes to the whole service)
//
// Scope: the compiled policy applies to every client of the service, whichever namespace the rule lives in.
import { isIP } from 'node:net';
import { checkLabels, isDns1123Label, wildcardDomainProblem } from './istio-names';
import { parseDurationMs, validate, type FieldProblem, type FieldSpec } from './schema';
import type {
  ConnectionPoolSettings,
  EndpointSettings,
  FaultSettings,
  HashKey,
  HttpRouteMatch,
  LoadBalancerAlgorithm,
  LoadBalancerSettings,
  OutlierDetectionSettings,
  PortTrafficSettings,
  RetrySettings,
  RouteStringMatch,
  Service,
  ServiceTrafficPolicy,
  TrafficRoute,
  TrafficSubset,
  Workload,
} from '../../core/model/types';
import { CLUSTER_DOMAIN } from '../../core/xds/contract';

export const TRAFFIC_API_VERSIONS = ['networking.istio.io/v1', 'networking.istio.io/v1beta1', 'networking.istio.io/v1alpha3'] as const;

export const LOAD_BALANCER_ANNOTATION = 'smesh.io/load-balancer';
export const EWMA_DECAY_ANNOTATION = 'smesh.io/ewma-decay';
export const LEAST_REQUEST_CHOICES_ANNOTATION = 'smesh.io/least-request-choices';
const DR_ANNOTATIONS = [LOAD_BALANCER_ANNOTATION, EWMA_DECAY_ANNOTATION, LEAST_REQUEST_CHOICES_ANNOTATION];

/** Envoy retry conditions smesh implements (plus 3-digit status codes). */
export const SUPPORTED_RETRY_ON = ['5xx', 'gateway-error', 'reset', 'connect-failure', 'refused-stream', 'retriable-4xx'] as const;

// ---- schemas: every Istio field is known; the ones outside the subset are 'ignored' here and refused in convert ----

const duration: FieldSpec = 'duration';
const percentage: FieldSpec = { object: { fields: { value: 'number' } } };
const stringMatch: FieldSpec = { object: { fields: { exact: 'string', prefix: 'string', regex: 'string' } } };

const loadBalancer: FieldSpec = {
  object: {
    fields: {
      simple: { oneOf: ['UNSPECIFIED', 'LEAST_CONN', 'RANDOM', 'PASSTHROUGH', 'ROUND_ROBIN', 'LEAST_REQUEST'] },
      consistentHash: {
        object: {
          fields: {
            httpHeaderName: 'nonEmptyString',
            httpCookie: { object: { fields: { name: 'nonEmptyString', path: 'string', ttl: duration, attributes: 'ignored' }, required: ['name'] } },
            useSourceIp: 'boolean',
            httpQueryParameterName: 'nonEmptyString',
            ringHash: 'ignored',
            maglev: { object: { fields: { tableSize: 'integer' } } },
            minimumRingSize: 'ignored',
          },
        },
      },
      localityLbSetting: {
        object: {
          fields: {
            enabled: 'boolean',
            failover: { arrayOf: { object: { fields: { from: 'nonEmptyString', to: 'nonEmptyString' }, required: ['from', 'to'] } } },
            distribute: 'ignored',
            failoverPriority: 'ignored',
          },
        },
      },
      warmupDurationSecs: 'ignored',
      warmup: 'ignored',
    },
  },
};

const connectionPool: FieldSpec = {
  object: {
    fields: {
      tcp: {
        object: {
          fields: { maxConnections: 'integer', connectTimeout: duration, tcpKeepalive: 'ignored', maxConnectionDuration: 'ignored', idleTimeout: 'ignored' },
        },
      },
      http: {
        object: {
          fields: {
            http1MaxPendingRequests: 'integer',
            http2MaxRequests: 'integer',
            maxRequestsPerConnection: 'integer',
            maxRetries: 'integer',
            idleTimeout: duration,
            h2UpgradePolicy: 'ignored',
            useClientProtocol: 'ignored',
            maxConcurrentStreams: 'ignored',
          },
        },
      },
    },
  },
};

const outlierDetection: FieldSpec = {
  object: {
    fields: {
      consecutive5xxErrors: 'integer',
      consecutiveGatewayErrors: 'integer',
      consecutiveLocalOriginFailures: 'integer',
      splitExternalLocalOriginErrors: 'boolean',
      interval: duration,
      baseEjectionTime: duration,
      maxEjectionPercent: 'integer',
      minHealthPercent: 'ignored',
      consecutiveErrors: 'ignored',
    },
  },
};

const tls: FieldSpec = {
  object: {
    fields: {
      mode: 'string',
      clientCertificate: 'ignored',
      privateKey: 'ignored',
      caCertificates: 'ignored',
      credentialName: 'ignored',
      subjectAltNames: 'ignored',
      sni: 'ignored',
      insecureSkipVerify: 'ignored',
      caCrl: 'ignored',
    },
  },
};

const portTrafficPolicy: FieldSpec = {
  object: { fields: { port: { object: { fields: { number: 'port' }, required: ['number'] } }, loadBalancer, connectionPool, outlierDetection, tls }, required: ['port'] },
};

const trafficPolicyFields = { loadBalancer, connectionPool, outlierDetection, tls, portLevelSettings: { arrayOf: portTrafficPolicy }, tunnel: 'ignored', proxyProtocol: 'ignored' } as const;
const TRAFFIC_POLICY_KEYS: readonly string[] = Object.keys(trafficPolicyFields);
const trafficPolicy: FieldSpec = { object: { fields: trafficPolicyFields } };

/** The `spec` of a DestinationRule. */
export const DESTINATION_RULE_SPEC: FieldSpec = {
  object: {
    fields: {
      host: 'nonEmptyString',
      trafficPolicy,
      subsets: { arrayOf: { object: { fields: { name: 'nonEmptyString', labels: 'stringMap', trafficPolicy }, required: ['name'] } } },
      exportTo: { arrayOf: 'string' },
      workloadSelector: 'ignored',
    },
    required: ['host'],
  },
};

const httpMatch: FieldSpec = {
  object: {
    fields: {
      name: 'string',
      uri: stringMatch,
      method: stringMatch,
      headers: 'ignored', // a map of StringMatch, checked in convert
      port: 'port',
      scheme: 'ignored',
      authority: 'ignored',
      queryParams: 'ignored',
      ignoreUriCase: 'ignored',
      withoutHeaders: 'ignored',
      sourceLabels: 'ignored',
      gateways: 'ignored',
      sourceNamespace: 'ignored',
      statPrefix: 'ignored',
    },
  },
};

const httpRoute: FieldSpec = {
  object: {
    fields: {
      name: 'string',
      match: { arrayOf: httpMatch },
      route: {
        arrayOf: {
          object: {
            fields: {
              destination: { object: { fields: { host: 'nonEmptyString', subset: 'nonEmptyString', port: { object: { fields: { number: 'port' }, required: ['number'] } } }, required: ['host'] } },
              weight: 'integer',
              headers: 'ignored',
            },
            required: ['destination'],
          },
        },
      },
      timeout: duration,
      retries: { object: { fields: { attempts: 'integer', perTryTimeout: duration, retryOn: 'string', retryRemoteLocalities: 'ignored' } } },
      fault: {
        object: {
          fields: {
            delay: { object: { fields: { fixedDelay: duration, percentage, percent: 'ignored', exponentialDelay: 'ignored' } } },
            abort: { object: { fields: { httpStatus: 'integer', percentage, grpcStatus: 'ignored', http2Error: 'ignored' } } },
          },
        },
      },
      redirect: 'ignored',
      directResponse: 'ignored',
      delegate: 'ignored',
      rewrite: 'ignored',
      mirror: 'ignored',
      mirrors: 'ignored',
      mirrorPercentage: 'ignored',
      mirrorPercent: 'ignored',
      corsPolicy: 'ignored',
      headers: 'ignored',
    },
  },
};

/** The `spec` of a VirtualService. */
export const VIRTUAL_SERVICE_SPEC: FieldSpec = {
  object: {
    fields: { hosts: { arrayOf: 'nonEmptyString' }, gateways: { arrayOf: 'string' }, http: { arrayOf: httpRoute }, tcp: 'ignored', tls: 'ignored', exportTo: { arrayOf: 'string' } },
    required: ['hosts'],
  },
};

// ---- per-resource conversion ----

/** A DestinationRule after its own validation; `host` is not resolved yet. */
export interface DestinationRuleConfig {
  readonly name: string;
  readonly namespace: string;
  readonly host: string;
  readonly settings: EndpointSettings;
  readonly portSettings: readonly PortTrafficSettings[];
  readonly subsets: ReadonlyArray<{ readonly name: string; readonly labels: Readonly<Record<string, string>>; readonly settings: EndpointSettings }>;
}

/** A route destination before host resolution. */
export interface UnresolvedDestination {
  readonly host: string;
  readonly subset?: string;
  readonly port?: number;
  readonly weight: number;
}

export interface VirtualServiceConfig {
  readonly name: string;
  readonly namespace: string;
  readonly hosts: readonly string[];
  readonly routes: ReadonlyArray<Omit<TrafficRoute, 'destinations'> & { readonly destinations: readonly UnresolvedDestination[] }>;
}

type Obj = Record<string, any>;

class Ctx {
  readonly problems: FieldProblem[] = [];
  add(field: string, message: string): void {
    this.problems.push({ field, message });
  }
  /** Refuses present fields that are in Istio's schema but outside smesh's subset. */
  unsupported(obj: Obj | undefined, path: string, fields: Readonly<Record<string, string>>): void {
    if (!obj) return;
    for (const [key, why] of Object.entries(fields)) {
      if (obj[key] !== undefined && obj[key] !== null) this.add(`${path}.${key}`, `not supported by smesh${why ? `: ${why}` : ''}`);
    }
  }
}

function present(v: unknown): boolean {
  return v !== undefined && v !== null;
}

function ms(v: unknown): number | undefined {
  return typeof v === 'string' ? parseDurationMs(v) : undefined;
}

/** Istio's ValidateDuration: at least 1ms, in whole milliseconds. */
function positiveDuration(ctx: Ctx, v: unknown, field: string): number | undefined {
  const d = ms(v);
  if (d === undefined) return undefined;
  if (d < 1) {
    ctx.add(field, `expected a duration of at least 1ms, got ${JSON.stringify(v)}`);
    return undefined;
  }
  if (Math.abs(d - Math.round(d)) > 1e-6) {
    ctx.add(field, `only durations to ms precision are supported, got ${JSON.stringify(v)}`);
    return undefined;
  }
  return Math.round(d);
}

/** Istio's int32 limits: negative is invalid, 0 means "the default" (the same as absent on the wire). */
function limit(ctx: Ctx, v: unknown, field: string): number | undefined {
  if (typeof v !== 'number') return undefined;
  if (v < 0 || v > 0xffffffff) {
    ctx.add(field, `expected a non-negative integer, got ${v}`);
    return undefined;
  }
  return v === 0 ? undefined : v;
}

function counter(ctx: Ctx, v: unknown, field: string): number | undefined {
  if (typeof v !== 'number') return undefined;
  if (v < 0 || v > 0xffffffff) {
    ctx.add(field, `expected a non-negative integer (0 disables), got ${v}`);
    return undefined;
  }
  return v;
}

/** Envoy's (and Istio's) primality test for a Maglev table size (it counts 1 as prime). */
function isPrime(x: number): boolean {
  if (!Number.isInteger(x) || x < 1) return false;
  if (x < 4) return true;
  if (x % 2 === 0) return false;
  for (let f = 3; f * f <= x; f += 2) if (x % f === 0) return false;
  return true;
}

function compact<T extends object>(o: T): T | undefined {
  const out: Obj = {};
  for (const [k, v] of Object.entries(o)) if (v !== undefined) out[k] = v;
  return Object.keys(out).length > 0 ? (out as T) : undefined;
}

const SIMPLE: Readonly<Record<string, LoadBalancerAlgorithm | undefined>> = {
  UNSPECIFIED: undefined,
  LEAST_CONN: 'LEAST_REQUEST', // Istio's deprecated alias
  LEAST_REQUEST: 'LEAST_REQUEST',
  ROUND_ROBIN: 'ROUND_ROBIN',
  RANDOM: 'RANDOM',
};

function convertLoadBalancer(ctx: Ctx, lb: Obj | undefined, path: string): LoadBalancerSettings | undefined {
  if (!lb) return undefined;
  ctx.unsupported(lb, path, { warmupDurationSecs: 'slow start is not implemented', warmup: 'slow start is not implemented' });
  let algorithm: LoadBalancerAlgorithm | undefined;
  if (lb.simple === 'PASSTHROUGH')
    ctx.add(`${path}.simple`, 'PASSTHROUGH is not supported by smesh (the node proxy always balances over the known endpoints); use ROUND_ROBIN, LEAST_REQUEST or RANDOM');
  else if (present(lb.simple)) algorithm = SIMPLE[lb.simple];
  let consistentHash: LoadBalancerSettings['consistentHash'];
  const ch: Obj | undefined = lb.consistentHash ?? undefined;
  if (ch) {
    const p = `${path}.consistentHash`;
    if (present(lb.simple)) ctx.add(path, 'set either simple or consistentHash, not both');
    ctx.unsupported(ch, p, { ringHash: 'smesh uses a Maglev table; use maglev.tableSize', minimumRingSize: 'deprecated in Istio; use maglev.tableSize' });
    ctx.unsupported(ch.httpCookie ?? undefined, `${p}.httpCookie`, { attributes: '' });
    const keys: HashKey[] = [];
    if (present(ch.httpHeaderName)) keys.push({ kind: 'header', name: ch.httpHeaderName });
    if (ch.httpCookie) keys.push(compact({ kind: 'cookie' as const, name: ch.httpCookie.name, path: ch.httpCookie.path || undefined, ttlMs: ms(ch.httpCookie.ttl) })!);
    if (ch.useSourceIp === true) keys.push({ kind: 'sourceIp' });
    if (present(ch.httpQueryParameterName)) keys.push({ kind: 'queryParameter', name: ch.httpQueryParameterName });
    if (keys.length !== 1) {
      ctx.add(p, `expected exactly one of httpHeaderName, httpCookie, useSourceIp: true, httpQueryParameterName; got ${keys.length}`);
    } else {
      let tableSize: number | undefined;
      if (ch.maglev && present(ch.maglev.tableSize)) {
        tableSize = ch.maglev.tableSize;
        // Istio: set, below 5000011, and a prime (Envoy's Maglev table).
        if (tableSize! < 1 || tableSize! >= 5_000_011 || !isPrime(tableSize!)) {
          ctx.add(`${p}.maglev.tableSize`, `expected a prime below 5000011 (e.g. 65537), got ${tableSize}`);
          tableSize = undefined;
        }
      }
      consistentHash = compact({ key: keys[0]!, tableSize });
    }
  }
  let locality: LoadBalancerSettings['locality'];
  const loc: Obj | undefined = lb.localityLbSetting ?? undefined;
  if (loc) {
    const p = `${path}.localityLbSetting`;
    ctx.unsupported(loc, p, { distribute: 'weighted locality distribution is not implemented; use failover', failoverPriority: 'label-based failover is not implemented; use failover' });
    if (loc.enabled !== false) {
      // Istio's locality failover order: the client's subzone, then zone, then region, then the failover regions.
      locality = { prefer: ['REGION', 'ZONE', 'SUBZONE'], failover: (loc.failover ?? []).map((f: Obj) => ({ from: f.from, to: f.to })), strict: false };
    }
  }
  return compact({ algorithm, consistentHash, locality });
}

function convertConnectionPool(ctx: Ctx, cp: Obj | undefined, path: string): ConnectionPoolSettings | undefined {
  if (!cp) return undefined;
  if (!present(cp.tcp) && !present(cp.http)) ctx.add(path, 'connection pool must have at least one field (tcp or http)');
  const tcp: Obj = cp.tcp ?? {};
  const http: Obj = cp.http ?? {};
  ctx.unsupported(tcp, `${path}.tcp`, { tcpKeepalive: '', maxConnectionDuration: '', idleTimeout: 'use http.idleTimeout' });
  ctx.unsupported(http, `${path}.http`, { h2UpgradePolicy: 'HBONE decides the upstream protocol', useClientProtocol: 'HBONE decides the upstream protocol', maxConcurrentStreams: '' });
  return compact({
    maxConnections: limit(ctx, tcp.maxConnections, `${path}.tcp.maxConnections`),
    maxPendingRequests: limit(ctx, http.http1MaxPendingRequests, `${path}.http.http1MaxPendingRequests`),
    maxRequests: limit(ctx, http.http2MaxRequests, `${path}.http.http2MaxRequests`),
    maxRetries: limit(ctx, http.maxRetries, `${path}.http.maxRetries`),
    connectTimeoutMs: positiveDuration(ctx, tcp.connectTimeout, `${path}.tcp.connectTimeout`),
    maxRequestsPerConnection: limit(ctx, http.maxRequestsPerConnection, `${path}.http.maxRequestsPerConnection`),
    idleTimeoutMs: positiveDuration(ctx, http.idleTimeout, `${path}.http.idleTimeout`),
  });
}

function convertOutlierDetection(ctx: Ctx, od: Obj | undefined, path: string): OutlierDetectionSettings | undefined {
  if (!od) return undefined;
  ctx.unsupported(od, path, { minHealthPercent: 'panic mode is not implemented; use maxEjectionPercent', consecutiveErrors: 'deprecated in Istio; use consecutive5xxErrors' });
  const serverErrors = counter(ctx, od.consecutive5xxErrors, `${path}.consecutive5xxErrors`);
  const split = od.splitExternalLocalOriginErrors === true;
  if (present(od.consecutiveLocalOriginFailures) && !split) {
    ctx.add(`${path}.consecutiveLocalOriginFailures`, 'only applies with splitExternalLocalOriginErrors: true (otherwise connect failures count as 5xx errors)');
  }
  // Unsplit (Istio's default), local-origin failures count towards the 5xx threshold: give them the same one.
  const connectFailures = split ? counter(ctx, od.consecutiveLocalOriginFailures, `${path}.consecutiveLocalOriginFailures`) : serverErrors;
  let maxEjectionPercent: number | undefined;
  if (typeof od.maxEjectionPercent === 'number') {
    if (od.maxEjectionPercent < 0 || od.maxEjectionPercent > 100) ctx.add(`${path}.maxEjectionPercent`, `expected a percentage 0-100, got ${od.maxEjectionPercent}`);
    else maxEjectionPercent = od.maxEjectionPercent;
  }
  return compact({
    consecutiveServerErrors: serverErrors,
    consecutiveGatewayErrors: counter(ctx, od.consecutiveGatewayErrors, `${path}.consecutiveGatewayErrors`),
    consecutiveConnectFailures: connectFailures,
    intervalMs: positiveDuration(ctx, od.interval, `${path}.interval`),
    baseEjectionTimeMs: positiveDuration(ctx, od.baseEjectionTime, `${path}.baseEjectionTime`),
    maxEjectionPercent,
  });
}

function checkTls(ctx: Ctx, t: Obj | undefined, path: string): void {
  if (!t) return;
  if (t.mode !== 'ISTIO_MUTUAL' || Object.keys(t).some((k) => k !== 'mode')) {
    ctx.add(path, 'not supported by smesh: mesh traffic is always HBONE mTLS; only {mode: ISTIO_MUTUAL} (a no-op) is accepted');
  }
}

/** Istio refuses a traffic policy (or a port's) that sets nothing. */
function checkNotEmpty(ctx: Ctx, tp: Obj | undefined, keys: readonly string[], path: string, what: string): void {
  if (tp && !keys.some((k) => present(tp[k]))) ctx.add(path, `${what} must have at least one field (${keys.join(', ')})`);
}

function convertSettings(ctx: Ctx, tp: Obj | undefined, path: string): EndpointSettings {
  if (!tp) return {};
  ctx.unsupported(tp, path, { tunnel: '', proxyProtocol: '' });
  checkTls(ctx, tp.tls ?? undefined, `${path}.tls`);
  return (
    compact({
      loadBalancer: convertLoadBalancer(ctx, tp.loadBalancer ?? undefined, `${path}.loadBalancer`),
      connectionPool: convertConnectionPool(ctx, tp.connectionPool ?? undefined, `${path}.connectionPool`),
      outlierDetection: convertOutlierDetection(ctx, tp.outlierDetection ?? undefined, `${path}.outlierDetection`),
    }) ?? {}
  );
}

function checkExportTo(ctx: Ctx, v: unknown, path: string): void {
  if (Array.isArray(v) && !(v.length === 0 || (v.length === 1 && v[0] === '*'))) {
    ctx.add(path, `not supported by smesh: rules are visible mesh-wide; only ["*"] is accepted, got ${JSON.stringify(v)}`);
  }
}

const ALGORITHMS: readonly LoadBalancerAlgorithm[] = ['PEAK_EWMA', 'LEAST_REQUEST', 'ROUND_ROBIN', 'RANDOM'];

/** smesh's annotation extensions onto the service-level load balancer. */
function applyAnnotations(ctx: Ctx, annotations: Readonly<Record<string, string>>, lb: LoadBalancerSettings | undefined): LoadBalancerSettings | undefined {
  for (const key of Object.keys(annotations)) {
    if (key.startsWith('smesh.io/') && !DR_ANNOTATIONS.includes(key)) {
      ctx.add(`metadata.annotations[${key}]`, `unknown smesh annotation on a DestinationRule; expected one of ${DR_ANNOTATIONS.join(', ')}`);
    }
  }
  const algo = annotations[LOAD_BALANCER_ANNOTATION];
  const decay = annotations[EWMA_DECAY_ANNOTATION];
  const choices = annotations[LEAST_REQUEST_CHOICES_ANNOTATION];
  if (algo === undefined && decay === undefined && choices === undefined) return lb;
  const out: { -readonly [K in keyof LoadBalancerSettings]: LoadBalancerSettings[K] } = { ...(lb ?? {}) };
  if (algo !== undefined) {
    const f = `metadata.annotations[${LOAD_BALANCER_ANNOTATION}]`;
    if (!ALGORITHMS.includes(algo as LoadBalancerAlgorithm)) ctx.add(f, `expected one of ${ALGORITHMS.join(', ')}, got ${JSON.stringify(algo)}`);
    else if (lb?.algorithm || lb?.consistentHash) ctx.add(f, 'conflicts with spec.trafficPolicy.loadBalancer.simple / consistentHash; set the algorithm in one place');
    else out.algorithm = algo as LoadBalancerAlgorithm;
  }
  if (decay !== undefined) {
    const f = `metadata.annotations[${EWMA_DECAY_ANNOTATION}]`;
    const errs = validate(decay, 'duration', f);
    if (errs.length > 0) ctx.problems.push(...errs);
    else if (out.algorithm !== 'PEAK_EWMA') ctx.add(f, `only applies with ${LOAD_BALANCER_ANNOTATION}: PEAK_EWMA`);
    else if (parseDurationMs(decay) <= 0) ctx.add(f, `expected a duration of at least 1ms, got ${JSON.stringify(decay)}`);
    else out.ewmaDecayMs = parseDurationMs(decay);
  }
  if (choices !== undefined) {
    const f = `metadata.annotations[${LEAST_REQUEST_CHOICES_ANNOTATION}]`;
    const algorithm = out.algorithm ?? (out.consistentHash ? undefined : 'LEAST_REQUEST');
    if (!/^\d+$/.test(choices) || Number(choices) < 2 || Number(choices) > 100) ctx.add(f, `expected an integer 2-100, got ${JSON.stringify(choices)}`);
    else if (algorithm !== 'LEAST_REQUEST') ctx.add(f, 'only applies to LEAST_REQUEST (the default) load balancing');
    else out.choiceCount = Number(choices);
  }
  return compact(out);
}

/** Validates one schema-checked DestinationRule on its own (host resolution and subsets' members come later). */
export function convertDestinationRule(name: string, namespace: string, spec: any, annotations: Readonly<Record<string, string>> = {}): { rule?: DestinationRuleConfig; problems: FieldProblem[] } {
  const ctx = new Ctx();
  const s: Obj = spec ?? {};
  ctx.unsupported(s, 'spec', { workloadSelector: 'a rule applies to every client of the host' });
  checkExportTo(ctx, s.exportTo, 'spec.exportTo');
  const hostProblem = typeof s.host === 'string' ? wildcardDomainProblem(s.host) : undefined;
  if (hostProblem) ctx.add('spec.host', hostProblem);
  checkNotEmpty(ctx, s.trafficPolicy ?? undefined, TRAFFIC_POLICY_KEYS, 'spec.trafficPolicy', 'traffic policy');
  const base = convertSettings(ctx, s.trafficPolicy ?? undefined, 'spec.trafficPolicy');
  const settings = compact({ ...base, loadBalancer: applyAnnotations(ctx, annotations, base.loadBalancer) }) ?? {};
  const portSettings: PortTrafficSettings[] = [];
  const seenPorts = new Map<number, number>();
  ((s.trafficPolicy?.portLevelSettings ?? []) as Obj[]).forEach((pl, i) => {
    const path = `spec.trafficPolicy.portLevelSettings[${i}]`;
    const port: number = pl.port.number;
    if (seenPorts.has(port)) ctx.add(`${path}.port.number`, `port ${port} is already configured by portLevelSettings[${seenPorts.get(port)}]`);
    seenPorts.set(port, i);
    checkTls(ctx, pl.tls ?? undefined, `${path}.tls`);
    checkNotEmpty(ctx, pl, ['loadBalancer', 'connectionPool', 'outlierDetection', 'tls'], path, 'port traffic policy');
    const ps = convertSettings(ctx, { loadBalancer: pl.loadBalancer, connectionPool: pl.connectionPool, outlierDetection: pl.outlierDetection }, path);
    portSettings.push({ port, ...ps });
  });
  portSettings.sort((a, b) => a.port - b.port);
  const subsets: Array<DestinationRuleConfig['subsets'][number]> = [];
  const seenSubsets = new Map<string, number>();
  ((s.subsets ?? []) as Obj[]).forEach((sub, i) => {
    const path = `spec.subsets[${i}]`;
    if (!isDns1123Label(sub.name)) ctx.add(`${path}.name`, `expected a DNS-1123 label (letters, digits and '-', at most 63), got ${JSON.stringify(sub.name)}`);
    ctx.problems.push(...checkLabels(sub.labels, `${path}.labels`));
    checkNotEmpty(ctx, sub.trafficPolicy ?? undefined, TRAFFIC_POLICY_KEYS, `${path}.trafficPolicy`, 'traffic policy');
    if (seenSubsets.has(sub.name)) ctx.add(`${path}.name`, `subset ${JSON.stringify(sub.name)} is already defined by subsets[${seenSubsets.get(sub.name)}]`);
    seenSubsets.set(sub.name, i);
    if (sub.trafficPolicy?.portLevelSettings) ctx.add(`${path}.trafficPolicy.portLevelSettings`, 'not supported by smesh inside a subset; set portLevelSettings on spec.trafficPolicy');
    const settings = convertSettings(ctx, sub.trafficPolicy ? { ...sub.trafficPolicy, portLevelSettings: undefined } : undefined, `${path}.trafficPolicy`);
    subsets.push({ name: sub.name, labels: { ...(sub.labels ?? {}) }, settings });
  });
  if (ctx.problems.length > 0) return { problems: ctx.problems };
  return { rule: { name, namespace, host: s.host, settings, portSettings, subsets }, problems: [] };
}

/** RE2 (Istio's and Envoy's regex engine) has no lookaround and no backreferences; JavaScript does. */
function usesNonRe2(re: string): boolean {
  for (let i = 0; i < re.length; i++) {
    if (re[i] === '\\') {
      const next = re[i + 1] ?? '';
      if ((next >= '1' && next <= '9') || next === 'k') return true;
      i++;
    } else if (re.startsWith('(?=', i) || re.startsWith('(?!', i) || re.startsWith('(?<=', i) || re.startsWith('(?<!', i)) return true;
  }
  return false;
}

/** `uri` may be an empty prefix (Envoy allows it); other string matches may not (Istio's validateStringMatch). */
function convertStringMatch(ctx: Ctx, m: Obj, path: string, emptyPrefixAllowed = false): RouteStringMatch | undefined {
  const kinds = (['exact', 'prefix', 'regex'] as const).filter((k) => present(m[k]));
  if (kinds.length !== 1) {
    ctx.add(path, `expected exactly one of exact, prefix, regex; got ${kinds.length === 0 ? 'none' : kinds.join(' and ')}`);
    return undefined;
  }
  const kind = kinds[0]!;
  const value: string = m[kind];
  if (kind === 'prefix' && value === '' && !emptyPrefixAllowed) {
    ctx.add(`${path}.prefix`, 'prefix string match should not be empty');
    return undefined;
  }
  if (kind === 'regex') {
    if (value === '' || value.length > 1024) {
      ctx.add(`${path}.regex`, value === '' ? 'regex string match should not be empty' : `regex is too large, max length allowed is 1024 (got ${value.length})`);
      return undefined;
    }
    if (usesNonRe2(value)) {
      ctx.add(`${path}.regex`, `not RE2 syntax (Istio's regex engine has no lookaround or backreferences), got ${JSON.stringify(value)}`);
      return undefined;
    }
    try {
      new RegExp(`^(?:${value})$`);
    } catch (err) {
      ctx.add(`${path}.regex`, `invalid regular expression: ${(err as Error).message}`);
      return undefined;
    }
  }
  return { kind, value };
}

function convertMatch(ctx: Ctx, m: Obj, path: string): HttpRouteMatch {
  ctx.unsupported(m, path, {
    scheme: '',
    authority: '',
    queryParams: '',
    ignoreUriCase: '',
    withoutHeaders: '',
    sourceLabels: 'routes apply to every client',
    gateways: 'smesh has no gateways',
    sourceNamespace: 'routes apply to every client',
    statPrefix: '',
  });
  let headers: Record<string, RouteStringMatch> | undefined;
  if (present(m.headers)) {
    if (typeof m.headers !== 'object' || Array.isArray(m.headers)) {
      ctx.add(`${path}.headers`, 'expected a mapping of header name → {exact|prefix|regex}');
    } else {
      headers = {};
      for (const [name, hm] of Object.entries(m.headers as Obj)) {
        const hp = `${path}.headers[${name}]`;
        if (!/^[a-z0-9!#$%&'*+\-.^_`|~]+$/.test(name)) {
          ctx.add(hp, `expected a lower-case HTTP header name, got ${JSON.stringify(name)}`);
          continue;
        }
        const problems = validate(hm, stringMatch, hp);
        if (problems.length > 0) {
          ctx.problems.push(...problems);
          continue;
        }
        const sm = convertStringMatch(ctx, hm as Obj, hp);
        if (sm) headers[name] = sm;
      }
    }
  }
  return (
    compact({
      path: m.uri ? convertStringMatch(ctx, m.uri, `${path}.uri`, true) : undefined,
      method: m.method ? convertStringMatch(ctx, m.method, `${path}.method`) : undefined,
      headers: headers && Object.keys(headers).length > 0 ? headers : undefined,
      port: m.port ?? undefined,
    }) ?? {}
  );
}

function percent(ctx: Ctx, p: Obj | undefined, path: string): number {
  if (!p || !present(p.value)) return 100; // Istio: unspecified means every request
  if (p.value < 0 || p.value > 100) {
    ctx.add(`${path}.value`, `expected a percentage 0-100, got ${p.value}`);
    return 0;
  }
  return p.value;
}

function convertRetries(ctx: Ctx, r: Obj, path: string): RetrySettings {
  ctx.unsupported(r, path, { retryRemoteLocalities: '' });
  let attempts: number | undefined;
  if (typeof r.attempts === 'number') {
    if (r.attempts < 0 || r.attempts > 100) ctx.add(`${path}.attempts`, `expected 0-100 retries (0 disables), got ${r.attempts}`);
    else attempts = r.attempts;
  }
  const retryOn: string[] = [];
  if (typeof r.retryOn === 'string' && r.retryOn.trim() !== '') {
    for (const raw of r.retryOn.split(',')) {
      const c = raw.trim();
      if ((SUPPORTED_RETRY_ON as readonly string[]).includes(c) || /^[1-5]\d\d$/.test(c)) retryOn.push(c);
      else ctx.add(`${path}.retryOn`, `unsupported retry condition ${JSON.stringify(c)}; expected a status code or one of ${SUPPORTED_RETRY_ON.join(', ')}`);
    }
  }
  if (r.attempts === 0 && (present(r.perTryTimeout) || (typeof r.retryOn === 'string' && r.retryOn !== '') || present(r.retryRemoteLocalities))) {
    ctx.add(path, 'retry policy configured while attempts is 0 (retries disabled); remove perTryTimeout/retryOn or set attempts');
  }
  return compact({ attempts, perTryTimeoutMs: positiveDuration(ctx, r.perTryTimeout, `${path}.perTryTimeout`), retryOn }) as RetrySettings;
}

function convertFault(ctx: Ctx, f: Obj, path: string): FaultSettings | undefined {
  let delay: FaultSettings['delay'];
  let abort: FaultSettings['abort'];
  if (!present(f.delay) && !present(f.abort)) ctx.add(path, 'fault injection must have an abort and/or a delay');
  if (f.delay) {
    const p = `${path}.delay`;
    ctx.unsupported(f.delay, p, { percent: 'deprecated in Istio; use percentage.value', exponentialDelay: '' });
    if (!present(f.delay.fixedDelay)) ctx.add(`${p}.fixedDelay`, 'required field is missing');
    else if (positiveDuration(ctx, f.delay.fixedDelay, `${p}.fixedDelay`) !== undefined)
      delay = { fixedDelayMs: ms(f.delay.fixedDelay)!, percent: percent(ctx, f.delay.percentage ?? undefined, `${p}.percentage`) };
  }
  if (f.abort) {
    const p = `${path}.abort`;
    ctx.unsupported(f.abort, p, { grpcStatus: 'use httpStatus', http2Error: 'use httpStatus' });
    const status = f.abort.httpStatus;
    if (!present(status)) ctx.add(`${p}.httpStatus`, 'required field is missing');
    else if (status < 200 || status > 599) ctx.add(`${p}.httpStatus`, `expected an HTTP status 200-599, got ${status}`);
    else abort = { httpStatus: status, percent: percent(ctx, f.abort.percentage ?? undefined, `${p}.percentage`) };
  }
  return compact({ delay, abort });
}

/** Validates one schema-checked VirtualService on its own (hosts are resolved later). */
export function convertVirtualService(name: string, namespace: string, spec: any): { service?: VirtualServiceConfig; problems: FieldProblem[] } {
  const ctx = new Ctx();
  const s: Obj = spec ?? {};
  ctx.unsupported(s, 'spec', { tcp: 'TCP traffic goes to the whole service; only http routes are supported', tls: 'only http routes are supported' });
  checkExportTo(ctx, s.exportTo, 'spec.exportTo');
  if (Array.isArray(s.gateways) && !(s.gateways.length === 0 || (s.gateways.length === 1 && s.gateways[0] === 'mesh'))) {
    ctx.add('spec.gateways', `not supported by smesh: it has no gateways; only ["mesh"] is accepted, got ${JSON.stringify(s.gateways)}`);
  }
  if ((s.hosts as string[]).length === 0) ctx.add('spec.hosts', 'expected at least one host');
  // Istio's host rules for a VirtualService bound to the mesh: a valid (wildcard) domain or an IP, never `*`, no duplicates.
  const seenHosts = new Map<string, number>();
  (s.hosts as string[]).forEach((h, i) => {
    const problem = isIP(h) === 0 ? wildcardDomainProblem(h) : undefined;
    if (problem) ctx.add(`spec.hosts[${i}]`, problem);
    else if (h === '*') ctx.add(`spec.hosts[${i}]`, 'wildcard host * is not allowed for virtual services bound to the mesh');
    if (seenHosts.has(h)) ctx.add(`spec.hosts[${i}]`, `duplicate host ${JSON.stringify(h)} (also hosts[${seenHosts.get(h)}])`);
    seenHosts.set(h, i);
  });
  const routeLists = ['http', 'tcp', 'tls'].filter((k) => Array.isArray(s[k]) && s[k].length > 0);
  if (routeLists.length === 0) ctx.add('spec.http', 'http, tcp or tls routes must be provided (smesh supports http)');
  const routes: Array<VirtualServiceConfig['routes'][number]> = [];
  ((s.http ?? []) as Obj[]).forEach((h, i) => {
    const path = `spec.http[${i}]`;
    ctx.unsupported(h, path, {
      redirect: '',
      directResponse: '',
      delegate: '',
      rewrite: '',
      mirror: '',
      mirrors: '',
      mirrorPercentage: '',
      mirrorPercent: '',
      corsPolicy: '',
      headers: 'header manipulation is not implemented',
    });
    const matches = ((h.match ?? []) as Obj[]).map((m, j) => convertMatch(ctx, m, `${path}.match[${j}]`));
    const list = (h.route ?? []) as Obj[];
    if (list.length === 0) ctx.add(`${path}.route`, 'expected at least one destination');
    const destinations: UnresolvedDestination[] = [];
    let total = 0;
    list.forEach((r, j) => {
      const rp = `${path}.route[${j}]`;
      ctx.unsupported(r, rp, { headers: 'header manipulation is not implemented' });
      let weight: number = r.weight ?? (list.length === 1 ? 100 : 0);
      if (weight < 0 || weight > 100) ctx.add(`${rp}.weight`, `expected 0-100, got ${weight}`);
      if (list.length === 1 && present(r.weight) && weight !== 100) ctx.add(`${rp}.weight`, `a single destination takes all traffic: expected 100 or no weight, got ${weight}`);
      if (list.length === 1) weight = 100;
      const dest: Obj = r.destination;
      const hostProblem = dest.host === '*' ? `invalid destination host ${dest.host}` : wildcardDomainProblem(dest.host);
      if (hostProblem) ctx.add(`${rp}.destination.host`, hostProblem);
      if (present(dest.subset) && !isDns1123Label(dest.subset))
        ctx.add(`${rp}.destination.subset`, `expected a DNS-1123 label (letters, digits and '-', at most 63), got ${JSON.stringify(dest.subset)}`);
      total += weight;
      destinations.push(compact({ host: r.destination.host, subset: r.destination.subset ?? undefined, port: r.destination.port?.number, weight }) as UnresolvedDestination);
    });
    if (list.length > 1 && total !== 100) ctx.add(`${path}.route`, `weights must sum to 100, got ${total}`);
    // Istio refuses a timeout below 1ms (0s included); without one, requests have no route timeout.
    const timeoutMs = positiveDuration(ctx, h.timeout, `${path}.timeout`);
    routes.push(
      compact({
        name: h.name || undefined,
        matches,
        destinations,
        timeoutMs,
        retries: h.retries ? convertRetries(ctx, h.retries, `${path}.retries`) : undefined,
        fault: h.fault ? convertFault(ctx, h.fault, `${path}.fault`) : undefined,
      }) as VirtualServiceConfig['routes'][number],
    );
  });
  if (ctx.problems.length > 0) return { problems: ctx.problems };
  return { service: { name, namespace, hosts: [...s.hosts], routes }, problems: [] };
}

// ---- cross-resource compilation ----

/** A problem found while compiling; names the resource it belongs to. */
export interface TrafficProblem extends FieldProblem {
  readonly kind: 'DestinationRule' | 'VirtualService';
  readonly namespace: string;
  readonly name: string;
}

/**
 * The service a host names, as Istio resolves it for Kubernetes services: `name` (the rule's own
 * namespace), `name.ns`, `name.ns.svc`, `name.ns.svc.cluster.local`. Returns the service key or an error.
 */
export function resolveHost(host: string, namespace: string, services: ReadonlyMap<string, Service>): { key: string } | { error: string } {
  if (host.includes('*')) return { error: `wildcard hosts are not supported by smesh; name one Service (got ${JSON.stringify(host)})` };
  const parts = host.split('.');
  let key: string | undefined;
  if (parts.length === 1) key = `${namespace}/${parts[0]}`;
  else if (parts.length === 2) key = `${parts[1]}/${parts[0]}`;
  else if (parts[2] === 'svc' && (parts.length === 3 || parts.slice(3).join('.') === CLUSTER_DOMAIN)) key = `${parts[1]}/${parts[0]}`;
  if (key === undefined || parts.some((p) => p === '')) {
    return { error: `expected a Service: name, name.namespace or name.namespace.svc.${CLUSTER_DOMAIN} (external hosts are not supported yet), got ${JSON.stringify(host)}` };
  }
  if (!services.has(key)) return { error: `no Service ${key} (host ${JSON.stringify(host)})` };
  return { key };
}

function serviceEndpoints(s: Service, workloads: ReadonlyMap<string, Workload>): Workload[] {
  if (s.endpointUids) return s.endpointUids.map((u) => workloads.get(u)).filter((w): w is Workload => w !== undefined && w.meshed);
  const sel = Object.entries(s.selector);
  if (sel.length === 0) return [];
  return [...workloads.values()].filter((w) => w.meshed && w.namespace === s.namespace && sel.every(([k, v]) => w.labels[k] === v));
}

function byName<T extends { namespace: string; name: string }>(a: T, b: T): number {
  const ka = `${a.namespace}/${a.name}`;
  const kb = `${b.namespace}/${b.name}`;
  return ka < kb ? -1 : ka > kb ? 1 : 0;
}

/**
 * Compiles validated DestinationRules and VirtualServices into one policy per service: hosts
 * resolved to services, subsets to their member workloads, route subsets checked against the
 * destination's DestinationRule. One rule of each kind per service (the second is an error).
 * A resource with a problem contributes nothing.
 */
export function buildTrafficPolicies(
  rules: readonly DestinationRuleConfig[],
  virtualServices: readonly VirtualServiceConfig[],
  services: ReadonlyMap<string, Service>,
  workloads: ReadonlyMap<string, Workload>,
): { policies: Map<string, ServiceTrafficPolicy>; problems: TrafficProblem[] } {
  const problems: TrafficProblem[] = [];
  const drByService = new Map<string, { rule: DestinationRuleConfig; subsets: TrafficSubset[] }>();
  for (const r of [...rules].sort(byName)) {
    const at = (field: string, message: string) => problems.push({ kind: 'DestinationRule', namespace: r.namespace, name: r.name, field, message });
    const res = resolveHost(r.host, r.namespace, services);
    if ('error' in res) {
      at('spec.host', res.error);
      continue;
    }
    const earlier = drByService.get(res.key);
    if (earlier) {
      at('spec.host', `Service ${res.key} is already configured by DestinationRule ${earlier.rule.namespace}/${earlier.rule.name}; merge them into one`);
      continue;
    }
    const service = services.get(res.key)!;
    const servicePorts = new Set(service.ports.map((p) => p.port));
    let bad = false;
    r.portSettings.forEach((p, i) => {
      if (!servicePorts.has(p.port)) {
        at(`spec.trafficPolicy.portLevelSettings[${i}].port.number`, `Service ${res.key} has no port ${p.port} (ports: ${[...servicePorts].join(', ') || 'none'})`);
        bad = true;
      }
    });
    if (bad) continue;
    const endpoints = serviceEndpoints(service, workloads);
    const subsets: TrafficSubset[] = r.subsets.map((s) => ({
      name: s.name,
      labels: s.labels,
      workloadUids: endpoints
        .filter((w) => Object.entries(s.labels).every(([k, v]) => w.labels[k] === v))
        .map((w) => w.uid)
        .sort(),
      ...s.settings,
    }));
    drByService.set(res.key, { rule: r, subsets });
  }

  const vsByService = new Map<string, { vs: VirtualServiceConfig; routes: TrafficRoute[] }>();
  for (const v of [...virtualServices].sort(byName)) {
    const at = (field: string, message: string) => problems.push({ kind: 'VirtualService', namespace: v.namespace, name: v.name, field, message });
    const before = problems.length;
    const keys: string[] = [];
    v.hosts.forEach((h, i) => {
      const res = resolveHost(h, v.namespace, services);
      const earlier = 'error' in res ? undefined : vsByService.get(res.key);
      if ('error' in res) at(`spec.hosts[${i}]`, res.error);
      else if (earlier) at(`spec.hosts[${i}]`, `Service ${res.key} is already routed by VirtualService ${earlier.vs.namespace}/${earlier.vs.name}; merge them into one`);
      else if (keys.includes(res.key)) at(`spec.hosts[${i}]`, `Service ${res.key} is listed twice`);
      else keys.push(res.key);
    });
    // Destinations resolve the same way for every host; `service` is filled per host below.
    const resolved = v.routes.map((r, i) =>
      r.destinations.map((d, j) => {
        const path = `spec.http[${i}].route[${j}].destination`;
        const res = resolveHost(d.host, v.namespace, services);
        if ('error' in res) {
          at(`${path}.host`, res.error);
          return undefined;
        }
        if (d.subset !== undefined && !drByService.get(res.key)?.subsets.some((s) => s.name === d.subset)) {
          const dr = drByService.get(res.key);
          at(
            `${path}.subset`,
            dr ? `DestinationRule ${dr.rule.namespace}/${dr.rule.name} for ${res.key} defines no subset ${JSON.stringify(d.subset)}` : `no DestinationRule defines subsets for Service ${res.key}`,
          );
        }
        if (d.port !== undefined && !services.get(res.key)!.ports.some((p) => p.port === d.port)) at(`${path}.port.number`, `Service ${res.key} has no port ${d.port}`);
        return { ...d, key: res.key };
      }),
    );
    if (problems.length > before) continue;
    for (const key of keys) {
      const routes: TrafficRoute[] = v.routes.map((r, i) => ({
        ...r,
        destinations: resolved[i]!.map((d) => compact({ service: d!.key === key ? undefined : d!.key, subset: d!.subset, port: d!.port, weight: d!.weight }) as TrafficRoute['destinations'][number]),
      }));
      vsByService.set(key, { vs: v, routes });
    }
  }

  const policies = new Map<string, ServiceTrafficPolicy>();
  for (const key of [...new Set([...drByService.keys(), ...vsByService.keys()])].sort()) {
    const dr = drByService.get(key);
    const vs = vsByService.get(key);
    policies.set(key, {
      serviceKey: key,
      ...(dr?.rule.settings ?? {}),
      subsets: dr?.subsets ?? [],
      portSettings: dr?.rule.portSettings ?? [],
      routes: vs?.routes ?? [],
    });
  }
  return { policies, problems };
}
