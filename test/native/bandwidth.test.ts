// Per-pod bandwidth pacing on the real kernel (root only): a "pod" namespace joined to a "node" namespace by a veth pair; iperf3 measures TCP throughput each way with and without a 50 Mbit/s limit (EDT stamps + fq).
import { execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { detachBandwidth, openDatapath, podDevices, type BandwidthMode, type Datapath, type PodDevices } from '../../agent/native/datapath';
import { addonPath } from '../../agent/native/raw';
import { ensureBpffs, isRoot, run, TestTopology } from './topology';

const POD = '198.18.98.10';
const NODE = '198.18.98.1';
const LIMIT = 50e6;
const TOLERANCE = 0.1;
const PORT = 5201;
/** Seconds measured after one omitted second (slow start, the first burst). */
const SECONDS = 3;

const SUITE = isRoot ? 'native per-pod bandwidth pacing (tc EDT + fq)' : 'native per-pod bandwidth pacing (SKIPPED: needs root for BPF, netns, tc)';

function hasIperf3(): boolean {
  try {
    execFileSync('sh', ['-c', 'command -v iperf3'], { stdio: 'pipe' });
    return true;
  } catch {
    return false;
  }
}

/** TCP goodput (bits/s, receiver side) from a client in `fromNs` to an iperf3 server on `serverIp` in `serverNs`. */
async function measure(fromNs: string, serverNs: string, serverIp: string): Promise<number> {
  const server = spawn('nsenter', [`--net=${serverNs}`, '--', 'iperf3', '-s', '-1', '-B', serverIp, '-p', String(PORT), '--forceflush'], { stdio: ['ignore', 'pipe', 'pipe'] });
  try {
    await new Promise<void>((resolve, reject) => {
      let out = '';
      const timer = setTimeout(() => reject(new Error(`iperf3 server in ${serverNs} did not start: ${out}`)), 10_000);
      server.stdout.on('data', (c: Buffer) => {
        out += c.toString();
        if (out.includes('Server listening')) {
          clearTimeout(timer);
          resolve();
        }
      });
      server.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`iperf3 server exited with ${String(code)}: ${out}`));
      });
    });
    const json = execFileSync('nsenter', [`--net=${fromNs}`, '--', 'iperf3', '-c', serverIp, '-p', String(PORT), '-t', String(SECONDS), '-O', '1', '-J'], {
      encoding: 'utf8',
      timeout: (SECONDS + 10) * 1000,
    });
    const report = JSON.parse(json) as { end: { sum_received: { bits_per_second: number } } };
    return report.end.sum_received.bits_per_second;
  } finally {
    server.kill('SIGKILL');
  }
}

function rootQdisc(netns: string, dev: string): string {
  const name = netns.slice('/run/netns/'.length);
  return run('tc', ['-n', name, 'qdisc', 'show', 'dev', dev, 'root']).trim();
}

