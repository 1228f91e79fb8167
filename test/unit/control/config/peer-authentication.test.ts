// PeerAuthentication: file validation, istiod-style conversion to DENY policies, precedence, and the kernel maps derived from state.
import { describe, expect, it } from 'vitest';
import { buildSnapshot, parseConfigText, type ConfigProblem } from '../../../../control/config/config-dir';
import { desiredConnectDenies, desiredInboundModes, l4DecidableView } from '../../../../agent/datapath/policy-maps';
import { evaluate, applicablePolicies } from '../../../../core/policy/evaluate';
import type { MeshSnapshot } from '../../../../core/model/types';

const BASE = `
apiVersion: smesh.io/v1alpha1
kind: MeshConfig
metadata: {name: mesh}
spec: {trustDomain: td}
---
apiVersion: v1
kind: Node
metadata: {name: n1}
status: {addresses: [{type: InternalIP, address: 198.18.0.1}]}
---
apiVersion: v1
kind: Pod
metadata: {name: a, namespace: ns1, labels: {app: a}}
spec: {nodeName: n1, serviceAccountName: sa-a}
status: {podIP: 198.18.1.10}
---
apiVersion: v1
kind: Pod
metadata: {name: b, namespace: ns1, labels: {app: b}}
spec: {nodeName: n1, serviceAccountName: sa-b}
status: {podIP: 198.18.1.11}
---
apiVersion: v1
kind: Pod
metadata: {name: c, namespace: ns2, labels: {app: c}}
spec: {nodeName: n1, serviceAccountName: sa-c}
status: {podIP: 198.18.1.12}
`;

function pa(ns: string, name: string, spec: string, apiVersion = 'security.istio.io/v1'): string {
  return `---\napiVersion: ${apiVersion}\nkind: PeerAuthentication\nmetadata: {name: ${name}, namespace: ${ns}}\nspec: ${spec}\n`;
}

function load(extra: string): { snap: MeshSnapshot; problems: ConfigProblem[] } {
  const problems: ConfigProblem[] = [];
  const docs = parseConfigText('mesh.yaml', BASE + extra, problems);
  const snap = buildSnapshot(docs, problems);
  return { snap, problems };
}

/** Mode of (pod, port) as the kernel map says: exact port entry, else port 0. */
function modeOf(snap: MeshSnapshot, ip: string, port: number): string | undefined {
  const m = desiredInboundModes(snap, 'n1');
  return (m.get(`${ip}|${port}`) ?? m.get(`${ip}|0`))?.mode;
}

const A = '198.18.1.10';
const B = '198.18.1.11';
const C = '198.18.1.12';

