// Kubernetes source, mesh resources: AuthorizationPolicy, PeerAuthentication, DestinationRule, VirtualService and MeshConfig watched through the real @kubernetes/client-node against the API stand-in, validated like files, served over delta ADS; missing CRDs and served-version fallback.
import { join } from 'node:path';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ConfigError, formatProblem } from '../../../../control/config/config-dir';
import { STATIC_STRICT_POLICY_NAME } from '../../../../control/config/peer-authentication';
import type { MeshSnapshot } from '../../../../core/model/types';
import { startControlPlane, type ControlPlane } from '../../../../control/main';
import { KubernetesSource, type KubernetesSourceOptions } from '../../../../control/sources/kubernetes';
import { loadMeshProtos } from '../../../../proto';
import { K8sStandIn, kubeConfigFor, type CustomCollection } from '../../../helpers/k8s-standin';
import { AdsTestClient, cleanupDirs, TOKEN1, TOKENS, tempDir } from '../../fixtures/control';
import { XDS_TYPE_URL } from '../../../../core/xds/contract';
import { waitUntil } from '../../../helpers/wait';

const { codecs } = loadMeshProtos();

function pod(name: string, node: string, ip: string, sa: string, labels: Record<string, string>) {
  return { metadata: { name, namespace: 'default', labels }, spec: { nodeName: node, serviceAccountName: sa }, status: { podIP: ip, phase: 'Running' } };
}

/** Server-managed metadata and status a real API server adds; the source must not trip over them. */
const SERVER_FIELDS = {
  uid: '0b5c6f1e-3a43-4c55-9d8a-0f7f6f0d0c01',
  generation: 1,
  creationTimestamp: '2026-01-01T00:00:00Z',
  managedFields: [{ manager: 'kubectl', operation: 'Apply', apiVersion: 'security.istio.io/v1', fieldsType: 'FieldsV1', fieldsV1: {} }],
  finalizers: [],
};

function authz(name: string, spec: Record<string, unknown>, namespace = 'default') {
  return { metadata: { name, namespace, ...SERVER_FIELDS }, spec, status: { validationMessages: [] } };
}

const DENY_CLIENT = { selector: { matchLabels: { app: 'web' } }, action: 'DENY', rules: [{ from: [{ source: { principals: ['example.org/ns/default/sa/client'] } }] }] };
const ALLOW_ALL = { action: 'ALLOW', rules: [{}] };

const policyNames = (s: MeshSnapshot | undefined): string[] => (s?.authorizationPolicies ?? []).map((p) => `${p.namespace}/${p.name}`).sort();

