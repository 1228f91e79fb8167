// AuthorizationPolicy over xDS: control encodes (scope, Workload.authorization_policies, L4 projection), the agent decodes to the same decisions; a bad Authorization is NACKed alone.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildSnapshot as buildFileSnapshot, parseConfigText, type ConfigProblem } from '../../../../control/config/config-dir';
import { applicablePolicies, evaluate, projectToL4 } from '../../../../core/policy/evaluate';
import { createAuthorizer } from '../../../../agent/policy/authorizer';
import type { PolicyRequest } from '../../../../core/policy/types';
import { ControlPlaneChannel } from '../../../../agent/xds/channel';
import { XdsClient, type XdsUpdate } from '../../../../agent/xds/client';
import { buildSnapshot, parseResource, type AcceptedAuthorization, type AcceptedAddress } from '../../../../agent/xds/convert';
import { buildResourceSets } from '../../../../control/xds-resources';
import type { Authorization } from '../../../../proto/generated/istio/security/Authorization';
import { waitFor } from '../../fixtures/proxy';
import { CONTROL_ID, FakeControlPlane, meshPki, TOKEN, type MeshPki } from '../../fixtures/xds';
import { XDS_TYPE_URL, xdsCodecs } from '../../../../core/xds/contract';

const CONFIG = `
apiVersion: smesh.io/v1alpha1
kind: MeshConfig
metadata: {name: mesh}
spec: {trustDomain: cluster.local}
---
apiVersion: v1
kind: Node
metadata: {name: node1}
status: {addresses: [{type: InternalIP, address: 198.18.0.1}]}
---
apiVersion: v1
kind: Pod
metadata: {name: web-1, namespace: default, labels: {app: web}}
spec: {nodeName: node1, serviceAccountName: web}
status: {podIP: 198.18.1.10}
---
apiVersion: v1
kind: Pod
metadata: {name: db-0, namespace: data, labels: {app: db}}
spec: {nodeName: node1, serviceAccountName: db}
status: {podIP: 198.18.1.20}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: web-allow, namespace: default}
spec:
  selector: {matchLabels: {app: web}}
  rules:
  - from: [{source: {principals: ["cluster.local/ns/default/*"], notIpBlocks: ["10.66.0.0/16"]}}]
    to: [{operation: {ports: ["8080"]}}]
  - to: [{operation: {methods: [GET]}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: no-plaintext, namespace: istio-system}
spec:
  action: DENY
  rules: [{from: [{source: {notPrincipals: ["*"]}}]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: no-post, namespace: data}
spec:
  action: DENY
  rules: [{to: [{operation: {methods: [POST], ports: ["5432"]}}], when: [{key: source.ip, notValues: ["fd00::/8"]}]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: audit-all, namespace: data}
spec: {action: AUDIT, rules: [{}]}
`;

function fileSnapshot() {
  const problems: ConfigProblem[] = [];
  const s = buildFileSnapshot(parseConfigText('mesh.yaml', CONFIG, problems), problems);
  expect(problems).toEqual([]);
  return s;
}

const requests: Array<[string, PolicyRequest]> = [
  ['default/web-1', { sourceIdentity: 'spiffe://cluster.local/ns/default/sa/a', sourceIp: '10.1.0.1', destinationIp: '198.18.1.10', destinationPort: 8080 }],
  ['default/web-1', { sourceIdentity: 'spiffe://cluster.local/ns/default/sa/a', sourceIp: '10.66.0.1', destinationIp: '198.18.1.10', destinationPort: 8080 }],
  ['default/web-1', { sourceIdentity: 'spiffe://cluster.local/ns/prod/sa/a', sourceIp: '10.1.0.1', destinationIp: '198.18.1.10', destinationPort: 8080 }],
  ['default/web-1', { sourceIdentity: 'spiffe://cluster.local/ns/default/sa/a', sourceIp: '10.1.0.1', destinationIp: '198.18.1.10', destinationPort: 9090 }],
  ['default/web-1', { sourceIdentity: '', sourceIp: '10.1.0.1', destinationIp: '198.18.1.10', destinationPort: 8080 }],
  ['data/db-0', { sourceIdentity: 'spiffe://cluster.local/ns/default/sa/a', sourceIp: '10.1.0.1', destinationIp: '198.18.1.20', destinationPort: 5432 }],
  ['data/db-0', { sourceIdentity: 'spiffe://cluster.local/ns/default/sa/a', sourceIp: 'fd00::1', destinationIp: '198.18.1.20', destinationPort: 5432 }],
  ['data/db-0', { sourceIdentity: 'spiffe://cluster.local/ns/default/sa/a', sourceIp: '10.1.0.1', destinationIp: '198.18.1.20', destinationPort: 80 }],
];

