// AuthorizationPolicy (security.istio.io) in file config: its schema, Istio's own validation rules, and conversion to the policy model.
import { DEFAULT_ROOT_NAMESPACE, parseCidr, stringMatcher } from '../../core/policy/evaluate';
import type { AuthorizationPolicy, Cidr, HeaderMatch, PolicyAction, PolicyClause, PolicyMatch, PolicyRule, StringMatcher } from '../../core/policy/types';
import { checkWorkloadSelector } from './istio-names';
import type { FieldProblem, FieldSpec } from './schema';

export const AUTHORIZATION_API_VERSIONS = ['security.istio.io/v1', 'security.istio.io/v1beta1'] as const;

const strings: FieldSpec = { arrayOf: 'string' };

const source: FieldSpec = {
  object: {
    fields: {
      principals: strings,
      notPrincipals: strings,
      requestPrincipals: strings,
      notRequestPrincipals: strings,
      namespaces: strings,
      notNamespaces: strings,
      ipBlocks: strings,
      notIpBlocks: strings,
      remoteIpBlocks: strings,
      notRemoteIpBlocks: strings,
    },
  },
};

const operation: FieldSpec = {
  object: {
    fields: {
      hosts: strings,
      notHosts: strings,
      // Strings in Istio's schema (`"8080"`): an integer is refused as Kubernetes refuses it; digits checked in convert.
      ports: strings,
      notPorts: strings,
      methods: strings,
      notMethods: strings,
      paths: strings,
      notPaths: strings,
    },
  },
};

const rule: FieldSpec = {
  object: {
    fields: {
      from: { arrayOf: { object: { fields: { source } } } },
      to: { arrayOf: { object: { fields: { operation } } } },
      when: { arrayOf: { object: { fields: { key: 'string', values: strings, notValues: strings }, required: ['key'] } } },
    },
  },
};

/** The `spec` of an AuthorizationPolicy: every Istio field is known; unsupported ones are refused in convert. */
export const AUTHORIZATION_POLICY_SPEC: FieldSpec = {
  object: {
    fields: {
      selector: { object: { fields: { matchLabels: 'stringMap' } } },
      targetRef: 'ignored',
      targetRefs: 'ignored',
      action: { oneOf: ['ALLOW', 'DENY', 'AUDIT', 'CUSTOM'] },
      provider: { object: { fields: { name: 'string' } } },
      rules: { arrayOf: rule },
    },
  },
};

/**
 * `when` keys smesh evaluates. L4: source.ip, source.namespace, source.principal, destination.ip,
 * destination.port. L7 (HTTP ports only; fail closed elsewhere): remote.ip, request.headers[<name>].
 * Istio's other keys (request.auth.*, connection.sni, experimental.*) are refused at load.
 */
export const SUPPORTED_WHEN_KEYS = ['source.ip', 'source.namespace', 'source.principal', 'destination.ip', 'destination.port', 'remote.ip', 'request.headers[<name>]'] as const;

export const DRY_RUN_ANNOTATION = 'istio.io/dry-run';
// Go's strconv.ParseBool, which Istio uses for the annotation.
const GO_TRUE = ['1', 't', 'T', 'TRUE', 'true', 'True'];
const GO_FALSE = ['0', 'f', 'F', 'FALSE', 'false', 'False'];

/**
 * `istio.io/dry-run` on an Istio resource, as Istio validates it (AuthorizationPolicy only, action
 * ALLOW or DENY, a boolean) — and a true value refused: smesh has no dry-run mode, so it would
 * enforce a policy its author meant only to observe.
 */
export function checkDryRunAnnotation(kind: string, annotations: unknown, action: unknown): FieldProblem[] {
  const v = annotations !== null && typeof annotations === 'object' ? (annotations as Record<string, unknown>)[DRY_RUN_ANNOTATION] : undefined;
  if (typeof v !== 'string') return [];
  const field = `metadata.annotations[${DRY_RUN_ANNOTATION}]`;
  if (kind !== 'AuthorizationPolicy') return [{ field, message: `unsupported annotation on a ${kind}; Istio accepts it on AuthorizationPolicy only` }];
  const a = action ?? 'ALLOW';
  if (a !== 'ALLOW' && a !== 'DENY') return [{ field, message: `only supported with action ALLOW or DENY, found ${String(a)}` }];
  if (!GO_TRUE.includes(v) && !GO_FALSE.includes(v)) return [{ field, message: `expected true or false, got ${JSON.stringify(v)}` }];
  if (GO_TRUE.includes(v)) return [{ field, message: 'unsupported: smesh has no dry-run mode and would enforce this policy; remove the annotation (or set it to "false") to enforce it' }];
  return [];
}

