// The inbound capture decision of the real sk_lookup program, table-driven with BPF_PROG_TEST_RUN: which lookups it hands to which agent listener and which it leaves to the pod (root only).
import * as fs from 'node:fs';
import * as net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatapath, socketCookie, socketFd, type Datapath } from '../../agent/native/datapath';
import { addonPath } from '../../agent/native/raw';
import { ensureBpffs, isRoot, TestTopology } from './topology';

const PROGRAM = 'smesh_inbound_lookup';
const APP_PORT = 8080;
// Addresses only written into maps and synthetic lookups: no packet is sent to any of them.
const POD = '198.18.98.10';
const POD_STRICT = '198.18.98.11';
const POD_NO_LISTENER = '198.18.98.12';
const NOT_MESHED = '198.18.98.13';
const POD6 = 'fd00:5345:98::10';
const CLIENT = '198.18.98.20';
const CLIENT6 = 'fd00:5345:98::20';
const PROBE_SOURCE = '198.18.98.30';

type Expect = 'plaintext' | 'hbone' | 'plaintext6' | 'none';

interface Case {
  readonly name: string;
  readonly remote: string;
  readonly local: string;
  readonly localPort: number;
  readonly protocol?: 'tcp' | 'udp';
  readonly expect: Expect;
}

describe.skipIf(!isRoot)('inbound capture decision (sk_lookup smesh_inbound_lookup, BPF_PROG_TEST_RUN)', () => {
  const topo = new TestTopology();
  let dp: Datapath | undefined;
  const servers: net.Server[] = [];
  const cookies: Partial<Record<Exclude<Expect, 'none'>, bigint>> = {};

  async function listener(host: string): Promise<number> {
    const s = net.createServer();
    servers.push(s);
    await new Promise<void>((resolve, reject) => {
      s.once('error', reject);
      s.listen(0, host, () => resolve());
    });
    return socketFd(s as unknown as net.Socket);
  }

  beforeAll(async () => {
    expect(fs.existsSync(addonPath()), 'build the addon first: make native').toBe(true);
    ensureBpffs();
    topo.createCgroup();
    dp = await openDatapath({ bpffsDir: topo.bpffsDir, cgroupPath: topo.cgroupPath, captureIp4: topo.captureIp, capturePort: 15001 });
    for (const ip of [POD, POD_NO_LISTENER, POD6]) dp.setInboundMode(ip, 0, 'PERMISSIVE');
    dp.setInboundMode(POD_STRICT, 0, 'STRICT');
    dp.setInboundMode(PROBE_SOURCE, 0, 'TRUSTED_SOURCE');
    const plain = await listener('127.0.0.1');
    const hbone = await listener('127.0.0.1');
    const plain6 = await listener('::1');
    dp.setCaptureListener(POD, plain, 'plaintext');
    dp.setCaptureListener(POD, hbone, 'hbone');
    dp.setCaptureListener(POD6, plain6, 'plaintext');
    cookies.plaintext = socketCookie(plain);
    cookies.hbone = socketCookie(hbone);
    cookies.plaintext6 = socketCookie(plain6);
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

  const cases: Case[] = [
    { name: 'plaintext from outside the mesh to a PERMISSIVE pod port → the plaintext listener', remote: CLIENT, local: POD, localPort: APP_PORT, expect: 'plaintext' },
    { name: 'any port of that pod (port 0 mode covers them all)', remote: CLIENT, local: POD, localPort: 9999, expect: 'plaintext' },
    { name: 'TCP to <pod IP>:15008 → the pod-addressed HBONE listener', remote: CLIENT, local: POD, localPort: 15008, expect: 'hbone' },
    { name: 'the pod dialling its own 15008 → left to the pod', remote: POD, local: POD, localPort: 15008, expect: 'none' },
    { name: 'the pod dialling itself → trusted, left to the pod', remote: POD, local: POD, localPort: APP_PORT, expect: 'none' },
    { name: 'the node capture address (the proxy) → trusted', remote: '<capture>', local: POD, localPort: APP_PORT, expect: 'none' },
    { name: 'loopback source → trusted', remote: '127.0.0.1', local: POD, localPort: APP_PORT, expect: 'none' },
    { name: 'a configured trusted source (probe address) → trusted', remote: PROBE_SOURCE, local: POD, localPort: APP_PORT, expect: 'none' },
    { name: 'a STRICT pod → left to the kernel STRICT drop, not captured', remote: CLIENT, local: POD_STRICT, localPort: APP_PORT, expect: 'none' },
    { name: 'an address the mesh does not know → untouched', remote: CLIENT, local: NOT_MESHED, localPort: APP_PORT, expect: 'none' },
    { name: 'a PERMISSIVE pod whose listener is not registered (agent restarting) → not assigned (held back at the pod)', remote: CLIENT, local: POD_NO_LISTENER, localPort: APP_PORT, expect: 'none' },
    { name: 'UDP → untouched', remote: CLIENT, local: POD, localPort: APP_PORT, protocol: 'udp', expect: 'none' },
    { name: 'IPv6 plaintext to a PERMISSIVE pod → its IPv6 listener', remote: CLIENT6, local: POD6, localPort: APP_PORT, expect: 'plaintext6' },
    { name: 'IPv6 loopback source → trusted', remote: '::1', local: POD6, localPort: APP_PORT, expect: 'none' },
  ];

  it.each(cases)('$name', (c) => {
    const remote = c.remote === '<capture>' ? topo.captureIp : c.remote;
    const r = dp!.testSkLookup(PROGRAM, { protocol: c.protocol, remote, remotePort: 40000, local: c.local, localPort: c.localPort });
    // The program never refuses a lookup itself (SK_DROP would answer with a RST): it assigns or passes.
    expect(r.verdict).toBe('pass');
    expect(r.cookie).toBe(c.expect === 'none' ? 0n : cookies[c.expect]);
  });

  describe('outbound capture steering (sk_lookup smesh_capture_lookup; one capture tuple without captureNetns)', () => {
    let outbound = 0n;
    beforeAll(async () => {
      const fd = await listener('127.0.0.1');
      dp!.setOutboundListener(fd);
      outbound = socketCookie(fd);
    });
    const steer = (local: string, localPort: number, protocol?: 'tcp' | 'udp') => dp!.testSkLookup('smesh_capture_lookup', { protocol, remote: CLIENT, remotePort: 40100, local, localPort });

    it('TCP to the capture tuple → the outbound listener', () => {
      expect(steer(topo.captureIp, 15001)).toEqual({ verdict: 'pass', cookie: outbound });
    });
    it('another port of the capture address, another address, UDP → untouched', () => {
      expect(steer(topo.captureIp, 15002).cookie).toBe(0n);
      expect(steer(POD, 15001).cookie).toBe(0n);
      expect(steer(topo.captureIp, 15001, 'udp').cookie).toBe(0n);
    });
  });

  it('counts a lookup with no registered listener (no_listener) and captured ones', () => {
    const before = dp!.inboundCounters();
    dp!.testSkLookup(PROGRAM, { remote: CLIENT, remotePort: 40001, local: POD_NO_LISTENER, localPort: APP_PORT });
    dp!.testSkLookup(PROGRAM, { remote: CLIENT, remotePort: 40002, local: POD, localPort: APP_PORT });
    const after = dp!.inboundCounters();
    expect(after.plaintextUncaptured! - before.plaintextUncaptured!).toBe(1);
    expect(after.plaintextCaptured! - before.plaintextCaptured!).toBe(1);
  });
});