describe('AuthorizationPolicy: control encode → agent decode', () => {
  it('encodes scopes, actions and Workload.authorization_policies as istiod does, and decodes to the same L4 decisions', () => {
    const file = fileSnapshot();
    const sets = buildResourceSets(file, { trustAnchors: [] });
    const authz = sets.shared.get(XDS_TYPE_URL.authorization)!;
    expect([...authz.keys()].sort()).toEqual(['data/audit-all', 'data/no-post', 'default/web-allow', 'istio-system/no-plaintext']);
    const c = xdsCodecs();
    const wire = (n: string) => c.authorization.decode(authz.get(n)!.resource.value);
    expect(wire('default/web-allow')).toMatchObject({ scope: 'WORKLOAD_SELECTOR', action: 'ALLOW' });
    expect(wire('default/web-allow').groups).toHaveLength(1); // the L7 (methods) ALLOW rule is dropped, as istiod does
    expect(wire('istio-system/no-plaintext')).toMatchObject({ scope: 'GLOBAL', action: 'DENY' });
    expect(wire('data/no-post')).toMatchObject({ scope: 'NAMESPACE', action: 'DENY' });
    expect(wire('data/audit-all')).toMatchObject({ action: 'SMESH_AUDIT' });

    // Agent side: parse every Address and Authorization, build the snapshot.
    const addresses = new Map<string, AcceptedAddress>();
    for (const [name, e] of sets.shared.get(XDS_TYPE_URL.address)!) {
      const r = parseResource(XDS_TYPE_URL.address, name, e.resource);
      if (!r.ok) throw new Error(r.error);
      addresses.set(name, r.value as AcceptedAddress);
    }
    const authorizations = new Map<string, AcceptedAuthorization>();
    for (const [name, e] of authz) {
      const r = parseResource(XDS_TYPE_URL.authorization, name, e.resource);
      if (!r.ok) throw new Error(r.error);
      authorizations.set(name, r.value as AcceptedAuthorization);
    }
    const agent = buildSnapshot({ addresses, nodes: new Map(), localWorkloads: new Map(), authorizations }).snapshot;
    expect(agent.workloads.get('Kubernetes//Pod/default/web-1')!.authorizationPolicies).toEqual(['default/web-allow']);
    expect(agent.workloads.get('Kubernetes//Pod/data/db-0')!.authorizationPolicies).toBeUndefined();

    const decisions = (snap: typeof file, uidOf: (k: string) => string) =>
      requests.map(([k, r]) => {
        const w = snap.workloads.get(uidOf(k))!;
        const d = evaluate(applicablePolicies(snap.authorizationPolicies ?? [], w, snap.rootNamespace), r);
        return d.allow ? `allow ${d.audit.join(',')}` : `deny ${d.reason} ${d.policy ?? ''}`;
      });
    const viaFile = decisions(file, (k) => k);
    const viaXds = decisions(agent, (k) => `Kubernetes//Pod/${k}`);
    expect(viaXds).toEqual(viaFile);
    expect(viaFile).toEqual([
      'allow ',
      'deny no_allow_match ',
      'deny no_allow_match ',
      'deny no_allow_match ',
      'deny deny_policy istio-system/no-plaintext',
      'deny deny_policy data/no-post', // L7 method ignored at an L4 port: DENY fails closed
      'allow data/audit-all',
      'allow data/audit-all',
    ]);
  });

  const T = XDS_TYPE_URL.authorization;
  const pack = (a: Authorization) => xdsCodecs().authorization.pack(a);
  const good: Authorization = { name: 'p', namespace: 'default', scope: 'NAMESPACE', action: 'ALLOW', groups: [{ rules: [{ matches: [{ principals: [{ exact: 'cluster.local/ns/a/sa/b' }] }] }] }] };
  const badCases: Array<[string, Authorization, string]> = [
    ['unknown action', { ...good, action: 7 as never }, 'Authorization default/p: action: expected ALLOW, DENY or SMESH_AUDIT, got 7 (CUSTOM and unknown actions are not supported)'],
    ['DENY without groups', { ...good, action: 'DENY', groups: [] }, 'Authorization default/p: groups: a DENY policy needs at least one group (DENY without rules is invalid)'],
    [
      'empty principal',
      { ...good, groups: [{ rules: [{ matches: [{ principals: [{ exact: '' }] }] }] }] },
      'Authorization default/p: groups[0].rules[0].matches[0].principals[0].exact: empty value not allowed',
    ],
    [
      'empty namespace',
      { ...good, groups: [{ rules: [{ matches: [{ notNamespaces: [{ exact: '' }] }] }] }] },
      'Authorization default/p: groups[0].rules[0].matches[0].not_namespaces[0].exact: empty value not allowed',
    ],
    [
      'bad CIDR bytes',
      { ...good, groups: [{ rules: [{ matches: [{ sourceIps: [{ address: Buffer.from([10, 0, 0]), length: 8 }] }] }] }] },
      'Authorization default/p: groups[0].rules[0].matches[0].source_ips[0].address: expected 4 or 16 bytes, got 3',
    ],
    [
      'bad CIDR length',
      { ...good, groups: [{ rules: [{ matches: [{ sourceIps: [{ address: Buffer.from([10, 0, 0, 0]), length: 33 }] }] }] }] },
      'Authorization default/p: groups[0].rules[0].matches[0].source_ips[0].length: expected a prefix length 0-32, got 33',
    ],
    [
      'bad port',
      { ...good, groups: [{ rules: [{ matches: [{ destinationPorts: [70000] }] }] }] },
      'Authorization default/p: groups[0].rules[0].matches[0].destination_ports[0]: expected a port 0-65535, got 70000',
    ],
    ['name mismatch', { ...good, name: 'q' }, 'Authorization default/p: name: expected the resource name "default/p" to be "<namespace>/<name>" = "default/q"'],
  ];
  for (const [name, a, error] of badCases) {
    it(`rejects an Authorization with ${name}`, () => {
      expect(parseResource(T, 'default/p', pack(a))).toEqual({ ok: false, error });
    });
  }
  it('accepts a valid one', () => {
    expect(parseResource(T, 'default/p', pack(good))).toMatchObject({ ok: true, value: { kind: 'authorization', policy: { scope: 'namespace', action: 'ALLOW' } } });
  });
});

