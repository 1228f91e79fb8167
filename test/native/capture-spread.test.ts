// Capture tuples (issue 12 item 2) on the real kernel: one capture tuple caps a pod at its ephemeral port range of
// client-closed connections (TIME_WAIT); spread over many tuples and steered into one listener by the node-netns
// sk_lookup program, the same pod goes well beyond it, and the proxy still recovers every original destination.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { netnsCookie, netnsListener, openDatapath, originalDestination, socketFd, type Datapath, type DatapathOptions } from '../../agent/native/datapath';
import { addonPath } from '../../agent/native/raw';
import { ensureBpffs, isRoot, run, TestTopology } from './topology';

const CAPTURE_IP = '169.254.7.1';
const CAPTURE_PORT = 15001;
const SPREAD = 64;
const WORKLOAD_ID = 7;
/** Meshed service addresses (never reached: every connection to them is redirected). */
const SERVICES = ['198.19.7.1', '198.19.7.2', '198.19.7.3'].map((ip) => ({ ip, port: 80 }));
/** The pods' ephemeral port range, shrunk from the default 28,232 ports so that a run stays short. */
const PORT_RANGE = { low: 40000, high: 41999 };
const PORTS = PORT_RANGE.high - PORT_RANGE.low + 1;
const TSX = path.join(__dirname, '..', '..', 'node_modules', '.bin', 'tsx');
const CHURN = path.join(__dirname, 'fixtures', 'churn-client.ts');

interface ChurnResult {
  completed: number;
  perTarget: number[];
  failure: { code?: string; message: string; index: number } | null;
  timedOut: boolean;
}

const SUITE = isRoot ? 'capture tuples (real BPF: connect4 spread + node-netns sk_lookup)' : 'capture tuples (SKIPPED: needs root for BPF, cgroups, netns)';

