// Kubernetes source through the real @kubernetes/client-node against a local API stand-in: initial list, watch add/delete, 410 Gone → re-list, API server restart → reconnect.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { MeshSnapshot } from '../../../../core/model/types';
import { KubernetesSource } from '../../../../control/sources/kubernetes';
import { K8sStandIn, kubeConfigFor } from '../../../helpers/k8s-standin';
import { waitUntil } from '../../../helpers/wait';

/** Core collections (5) plus the mesh custom resources (5), each watched once. */
const ALL_WATCHES = 11;

function pod(name: string, node: string, ip: string, labels: Record<string, string> = { app: 'web' }, extra: Record<string, unknown> = {}) {
  return {
    metadata: { name, namespace: 'default', labels },
    spec: { nodeName: node, serviceAccountName: 'web', ...extra },
    status: { podIP: ip, phase: 'Running' },
  };
}

/** Plain (non-watch) list requests of pods seen by the stand-in. */
function podLists(api: K8sStandIn): number {
  return api.requests.filter((r) => /^GET \/api\/v1\/pods(\?|$)/.test(r) && !r.includes('watch=')).length;
}

describe('control: Kubernetes source (@kubernetes/client-node against a stand-in API server)', () => {
  let api: K8sStandIn;
  let source: KubernetesSource | undefined;
  let latest: MeshSnapshot | undefined;

  beforeEach(async () => {
    api = new K8sStandIn();
    await api.start();
    api.upsert('namespaces', { metadata: { name: 'default' } });
    api.upsert('nodes', { metadata: { name: 'node1' }, status: { addresses: [{ type: 'InternalIP', address: '198.18.0.1' }] } });
    api.upsert('pods', pod('web-1', 'node1', '198.18.1.10'));
    api.upsert('pods', pod('pending-1', '', ''));
    api.upsert('pods', pod('host-1', 'node1', '198.18.0.1', {}, { hostNetwork: true }));
    api.upsert('services', {
      metadata: { name: 'web', namespace: 'default' },
      spec: { clusterIP: '198.19.0.10', selector: { app: 'web' }, ports: [{ name: 'http', port: 80, targetPort: 'http-alt', protocol: 'TCP' }] },
    });
    api.upsert('endpointslices', {
      metadata: { name: 'web-abc', namespace: 'default', labels: { 'kubernetes.io/service-name': 'web' } },
      addressType: 'IPv4',
      endpoints: [{ addresses: ['198.18.1.10'], conditions: { ready: true }, targetRef: { kind: 'Pod', namespace: 'default', name: 'web-1' } }],
      ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
    });
    latest = undefined;
  });
  afterEach(async () => {
    await source?.close();
    source = undefined;
    await api.stop();
  });

  const start = async (): Promise<MeshSnapshot> => {
    source = new KubernetesSource({ kubeConfig: kubeConfigFor(api.url), trustDomain: 'example.org', backoffInitialMs: 50, backoffMaxMs: 200, rebuildDelayMs: 10 });
    return source.start({ onSnapshot: (s) => (latest = s) });
  };

  it('lists every kind and builds the mesh snapshot', async () => {
    const s = await start();
    expect(s.trustDomain).toBe('example.org');
    expect([...s.nodes.values()]).toEqual([{ name: 'node1', address: '198.18.0.1' }]);
    expect([...s.workloads.keys()]).toEqual(['default/web-1']); // pending and host-network pods are not mesh workloads
    expect(s.workloads.get('default/web-1')).toMatchObject({ node: 'node1', ip: '198.18.1.10', serviceAccount: 'web', identity: 'spiffe://example.org/ns/default/sa/web', labels: { app: 'web' } });
    const web = s.services.get('default/web')!;
    expect(web.ports).toEqual([{ name: 'http', port: 80, targetPort: 8080, appProtocol: undefined }]); // named target port resolved from the EndpointSlice
    expect(web.endpointUids).toEqual(['default/web-1']);
    await waitUntil(() => api.openWatches() === ALL_WATCHES, 3000, 'api.openWatches() === ALL_WATCHES', 10);
    const paths = ['/api/v1/pods', '/api/v1/services', '/api/v1/namespaces', '/api/v1/nodes', '/apis/discovery.k8s.io/v1/endpointslices'];
    paths.push(
      '/apis/security.istio.io/v1/authorizationpolicies',
      '/apis/security.istio.io/v1/peerauthentications',
      '/apis/networking.istio.io/v1/destinationrules',
      '/apis/networking.istio.io/v1/virtualservices',
      '/apis/smesh.io/v1alpha1/meshconfigs',
    );
    for (const p of paths) {
      expect(api.requests.some((r) => r.startsWith(`GET ${p}?`) && r.includes('watch=true'))).toBe(true);
    }
  });

  it('follows watch events (add, modify, delete) from the listed resourceVersion', async () => {
    await start();
    await waitUntil(() => api.openWatches() === ALL_WATCHES, 3000, 'api.openWatches() === ALL_WATCHES', 10);
    api.upsert('pods', pod('web-2', 'node1', '198.18.1.11'));
    await waitUntil(() => latest?.workloads.has('default/web-2') === true, 3000, "latest?.workloads.has('default/web-2') === true", 10);
    api.upsert('endpointslices', {
      metadata: { name: 'web-abc', namespace: 'default', labels: { 'kubernetes.io/service-name': 'web' } },
      endpoints: [
        { addresses: ['198.18.1.10'], conditions: { ready: false }, targetRef: { kind: 'Pod', namespace: 'default', name: 'web-1' } },
        { addresses: ['198.18.1.11'], conditions: { ready: true }, targetRef: { kind: 'Pod', namespace: 'default', name: 'web-2' } },
      ],
      ports: [{ name: 'http', port: 8080 }],
    });
    await waitUntil(() => latest?.services.get('default/web')?.endpointUids?.join() === 'default/web-2', 3000, "latest?.services.get('default/web')?.endpointUids?.join() === 'default/web-2'", 10);
    api.remove('pods', 'default', 'web-1');
    await waitUntil(() => latest !== undefined && !latest.workloads.has('default/web-1'), 3000, "latest !== undefined && !latest.workloads.has('default/web-1')", 10);
    expect(podLists(api)).toBe(1); // no re-list needed
  });

  it('re-lists after 410 Gone and converges on changes made meanwhile', async () => {
    await start();
    await waitUntil(() => api.openWatches() === ALL_WATCHES, 3000, 'api.openWatches() === ALL_WATCHES', 10);
    const listsBefore = podLists(api);
    expect(listsBefore).toBe(1);
    api.expireWatches();
    api.upsert('pods', pod('web-3', 'node1', '198.18.1.13'));
    await waitUntil(() => latest?.workloads.has('default/web-3') === true, 3000, "latest?.workloads.has('default/web-3') === true", 10);
    expect(podLists(api)).toBeGreaterThan(listsBefore);
  });

  it('reconnects with backoff after the API server restarts, resuming from its resourceVersion', async () => {
    await start();
    await waitUntil(() => api.openWatches() === ALL_WATCHES, 3000, 'api.openWatches() === ALL_WATCHES', 10);
    const port = api.port;
    await api.stop();
    api.upsert('pods', pod('web-4', 'node1', '198.18.1.14')); // happens while the client is disconnected
    await new Promise((r) => setTimeout(r, 150)); // a few failed reconnects
    await api.start(port);
    await waitUntil(() => latest?.workloads.has('default/web-4') === true, 3000, "latest?.workloads.has('default/web-4') === true", 10);
    await waitUntil(() => api.openWatches() === ALL_WATCHES, 3000, 'api.openWatches() === ALL_WATCHES', 10);
    expect(podLists(api)).toBe(1); // resumed the watch; no re-list
    expect(api.requests.some((r) => r.startsWith('GET /api/v1/pods?') && r.includes('watch=true') && /resourceVersion=1\d\d/.test(r))).toBe(true);
  });
});
