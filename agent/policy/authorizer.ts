// The inbound Authorizer: evaluates the current snapshot's policies for one connection, counts denials and writes the access-log line.
import { applicablePolicies, DEFAULT_ROOT_NAMESPACE, evaluate, type EvaluateOptions } from '../../core/policy/evaluate';
import type { AuthorizationPolicy, HttpAttributes, PolicyDecision, PolicyTarget } from '../../core/policy/types';

/** What the authorizer reads from state (a StateView fits: `snapshot: () => state.snapshot()`). */
export interface PolicySource {
  snapshot(): {
    readonly authorizationPolicies?: readonly AuthorizationPolicy[];
    readonly rootNamespace?: string;
    /** The mesh's trust domain: with `trustDomainAliases`, policy principals are expanded across both (Istio's semantics). */
    readonly trustDomain?: string;
    /** Current workloads by uid: a destination workload object held since a connection opened is replaced by its current version. */
    readonly workloads?: ReadonlyMap<string, PolicyTarget>;
  };
}

/** The narrow slices of telemetry it writes to (MeshMetrics.policyDenials and a pino child fit). */
export interface AuthorizerDeps {
  readonly state: PolicySource;
  readonly denials?: { inc(labels: { reason: string; policy: string }): void };
  /** Access log (pino child with component 'access'). Denials and audited connections are always logged. */
  readonly accessLog?: { info(obj: object, msg: string): void };
  /** Also log allowed, un-audited connections (one line per connection). Default false. */
  readonly logAllowed?: boolean;
  /** Trust-domain aliases (Istio's MeshConfig trustDomainAliases), read on every decision. */
  readonly trustDomainAliases?: () => readonly string[];
}

/** Structurally the proxies' AuthorizeInput, plus the request attributes an HTTP port will add. */
export interface AuthorizeRequest {
  readonly sourceIdentity: string;
  readonly sourceIp?: string;
  readonly destination: { readonly ip: string; readonly port: number };
  readonly destinationWorkload?: PolicyTarget & { readonly uid?: string };
  /** Set only when the destination port is proxied as HTTP (issue 5); absent = L4, L7 rules fail closed. */
  readonly http?: HttpAttributes;
  /**
   * Connection-level check at an HTTP port whose requests are authorized one by one afterwards:
   * L7 attributes are unknown, not failing closed; only a denial of every request denies (see
   * EvaluateOptions.deferL7). Ignored with `http`.
   */
  readonly deferL7?: boolean;
}

/** `deferred`: allowed at connection level with L7 attributes still to check per request (AuthorizeRequest.deferL7). */
export type AuthorizeVerdict = { readonly allow: true; readonly deferred?: boolean } | { readonly allow: false; readonly reason: string };

export interface Authorizer {
  (req: AuthorizeRequest): AuthorizeVerdict;
  /** The full decision (policy, audit marks) without logging or counting — for tests and the HTTP path. */
  decide(req: AuthorizeRequest): PolicyDecision;
}

const NO_TARGET: PolicyTarget = { namespace: '', labels: {} };

/**
 * Builds the Authorizer the inbound (HBONE) and the same-node outbound path call for each
 * connection and request. Every call reads the current snapshot: the policies and the destination
 * workload (looked up again by uid) in force now, never those of the snapshot a connection opened
 * under. Applicable policies are cached per (snapshot policy list, workload object): both are
 * immutable, so a new snapshot simply misses the cache.
 */
export function createAuthorizer(deps: AuthorizerDeps): Authorizer {
  let cacheKey: readonly AuthorizationPolicy[] | undefined;
  let cache = new WeakMap<object, AuthorizationPolicy[]>();

  const policiesFor = (target: PolicyTarget | undefined): AuthorizationPolicy[] => {
    const snap = deps.state.snapshot();
    const all = snap.authorizationPolicies ?? [];
    if (all.length === 0) return [];
    if (all !== cacheKey) {
      cacheKey = all;
      cache = new WeakMap();
    }
    // A connection, a pooled upstream or a cached endpoint list may hold the workload object of an older snapshot,
    // whose labels and policy references (xDS) predate the policies in force: decide on the current one.
    const uid = (target as { uid?: unknown } | undefined)?.uid;
    const t = (typeof uid === 'string' ? snap.workloads?.get(uid) : undefined) ?? target ?? NO_TARGET;
    let list = cache.get(t);
    if (!list) {
      list = applicablePolicies(all, t, snap.rootNamespace ?? DEFAULT_ROOT_NAMESPACE);
      cache.set(t, list);
    }
    return list;
  };

  const decide = (req: AuthorizeRequest): PolicyDecision => {
    const td = deps.state.snapshot().trustDomain;
    const opts: EvaluateOptions = {
      ...(req.deferL7 ? { deferL7: true } : {}),
      ...(td !== undefined ? { trustDomains: { trustDomain: td, aliases: deps.trustDomainAliases?.() ?? [] } } : {}),
    };
    return evaluate(
      policiesFor(req.destinationWorkload),
      {
        sourceIdentity: req.sourceIdentity,
        sourceIp: req.sourceIp,
        destinationIp: req.destination.ip,
        destinationPort: req.destination.port,
        http: req.http,
      },
      opts,
    );
  };

  const authorize = ((req: AuthorizeRequest): AuthorizeVerdict => {
    const d = decide(req);
    const audited = d.audit.length > 0;
    if (!d.allow) deps.denials?.inc({ reason: d.reason, policy: d.policy ?? 'none' });
    if (deps.accessLog && (!d.allow || audited || deps.logAllowed)) {
      deps.accessLog.info(
        {
          src: { identity: req.sourceIdentity || 'plaintext', ip: req.sourceIp },
          dst: { ip: req.destination.ip, port: req.destination.port, workload: req.destinationWorkload?.uid },
          ...(req.http ? { http: { method: req.http.method, path: req.http.path, host: req.http.host } } : {}),
          decision: d.allow ? 'allow' : 'deny',
          ...(d.allow && d.deferred ? { deferred: true } : {}),
          ...(d.allow ? {} : { reason: d.reason }),
          policy: d.policy ?? null,
          audit: audited,
          ...(audited ? { auditPolicies: d.audit } : {}),
        },
        req.http ? (d.allow ? 'request allowed' : 'request denied by authorization policy') : d.allow ? 'connection allowed' : 'connection denied by authorization policy',
      );
    }
    if (d.allow) return d.deferred ? { allow: true, deferred: true } : { allow: true };
    return { allow: false, reason: d.policy ? `${d.reason} ${d.policy}` : d.reason };
  }) as Authorizer;
  authorize.decide = decide;
  return authorize;
}
