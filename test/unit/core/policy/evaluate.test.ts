// Table tests for the pure authorization evaluator: every field and negation, L7 fail-closed at L4, precedence, selectors, empty and mesh-wide policies.
import { describe, expect, it } from 'vitest';
import { convertAuthorizationPolicy } from '../../../../control/config/authorization';
import { applicablePolicies, evaluate, projectToL4 } from '../../../../core/policy/evaluate';
import type { AuthorizationPolicy, HttpAttributes, PolicyRequest, PolicyTarget } from '../../../../core/policy/types';

const TD = 'cluster.local';
const id = (ns: string, sa: string) => `spiffe://${TD}/ns/${ns}/sa/${sa}`;

/** name, action, rules (Istio YAML shape), optional namespace/selector. */
interface P {
  name?: string;
  ns?: string;
  action?: string;
  selector?: Record<string, string>;
  rules?: unknown[];
}

export function policy(p: P): AuthorizationPolicy {
  const spec: Record<string, unknown> = {};
  if (p.action) spec.action = p.action;
  if (p.selector) spec.selector = { matchLabels: p.selector };
  if (p.rules) spec.rules = p.rules;
  const r = convertAuthorizationPolicy(p.name ?? 'p', p.ns ?? 'default', spec);
  if (!r.policy) throw new Error(JSON.stringify(r.problems));
  return r.policy;
}

const WEB: PolicyTarget = { namespace: 'default', labels: { app: 'web' } };
const DB: PolicyTarget = { namespace: 'data', labels: { app: 'db' } };

function req(over: Partial<PolicyRequest> = {}): PolicyRequest {
  return { sourceIdentity: id('default', 'sleep'), sourceIp: '10.1.0.5', destinationIp: '10.2.0.7', destinationPort: 8080, ...over };
}
const GET = (path = '/api/v1/items', over: Partial<HttpAttributes> = {}): HttpAttributes => ({ method: 'GET', path, host: 'web.default.svc.cluster.local', headers: {}, ...over });

const from = (source: Record<string, unknown>) => ({ from: [{ source }] });
const to = (operation: Record<string, unknown>) => ({ to: [{ operation }] });
const when = (key: string, values?: string[], notValues?: string[]) => ({ when: [{ key, ...(values ? { values } : {}), ...(notValues ? { notValues } : {}) }] });

interface Case {
  name: string;
  policies: P[];
  req?: Partial<PolicyRequest>;
  target?: PolicyTarget;
  /** true = allow; 'deny_policy' / 'no_allow_match' = deny with that reason. */
  expect: true | 'deny_policy' | 'no_allow_match';
  policy?: string;
  audit?: string[];
}

const ALLOW = (rules: unknown[], name = 'allow'): P => ({ name, action: 'ALLOW', rules });
const DENY = (rules: unknown[], name = 'deny'): P => ({ name, action: 'DENY', rules });

