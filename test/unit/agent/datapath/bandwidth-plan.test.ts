// Pod bandwidth reconcile decisions (pure): wanted limits against the kernel map and what this agent attached → set / attach / detach / remove; and the pacer driving them.
import { describe, expect, it } from 'vitest';
import { BandwidthPacer, limitKey, planBandwidth, wantedLimits, type AttachedLimit, type BandwidthOps, type WantedLimit } from '../../../../agent/datapath/bandwidth';
import type { MeshSnapshot, Workload } from '../../../../core/model/types';

const NS = '/proc/self/ns/net'; // a namespace path that exists (its inode is read)
const want = (ip: string, direction: 'egress' | 'ingress', bitsPerSecond: number, netns = '/run/netns/a'): [string, WantedLimit] => [
  limitKey(ip, direction),
  { ip, direction, bitsPerSecond, pod: `default/${ip}`, netns },
];
const att = (ip: string, direction: 'egress' | 'ingress', bitsPerSecond: number, mode: 'edt' | 'tbf', netnsIno = 7, netns = '/run/netns/a'): [string, AttachedLimit] => [
  limitKey(ip, direction),
  { ip, direction, bitsPerSecond, mode, netns, netnsIno, pod: `default/${ip}` },
];
const ops = (actions: ReturnType<typeof planBandwidth>) =>
  actions.map((a) =>
    a.op === 'set' || a.op === 'attach' ? `${a.op} ${a.limit.ip} ${a.limit.direction} ${a.limit.bitsPerSecond}` : `${a.op} ${a.ip} ${a.direction}${a.op === 'detach' ? ` ${a.netns}` : ''}`,
  );

describe('planBandwidth', () => {
  const inos = new Map([['/run/netns/a', 7]]);
  const local = new Map([['10.0.0.1', '/run/netns/a']]);
  it.each<[string, Array<[string, WantedLimit]>, Array<[string, number]>, Array<[string, AttachedLimit]>, string[]]>([
    ['new limit: entry then attach', [want('10.0.0.1', 'egress', 50e6)], [], [], ['set 10.0.0.1 egress 50000000', 'attach 10.0.0.1 egress 50000000']],
    ['in place: nothing', [want('10.0.0.1', 'egress', 50e6)], [[limitKey('10.0.0.1', 'egress'), 50e6]], [att('10.0.0.1', 'egress', 50e6, 'tbf')], []],
    ['rate change, edt: one map write', [want('10.0.0.1', 'egress', 80e6)], [[limitKey('10.0.0.1', 'egress'), 50e6]], [att('10.0.0.1', 'egress', 50e6, 'edt')], ['set 10.0.0.1 egress 80000000']],
    [
      'rate change, tbf: map write and re-attach',
      [want('10.0.0.1', 'egress', 80e6)],
      [[limitKey('10.0.0.1', 'egress'), 50e6]],
      [att('10.0.0.1', 'egress', 50e6, 'tbf')],
      ['set 10.0.0.1 egress 80000000', 'attach 10.0.0.1 egress 80000000'],
    ],
    [
      'namespace recreated behind the same path: re-attach',
      [want('10.0.0.1', 'ingress', 1e6)],
      [[limitKey('10.0.0.1', 'ingress'), 1e6]],
      [att('10.0.0.1', 'ingress', 1e6, 'edt', 6)],
      ['attach 10.0.0.1 ingress 1000000'],
    ],
    [
      'annotation removed: detach, then remove the entry',
      [],
      [[limitKey('10.0.0.1', 'egress'), 50e6]],
      [att('10.0.0.1', 'egress', 50e6, 'tbf')],
      ['detach 10.0.0.1 egress /run/netns/a', 'remove 10.0.0.1 egress'],
    ],
    [
      'one direction of two removed',
      [want('10.0.0.1', 'ingress', 1e6)],
      [
        [limitKey('10.0.0.1', 'egress'), 5e6],
        [limitKey('10.0.0.1', 'ingress'), 1e6],
      ],
      [att('10.0.0.1', 'egress', 5e6, 'tbf'), att('10.0.0.1', 'ingress', 1e6, 'tbf')],
      ['detach 10.0.0.1 egress /run/netns/a', 'remove 10.0.0.1 egress'],
    ],
    [
      'pod left the state: detach where it was attached, remove',
      [],
      [[limitKey('10.0.0.9', 'egress'), 5e6]],
      [att('10.0.0.9', 'egress', 5e6, 'tbf', 7, '/run/netns/gone')],
      ['detach 10.0.0.9 egress /run/netns/gone', 'remove 10.0.0.9 egress'],
    ],
    [
      'startup, leftover of a pod still here without the annotation: detach + remove',
      [],
      [[limitKey('10.0.0.1', 'ingress'), 5e6]],
      [],
      ['detach 10.0.0.1 ingress /run/netns/a', 'remove 10.0.0.1 ingress'],
    ],
    ['startup, leftover of a pod gone: only the entry', [], [[limitKey('10.0.0.8', 'egress'), 5e6]], [], ['remove 10.0.0.8 egress']],
    [
      'startup, leftover still wanted at the same rate: attach again (replaces in place), no map write',
      [want('10.0.0.1', 'egress', 5e6)],
      [[limitKey('10.0.0.1', 'egress'), 5e6]],
      [],
      ['attach 10.0.0.1 egress 5000000'],
    ],
    ['entry lost from the map (another writer): written again, no re-attach', [want('10.0.0.1', 'egress', 5e6)], [], [att('10.0.0.1', 'egress', 5e6, 'edt')], ['set 10.0.0.1 egress 5000000']],
  ])('%s', (_name, wanted, kernel, attached, expected) => {
    expect(ops(planBandwidth(new Map(wanted), new Map(kernel), new Map(attached), inos, local))).toEqual(expected);
  });
});

