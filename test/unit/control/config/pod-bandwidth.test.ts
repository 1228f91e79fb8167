// Pod bandwidth annotations: the quantity parser (kubelet semantics, bits per second), validation by file, resource and field, and the trip control encode → LocalWorkload → agent state (both decoders).
import { describe, expect, it } from 'vitest';
import { parseBandwidth, parseQuantity, podBandwidth } from '../../../../control/config/bandwidth';
import { buildSnapshot as buildConfigSnapshot, parseConfigText, type ConfigProblem } from '../../../../control/config/config-dir';
import { buildSnapshot, parseResource, type AcceptedAddress, type AcceptedLocalWorkload } from '../../../../agent/xds/convert';
import { IncrementalSnapshot } from '../../../../agent/xds/incremental';
import { buildResourceSets, ResourceEntryCache } from '../../../../control/xds-resources';
import type { MeshSnapshot, Workload } from '../../../../core/model/types';
import { snapshotFromObjects } from '../../../../control/sources/kubernetes';
import { XDS_TYPE_URL, xdsCodecs } from '../../../../core/xds/contract';

describe('Kubernetes quantities as bits per second', () => {
  it.each([
    ['10M', 10e6],
    ['1G', 1e9],
    ['500k', 500e3],
    ['50M', 50e6],
    ['1000000', 1e6],
    ['100Mi', 100 * 2 ** 20],
    ['1Ki', 1024],
    ['2Gi', 2 * 2 ** 30],
    ['1.5M', 1.5e6],
    ['1.1k', 1100],
    ['+2k', 2000],
    ['1e6', 1e6],
    ['5E3', 5e3],
    ['1500m', 2], // milli: 1.5 rounded up, as Quantity.Value()
    ['.5k', 500],
    ['1P', 1e15],
    ['0.1', 1],
    ['007', 7],
    ['1.', 1],
    ['1e400', Infinity],
  ])('%s = %d', (text, value) => {
    expect(parseQuantity(text)).toEqual({ value });
  });

  it.each(['', '10 M', '10Mb', '10mbit', 'M', '1.2.3', '10KiB', 'ten', ' 10M', '0x10', '10Mi ', '1e'])('%j is not a quantity', (text) => {
    expect(parseQuantity(text)).toEqual({ error: expect.stringMatching(/expected a Kubernetes quantity/) });
  });

  it('refuses what the kubelet refuses: < 1 kbit/s, > 1 Pbit/s, negative', () => {
    expect(parseBandwidth('999')).toEqual({ error: expect.stringMatching(/unreasonably small/) });
    expect(parseBandwidth('0')).toEqual({ error: expect.stringMatching(/unreasonably small/) });
    expect(parseBandwidth('-10M')).toEqual({ error: expect.stringMatching(/unreasonably small/) });
    expect(parseBandwidth('2P')).toEqual({ error: expect.stringMatching(/unreasonably large/) });
    expect(parseBandwidth('1k')).toEqual({ bitsPerSecond: 1000 });
    expect(parseBandwidth('1P')).toEqual({ bitsPerSecond: 1e15 });
  });

  it('reads both annotations; a bad one is reported by field and left out, the other kept', () => {
    expect(podBandwidth(undefined)).toEqual({ bandwidth: {}, problems: [] });
    expect(podBandwidth({ 'kubernetes.io/egress-bandwidth': '10M', 'kubernetes.io/ingress-bandwidth': '1G' })).toEqual({
      bandwidth: { egressBandwidthBps: 10e6, ingressBandwidthBps: 1e9 },
      problems: [],
    });
    const r = podBandwidth({ 'kubernetes.io/egress-bandwidth': 'fast', 'kubernetes.io/ingress-bandwidth': '5M' });
    expect(r.bandwidth).toEqual({ ingressBandwidthBps: 5e6 });
    expect(r.problems).toEqual([{ field: 'metadata.annotations[kubernetes.io/egress-bandwidth]', message: expect.stringContaining('"fast"') }]);
  });
});

const POD = (name: string, ip: string, annotations: Record<string, string>) => `---
apiVersion: v1
kind: Pod
metadata:
  name: ${name}
  namespace: default
  annotations: ${JSON.stringify(annotations)}
spec: { nodeName: node1 }
status: { podIP: ${ip} }
`;