describe.skipIf(!isRoot)(SUITE, () => {
  it('iperf3 is installed (scripts/install-deps.sh installs it; CI must not skip these measurements)', () => {
    expect(hasIperf3()).toBe(true);
  });

  const topo = new TestTopology();
  let dp: Datapath | undefined;
  let podNs = '';
  let nodeNs = '';
  let dev: PodDevices;

  beforeAll(async () => {
    expect(fs.existsSync(addonPath()), 'build the addon first: make native').toBe(true);
    ensureBpffs();
    topo.createCgroup();
    podNs = topo.createNetns('bwpod', []);
    nodeNs = topo.createNetns('bwnode', []);
    const pod = podNs.slice('/run/netns/'.length);
    const node = nodeNs.slice('/run/netns/'.length);
    run('ip', ['-n', node, 'link', 'add', 'hv0', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', pod]);
    run('ip', ['-n', node, 'addr', 'add', `${NODE}/24`, 'dev', 'hv0']);
    run('ip', ['-n', node, 'link', 'set', 'hv0', 'up']);
    run('ip', ['-n', pod, 'addr', 'add', `${POD}/24`, 'dev', 'eth0']);
    run('ip', ['-n', pod, 'link', 'set', 'eth0', 'up']);
    dp = await openDatapath({ bpffsDir: topo.bpffsDir, cgroupPath: topo.cgroupPath, captureIp4: topo.captureIp, capturePort: 15001 });
    dev = podDevices(podNs, POD, nodeNs);
  }, 30_000);

  afterAll(async () => {
    try {
      dp?.destroy();
    } finally {
      await topo.cleanup();
    }
  });

  it('finds the pod interface and its host-side veth peer', () => {
    expect(dev.ifname).toBe('eth0');
    expect(dev.peerIfname).toBe('hv0');
    expect(dev.ifindex).toBeGreaterThan(0);
    expect(dev.peerIfindex).toBeGreaterThan(0);
    // Looked for in a namespace that does not hold the peer: none.
    expect(podDevices(podNs, POD, podNs).peerIfindex).toBe(0);
    expect(() => podDevices(podNs, '198.18.98.99', nodeNs)).toThrow(/no interface .* holds the pod address/);
  });

  it('paces egress (pod → node) to the limit, and only while attached with an entry', async () => {
    const free = await measure(podNs, nodeNs, NODE);
    expect(free).toBeGreaterThan(LIMIT * 5);

    dp!.setBandwidth(POD, 'egress', LIMIT);
    const mode: BandwidthMode = dp!.attachBandwidth('egress', podNs, dev.ifindex, LIMIT);
    // Attaching twice replaces in place (an agent restart re-applies).
    expect(dp!.attachBandwidth('egress', podNs, dev.ifindex, LIMIT)).toBe(mode);
    // A kernel without sch_fq (this test machine's may lack it) is shaped by tbf instead of paced.
    expect(rootQdisc(podNs, 'eth0')).toMatch(mode === 'edt' ? /^qdisc fq / : /^qdisc tbf .*rate 50Mbit/);
    expect(dp!.bandwidths()).toEqual([{ ip: POD, direction: 'egress', bitsPerSecond: LIMIT, dropped: 0 }]);
    const paced = await measure(podNs, nodeNs, NODE);
    expect(paced).toBeGreaterThan(LIMIT * (1 - TOLERANCE));
    expect(paced).toBeLessThan(LIMIT * (1 + TOLERANCE));
    // Traffic towards the pod is not limited by an egress entry.
    expect(await measure(nodeNs, podNs, POD)).toBeGreaterThan(LIMIT * 5);

    // Removing the annotation: entry removed and the device restored.
    dp!.removeBandwidth(POD, 'egress');
    detachBandwidth(podNs, dev.ifindex);
    detachBandwidth(podNs, dev.ifindex); // absent is fine
    expect(rootQdisc(podNs, 'eth0')).not.toMatch(/fq|tbf/);
    expect(await measure(podNs, nodeNs, NODE)).toBeGreaterThan(LIMIT * 5);
  }, 60_000);

  it('paces ingress (node → pod) on the host-side veth, and stops when removed', async () => {
    dp!.setBandwidth(POD, 'ingress', LIMIT);
    const mode = dp!.attachBandwidth('ingress', nodeNs, dev.peerIfindex, LIMIT);
    expect(rootQdisc(nodeNs, 'hv0')).toMatch(mode === 'edt' ? /^qdisc fq / : /^qdisc tbf /);
    const paced = await measure(nodeNs, podNs, POD);
    expect(paced).toBeGreaterThan(LIMIT * (1 - TOLERANCE));
    expect(paced).toBeLessThan(LIMIT * (1 + TOLERANCE));
    // The pod's own sending is not limited by an ingress entry.
    expect(await measure(podNs, nodeNs, NODE)).toBeGreaterThan(LIMIT * 5);

    // A rate change: one map write for the attached program (edt); tbf is attached again with the new rate.
    dp!.setBandwidth(POD, 'ingress', LIMIT * 2);
    if (mode === 'tbf') dp!.attachBandwidth('ingress', nodeNs, dev.peerIfindex, LIMIT * 2);
    const doubled = await measure(nodeNs, podNs, POD);
    expect(doubled).toBeGreaterThan(2 * LIMIT * (1 - TOLERANCE));
    expect(doubled).toBeLessThan(2 * LIMIT * (1 + TOLERANCE));

    // With departure-time pacing the map entry alone decides: removed, the attached program lets packets go.
    dp!.removeBandwidth(POD, 'ingress');
    if (mode === 'edt') expect(await measure(nodeNs, podNs, POD)).toBeGreaterThan(LIMIT * 5);
    detachBandwidth(nodeNs, dev.peerIfindex);
    expect(rootQdisc(nodeNs, 'hv0')).not.toMatch(/fq|tbf/);
    expect(await measure(nodeNs, podNs, POD)).toBeGreaterThan(LIMIT * 5);
  }, 60_000);
});