const HEADER_KEY_RE = /^request\.headers\[([^\]]+)\]$/;

interface Ctx {
  readonly problems: FieldProblem[];
}

function strList(ctx: Ctx, values: unknown, field: string): string[] {
  if (!Array.isArray(values)) return [];
  values.forEach((v, i) => {
    if (v === '') ctx.problems.push({ field: `${field}[${i}]`, message: 'empty value not allowed' });
  });
  return values as string[];
}

function matchers(ctx: Ctx, values: unknown, field: string): StringMatcher[] | undefined {
  const list = strList(ctx, values, field);
  return list.length > 0 ? list.map(stringMatcher) : undefined;
}

function cidrs(ctx: Ctx, values: unknown, field: string): Cidr[] | undefined {
  const list = strList(ctx, values, field);
  const out: Cidr[] = [];
  list.forEach((v, i) => {
    if (v === '') return;
    const c = parseCidr(v);
    if (!c) ctx.problems.push({ field: `${field}[${i}]`, message: `expected an IP address or CIDR (e.g. 10.0.0.0/8), got ${JSON.stringify(v)}` });
    else out.push(c);
  });
  return out.length > 0 ? out : undefined;
}

function ports(ctx: Ctx, values: unknown, field: string): number[] | undefined {
  if (values === undefined || values === null) return undefined;
  if (!Array.isArray(values)) {
    ctx.problems.push({ field, message: 'expected a list of ports' });
    return undefined;
  }
  const out: number[] = [];
  values.forEach((v, i) => {
    const text = typeof v === 'number' ? String(v) : v;
    if (typeof text !== 'string' || !/^\d{1,5}$/.test(text) || Number(text) > 65535) {
      ctx.problems.push({ field: `${field}[${i}]`, message: `expected a port number 0-65535, got ${JSON.stringify(v)}` });
      return;
    }
    out.push(Number(text));
  });
  return out.length > 0 ? out : undefined;
}

function paths(ctx: Ctx, values: unknown, field: string): StringMatcher[] | undefined {
  const list = strList(ctx, values, field);
  list.forEach((v, i) => {
    if (v.includes('{'))
      ctx.problems.push({ field: `${field}[${i}]`, message: `unsupported: path templates ({*}, {**}) are not implemented; use exact, prefix* or *suffix, got ${JSON.stringify(v)}` });
  });
  return list.length > 0 ? list.map(stringMatcher) : undefined;
}

/** Drops undefined fields so an all-empty match is `{}` (matches everything). */
function compact(m: Record<string, unknown>): PolicyMatch {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(m)) if (v !== undefined) out[k] = v;
  return out as PolicyMatch;
}

function anyListSet(o: Record<string, unknown>, keys: readonly string[]): boolean {
  return keys.some((k) => Array.isArray(o[k]) && (o[k] as unknown[]).length > 0);
}

const SOURCE_KEYS = ['principals', 'notPrincipals', 'requestPrincipals', 'notRequestPrincipals', 'namespaces', 'notNamespaces', 'ipBlocks', 'notIpBlocks', 'remoteIpBlocks', 'notRemoteIpBlocks'];
const OPERATION_KEYS = ['hosts', 'notHosts', 'ports', 'notPorts', 'methods', 'notMethods', 'paths', 'notPaths'];

