// Netns discovery on the real kernel (root): processes in test cgroups and namespaces are found by IP, with the namespace's own cookie.
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NetnsDiscovery } from '../../agent/discovery/netns-discovery';
import { scanNetns } from '../../agent/discovery/scan';
import { netnsCookie } from '../../agent/native/datapath';
import { addonPath } from '../../agent/native/raw';
import type { MeshSnapshot, Workload } from '../../core/model/types';
import { isRoot, run, TestTopology } from './topology';

const SUITE = isRoot ? 'netns discovery (real cgroups, namespaces and /proc)' : 'netns discovery (SKIPPED: needs root for cgroups and netns)';
const IP_A = '198.18.210.10';
const IP_A6 = '2001:2::a';
const IP_B = '198.18.210.11';

interface Sleeper {
  proc: ChildProcess;
  pid: number;
}

describe.skipIf(!isRoot)(SUITE, () => {
  const topo = new TestTopology();
  const sleepers = new Set<Sleeper>();
  let nsA = '';
  let nsB = '';

  /** A process that joins `cgroup` first, then enters `netns` (or stays in ours when absent), and sleeps. */
  async function sleeper(cgroup: string, netns?: string): Promise<Sleeper> {
    const script = netns ? 'echo $$ > "$1/cgroup.procs" && exec nsenter --net="$2" -- sleep 300' : 'echo $$ > "$1/cgroup.procs" && exec sleep 300';
    const proc = spawn('sh', ['-c', script, 'sh', cgroup, netns ?? ''], { stdio: 'ignore' });
    const s = { proc, pid: proc.pid! };
    sleepers.add(s);
    proc.once('exit', () => sleepers.delete(s));
    // Ready once it is listed in the cgroup and (after nsenter's setns) lives in the wanted namespace.
    const wantIno = fs.statSync(netns ?? '/proc/self/ns/net').ino;
    for (let i = 0; i < 200; i++) {
      try {
        const listed = fs.readFileSync(path.join(cgroup, 'cgroup.procs'), 'utf8').split('\n').includes(String(s.pid));
        if (listed && fs.statSync(`/proc/${s.pid}/ns/net`).ino === wantIno && fs.readlinkSync(`/proc/${s.pid}/exe`).endsWith('sleep')) return s;
      } catch {
        // not there yet
      }
      await new Promise((r) => setTimeout(r, 10));
    }
    throw new Error(`sleeper in ${cgroup} (netns ${netns ?? 'host'}) did not start`);
  }

  async function kill(s: Sleeper): Promise<void> {
    if (s.proc.exitCode !== null || s.proc.signalCode !== null) return;
    const exited = new Promise((r) => s.proc.once('exit', r));
    s.proc.kill('SIGKILL');
    await exited;
  }

  function workload(name: string, ip: string, netns?: string): Workload {
    return {
      uid: `default/${name}`,
      name,
      namespace: 'default',
      serviceAccount: 'sa',
      node: 'node1',
      ip,
      labels: {},
      netns,
      workloadName: name,
      identity: 'spiffe://td/ns/default/sa/sa',
      meshed: true,
    };
  }

  function snapshot(ws: Workload[]): MeshSnapshot {
    return { trustDomain: 'td', nodes: new Map(), namespaces: new Map(), services: new Map(), workloads: new Map(ws.map((w) => [w.uid, w])) };
  }

  beforeAll(async () => {
    expect(fs.existsSync(addonPath()), 'build the addon first: make -f mk/datapath.mk native').toBe(true);
    topo.createCgroup();
    nsA = topo.createNetns('disc-a', []);
    nsB = topo.createNetns('disc-b', []);
    // Pod addresses on a veth inside each namespace (both ends stay in it: nothing lands in the host namespace).
    for (const [ns, ips] of [
      [nsA, [`${IP_A}/24`, `${IP_A6}/64`]],
      [nsB, [`${IP_B}/24`]],
    ] as const) {
      const name = path.basename(ns);
      run('ip', ['-n', name, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'peer0']);
      for (const ip of ips) run('ip', ['-n', name, 'addr', 'add', ip, 'dev', 'eth0', ...(ip.includes(':') ? ['nodad'] : [])]);
      run('ip', ['-n', name, 'link', 'set', 'eth0', 'up']);
      run('ip', ['-n', name, 'link', 'set', 'peer0', 'up']);
    }
  });

  afterAll(async () => {
    for (const s of [...sleepers]) await kill(s);
    await topo.cleanup();
    const left = fs.readdirSync('/run/netns').filter((n) => n.startsWith(topo.prefix));
    expect(left, 'netns left behind').toEqual([]);
    expect(fs.existsSync(topo.cgroupPath), 'test cgroup left behind').toBe(false);
  }, 60_000);

  it('finds each pod namespace by its processes: same inode, its addresses, and the cookie of the namespace itself', async () => {
    const podA = topo.createChildCgroup('pod-a');
    const pause = await sleeper(topo.createChildCgroup('pod-a/pause'), nsA);
    await sleeper(topo.createChildCgroup('pod-a/app'), nsA);
    await sleeper(topo.createChildCgroup('pod-b'), nsB);
    await sleeper(topo.createChildCgroup('host-net'));
    topo.createChildCgroup('empty');

    const scan = await scanNetns({ cgroupRoot: topo.cgroupPath });
    expect(scan.hostNetwork, 'the host-network process is skipped').toBe(1);
    expect(scan.populated).toBe(4);
    const byIno = new Map(scan.namespaces.map((n) => [n.ino, n]));
    expect(byIno.size).toBe(2);
    const a = byIno.get(fs.statSync(nsA).ino);
    const b = byIno.get(fs.statSync(nsB).ino);
    expect(a, JSON.stringify(scan.namespaces)).toBeDefined();
    expect(b, JSON.stringify(scan.namespaces)).toBeDefined();
    expect(a!.pid).toBe(pause.pid); // the lowest pid of the namespace: its first process
    expect([...a!.addresses].sort()).toEqual([IP_A, IP_A6].sort());
    expect(b!.addresses).toEqual([IP_B]);
    expect(a!.cgroups.every((c) => c.startsWith(podA + '/'))).toBe(true);
    expect(fs.statSync(a!.path).ino).toBe(fs.statSync(nsA).ino);
    expect(await netnsCookie(a!.path)).toBe(await netnsCookie(nsA));
    expect(await netnsCookie(b!.path)).toBe(await netnsCookie(nsB));
    expect(await netnsCookie(a!.path)).not.toBe(await netnsCookie(b!.path));
  });

  it("fills the workloads' netns by IP (IPv4 and IPv6); a process exiting takes its namespace out of the next pass", async () => {
    const warnings: Array<Record<string, unknown>> = [];
    const logger = { debug: () => undefined, info: () => undefined, warn: (o: object) => void warnings.push(o as Record<string, unknown>) };
    const d = new NetnsDiscovery({ cgroupRoot: topo.cgroupPath, nodeName: 'node1', logger });
    const s = snapshot([workload('a', IP_A), workload('a6', IP_A6), workload('b', IP_B), workload('given', '198.18.210.99', '/run/netns/given')]);
    let out = await d.enrich(s);
    const netnsOf = (uid: string) => out.workloads.get(uid)!.netns;
    expect(fs.statSync(netnsOf('default/a')!).ino).toBe(fs.statSync(nsA).ino);
    expect(netnsOf('default/a6')).toBe(netnsOf('default/a'));
    expect(fs.statSync(netnsOf('default/b')!).ino).toBe(fs.statSync(nsB).ino);
    expect(netnsOf('default/given')).toBe('/run/netns/given');
    expect(warnings).toEqual([]);

    const podB = [...sleepers].filter((x) => fs.existsSync(`/proc/${x.pid}`) && fs.statSync(`/proc/${x.pid}/ns/net`).ino === fs.statSync(nsB).ino);
    expect(podB).toHaveLength(1);
    await kill(podB[0]!);
    out = await d.enrich(s);
    expect(out.workloads.get('default/b')!.netns).toBeUndefined();
    expect(netnsOf('default/a')).toBeDefined();
    expect(warnings.map((w) => w.workload)).toEqual(['default/b']);
    const scan = await scanNetns({ cgroupRoot: topo.cgroupPath });
    expect(scan.namespaces.map((n) => n.ino)).not.toContain(fs.statSync(nsB).ino);
  });

  it('walks 200 populated cgroups over 50 namespaces; the time is printed, not asserted', async () => {
    const root = topo.createChildCgroup('scale');
    const names: string[] = [];
    for (let p = 0; p < 50; p++) names.push(topo.createNetns(`s${p}`, [`198.18.211.${10 + p}`]));
    const started: Array<Promise<Sleeper>> = [];
    for (let p = 0; p < 50; p++) {
      topo.createChildCgroup(`scale/pod${p}`);
      for (const c of ['pause', 'c1', 'c2', 'c3']) started.push(sleeper(topo.createChildCgroup(`scale/pod${p}/${c}`), names[p]));
    }
    const scaleSleepers = await Promise.all(started);
    const runs: number[] = [];
    let last: Awaited<ReturnType<typeof scanNetns>> | undefined;
    for (let i = 0; i < 5; i++) {
      last = await scanNetns({ cgroupRoot: root });
      runs.push(last.durationMs);
    }
    expect(last!.populated).toBe(200);
    expect(last!.namespaces).toHaveLength(50);
    expect(new Set(last!.namespaces.flatMap((n) => n.addresses)).size).toBe(50);
    console.log(`netns discovery on cgroupfs/procfs: 200 populated cgroups (251 dirs), 50 namespaces: ${runs.map((r) => r.toFixed(1)).join(' / ')} ms (5 runs)`);
    for (const s of scaleSleepers) await kill(s);
  }, 120_000);
});
