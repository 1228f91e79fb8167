// The pure authorization evaluator: which policies apply to a workload, and DENY → ALLOW → default over one connection or request.
import { BlockList, isIP } from 'node:net';
import {
  policyKey,
  type AuthorizationPolicy,
  type Cidr,
  type HttpAttributes,
  type PolicyDecision,
  type PolicyMatch,
  type PolicyRequest,
  type PolicyRule,
  type PolicyTarget,
  type StringMatcher,
} from './types';

/** Istio's default root namespace (MeshConfig.rootNamespace). */
export const DEFAULT_ROOT_NAMESPACE = 'istio-system';

/** Istio's string form → matcher: `*` presence, `*x` suffix, `x*` prefix, else exact. */
export function stringMatcher(text: string): StringMatcher {
  if (text === '*') return { kind: 'presence' };
  if (text.startsWith('*')) return { kind: 'suffix', value: text.slice(1) };
  if (text.endsWith('*')) return { kind: 'prefix', value: text.slice(0, -1) };
  return { kind: 'exact', value: text };
}

export function matchString(m: StringMatcher, value: string | undefined): boolean {
  if (value === undefined) return false;
  switch (m.kind) {
    case 'presence':
      return value !== '';
    case 'exact':
      return value === m.value;
    case 'prefix':
      return value.startsWith(m.value);
    case 'suffix':
      return value.endsWith(m.value);
  }
}

function matchStringCaseless(m: StringMatcher, value: string | undefined): boolean {
  if (value === undefined) return false;
  if (m.kind === 'presence') return value !== '';
  return matchString({ ...m, value: m.value.toLowerCase() }, value.toLowerCase());
}

/** Parses `a.b.c.d[/n]` or `v6[/n]`; undefined when malformed (bad address, length out of range). */
export function parseCidr(text: string): Cidr | undefined {
  const slash = text.indexOf('/');
  const address = slash === -1 ? text : text.slice(0, slash);
  const family = isIP(address);
  if (family === 0) return undefined;
  const max = family === 4 ? 32 : 128;
  if (slash === -1) return { address, prefixLength: max };
  const len = text.slice(slash + 1);
  // Go's netip.ParsePrefix (Istio's check): no sign, no leading zero.
  if (!/^(0|[1-9]\d{0,2})$/.test(len) || Number(len) > max) return undefined;
  return { address, prefixLength: Number(len) };
}

// One BlockList per distinct CIDR: compiled once, shared by every evaluation.
const cidrCache = new Map<string, BlockList>();

export function cidrContains(c: Cidr, ip: string | undefined): boolean {
  if (!ip) return false;
  const fam = isIP(ip);
  const cfam = isIP(c.address);
  if (fam === 0 || fam !== cfam) return false;
  const key = `${c.address}/${c.prefixLength}`;
  let list = cidrCache.get(key);
  if (!list) {
    list = new BlockList();
    list.addSubnet(c.address, c.prefixLength, cfam === 4 ? 'ipv4' : 'ipv6');
    if (cidrCache.size > 10_000) cidrCache.clear(); // bounded: policies are operator-written
    cidrCache.set(key, list);
  }
  return list.check(ip, fam === 4 ? 'ipv4' : 'ipv6');
}

/** The mesh's trust domain and its aliases (Istio's MeshConfig `trustDomain` and `trustDomainAliases`). */
export interface TrustDomainBundle {
  readonly trustDomain: string;
  readonly aliases: readonly string[];
}

/** Istio's placeholder for "the local trust domain" in a policy principal (constants.DefaultClusterLocalDomain). */
const CLUSTER_LOCAL = 'cluster.local';

/**
 * Principal matching with Istio's trust-domain expansion (pilot's trustdomain.Bundle.ReplaceTrustDomainAliases):
 * a policy principal whose trust domain is the mesh's, one of its aliases or `cluster.local` stands for the same
 * `/ns/<ns>/sa/<sa>` under the mesh's trust domain and under every alias. A principal starting with `*` does not
 * enforce a trust domain, and one naming another trust domain is kept as written.
 */
export function matchPrincipal(m: StringMatcher, principal: string | undefined, b: TrustDomainBundle | undefined): boolean {
  if (matchString(m, principal)) return true;
  if (!b || principal === undefined || (m.kind !== 'exact' && m.kind !== 'prefix')) return false;
  const cut = m.value.indexOf('/ns/');
  const pcut = principal.indexOf('/ns/');
  if (cut <= 0 || pcut <= 0) return false;
  const inBundle = (td: string) => td === b.trustDomain || b.aliases.includes(td);
  const policyTd = m.value.slice(0, cut);
  const peerTd = principal.slice(0, pcut);
  if (!(inBundle(policyTd) || policyTd === CLUSTER_LOCAL) || !inBundle(peerTd)) return false;
  return matchString({ kind: m.kind, value: peerTd + m.value.slice(cut) }, principal);
}

