// TrafficShaping in file config (validation by file, resource and field; selector / namespace / mesh-wide resolution) and over xDS (control encode → agent decode).
import { describe, expect, it } from 'vitest';
import { buildSnapshot as buildFileSnapshot, parseConfigText, type ConfigProblem } from '../../../../control/config/config-dir';
import { buildSnapshot, parseResource, type AcceptedAddress, type AcceptedTrafficShaping } from '../../../../agent/xds/convert';
import { buildResourceSets } from '../../../../control/xds-resources';
import { loadMeshProtos, TYPE_URL } from '../../../../proto';
import { BASE } from '../../fixtures/traffic';
import { XDS_TYPE_URL, XDS_TYPE_URLS } from '../../../../core/xds/contract';

const SHAPING = `
---
apiVersion: smesh.io/v1alpha1
kind: TrafficShaping
metadata: {name: reviews-limits, namespace: default}
spec:
  selector: {matchLabels: {app: reviews}}
  outbound:
  - name: to-ratings
    service: ratings.data
    connectionRate: {maxTokens: 5, tokensPerFill: 2, fillInterval: 1s}
    maxConnections: 10
    overLimit: {action: Queue, maxWait: 500ms}
  inbound:
  - name: api
    service: reviews
    requestRate: {maxTokens: 20, tokensPerFill: 10, fillInterval: 1s}
    match: [{uri: {prefix: /api}, headers: {x-tenant: {exact: a}}}]
  - name: bulk-in
    bytesPerSecond: {upload: 10M, download: 500k}
    priority: bulk
    weight: 10
    dscp: 8
  - name: grpc-port
    service: reviews
    port: 9080
    priority: latency
    dscp: 0
---
apiVersion: smesh.io/v1alpha1
kind: TrafficShaping
metadata: {name: mesh-wide, namespace: istio-system}
spec:
  outbound:
  - maxConnections: 100
---
apiVersion: smesh.io/v1alpha1
kind: TrafficShaping
metadata: {name: reviews-class, namespace: default}
spec:
  selector: {matchLabels: {app: reviews}}
  priority: latency
  weight: 300
`;

function load(text: string) {
  const problems: ConfigProblem[] = [];
  const snapshot = buildFileSnapshot(parseConfigText('mesh.yaml', text, problems), problems);
  return { snapshot, problems };
}

