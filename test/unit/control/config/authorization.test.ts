// AuthorizationPolicy in file config: Istio's validation rules as errors naming file, resource and field; one bad policy never hides the others' problems.
import { describe, expect, it } from 'vitest';
import { buildSnapshot, parseConfigText, type ConfigProblem } from '../../../../control/config/config-dir';

const HEAD = 'apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: p, namespace: default}\n';

function load(yaml: string): { problems: ConfigProblem[]; snapshot: ReturnType<typeof buildSnapshot> } {
  const problems: ConfigProblem[] = [];
  const docs = parseConfigText('policies.yaml', yaml, problems);
  const snapshot = buildSnapshot(docs, problems);
  return { problems, snapshot };
}

const bad: Array<[string, string, string, RegExp]> = [
  ['CUSTOM action', 'spec: {action: CUSTOM, provider: {name: ext}, rules: [{}]}', 'spec.action', /unsupported: CUSTOM needs an external authorizer/],
  ['unknown action', 'spec: {action: REJECT, rules: [{}]}', 'spec.action', /expected one of ALLOW, DENY, AUDIT, CUSTOM/],
  ['DENY without rules', 'spec: {action: DENY}', 'spec.rules', /DENY policy needs at least one rule/],
  ['unknown field', 'spec: {action: ALLOW, rules: [{from: [{source: {principal: [x]}}]}]}', 'spec.rules[0].from[0].source.principal', /unknown field/],
  ['unknown top-level spec field', 'spec: {actions: ALLOW}', 'spec.actions', /unknown field/],
  ['empty principal', 'spec: {rules: [{from: [{source: {principals: [""]}}]}]}', 'spec.rules[0].from[0].source.principals[0]', /empty value not allowed/],
  ['empty namespace', 'spec: {rules: [{from: [{source: {namespaces: [a, ""]}}]}]}', 'spec.rules[0].from[0].source.namespaces[1]', /empty value not allowed/],
  ['malformed CIDR', 'spec: {rules: [{from: [{source: {ipBlocks: [10.0.0.0/33]}}]}]}', 'spec.rules[0].from[0].source.ipBlocks[0]', /expected an IP address or CIDR/],
  [
    'CIDR prefix length with a leading zero (Go netip.ParsePrefix refuses it)',
    'spec: {rules: [{from: [{source: {ipBlocks: [10.0.0.0/08]}}]}]}',
    'spec.rules[0].from[0].source.ipBlocks[0]',
    /expected an IP address or CIDR/,
  ],
  ['malformed IP', 'spec: {rules: [{from: [{source: {notIpBlocks: [10.0.0.300]}}]}]}', 'spec.rules[0].from[0].source.notIpBlocks[0]', /expected an IP address or CIDR/],
  ['malformed port', 'spec: {rules: [{to: [{operation: {ports: ["80a"]}}]}]}', 'spec.rules[0].to[0].operation.ports[0]', /expected a port number/],
  ['port out of range', 'spec: {rules: [{to: [{operation: {notPorts: ["70000"]}}]}]}', 'spec.rules[0].to[0].operation.notPorts[0]', /expected a port number/],
  // Istio's CRD types ports as strings; Kubernetes refuses `8080` (istio/istio#24633).
  ['port as a number', 'spec: {rules: [{to: [{operation: {ports: ["80", 8080]}}]}]}', 'spec.rules[0].to[0].operation.ports[1]', /expected a string, got number 8080/],
  // Istio's validateWorkloadSelector and CRD rules for selector.matchLabels.
  ['wildcard in a selector value', 'spec: {selector: {matchLabels: {app: "http*"}}}', 'spec.selector.matchLabels[app]', /wildcard not allowed in label value match/],
  ['wildcard in a selector key', 'spec: {selector: {matchLabels: {"app*": web}}}', 'spec.selector.matchLabels[app*]', /wildcard not allowed in label key match/],
  ['empty selector key', 'spec: {selector: {matchLabels: {"": web}}}', 'spec.selector.matchLabels[]', /key must not be empty/],
  ['selector value over 63 characters', `spec: {selector: {matchLabels: {app: ${'a'.repeat(64)}}}}`, 'spec.selector.matchLabels[app]', /longer than 63/],
  ['more than 512 rules', `spec: {rules: [${Array(513).fill('{}').join(', ')}]}`, 'spec.rules', /at most 512 rules/],
  ['empty from', 'spec: {rules: [{from: []}]}', 'spec.rules[0].from', /must not be empty/],
  ['empty source', 'spec: {rules: [{from: [{source: {}}]}]}', 'spec.rules[0].from[0].source', /must not be empty/],
  ['empty operation', 'spec: {rules: [{to: [{operation: {}}]}]}', 'spec.rules[0].to[0].operation', /must not be empty/],
  ['unsupported when key', 'spec: {rules: [{when: [{key: "request.auth.claims[iss]", values: [x]}]}]}', 'spec.rules[0].when[0].key', /unsupported condition key/],
  ['when without values', 'spec: {rules: [{when: [{key: source.ip}]}]}', 'spec.rules[0].when[0]', /at least one of values or notValues/],
  ['when destination.port bad', 'spec: {rules: [{when: [{key: destination.port, values: [http]}]}]}', 'spec.rules[0].when[0].values[0]', /expected a port number/],
  ['provider without CUSTOM', 'spec: {action: ALLOW, provider: {name: x}}', 'spec.provider', /only allowed with action CUSTOM/],
  ['targetRef', 'spec: {targetRef: {kind: Gateway, name: gw}}', 'spec.targetRef', /unsupported/],
];

