// Istio's trust-domain alias expansion of AuthorizationPolicy principals: the evaluator, the authorizer and the kernel's connect-time denies.
import { describe, expect, it } from 'vitest';
import { convertAuthorizationPolicy } from '../../../../control/config/authorization';
import { evaluate, matchPrincipal, stringMatcher, type TrustDomainBundle } from '../../../../core/policy/evaluate';
import { createAuthorizer } from '../../../../agent/policy/authorizer';
import type { AuthorizationPolicy, PolicyRequest } from '../../../../core/policy/types';

const BUNDLE: TrustDomainBundle = { trustDomain: 'new.td', aliases: ['old.td'] };

function allowPrincipals(principals: string[], action = 'ALLOW', field = 'principals'): AuthorizationPolicy {
  const r = convertAuthorizationPolicy('p', 'default', { action, rules: [{ from: [{ source: { [field]: principals } }] }] });
  if (!r.policy) throw new Error(JSON.stringify(r.problems));
  return r.policy;
}

const req = (identity: string): PolicyRequest => ({ sourceIdentity: identity, sourceIp: '10.1.0.5', destinationIp: '10.2.0.7', destinationPort: 8080 });

describe('matchPrincipal (Istio ReplaceTrustDomainAliases)', () => {
  const cases: Array<[string, string, TrustDomainBundle | undefined, boolean]> = [
    // [policy principal, peer principal, bundle, matches]
    ['old.td/ns/a/sa/b', 'old.td/ns/a/sa/b', BUNDLE, true],
    ['old.td/ns/a/sa/b', 'new.td/ns/a/sa/b', BUNDLE, true],
    ['new.td/ns/a/sa/b', 'old.td/ns/a/sa/b', BUNDLE, true],
    ['cluster.local/ns/a/sa/b', 'new.td/ns/a/sa/b', BUNDLE, true],
    ['cluster.local/ns/a/sa/b', 'old.td/ns/a/sa/b', BUNDLE, true],
    ['old.td/ns/a/sa/b', 'new.td/ns/a/sa/other', BUNDLE, false],
    ['old.td/ns/a/sa/b', 'new.td/ns/other/sa/b', BUNDLE, false],
    // A trust domain outside the bundle is kept as written (no expansion either way).
    ['foreign.td/ns/a/sa/b', 'new.td/ns/a/sa/b', BUNDLE, false],
    ['old.td/ns/a/sa/b', 'foreign.td/ns/a/sa/b', BUNDLE, false],
    // Prefix forms keep their trust domain part expandable; `*`-first forms enforce no trust domain.
    ['old.td/ns/a/*', 'new.td/ns/a/sa/x', BUNDLE, true],
    ['old.td/ns/a/*', 'new.td/ns/b/sa/x', BUNDLE, false],
    ['*/ns/a/sa/b', 'new.td/ns/a/sa/b', BUNDLE, true],
    ['*', 'old.td/ns/a/sa/b', BUNDLE, true],
    // Without a bundle (or with no aliases) principals match as written, except Istio's cluster.local placeholder.
    ['old.td/ns/a/sa/b', 'new.td/ns/a/sa/b', undefined, false],
    ['cluster.local/ns/a/sa/b', 'new.td/ns/a/sa/b', { trustDomain: 'new.td', aliases: [] }, true],
    ['old.td/ns/a/sa/b', 'new.td/ns/a/sa/b', { trustDomain: 'new.td', aliases: [] }, false],
  ];
  for (const [policy, peer, bundle, want] of cases) {
    it(`${policy} vs ${peer} (${bundle ? `${bundle.trustDomain}+[${bundle.aliases.join(',')}]` : 'no bundle'}): ${want}`, () => {
      expect(matchPrincipal(stringMatcher(policy), peer, bundle)).toBe(want);
    });
  }
  it('plaintext (no principal) never matches a principal', () => {
    expect(matchPrincipal(stringMatcher('old.td/ns/a/sa/b'), undefined, BUNDLE)).toBe(false);
  });
});

describe('evaluate with trust-domain aliases', () => {
  it('an ALLOW naming the old trust domain admits the same service account under the new one, and the reverse', () => {
    const p = allowPrincipals(['old.td/ns/default/sa/sleep']);
    expect(evaluate([p], req('spiffe://new.td/ns/default/sa/sleep'), { trustDomains: BUNDLE }).allow).toBe(true);
    expect(evaluate([p], req('spiffe://new.td/ns/default/sa/sleep')).allow).toBe(false);
    const q = allowPrincipals(['new.td/ns/default/sa/sleep']);
    expect(evaluate([q], req('spiffe://old.td/ns/default/sa/sleep'), { trustDomains: BUNDLE }).allow).toBe(true);
  });
  it('DENY principals and notPrincipals expand too', () => {
    const deny = allowPrincipals(['old.td/ns/default/sa/sleep'], 'DENY');
    expect(evaluate([deny], req('spiffe://new.td/ns/default/sa/sleep'), { trustDomains: BUNDLE })).toMatchObject({ allow: false, reason: 'deny_policy' });
    const notP = allowPrincipals(['old.td/ns/default/sa/sleep'], 'DENY', 'notPrincipals');
    expect(evaluate([notP], req('spiffe://new.td/ns/default/sa/sleep'), { trustDomains: BUNDLE }).allow).toBe(true);
    expect(evaluate([notP], req('spiffe://new.td/ns/default/sa/other'), { trustDomains: BUNDLE }).allow).toBe(false);
  });
  it('the authorizer reads the trust domain from the snapshot and the aliases on every decision', () => {
    const p = allowPrincipals(['old.td/ns/default/sa/sleep']);
    let aliases: string[] = [];
    const authorize = createAuthorizer({ state: { snapshot: () => ({ authorizationPolicies: [p], trustDomain: 'new.td' }) }, trustDomainAliases: () => aliases });
    const input = {
      sourceIdentity: 'spiffe://new.td/ns/default/sa/sleep',
      sourceIp: '10.1.0.5',
      destination: { ip: '10.2.0.7', port: 8080 },
      destinationWorkload: { namespace: 'default', labels: {} },
    };
    expect(authorize.decide(input).allow).toBe(false);
    aliases = ['old.td'];
    expect(authorize.decide(input).allow).toBe(true);
  });
});