describe('AuthorizationPolicy over a live delta ADS stream', () => {
  let pki: MeshPki;
  let cp: FakeControlPlane;
  let channel: ControlPlaneChannel;
  let client: XdsClient;
  const updates: XdsUpdate[] = [];

  beforeAll(async () => {
    pki = await meshPki();
    cp = new FakeControlPlane(pki);
    await cp.start();
    channel = new ControlPlaneChannel({ address: cp.address, trustAnchorsPem: pki.rootPem, token: async () => TOKEN, controlPlaneId: CONTROL_ID });
    client = new XdsClient({ channel, nodeName: 'node1', backoff: { initialMs: 50, maxMs: 400 } });
    client.onUpdate((u) => updates.push(u));
    client.start();
  });
  afterAll(() => {
    client?.close();
    channel?.close();
    cp?.stop();
  });

  it('NACKs the one bad Authorization while the others apply; the authorizer enforces them', async () => {
    await waitFor(() => updates.length > 0);
    const c = xdsCodecs();
    const deny: Authorization = { name: 'deny-prod', namespace: 'default', scope: 'NAMESPACE', action: 'DENY', groups: [{ rules: [{ matches: [{ namespaces: [{ exact: 'prod' }] }] }] }] };
    const bad: Authorization = { name: 'broken', namespace: 'default', scope: 'NAMESPACE', action: 'DENY', groups: [] };
    const nonce = cp.push(XDS_TYPE_URL.authorization, [
      { name: 'default/deny-prod', any: c.authorization.pack(deny), version: 'v1' },
      { name: 'default/broken', any: c.authorization.pack(bad), version: 'v1' },
    ]);
    await waitFor(() => cp.answersTo(nonce).length === 1);
    const nack = cp.answersTo(nonce)[0]!;
    expect(nack.errorDetail?.code).toBe(3);
    expect(nack.errorDetail?.message).toContain('Authorization default/broken: groups: a DENY policy needs at least one group');
    await waitFor(() => (updates.at(-1)?.snapshot.authorizationPolicies ?? []).length === 1);
    const snap = updates.at(-1)!.snapshot;
    expect(snap.authorizationPolicies!.map((p) => p.name)).toEqual(['deny-prod']);

    const denials: Array<{ reason: string; policy: string }> = [];
    const lines: object[] = [];
    const authorize = createAuthorizer({ state: { snapshot: () => snap }, denials: { inc: (l) => denials.push(l) }, accessLog: { info: (o) => lines.push(o) } });
    const target = { namespace: 'default', labels: {}, uid: 'default/web-1' };
    expect(authorize({ sourceIdentity: 'spiffe://cluster.local/ns/prod/sa/x', sourceIp: '10.0.0.1', destination: { ip: '10.0.0.2', port: 80 }, destinationWorkload: target })).toEqual({
      allow: false,
      reason: 'deny_policy default/deny-prod',
    });
    expect(authorize({ sourceIdentity: 'spiffe://cluster.local/ns/dev/sa/x', destination: { ip: '10.0.0.2', port: 80 }, destinationWorkload: target })).toEqual({ allow: true });
    expect(denials).toEqual([{ reason: 'deny_policy', policy: 'default/deny-prod' }]);
    expect(lines).toEqual([
      {
        src: { identity: 'spiffe://cluster.local/ns/prod/sa/x', ip: '10.0.0.1' },
        dst: { ip: '10.0.0.2', port: 80, workload: 'default/web-1' },
        decision: 'deny',
        reason: 'deny_policy',
        policy: 'default/deny-prod',
        audit: false,
      },
    ]);
  });
});

