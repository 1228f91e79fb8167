// The accept queue on a virtual clock: class order, weighted deficit round robin over thread time, bounded turns, wait limit, per-flow bound, fair share off, and TrafficShaper's classification.
import { describe, expect, it } from 'vitest';
import { AcceptQueue, type AcceptClass, type AcceptRefusal } from '../../../../agent/qos/accept-queue';
import { TrafficShaper } from '../../../../agent/qos/shaping';
import type { MeshSnapshot, Workload, WorkloadShaping } from '../../../../core/model/types';

/** A virtual clock and a deferral queue the test runs by hand (one call = one event-loop turn). */
function harness(opts: { turnMs?: number; quantumMs?: number; maxWaitMs?: number; maxPerFlow?: number; fairShare?: boolean } = {}) {
  let now = 0;
  const deferred: Array<() => void> = [];
  const refused: Array<{ flow: string; reason: AcceptRefusal }> = [];
  const q = new AcceptQueue({ ...opts, clock: () => now, defer: (fn) => deferred.push(fn), onRefused: (reason, cls) => refused.push({ flow: cls.flow, reason }) });
  const served: string[] = [];
  /** A connection whose work takes `costMs` of (virtual) thread time. */
  const submit = (cls: AcceptClass, label: string, costMs = 1, gone = () => false) =>
    q.submit(
      cls,
      () => {
        served.push(label);
        now += costMs;
      },
      () => served.push(`refused:${label}`),
      gone,
    );
  const runTurn = () => {
    const fn = deferred.shift();
    if (!fn) throw new Error('no turn scheduled');
    fn();
  };
  const drain = (max = 10_000) => {
    for (let i = 0; i < max && deferred.length; i++) runTurn();
  };
  return {
    q,
    served,
    refused,
    submit,
    runTurn,
    drain,
    deferred,
    advance: (ms: number) => {
      now += ms;
    },
  };
}

const cls = (flow: string, priority: AcceptClass['priority'] = 'normal', weight = 100): AcceptClass => ({ flow, priority, weight });

