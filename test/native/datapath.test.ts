// Native datapath tests on the real kernel: BPF redirect, original destination, pinned-link reuse and bad input (root only).
import * as fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { netnsCookie, openDatapath, type Datapath, type DatapathOptions } from '../../agent/native/datapath';
import { addonPath } from '../../agent/native/raw';
import { SmeshError } from '../../core/errors';
import { ensureBpffs, isRoot, TestTopology, type ProbeEvent, type ProbePlan } from './topology';

const CAPTURE_PORT = 15001;
const SERVICE_IP = '198.18.99.1'; // meshed on port 8080 only
const WORKLOAD_IP = '198.18.99.2'; // meshed on every port (port 0 entry)
const MESHED_PORT = 8080;
const UNMESHED_PORT = 8081;
const ANY_PORT = 9099;
const WORKLOAD_ID = 42;

const EXPECTED_ATTACH_TYPES = 7; // connect4, connect6, sock_ops, getsockopt, getpeername4, getpeername6, cgroup_inet_ingress

// Without root nothing here can run (BPF load, cgroup and netns creation); the title says so in the report.
const SUITE = isRoot ? 'native datapath (real BPF on a test cgroup)' : 'native datapath (SKIPPED: needs root for BPF, cgroups, netns)';

describe.skipIf(!isRoot)(SUITE, () => {
  const topo = new TestTopology();
  const datapaths: Datapath[] = [];
  let podNetns = '';
  let otherNetns = '';
  let options: DatapathOptions;

  const listeners = (): ProbePlan['listen'] => [
    { name: 'capture', ip: topo.captureIp, port: CAPTURE_PORT },
    { name: 'service', ip: SERVICE_IP, port: MESHED_PORT },
    { name: 'service-unmeshed', ip: SERVICE_IP, port: UNMESHED_PORT },
    { name: 'workload', ip: WORKLOAD_IP, port: ANY_PORT },
  ];

  async function runProbe(netns: string, inCgroup: boolean, plan: ProbePlan): Promise<ProbeEvent[]> {
    const probe = topo.probe(netns, inCgroup, plan);
    const code = await probe.exited;
    expect(
      probe.events.filter((e) => e.event === 'fatal' || e.event === 'timeout'),
      JSON.stringify(probe.events),
    ).toEqual([]);
    expect(code).toBe(0);
    return probe.events;
  }

  const accepted = (events: ProbeEvent[]): ProbeEvent[] => events.filter((e) => e.event === 'accepted');
  const connected = (events: ProbeEvent[]): ProbeEvent[] => events.filter((e) => e.event === 'connected');

  beforeAll(async () => {
    expect(fs.existsSync(addonPath()), 'build the addon first: make -f mk/datapath.mk native').toBe(true);
    ensureBpffs();
    topo.createCgroup();
    const loAddrs = [topo.captureIp, SERVICE_IP, WORKLOAD_IP];
    podNetns = topo.createNetns('pod', loAddrs);
    otherNetns = topo.createNetns('other', loAddrs);
    options = { bpffsDir: topo.bpffsDir, cgroupPath: topo.cgroupPath, captureIp4: topo.captureIp, capturePort: CAPTURE_PORT };
    const dp = await openDatapath(options);
    datapaths.push(dp);
    dp.enrollPod(await netnsCookie(podNetns), WORKLOAD_ID);
    dp.addMeshedDestination(SERVICE_IP, MESHED_PORT);
    dp.addMeshedDestination(WORKLOAD_IP, 0);
  });

  afterAll(async () => {
    for (const dp of datapaths.splice(0)) {
      try {
        dp.destroy();
      } catch {
        // already destroyed by a test; topo.cleanup removes whatever is left
      }
    }
    await topo.cleanup();
  });

  it('attaches one link per program to the test cgroup only, pinned under the bpffs dir', () => {
    const dp = datapaths[0];
    expect(dp.attachInfo.reused).toBe(false);
    expect(dp.attachInfo.links).toHaveLength(EXPECTED_ATTACH_TYPES);
    for (const link of dp.attachInfo.links) {
      expect(link.startsWith(`${topo.bpffsDir}/links/`)).toBe(true);
      expect(fs.existsSync(link)).toBe(true);
    }
    const progs = topo.attachedPrograms();
    expect(progs).toHaveLength(EXPECTED_ATTACH_TYPES);
    expect(new Set(progs.map((p) => p.attach_type)).size).toBe(EXPECTED_ATTACH_TYPES);
  });

  it('reads distinct netns cookies and round-trips pods and destinations through the maps', async () => {
    const dp = datapaths[0];
    const podCookie = await netnsCookie(podNetns);
    const otherCookie = await netnsCookie(otherNetns);
    expect(podCookie).toBeGreaterThan(0n);
    expect(otherCookie).not.toBe(podCookie);
    expect(await netnsCookie(podNetns)).toBe(podCookie);
    expect(dp.enrolledPods()).toEqual([{ cookie: podCookie, workloadId: WORKLOAD_ID }]);

    dp.addMeshedDestination('::ffff:198.18.99.3', 7);
    dp.addMeshedDestination('2001:db8::1', 443);
    const dests = dp.meshedDestinations().sort((a, b) => `${a.ip}:${a.port}`.localeCompare(`${b.ip}:${b.port}`));
    expect(dests).toEqual([
      { ip: '198.18.99.1', port: MESHED_PORT },
      { ip: '198.18.99.2', port: 0 },
      { ip: '198.18.99.3', port: 7 },
      { ip: '2001:db8::1', port: 443 },
    ]);
    dp.removeMeshedDestination('198.18.99.3', 7);
    dp.removeMeshedDestination('2001:db8::1', 443);
    dp.removeMeshedDestination('2001:db8::1', 443); // absent: no error
    expect(dp.meshedDestinations()).toHaveLength(2);

    dp.enrollPod(otherCookie, 7);
    dp.unenrollPod(otherCookie);
    expect(dp.enrolledPods()).toEqual([{ cookie: podCookie, workloadId: WORKLOAD_ID }]);
  });

  it('writes and deletes destinations in batches (BPF_MAP_UPDATE_BATCH / DELETE_BATCH), skipping absent keys', () => {
    const dp = datapaths[0];
    const before = dp.meshedDestinations().length;
    const batch = Array.from({ length: 3000 }, (_, i) => ({ ip: `198.18.${100 + Math.floor(i / 250)}.${(i % 250) + 1}`, port: i % 3 === 0 ? 0 : 1000 + (i % 50) }));
    batch.push({ ip: '2001:db8::7', port: 8443 });
    dp.addMeshedDestinations(batch);
    const key = (d: { ip: string; port: number }) => `${d.ip}|${d.port}`;
    const held = new Set(dp.meshedDestinations().map(key));
    expect(held.size).toBe(before + batch.length);
    for (const d of batch) expect(held.has(key(d)), key(d)).toBe(true);
    dp.addMeshedDestinations(batch.slice(0, 10)); // rewriting present keys is fine (BPF_ANY)
    // Delete half, with absent keys interleaved (never written, or already gone).
    const gone = batch.filter((_, i) => i % 2 === 0);
    const absent = [{ ip: '198.18.250.1', port: 1 }, gone[5]!];
    expect(dp.removeMeshedDestinations([absent[0]!, ...gone.slice(0, 100), absent[0]!, ...gone.slice(100)])).toBe(gone.length);
    expect(dp.removeMeshedDestinations(absent)).toBe(0);
    const left = new Set(dp.meshedDestinations().map(key));
    expect(left.size).toBe(before + batch.length - gone.length);
    for (const d of gone) expect(left.has(key(d))).toBe(false);
    expect(dp.removeMeshedDestinations(batch.filter((_, i) => i % 2 === 1))).toBe(batch.length - gone.length);
    expect(dp.meshedDestinations()).toHaveLength(before);
    // Validation happens before anything is written.
    expect(() =>
      dp.addMeshedDestinations([
        { ip: '198.18.99.9', port: 1 },
        { ip: 'nope', port: 1 },
      ]),
    ).toThrow(TypeError);
    expect(dp.meshedDestinations()).toHaveLength(before);
  });

  it('(a) redirects an enrolled pod in the cgroup to the capture address; the proxy recovers the original destination', async () => {
    const events = await runProbe(podNetns, true, {
      listen: listeners(),
      connect: [
        { ip: SERVICE_IP, port: MESHED_PORT },
        { ip: WORKLOAD_IP, port: ANY_PORT }, // (ip, 0) entry: every port
        { ip: `::ffff:${SERVICE_IP}`, port: MESHED_PORT }, // AF_INET6 socket, v4-mapped destination (connect6)
      ],
      expectAccepts: 3,
    });
    const acc = accepted(events);
    expect(acc.map((e) => e.listener)).toEqual(['capture', 'capture', 'capture']);
    expect(acc.map((e) => e.orig)).toEqual([
      { ip: SERVICE_IP, port: MESHED_PORT },
      { ip: WORKLOAD_IP, port: ANY_PORT },
      { ip: SERVICE_IP, port: MESHED_PORT },
    ]);
    // The listener is in the attached cgroup, so cgroup/getsockopt answers SO_ORIGINAL_DST itself.
    expect(acc.map((e) => (e.raw as { via: string }).via)).toEqual(['getsockopt', 'getsockopt', 'getsockopt']);
    // getpeername4/6: the app sees the original destination, not the capture address.
    expect(connected(events).map((e) => e.remote)).toEqual([`${SERVICE_IP}:${MESHED_PORT}`, `${WORKLOAD_IP}:${ANY_PORT}`, `::ffff:${SERVICE_IP}:${MESHED_PORT}`]);
  });

  it('(b) leaves non-meshed destinations, non-enrolled netns and processes outside the cgroup alone', async () => {
    const unmeshed = await runProbe(podNetns, true, {
      listen: listeners(),
      connect: [{ ip: SERVICE_IP, port: UNMESHED_PORT }],
      expectAccepts: 1,
    });
    expect(accepted(unmeshed).map((e) => [e.listener, e.orig])).toEqual([['service-unmeshed', null]]);
    expect(connected(unmeshed).map((e) => e.remote)).toEqual([`${SERVICE_IP}:${UNMESHED_PORT}`]);

    const notEnrolled = await runProbe(otherNetns, true, {
      listen: listeners(),
      connect: [{ ip: SERVICE_IP, port: MESHED_PORT }],
      expectAccepts: 1,
    });
    expect(accepted(notEnrolled).map((e) => [e.listener, e.orig])).toEqual([['service', null]]);

    const outsideCgroup = await runProbe(podNetns, false, {
      listen: listeners(),
      connect: [{ ip: SERVICE_IP, port: MESHED_PORT }],
      expectAccepts: 1,
    });
    expect(accepted(outsideCgroup).map((e) => e.listener)).toEqual(['service']);

    // Loop guard: a meshed pod dialing the capture address itself is not rewritten.
    const direct = await runProbe(podNetns, true, {
      listen: listeners(),
      connect: [{ ip: topo.captureIp, port: CAPTURE_PORT }],
      expectAccepts: 1,
    });
    expect(accepted(direct).map((e) => [e.listener, e.orig])).toEqual([['capture', null]]);
  });

  it('forgets a stale original destination when the same local port later dials the capture address directly', async () => {
    const localPort = 20000 + Math.floor(Math.random() * 10000);
    const events = await runProbe(podNetns, true, {
      listen: listeners(),
      connect: [
        { ip: SERVICE_IP, port: MESHED_PORT, localPort }, // redirected: recorded under (client ip, localPort)
        { ip: topo.captureIp, port: CAPTURE_PORT, localPort }, // direct, same client address: must not inherit it
      ],
      resetOnAccept: true,
      expectAccepts: 2,
    });
    const acc = accepted(events);
    expect(acc.map((e) => e.peer)).toEqual([`${topo.captureIp}:${localPort}`, `${topo.captureIp}:${localPort}`]);
    expect(acc.map((e) => e.orig)).toEqual([{ ip: SERVICE_IP, port: MESHED_PORT }, null]);
  });

  it('falls back to the pinned map when the proxy socket is outside the attached cgroup', async () => {
    // Proxy in the pod netns but NOT in the cgroup: cgroup/getsockopt does not run for its sockets.
    const proxy = topo.probe(podNetns, false, {
      listen: [{ name: 'capture', ip: topo.captureIp, port: CAPTURE_PORT }],
      connect: [],
      expectAccepts: 1,
    });
    await proxy.listening;
    const client = await runProbe(podNetns, true, { listen: [], connect: [{ ip: SERVICE_IP, port: MESHED_PORT }], expectAccepts: 0 });
    expect(connected(client).map((e) => e.remote)).toEqual([`${SERVICE_IP}:${MESHED_PORT}`]);
    expect(await proxy.exited).toBe(0);
    const acc = accepted(proxy.events);
    expect(acc).toHaveLength(1);
    expect(acc[0].orig).toEqual({ ip: SERVICE_IP, port: MESHED_PORT });
    expect(acc[0].raw).toEqual({ ip: SERVICE_IP, port: MESHED_PORT, via: 'map' });
  });

  it('(c) reopening with the same bpffs dir swaps programs into the pinned links without duplicates', async () => {
    const before = topo.attachedPrograms();
    datapaths[0].close(); // pins keep the links attached after the fds are gone
    expect(topo.attachedPrograms()).toHaveLength(EXPECTED_ATTACH_TYPES);

    const reopened = await openDatapath(options);
    datapaths.push(reopened);
    expect(reopened.attachInfo.reused).toBe(true);
    const after = topo.attachedPrograms();
    expect(after).toHaveLength(EXPECTED_ATTACH_TYPES);
    const perType = new Map<string, number>();
    for (const p of after) perType.set(p.attach_type, (perType.get(p.attach_type) ?? 0) + 1);
    expect([...perType.values()].every((n) => n === 1)).toBe(true);
    expect(new Set(after.map((p) => p.attach_type))).toEqual(new Set(before.map((p) => p.attach_type)));
    // New program ids: the programs were replaced in place, not left as they were.
    const beforeIds = new Set(before.map((p) => p.id));
    expect(after.every((p) => !beforeIds.has(p.id))).toBe(true);
    // Pinned maps were reused: enrollment and destinations survived the restart.
    expect(reopened.enrolledPods()).toEqual([{ cookie: await netnsCookie(podNetns), workloadId: WORKLOAD_ID }]);
    expect(reopened.meshedDestinations()).toHaveLength(2);

    const events = await runProbe(podNetns, true, {
      listen: listeners(),
      connect: [{ ip: SERVICE_IP, port: MESHED_PORT }],
      expectAccepts: 1,
    });
    expect(accepted(events).map((e) => [e.listener, e.orig])).toEqual([['capture', { ip: SERVICE_IP, port: MESHED_PORT }]]);
  });

  it('replaces a pinned link that points at another cgroup instead of duplicating it', async () => {
    // A second pin dir whose links are first attached to a child cgroup, then reopened for the test cgroup.
    const child = topo.createChildCgroup('moved');
    const pins = topo.extraBpffsDir('moved');
    const first = await openDatapath({ ...options, bpffsDir: pins, cgroupPath: child, captureIp6: '2001:db8::7' });
    datapaths.push(first);
    first.close();
    expect(topo.attachedPrograms(child)).toHaveLength(EXPECTED_ATTACH_TYPES);
    const moved = await openDatapath({ ...options, bpffsDir: pins });
    datapaths.push(moved);
    expect(moved.attachInfo.reused).toBe(false);
    expect(topo.attachedPrograms(child)).toEqual([]);
    expect(topo.attachedPrograms()).toHaveLength(2 * EXPECTED_ATTACH_TYPES); // ours + the moved set
    moved.destroy();
    expect(topo.attachedPrograms()).toHaveLength(EXPECTED_ATTACH_TYPES);
    expect(fs.existsSync(pins)).toBe(false);
    datapaths.splice(datapaths.indexOf(first), 2); // both done; the reopened main datapath is last again
  });

  it('(d) rejects bad input with errors that name the resource', async () => {
    const missingCgroup = `${topo.cgroupPath}-missing`;
    await expect(openDatapath({ ...options, cgroupPath: missingCgroup })).rejects.toThrow(`open cgroup ${missingCgroup}: No such file or directory`);
    await expect(openDatapath({ ...options, cgroupPath: missingCgroup })).rejects.toBeInstanceOf(SmeshError);
    await expect(openDatapath({ ...options, cgroupPath: '/tmp' })).rejects.toThrow('/tmp is not on a cgroup2 filesystem');
    const notBpffs = `/tmp/${topo.prefix}-not-bpffs`;
    try {
      await expect(openDatapath({ ...options, bpffsDir: notBpffs })).rejects.toThrow(`bpffs dir ${notBpffs} is not on a bpf filesystem`);
    } finally {
      fs.rmSync(notBpffs, { recursive: true, force: true });
    }
    const missingNetns = `/run/netns/${topo.prefix}-missing`;
    await expect(netnsCookie(missingNetns)).rejects.toThrow(`open netns ${missingNetns}: No such file or directory`);
    await expect(netnsCookie('/proc/self/status')).rejects.toThrow('setns into /proc/self/status');

    expect(() => openDatapath({ ...options, captureIp4: '::1' })).toThrow(TypeError);
    expect(() => openDatapath({ ...options, capturePort: 70000 })).toThrow(TypeError);
    expect(() => openDatapath({ ...options, cgroupPath: '' })).toThrow(TypeError);
    expect(() => netnsCookie('')).toThrow(TypeError);
    const dp = datapaths[datapaths.length - 1];
    expect(() => dp.addMeshedDestination('198.18.300.1', 80)).toThrow(TypeError);
    expect(() => dp.addMeshedDestination(SERVICE_IP, -1)).toThrow(TypeError);
    expect(() => dp.enrollPod(-1n, 1)).toThrow(TypeError);
    expect(() => dp.enrollPod(1n, 1.5)).toThrow(TypeError);
    // Failed opens attached nothing extra.
    expect(topo.attachedPrograms()).toHaveLength(EXPECTED_ATTACH_TYPES);
  });

  it('destroy() detaches every program and removes the pins', () => {
    const dp = datapaths.pop() as Datapath;
    dp.destroy();
    expect(topo.attachedPrograms()).toEqual([]);
    expect(fs.existsSync(topo.bpffsDir)).toBe(false);
    expect(() => dp.enrolledPods()).toThrow('datapath is closed');
  });
});
