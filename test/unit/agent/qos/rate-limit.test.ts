// Token buckets on a fake clock (Envoy local-rate-limit semantics) and the TrafficShaper's decisions: connections, slots, requests, 429 headers, counts.
import { describe, expect, it } from 'vitest';
import { rateLimitHeaders, structuredString, TokenBucket } from '../../../../agent/qos/rate-limit';
import { TrafficShaper } from '../../../../agent/qos/shaping';
import type { MeshSnapshot, Service, ShapingRule, Workload, WorkloadShaping } from '../../../../core/model/types';

describe('TokenBucket', () => {
  it('starts full, refills tokensPerFill per whole fillInterval, never above maxTokens', () => {
    let now = 1000;
    const b = new TokenBucket({ maxTokens: 3, tokensPerFill: 2, fillIntervalMs: 100 }, () => now);
    expect([b.tryTake(), b.tryTake(), b.tryTake(), b.tryTake()]).toEqual([true, true, true, false]);
    expect(b.msUntilToken()).toBe(100);
    now += 99;
    expect(b.tryTake()).toBe(false);
    expect(b.msUntilToken()).toBe(1);
    now += 1; // one fill: 2 tokens
    expect([b.tryTake(), b.tryTake(), b.tryTake()]).toEqual([true, true, false]);
    now += 1000; // ten fills, capped at 3
    expect(b.state()).toMatchObject({ tokens: 3, maxTokens: 3 });
  });

  it('keeps the fill phase: a fill is due fillInterval after the previous one, not after the last take', () => {
    let now = 0;
    const b = new TokenBucket({ maxTokens: 1, tokensPerFill: 1, fillIntervalMs: 1000 }, () => now);
    expect(b.tryTake()).toBe(true);
    now = 1500;
    expect(b.tryTake()).toBe(true);
    expect(b.msUntilToken()).toBe(500);
    now = 2000;
    expect(b.tryTake()).toBe(true);
  });
});

describe('rateLimitHeaders', () => {
  it('names the policy as a structured-field string with quota, window, remaining and reset', () => {
    const h = rateLimitHeaders('shop/Limits/api', { maxTokens: 10, tokensPerFill: 5, fillIntervalMs: 2000, tokens: 0, nextFillInMs: 1500 }, 1500);
    expect(h).toEqual({ 'retry-after': '2', 'ratelimit-policy': '"shop/Limits/api";q=5;w=2', ratelimit: '"shop/Limits/api";r=0;t=2' });
    expect(structuredString('a"b\\c\u00e9')).toBe('"a\\"b\\\\c-"');
    // A window is whole seconds: the quota is what the bucket refills in it.
    expect(rateLimitHeaders('p', { maxTokens: 10, tokensPerFill: 5, fillIntervalMs: 500, tokens: 3, nextFillInMs: 100 }, 100)).toEqual({
      'retry-after': '1',
      'ratelimit-policy': '"p";q=10;w=1',
      ratelimit: '"p";r=3;t=1',
    });
  });
});

function workload(uid: string, name: string): Workload {
  return { uid, name, namespace: 'ns', serviceAccount: 'sa', node: 'n1', ip: '198.18.1.1', labels: {}, workloadName: name, identity: `spiffe://cluster.local/ns/ns/sa/${name}`, meshed: true };
}

function rule(r: Partial<ShapingRule> & { name: string }): ShapingRule {
  return { requestMatch: [], overLimit: { action: 'reject', maxWaitMs: 0 }, ...r };
}

function shaperWith(shaping: WorkloadShaping[], services: Service[] = []) {
  let now = 0;
  const counted: Array<Record<string, string>> = [];
  const snapshot: MeshSnapshot = {
    trustDomain: 'cluster.local',
    nodes: new Map(),
    workloads: new Map(),
    services: new Map(services.map((s) => [s.key, s])),
    namespaces: new Map(),
    trafficShaping: new Map(shaping.map((s) => [s.workloadUid, s])),
  };
  const shaper = new TrafficShaper({
    state: { trustDomain: 'cluster.local', snapshot: () => snapshot, workloadByIp: () => undefined },
    rateLimited: { inc: (labels: Record<string, string>) => void counted.push(labels) } as never,
    now: () => now,
  });
  return { shaper, counted, advance: (ms: number) => (now += ms) };
}

