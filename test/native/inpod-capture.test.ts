// In-pod plaintext capture on the real kernel, IPv4 and IPv6: the sk_lookup program hands plaintext to a PERMISSIVE pod port to the listener of the pod address's own family (root only).
import * as fs from 'node:fs';
import * as net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { netnsListener, openDatapath, type Datapath } from '../../agent/native/datapath';
import { addonPath } from '../../agent/native/raw';
import { ensureBpffs, isRoot, run, TestTopology, type ProbeEvent, type ProbePlan } from './topology';

const CAPTURE_PORT = 15001;
const APP_PORT = 9091;
const POD4 = '198.18.97.10';
const CLIENT4 = '198.18.97.20';
// ULA addresses (fd00::/8) on the test namespace's lo only: this traffic never leaves the namespace.
const POD6 = 'fd00:5345:97::10';
const CLIENT6 = 'fd00:5345:97::20';
const HELD_WAIT_MS = 1500;

const SUITE = isRoot ? 'native in-pod plaintext capture (sk_lookup, IPv4 and IPv6)' : 'native in-pod plaintext capture (SKIPPED: needs root for BPF, cgroups, netns)';

interface Accepted {
  readonly family: 4 | 6;
  readonly local: string;
  readonly remote: string;
}

describe.skipIf(!isRoot)(SUITE, () => {
  const topo = new TestTopology();
  let dp: Datapath | undefined;
  let podNetns = '';
  let capturePin: { fd: number; pin: string } | undefined;
  const servers: net.Server[] = [];
  const fds: Record<4 | 6, number> = { 4: -1, 6: -1 };
  const accepted: Accepted[] = [];

  async function serve(family: 4 | 6): Promise<void> {
    const fd = await netnsListener(podNetns, family);
    fds[family] = fd;
    const server = net.createServer((sock) => {
      accepted.push({ family, local: `${sock.localAddress}:${sock.localPort}`, remote: String(sock.remoteAddress) });
      sock.end();
    });
    servers.push(server);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ fd }, () => resolve());
    });
  }

  /** The pod's app listens on both addresses (in the test cgroup, where the STRICT/held check runs); a client outside the mesh connects. */
  async function connectFrom(connect: ProbePlan['connect'], appAccepts: number): Promise<{ app: ProbeEvent[]; client: ProbeEvent[] }> {
    // An app that expects nothing waits for one accept that never comes and leaves on its own timeout (after the client).
    const app = topo.probe(podNetns, true, {
      listen: [
        { name: 'app4', ip: POD4, port: APP_PORT },
        { name: 'app6', ip: POD6, port: APP_PORT },
      ],
      connect: [],
      expectAccepts: Math.max(appAccepts, 1),
      timeoutMs: appAccepts === 0 ? HELD_WAIT_MS + 1500 : 6000,
    });
    await app.listening;
    const client = topo.probe(podNetns, false, { listen: [], connect, expectAccepts: 0, timeoutMs: 6000 });
    await client.exited;
    await app.exited;
    return { app: app.events, client: client.events };
  }

  const outcome = (events: ProbeEvent[]): string[] =>
    events.filter((e) => e.event === 'connected' || e.event === 'connect-error').map((e) => `${String(e.target)} ${e.event === 'connected' ? 'connected' : String(e.code)}`);

  beforeAll(async () => {
    expect(fs.existsSync(addonPath()), 'build the addon first: make native').toBe(true);
    ensureBpffs();
    topo.createCgroup();
    podNetns = topo.createNetns('pod', [topo.captureIp, POD4, CLIENT4]);
    const name = podNetns.slice('/run/netns/'.length);
    for (const a of [POD6, CLIENT6]) run('ip', ['-n', name, 'addr', 'add', `${a}/128`, 'dev', 'lo', 'nodad']);
    // The verifier must accept the sk_lookup program's IPv6 branch: loading it is the first check.
    dp = await openDatapath({ bpffsDir: topo.bpffsDir, cgroupPath: topo.cgroupPath, captureIp4: topo.captureIp, capturePort: CAPTURE_PORT });
    for (const ip of [POD4, POD6]) dp.setInboundMode(ip, 0, 'PERMISSIVE');
    await serve(4);
    await serve(6);
    capturePin = dp.attachInboundCapture(podNetns);
  });

  afterAll(async () => {
    for (const s of servers) s.close();
    try {
      dp?.destroy();
    } catch {
      // topo.cleanup removes whatever is left
    }
    await topo.cleanup();
  });

  it('makes an IPv6-only listener on [::1] inside the namespace', async () => {
    const fd = await netnsListener(podNetns, 6);
    const s = net.createServer();
    await new Promise<void>((resolve) => s.listen({ fd }, () => resolve()));
    const addr = s.address() as net.AddressInfo;
    s.close();
    expect(addr.family).toBe('IPv6');
    expect(addr.address).toBe('::1');
    expect(() => netnsListener(podNetns, 5 as 4)).toThrow(/family must be 4 or 6/);
  });

  it('hands IPv6 and IPv4 plaintext to the listener of the pod address family, with the dialled address and the client as the socket ends', async () => {
    dp!.setCaptureListener(POD4, fds[4]);
    dp!.setCaptureListener(POD6, fds[6]);
    dp!.holdPlaintext(POD4);
    dp!.holdPlaintext(POD6);
    expect(dp!.captureListeners().sort()).toEqual([POD4, POD6].sort());
    const before = dp!.inboundCounters().plaintextCaptured ?? 0;
    accepted.length = 0;
    const { app, client } = await connectFrom(
      [
        { ip: POD6, port: APP_PORT, localIp: CLIENT6, connectTimeoutMs: 3000 },
        { ip: POD4, port: APP_PORT, localIp: CLIENT4, connectTimeoutMs: 3000 },
      ],
      0,
    );
    expect(outcome(client)).toEqual([`${POD6}:${APP_PORT} connected`, `${POD4}:${APP_PORT} connected`]);
    expect(app.filter((e) => e.event === 'accepted')).toEqual([]);
    expect(accepted).toEqual([
      { family: 6, local: `${POD6}:${APP_PORT}`, remote: CLIENT6 },
      { family: 4, local: `${POD4}:${APP_PORT}`, remote: CLIENT4 },
    ]);
    expect((dp!.inboundCounters().plaintextCaptured ?? 0) - before).toBe(2);
  });

  it('lets trusted IPv6 sources (the pod itself, ::1) through to the app uncaptured', async () => {
    accepted.length = 0;
    const { app, client } = await connectFrom(
      [
        { ip: POD6, port: APP_PORT, localIp: POD6 },
        { ip: POD6, port: APP_PORT, localIp: '::1' },
      ],
      2,
    );
    expect(outcome(client)).toEqual([`${POD6}:${APP_PORT} connected`, `${POD6}:${APP_PORT} connected`]);
    expect(app.filter((e) => e.event === 'accepted').map((e) => e.listener)).toEqual(['app6', 'app6']);
    expect(accepted).toEqual([]);
  });

  it('holds IPv6 plaintext back (no SYN reaches the app, no RST) while no listener is registered, and captures it again once one is', async () => {
    dp!.removeCaptureListener(POD6);
    const before = dp!.inboundCounters();
    const { app, client } = await connectFrom([{ ip: POD6, port: APP_PORT, localIp: CLIENT6, connectTimeoutMs: HELD_WAIT_MS }], 0);
    expect(outcome(client)).toEqual([`${POD6}:${APP_PORT} PROBE_TIMEOUT`]);
    expect(app.filter((e) => e.event === 'accepted')).toEqual([]);
    expect((dp!.inboundCounters().plaintextUncaptured ?? 0) - (before.plaintextUncaptured ?? 0)).toBeGreaterThanOrEqual(1);
    dp!.setCaptureListener(POD6, fds[6]);
    accepted.length = 0;
    const again = await connectFrom([{ ip: POD6, port: APP_PORT, localIp: CLIENT6, connectTimeoutMs: 3000 }], 0);
    expect(outcome(again.client)).toEqual([`${POD6}:${APP_PORT} connected`]);
    expect(accepted.map((a) => a.family)).toEqual([6]);
  });

  it('an IPv4 listener registered for an IPv6 address is refused by the kernel (wrong family): the SYN is held, never given to the app', async () => {
    dp!.setCaptureListener(POD6, fds[4]);
    const before = dp!.inboundCounters().plaintextUncaptured ?? 0;
    const { app, client } = await connectFrom([{ ip: POD6, port: APP_PORT, localIp: CLIENT6, connectTimeoutMs: HELD_WAIT_MS }], 0);
    expect(outcome(client)).toEqual([`${POD6}:${APP_PORT} PROBE_TIMEOUT`]);
    expect(app.filter((e) => e.event === 'accepted')).toEqual([]);
    expect((dp!.inboundCounters().plaintextUncaptured ?? 0) - before).toBeGreaterThanOrEqual(1);
    dp!.setCaptureListener(POD6, fds[6]);
    expect(capturePin?.pin).toMatch(/inpod-\d+$/);
  });
});
