// The reconciler's destination sync: after any sequence of snapshots (objects reused or replaced, as the xDS state does) the kernel map equals desiredDestinations, with batched and per-entry writes, and it writes only what changed.
import { describe, expect, it } from 'vitest';
import { desiredDestinations, Reconciler, WorkloadIds, type DatapathMaps } from '../../../../agent/datapath/reconciler';
import type { MeshSnapshot, Service, Workload } from '../../../../core/model/types';
import { seeded as rng } from '../../../helpers/prng';

class FakeMaps implements DatapathMaps {
  dests = new Set<string>();
  writes = 0;
  batches = 0;
  constructor(batched: boolean) {
    if (!batched) {
      this.addMeshedDestinations = undefined;
      this.removeMeshedDestinations = undefined;
    }
  }
  enrollPod(): void {}
  unenrollPod(): void {}
  enrolledPods() {
    return [];
  }
  addMeshedDestination(ip: string, port: number): void {
    this.writes++;
    this.dests.add(`${ip}|${port}`);
  }
  removeMeshedDestination(ip: string, port: number): void {
    this.writes++;
    this.dests.delete(`${ip}|${port}`);
  }
  meshedDestinations() {
    return [...this.dests].map((d) => ({ ip: d.split('|')[0]!, port: Number(d.split('|')[1]) }));
  }
  addMeshedDestinations?: (list: ReadonlyArray<{ ip: string; port: number }>) => void = (list) => {
    this.batches++;
    for (const d of list) this.addMeshedDestination(d.ip, d.port);
  };
  removeMeshedDestinations?: (list: ReadonlyArray<{ ip: string; port: number }>) => number = (list) => {
    this.batches++;
    for (const d of list) this.removeMeshedDestination(d.ip, d.port);
    return list.length;
  };
}

const wl = (i: number, ip: string, meshed: boolean): Workload => ({
  uid: `w${i}`,
  name: `w${i}`,
  namespace: 'default',
  serviceAccount: 'sa',
  node: 'other',
  ip,
  labels: {},
  workloadName: `w${i}`,
  identity: 'spiffe://td/ns/default/sa/sa',
  meshed,
});
const svc = (i: number, vips: string[], ports: number[]): Service => ({
  key: `default/s${i}`,
  name: `s${i}`,
  namespace: 'default',
  vips,
  ports: ports.map((port) => ({ port, targetPort: port })),
  selector: {},
  endpointUids: [],
});
const snap = (workloads: Map<string, Workload>, services: Map<string, Service>): MeshSnapshot => ({ trustDomain: 'td', nodes: new Map(), namespaces: new Map(), workloads, services });
const log = { warn: () => undefined, info: () => undefined };

describe('Reconciler destinations', () => {
  for (const batched of [true, false]) {
    it(`equal desiredDestinations after every one of 40 random snapshots (20 seeds, ${batched ? 'batched' : 'per-entry'} writes; shared IPs and VIPs)`, async () => {
      for (let seed = 1; seed <= 20; seed++) {
        const r = rng(seed);
        const int = (n: number) => Math.floor(r() * n);
        const maps = new FakeMaps(batched);
        maps.dests.add('198.18.9.9|0'); // left by an earlier run
        const rec = new Reconciler(maps, async () => 1n, 'node1', new WorkloadIds(), log);
        let workloads = new Map<string, Workload>();
        let services = new Map<string, Service>();
        for (let round = 0; round < 40; round++) {
          // Copy-on-write like the xDS state: unchanged objects stay, changed ones are new.
          workloads = new Map(workloads);
          services = new Map(services);
          for (let k = int(5); k >= 0; k--) {
            const i = int(15);
            const c = int(10);
            if (c < 4) workloads.set(`w${i}`, wl(i, `198.18.1.${int(8)}`, r() < 0.8));
            else if (c < 5) workloads.delete(`w${i}`);
            else if (c < 8) services.set(`default/s${i}`, svc(i, r() < 0.2 ? [] : [`198.19.0.${int(6)}`], [80, 443].slice(0, 1 + int(2))));
            else services.delete(`default/s${i}`);
          }
          const s = snap(workloads, services);
          const report = await rec.reconcile(s);
          const want = [...desiredDestinations(s).values()].map((d) => `${d.ip}|${d.port}`).sort();
          expect([...maps.dests].sort(), `seed ${seed} round ${round}`).toEqual(want);
          expect(report.destinations).toBe(want.length);
        }
      }
    });
  }

  it('writes nothing for an unchanged snapshot and only the changed entries otherwise', async () => {
    const maps = new FakeMaps(true);
    const rec = new Reconciler(maps, async () => 1n, 'node1', new WorkloadIds(), log);
    const workloads = new Map(Array.from({ length: 100 }, (_, i) => [`w${i}`, wl(i, `198.18.2.${i}`, true)] as const));
    const services = new Map(Array.from({ length: 50 }, (_, i) => [`default/s${i}`, svc(i, [`198.19.1.${i}`], [80])] as const));
    const one = snap(workloads, services);
    await rec.reconcile(one);
    expect(maps.dests.size).toBe(150);
    expect(maps.batches).toBe(1); // the initial fill is one batch
    const writes = maps.writes;
    await rec.reconcile(one);
    expect(maps.writes).toBe(writes);
    const services2 = new Map(services);
    services2.set('default/s3', svc(3, ['198.19.1.3'], [80, 8080]));
    await rec.reconcile(snap(workloads, services2));
    expect(maps.writes - writes).toBe(1); // 198.19.1.3|8080 only
    expect(maps.dests.has('198.19.1.3|8080')).toBe(true);
  });

  it('after a failed write, the next reconcile compares the whole map again', async () => {
    const maps = new FakeMaps(true);
    let fail = true;
    const add = maps.addMeshedDestinations!;
    maps.addMeshedDestinations = (list) => {
      if (fail) {
        maps.addMeshedDestination(list[0]!.ip, list[0]!.port); // partly written, then an error
        throw new Error('map full');
      }
      add(list);
    };
    const rec = new Reconciler(maps, async () => 1n, 'node1', new WorkloadIds(), log);
    const s = snap(
      new Map([
        ['w1', wl(1, '198.18.3.1', true)],
        ['w2', wl(2, '198.18.3.2', true)],
      ]),
      new Map(),
    );
    await expect(rec.reconcile(s)).rejects.toThrow('map full');
    fail = false;
    await rec.reconcile(s);
    expect([...maps.dests].sort()).toEqual(['198.18.3.1|0', '198.18.3.2|0']);
  });
});