describe('AcceptQueue', () => {
  it('serves latency before normal before bulk, whatever the arrival order', () => {
    const h = harness();
    h.submit(cls('b', 'bulk'), 'bulk1');
    h.submit(cls('n', 'normal'), 'normal1');
    h.submit(cls('b', 'bulk'), 'bulk2');
    h.submit(cls('l', 'latency'), 'latency1');
    h.submit(cls('n', 'normal'), 'normal2');
    expect(h.served).toEqual([]); // nothing runs inside accept: the turn comes after pending I/O
    h.drain();
    expect(h.served).toEqual(['latency1', 'normal1', 'normal2', 'bulk1', 'bulk2']);
  });

  it('a latency connection that arrives during a flood is served in the next turn, ahead of the flood backlog', () => {
    const h = harness({ turnMs: 4 });
    for (let i = 0; i < 100; i++) h.submit(cls('noisy'), `n${i}`);
    h.runTurn(); // 4 ms of the flood
    expect(h.served).toHaveLength(4);
    h.submit(cls('quiet', 'latency'), 'quiet');
    h.runTurn();
    expect(h.served[4]).toBe('quiet');
  });

  it('shares thread time between flows of one class by weight (3:1), not by connection count', () => {
    const h = harness({ turnMs: 1e9, quantumMs: 0.5 });
    // heavy's connections each cost 2 ms, light's 0.5 ms: equal weights share time, so light gets 4 connections per heavy one.
    for (let i = 0; i < 200; i++) h.submit(cls('heavy'), 'heavy', 2);
    for (let i = 0; i < 200; i++) h.submit(cls('light'), 'light', 0.5);
    h.runTurn();
    const firstHalf = h.served.slice(0, 100);
    const heavy = firstHalf.filter((s) => s === 'heavy').length;
    const light = firstHalf.filter((s) => s === 'light').length;
    expect(light * 0.5).toBeGreaterThan(heavy * 2 * 0.8);
    expect(light * 0.5).toBeLessThan(heavy * 2 * 1.25);

    const w = harness({ turnMs: 1e9, quantumMs: 0.5 });
    for (let i = 0; i < 400; i++) w.submit(cls('gold', 'normal', 300), 'gold', 1);
    for (let i = 0; i < 400; i++) w.submit(cls('bronze', 'normal', 100), 'bronze', 1);
    w.runTurn();
    const first = w.served.slice(0, 200);
    const gold = first.filter((s) => s === 'gold').length;
    expect(gold / (200 - gold)).toBeGreaterThan(2.7);
    expect(gold / (200 - gold)).toBeLessThan(3.3);
  });

  it('a turn stops after turnMs of thread time and schedules the next one', () => {
    const h = harness({ turnMs: 4 });
    for (let i = 0; i < 10; i++) h.submit(cls('a'), `a${i}`, 1);
    expect(h.deferred).toHaveLength(1);
    h.runTurn();
    expect(h.served).toEqual(['a0', 'a1', 'a2', 'a3']);
    expect(h.deferred).toHaveLength(1);
    expect(h.q.depth).toBe(6);
    h.drain();
    expect(h.served).toHaveLength(10);
    expect(h.q.depth).toBe(0);
    expect(h.deferred).toHaveLength(0);
    expect((h.q.dump() as { yields: number }).yields).toBe(2);
  });

  it('refuses a connection that waited past maxWaitMs (queue_timeout) and drops closed ones silently', () => {
    const h = harness({ maxWaitMs: 100 });
    h.submit(cls('a'), 'old');
    let closed = false;
    h.submit(cls('a'), 'closed', 1, () => closed);
    h.advance(150);
    h.submit(cls('a'), 'fresh');
    closed = true;
    h.drain();
    expect(h.served).toEqual(['refused:old', 'fresh']);
    expect(h.refused).toEqual([{ flow: 'a', reason: 'queue_timeout' }]);
  });

  it('bounds each flow: past maxPerFlow waiting, a connection is refused at once (queue_full), other flows still queue', () => {
    const h = harness({ maxPerFlow: 3 });
    for (let i = 0; i < 5; i++) h.submit(cls('flood'), `f${i}`);
    h.submit(cls('other'), 'o0');
    expect(h.served).toEqual(['refused:f3', 'refused:f4']);
    expect(h.refused.map((r) => r.reason)).toEqual(['queue_full', 'queue_full']);
    h.drain();
    expect(h.served.slice(2).sort()).toEqual(['f0', 'f1', 'f2', 'o0']);
    const dump = h.q.dump() as { flows: Array<{ flow: string; served: number; refused: number }> };
    expect(dump.flows.find((f) => f.flow === 'flood')).toMatchObject({ served: 3, refused: 2 });
  });

  it('with fair share off, runs each connection at once in accept order', () => {
    const h = harness({ fairShare: false });
    h.submit(cls('b', 'bulk'), 'bulk');
    h.submit(cls('l', 'latency'), 'latency');
    expect(h.served).toEqual(['bulk', 'latency']);
    expect(h.deferred).toHaveLength(0);
  });

  it('a work function that throws is reported to onError and the queue goes on with the next connection', () => {
    const errors: string[] = [];
    const q = new AcceptQueue({ defer: (fn) => fn(), onError: (err, c) => errors.push(`${c.flow}: ${(err as Error).message}`) });
    const served: string[] = [];
    q.submit(
      cls('a'),
      () => {
        throw new Error('boom');
      },
      () => undefined,
    );
    q.submit(
      cls('a'),
      () => served.push('after'),
      () => undefined,
    );
    expect(errors).toEqual(['a: boom']);
    expect(served).toEqual(['after']);
    expect(q.depth).toBe(0);
  });
});

describe('TrafficShaper.acceptClass', () => {
  const wl = (uid: string): Workload =>
    ({ uid, name: uid, namespace: 'default', ip: '10.0.0.1', node: 'n1', identity: `spiffe://cluster.local/ns/default/sa/${uid}`, labels: {} }) as unknown as Workload;
  const shaping = new Map<string, WorkloadShaping>([
    ['web', { workloadUid: 'web', outbound: [], inbound: [], qos: { priority: 'latency', weight: 300 } }],
    ['db', { workloadUid: 'db', outbound: [], inbound: [], qos: { priority: 'bulk' } }],
  ]);
  const snapshot = { trafficShaping: shaping } as unknown as MeshSnapshot;
  const shaper = new TrafficShaper({ state: { snapshot: () => snapshot, trustDomain: 'cluster.local', workloadByIp: () => undefined } });

  it('outbound: the source workload is the flow and its resource-level QoS the class', () => {
    expect(shaper.acceptClass('outbound', wl('web'), '10.0.0.1')).toEqual({ flow: 'web', priority: 'latency', weight: 300 });
  });
  it("inbound: the destination's QoS applies to the source's flow", () => {
    expect(shaper.acceptClass('inbound', wl('web'), '10.0.0.1', wl('db'))).toEqual({ flow: 'web', priority: 'bulk', weight: 100 });
  });
  it('an unknown source is its own flow by address, normal, weight 100', () => {
    expect(shaper.acceptClass('outbound', undefined, '10.0.0.9')).toEqual({ flow: 'ip:10.0.0.9', priority: 'normal', weight: 100 });
  });
});