/** Istio principal of a SPIFFE id: the id without `spiffe://`; undefined for plaintext. */
export function principalOf(sourceIdentity: string | undefined): string | undefined {
  if (!sourceIdentity) return undefined;
  return sourceIdentity.startsWith('spiffe://') ? sourceIdentity.slice('spiffe://'.length) : sourceIdentity;
}

/** Source namespace from `<td>/ns/<ns>/sa/<sa>`; undefined for plaintext or another id form. */
export function namespaceOf(principal: string | undefined): string | undefined {
  if (!principal) return undefined;
  const m = /^[^/]+\/ns\/([^/]+)\/sa\/[^/]+$/.exec(principal);
  return m ? m[1] : undefined;
}

/** True when the match uses an attribute only an HTTP request has. */
export function matchNeedsL7(m: PolicyMatch): boolean {
  return (
    nonEmpty(m.methods) ||
    nonEmpty(m.notMethods) ||
    nonEmpty(m.paths) ||
    nonEmpty(m.notPaths) ||
    nonEmpty(m.hosts) ||
    nonEmpty(m.notHosts) ||
    nonEmpty(m.remoteIps) ||
    nonEmpty(m.notRemoteIps) ||
    nonEmpty(m.requestPrincipals) ||
    nonEmpty(m.notRequestPrincipals) ||
    nonEmpty(m.headers)
  );
}

export function ruleNeedsL7(r: PolicyRule): boolean {
  return r.clauses.some((c) => c.matches.some(matchNeedsL7));
}

function nonEmpty(list: readonly unknown[] | undefined): list is readonly unknown[] {
  return list !== undefined && list.length > 0;
}

/** The match without its L7 fields (what a DENY keeps at an L4-only port). */
export function stripL7(m: PolicyMatch): PolicyMatch {
  const { methods: _a, notMethods: _b, paths: _c, notPaths: _d, hosts: _e, notHosts: _f, remoteIps: _g, notRemoteIps: _h, requestPrincipals: _i, notRequestPrincipals: _j, headers: _k, ...l4 } = m;
  return l4;
}

/**
 * What istiod sends a ztunnel-style (L4) data plane: an ALLOW rule that needs any L7 attribute is
 * dropped (it can never match, so it fails closed); DENY and AUDIT rules lose their L7 attributes
 * (they then match more: fail closed). Evaluating the projection at L4 equals evaluating the
 * original at L4.
 */
export function projectToL4(p: AuthorizationPolicy): AuthorizationPolicy {
  const rules = p.action === 'ALLOW' ? p.rules.filter((r) => !ruleNeedsL7(r)) : p.rules.map((r) => ({ clauses: r.clauses.map((c) => ({ matches: c.matches.map(stripL7) })) }));
  return { ...p, rules };
}

/** Selector policies may live in the workload's namespace or in the root namespace (then they select mesh-wide). */
function selects(p: AuthorizationPolicy, target: PolicyTarget, rootNamespace: string): boolean {
  switch (p.scope) {
    case 'global':
      return true;
    case 'namespace':
      return p.namespace === target.namespace;
    case 'workloadSelector': {
      if (target.authorizationPolicies !== undefined) return target.authorizationPolicies.includes(policyKey(p));
      if (!p.selector) return false;
      if (p.namespace !== target.namespace && p.namespace !== rootNamespace) return false;
      return Object.entries(p.selector).every(([k, v]) => target.labels[k] === v);
    }
  }
}

/** The policies that apply to one destination workload. */
export function applicablePolicies(policies: readonly AuthorizationPolicy[], target: PolicyTarget, rootNamespace = DEFAULT_ROOT_NAMESPACE): AuthorizationPolicy[] {
  return policies.filter((p) => selects(p, target, rootNamespace));
}

/** Policy keys (`<ns>/<name>`) of the selector-scoped policies selecting `target` — Workload.authorization_policies. */
export function selectorPolicyKeys(policies: readonly AuthorizationPolicy[], target: Omit<PolicyTarget, 'authorizationPolicies'>, rootNamespace = DEFAULT_ROOT_NAMESPACE): string[] {
  return policies
    .filter((p) => p.scope === 'workloadSelector' && selects(p, { namespace: target.namespace, labels: target.labels }, rootNamespace))
    .map(policyKey)
    .sort();
}

// ---- matching ----