describe('PeerAuthentication', () => {
  it('no PeerAuthentication: every local pod PERMISSIVE, no converted policies', () => {
    const { snap, problems } = load('');
    expect(problems).toEqual([]);
    expect(snap.authorizationPolicies).toEqual([]);
    expect(modeOf(snap, A, 80)).toBe('PERMISSIVE');
  });

  it.each([
    ['mesh STRICT', pa('istio-system', 'default', '{mtls: {mode: STRICT}}'), { a: 'STRICT', c: 'STRICT' }],
    ['mesh STRICT, namespace PERMISSIVE', pa('istio-system', 'default', '{mtls: {mode: STRICT}}') + pa('ns1', 'ns', '{mtls: {mode: PERMISSIVE}}'), { a: 'PERMISSIVE', c: 'STRICT' }],
    [
      'namespace STRICT, UNSET workload inherits',
      pa('ns1', 'ns', '{mtls: {mode: STRICT}}') + pa('ns1', 'wl', '{selector: {matchLabels: {app: a}}, mtls: {mode: UNSET}}'),
      { a: 'STRICT', c: 'PERMISSIVE' },
    ],
    [
      'namespace STRICT, workload PERMISSIVE wins',
      pa('ns1', 'ns', '{mtls: {mode: STRICT}}') + pa('ns1', 'wl', '{selector: {matchLabels: {app: a}}, mtls: {mode: PERMISSIVE}}'),
      { a: 'PERMISSIVE', b: 'STRICT' },
    ],
    ['DISABLE behaves as PERMISSIVE', pa('istio-system', 'default', '{mtls: {mode: STRICT}}') + pa('ns1', 'ns', '{mtls: {mode: DISABLE}}'), { a: 'PERMISSIVE', c: 'STRICT' }],
    ['v1beta1 accepted', pa('ns1', 'ns', '{mtls: {mode: STRICT}}', 'security.istio.io/v1beta1'), { a: 'STRICT' }],
  ])('%s', (_title, yaml, want: Record<string, string>) => {
    const { snap, problems } = load(yaml);
    expect(problems).toEqual([]);
    const ips: Record<string, string> = { a: A, b: B, c: C };
    for (const [pod, mode] of Object.entries(want)) expect(modeOf(snap, ips[pod]!, 8080), pod).toBe(mode);
  });

  it('STRICT workload with a PERMISSIVE port converts as istiod does and exempts only that port', () => {
    const { snap, problems } = load(pa('ns1', 'wl', '{selector: {matchLabels: {app: a}}, mtls: {mode: STRICT}, portLevelMtls: {9090: {mode: PERMISSIVE}}}'));
    expect(problems).toEqual([]);
    const converted = snap.authorizationPolicies!.find((p) => p.name === 'converted_peer_authentication_wl')!;
    expect(converted).toMatchObject({ namespace: 'ns1', action: 'DENY', scope: 'workloadSelector' });
    expect(converted.rules).toEqual([{ clauses: [{ matches: [{ notPrincipals: [{ kind: 'presence' }] }] }, { matches: [{ notDestinationPorts: [9090] }] }] }]);
    expect(snap.workloads.get('ns1/a')!.authorizationPolicies).toEqual(['ns1/converted_peer_authentication_wl']);
    expect(snap.workloads.get('ns1/b')!.authorizationPolicies).toEqual([]);
    expect(modeOf(snap, A, 8080)).toBe('STRICT');
    expect(modeOf(snap, A, 9090)).toBe('PERMISSIVE');
    expect(modeOf(snap, B, 8080)).toBe('PERMISSIVE');
    // mTLS traffic is never denied by it; plaintext on 8080 is.
    const pols = applicablePolicies(snap.authorizationPolicies!, snap.workloads.get('ns1/a')!);
    expect(evaluate(pols, { sourceIdentity: 'spiffe://td/ns/ns2/sa/x', destinationIp: A, destinationPort: 8080 }).allow).toBe(true);
    expect(evaluate(pols, { destinationIp: A, destinationPort: 8080 })).toMatchObject({ allow: false, policy: 'ns1/converted_peer_authentication_wl' });
  });

  it('PERMISSIVE namespace with a STRICT workload port: only that port is STRICT', () => {
    const { snap } = load(pa('ns1', 'wl', '{selector: {matchLabels: {app: a}}, portLevelMtls: {"8443": {mode: STRICT}}}'));
    expect(modeOf(snap, A, 8443)).toBe('STRICT');
    expect(modeOf(snap, A, 8080)).toBe('PERMISSIVE');
    expect(snap.authorizationPolicies!.map((p) => `${p.namespace}/${p.name}`)).toEqual(['istio-system/istio_converted_static_strict', 'ns1/converted_peer_authentication_wl']);
  });

  it('reports invalid resources by file, resource and field', () => {
    const { problems } = load(
      pa('ns1', 'bad-mode', '{mtls: {mode: SOMETIMES}}') +
        pa('ns1', 'ports-no-selector', '{portLevelMtls: {80: {mode: STRICT}}}') +
        pa('ns1', 'bad-port', '{selector: {matchLabels: {app: a}}, portLevelMtls: {"0": {mode: STRICT}, "http": {mode: STRICT}}}') +
        pa('istio-system', 'root-selector', '{selector: {matchLabels: {app: a}}, mtls: {mode: STRICT}}') +
        pa('ns1', 'unknown', '{mtls: {mode: STRICT}, extra: 1}'),
    );
    const got = problems.map((p) => `${p.file}: ${p.resource}: ${p.field}`);
    expect(got).toEqual([
      'mesh.yaml: PeerAuthentication ns1/bad-mode: spec.mtls.mode',
      'mesh.yaml: PeerAuthentication ns1/unknown: spec.extra',
      'mesh.yaml: PeerAuthentication ns1/ports-no-selector: spec.portLevelMtls',
      'mesh.yaml: PeerAuthentication ns1/bad-port: spec.portLevelMtls[0]',
      'mesh.yaml: PeerAuthentication ns1/bad-port: spec.portLevelMtls[http]',
      'mesh.yaml: PeerAuthentication istio-system/root-selector: spec.selector',
    ]);
  });

  it("refuses what Istio's validation refuses: wildcard or empty selector labels, an empty portLevelMtls; the resource is dropped", () => {
    const { problems, snap } = load(
      pa('ns1', 'wild-value', '{selector: {matchLabels: {app: "a*"}}, mtls: {mode: STRICT}}') +
        pa('ns1', 'wild-key', '{selector: {matchLabels: {"app*": a}}, mtls: {mode: STRICT}}') +
        pa('ns1', 'empty-key', '{selector: {matchLabels: {"": a}}, mtls: {mode: STRICT}}') +
        pa('ns1', 'empty-ports', '{selector: {matchLabels: {app: a}}, portLevelMtls: {}}'),
    );
    expect(problems.map((p) => `${p.file}: ${p.resource}: ${p.field}: ${p.message}`)).toEqual([
      'mesh.yaml: PeerAuthentication ns1/wild-value: spec.selector.matchLabels[app]: wildcard not allowed in label value match, got "a*" (a selector matches label values exactly)',
      'mesh.yaml: PeerAuthentication ns1/wild-key: spec.selector.matchLabels[app*]: wildcard not allowed in label key match, got "app*"',
      'mesh.yaml: PeerAuthentication ns1/empty-key: spec.selector.matchLabels[]: key must not be empty',
      'mesh.yaml: PeerAuthentication ns1/empty-ports: spec.portLevelMtls: must have at least one port when set (Istio rejects an empty map)',
    ]);
    expect(modeOf(snap, A, 8080)).toBe('PERMISSIVE');
  });
});