describe.skipIf(!isRoot)(SUITE, () => {
  const topo = new TestTopology();
  const datapaths: Datapath[] = [];
  let nodeNetns = '';
  const pods: Record<'single' | 'spread', string> = { single: '', spread: '' };
  let server: net.Server | undefined;
  let listenerFd = -1;
  /** What the proxy side saw: the local address of each accepted connection and its original destination. */
  const accepted: Array<{ local: string; orig: string; via: 'map' | 'none' }> = [];

  /** A pod netns wired to the node netns by a veth pair (pod 198.18.250.<base+2>, node side <base+1>, /30). */
  function wirePod(name: string, base: number): string {
    const podPath = topo.createNetns(name, []);
    const nodeName = path.basename(nodeNetns);
    const podName = path.basename(podPath);
    const nodeSide = `v${base}`;
    run('ip', ['-n', nodeName, 'link', 'add', nodeSide, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', podName]);
    run('ip', ['-n', nodeName, 'addr', 'add', `198.18.250.${base + 1}/30`, 'dev', nodeSide]);
    run('ip', ['-n', nodeName, 'link', 'set', nodeSide, 'up']);
    run('ip', ['-n', podName, 'addr', 'add', `198.18.250.${base + 2}/30`, 'dev', 'eth0']);
    run('ip', ['-n', podName, 'link', 'set', 'eth0', 'up']);
    run('ip', ['-n', podName, 'route', 'add', 'default', 'via', `198.18.250.${base + 1}`]);
    run('ip', ['netns', 'exec', podName, 'sysctl', '-q', '-w', `net.ipv4.ip_local_port_range=${PORT_RANGE.low} ${PORT_RANGE.high}`]);
    return podPath;
  }

  function sysctl(netnsPath: string, key: string): string {
    return run('ip', ['netns', 'exec', path.basename(netnsPath), 'sysctl', '-n', key])
      .trim()
      .replace(/\s+/g, ' ');
  }

  /** Runs the churn client in `podNetns`, inside the test cgroup (where connect4 runs). */
  function churn(podNetns: string, targets: Array<{ ip: string; port: number }>, count: number): Promise<ChurnResult> {
    const plan = JSON.stringify({ targets, count, concurrency: 8, timeoutMs: 90_000 });
    const script = 'echo $$ > "$1" || exit 97; exec nsenter --net="$2" -- "$3" "$4" "$5"';
    const child = spawn('sh', ['-c', script, 'sh', path.join(topo.cgroupPath, 'cgroup.procs'), podNetns, TSX, CHURN, plan], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (err += c.toString()));
    return new Promise((resolve, reject) => {
      child.once('exit', (code) => {
        const line = out.trim().split('\n').pop() ?? '';
        if (code !== 0 || !line) reject(new Error(`churn client exited ${String(code)}: ${err.slice(-2000)}`));
        else resolve(JSON.parse(line) as ChurnResult);
      });
    });
  }

  function timeWaitCount(podNetns: string): number {
    const out = run('ip', ['netns', 'exec', path.basename(podNetns), 'ss', '-Htan', 'state', 'time-wait']);
    return out.split('\n').filter((l) => l.trim()).length;
  }

  async function open(spread: number): Promise<Datapath> {
    const options: DatapathOptions = { bpffsDir: topo.bpffsDir, cgroupPath: topo.cgroupPath, captureIp4: CAPTURE_IP, capturePort: CAPTURE_PORT, captureNetns: nodeNetns, captureSpread: spread };
    const dp = await openDatapath(options);
    datapaths.push(dp);
    dp.setOutboundListener(listenerFd);
    return dp;
  }

  beforeAll(async () => {
    expect(fs.existsSync(addonPath()), 'build the addon first: make native').toBe(true);
    ensureBpffs();
    topo.createCgroup();
    nodeNetns = topo.createNetns('node', [CAPTURE_IP]);
    pods.single = wirePod('pod-a', 0);
    pods.spread = wirePod('pod-b', 4);
    // The proxy's listener: made in the node netns, bound to 127.0.0.1:<any>; the steering program hands it every tuple.
    listenerFd = await netnsListener(nodeNetns);
    server = net.createServer((sock) => {
      let orig = 'unknown';
      let via: 'map' | 'none' = 'none';
      try {
        // This process is outside the test cgroup: the lookup goes to the pinned map by (peer, local) address.
        const o = originalDestination(socketFd(sock), topo.bpffsDir);
        if (o) {
          orig = `${o.ip}:${o.port}`;
          via = 'map';
        }
      } catch {
        // counted as unknown
      }
      accepted.push({ local: `${sock.localAddress}:${sock.localPort}`, orig, via });
      sock.on('error', () => undefined);
      sock.resume(); // the client closes first; answering its FIN makes this end close second (no TIME_WAIT here)
    });
    await new Promise<void>((resolve) => server!.listen({ fd: listenerFd }, resolve));
  });

  afterAll(async () => {
    if (server) await new Promise<void>((resolve) => server!.close(() => resolve()));
    for (const dp of datapaths.splice(0)) {
      try {
        dp.destroy();
      } catch {
        // already destroyed; topo.cleanup removes what is left
      }
    }
    await topo.cleanup();
  });

  it('one capture tuple: connect() fails with EADDRNOTAVAIL once the pod port range is in TIME_WAIT', async () => {
    // Kernel defaults in the pod but for the shrunk port range: TIME_WAIT reuse for loopback only.
    expect(sysctl(pods.single, 'net.ipv4.tcp_tw_reuse')).toBe('2');
    expect(sysctl(pods.single, 'net.ipv4.ip_local_port_range')).toBe(`${PORT_RANGE.low} ${PORT_RANGE.high}`);
    const dp = await open(1);
    expect(dp.captureSpread).toBe(1);
    dp.enrollPod(await netnsCookie(pods.single), WORKLOAD_ID);
    dp.enrollPod(await netnsCookie(pods.spread), WORKLOAD_ID);
    dp.addMeshedDestinations(SERVICES);

    accepted.length = 0;
    const r = await churn(pods.single, [SERVICES[0]!], 3 * PORTS);
    expect(r.timedOut).toBe(false);
    expect(r.failure?.code, JSON.stringify(r.failure)).toBe('EADDRNOTAVAIL');
    // About every port of the range was used once, then none was free towards the one capture tuple (the kernel may
    // hand out a port or two more than the range, e.g. one freed early, never a second range's worth).
    expect(r.completed).toBeGreaterThan(0.9 * PORTS);
    expect(r.completed).toBeLessThan(1.05 * PORTS);
    expect(timeWaitCount(pods.single)).toBeGreaterThan(0.9 * PORTS);
    expect(new Set(accepted.map((a) => a.local))).toEqual(new Set([`${CAPTURE_IP}:${CAPTURE_PORT}`]));
  });

  it(`${SPREAD} capture tuples: three port ranges of client-closed connections, to one service and to several, all succeed`, async () => {
    const dp = await open(SPREAD); // an agent restart with the new setting: programs swapped into the pinned links
    expect(dp.captureSpread).toBe(SPREAD);
    expect(dp.attachInfo.reused).toBe(true);
    expect(run('ip', ['-n', path.basename(nodeNetns), 'route', 'show', 'table', 'local', '169.254.7.0/24'])).toContain('local 169.254.7.0/24 dev lo');

    accepted.length = 0;
    // One hot service (the bench's `Connection: close` case): per connection, not per destination, is what spreads it.
    const one = await churn(pods.spread, [SERVICES[0]!], 3 * PORTS);
    expect(one.failure, JSON.stringify(one.failure)).toBeNull();
    expect(one.timedOut).toBe(false);
    expect(one.completed).toBe(3 * PORTS);
    const many = await churn(pods.spread, SERVICES, 3 * PORTS);
    expect(many.failure, JSON.stringify(many.failure)).toBeNull();
    expect(many.completed).toBe(3 * PORTS);
    expect(many.perTarget).toEqual([PORTS, PORTS, PORTS]);
    // Well beyond one tuple's space, all of it in this pod's TIME_WAIT at once.
    expect(timeWaitCount(pods.spread)).toBeGreaterThan(4 * PORTS);

    // The proxy side: every connection arrived at the one listener through some capture tuple, spread over all of them,
    // and its original destination came back from the 4-tuple-keyed map.
    expect(accepted).toHaveLength(6 * PORTS);
    const tuples = new Set(accepted.map((a) => a.local));
    expect(tuples.size).toBe(SPREAD);
    for (const t of tuples) {
      const [ip, port] = t.split(':');
      const last = Number(ip!.split('.')[3]);
      expect(ip!.startsWith('169.254.7.') && last >= 1 && last <= SPREAD && port === String(CAPTURE_PORT), t).toBe(true);
    }
    const byOrig = new Map<string, number>();
    for (const a of accepted) byOrig.set(a.orig, (byOrig.get(a.orig) ?? 0) + 1);
    expect(Object.fromEntries(byOrig)).toEqual({
      [`${SERVICES[0]!.ip}:80`]: 4 * PORTS,
      [`${SERVICES[1]!.ip}:80`]: PORTS,
      [`${SERVICES[2]!.ip}:80`]: PORTS,
    });
  });

  it('destroy() removes the steering link and the capture route it added', () => {
    const dp = datapaths[datapaths.length - 1]!;
    dp.destroy();
    datapaths.length = 0;
    expect(fs.existsSync(path.join(topo.bpffsDir, 'links', 'capture-lookup'))).toBe(false);
    expect(run('ip', ['-n', path.basename(nodeNetns), 'route', 'show', 'table', 'local', '169.254.7.0/24']).trim()).toBe('');
    // The operator's own capture address stays.
    expect(run('ip', ['-n', path.basename(nodeNetns), 'addr', 'show', 'dev', 'lo'])).toContain(`${CAPTURE_IP}/32`);
  });
});