describe('AuthorizationPolicy config validation', () => {
  for (const [name, spec, field, message] of bad) {
    it(`rejects ${name} naming file, resource and field`, () => {
      const { problems } = load(HEAD + spec + '\n');
      const p = problems.find((x) => x.field === field);
      expect(p, JSON.stringify(problems)).toBeDefined();
      expect(p).toMatchObject({ file: 'policies.yaml', resource: 'AuthorizationPolicy default/p' });
      expect(p!.message).toMatch(message);
    });
  }

  // [kind, annotation value, spec, expected message]
  const dryRun: Array<[string, string, string, RegExp]> = [
    ['AuthorizationPolicy', 'true', '{action: DENY, rules: [{}]}', /no dry-run mode and would enforce this policy/],
    ['AuthorizationPolicy', 'True', '{rules: [{}]}', /no dry-run mode/],
    ['AuthorizationPolicy', 'yes', '{action: DENY, rules: [{}]}', /expected true or false, got "yes"/],
    ['AuthorizationPolicy', 'false', '{action: AUDIT, rules: [{}]}', /only supported with action ALLOW or DENY, found AUDIT/],
    ['PeerAuthentication', 'false', '{mtls: {mode: STRICT}}', /unsupported annotation on a PeerAuthentication/],
  ];
  for (const [kind, value, spec, message] of dryRun) {
    it(`istio.io/dry-run: ${JSON.stringify(value)} on ${kind} ${spec} is refused with the resource`, () => {
      const { problems, snapshot } = load(`apiVersion: security.istio.io/v1\nkind: ${kind}\nmetadata: {name: d, namespace: default, annotations: {istio.io/dry-run: "${value}"}}\nspec: ${spec}\n`);
      expect(problems).toHaveLength(1);
      expect(problems[0]).toMatchObject({ file: 'policies.yaml', resource: `${kind} default/d`, field: 'metadata.annotations[istio.io/dry-run]' });
      expect(problems[0]!.message).toMatch(message);
      expect(snapshot.authorizationPolicies ?? []).toEqual([]);
    });
  }

  it('Istio resources need Kubernetes object names: a lowercase RFC 1123 subdomain in a namespace that is an RFC 1123 label', () => {
    const doc = (kind: string, name: string, ns: string, spec: string) => `apiVersion: security.istio.io/v1\nkind: ${kind}\nmetadata: {name: "${name}", namespace: "${ns}"}\nspec: ${spec}\n`;
    const { problems, snapshot } = load(
      [
        doc('AuthorizationPolicy', 'My_Policy', 'default', '{}'),
        // istiod's converted PeerAuthentication names contain '_': a user policy can never take one.
        doc('AuthorizationPolicy', 'converted_peer_authentication_x', 'default', '{}'),
        doc('AuthorizationPolicy', 'p', 'Team_A', '{}'),
        doc('PeerAuthentication', 'Strict', 'default', '{mtls: {mode: STRICT}}'),
        doc('AuthorizationPolicy', 'ok.name-1', 'team-a', '{}'),
      ].join('---\n'),
    );
    expect(problems.map((p) => `${p.resource}: ${p.field}`)).toEqual([
      'AuthorizationPolicy default/My_Policy: metadata.name',
      'AuthorizationPolicy default/converted_peer_authentication_x: metadata.name',
      'AuthorizationPolicy Team_A/p: metadata.namespace',
      'PeerAuthentication default/Strict: metadata.name',
    ]);
    expect(problems[0]!.message).toMatch(/expected a lowercase RFC 1123 subdomain/);
    expect(snapshot.authorizationPolicies!.map((p) => `${p.namespace}/${p.name}`)).toEqual(['team-a/ok.name-1']);
  });

  it('a bad policy is reported and the good ones are kept (all problems of the set are listed)', () => {
    const yaml = [
      HEAD + 'spec: {action: CUSTOM, rules: [{}]}',
      'apiVersion: security.istio.io/v1beta1\nkind: AuthorizationPolicy\nmetadata: {name: good, namespace: default}\nspec: {action: DENY, rules: [{from: [{source: {principals: ["ns/default/sa/x"]}}]}]}',
    ].join('\n---\n');
    const { problems, snapshot } = load(yaml);
    expect(problems).toHaveLength(1);
    expect(snapshot.authorizationPolicies!.map((p) => `${p.namespace}/${p.name}`)).toEqual(['default/good']);
  });

  it('accepts what Istio accepts: empty spec (allow nothing), rules [{}], ports as strings, dry-run false, selector labels without wildcards; rootNamespace from MeshConfig', () => {
    const yaml = [
      'apiVersion: smesh.io/v1alpha1\nkind: MeshConfig\nmetadata: {name: mesh}\nspec: {trustDomain: cluster.local, rootNamespace: mesh-root}',
      'apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: none, namespace: default}\nspec: {}',
      'apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: all, namespace: mesh-root}\nspec: {action: AUDIT, rules: [{}]}',
      'apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: ports, namespace: default}\nspec: {selector: {matchLabels: {app: web}}, rules: [{to: [{operation: {ports: ["80", "8080"]}}]}]}',
      // Istio applies no Kubernetes label syntax to AuthorizationPolicy selectors: only wildcards, empty keys and length.
      'apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: odd-labels, namespace: default, annotations: {istio.io/dry-run: "false"}}\nspec: {selector: {matchLabels: {"team name": "a b", version: ""}}, action: DENY, rules: [{}]}',
    ].join('\n---\n');
    const { problems, snapshot } = load(yaml);
    expect(problems).toEqual([]);
    expect(snapshot.rootNamespace).toBe('mesh-root');
    const byName = new Map(snapshot.authorizationPolicies!.map((p) => [p.name, p]));
    expect(byName.get('none')).toMatchObject({ action: 'ALLOW', scope: 'namespace', rules: [] });
    expect(byName.get('all')).toMatchObject({ action: 'AUDIT', scope: 'global', rules: [{ clauses: [] }] });
    expect(byName.get('ports')).toMatchObject({ scope: 'workloadSelector', selector: { app: 'web' }, rules: [{ clauses: [{ matches: [{ destinationPorts: [80, 8080] }] }] }] });
  });
});