describe('control: Kubernetes source, mesh resources (stand-in API server)', () => {
  let api: K8sStandIn;
  let source: KubernetesSource | undefined;
  let cp: ControlPlane | undefined;
  let latest: MeshSnapshot | undefined;
  let errors: Error[];
  let logLines: Array<{ level: number; msg: string; kind?: string }>;
  const clients: AdsTestClient[] = [];

  beforeEach(async () => {
    api = new K8sStandIn();
    await api.start();
    api.upsert('namespaces', { metadata: { name: 'default' } });
    api.upsert('nodes', { metadata: { name: 'node1' }, status: { addresses: [{ type: 'InternalIP', address: '198.18.0.1' }] } });
    api.upsert('nodes', { metadata: { name: 'node2' }, status: { addresses: [{ type: 'InternalIP', address: '198.18.0.2' }] } });
    api.upsert('pods', pod('web-1', 'node1', '198.18.1.10', 'web', { app: 'web', version: 'v1' }));
    api.upsert('pods', pod('web-2', 'node1', '198.18.1.11', 'web', { app: 'web', version: 'v2' }));
    api.upsert('pods', pod('client-1', 'node2', '198.18.2.10', 'client', { app: 'client' }));
    api.upsert('services', {
      metadata: { name: 'web', namespace: 'default' },
      spec: { clusterIP: '198.19.0.10', selector: { app: 'web' }, ports: [{ name: 'http', port: 80, targetPort: 8080, protocol: 'TCP' }] },
    });
    latest = undefined;
    errors = [];
    logLines = [];
  });
  afterEach(async () => {
    for (const c of clients.splice(0)) c.close();
    await cp?.close();
    cp = undefined;
    await source?.close();
    source = undefined;
    await api.stop();
    cleanupDirs();
  });

  const newSource = (opts: Partial<KubernetesSourceOptions> = {}): KubernetesSource => {
    const logger = pino({ level: 'info' }, { write: (line: string) => void logLines.push(JSON.parse(line)) });
    return new KubernetesSource({ kubeConfig: kubeConfigFor(api.url), trustDomain: 'example.org', backoffInitialMs: 50, backoffMaxMs: 200, rebuildDelayMs: 10, logger, ...opts });
  };
  const start = async (opts: Partial<KubernetesSourceOptions> = {}): Promise<MeshSnapshot> => {
    source = newSource(opts);
    return source.start({ onSnapshot: (s) => (latest = s), onError: (e) => errors.push(e) });
  };

  it('an AuthorizationPolicy created in the API reaches the delta ADS output within 1 s; deleting it removes it', async () => {
    source = newSource();
    cp = await startControlPlane({ source, caDir: join(tempDir(), 'ca'), tokens: { ...TOKENS }, listen: '127.0.0.1:0' });
    const c = new AdsTestClient(cp, TOKEN1);
    clients.push(c);
    c.send({ typeUrl: XDS_TYPE_URL.authorization, resourceNamesSubscribe: ['*'] });
    const first = await c.next(XDS_TYPE_URL.authorization);
    expect(first.resources).toEqual([]);
    c.ack(first);

    const created = Date.now();
    api.upsert('authorizationpolicies', authz('deny-client', DENY_CLIENT));
    const added = await c.next(XDS_TYPE_URL.authorization, 1000);
    expect(Date.now() - created).toBeLessThan(1000);
    expect(added.resources.map((r) => r.name)).toEqual(['default/deny-client']);
    const wire = codecs.authorization.unpack(added.resources[0]!.resource!);
    expect(wire).toMatchObject({ name: 'deny-client', namespace: 'default', action: 'DENY' });
    expect(JSON.stringify(wire)).toContain('example.org/ns/default/sa/client');
    c.ack(added);

    const deleted = Date.now();
    api.remove('authorizationpolicies', 'default', 'deny-client');
    const removed = await c.next(XDS_TYPE_URL.authorization, 1000);
    expect(Date.now() - deleted).toBeLessThan(1000);
    expect(removed.removedResources).toEqual(['default/deny-client']);
    expect(policyNames(cp.registry.snapshot)).toEqual([]);
  });

  it('an invalid AuthorizationPolicy is reported by namespace/name/field and skipped; the others stay in force', async () => {
    api.upsert('authorizationpolicies', authz('allow-all', ALLOW_ALL));
    api.upsert('authorizationpolicies', authz('bad-cidr', { action: 'ALLOW', rules: [{ from: [{ source: { ipBlocks: ['10.0.0.0/33'] } }] }] }));
    const s = await start();
    expect(policyNames(s)).toEqual(['default/allow-all']);
    expect(source!.problems.map(formatProblem)).toEqual([expect.stringMatching(/^kubernetes: AuthorizationPolicy default\/bad-cidr: field spec\.rules\[0\]\.from\[0\]\.source\.ipBlocks\[0\]: /)]);
    await waitUntil(() => api.openWatches('authorizationpolicies') === 1, 3000, "api.openWatches('authorizationpolicies') === 1", 5);

    // A second bad one (DENY without rules, an unknown field) and a good one arrive by watch.
    api.upsert('authorizationpolicies', authz('deny-nothing', { action: 'DENY' }));
    api.upsert('authorizationpolicies', authz('typo', { action: 'ALLOW', rulez: [] }));
    api.upsert('authorizationpolicies', authz('deny-client', DENY_CLIENT));
    await waitUntil(() => policyNames(latest).includes('default/deny-client'), 1000, 'valid policy served', 5);
    expect(policyNames(latest)).toEqual(['default/allow-all', 'default/deny-client']);
    const text = source!.problems.map(formatProblem).join('\n');
    expect(text).toMatch(/AuthorizationPolicy default\/bad-cidr: field spec\.rules\[0\]\.from\[0\]\.source\.ipBlocks\[0\]/);
    expect(text).toMatch(/AuthorizationPolicy default\/deny-nothing: field spec\.rules: /);
    expect(text).toMatch(/AuthorizationPolicy default\/typo: field spec\.rulez: /);
    expect(errors.some((e) => e instanceof ConfigError && e.problems.some((p) => p.resource === 'AuthorizationPolicy default/typo'))).toBe(true);
    expect(logLines.some((l) => l.level === 40 && l.msg.includes('skipped Kubernetes objects'))).toBe(true);

    // Fixing one in place brings it in; the problems list follows.
    api.upsert('authorizationpolicies', authz('bad-cidr', { action: 'ALLOW', rules: [{ from: [{ source: { ipBlocks: ['10.0.0.0/8'] } }] }] }));
    await waitUntil(() => policyNames(latest).includes('default/bad-cidr'), 1000, 'fixed policy served', 5);
    expect(source!.problems.map((p) => p.resource).sort()).toEqual(['AuthorizationPolicy default/deny-nothing', 'AuthorizationPolicy default/typo']);
  });

  it('a CUSTOM AuthorizationPolicy is refused by name, never silently ignored', async () => {
    api.upsert('authorizationpolicies', authz('ext', { action: 'CUSTOM', provider: { name: 'opa' }, rules: [{}] }));
    const s = await start();
    expect(policyNames(s)).toEqual([]);
    expect(source!.problems.map(formatProblem)).toEqual([expect.stringMatching(/AuthorizationPolicy default\/ext: field spec\.action: unsupported: CUSTOM/)]);
  });

  it('PeerAuthentication: STRICT becomes the converted policy the agents enforce; an invalid mode is reported', async () => {
    await start();
    await waitUntil(() => api.openWatches('peerauthentications') === 1, 3000, "api.openWatches('peerauthentications') === 1", 5);
    api.upsert('peerauthentications', { metadata: { name: 'strict', namespace: 'default', ...SERVER_FIELDS }, spec: { mtls: { mode: 'STRICT' } } });
    api.upsert('peerauthentications', { metadata: { name: 'odd', namespace: 'default' }, spec: { selector: { matchLabels: { app: 'client' } }, mtls: { mode: 'SOMETIMES' } } });
    // Namespace-wide STRICT: istiod's static deny-plaintext policy in the root namespace, referenced by every workload there.
    const staticKey = `istio-system/${STATIC_STRICT_POLICY_NAME}`;
    await waitUntil(() => policyNames(latest).includes(staticKey), 1000, 'converted PeerAuthentication', 5);
    expect(latest!.workloads.get('default/web-1')!.authorizationPolicies).toEqual([staticKey]);
    expect(latest!.workloads.get('default/client-1')!.authorizationPolicies).toEqual([staticKey]);
    expect(source!.problems.map(formatProblem).join('\n')).toMatch(/PeerAuthentication default\/odd: field spec\.mtls\.mode: /);
    api.remove('peerauthentications', 'default', 'strict');
    await waitUntil(() => (latest?.authorizationPolicies ?? []).length === 0, 1000, 'PeerAuthentication removed', 5);
  });

  it('TrafficShaping (smesh.io/v1alpha1) becomes per-workload rate-limit rules; an invalid one is reported by field and skipped', async () => {
    await start();
    await waitUntil(() => api.openWatches('trafficshapings') === 1, 3000, "api.openWatches('trafficshapings') === 1", 5);
    api.upsert('trafficshapings', {
      metadata: { name: 'web-limits', namespace: 'default', ...SERVER_FIELDS },
      spec: { selector: { matchLabels: { app: 'web' } }, inbound: [{ name: 'rps', requestRate: { maxTokens: 5, fillInterval: '1s' } }] },
    });
    api.upsert('trafficshapings', { metadata: { name: 'bad', namespace: 'default' }, spec: { outbound: [{ connectionRate: { maxTokens: 0, fillInterval: '1s' } }] } });
    await waitUntil(() => latest?.trafficShaping?.has('default/web-1') === true, 1000, 'traffic shaping', 5);
    expect(latest!.trafficShaping!.get('default/web-1')!.inbound).toEqual([
      { name: 'default/web-limits/rps', requestRate: { maxTokens: 5, tokensPerFill: 1, fillIntervalMs: 1000 }, requestMatch: [], overLimit: { action: 'reject', maxWaitMs: 0 } },
    ]);
    expect(latest!.trafficShaping!.has('default/client-1')).toBe(false);
    expect(source!.problems.map(formatProblem).join('\n')).toMatch(/TrafficShaping default\/bad: field spec\.outbound\[0\]\.connectionRate\.maxTokens: /);
    api.remove('trafficshapings', 'default', 'web-limits');
    await waitUntil(() => latest?.trafficShaping === undefined, 1000, 'traffic shaping removed', 5);
  });

  it('DestinationRule and VirtualService become the service traffic policy; invalid ones are reported and skipped', async () => {
    await start();
    await waitUntil(
      () => api.openWatches('destinationrules') === 1 && api.openWatches('virtualservices') === 1,
      3000,
      "api.openWatches('destinationrules') === 1 && api.openWatches('virtualservices') === 1",
      5,
    );
    api.upsert('destinationrules', {
      metadata: { name: 'web', namespace: 'default', ...SERVER_FIELDS },
      spec: {
        host: 'web',
        trafficPolicy: { loadBalancer: { simple: 'LEAST_REQUEST' } },
        subsets: [
          { name: 'v1', labels: { version: 'v1' } },
          { name: 'v2', labels: { version: 'v2' } },
        ],
      },
    });
    api.upsert('virtualservices', {
      metadata: { name: 'web', namespace: 'default' },
      spec: {
        hosts: ['web'],
        http: [
          {
            route: [
              { destination: { host: 'web', subset: 'v1' }, weight: 90 },
              { destination: { host: 'web', subset: 'v2' }, weight: 10 },
            ],
          },
        ],
      },
    });
    // Invalid: a host that is no Service, and weights that do not add up.
    api.upsert('destinationrules', { metadata: { name: 'ghost', namespace: 'default' }, spec: { host: 'ghost' } });
    api.upsert('virtualservices', {
      metadata: { name: 'bad-weights', namespace: 'default' },
      spec: {
        hosts: ['web'],
        http: [
          {
            route: [
              { destination: { host: 'web', subset: 'v1' }, weight: 50 },
              { destination: { host: 'web', subset: 'v2' }, weight: 10 },
            ],
          },
        ],
      },
    });
    await waitUntil(() => (latest?.trafficPolicies?.get('default/web')?.routes.length ?? 0) > 0, 1000, 'traffic policy served', 5);
    const tp = latest!.trafficPolicies!.get('default/web')!;
    expect(tp.subsets.map((s) => [s.name, s.workloadUids])).toEqual([
      ['v1', ['default/web-1']],
      ['v2', ['default/web-2']],
    ]);
    expect(tp.routes[0]!.destinations.map((d) => [d.subset, d.weight])).toEqual([
      ['v1', 90],
      ['v2', 10],
    ]);
    const text = source!.problems.map(formatProblem).join('\n');
    expect(text).toMatch(/DestinationRule default\/ghost: field spec\.host: /);
    expect(text).toMatch(/VirtualService default\/bad-weights: field spec\.http\[0\]\.route/);

    api.remove('virtualservices', 'default', 'web');
    api.remove('destinationrules', 'default', 'web');
    await waitUntil(() => latest?.trafficPolicies?.has('default/web') !== true, 1000, 'traffic policy removed', 5);
  });

  it('a mesh CRD that is not installed (404) does not stop Pods and Services; it is logged once and picked up once installed', async () => {
    for (const c of ['authorizationpolicies', 'peerauthentications', 'destinationrules', 'virtualservices', 'meshconfigs', 'trafficshapings'] as CustomCollection[]) api.serveVersions(c, []);
    api.upsert('authorizationpolicies', authz('deny-client', DENY_CLIENT)); // stored, but not served yet
    const s = await start({ missingCrdRetryMs: 100 });
    expect([...s.workloads.keys()].sort()).toEqual(['default/client-1', 'default/web-1', 'default/web-2']);
    expect(policyNames(s)).toEqual([]);
    await waitUntil(() => api.openWatches() === 5, 3000, 'api.openWatches() === 5', 5);
    api.upsert('pods', pod('web-3', 'node1', '198.18.1.12', 'web', { app: 'web' }));
    await waitUntil(() => latest?.workloads.has('default/web-3') === true, 1000, 'pod served', 5);
    await new Promise((r) => setTimeout(r, 450)); // several slow retries
    const listsOfV1 = api.requests.filter((r) => r.startsWith('GET /apis/security.istio.io/v1/authorizationpolicies')).length;
    expect(listsOfV1).toBeGreaterThanOrEqual(2); // retried, slowly
    const notServed = logLines.filter((l) => l.level === 40 && l.kind === 'authorizationpolicies' && l.msg.includes('not served'));
    expect(notServed).toHaveLength(1);

    api.serveVersions('authorizationpolicies', ['v1', 'v1beta1']);
    await waitUntil(() => policyNames(latest).includes('default/deny-client'), 1500, 'policy after CRD install', 5);
    expect(logLines.some((l) => l.kind === 'authorizationpolicies' && l.msg.includes('served now'))).toBe(true);

    // The CRD goes away again: its objects go with it, the rest keeps flowing.
    api.serveVersions('authorizationpolicies', []);
    await waitUntil(() => policyNames(latest).length === 0, 1500, 'policies dropped with their CRD', 5);
    api.upsert('pods', pod('web-4', 'node1', '198.18.1.13', 'web', { app: 'web' }));
    await waitUntil(() => latest?.workloads.has('default/web-4') === true, 1000, 'pod served after CRD removal', 5);
  });

  it('uses the newest served version: v1beta1 / v1alpha3 when an older Istio does not serve v1', async () => {
    api.serveVersions('authorizationpolicies', ['v1beta1']);
    api.serveVersions('virtualservices', ['v1alpha3']);
    api.upsert('authorizationpolicies', authz('allow-all', ALLOW_ALL));
    const s = await start();
    expect(policyNames(s)).toEqual(['default/allow-all']);
    await waitUntil(
      () => api.openWatches('authorizationpolicies') === 1 && api.openWatches('virtualservices') === 1,
      3000,
      "api.openWatches('authorizationpolicies') === 1 && api.openWatches('virtualservices') === 1",
      5,
    );
    expect(api.requests.some((r) => r.startsWith('GET /apis/security.istio.io/v1beta1/authorizationpolicies?') && r.includes('watch=true'))).toBe(true);
    expect(api.requests.some((r) => r.startsWith('GET /apis/networking.istio.io/v1alpha3/virtualservices?') && r.includes('watch=true'))).toBe(true);
    api.upsert('authorizationpolicies', authz('deny-client', DENY_CLIENT));
    await waitUntil(() => policyNames(latest).includes('default/deny-client'), 1000, 'policy by v1beta1 watch', 5);
    expect(source!.problems).toEqual([]);
  });

  it('mesh resources re-list after 410 Gone and converge on changes made meanwhile', async () => {
    await start();
    await waitUntil(() => api.openWatches() === 11, 3000, 'api.openWatches() === 11', 5);
    const lists = (): number => api.requests.filter((r) => /^GET \/apis\/security\.istio\.io\/v1\/authorizationpolicies(\?|$)/.test(r) && !r.includes('watch=')).length;
    const before = lists();
    api.expireWatches();
    api.upsert('authorizationpolicies', authz('deny-client', DENY_CLIENT));
    await waitUntil(() => policyNames(latest).includes('default/deny-client'), 2000, 'policy after re-list', 5);
    expect(lists()).toBeGreaterThan(before);
  });

  it('MeshConfig from the cluster sets the root namespace; a trust domain other than --trust-domain is reported, the flag wins', async () => {
    api.upsert('namespaces', { metadata: { name: 'mesh-root' } });
    api.upsert('meshconfigs', { metadata: { name: 'mesh', ...SERVER_FIELDS }, spec: { rootNamespace: 'mesh-root', trustDomain: 'other.org' } });
    api.upsert('authorizationpolicies', authz('mesh-wide', ALLOW_ALL, 'mesh-root'));
    const s = await start();
    expect(s.trustDomain).toBe('example.org');
    expect(s.rootNamespace).toBe('mesh-root');
    expect(s.authorizationPolicies!.find((p) => p.name === 'mesh-wide')!.scope).toBe('global');
    expect(source!.problems.map(formatProblem)).toEqual([expect.stringMatching(/MeshConfig mesh: field spec\.trustDomain: differs from the control plane's --trust-domain "example.org"/)]);
    await source!.close();

    // Without the flag the MeshConfig's trust domain is used.
    source = newSource({ trustDomain: undefined });
    const s2 = await source.start({ onSnapshot: () => undefined });
    expect(s2.trustDomain).toBe('other.org');
    expect(source.problems).toEqual([]);
  });
});