function configSnapshot(text: string): { snapshot: MeshSnapshot; problems: ConfigProblem[] } {
  const problems: ConfigProblem[] = [];
  const docs = parseConfigText('pods.yaml', text, problems);
  return { snapshot: buildConfigSnapshot(docs, problems), problems };
}

describe('Pod bandwidth annotations in the config', () => {
  it('sets the workload limits; a bad value is reported by file, resource and field and the pod stays unlimited', () => {
    const { snapshot, problems } = configSnapshot(
      POD('bulk', '10.0.0.1', { 'kubernetes.io/egress-bandwidth': '50M', 'kubernetes.io/ingress-bandwidth': '100Mi' }) +
        POD('plain', '10.0.0.2', {}) +
        POD('bad', '10.0.0.3', { 'kubernetes.io/egress-bandwidth': '50Mbps' }),
    );
    expect(snapshot.workloads.get('default/bulk')).toMatchObject({ egressBandwidthBps: 50e6, ingressBandwidthBps: 100 * 2 ** 20 });
    expect(snapshot.workloads.get('default/plain')?.egressBandwidthBps).toBeUndefined();
    expect(snapshot.workloads.get('default/bad')).toMatchObject({ meshed: true });
    expect(snapshot.workloads.get('default/bad')?.egressBandwidthBps).toBeUndefined();
    expect(problems).toEqual([
      { file: 'pods.yaml', line: expect.any(Number), resource: 'Pod default/bad', field: 'metadata.annotations[kubernetes.io/egress-bandwidth]', message: expect.stringContaining('"50Mbps"') },
    ]);
  });

  it('reports a bad value again on every rebuild of unchanged documents', () => {
    const problems: ConfigProblem[] = [];
    const docs = parseConfigText('pods.yaml', POD('bad', '10.0.0.3', { 'kubernetes.io/ingress-bandwidth': '10' }), problems);
    for (let i = 0; i < 2; i++) {
      const p: ConfigProblem[] = [];
      buildConfigSnapshot(docs, p);
      expect(p.map((x) => x.field)).toEqual(['metadata.annotations[kubernetes.io/ingress-bandwidth]']);
    }
  });
});

