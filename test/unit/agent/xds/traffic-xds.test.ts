// TrafficPolicy over xDS: file → control encode → agent decode gives the same policies; a bad TrafficPolicy is NACKed alone while the others apply.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildSnapshot as buildFileSnapshot, parseConfigText, type ConfigProblem } from '../../../../control/config/config-dir';
import type { ServiceTrafficPolicy } from '../../../../core/model/types';
import { ControlPlaneChannel } from '../../../../agent/xds/channel';
import { XdsClient, type XdsUpdate } from '../../../../agent/xds/client';
import { buildSnapshot, parseResource, type AcceptedAddress, type AcceptedTrafficPolicy } from '../../../../agent/xds/convert';
import { buildResourceSets } from '../../../../control/xds-resources';
import { TYPE_URL } from '../../../../proto';
import type { TrafficPolicy } from '../../../../proto/generated/smesh/traffic/v1alpha1/TrafficPolicy';
import { waitFor } from '../../fixtures/proxy';
import { CONTROL_ID, FakeControlPlane, meshPki, TOKEN, type MeshPki } from '../../fixtures/xds';
import { BASE, GOOD } from '../../fixtures/traffic';
import { XDS_TYPE_URL, XDS_TYPE_URLS, xdsCodecs } from '../../../../core/xds/contract';

function fileSnapshot() {
  const problems: ConfigProblem[] = [];
  const s = buildFileSnapshot(parseConfigText('mesh.yaml', BASE + GOOD, problems), problems);
  expect(problems).toEqual([]);
  return s;
}

/** The file model with workload uids in their wire form (the agent knows workloads by Workload.uid). */
function withWireUids(p: ServiceTrafficPolicy): ServiceTrafficPolicy {
  return { ...p, subsets: p.subsets.map((s) => ({ ...s, workloadUids: s.workloadUids.map((u) => `Kubernetes//Pod/${u}`) })) };
}

describe('TrafficPolicy: control encode → agent decode', () => {
  it('is served as its own type and subscribed to by the agent', () => {
    expect(XDS_TYPE_URL.trafficPolicy).toBe(TYPE_URL.trafficPolicy);
    expect(XDS_TYPE_URLS).toContain(TYPE_URL.trafficPolicy);
    expect(XDS_TYPE_URLS).toContain(TYPE_URL.trafficPolicy);
  });

  it('round-trips every field the file config produces', () => {
    const file = fileSnapshot();
    const sets = buildResourceSets(file, { trustAnchors: [] });
    const tps = sets.shared.get(XDS_TYPE_URL.trafficPolicy)!;
    expect([...tps.keys()].sort()).toEqual(['data/ratings.data.svc.cluster.local', 'default/reviews.default.svc.cluster.local']);
    const wire = xdsCodecs().trafficPolicy.decode(tps.get('default/reviews.default.svc.cluster.local')!.resource.value);
    expect(wire.subsets.map((s) => s.workloadUids)).toEqual([['Kubernetes//Pod/default/reviews-1'], ['Kubernetes//Pod/default/reviews-2']]);
    expect(wire.routes[1]!.destinations[0]).toMatchObject({ service: 'data/ratings.data.svc.cluster.local', weight: 100 });

    const addresses = new Map<string, AcceptedAddress>();
    for (const [name, e] of sets.shared.get(XDS_TYPE_URL.address)!) {
      const r = parseResource(XDS_TYPE_URL.address, name, e.resource);
      if (!r.ok) throw new Error(r.error);
      addresses.set(name, r.value as AcceptedAddress);
    }
    const trafficPolicies = new Map<string, AcceptedTrafficPolicy>();
    for (const [name, e] of tps) {
      const r = parseResource(XDS_TYPE_URL.trafficPolicy, name, e.resource);
      if (!r.ok) throw new Error(r.error);
      trafficPolicies.set(name, r.value as AcceptedTrafficPolicy);
    }
    const built = buildSnapshot({ addresses, nodes: new Map(), localWorkloads: new Map(), trafficPolicies });
    expect(built.warnings).toEqual([]);
    const expected = new Map([...file.trafficPolicies!].map(([k, p]) => [k, withWireUids(p)]));
    expect(built.snapshot.trafficPolicies).toEqual(expected);
  });

  it('a changed rule changes only that policy version', () => {
    const a = buildResourceSets(fileSnapshot(), { trustAnchors: [] }).shared.get(XDS_TYPE_URL.trafficPolicy)!;
    const problems: ConfigProblem[] = [];
    const edited = GOOD.replace('weight: 90', 'weight: 80').replace('weight: 10', 'weight: 20');
    const b = buildResourceSets(buildFileSnapshot(parseConfigText('mesh.yaml', BASE + edited, problems), problems), { trustAnchors: [] }).shared.get(XDS_TYPE_URL.trafficPolicy)!;
    expect(problems).toEqual([]);
    expect(b.get('default/reviews.default.svc.cluster.local')!.version).not.toBe(a.get('default/reviews.default.svc.cluster.local')!.version);
    expect(b.get('data/ratings.data.svc.cluster.local')!.version).toBe(a.get('data/ratings.data.svc.cluster.local')!.version);
  });

  const T = XDS_TYPE_URL.trafficPolicy;
  const NAME = 'default/reviews.default.svc.cluster.local';
  const pack = (p: TrafficPolicy) => xdsCodecs().trafficPolicy.pack(p);
  const good: TrafficPolicy = {
    namespace: 'default',
    hostname: 'reviews.default.svc.cluster.local',
    loadBalancer: { simple: 'PEAK_EWMA', ewmaDecay: { seconds: 5 } },
    subsets: [{ name: 'v1', workloadUids: ['Kubernetes//Pod/default/reviews-1'] }],
    routes: [{ destinations: [{ subset: 'v1', weight: 1 }] }],
  };
  const badCases: Array<[string, TrafficPolicy, string]> = [
    [
      'a name mismatch',
      { ...good, hostname: 'other.default.svc.cluster.local' },
      `TrafficPolicy ${NAME}: hostname: expected the resource name "${NAME}" to be "<namespace>/<hostname>" = "default/other.default.svc.cluster.local"`,
    ],
    ['an unknown algorithm', { ...good, loadBalancer: { simple: 9 as never } }, `TrafficPolicy ${NAME}: load_balancer.simple: expected one of ROUND_ROBIN, LEAST_REQUEST, PEAK_EWMA, RANDOM, got 9`],
    [
      'an empty hash key',
      { ...good, loadBalancer: { consistentHash: { httpHeaderName: '' } } },
      `TrafficPolicy ${NAME}: load_balancer.consistent_hash.http_header_name: expected a header name, got an empty string`,
    ],
    ['a duplicate subset', { ...good, subsets: [{ name: 'v1' }, { name: 'v1' }] }, `TrafficPolicy ${NAME}: subsets[1].name: subset "v1" is listed twice`],
    [
      'an unknown route subset',
      { ...good, routes: [{ destinations: [{ subset: 'v9', weight: 1 }] }] },
      `TrafficPolicy ${NAME}: routes[0].destinations[0].subset: no subset "v9" in this policy (subsets: v1)`,
    ],
    ['all-zero weights', { ...good, routes: [{ destinations: [{ weight: 0 }] }] }, `TrafficPolicy ${NAME}: routes[0].destinations: expected at least one destination with a positive weight`],
    ['an empty string match', { ...good, routes: [{ match: [{ path: {} }] }] }, `TrafficPolicy ${NAME}: routes[0].match[0].path: expected one of exact, prefix or regex to be set`],
    [
      'a bad retry condition',
      { ...good, routes: [{ retries: { retryOn: ['sometimes'] } }] },
      `TrafficPolicy ${NAME}: routes[0].retries.retry_on[0]: expected a status code or one of 5xx, gateway-error, reset, connect-failure, refused-stream, retriable-4xx, got "sometimes"`,
    ],
    [
      'an abort status',
      { ...good, routes: [{ fault: { abort: { httpStatus: 42, percent: 1 } } }] },
      `TrafficPolicy ${NAME}: routes[0].fault.abort.http_status: expected an HTTP status 200-599, got 42`,
    ],
    [
      'an ejection percent',
      { ...good, outlierDetection: { maxEjectionPercent: { value: 101 } } },
      `TrafficPolicy ${NAME}: outlier_detection.max_ejection_percent: expected a percentage 0-100, got 101`,
    ],
    ['a duplicate port', { ...good, portLevelSettings: [{ port: 80 }, { port: 80 }] }, `TrafficPolicy ${NAME}: port_level_settings[1].port: port 80 is listed twice`],
    [
      'a bad destination service',
      { ...good, routes: [{ destinations: [{ service: 'ratings', weight: 1 }] }] },
      `TrafficPolicy ${NAME}: routes[0].destinations[0].service: expected "<namespace>/<hostname>", got "ratings"`,
    ],
  ];
  for (const [what, p, error] of badCases) {
    it(`rejects a TrafficPolicy with ${what}`, () => {
      expect(parseResource(T, NAME, pack(p))).toEqual({ ok: false, error });
    });
  }
  it('accepts a valid one', () => {
    expect(parseResource(T, NAME, pack(good))).toMatchObject({
      ok: true,
      value: { kind: 'trafficPolicy', policy: { serviceKey: 'default/reviews', loadBalancer: { algorithm: 'PEAK_EWMA', ewmaDecayMs: 5000 } } },
    });
  });
});