function convertFrom(ctx: Ctx, from: any, field: string): PolicyMatch | undefined {
  const s = from?.source;
  if (s === undefined || s === null) {
    ctx.problems.push({ field: `${field}.source`, message: 'required field is missing' });
    return undefined;
  }
  if (!anyListSet(s, SOURCE_KEYS)) {
    ctx.problems.push({ field: `${field}.source`, message: `must not be empty: set at least one of ${SOURCE_KEYS.join(', ')}` });
    return undefined;
  }
  const f = `${field}.source`;
  return compact({
    principals: matchers(ctx, s.principals, `${f}.principals`),
    notPrincipals: matchers(ctx, s.notPrincipals, `${f}.notPrincipals`),
    requestPrincipals: matchers(ctx, s.requestPrincipals, `${f}.requestPrincipals`),
    notRequestPrincipals: matchers(ctx, s.notRequestPrincipals, `${f}.notRequestPrincipals`),
    namespaces: matchers(ctx, s.namespaces, `${f}.namespaces`),
    notNamespaces: matchers(ctx, s.notNamespaces, `${f}.notNamespaces`),
    sourceIps: cidrs(ctx, s.ipBlocks, `${f}.ipBlocks`),
    notSourceIps: cidrs(ctx, s.notIpBlocks, `${f}.notIpBlocks`),
    remoteIps: cidrs(ctx, s.remoteIpBlocks, `${f}.remoteIpBlocks`),
    notRemoteIps: cidrs(ctx, s.notRemoteIpBlocks, `${f}.notRemoteIpBlocks`),
  });
}

function convertTo(ctx: Ctx, to: any, field: string): PolicyMatch | undefined {
  const o = to?.operation;
  if (o === undefined || o === null) {
    ctx.problems.push({ field: `${field}.operation`, message: 'required field is missing' });
    return undefined;
  }
  if (!anyListSet(o, OPERATION_KEYS)) {
    ctx.problems.push({ field: `${field}.operation`, message: `must not be empty: set at least one of ${OPERATION_KEYS.join(', ')}` });
    return undefined;
  }
  const f = `${field}.operation`;
  return compact({
    hosts: matchers(ctx, o.hosts, `${f}.hosts`),
    notHosts: matchers(ctx, o.notHosts, `${f}.notHosts`),
    destinationPorts: ports(ctx, o.ports, `${f}.ports`),
    notDestinationPorts: ports(ctx, o.notPorts, `${f}.notPorts`),
    methods: matchers(ctx, o.methods, `${f}.methods`),
    notMethods: matchers(ctx, o.notMethods, `${f}.notMethods`),
    paths: paths(ctx, o.paths, `${f}.paths`),
    notPaths: paths(ctx, o.notPaths, `${f}.notPaths`),
  });
}

function convertWhen(ctx: Ctx, w: any, field: string): PolicyMatch | undefined {
  const key: string = w.key;
  if (key === '') {
    ctx.problems.push({ field: `${field}.key`, message: 'must not be empty' });
    return undefined;
  }
  const hasValues = Array.isArray(w.values) && w.values.length > 0;
  const hasNot = Array.isArray(w.notValues) && w.notValues.length > 0;
  if (!hasValues && !hasNot) {
    ctx.problems.push({ field, message: `at least one of values or notValues must be set for key ${key}` });
    return undefined;
  }
  const vf = `${field}.values`;
  const nf = `${field}.notValues`;
  switch (key) {
    case 'source.ip':
      return compact({ sourceIps: cidrs(ctx, w.values, vf), notSourceIps: cidrs(ctx, w.notValues, nf) });
    case 'remote.ip':
      return compact({ remoteIps: cidrs(ctx, w.values, vf), notRemoteIps: cidrs(ctx, w.notValues, nf) });
    case 'destination.ip':
      return compact({ destinationIps: cidrs(ctx, w.values, vf), notDestinationIps: cidrs(ctx, w.notValues, nf) });
    case 'destination.port':
      return compact({ destinationPorts: ports(ctx, w.values, vf), notDestinationPorts: ports(ctx, w.notValues, nf) });
    case 'source.namespace':
      return compact({ namespaces: matchers(ctx, w.values, vf), notNamespaces: matchers(ctx, w.notValues, nf) });
    case 'source.principal':
      return compact({ principals: matchers(ctx, w.values, vf), notPrincipals: matchers(ctx, w.notValues, nf) });
    default: {
      const h = HEADER_KEY_RE.exec(key);
      if (h) {
        const header: HeaderMatch = { name: h[1]!.toLowerCase(), values: matchers(ctx, w.values, vf) ?? [], notValues: matchers(ctx, w.notValues, nf) ?? [] };
        return { headers: [header] };
      }
      ctx.problems.push({ field: `${field}.key`, message: `unsupported condition key ${JSON.stringify(key)}; smesh supports ${SUPPORTED_WHEN_KEYS.join(', ')}` });
      return undefined;
    }
  }
}