describe('bandwidth limits over xDS (LocalWorkload egress_bandwidth_bps = 3, ingress_bandwidth_bps = 4)', () => {
  const pod = (over: Partial<Workload>): Workload => ({
    uid: 'default/bulk',
    name: 'bulk',
    namespace: 'default',
    serviceAccount: 'default',
    node: 'node1',
    ip: '10.0.0.1',
    labels: {},
    workloadName: 'bulk',
    identity: 'spiffe://cluster.local/ns/default/sa/default',
    meshed: true,
    netns: '/run/netns/bulk',
    ...over,
  });
  const snapshotOf = (w: Workload): MeshSnapshot => ({
    trustDomain: 'cluster.local',
    nodes: new Map([['node1', { name: 'node1', address: '10.1.0.1' }]]),
    workloads: new Map([[w.uid, w]]),
    services: new Map(),
    namespaces: new Map([['default', {}]]),
  });

  /** The agent's state for what control sends node1, through the full decoder and the incremental one. */
  function agentSide(sets: ReturnType<typeof buildResourceSets>, inc: IncrementalSnapshot): { full: Workload; incremental: Workload } {
    const addresses = new Map<string, AcceptedAddress>();
    const localWorkloads = new Map<string, AcceptedLocalWorkload>();
    for (const [name, e] of sets.shared.get(XDS_TYPE_URL.address)!) {
      const r = parseResource(XDS_TYPE_URL.address, name, e.resource);
      if (!r.ok) throw new Error(r.error);
      addresses.set((r.value as AcceptedAddress & { uid: string }).uid, r.value as AcceptedAddress);
      inc.set(r.value);
    }
    for (const [name, e] of sets.localByNode.get('node1')!) {
      const r = parseResource(XDS_TYPE_URL.localWorkload, name, e.resource);
      if (!r.ok) throw new Error(r.error);
      localWorkloads.set(name, r.value as AcceptedLocalWorkload);
      inc.set(r.value);
    }
    const full = [...buildSnapshot({ addresses, nodes: new Map(), localWorkloads }).snapshot.workloads.values()][0]!;
    const incremental = [...inc.build().snapshot.workloads.values()][0]!;
    return { full, incremental };
  }

  it('carries the limits, re-encodes on a change (cache key), and drops them when the annotation goes', () => {
    const cache = new ResourceEntryCache();
    const inc = new IncrementalSnapshot();
    let sets = buildResourceSets(snapshotOf(pod({ egressBandwidthBps: 50e6, ingressBandwidthBps: 1e9 })), { trustAnchors: [] }, cache);
    let got = agentSide(sets, inc);
    for (const w of [got.full, got.incremental]) expect(w).toMatchObject({ netns: '/run/netns/bulk', egressBandwidthBps: 50e6, ingressBandwidthBps: 1e9 });
    const v1 = [...sets.localByNode.get('node1')!.values()][0]!.version;

    // Only the rate changes: the LocalWorkload is encoded again with a new version, the Address is reused.
    const prev = sets;
    sets = buildResourceSets(snapshotOf(pod({ egressBandwidthBps: 100e6, ingressBandwidthBps: 1e9 })), { trustAnchors: [] }, cache, prev);
    expect([...sets.localByNode.get('node1')!.values()][0]!.version).not.toBe(v1);
    expect([...sets.shared.get(XDS_TYPE_URL.address)!.values()][0]).toBe([...prev.shared.get(XDS_TYPE_URL.address)!.values()][0]);
    got = agentSide(sets, inc);
    for (const w of [got.full, got.incremental]) expect(w.egressBandwidthBps).toBe(100e6);

    sets = buildResourceSets(snapshotOf(pod({})), { trustAnchors: [] }, cache, sets);
    got = agentSide(sets, inc);
    for (const w of [got.full, got.incremental]) {
      expect(w.egressBandwidthBps).toBeUndefined();
      expect(w.ingressBandwidthBps).toBeUndefined();
      expect(w.netns).toBe('/run/netns/bulk');
    }
  });

  it('a pod without limits is encoded as before (no new bytes on the wire)', () => {
    const sets = buildResourceSets(snapshotOf(pod({})), { trustAnchors: [] });
    const e = [...sets.localByNode.get('node1')!.values()][0]!;
    const before = xdsCodecs().localWorkload.pack({ uid: e.name, netns: '/run/netns/bulk' });
    expect(Buffer.from(e.resource.value).equals(Buffer.from(before.value))).toBe(true);
  });

  it('refuses a rate the kernel cannot take', () => {
    const sets = buildResourceSets(snapshotOf(pod({ egressBandwidthBps: 4 })), { trustAnchors: [] });
    const [name, e] = [...sets.localByNode.get('node1')!][0]!;
    const r = parseResource(XDS_TYPE_URL.localWorkload, name, e.resource);
    expect(r.ok).toBe(false);
    expect(!r.ok && r.error).toMatch(/egress_bandwidth_bps: expected bits per second in 8\.\.7\.2e16/);
  });
});

describe('Pod bandwidth annotations from the Kubernetes source', () => {
  const k8sPod = (name: string, ip: string, annotations: Record<string, string>) => ({
    metadata: { name, namespace: 'default', resourceVersion: '1', annotations },
    spec: { nodeName: 'node1', serviceAccountName: 'default' },
    status: { podIP: ip, phase: 'Running' },
  });
  it('a good value becomes the workload limit; a bad one is reported (onProblems) and ignored', () => {
    let problems: ConfigProblem[] = [];
    const s = snapshotFromObjects(
      {
        pods: [
          k8sPod('bulk', '10.0.0.1', { 'kubernetes.io/ingress-bandwidth': '10M' }),
          k8sPod('bad', '10.0.0.2', { 'kubernetes.io/egress-bandwidth': '-1M', 'kubernetes.io/ingress-bandwidth': '2Mi' }),
        ],
        services: [],
        endpointslices: [],
        namespaces: [],
        nodes: [],
      },
      undefined,
      (p) => (problems = p),
    );
    expect(s.workloads.get('default/bulk')?.ingressBandwidthBps).toBe(10e6);
    expect(s.workloads.get('default/bad')).toMatchObject({ ingressBandwidthBps: 2 * 2 ** 20, meshed: true });
    expect(s.workloads.get('default/bad')?.egressBandwidthBps).toBeUndefined();
    expect(problems).toEqual([
      expect.objectContaining({ resource: 'Pod default/bad', field: 'metadata.annotations[kubernetes.io/egress-bandwidth]', message: expect.stringMatching(/unreasonably small/) }),
    ]);
  });
});
