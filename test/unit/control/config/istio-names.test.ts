// Table tests for Istio's name rules inside resources: workload selectors, Kubernetes labels, DNS-1123 labels, (wildcard) hosts.
import { describe, expect, it } from 'vitest';
import { checkLabels, checkWorkloadSelector, isDns1123Label, wildcardDomainProblem } from '../../../../control/config/istio-names';

describe('wildcardDomainProblem (Istio ValidateWildcardDomain)', () => {
  const valid = ['reviews', 'reviews.default', 'reviews.default.svc.cluster.local', '*', '*.example.com', '*-svc.example.com', '*svc.example.com', 'istio.io.', 'Reviews.Default', '123', 'a.b1'];
  it.each(valid)('accepts %j', (h) => expect(wildcardDomainProblem(h)).toBeUndefined());
  const invalid: Array<[string, RegExp]> = [
    ['', /empty domain name/],
    ['reviews_v1', /label "reviews_v1" invalid/],
    ['-reviews', /label "-reviews" invalid/],
    ['a..b', /label "" invalid/],
    ['a.*.com', /label "\*" invalid/], // a wildcard only in the first label
    ['foo.*', /label "\*" invalid/],
    ['example.123', /top level domain "123" cannot be all-numeric/],
    [`${'a'.repeat(64)}.com`, /invalid/],
    ['a.'.repeat(128) + 'com', /too long/],
  ];
  it.each(invalid)('refuses %j', (h, why) => expect(wildcardDomainProblem(h)).toMatch(why));
});

describe('isDns1123Label (subset names)', () => {
  it.each([
    ['v1', true],
    ['V1', true],
    ['v1-canary', true],
    ['v1_x', false],
    ['v1.2', false],
    ['-v1', false],
    ['v1-', false],
    ['', false],
    ['a'.repeat(63), true],
    ['a'.repeat(64), false],
  ] as const)('%j → %s', (s, ok) => expect(isDns1123Label(s)).toBe(ok));
});

describe('checkWorkloadSelector (AuthorizationPolicy, PeerAuthentication)', () => {
  it('accepts plain labels and those Kubernetes would refuse but Istio does not check', () => {
    expect(checkWorkloadSelector({ app: 'web', 'team name': 'a b', version: '' }, 'f')).toEqual([]);
    expect(checkWorkloadSelector(undefined, 'f')).toEqual([]);
  });
  it('refuses wildcards, empty keys, long values, naming the key', () => {
    expect(checkWorkloadSelector({ app: 'http*', 'v*': 'x', '': 'y', long: 'a'.repeat(64) }, 'spec.selector.matchLabels').map((p) => p.field)).toEqual([
      'spec.selector.matchLabels[app]',
      'spec.selector.matchLabels[v*]',
      'spec.selector.matchLabels[]',
      'spec.selector.matchLabels[long]',
    ]);
  });
});

describe('checkLabels (DestinationRule subset labels: Kubernetes label syntax)', () => {
  const ok: Record<string, string> = { version: 'v1', 'app.kubernetes.io/name': 'web', 'example.com/tier': 'front_end.1', empty: '' };
  it('accepts Kubernetes labels', () => expect(checkLabels(ok, 'l')).toEqual([]));
  const bad: Array<[string, string]> = [
    ['-version', 'v1'],
    ['version', 'v*'],
    ['version', '-v1'],
    ['version', 'v1 beta'],
    ['a/b/c', 'v'],
    ['x'.repeat(64), 'v'],
  ];
  it.each(bad)('refuses %j: %j', (k, v) => expect(checkLabels({ [k]: v }, 'l')).toHaveLength(1));
  it('follows Istio, which lets upper case through in a key prefix', () => expect(checkLabels({ 'Example.com/x': 'v' }, 'l')).toEqual([]));
});
