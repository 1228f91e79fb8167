// The reconciler keeps a (fake) kernel map set equal to the state: enrolls, unenrolls, and survives a missing netns.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { type DatapathMaps, Reconciler, WorkloadIds } from '../../../../agent/datapath/reconciler';
import type { MeshSnapshot, Workload } from '../../../../core/model/types';

class FakeMaps implements DatapathMaps {
  pods = new Map<bigint, number>();
  dests = new Set<string>();
  enrollPod(c: bigint, id: number): void {
    this.pods.set(c, id);
  }
  unenrollPod(c: bigint): void {
    this.pods.delete(c);
  }
  enrolledPods() {
    return [...this.pods].map(([cookie, workloadId]) => ({ cookie, workloadId }));
  }
  addMeshedDestination(ip: string, port: number): void {
    this.dests.add(`${ip}:${port}`);
  }
  removeMeshedDestination(ip: string, port: number): void {
    this.dests.delete(`${ip}:${port}`);
  }
  meshedDestinations() {
    return [...this.dests].map((d) => ({ ip: d.split(':')[0], port: Number(d.split(':')[1]) }));
  }
}

function pod(name: string, node: string, ip: string, netns: string | undefined, meshed = true): Workload {
  return { uid: `default/${name}`, name, namespace: 'default', serviceAccount: 'sa', node, ip, labels: { app: name }, netns, workloadName: name, identity: 'spiffe://td/ns/default/sa/sa', meshed };
}

function snap(ws: Workload[]): MeshSnapshot {
  return {
    trustDomain: 'td',
    nodes: new Map(),
    namespaces: new Map(),
    workloads: new Map(ws.map((w) => [w.uid, w])),
    services: new Map([['default/svc', { key: 'default/svc', name: 'svc', namespace: 'default', vips: ['198.19.0.1'], ports: [{ port: 80, targetPort: 8080 }], selector: { app: 'a' } }]]),
  };
}

const log = { warn: () => undefined, info: () => undefined };
// /proc/self/ns/net exists everywhere; /proc/1/ns/net too (distinct paths, same or different inode does not matter for the fake).
const cookies: Record<string, bigint> = { '/proc/self/ns/net': 11n, '/proc/1/ns/net': 22n };
const cookieFn = async (p: string) => {
  if (!(p in cookies)) throw new Error('no such namespace');
  return cookies[p];
};

describe('Reconciler', () => {
  it('enrolls local meshed pods only and publishes meshed destinations', async () => {
    const maps = new FakeMaps();
    const r = new Reconciler(maps, cookieFn, 'n1', new WorkloadIds(), log);
    const report = await r.reconcile(
      snap([pod('a', 'n1', '198.18.1.10', '/proc/self/ns/net'), pod('b', 'n2', '198.18.2.10', '/proc/1/ns/net'), pod('c', 'n1', '198.18.1.11', '/proc/1/ns/net', false)]),
    );
    expect(report.enrolled).toBe(1);
    expect([...maps.pods.keys()]).toEqual([11n]);
    expect([...maps.dests].sort()).toEqual(['198.18.1.10:0', '198.18.2.10:0', '198.19.0.1:80']);
  });

  it('removes stale entries left by an earlier run and pods that went away', async () => {
    const maps = new FakeMaps();
    maps.pods.set(99n, 7);
    maps.dests.add('198.18.9.9:0');
    const r = new Reconciler(maps, cookieFn, 'n1', new WorkloadIds(), log);
    await r.reconcile(snap([pod('a', 'n1', '198.18.1.10', '/proc/self/ns/net')]));
    expect([...maps.pods.keys()]).toEqual([11n]);
    expect(maps.dests.has('198.18.9.9:0')).toBe(false);
    await r.reconcile(snap([]));
    expect(maps.pods.size).toBe(0);
    expect([...maps.dests]).toEqual(['198.19.0.1:80']);
  });

  it('reports a pod whose namespace is gone and still enrolls the others', async () => {
    const maps = new FakeMaps();
    const r = new Reconciler(maps, cookieFn, 'n1', new WorkloadIds(), log);
    const report = await r.reconcile(snap([pod('a', 'n1', '198.18.1.10', '/proc/self/ns/net'), pod('gone', 'n1', '198.18.1.12', '/run/netns/smesh-test-missing')]));
    expect(report.enrolled).toBe(1);
    expect(report.failures).toHaveLength(1);
    expect(report.failures[0].pod).toBe('default/gone');
    expect(report.failures[0].reason).toMatch(/smesh-test-missing/);
  });

  it('keeps a pod enrolled with its last cookie when its namespace path cannot be read for one pass; forgets paths no longer wanted', async () => {
    const maps = new FakeMaps();
    // A second readable "namespace" path: a temp file (stat-able) that the fake cookie function knows.
    const other = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'smesh-test-recon-')), 'net');
    onTestFinished(() => fs.rmSync(path.dirname(other), { recursive: true, force: true }));
    fs.writeFileSync(other, '');
    const fn = async (p: string) => (p === other ? 22n : cookieFn(p));
    const r = new Reconciler(maps, fn, 'n1', new WorkloadIds(), log);
    await r.reconcile(snap([pod('a', 'n1', '198.18.1.10', '/proc/self/ns/net')]));
    expect([...maps.pods.keys()]).toEqual([11n]);
    // The discovered path moved to a process that is already gone: the pod stays enrolled, the failure is reported.
    const report = await r.reconcile(snap([pod('a', 'n1', '198.18.1.10', '/run/netns/smesh-test-vanished')]));
    expect([...maps.pods.keys()]).toEqual([11n]);
    expect(report.failures).toHaveLength(1);
    // A later pass that finds it elsewhere switches to that cookie; the old paths leave the cache.
    await r.reconcile(snap([pod('a', 'n1', '198.18.1.10', other)]));
    expect([...maps.pods.keys()]).toEqual([22n]);
    const cache = (r as unknown as { cookieCache: Map<string, unknown> }).cookieCache;
    expect([...cache.keys()]).toEqual([other]);
    // The pod leaves the state: unenrolled, nothing remembered.
    await r.reconcile(snap([]));
    expect(maps.pods.size).toBe(0);
    expect(cache.size).toBe(0);
  });
});