describe('TrafficShaping config', () => {
  it('resolves selector, namespace and mesh-wide rules per workload, services by host', () => {
    const { snapshot, problems } = load(BASE + SHAPING);
    expect(problems).toEqual([]);
    const s = snapshot.trafficShaping!;
    expect([...s.keys()]).toEqual(['data/ratings-1', 'default/reviews-1', 'default/reviews-2']);
    expect(s.get('data/ratings-1')).toEqual({
      workloadUid: 'data/ratings-1',
      outbound: [{ name: 'istio-system/mesh-wide/rule-0', maxConnections: 100, requestMatch: [], overLimit: { action: 'reject', maxWaitMs: 0 } }],
      inbound: [],
    });
    const r1 = s.get('default/reviews-1')!;
    expect(r1.outbound.map((r) => r.name)).toEqual(['default/reviews-limits/to-ratings', 'istio-system/mesh-wide/rule-0']);
    expect(r1.outbound[0]).toEqual({
      name: 'default/reviews-limits/to-ratings',
      service: 'data/ratings',
      connectionRate: { maxTokens: 5, tokensPerFill: 2, fillIntervalMs: 1000 },
      maxConnections: 10,
      requestMatch: [],
      overLimit: { action: 'queue', maxWaitMs: 500 },
    });
    expect(r1.qos).toEqual({ priority: 'latency', weight: 300 });
    expect(s.get('data/ratings-1')!.qos).toBeUndefined();
    expect(r1.inbound[1]).toEqual({
      name: 'default/reviews-limits/bulk-in',
      requestMatch: [],
      overLimit: { action: 'reject', maxWaitMs: 0 },
      bytesPerSecond: { upload: 10_000_000, download: 500_000 },
      qos: { priority: 'bulk', weight: 10, dscp: 8 },
    });
    expect(r1.inbound[2]).toEqual({
      name: 'default/reviews-limits/grpc-port',
      service: 'default/reviews',
      port: 9080,
      requestMatch: [],
      overLimit: { action: 'reject', maxWaitMs: 0 },
      qos: { priority: 'latency', dscp: 0 },
    });
    expect(r1.inbound[0]).toMatchObject({
      service: 'default/reviews',
      requestRate: { maxTokens: 20, tokensPerFill: 10, fillIntervalMs: 1000 },
      requestMatch: [{ path: { kind: 'prefix', value: '/api' }, headers: { 'x-tenant': { kind: 'exact', value: 'a' } } }],
    });
  });

  it('a rule with match and a priority (no requestRate) classifies requests by header: accepted, the match kept', () => {
    const { snapshot, problems } = load(`${BASE}
---
apiVersion: smesh.io/v1alpha1
kind: TrafficShaping
metadata: {name: classes, namespace: default}
spec:
  selector: {matchLabels: {app: reviews}}
  outbound:
  - name: interactive
    priority: latency
    match: [{headers: {x-class: {exact: interactive}}}]
`);
    expect(problems).toEqual([]);
    expect(snapshot.trafficShaping!.get('default/reviews-1')!.outbound[0]).toEqual({
      name: 'default/classes/interactive',
      requestMatch: [{ headers: { 'x-class': { kind: 'exact', value: 'interactive' } } }],
      overLimit: { action: 'reject', maxWaitMs: 0 },
      qos: { priority: 'latency' },
    });
  });

  it.each([
    ['unknown field', `outbound: [{bitsPerSecond: 10}]`, 'spec.outbound[0].bitsPerSecond', 'unknown field'],
    ['bad bandwidth quantity', `outbound: [{bytesPerSecond: {upload: 10Mbit}}]`, 'spec.outbound[0].bytesPerSecond.upload', 'expected a Kubernetes quantity'],
    ['bandwidth under 1 kbit/s', `inbound: [{bytesPerSecond: {download: 10}}]`, 'spec.inbound[0].bytesPerSecond.download', 'bits per second'],
    ['empty bytesPerSecond', `outbound: [{bytesPerSecond: {}}]`, 'spec.outbound[0].bytesPerSecond', 'expected upload, download or both'],
    ['bad priority', `outbound: [{priority: urgent}]`, 'spec.outbound[0].priority', 'expected one of latency, normal, bulk'],
    ['resource priority', `priority: high`, 'spec.priority', 'expected one of latency, normal, bulk'],
    ['weight 0', `outbound: [{weight: 0}]`, 'spec.outbound[0].weight', 'expected an integer 1-1000'],
    ['resource weight too big', `weight: 1001`, 'spec.weight', 'expected an integer 1-1000'],
    ['dscp 64', `outbound: [{dscp: 64}]`, 'spec.outbound[0].dscp', 'expected an integer 0-63'],
    ['port without service', `outbound: [{port: 80, priority: bulk}]`, 'spec.outbound[0].port', 'set service too'],
    ['no limit', `outbound: [{name: a}]`, 'spec.outbound[0]', 'expected at least one limit or QoS setting'],
    ['zero tokens', `outbound: [{connectionRate: {maxTokens: 0, fillInterval: 1s}}]`, 'spec.outbound[0].connectionRate.maxTokens', 'expected an integer 1-'],
    ['fill interval under 50ms', `inbound: [{requestRate: {maxTokens: 1, fillInterval: 10ms}}]`, 'spec.inbound[0].requestRate.fillInterval', "at least 50ms (Envoy's minimum)"],
    ['missing fillInterval', `outbound: [{connectionRate: {maxTokens: 1}}]`, 'spec.outbound[0].connectionRate.fillInterval', 'required field is missing'],
    ['match without requestRate or a class', `outbound: [{maxConnections: 1, match: [{uri: {prefix: /a}}]}]`, 'spec.outbound[0].match', 'set requestRate, priority or weight'],
    [
      'two string matches',
      `outbound: [{requestRate: {maxTokens: 1, fillInterval: 1s}, match: [{uri: {prefix: /a, exact: /b}}]}]`,
      'spec.outbound[0].match[0].uri',
      'exactly one of exact, prefix, regex',
    ],
    ['queue inbound', `inbound: [{maxConnections: 1, overLimit: {action: Queue}}]`, 'spec.inbound[0].overLimit.action', 'outbound rules only'],
    ['bad action', `outbound: [{maxConnections: 1, overLimit: {action: Drop}}]`, 'spec.outbound[0].overLimit.action', 'expected one of Reject, Queue'],
    ['maxWait without Queue', `outbound: [{maxConnections: 1, overLimit: {maxWait: 1s}}]`, 'spec.outbound[0].overLimit.maxWait', 'Queue only'],
    ['duplicate rule name', `outbound: [{name: a, maxConnections: 1}, {name: a, maxConnections: 2}]`, 'spec.outbound[1].name', 'duplicate rule name'],
    ['unknown service', `outbound: [{service: nope, maxConnections: 1}]`, 'spec.outbound[0].service', 'no Service default/nope'],
    ['empty spec', `selector: {matchLabels: {app: x}}`, 'spec', 'at least one rule'],
  ])('rejects %s naming file, resource and field', (_what, spec, field, message) => {
    const text = `${BASE}---\napiVersion: smesh.io/v1alpha1\nkind: TrafficShaping\nmetadata: {name: bad, namespace: default}\nspec:\n  ${spec}\n`;
    const { problems, snapshot } = load(text);
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatchObject({ file: 'mesh.yaml', resource: 'TrafficShaping default/bad', field });
    expect(problems[0]!.message).toContain(message);
    expect(snapshot.trafficShaping).toBeUndefined();
  });
});