function convertRule(ctx: Ctx, r: any, field: string): PolicyRule {
  const clauses: PolicyClause[] = [];
  if (r.from !== undefined && r.from !== null) {
    if (r.from.length === 0) ctx.problems.push({ field: `${field}.from`, message: 'must not be empty (omit it to match any source)' });
    const matches = (r.from as any[]).map((f, i) => convertFrom(ctx, f, `${field}.from[${i}]`)).filter((m): m is PolicyMatch => m !== undefined);
    if (matches.length > 0) clauses.push({ matches });
  }
  if (r.to !== undefined && r.to !== null) {
    if (r.to.length === 0) ctx.problems.push({ field: `${field}.to`, message: 'must not be empty (omit it to match any operation)' });
    const matches = (r.to as any[]).map((t, i) => convertTo(ctx, t, `${field}.to[${i}]`)).filter((m): m is PolicyMatch => m !== undefined);
    if (matches.length > 0) clauses.push({ matches });
  }
  // Conditions are AND-ed: each is its own clause.
  ((r.when ?? []) as any[]).forEach((w, i) => {
    const m = convertWhen(ctx, w, `${field}.when[${i}]`);
    if (m) clauses.push({ matches: [m] });
  });
  return { clauses };
}

/**
 * Validates a schema-checked AuthorizationPolicy the way Istio's admission validation does and
 * converts it. Problems name the field (`spec.rules[0].from[0].source.ipBlocks[1]`); a policy with
 * any problem yields no policy (the rest of the policy set is unaffected).
 */
export function convertAuthorizationPolicy(name: string, namespace: string, spec: any, rootNamespace: string = DEFAULT_ROOT_NAMESPACE): { policy?: AuthorizationPolicy; problems: FieldProblem[] } {
  const ctx: Ctx = { problems: [] };
  const s = spec ?? {};
  const action: string = s.action ?? 'ALLOW';
  if (action === 'CUSTOM') {
    ctx.problems.push({ field: 'spec.action', message: 'unsupported: CUSTOM needs an external authorizer, which smesh does not have; use ALLOW, DENY or AUDIT' });
  } else if (s.provider !== undefined && s.provider !== null) {
    ctx.problems.push({ field: 'spec.provider', message: 'provider is only allowed with action CUSTOM' });
  }
  for (const f of ['targetRef', 'targetRefs']) {
    if (s[f] !== undefined && s[f] !== null) ctx.problems.push({ field: `spec.${f}`, message: 'unsupported: targetRef(s) attach policies to gateways/services; use selector' });
  }
  ctx.problems.push(...checkWorkloadSelector(s.selector?.matchLabels, 'spec.selector.matchLabels'));
  const rules: any[] = s.rules ?? [];
  // Istio's CRD bounds: at most 512 rules, and 512 `from` entries per rule.
  if (rules.length > 512) ctx.problems.push({ field: 'spec.rules', message: `at most 512 rules, got ${rules.length}` });
  rules.forEach((r, i) => {
    if (Array.isArray(r?.from) && r.from.length > 512) ctx.problems.push({ field: `spec.rules[${i}].from`, message: `at most 512 sources, got ${r.from.length}` });
  });
  if (action === 'DENY' && rules.length === 0) {
    ctx.problems.push({ field: 'spec.rules', message: 'a DENY policy needs at least one rule (DENY without rules is meaningless; Istio rejects it too)' });
  }
  const converted = rules.map((r, i) => convertRule(ctx, r ?? {}, `spec.rules[${i}]`));
  if (ctx.problems.length > 0) return { problems: ctx.problems };
  const matchLabels: Record<string, string> | undefined = s.selector?.matchLabels;
  const hasSelector = matchLabels !== undefined && Object.keys(matchLabels).length > 0;
  const policy: AuthorizationPolicy = {
    name,
    namespace,
    action: action as PolicyAction,
    scope: hasSelector ? 'workloadSelector' : namespace === rootNamespace ? 'global' : 'namespace',
    ...(hasSelector ? { selector: { ...matchLabels } } : {}),
    rules: converted,
  };
  return { policy, problems: [] };
}
