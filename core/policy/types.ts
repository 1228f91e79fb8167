// Authorization policy data model (pure, no imports): Istio AuthorizationPolicy semantics in the shape of istio.security.Authorization, plus L7 fields.

/**
 * ALLOW / DENY decide; AUDIT only marks matching traffic in the access log. CUSTOM is refused at
 * load (it needs an external authorizer), so it never reaches this model.
 */
export type PolicyAction = 'ALLOW' | 'DENY' | 'AUDIT';

/**
 * Which workloads a policy applies to, as istiod resolves it for ztunnel:
 * - global: no selector, in the root namespace → every workload of the mesh;
 * - namespace: no selector, any other namespace → every workload of that namespace;
 * - workloadSelector: a non-empty `selector.matchLabels` → workloads it selects (in its own
 *   namespace, or in every namespace when the policy lives in the root namespace).
 */
export type PolicyScope = 'global' | 'namespace' | 'workloadSelector';

/** Istio's string forms: `"*"` presence (any non-empty), `"abc*"` prefix, `"*abc"` suffix, else exact. */
export type StringMatcher =
  | { readonly kind: 'exact'; readonly value: string }
  | { readonly kind: 'prefix'; readonly value: string }
  | { readonly kind: 'suffix'; readonly value: string }
  | { readonly kind: 'presence' };

/** An IPv4 or IPv6 CIDR; a bare address is /32 or /128. `address` is the text form as written. */
export interface Cidr {
  readonly address: string;
  readonly prefixLength: number;
}

/** `when: request.headers[name]` — name lower-cased; values/notValues as string matchers. */
export interface HeaderMatch {
  readonly name: string;
  readonly values: readonly StringMatcher[];
  readonly notValues: readonly StringMatcher[];
}

/**
 * One alternative of a clause. Every non-empty field must hold: a positive list holds when any
 * entry matches, a `not*` list holds when no entry matches. An empty Match matches everything.
 * L4 fields are exactly istio.security.Match's; L7 fields need an HTTP request.
 */
export interface PolicyMatch {
  // ---- L4 (carried by istio.security.Match) ----
  readonly principals?: readonly StringMatcher[];
  readonly notPrincipals?: readonly StringMatcher[];
  readonly namespaces?: readonly StringMatcher[];
  readonly notNamespaces?: readonly StringMatcher[];
  readonly sourceIps?: readonly Cidr[];
  readonly notSourceIps?: readonly Cidr[];
  readonly destinationIps?: readonly Cidr[];
  readonly notDestinationIps?: readonly Cidr[];
  readonly destinationPorts?: readonly number[];
  readonly notDestinationPorts?: readonly number[];
  // ---- L7 (need the request; at an L4-only port they fail closed) ----
  readonly methods?: readonly StringMatcher[];
  readonly notMethods?: readonly StringMatcher[];
  readonly paths?: readonly StringMatcher[];
  readonly notPaths?: readonly StringMatcher[];
  readonly hosts?: readonly StringMatcher[];
  readonly notHosts?: readonly StringMatcher[];
  /** `remoteIpBlocks` / `remote.ip`: the original client address; without a trusted XFF it is the source IP. */
  readonly remoteIps?: readonly Cidr[];
  readonly notRemoteIps?: readonly Cidr[];
  /** JWT request principals; smesh has no RequestAuthentication yet, so a request never has one. */
  readonly requestPrincipals?: readonly StringMatcher[];
  readonly notRequestPrincipals?: readonly StringMatcher[];
  readonly headers?: readonly HeaderMatch[];
}

/** OR of matches (one `from`, `to` or `when` entry list). */
export interface PolicyClause {
  readonly matches: readonly PolicyMatch[];
}

/** One AuthorizationPolicy rule: AND of clauses (from, to, each when condition). No clauses = matches everything. */
export interface PolicyRule {
  readonly clauses: readonly PolicyClause[];
}

export interface AuthorizationPolicy {
  readonly name: string;
  readonly namespace: string;
  readonly action: PolicyAction;
  readonly scope: PolicyScope;
  /** `selector.matchLabels` for scope workloadSelector (file/Kubernetes sources; absent when received over xDS). */
  readonly selector?: Readonly<Record<string, string>>;
  /** OR of rules. No rules: matches nothing (ALLOW with no rules = allow nothing). */
  readonly rules: readonly PolicyRule[];
}

/** `<namespace>/<name>`: the xDS resource name and the value listed in Workload.authorization_policies. */
export function policyKey(p: Pick<AuthorizationPolicy, 'namespace' | 'name'>): string {
  return `${p.namespace}/${p.name}`;
}

/** The attributes of one HTTP request (absent at an L4-only port). Header names lower-case. */
export interface HttpAttributes {
  readonly method: string;
  /** The request target after Istio's BASE path normalization (agent/http/path-normalize.ts); `paths` match it without the query. */
  readonly path: string;
  /** The Host / `:authority` value as sent, port included (`hosts` match all of it). */
  readonly host: string;
  readonly headers: Readonly<Record<string, string | readonly string[] | undefined>>;
}

/** What a decision is made on: one connection (and, on an HTTP port, one request). */
export interface PolicyRequest {
  /** Authenticated SPIFFE id of the source, e.g. spiffe://td/ns/x/sa/y; absent/empty for plaintext. */
  readonly sourceIdentity?: string;
  readonly sourceIp?: string;
  readonly destinationIp: string;
  readonly destinationPort: number;
  /** Present only when the port is proxied as HTTP. */
  readonly http?: HttpAttributes;
}

/** The destination workload as far as policy selection needs it (a state Workload fits). */
export interface PolicyTarget {
  readonly namespace: string;
  readonly labels: Readonly<Record<string, string>>;
  /** `<ns>/<name>` of the selector policies that select it, when resolved by the control plane (xDS). */
  readonly authorizationPolicies?: readonly string[];
}

export type DenyReason = 'deny_policy' | 'no_allow_match';

export type PolicyDecision =
  | {
      readonly allow: true;
      /** `<ns>/<name>` of the ALLOW policy that matched; absent when no ALLOW policy applies. */
      readonly policy?: string;
      /** Keys of matching AUDIT policies (empty when none). */
      readonly audit: readonly string[];
      /**
       * Only from a connection-level check with L7 deferred (EvaluateOptions.deferL7): the
       * connection passes, but each request's attributes may still deny it (or mark it audited).
       */
      readonly deferred?: boolean;
    }
  | {
      readonly allow: false;
      readonly reason: DenyReason;
      /** The DENY policy that matched; absent for no_allow_match. */
      readonly policy?: string;
      readonly audit: readonly string[];
    };

/** Name prefix istiod gives a PeerAuthentication converted to an Authorization ('_' is illegal in Kubernetes names, so no clash). */
export const CONVERTED_PEER_AUTHENTICATION_PREFIX = 'converted_peer_authentication_';
/** The one static "deny plaintext" policy (root namespace) that STRICT workloads reference, as istiod sends it. */
export const STATIC_STRICT_POLICY_NAME = 'istio_converted_static_strict';

/** True when `p` is a converted PeerAuthentication (as opposed to a user AuthorizationPolicy). */
export function isConvertedPeerAuthentication(p: Pick<AuthorizationPolicy, 'name'>): boolean {
  return p.name === STATIC_STRICT_POLICY_NAME || p.name.startsWith(CONVERTED_PEER_AUTHENTICATION_PREFIX);
}