interface Attrs {
  readonly principal?: string;
  readonly trustDomains?: TrustDomainBundle;
  readonly namespace?: string;
  readonly sourceIp?: string;
  readonly destinationIp: string;
  readonly destinationPort: number;
  readonly http?: HttpAttributes;
}

/** `list` empty or absent: holds. Positive: any entry matches. */
function pos<T>(list: readonly T[] | undefined, test: (x: T) => boolean): boolean {
  return list === undefined || list.length === 0 || list.some(test);
}
/** Negative: no entry matches. */
function neg<T>(list: readonly T[] | undefined, test: (x: T) => boolean): boolean {
  return list === undefined || list.length === 0 || !list.some(test);
}

/**
 * `hosts` match the whole Host / `:authority` value, case-insensitively, as Istio's HostMatcher does:
 * a port is part of the value, so `example.com` does not match `example.com:8080` (Istio's
 * documented remedy is a second entry `example.com:*`).
 */
function hostMatches(m: StringMatcher, host: string): boolean {
  return matchStringCaseless(m, host);
}

function headerValue(h: HttpAttributes, name: string): string | undefined {
  const v = h.headers[name];
  if (v === undefined) return undefined;
  return typeof v === 'string' ? v : v.join(',');
}

/** Paths match the URL path without query or fragment. */
function urlPath(path: string): string {
  const cut = path.search(/[?#]/);
  return cut === -1 ? path : path.slice(0, cut);
}

function matchL4(m: PolicyMatch, a: Attrs): boolean {
  return (
    pos(m.principals, (s) => matchPrincipal(s, a.principal, a.trustDomains)) &&
    neg(m.notPrincipals, (s) => matchPrincipal(s, a.principal, a.trustDomains)) &&
    pos(m.namespaces, (s) => matchString(s, a.namespace)) &&
    neg(m.notNamespaces, (s) => matchString(s, a.namespace)) &&
    pos(m.sourceIps, (c) => cidrContains(c, a.sourceIp)) &&
    neg(m.notSourceIps, (c) => cidrContains(c, a.sourceIp)) &&
    pos(m.destinationIps, (c) => cidrContains(c, a.destinationIp)) &&
    neg(m.notDestinationIps, (c) => cidrContains(c, a.destinationIp)) &&
    pos(m.destinationPorts, (p) => p === a.destinationPort) &&
    neg(m.notDestinationPorts, (p) => p === a.destinationPort)
  );
}

function matchL7(m: PolicyMatch, h: HttpAttributes, a: Attrs): boolean {
  const path = urlPath(h.path);
  return (
    pos(m.methods, (s) => matchString(s, h.method)) &&
    neg(m.notMethods, (s) => matchString(s, h.method)) &&
    pos(m.paths, (s) => matchString(s, path)) &&
    neg(m.notPaths, (s) => matchString(s, path)) &&
    pos(m.hosts, (s) => hostMatches(s, h.host)) &&
    neg(m.notHosts, (s) => hostMatches(s, h.host)) &&
    pos(m.remoteIps, (c) => cidrContains(c, a.sourceIp)) &&
    neg(m.notRemoteIps, (c) => cidrContains(c, a.sourceIp)) &&
    // No RequestAuthentication: a request never carries a JWT principal.
    pos(m.requestPrincipals, (s) => matchString(s, undefined)) &&
    neg(m.notRequestPrincipals, (s) => matchString(s, undefined)) &&
    (m.headers ?? []).every((hm) => {
      const v = headerValue(h, hm.name);
      return pos(hm.values, (s) => matchString(s, v)) && neg(hm.notValues, (s) => matchString(s, v));
    })
  );
}

function ruleMatches(rule: PolicyRule, a: Attrs, ignoreL7: boolean): boolean {
  return rule.clauses.every((clause) =>
    clause.matches.some((m) => {
      if (!matchL4(m, a)) return false;
      if (ignoreL7 || !matchNeedsL7(m)) return true;
      return a.http !== undefined && matchL7(m, a.http, a);
    }),
  );
}

/**
 * Whether one policy matches. At an L4-only port (no `http`), L7 attributes fail closed as Istio
 * does: an ALLOW rule needing them never matches, a DENY/AUDIT rule is evaluated without them.
 */
export function policyMatches(p: AuthorizationPolicy, a: Attrs): boolean {
  const l4Only = a.http === undefined;
  return p.rules.some((rule) => {
    if (l4Only && ruleNeedsL7(rule)) {
      if (p.action === 'ALLOW') return false;
      return ruleMatches(rule, a, true);
    }
    return ruleMatches(rule, a, false);
  });
}

type Tri = 'no' | 'yes' | 'maybe';

/**
 * A policy at L4 with its L7 attributes unknown (not failed): 'yes' when some rule matches on L4
 * attributes alone, 'no' when no rule can match whatever the request, else 'maybe'. L4 attributes
 * are the same for every request of a connection, so 'yes'/'no' hold for all of them.
 */
function policyMatchesDeferred(p: AuthorizationPolicy, a: Attrs): Tri {
  let best: Tri = 'no';
  for (const rule of p.rules) {
    let r: Tri = 'yes';
    for (const clause of rule.clauses) {
      let c: Tri = 'no';
      for (const m of clause.matches) {
        if (!matchL4(m, a)) continue;
        if (!matchNeedsL7(m)) {
          c = 'yes';
          break;
        }
        c = 'maybe';
      }
      if (c === 'no') {
        r = 'no';
        break;
      }
      if (c === 'maybe') r = 'maybe';
    }
    if (r === 'yes') return 'yes';
    if (r === 'maybe') best = 'maybe';
  }
  return best;
}

export interface EvaluateOptions {
  /**
   * For the connection-level check at an HTTP port, whose requests are then evaluated one by one
   * (with `http`): L7 attributes are unknown rather than failing closed. The decision is a denial
   * only when every request would be denied (a DENY matching on L4 alone, or no ALLOW that could
   * match); otherwise it allows with `deferred: true` when a request's attributes may change it.
   * Ignored when the request has `http`.
   */
  readonly deferL7?: boolean;
  /** Expands policy principals across the mesh's trust domain and its aliases (matchPrincipal); absent: as written. */
  readonly trustDomains?: TrustDomainBundle;
}

function evaluateDeferred(policies: readonly AuthorizationPolicy[], a: Attrs): PolicyDecision {
  const audit: string[] = [];
  let deferred = false;
  for (const p of policies) {
    if (p.action !== 'AUDIT') continue;
    const m = policyMatchesDeferred(p, a);
    if (m === 'yes') audit.push(policyKey(p));
    else if (m === 'maybe') deferred = true;
  }
  for (const p of policies) {
    if (p.action !== 'DENY') continue;
    const m = policyMatchesDeferred(p, a);
    if (m === 'yes') return { allow: false, reason: 'deny_policy', policy: policyKey(p), audit };
    if (m === 'maybe') deferred = true;
  }
  let anyAllow = false;
  let allowMaybe = false;
  for (const p of policies) {
    if (p.action !== 'ALLOW') continue;
    anyAllow = true;
    const m = policyMatchesDeferred(p, a);
    if (m === 'yes') return { allow: true, policy: policyKey(p), audit, ...(deferred ? { deferred } : {}) };
    if (m === 'maybe') allowMaybe = true;
  }
  if (anyAllow && !allowMaybe) return { allow: false, reason: 'no_allow_match', audit };
  deferred ||= allowMaybe;
  return { allow: true, audit, ...(deferred ? { deferred } : {}) };
}

function attrsOf(req: PolicyRequest, trustDomains: TrustDomainBundle | undefined): Attrs {
  const principal = principalOf(req.sourceIdentity);
  return {
    principal,
    ...(trustDomains ? { trustDomains } : {}),
    namespace: namespaceOf(principal),
    sourceIp: req.sourceIp,
    destinationIp: req.destinationIp,
    destinationPort: req.destinationPort,
    http: req.http,
  };
}

/**
 * Decides one connection/request against the policies that apply to its destination
 * (see applicablePolicies): CUSTOM is refused at load; any matching DENY denies; with no ALLOW
 * policy the default is allow; otherwise some ALLOW must match. AUDIT never changes the decision.
 */
export function evaluate(policies: readonly AuthorizationPolicy[], req: PolicyRequest, opts: EvaluateOptions = {}): PolicyDecision {
  const a = attrsOf(req, opts.trustDomains);
  if (opts.deferL7 && a.http === undefined) return evaluateDeferred(policies, a);
  const audit: string[] = [];
  for (const p of policies) if (p.action === 'AUDIT' && policyMatches(p, a)) audit.push(policyKey(p));
  for (const p of policies) {
    if (p.action === 'DENY' && policyMatches(p, a)) return { allow: false, reason: 'deny_policy', policy: policyKey(p), audit };
  }
  let anyAllow = false;
  for (const p of policies) {
    if (p.action !== 'ALLOW') continue;
    anyAllow = true;
    if (policyMatches(p, a)) return { allow: true, policy: policyKey(p), audit };
  }
  return anyAllow ? { allow: false, reason: 'no_allow_match', audit } : { allow: true, audit };
}