const pod = (name: string, ip: string, over: Partial<Workload> = {}): Workload => ({
  uid: `default/${name}`,
  name,
  namespace: 'default',
  serviceAccount: 'default',
  node: 'node1',
  ip,
  labels: {},
  workloadName: name,
  identity: 'spiffe://cluster.local/ns/default/sa/default',
  meshed: true,
  netns: NS,
  ...over,
});
const snap = (...ws: Workload[]): MeshSnapshot => ({ trustDomain: 'cluster.local', nodes: new Map(), workloads: new Map(ws.map((w) => [w.uid, w])), services: new Map(), namespaces: new Map() });

describe('wantedLimits', () => {
  it('local meshed pods with a namespace and a limit, per direction', () => {
    const w = wantedLimits(
      snap(
        pod('a', '10.0.0.1', { egressBandwidthBps: 5e6, ingressBandwidthBps: 7e6 }),
        pod('remote', '10.0.0.2', { node: 'node2', egressBandwidthBps: 5e6 }),
        pod('out', '10.0.0.3', { meshed: false, egressBandwidthBps: 5e6 }),
        pod('nons', '10.0.0.4', { netns: undefined, egressBandwidthBps: 5e6 }),
        pod('free', '10.0.0.5'),
      ),
      'node1',
    );
    expect([...w.keys()]).toEqual(['10.0.0.1|egress', '10.0.0.1|ingress']);
  });
});

/** The datapath's bandwidth calls on an in-memory map, recording device operations. */
function fakeOps(): BandwidthOps & { calls: string[]; map: Map<string, number> } {
  const map = new Map<string, number>();
  const calls: string[] = [];
  return {
    map,
    calls,
    bandwidths: () => [...map].map(([k, bps]) => ({ ip: k.split('|')[0]!, direction: k.split('|')[1] as 'egress' | 'ingress', bitsPerSecond: bps, dropped: 0 })),
    setBandwidth: (ip, d, bps) => void map.set(limitKey(ip, d), bps),
    removeBandwidth: (ip, d) => void map.delete(limitKey(ip, d)),
    attachBandwidth: (d, ns, ifindex, bps) => (calls.push(`attach ${d} ${ns || 'host'} ${ifindex} ${bps}`), 'tbf'),
    podDevices: (ns, ip) => {
      if (ip === '10.0.0.9') throw new Error('no interface holds the pod address');
      return { ifindex: 2, ifname: 'eth0', peerIfindex: 11, peerIfname: 'pv0' };
    },
    detachBandwidth: (ns, ifindex) => void calls.push(`detach ${ns || 'host'} ${ifindex}`),
  };
}

describe('BandwidthPacer', () => {
  const log = { warn: () => undefined, info: () => undefined };
  it('attaches egress on the pod interface and ingress on the host-side veth, counts, lifts, detaches all', async () => {
    const o = fakeOps();
    o.map.set(limitKey('10.0.0.7', 'egress'), 1e6); // an earlier agent's, pod gone
    const counted: Array<{ egress: number; ingress: number }> = [];
    const p = new BandwidthPacer(o, 'node1', log, (c) => counted.push(c));
    let r = await p.sync(snap(pod('a', '10.0.0.1', { egressBandwidthBps: 50e6, ingressBandwidthBps: 20e6 })));
    expect(o.calls).toEqual([`attach egress ${NS} 2 50000000`, 'attach ingress host 11 20000000']);
    expect([...o.map]).toEqual([
      [limitKey('10.0.0.1', 'egress'), 50e6],
      [limitKey('10.0.0.1', 'ingress'), 20e6],
    ]);
    expect(r.paced).toEqual({ egress: 1, ingress: 1 });
    expect(p.status()).toEqual([
      { pod: 'default/a', ip: '10.0.0.1', direction: 'egress', bitsPerSecond: 50e6, mode: 'tbf', dropped: 0 },
      { pod: 'default/a', ip: '10.0.0.1', direction: 'ingress', bitsPerSecond: 20e6, mode: 'tbf', dropped: 0 },
    ]);

    o.calls.length = 0;
    r = await p.sync(snap(pod('a', '10.0.0.1', { ingressBandwidthBps: 20e6 })));
    expect(o.calls).toEqual([`detach ${NS} 2`]);
    expect(r.paced).toEqual({ egress: 0, ingress: 1 });
    expect(counted.at(-1)).toEqual({ egress: 0, ingress: 1 });

    o.calls.length = 0;
    await p.detachAll();
    expect(o.calls).toEqual(['detach host 11']);
    expect(o.map.size).toBe(0);
    expect(counted.at(-1)).toEqual({ egress: 0, ingress: 0 });
  });

  it('a failed attach is reported and retried on the next sync', async () => {
    const o = fakeOps();
    const p = new BandwidthPacer(o, 'node1', log);
    const s = snap(pod('x', '10.0.0.9', { egressBandwidthBps: 5e6 }));
    const r = await p.sync(s);
    expect(r.failures).toEqual([{ pod: 'default/x', reason: expect.stringMatching(/attach egress bandwidth: no interface holds/) }]);
    expect(r.paced.egress).toBe(0);
    expect((await p.sync(s)).failures).toHaveLength(1);
  });
});