const cases: Case[] = [
  // ---- defaults and empty policies ----
  { name: 'no policies: allow', policies: [], expect: true },
  { name: 'ALLOW with no rules (allow-nothing): deny', policies: [{ name: 'nothing' }], expect: 'no_allow_match' },
  { name: 'ALLOW rules: [{}] matches everything', policies: [ALLOW([{}])], expect: true, policy: 'default/allow' },
  { name: 'DENY rules: [{}] denies everything', policies: [DENY([{}])], expect: 'deny_policy', policy: 'default/deny' },
  { name: 'plaintext source, ALLOW rules: [{}]: allow', policies: [ALLOW([{}])], req: { sourceIdentity: '' }, expect: true },
  // ---- principals ----
  { name: 'principals exact match', policies: [ALLOW([from({ principals: [`${TD}/ns/default/sa/sleep`] })])], expect: true },
  { name: 'principals exact mismatch', policies: [ALLOW([from({ principals: [`${TD}/ns/default/sa/other`] })])], expect: 'no_allow_match' },
  { name: 'principals prefix*', policies: [ALLOW([from({ principals: [`${TD}/ns/default/*`] })])], expect: true },
  { name: 'principals *suffix', policies: [ALLOW([from({ principals: ['*/sa/sleep'] })])], expect: true },
  { name: 'principals "*" requires an identity: mTLS allowed', policies: [ALLOW([from({ principals: ['*'] })])], expect: true },
  { name: 'principals "*" requires an identity: plaintext denied', policies: [ALLOW([from({ principals: ['*'] })])], req: { sourceIdentity: '' }, expect: 'no_allow_match' },
  { name: 'principal without trust domain is valid and never matches', policies: [ALLOW([from({ principals: ['ns/default/sa/sleep'] })])], expect: 'no_allow_match' },
  { name: 'notPrincipals excludes the caller', policies: [ALLOW([from({ notPrincipals: [`${TD}/ns/default/sa/sleep`] })])], expect: 'no_allow_match' },
  { name: 'notPrincipals: other caller passes', policies: [ALLOW([from({ notPrincipals: [`${TD}/ns/default/sa/other`] })])], expect: true },
  { name: 'DENY notPrincipals ["*"] denies plaintext', policies: [DENY([from({ notPrincipals: ['*'] })])], req: { sourceIdentity: '' }, expect: 'deny_policy', policy: 'default/deny' },
  { name: 'DENY notPrincipals ["*"] lets mTLS through', policies: [DENY([from({ notPrincipals: ['*'] })])], expect: true },
  // ---- namespaces ----
  { name: 'namespaces match (from identity)', policies: [ALLOW([from({ namespaces: ['default'] })])], expect: true },
  { name: 'namespaces mismatch', policies: [ALLOW([from({ namespaces: ['prod'] })])], expect: 'no_allow_match' },
  { name: 'namespaces prefix*', policies: [ALLOW([from({ namespaces: ['def*'] })])], expect: true },
  { name: 'namespaces: plaintext has none', policies: [ALLOW([from({ namespaces: ['default'] })])], req: { sourceIdentity: '' }, expect: 'no_allow_match' },
  { name: 'notNamespaces excludes', policies: [ALLOW([from({ notNamespaces: ['default'] })])], expect: 'no_allow_match' },
  { name: 'notNamespaces: plaintext passes (no namespace)', policies: [ALLOW([from({ notNamespaces: ['default'] })])], req: { sourceIdentity: '' }, expect: true },
  // ---- ipBlocks ----
  { name: 'ipBlocks CIDR contains', policies: [ALLOW([from({ ipBlocks: ['10.1.0.0/16'] })])], expect: true },
  { name: 'ipBlocks bare IP exact', policies: [ALLOW([from({ ipBlocks: ['10.1.0.5'] })])], expect: true },
  { name: 'ipBlocks outside', policies: [ALLOW([from({ ipBlocks: ['10.9.0.0/16'] })])], expect: 'no_allow_match' },
  { name: 'ipBlocks IPv6 never matches IPv4', policies: [ALLOW([from({ ipBlocks: ['::/0'] })])], expect: 'no_allow_match' },
  { name: 'ipBlocks IPv6 CIDR', policies: [ALLOW([from({ ipBlocks: ['fd00::/8'] })])], req: { sourceIp: 'fd00::1' }, expect: true },
  { name: 'notIpBlocks excludes', policies: [ALLOW([from({ notIpBlocks: ['10.1.0.0/24'] })])], expect: 'no_allow_match' },
  { name: 'notIpBlocks passes', policies: [ALLOW([from({ notIpBlocks: ['10.9.0.0/24'] })])], expect: true },
  // ---- ports ----
  { name: 'ports match', policies: [ALLOW([to({ ports: ['8080'] })])], expect: true },
  { name: 'ports mismatch', policies: [ALLOW([to({ ports: ['9090'] })])], expect: 'no_allow_match' },
  { name: 'notPorts excludes', policies: [ALLOW([to({ notPorts: ['8080'] })])], expect: 'no_allow_match' },
  { name: 'notPorts passes', policies: [ALLOW([to({ notPorts: ['9090'] })])], expect: true },
  // ---- L7 at an L4 port: fail closed ----
  { name: 'L4: ALLOW with methods never matches', policies: [ALLOW([to({ methods: ['GET'] })])], expect: 'no_allow_match' },
  {
    name: 'L4: ALLOW rule mixing ports and paths never matches (whole rule dropped)',
    policies: [ALLOW([{ to: [{ operation: { ports: ['8080'] } }, { operation: { paths: ['/x'] } }] }])],
    expect: 'no_allow_match',
  },
  { name: 'L4: another ALLOW rule without L7 still matches', policies: [ALLOW([to({ paths: ['/x'] }), to({ ports: ['8080'] })])], expect: true },
  { name: 'L4: DENY with methods matches (L7 part ignored)', policies: [DENY([to({ methods: ['POST'] })])], expect: 'deny_policy', policy: 'default/deny' },
  { name: 'L4: DENY with notPaths matches', policies: [DENY([to({ notPaths: ['/healthz'] })])], expect: 'deny_policy' },
  { name: 'L4: DENY with L7 keeps its L4 part (port mismatch → no deny)', policies: [DENY([to({ ports: ['9090'], methods: ['POST'] })])], expect: true },
  { name: 'L4: ALLOW with request.headers condition never matches', policies: [ALLOW([when('request.headers[x-user]', ['alice'])])], expect: 'no_allow_match' },
  { name: 'L4: DENY with remoteIpBlocks matches', policies: [DENY([from({ remoteIpBlocks: ['192.0.2.0/24'] })])], expect: 'deny_policy' },
  // ---- L7 on an HTTP port ----
  { name: 'HTTP: methods match', policies: [ALLOW([to({ methods: ['GET', 'HEAD'] })])], req: { http: GET() }, expect: true },
  { name: 'HTTP: methods mismatch', policies: [ALLOW([to({ methods: ['POST'] })])], req: { http: GET() }, expect: 'no_allow_match' },
  { name: 'HTTP: notMethods', policies: [ALLOW([to({ notMethods: ['GET'] })])], req: { http: GET() }, expect: 'no_allow_match' },
  { name: 'HTTP: paths exact (query ignored)', policies: [ALLOW([to({ paths: ['/api/v1/items'] })])], req: { http: GET('/api/v1/items?x=1') }, expect: true },
  { name: 'HTTP: paths prefix*', policies: [ALLOW([to({ paths: ['/api/*'] })])], req: { http: GET() }, expect: true },
  { name: 'HTTP: paths *suffix', policies: [ALLOW([to({ paths: ['*/items'] })])], req: { http: GET() }, expect: true },
  { name: 'HTTP: paths mismatch', policies: [ALLOW([to({ paths: ['/admin*'] })])], req: { http: GET() }, expect: 'no_allow_match' },
  { name: 'HTTP: DENY notPaths lets the listed path through', policies: [DENY([to({ notPaths: ['/api/*'] })])], req: { http: GET() }, expect: true },
  { name: 'HTTP: DENY notPaths denies the others', policies: [DENY([to({ notPaths: ['/public/*'] })])], req: { http: GET() }, expect: 'deny_policy' },
  {
    name: 'HTTP: hosts exact is case-insensitive',
    policies: [ALLOW([to({ hosts: ['WEB.default.svc.cluster.local'] })])],
    req: { http: GET('/', { host: 'web.Default.svc.cluster.local' }) },
    expect: true,
  },
  // Istio matches the whole Host value: an exact entry without a port does not match host:port.
  {
    name: 'HTTP: hosts exact does not match host:port',
    policies: [ALLOW([to({ hosts: ['web.default.svc.cluster.local'] })])],
    req: { http: GET('/', { host: 'web.default.svc.cluster.local:8080' }) },
    expect: 'no_allow_match',
  },
  {
    name: 'HTTP: hosts exact with the port matches host:port',
    policies: [ALLOW([to({ hosts: ['web.default.svc.cluster.local:8080'] })])],
    req: { http: GET('/', { host: 'web.default.svc.cluster.local:8080' }) },
    expect: true,
  },
  {
    name: 'HTTP: hosts host:* prefix matches any port',
    policies: [ALLOW([to({ hosts: ['web.default.svc.cluster.local:*'] })])],
    req: { http: GET('/', { host: 'WEB.default.svc.cluster.local:8080' }) },
    expect: true,
  },
  { name: 'HTTP: hosts host:* prefix does not match the bare host', policies: [ALLOW([to({ hosts: ['web.default.svc.cluster.local:*'] })])], req: { http: GET() }, expect: 'no_allow_match' },
  {
    name: 'HTTP: DENY hosts exact leaves host:port alone',
    policies: [DENY([to({ hosts: ['web.default.svc.cluster.local'] })])],
    req: { http: GET('/', { host: 'web.default.svc.cluster.local:80' }) },
    expect: true,
  },
  {
    name: 'HTTP: DENY notHosts exact denies host:port',
    policies: [DENY([to({ notHosts: ['web.default.svc.cluster.local'] })])],
    req: { http: GET('/', { host: 'web.default.svc.cluster.local:80' }) },
    expect: 'deny_policy',
  },
  { name: 'HTTP: hosts *suffix', policies: [ALLOW([to({ hosts: ['*.svc.cluster.local'] })])], req: { http: GET() }, expect: true },
  {
    name: 'HTTP: hosts *suffix is case-insensitive and sees the port',
    policies: [ALLOW([to({ hosts: ['*.SVC.cluster.local'] })])],
    req: { http: GET('/', { host: 'web.default.svc.cluster.local:80' }) },
    expect: 'no_allow_match',
  },
  { name: 'HTTP: hosts prefix* matches host:port', policies: [ALLOW([to({ hosts: ['WEB.*'] })])], req: { http: GET('/', { host: 'web.default:80' }) }, expect: true },
  { name: 'HTTP: hosts * matches any host', policies: [ALLOW([to({ hosts: ['*'] })])], req: { http: GET('/', { host: 'anything:1' }) }, expect: true },
  { name: 'HTTP: notHosts', policies: [ALLOW([to({ notHosts: ['web.*'] })])], req: { http: GET() }, expect: 'no_allow_match' },
  { name: 'HTTP: header condition values', policies: [ALLOW([when('request.headers[X-User]', ['alice', 'bob'])])], req: { http: GET('/', { headers: { 'x-user': 'bob' } }) }, expect: true },
  { name: 'HTTP: header condition absent header', policies: [ALLOW([when('request.headers[x-user]', ['*'])])], req: { http: GET() }, expect: 'no_allow_match' },
  {
    name: 'HTTP: header condition notValues',
    policies: [ALLOW([when('request.headers[x-user]', undefined, ['mallory'])])],
    req: { http: GET('/', { headers: { 'x-user': 'mallory' } }) },
    expect: 'no_allow_match',
  },
  { name: 'HTTP: requestPrincipals never match without JWT', policies: [ALLOW([from({ requestPrincipals: ['*'] })])], req: { http: GET() }, expect: 'no_allow_match' },
  { name: 'HTTP: remoteIpBlocks uses the source IP', policies: [ALLOW([from({ remoteIpBlocks: ['10.1.0.0/16'] })])], req: { http: GET() }, expect: true },
  // ---- when (L4 keys) ----
  { name: 'when source.ip', policies: [ALLOW([when('source.ip', ['10.1.0.0/16'])])], expect: true },
  { name: 'when source.ip notValues', policies: [ALLOW([when('source.ip', undefined, ['10.1.0.5'])])], expect: 'no_allow_match' },
  { name: 'when source.namespace', policies: [ALLOW([when('source.namespace', ['default'])])], expect: true },
  { name: 'when source.principal', policies: [ALLOW([when('source.principal', [`${TD}/ns/prod/*`])])], expect: 'no_allow_match' },
  { name: 'when destination.ip', policies: [ALLOW([when('destination.ip', ['10.2.0.0/24'])])], expect: true },
  { name: 'when destination.port', policies: [ALLOW([when('destination.port', ['8080'])])], expect: true },
  {
    name: 'when conditions are AND-ed',
    policies: [
      ALLOW([
        {
          when: [
            { key: 'destination.port', values: ['8080'] },
            { key: 'source.namespace', values: ['prod'] },
          ],
        },
      ]),
    ],
    expect: 'no_allow_match',
  },
  // ---- combinations ----
  { name: 'from AND to: both hold', policies: [ALLOW([{ ...from({ namespaces: ['default'] }), ...to({ ports: ['8080'] }) }])], expect: true },
  { name: 'from AND to: to fails', policies: [ALLOW([{ ...from({ namespaces: ['default'] }), ...to({ ports: ['1'] }) }])], expect: 'no_allow_match' },
  { name: 'from entries are OR-ed', policies: [ALLOW([{ from: [{ source: { namespaces: ['prod'] } }, { source: { ipBlocks: ['10.1.0.0/16'] } }] }])], expect: true },
  { name: 'fields within one source are AND-ed', policies: [ALLOW([from({ namespaces: ['default'], ipBlocks: ['10.9.0.0/16'] })])], expect: 'no_allow_match' },
  { name: 'rules are OR-ed', policies: [ALLOW([from({ namespaces: ['prod'] }), to({ ports: ['8080'] })])], expect: true },
  // ---- precedence ----
  { name: 'DENY wins over a matching ALLOW', policies: [ALLOW([{}]), DENY([to({ ports: ['8080'] })])], expect: 'deny_policy', policy: 'default/deny' },
  { name: 'non-matching DENY, matching ALLOW: allow', policies: [ALLOW([{}]), DENY([to({ ports: ['1'] })])], expect: true, policy: 'default/allow' },
  { name: 'only a non-matching DENY: allow (no ALLOW policy)', policies: [DENY([to({ ports: ['1'] })])], expect: true },
  { name: 'one of two ALLOW policies matches: allow', policies: [ALLOW([to({ ports: ['1'] })], 'a'), ALLOW([to({ ports: ['8080'] })], 'b')], expect: true, policy: 'default/b' },
  // ---- AUDIT ----
  { name: 'AUDIT marks but never denies', policies: [{ name: 'aud', action: 'AUDIT', rules: [{}] }], expect: true, audit: ['default/aud'] },
  { name: 'AUDIT alone is not an ALLOW policy', policies: [{ name: 'aud', action: 'AUDIT', rules: [to({ ports: ['1'] })] }], expect: true, audit: [] },
  { name: 'AUDIT is reported on a deny too', policies: [{ name: 'aud', action: 'AUDIT', rules: [{}] }, DENY([{}])], expect: 'deny_policy', audit: ['default/aud'] },
  // ---- selectors and scopes ----
  { name: 'selector policy applies to the selected workload', policies: [{ name: 'sel', selector: { app: 'web' } }], expect: 'no_allow_match' },
  { name: 'selector policy ignores other workloads', policies: [{ name: 'sel', selector: { app: 'other' } }], expect: true },
  { name: 'namespace policy does not reach another namespace', policies: [{ name: 'nothing', ns: 'default' }], target: DB, expect: true },
  {
    name: 'root-namespace policy applies mesh-wide',
    policies: [{ name: 'mesh', ns: 'istio-system', action: 'DENY', rules: [from({ namespaces: ['default'] })] }],
    target: DB,
    expect: 'deny_policy',
    policy: 'istio-system/mesh',
  },
  { name: 'root-namespace selector policy selects across namespaces', policies: [{ name: 'dbs', ns: 'istio-system', selector: { app: 'db' } }], target: DB, expect: 'no_allow_match' },
  { name: 'selector in another (non-root) namespace does not apply', policies: [{ name: 'dbs', ns: 'default', selector: { app: 'db' } }], target: DB, expect: true },
];