const client = workload('ns/client', 'client');
const server = workload('ns/server-1', 'server');
const svc: Service = { key: 'ns/server', name: 'server', namespace: 'ns', vips: ['10.96.0.1'], ports: [{ port: 80, targetPort: 8080 }], selector: {} };
const other: Service = { ...svc, key: 'ns/other', name: 'other' };

describe('TrafficShaper', () => {
  it('limits new outbound connections per source, only to the rule’s service, and counts each', () => {
    const { shaper, counted, advance } = shaperWith([
      { workloadUid: client.uid, outbound: [rule({ name: 'ns/t/conn', service: 'ns/server', connectionRate: { maxTokens: 2, tokensPerFill: 1, fillIntervalMs: 1000 } })], inbound: [] },
    ]);
    const f = { direction: 'outbound' as const, source: client, service: svc };
    expect(shaper.admitConnection(f).kind).toBe('admit');
    expect(shaper.admitConnection(f).kind).toBe('admit');
    expect(shaper.admitConnection(f)).toMatchObject({ kind: 'limited', reason: 'connection_rate', rule: 'ns/t/conn' });
    expect(shaper.admitConnection({ ...f, service: other }).kind).toBe('admit');
    advance(1000);
    expect(shaper.admitConnection(f).kind).toBe('admit');
    expect(counted).toEqual([{ direction: 'outbound', source_workload: 'client', destination_service: 'server.ns.svc.cluster.local', reason: 'connection_rate' }]);
  });

  it('holds maxConnections slots until released; a release frees exactly one', () => {
    const { shaper } = shaperWith([{ workloadUid: client.uid, outbound: [rule({ name: 'ns/t/max', maxConnections: 1 })], inbound: [] }]);
    const f = { direction: 'outbound' as const, source: client, service: svc };
    const a = shaper.admitConnection(f);
    expect(a.kind).toBe('admit');
    expect(shaper.admitConnection(f)).toMatchObject({ kind: 'limited', reason: 'max_connections' });
    if (a.kind === 'admit') {
      a.release();
      a.release();
    }
    const b = shaper.admitConnection(f);
    expect(b.kind).toBe('admit');
    expect(shaper.admitConnection(f).kind).toBe('limited');
    expect(shaper.dump()).toMatchObject({ connections: [{ rule: 'ns/t/max', scope: client.uid, open: 1 }] });
  });

  it('takes nothing when a second rule refuses', () => {
    const { shaper } = shaperWith([
      {
        workloadUid: client.uid,
        outbound: [rule({ name: 'ns/t/a', connectionRate: { maxTokens: 5, tokensPerFill: 1, fillIntervalMs: 1000 } }), rule({ name: 'ns/t/b', maxConnections: 1 })],
        inbound: [],
      },
    ]);
    const f = { direction: 'outbound' as const, source: client, service: svc };
    expect(shaper.admitConnection(f).kind).toBe('admit');
    expect(shaper.admitConnection(f).kind).toBe('limited');
    expect((shaper.dump() as { buckets: Array<{ tokens: number }> }).buckets[0]!.tokens).toBe(4);
  });

  it('queues a Queue-rule connection until a slot frees, and refuses after maxWait', async () => {
    const { shaper, counted } = shaperWith([{ workloadUid: client.uid, outbound: [rule({ name: 'ns/t/q', maxConnections: 1, overLimit: { action: 'queue', maxWaitMs: 60_000 } })], inbound: [] }]);
    const f = { direction: 'outbound' as const, source: client, service: svc };
    const first = shaper.admitConnection(f);
    const second = shaper.admitConnection(f);
    expect(second).toMatchObject({ kind: 'limited', queueMs: 60_000 });
    expect(counted).toEqual([]);
    const waiting = shaper.waitConnection(f, 60_000);
    if (first.kind === 'admit') first.release();
    await expect(waiting).resolves.toMatchObject({ kind: 'admit' });
    expect(counted.map((c) => c.reason)).toEqual(['queued']);
    await expect(shaper.waitConnection(f, 0)).resolves.toMatchObject({ kind: 'limited', reason: 'max_connections' });
  });

  it('applies inbound rules of a service per service (shared by its endpoints) and only on its target ports', () => {
    const server2 = { ...server, uid: 'ns/server-2' };
    const inbound = [rule({ name: 'ns/t/in', service: 'ns/server', connectionRate: { maxTokens: 1, tokensPerFill: 1, fillIntervalMs: 1000 } })];
    const { shaper } = shaperWith(
      [
        { workloadUid: server.uid, outbound: [], inbound },
        { workloadUid: server2.uid, outbound: [], inbound },
      ],
      [svc],
    );
    expect(shaper.admitConnection({ direction: 'inbound', destination: server, port: 8080 }).kind).toBe('admit');
    expect(shaper.admitConnection({ direction: 'inbound', destination: server2, port: 8080 }).kind).toBe('limited');
    expect(shaper.admitConnection({ direction: 'inbound', destination: server, port: 9999 }).kind).toBe('admit');
  });

  it('limits matching requests with 429 headers; others pass', () => {
    const { shaper, counted, advance } = shaperWith([
      {
        workloadUid: server.uid,
        outbound: [],
        inbound: [rule({ name: 'ns/t/api', requestRate: { maxTokens: 1, tokensPerFill: 1, fillIntervalMs: 2000 }, requestMatch: [{ path: { kind: 'prefix', value: '/api' } }] })],
      },
    ]);
    const req = (path: string) => ({ direction: 'inbound' as const, destination: server, port: 8080, method: 'GET', path, headers: {} });
    expect(shaper.admitRequest(req('/api/x'))).toBeUndefined();
    expect(shaper.admitRequest(req('/other'))).toBeUndefined();
    const limited = shaper.admitRequest(req('/api/y'));
    expect(limited).toMatchObject({ status: 429, headers: { 'retry-after': '2', 'ratelimit-policy': '"ns/t/api";q=1;w=2', ratelimit: '"ns/t/api";r=0;t=2' } });
    expect(counted).toEqual([{ direction: 'inbound', source_workload: 'unknown', destination_service: 'unknown', reason: 'request_rate' }]);
    advance(2000);
    expect(shaper.admitRequest(req('/api/z'))).toBeUndefined();
  });
});