describe('AuthorizationPolicy L7 extension: control encode → agent decode', () => {
  const L7_CONFIG = `
apiVersion: smesh.io/v1alpha1
kind: MeshConfig
metadata: {name: mesh}
spec: {trustDomain: cluster.local}
---
apiVersion: v1
kind: Node
metadata: {name: node1}
status: {addresses: [{type: InternalIP, address: 198.18.0.1}]}
---
apiVersion: v1
kind: Pod
metadata: {name: web-1, namespace: default, labels: {app: web}}
spec: {nodeName: node1, serviceAccountName: web}
status: {podIP: 198.18.1.10}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: public-get, namespace: default}
spec:
  selector: {matchLabels: {app: web}}
  rules:
  - to: [{operation: {methods: [GET, HEAD], paths: ["/public/*", "*.css", /exact], hosts: ["web.default.svc.cluster.local"]}}]
  - from: [{source: {principals: ["cluster.local/ns/admin/*"]}}]
  - to: [{operation: {methods: [PUT], notPaths: ["/public/*"]}}]
    when: [{key: "request.headers[x-role]", values: [writer]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: no-debug, namespace: default}
spec:
  action: DENY
  rules: [{to: [{operation: {paths: ["/public/debug*"], ports: ["8080"]}}]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: audit-post, namespace: default}
spec: {action: AUDIT, rules: [{to: [{operation: {methods: [POST]}}]}]}
`;

  function fileSnap() {
    const problems: ConfigProblem[] = [];
    const s = buildFileSnapshot(parseConfigText('mesh.yaml', L7_CONFIG, problems), problems);
    expect(problems).toEqual([]);
    return s;
  }

  function agentSnap(authz: ReadonlyMap<string, { resource: { value: Buffer } }>, sets: ReturnType<typeof buildResourceSets>, transform: (a: Authorization) => Authorization = (a) => a) {
    const addresses = new Map<string, AcceptedAddress>();
    for (const [name, e] of sets.shared.get(XDS_TYPE_URL.address)!) {
      const r = parseResource(XDS_TYPE_URL.address, name, e.resource);
      if (!r.ok) throw new Error(r.error);
      addresses.set(name, r.value as AcceptedAddress);
    }
    const c = xdsCodecs();
    const authorizations = new Map<string, AcceptedAuthorization>();
    for (const [name, e] of authz) {
      const any = c.authorization.pack(transform(c.authorization.decode(e.resource.value) as Authorization));
      const r = parseResource(XDS_TYPE_URL.authorization, name, any);
      if (!r.ok) throw new Error(r.error);
      authorizations.set(name, r.value as AcceptedAuthorization);
    }
    return buildSnapshot({ addresses, nodes: new Map(), localWorkloads: new Map(), authorizations }).snapshot;
  }

  /** What a decoder without the smesh fields sees: every field numbered 1000+ gone. */
  function istioView(a: Authorization): Authorization {
    const m = (x: NonNullable<NonNullable<NonNullable<Authorization['groups']>[number]['rules']>[number]['matches']>[number]) =>
      Object.fromEntries(Object.entries(x).filter(([k]) => !k.startsWith('smesh')));
    return { ...a, smeshL7Groups: [], groups: (a.groups ?? []).map((g) => ({ rules: (g.rules ?? []).map((r) => ({ matches: (r.matches ?? []).map(m) })) })) };
  }

  const ID = 'spiffe://cluster.local/ns/default/sa/a';
  const ADMIN = 'spiffe://cluster.local/ns/admin/sa/ops';
  const req = (method: string, path: string, extra: { id?: string; host?: string; headers?: Record<string, string>; port?: number } = {}): PolicyRequest => ({
    sourceIdentity: extra.id ?? ID,
    sourceIp: '10.1.0.1',
    destinationIp: '198.18.1.10',
    destinationPort: extra.port ?? 8080,
    // `hosts` match the whole Host value (Istio): the policy's exact entry has no port, so neither does the request.
    http: { method, path, host: extra.host ?? 'web.default.svc.cluster.local', headers: extra.headers ?? {} },
  });
  const httpRequests: PolicyRequest[] = [
    req('GET', '/public/x'),
    req('GET', '/public/x?y=1'),
    req('HEAD', '/public/'),
    req('GET', '/style/site.css'),
    req('GET', '/exact'),
    req('GET', '/exact/no'),
    req('GET', '/private'),
    req('POST', '/public/x'),
    req('GET', '/public/x', { host: 'other.example' }),
    req('GET', '/public/debug/vars'),
    req('GET', '/public/debug/vars', { port: 9090 }),
    req('DELETE', '/private', { id: ADMIN }),
    req('PUT', '/data', { headers: { 'x-role': 'writer' } }),
    req('PUT', '/data', { headers: { 'x-role': 'reader' } }),
    req('PUT', '/public/data', { headers: { 'x-role': 'writer' } }),
  ];
  const l4Requests: PolicyRequest[] = httpRequests.map(({ http: _h, ...r }) => r);

  const decide = (snap: ReturnType<typeof fileSnap>, uid: string, list: PolicyRequest[], deferL7 = false) => {
    const w = snap.workloads.get(uid)!;
    const ps = applicablePolicies(snap.authorizationPolicies ?? [], w, snap.rootNamespace);
    return list.map((r) => {
      const d = evaluate(ps, r, { deferL7 });
      return d.allow ? `allow${d.deferred ? ' deferred' : ''} ${d.policy ?? ''} ${d.audit.join(',')}` : `deny ${d.reason} ${d.policy ?? ''}`;
    });
  };

  it('an smesh agent rebuilds the full rules: same HTTP and L4 decisions as the file policy', () => {
    const file = fileSnap();
    const sets = buildResourceSets(file, { trustAnchors: [] });
    const authz = sets.shared.get(XDS_TYPE_URL.authorization)!;
    const agent = agentSnap(authz, sets);
    const viaFile = decide(file, 'default/web-1', httpRequests);
    expect(decide(agent, 'Kubernetes//Pod/default/web-1', httpRequests)).toEqual(viaFile);
    expect(viaFile).toEqual([
      'allow default/public-get ',
      'allow default/public-get ',
      'allow default/public-get ',
      'allow default/public-get ',
      'allow default/public-get ',
      'deny no_allow_match ',
      'deny no_allow_match ',
      'deny no_allow_match ', // POST: audited, but a denial line carries no audit marks
      'deny no_allow_match ',
      'deny deny_policy default/no-debug',
      'allow default/public-get ',
      'allow default/public-get ',
      'allow default/public-get ',
      'deny no_allow_match ',
      'deny no_allow_match ',
    ]);
    expect(decide(agent, 'Kubernetes//Pod/default/web-1', l4Requests)).toEqual(decide(file, 'default/web-1', l4Requests));
    expect(decide(agent, 'Kubernetes//Pod/default/web-1', l4Requests, true)).toEqual(decide(file, 'default/web-1', l4Requests, true));
  });

  it('a consumer without the extension sees exactly the L4 projection istiod would send', () => {
    const file = fileSnap();
    const sets = buildResourceSets(file, { trustAnchors: [] });
    const authz = sets.shared.get(XDS_TYPE_URL.authorization)!;
    const c = xdsCodecs();
    const allow = c.authorization.decode(authz.get('default/public-get')!.resource.value);
    expect(allow.groups).toHaveLength(1); // only the L4 (principals) rule
    expect(allow.smeshL7Groups).toHaveLength(2);
    const deny = c.authorization.decode(authz.get('default/no-debug')!.resource.value);
    expect(deny.smeshL7Groups).toHaveLength(0);
    expect(deny.groups[0]!.rules.flatMap((r) => r.matches.map((m) => m.smeshPaths))).toContainEqual([{ prefix: '/public/debug', matchType: 'prefix' }]);
    const istio = agentSnap(authz, sets, istioView);
    const projected = new Map((file.authorizationPolicies ?? []).map((p) => [p.name, projectToL4(p)]));
    for (const p of istio.authorizationPolicies ?? []) {
      expect(p.rules).toEqual(projected.get(p.name)!.rules);
    }
    // At L4 the Istio view decides as the full rules do.
    expect(decide(istio, 'Kubernetes//Pod/default/web-1', l4Requests)).toEqual(decide(file, 'default/web-1', l4Requests));
  });

  it('rejects smesh_l7_groups on a DENY policy', () => {
    const bad: Authorization = { name: 'p', namespace: 'default', scope: 'NAMESPACE', action: 'DENY', groups: [{ rules: [] }], smeshL7Groups: [{ rules: [] }] };
    expect(parseResource(XDS_TYPE_URL.authorization, 'default/p', xdsCodecs().authorization.pack(bad))).toMatchObject({ ok: false, error: expect.stringContaining('smesh_l7_groups') });
  });
});