describe('policy evaluator (table)', () => {
  it('has at least 40 cases', () => expect(cases.length).toBeGreaterThanOrEqual(40));
  for (const c of cases) {
    it(c.name, () => {
      const all = c.policies.map(policy);
      const applied = applicablePolicies(all, c.target ?? WEB);
      const d = evaluate(applied, req(c.req));
      if (c.expect === true) expect(d.allow).toBe(true);
      else expect(d).toMatchObject({ allow: false, reason: c.expect });
      if (c.policy !== undefined) expect(d.policy).toBe(c.policy);
      if (c.audit !== undefined) expect(d.audit).toEqual(c.audit);
      // The L4 projection (what goes on the wire) decides the same at an L4 port.
      if (!c.req?.http) expect(evaluate(applied.map(projectToL4), req(c.req)).allow).toBe(d.allow);
    });
  }
});

describe('selection from control-plane resolution', () => {
  it('a workload with authorizationPolicies uses that list, not labels', () => {
    const p = policy({ name: 'sel', selector: { app: 'web' } });
    expect(applicablePolicies([p], { ...WEB, authorizationPolicies: [] })).toEqual([]);
    expect(applicablePolicies([p], { namespace: 'default', labels: {}, authorizationPolicies: ['default/sel'] })).toEqual([p]);
  });
  it('a custom root namespace', () => {
    const p = policy({ name: 'mesh', ns: 'mesh-root', action: 'DENY', rules: [{}] });
    expect(p.scope).toBe('namespace'); // converted with the default root
    const q = convertAuthorizationPolicy('mesh', 'mesh-root', { action: 'DENY', rules: [{}] }, 'mesh-root').policy!;
    expect(q.scope).toBe('global');
    expect(applicablePolicies([q], DB)).toEqual([q]);
  });
});