describe('TrafficShaper.requestClass (the class an HTTP request waits in)', () => {
  const shaping: WorkloadShaping[] = [
    {
      workloadUid: 'ns/client',
      qos: { priority: 'normal', weight: 50 },
      outbound: [
        rule({ name: 'ns/t/interactive', qos: { priority: 'latency' }, requestMatch: [{ headers: { 'x-class': { kind: 'exact', value: 'interactive' } } }] }),
        rule({ name: 'ns/t/batch', qos: { priority: 'bulk', weight: 10 }, requestMatch: [{ path: { kind: 'prefix', value: '/batch' } }] }),
      ],
      inbound: [],
    },
  ];
  const req = (path: string, headers: Record<string, string> = {}) => ({ direction: 'outbound' as const, source: client, service: svc, port: 80, method: 'GET', path, headers });

  it('classifies by header and by path; the first matching rule that sets a field wins; the resource fills the rest', () => {
    const { shaper } = shaperWith(shaping, [svc]);
    expect(shaper.requestClass(req('/x', { 'x-class': 'interactive' }))).toEqual({ flow: client.uid, priority: 'latency', weight: 50 });
    expect(shaper.requestClass(req('/batch/7'))).toEqual({ flow: client.uid, priority: 'bulk', weight: 10 });
    expect(shaper.requestClass(req('/x'))).toEqual({ flow: client.uid, priority: 'normal', weight: 50 });
  });

  it('rules with a match classify requests only: the connection keeps the resource-level class', () => {
    const { shaper } = shaperWith(shaping, [svc]);
    expect(shaper.streamQos({ direction: 'outbound', source: client, service: svc, servicePort: 80 })).toEqual({ flow: client.uid, priority: 'normal', weight: 50 });
  });
});