describe('TrafficShaping over xDS', () => {
  it('is served as its own type and subscribed to by the agent', () => {
    expect(XDS_TYPE_URLS).toContain(TYPE_URL.trafficShaping);
    expect(XDS_TYPE_URLS).toContain(TYPE_URL.trafficShaping);
  });

  it('round-trips every rule field: control encode → agent decode', () => {
    const { snapshot: file } = load(BASE + SHAPING);
    const sets = buildResourceSets(file, { trustAnchors: [] });
    const entries = sets.shared.get(XDS_TYPE_URL.trafficShaping)!;
    expect([...entries.keys()].sort()).toEqual(['Kubernetes//Pod/data/ratings-1', 'Kubernetes//Pod/default/reviews-1', 'Kubernetes//Pod/default/reviews-2']);
    const addresses = new Map<string, AcceptedAddress>();
    for (const [name, e] of sets.shared.get(XDS_TYPE_URL.address)!) {
      const r = parseResource(XDS_TYPE_URL.address, name, e.resource);
      if (!r.ok) throw new Error(r.error);
      addresses.set(name, r.value as AcceptedAddress);
    }
    const trafficShapings = new Map<string, AcceptedTrafficShaping>();
    for (const [name, e] of entries) {
      const r = parseResource(XDS_TYPE_URL.trafficShaping, name, e.resource);
      if (!r.ok) throw new Error(r.error);
      trafficShapings.set(name, r.value as AcceptedTrafficShaping);
    }
    const built = buildSnapshot({ addresses, nodes: new Map(), localWorkloads: new Map(), trafficShapings });
    expect(built.warnings).toEqual([]);
    const expected = new Map([...file.trafficShaping!].map(([uid, s]) => [`Kubernetes//Pod/${uid}`, { ...s, workloadUid: `Kubernetes//Pod/${uid}` }]));
    expect(built.snapshot.trafficShaping).toEqual(expected);
  });

  it('rejects a bad resource by field', () => {
    const bad = { workloadUid: 'w', outbound: [{ name: 'r', connectionRate: { maxTokens: 1, tokensPerFill: 1, fillInterval: { seconds: 0, nanos: 1_000_000 } } }], inbound: [] };
    const any = loadMeshProtos().codecs.trafficShaping.pack(bad as never);
    const r = parseResource(TYPE_URL.trafficShaping, 'w', any);
    expect(r).toEqual({ ok: false, error: 'TrafficShaping w: outbound[0].connection_rate.fill_interval: expected at least 50ms, got 1ms' });
    const badQos = { workloadUid: 'w', outbound: [], inbound: [], qos: { priority: 'BULK', weight: 5000 } };
    expect(parseResource(TYPE_URL.trafficShaping, 'w', loadMeshProtos().codecs.trafficShaping.pack(badQos as never))).toEqual({
      ok: false,
      error: 'TrafficShaping w: qos.weight: expected 1-1000 (0 = unset), got 5000',
    });
    const badBw = { workloadUid: 'w', outbound: [{ name: 'r', bytesPerSecond: { uploadBps: 5, downloadBps: 0 } }], inbound: [] };
    expect(parseResource(TYPE_URL.trafficShaping, 'w', loadMeshProtos().codecs.trafficShaping.pack(badBw as never))).toEqual({
      ok: false,
      error: 'TrafficShaping w: outbound[0].bytes_per_second.upload_bps: expected 0 (no limit) or 1000-1000000000000000 bits per second, got 5',
    });
  });
});
