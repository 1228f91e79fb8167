// Netns discovery without privileges: the cgroup walk over a prepared tree, IP matching, and the pass that fills the snapshot.
import { linkSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { AGENT_USAGE, parseAgentArgs } from '../../../../agent/config/options';
import { matchByIp, withNetns, workloadsWithoutNetns } from '../../../../agent/discovery/match';
import { NetnsDiscovery } from '../../../../agent/discovery/netns-discovery';
import { scanNetns, type DiscoveredNetns, type NetnsScan, type ScanOptions } from '../../../../agent/discovery/scan';
import type { MeshSnapshot, Workload } from '../../../../core/model/types';

function fib(...ips: string[]): string {
  return `Local:\n  +-- 0.0.0.0/0 2 0 2\n${ips.map((ip) => `     |-- ${ip}\n        /32 host LOCAL\n`).join('')}     |-- 127.0.0.1\n        /32 host LOCAL\n`;
}

/**
 * A directory laid out like cgroupfs + procfs: `<proc>/<pid>/ns/net` are hard links to one file per "namespace", so
 * stat gives every process of a namespace the same inode, as nsfs does.
 */
class FakeNode {
  readonly dir = mkdtempSync(join(tmpdir(), 'smesh-test-discovery-'));
  readonly cgroupRoot = join(this.dir, 'cgroup', 'kubepods');
  readonly procRoot = join(this.dir, 'proc');
  private readonly nsFiles = new Map<string, string>();

  constructor() {
    mkdirSync(this.cgroupRoot, { recursive: true });
    writeFileSync(join(this.cgroupRoot, 'cgroup.procs'), '');
    this.netns('host', []);
    this.process('self', 'host');
  }

  netns(name: string, ips: string[], ipv6 = ''): void {
    const f = join(this.dir, `ns-${name}`);
    writeFileSync(f, '');
    this.nsFiles.set(name, f);
    writeFileSync(`${f}.fib`, fib(...ips));
    writeFileSync(`${f}.inet6`, ipv6);
  }

  inoOf(name: string): number {
    return statSync(this.nsFiles.get(name)!).ino;
  }

  process(pid: number | 'self', ns: string): void {
    const base = join(this.procRoot, String(pid));
    rmSync(base, { recursive: true, force: true });
    mkdirSync(join(base, 'ns'), { recursive: true });
    mkdirSync(join(base, 'net'), { recursive: true });
    const f = this.nsFiles.get(ns)!;
    linkSync(f, join(base, 'ns', 'net'));
    writeFileSync(join(base, 'net', 'fib_trie'), readFileSync(`${f}.fib`, 'utf8'));
    writeFileSync(join(base, 'net', 'if_inet6'), readFileSync(`${f}.inet6`, 'utf8'));
  }

  exit(pid: number): void {
    rmSync(join(this.procRoot, String(pid)), { recursive: true, force: true });
  }

  cgroup(rel: string, pids: number[]): string {
    const d = join(this.cgroupRoot, rel);
    mkdirSync(d, { recursive: true });
    writeFileSync(join(d, 'cgroup.procs'), pids.map((p) => `${p}\n`).join(''));
    return d;
  }

  scan(extra: Partial<ScanOptions> = {}): Promise<NetnsScan> {
    return scanNetns({ cgroupRoot: this.cgroupRoot, procRoot: this.procRoot, selfPid: 1, ...extra });
  }

  remove(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

const nodes: FakeNode[] = [];
afterAll(() => {
  for (const n of nodes) n.remove();
});
function fakeNode(): FakeNode {
  const n = new FakeNode();
  nodes.push(n);
  return n;
}

describe('cgroup walk', () => {
  it('finds each pod namespace once through one live pid, with its addresses and cgroups', async () => {
    const n = fakeNode();
    n.netns('pod-a', ['198.18.1.10'], '20010002000000000000000000000010 03 40 00 80 eth0\n');
    n.netns('pod-b', ['198.18.1.11']);
    for (const [pid, ns] of [
      [100, 'pod-a'],
      [101, 'pod-a'],
      [102, 'pod-a'],
      [200, 'pod-b'],
    ] as const)
      n.process(pid, ns);
    // kubepods layout: QoS slice / pod slice (no processes of its own) / one scope per container.
    n.cgroup('burstable/pod-a', []);
    const pause = n.cgroup('burstable/pod-a/pause', [100]);
    const app = n.cgroup('burstable/pod-a/app', [102, 101]);
    n.cgroup('besteffort/pod-b/app', [200]);
    const scan = await n.scan();
    expect(scan.cgroups).toBe(8);
    expect(scan.populated).toBe(3);
    const byIno = new Map(scan.namespaces.map((x) => [x.ino, x]));
    expect(byIno.size).toBe(2);
    const a = byIno.get(n.inoOf('pod-a'))!;
    expect(a.pid).toBe(100);
    expect(a.path).toBe(join(n.procRoot, '100', 'ns', 'net'));
    expect([...a.cgroups].sort()).toEqual([app, pause].sort());
    expect(a.addresses).toEqual(['198.18.1.10', '2001:2::10']);
    expect(byIno.get(n.inoOf('pod-b'))!.addresses).toEqual(['198.18.1.11']);
  });

  it("skips the agent's own cgroup, empty cgroups and hostNetwork pods", async () => {
    const n = fakeNode();
    n.netns('pod', ['198.18.1.20']);
    n.process(1, 'host'); // the agent
    n.process(300, 'host'); // a hostNetwork pod
    n.process(301, 'pod');
    n.cgroup('smesh-agent', [1]);
    n.cgroup('host-net-pod', [300]);
    n.cgroup('empty', []);
    n.cgroup('pod', [301]);
    const scan = await n.scan({ hostNetnsIno: n.inoOf('host') });
    expect(scan.hostNetwork).toBe(1);
    expect(scan.populated).toBe(2);
    expect(scan.namespaces.map((x) => x.pid)).toEqual([301]);
  });

  it('falls over to another live pid when the lowest one has exited, and keeps a preferred pid while it lives', async () => {
    const n = fakeNode();
    n.netns('pod', ['198.18.1.30']);
    n.process(401, 'pod');
    n.process(402, 'pod');
    n.cgroup('pod/a', [400, 401]); // 400 listed but gone from /proc: exited between the two reads
    n.cgroup('pod/b', [402]);
    let scan = await n.scan();
    expect(scan.namespaces.map((x) => x.pid)).toEqual([401]);
    scan = await n.scan({ preferredPids: new Map([[n.inoOf('pod'), 402]]) });
    expect(scan.namespaces.map((x) => x.pid)).toEqual([402]);
    n.exit(401);
    n.exit(402);
    scan = await n.scan();
    expect(scan.namespaces).toEqual([]);
  });

  it('tolerates garbage in cgroup.procs and pid 0 (processes of another pid namespace)', async () => {
    const n = fakeNode();
    n.netns('pod', ['198.18.1.40']);
    n.process(500, 'pod');
    const d = n.cgroup('pod', []);
    writeFileSync(join(d, 'cgroup.procs'), '0\nabc\n-3\n500\n');
    const scan = await n.scan();
    expect(scan.namespaces.map((x) => x.pid)).toEqual([500]);
  });

  it('an unreadable root is an error naming it; a missing fib_trie skips that namespace', async () => {
    const n = fakeNode();
    await expect(scanNetns({ cgroupRoot: join(n.dir, 'nope'), procRoot: n.procRoot, selfPid: 1 })).rejects.toThrow(/nope/);
    n.netns('pod', ['198.18.1.50']);
    n.process(600, 'pod');
    rmSync(join(n.procRoot, '600', 'net', 'fib_trie'));
    n.cgroup('pod', [600]);
    expect((await n.scan()).namespaces).toEqual([]);
  });

  it('walks 200 cgroups (50 pods × pause + 3 containers); the time is printed, not asserted', async () => {
    const n = fakeNode();
    let pid = 1000;
    for (let p = 0; p < 50; p++) {
      n.netns(`p${p}`, [`198.18.${2 + Math.floor(p / 200)}.${10 + (p % 200)}`]);
      for (const c of ['pause', 'c1', 'c2', 'c3']) {
        n.process(pid, `p${p}`);
        n.cgroup(`burstable/pod${p}/${c}`, [pid++]);
      }
    }
    const runs: number[] = [];
    let scan: NetnsScan | undefined;
    for (let i = 0; i < 5; i++) {
      scan = await n.scan();
      runs.push(scan.durationMs);
    }
    expect(scan!.populated).toBe(200);
    expect(scan!.namespaces.length).toBe(50);
    console.log(`netns discovery over a prepared tree: 200 populated cgroups, 50 namespaces: ${runs.map((r) => r.toFixed(1)).join(' / ')} ms (5 runs)`);
  });
});

function wl(name: string, ip: string, opts: Partial<Workload> = {}): Workload {
  return {
    uid: `default/${name}`,
    name,
    namespace: 'default',
    serviceAccount: 'sa',
    node: 'node1',
    ip,
    labels: {},
    workloadName: name,
    identity: 'spiffe://td/ns/default/sa/sa',
    meshed: true,
    ...opts,
  };
}

function snap(ws: Workload[]): MeshSnapshot {
  return { trustDomain: 'td', nodes: new Map(), namespaces: new Map(), services: new Map(), workloads: new Map(ws.map((w) => [w.uid, w])) };
}

function ns(ino: number, pid: number, addresses: string[]): DiscoveredNetns {
  return { ino, pid, path: `/proc/${pid}/ns/net`, cgroups: [`/cg/${pid}`], addresses };
}

describe('matching by pod IP', () => {
  it('only local, meshed workloads without a netns from the control plane are looked for', () => {
    const s = snap([
      wl('a', '198.18.1.10'),
      wl('given', '198.18.1.11', { netns: '/run/netns/given' }),
      wl('remote', '198.18.2.10', { node: 'node2' }),
      wl('opted-out', '198.18.1.12', { meshed: false }),
    ]);
    expect(workloadsWithoutNetns(s, 'node1').map((w) => w.name)).toEqual(['a']);
  });

  it('resolves unique matches, reports missing and ambiguous ones (IPv6 in any spelling)', () => {
    const found = [ns(1, 10, ['198.18.1.10']), ns(2, 20, ['198.18.1.12', '2001:2::12']), ns(3, 30, ['198.18.1.13']), ns(4, 40, ['198.18.1.13'])];
    const m = matchByIp([wl('a', '198.18.1.10'), wl('b', '198.18.1.11'), wl('c', '2001:2:0:0:0:0:0:12'), wl('d', '198.18.1.13')], found);
    expect(Object.fromEntries([...m.resolved].map(([uid, n]) => [uid, n.path]))).toEqual({ 'default/a': '/proc/10/ns/net', 'default/c': '/proc/20/ns/net' });
    expect(m.missing.map((w) => w.name)).toEqual(['b']);
    expect(m.ambiguous.map((a) => [a.workload.name, a.candidates.map((c) => c.ino)])).toEqual([['d', [3, 4]]]);
  });

  it('fills netns into a new snapshot and never overrides one the control plane gave', () => {
    const s = snap([wl('a', '198.18.1.10'), wl('given', '198.18.1.11', { netns: '/run/netns/given' })]);
    const out = withNetns(
      s,
      new Map([
        ['default/a', '/proc/10/ns/net'],
        ['default/given', '/proc/11/ns/net'],
        ['default/gone', '/proc/12/ns/net'],
      ]),
    );
    expect(out.workloads.get('default/a')!.netns).toBe('/proc/10/ns/net');
    expect(out.workloads.get('default/given')!.netns).toBe('/run/netns/given');
    expect(out.workloads.has('default/gone')).toBe(false);
    expect(s.workloads.get('default/a')!.netns).toBeUndefined();
    expect(withNetns(s, new Map())).toBe(s);
  });
});

class RecordingLog {
  readonly lines: Array<{ level: string; obj: Record<string, unknown>; msg: string }> = [];
  debug(obj: object, msg: string) {
    this.lines.push({ level: 'debug', obj: obj as Record<string, unknown>, msg });
  }
  info(obj: object, msg: string) {
    this.lines.push({ level: 'info', obj: obj as Record<string, unknown>, msg });
  }
  warn(obj: object, msg: string) {
    this.lines.push({ level: 'warn', obj: obj as Record<string, unknown>, msg });
  }
  warnings(uid?: string) {
    return this.lines.filter((l) => l.level === 'warn' && (uid === undefined || l.obj.workload === uid));
  }
}

function scanResult(namespaces: DiscoveredNetns[]): NetnsScan {
  return { namespaces, cgroups: namespaces.length + 1, populated: namespaces.length, hostNetwork: 0, durationMs: 0.5 };
}

describe('NetnsDiscovery pass', () => {
  it('fills discovered namespaces, warns once per pod without one, and warns again after it was found and lost', async () => {
    const log = new RecordingLog();
    let found: DiscoveredNetns[] = [ns(1, 10, ['198.18.1.10'])];
    const d = new NetnsDiscovery({ cgroupRoot: '/cg', nodeName: 'node1', logger: log, scan: async () => scanResult(found) });
    const s = snap([wl('a', '198.18.1.10'), wl('b', '198.18.1.11')]);
    let out = await d.enrich(s);
    expect(out.workloads.get('default/a')!.netns).toBe('/proc/10/ns/net');
    expect(out.workloads.get('default/b')!.netns).toBeUndefined();
    await d.enrich(s);
    await d.enrich(s);
    expect(log.warnings('default/b')).toHaveLength(1);
    expect(log.lines.filter((l) => l.msg === 'pod network namespace discovered')).toHaveLength(1);
    expect(d.status()).toMatchObject({ discovered: { 'default/a': '/proc/10/ns/net' }, unresolved: ['default/b'], namespaces: 1 });

    found = [ns(1, 10, ['198.18.1.10']), ns(2, 20, ['198.18.1.11'])];
    out = await d.enrich(s);
    expect(out.workloads.get('default/b')!.netns).toBe('/proc/20/ns/net');
    found = [ns(1, 10, ['198.18.1.10'])];
    await d.enrich(s);
    expect(log.warnings('default/b')).toHaveLength(2);
  });

  it('does not walk when the control plane gave every local pod its netns', async () => {
    let scans = 0;
    const d = new NetnsDiscovery({ cgroupRoot: '/cg', nodeName: 'node1', logger: new RecordingLog(), scan: async () => (scans++, scanResult([])) });
    const s = snap([wl('a', '198.18.1.10', { netns: '/run/netns/a' }), wl('r', '198.18.2.10', { node: 'node2' })]);
    expect(await d.enrich(s)).toBe(s);
    expect(scans).toBe(0);
  });

  it('a failing walk leaves the snapshot unchanged and is logged once per distinct error', async () => {
    const log = new RecordingLog();
    const d = new NetnsDiscovery({
      cgroupRoot: '/cg',
      nodeName: 'node1',
      logger: log,
      scan: async () => {
        throw new Error('EACCES: permission denied');
      },
    });
    const s = snap([wl('a', '198.18.1.10')]);
    expect(await d.enrich(s)).toBe(s);
    expect(await d.enrich(s)).toBe(s);
    expect(log.warnings()).toHaveLength(1);
    expect(d.status().lastError).toMatch(/\/cg: EACCES/);
  });

  it('passes run one at a time in call order; calls made while one waits share the newest snapshot', async () => {
    const order: string[] = [];
    const gates: Array<() => void> = [];
    const d = new NetnsDiscovery({
      cgroupRoot: '/cg',
      nodeName: 'node1',
      logger: new RecordingLog(),
      scan: () => new Promise<NetnsScan>((resolve) => gates.push(() => resolve(scanResult([ns(1, 10, ['198.18.1.10'])])))),
    });
    const s1 = snap([wl('a', '198.18.1.10', { labels: { v: '1' } })]);
    const s2 = snap([wl('a', '198.18.1.10', { labels: { v: '2' } })]);
    const s3 = snap([wl('a', '198.18.1.10', { labels: { v: '3' } })]);
    const p1 = d.enrich(s1).then((s) => order.push(`1:${s.workloads.get('default/a')!.labels.v}`));
    await new Promise((r) => setImmediate(r));
    const p2 = d.enrich(s2).then((s) => order.push(`2:${s.workloads.get('default/a')!.labels.v}`));
    const p3 = d.enrich(s3).then((s) => order.push(`3:${s.workloads.get('default/a')!.labels.v}`));
    expect(gates).toHaveLength(1); // the second pass waits for the first
    gates[0]!();
    await p1;
    await new Promise((r) => setImmediate(r));
    expect(gates).toHaveLength(2); // s2 and s3 share one pass
    gates[1]!();
    await Promise.all([p2, p3]);
    expect(order).toEqual(['1:1', '2:3', '3:3']);
  });
});

describe('--no-netns-discovery', () => {
  const base = ['--standalone', '--config', '/tmp/x', '--node', 'node1', '--cgroup-root', '/sys/fs/cgroup/kubepods.slice'];
  it('discovery is on by default and the flag turns it off', () => {
    expect(parseAgentArgs(base, {}).noNetnsDiscovery).toBe(false);
    expect(parseAgentArgs([...base, '--no-netns-discovery'], {}).noNetnsDiscovery).toBe(true);
    expect(AGENT_USAGE).toContain('--no-netns-discovery');
  });
});
