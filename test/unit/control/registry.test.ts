// Snapshot → resource sets (encoding, scoping, determinism) and the per-type diff that drives incremental pushes.
import { describe, expect, it } from 'vitest';
import type { MeshSnapshot, Service, Workload } from '../../../core/model/types';
import { Registry } from '../../../control/registry';
import { buildResourceSets, diffResourceSets, ipBytes } from '../../../control/xds-resources';
import { loadMeshProtos } from '../../../proto';
import { XDS_TYPE_URL as T, xdsCodecs } from '../../../core/xds/contract';

const { codecs } = loadMeshProtos();

function workload(name: string, node: string, ip: string, extra: Partial<Workload> = {}): Workload {
  return {
    uid: `default/${name}`,
    name,
    namespace: 'default',
    serviceAccount: 'sa',
    node,
    ip,
    labels: { app: name.split('-')[0]! },
    netns: `/run/netns/${name}`,
    workloadName: name.split('-')[0]!,
    identity: 'spiffe://td/ns/default/sa/sa',
    meshed: true,
    ...extra,
  };
}
function snapshot(workloads: Workload[], services: Service[] = []): MeshSnapshot {
  return {
    trustDomain: 'td',
    nodes: new Map([
      ['n1', { name: 'n1', address: '10.0.0.1' }],
      ['n2', { name: 'n2', address: 'fd00::2' }],
    ]),
    workloads: new Map(workloads.map((w) => [w.uid, w])),
    services: new Map(services.map((s) => [s.key, s])),
    namespaces: new Map([['default', {}]]),
  };
}
const svc = (over: Partial<Service> = {}): Service => ({
  key: 'default/web',
  name: 'web',
  namespace: 'default',
  vips: ['10.96.0.1', 'fd00::1'],
  ports: [{ port: 80, targetPort: 8080 }],
  selector: { app: 'web' },
  ...over,
});

describe('control: resources and registry', () => {
  it('encodes IPs as raw bytes', () => {
    expect([...ipBytes('10.1.2.3')]).toEqual([10, 1, 2, 3]);
    expect(ipBytes('fd00::1')).toHaveLength(16);
    expect(() => ipBytes('nope')).toThrow(TypeError);
  });

  it('is deterministic and excludes opted-out workloads; LocalWorkload only for the workload node', () => {
    const s = snapshot([workload('web-1', 'n1', '10.1.0.1'), workload('web-2', 'n2', '10.2.0.1'), workload('web-3', 'n1', '10.1.0.3', { meshed: false })], [svc()]);
    const a = buildResourceSets(s, { trustAnchors: ['PEM'] });
    const b = buildResourceSets(s, { trustAnchors: ['PEM'] });
    expect(diffResourceSets(a, b).size).toBe(0);
    expect([...a.shared.get(T.address)!.keys()].sort()).toEqual(['Kubernetes//Pod/default/web-1', 'Kubernetes//Pod/default/web-2', 'default/web.default.svc.cluster.local']);
    expect([...a.localByNode.get('n1')!.keys()]).toEqual(['Kubernetes//Pod/default/web-1']);
    expect([...a.localByNode.get('n2')!.keys()]).toEqual(['Kubernetes//Pod/default/web-2']);
    const node2 = xdsCodecs().node.unpack(a.shared.get(T.node)!.get('n2')!.resource);
    expect(node2).toEqual({ name: 'n2', address: 'fd00::2' });
    const service = codecs.address.unpack(a.shared.get(T.address)!.get('default/web.default.svc.cluster.local')!.resource).service!;
    expect(service.addresses.map((x) => x.address.length)).toEqual([4, 16]);
  });

  it('uses explicit endpointUids over the selector', () => {
    const s = snapshot([workload('web-1', 'n1', '10.1.0.1'), workload('other-1', 'n1', '10.1.0.2')], [svc({ endpointUids: ['default/other-1'] })]);
    const sets = buildResourceSets(s, { trustAnchors: [] });
    const get = (n: string) => codecs.address.unpack(sets.shared.get(T.address)!.get(`Kubernetes//Pod/default/${n}`)!.resource).workload!;
    expect(get('web-1').services).toEqual({});
    expect(Object.keys(get('other-1').services)).toEqual(['default/web.default.svc.cluster.local']);
  });

  it('diffs per type: added, changed, removed; a workload moving nodes is a changed LocalWorkload', () => {
    const before = buildResourceSets(snapshot([workload('web-1', 'n1', '10.1.0.1'), workload('web-2', 'n1', '10.1.0.2')]), { trustAnchors: [] });
    const after = buildResourceSets(snapshot([workload('web-1', 'n2', '10.1.0.1'), workload('web-3', 'n1', '10.1.0.3')]), { trustAnchors: [] });
    const d = diffResourceSets(before, after);
    expect(d.get(T.address)).toEqual({ added: ['Kubernetes//Pod/default/web-3'], changed: ['Kubernetes//Pod/default/web-1'], removed: ['Kubernetes//Pod/default/web-2'] });
    expect(d.get(T.localWorkload)).toEqual({ added: ['Kubernetes//Pod/default/web-3'], changed: ['Kubernetes//Pod/default/web-1'], removed: ['Kubernetes//Pod/default/web-2'] });
    expect(d.has(T.node)).toBe(false);
  });

  it('notifies listeners only when something on the wire changed, and re-publishes MeshConfig on new anchors', () => {
    const r = new Registry({ trustAnchors: ['A'] });
    const seen: string[][] = [];
    r.onChange((diff) => seen.push([...diff.keys()]));
    const s = snapshot([workload('web-1', 'n1', '10.1.0.1')]);
    r.update(s);
    r.update({ ...s, workloads: new Map(s.workloads) }); // same content
    expect(seen).toHaveLength(1);
    r.setTrustAnchors(['A', 'B']);
    expect(seen[1]).toEqual([T.meshConfig]);
    expect(xdsCodecs().meshConfig.unpack(r.get('n1', T.meshConfig, 'mesh')!.resource).trustAnchors).toEqual(['A', 'B']);
    expect(r.get('n2', T.localWorkload, 'Kubernetes//Pod/default/web-1')).toBeUndefined();
  });
});