describe('TrafficPolicy over a live delta ADS stream', () => {
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

  it('NACKs the one bad TrafficPolicy while the others apply', async () => {
    await waitFor(() => updates.length > 0);
    const c = xdsCodecs();
    const ok: TrafficPolicy = { namespace: 'default', hostname: 'a.default.svc.cluster.local', loadBalancer: { simple: 'ROUND_ROBIN' }, connectionPool: { maxConnections: 10 } };
    const bad: TrafficPolicy = { namespace: 'default', hostname: 'b.default.svc.cluster.local', routes: [{ destinations: [{ subset: 'missing', weight: 1 }] }] };
    const nonce = cp.push(XDS_TYPE_URL.trafficPolicy, [
      { name: 'default/a.default.svc.cluster.local', any: c.trafficPolicy.pack(ok), version: 'v1' },
      { name: 'default/b.default.svc.cluster.local', any: c.trafficPolicy.pack(bad), version: 'v1' },
    ]);
    await waitFor(() => cp.answersTo(nonce).length === 1);
    const nack = cp.answersTo(nonce)[0]!;
    expect(nack.errorDetail?.code).toBe(3);
    expect(nack.errorDetail?.message).toContain('TrafficPolicy default/b.default.svc.cluster.local: routes[0].destinations[0].subset: no subset "missing"');
    await waitFor(() => (updates.at(-1)?.snapshot.trafficPolicies?.size ?? 0) === 1);
    const policies = updates.at(-1)!.snapshot.trafficPolicies!;
    expect([...policies.keys()]).toEqual(['default/a']);
    expect(policies.get('default/a')).toMatchObject({ loadBalancer: { algorithm: 'ROUND_ROBIN' }, connectionPool: { maxConnections: 10 } });
    expect(
      client
        .status()
        .types.find((t) => t.typeUrl === T)
        ?.rejected.map((r) => r.name),
    ).toEqual(['default/b.default.svc.cluster.local']);
  });
  const T = XDS_TYPE_URL.trafficPolicy;
});