describe('connect-time deny entries', () => {
  const SVC = `---
apiVersion: v1
kind: Service
metadata: {name: b, namespace: ns1}
spec: {clusterIP: 198.19.0.20, selector: {app: b}, ports: [{port: 80, targetPort: 8080}, {port: 81, targetPort: 8081}]}
`;
  const withNetns = (snap: MeshSnapshot): MeshSnapshot => ({
    ...snap,
    workloads: new Map([...snap.workloads].map(([k, w]) => [k, { ...w, netns: `/run/netns/${w.name}` }])),
  });
  const ids: Record<string, number> = { 'ns1/a': 1, 'ns1/b': 2, 'ns2/c': 3 };

  it('denies pod ip:targetPort and the VIP port when every endpoint denies; only L4-decidable rules count', () => {
    const policy = `---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-ns2, namespace: ns1}
spec:
  selector: {matchLabels: {app: b}}
  action: DENY
  rules: [{from: [{source: {namespaces: [ns2]}}], to: [{operation: {ports: ["8080"]}}]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-l7, namespace: ns1}
spec:
  selector: {matchLabels: {app: b}}
  action: DENY
  rules: [{to: [{operation: {methods: [DELETE]}}]}]
`;
    const { snap, problems } = load(SVC + policy);
    expect(problems).toEqual([]);
    const denies = [...desiredConnectDenies(withNetns(snap), 'n1', (uid) => ids[uid]!).values()];
    expect(denies.sort((x, y) => `${x.workloadId}${x.ip}${x.port}`.localeCompare(`${y.workloadId}${y.ip}${y.port}`))).toEqual([
      { workloadId: 3, ip: B, port: 8080 },
      { workloadId: 3, ip: '198.19.0.20', port: 80 },
    ]);
  });

  it('ALLOW principals: others are denied; an L7-only ALLOW rule is assumed to match (never pushed as a deny)', () => {
    const policy = `---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow-a, namespace: ns1}
spec:
  selector: {matchLabels: {app: b}}
  rules: [{from: [{source: {principals: [td/ns/ns1/sa/sa-a]}}]}]
`;
    const { snap } = load(SVC + policy);
    const keys = [...desiredConnectDenies(withNetns(snap), 'n1', (uid) => ids[uid]!).keys()].sort();
    // c (ns2) and b itself (sa-b) are not the allowed principal; a is.
    const forSource = (id: number): string[] => [`${id}|${B}|8080`, `${id}|${B}|8081`, `${id}|198.19.0.20|80`, `${id}|198.19.0.20|81`];
    expect(keys).toEqual([...forSource(2), ...forSource(3)]);
    const l7 = l4DecidableView([{ name: 'x', namespace: 'ns1', action: 'ALLOW', scope: 'namespace', rules: [{ clauses: [{ matches: [{ methods: [{ kind: 'exact', value: 'GET' }] }] }] }] }]);
    expect(evaluate(l7, { sourceIdentity: 'spiffe://td/ns/ns2/sa/x', destinationIp: B, destinationPort: 8080 }).allow).toBe(true);
  });
});