describe('TrafficShaper.streamQos (relay QoS handed to the native engine)', () => {
  it('always names the source workload as the fair-share flow; no TrafficShaping: nothing else', () => {
    const { shaper } = shaperWith([]);
    expect(shaper.streamQos({ direction: 'outbound', source: client, service: svc, servicePort: 80 })).toEqual({ flow: client.uid });
    expect(shaper.streamQos({ direction: 'inbound', destination: server, port: 8080, sourceIdentity: client.identity })).toEqual({ flow: `id:${client.identity}` });
  });

  it('outbound: the first applicable rule sets each QoS field, the resource fills the rest; bytes/s in bytes, upload = send, every applicable rule enforced (tightest first)', () => {
    const { shaper } = shaperWith(
      [
        {
          workloadUid: client.uid,
          qos: { priority: 'bulk', weight: 20, dscp: 10 },
          outbound: [
            rule({ name: 'ns/t/grpc', service: 'ns/server', port: 80, qos: { priority: 'latency' }, bytesPerSecond: { upload: 8_000_000 } }),
            rule({ name: 'ns/t/all', bytesPerSecond: { upload: 80_000_000, download: 1_600_000 } }),
          ],
          inbound: [],
        },
      ],
      [svc],
    );
    expect(shaper.streamQos({ direction: 'outbound', source: client, service: svc, servicePort: 80 })).toEqual({
      flow: client.uid,
      priority: 'latency',
      weight: 20,
      dscp: 10,
      // Both rules limit the upload: the per-port rule's bucket and the workload-wide one are both charged.
      send: [
        { key: `ns/t/grpc|${client.uid}|upload`, bytesPerSecond: 1_000_000 },
        { key: `ns/t/all|${client.uid}|upload`, bytesPerSecond: 10_000_000 },
      ],
      receive: { key: `ns/t/all|${client.uid}|download`, bytesPerSecond: 200_000 },
    });
    // Another port: the port rule does not apply.
    expect(shaper.streamQos({ direction: 'outbound', source: client, service: svc, servicePort: 9090 })).toMatchObject({
      priority: 'bulk',
      send: { key: `ns/t/all|${client.uid}|upload`, bytesPerSecond: 10_000_000 },
    });
  });

  it('inbound: the destination rules apply, upload (client → server) is what the engine receives, one bucket per destination service', () => {
    const { shaper } = shaperWith(
      [{ workloadUid: server.uid, outbound: [], inbound: [rule({ name: 'ns/t/in', service: 'ns/server', bytesPerSecond: { upload: 4_000_000 }, qos: { weight: 500 } })] }],
      [svc],
    );
    expect(shaper.streamQos({ direction: 'inbound', destination: server, port: 8080, sourceIp: '198.18.9.9', sourceIdentity: client.identity })).toEqual({
      flow: `id:${client.identity}`,
      weight: 500,
      receive: { key: 'ns/t/in|svc:ns/server|upload', bytesPerSecond: 500_000 },
    });
  });

  it('counts the engine buckets pauses and delayed bytes by workload, service and way', () => {
    const counted: Array<[Record<string, string>, number]> = [];
    const bytes: Array<[Record<string, string>, number]> = [];
    const snapshot: MeshSnapshot = {
      trustDomain: 'cluster.local',
      nodes: new Map(),
      workloads: new Map(),
      services: new Map([[svc.key, svc]]),
      namespaces: new Map(),
      trafficShaping: new Map([[client.uid, { workloadUid: client.uid, outbound: [rule({ name: 'ns/t/up', bytesPerSecond: { upload: 8000 } })], inbound: [] }]]),
    };
    const shaper = new TrafficShaper({
      state: { trustDomain: 'cluster.local', snapshot: () => snapshot, workloadByIp: () => undefined },
      rateLimited: { inc: (l: Record<string, string>, n: number) => void counted.push([l, n]) } as never,
      rateLimitedBytes: { inc: (l: Record<string, string>, n: number) => void bytes.push([l, n]) } as never,
    });
    const q = shaper.streamQos({ direction: 'outbound', source: client, service: svc, servicePort: 80 });
    let state = { throttles: 2, delayedBytes: 3000 };
    const stop = shaper.attachEngine(() => ({
      fairShare: true,
      flows: [],
      buckets: [{ key: (Array.isArray(q.send) ? q.send[0] : (q.send as { key: string })).key, bytesPerSecond: 1000, burst: 16384, available: 0, granted: 0, activeNs: 0, holders: 1, ...state }],
    }));
    shaper.syncEngineCounters();
    state = { throttles: 5, delayedBytes: 4000 };
    stop();
    const labels = { direction: 'outbound', source_workload: 'client', destination_service: 'any' };
    expect(counted).toEqual([
      [{ ...labels, reason: 'bytes_per_second' }, 2],
      [{ ...labels, reason: 'bytes_per_second' }, 3],
    ]);
    expect(bytes).toEqual([
      [{ ...labels, reason: 'bytes_per_second_upload' }, 3000],
      [{ ...labels, reason: 'bytes_per_second_upload' }, 1000],
    ]);
    expect((shaper.dump() as { relay: { buckets: unknown[] } }).relay.buckets[0]).toMatchObject({ rule: 'ns/t/up', way: 'upload', source_workload: 'client' });
  });
});
