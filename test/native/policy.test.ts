// Native policy datapath tests on the real kernel: inbound STRICT/PERMISSIVE (cgroup_skb/ingress) and connect-time deny (connect4/6) (root only).
import * as fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { netnsCookie, openDatapath, type Datapath } from '../../agent/native/datapath';
import { addonPath } from '../../agent/native/raw';
import { ensureBpffs, isRoot, TestTopology, type ProbeEvent, type ProbePlan } from './topology';

const CAPTURE_PORT = 15001;
const POD_IP = '198.18.98.10'; // the "local meshed pod" address whose listeners are in the test cgroup
const CLIENT_IP = '198.18.98.20'; // a plaintext client from outside the mesh
const STRICT_PORT = 9090;
const PERMISSIVE_PORT = 9091;
const WORKLOAD_ID = 7;
// A dropped SYN is retransmitted after 1 s; give up a little after that so the test stays bounded.
const DROPPED_CONNECT_WAIT_MS = 1500;
const IMMEDIATE_MS = 100;

const SUITE = isRoot ? 'native policy datapath (STRICT ingress, connect-time deny)' : 'native policy datapath (SKIPPED: needs root for BPF, cgroups, netns)';

describe.skipIf(!isRoot)(SUITE, () => {
  const topo = new TestTopology();
  let dp: Datapath | undefined;
  let podNetns = '';

  const podListeners = (): ProbePlan['listen'] => [
    { name: 'strict', ip: POD_IP, port: STRICT_PORT },
    { name: 'permissive', ip: POD_IP, port: PERMISSIVE_PORT },
  ];

  /** A listener in the cgroup (the pod's app) and a client, both in the pod netns; the client in the cgroup only when `clientInCgroup`. */
  async function exchange(connect: ProbePlan['connect'], expectAccepts: number, clientInCgroup = false): Promise<{ server: ProbeEvent[]; client: ProbeEvent[] }> {
    const server = topo.probe(podNetns, true, { listen: podListeners(), connect: [], expectAccepts, timeoutMs: 6000 });
    await server.listening;
    const client = topo.probe(podNetns, clientInCgroup, { listen: [], connect, expectAccepts: 0, timeoutMs: 6000 });
    const clientCode = await client.exited;
    expect(
      client.events.filter((e) => e.event === 'fatal' || e.event === 'timeout'),
      JSON.stringify(client.events),
    ).toEqual([]);
    expect(clientCode).toBe(0);
    if (expectAccepts === 0) server.kill();
    await server.exited;
    return { server: server.events, client: client.events };
  }

  const outcome = (events: ProbeEvent[]): Array<[string, string]> =>
    events.filter((e) => e.event === 'connected' || e.event === 'connect-error').map((e) => [String(e.target), e.event === 'connected' ? 'connected' : String(e.code)]);

  beforeAll(async () => {
    expect(fs.existsSync(addonPath()), 'build the addon first: make -f mk/datapath.mk native').toBe(true);
    ensureBpffs();
    topo.createCgroup();
    podNetns = topo.createNetns('pod', [topo.captureIp, POD_IP, CLIENT_IP]);
    dp = await openDatapath({ bpffsDir: topo.bpffsDir, cgroupPath: topo.cgroupPath, captureIp4: topo.captureIp, capturePort: CAPTURE_PORT });
    dp.enrollPod(await netnsCookie(podNetns), WORKLOAD_ID);
  });

  afterAll(async () => {
    try {
      dp?.destroy();
    } catch {
      // topo.cleanup removes whatever is left
    }
    await topo.cleanup();
  });

  it('round-trips inbound modes and connect denies through the maps', () => {
    const d = dp!;
    d.setInboundMode(POD_IP, 0, 'STRICT');
    d.setInboundMode(POD_IP, PERMISSIVE_PORT, 'PERMISSIVE');
    d.addConnectDeny(WORKLOAD_ID, '2001:db8::5', 443);
    const modes = d.inboundModes().sort((a, b) => a.port - b.port);
    expect(modes).toEqual([
      { ip: POD_IP, port: 0, mode: 'STRICT' },
      { ip: POD_IP, port: PERMISSIVE_PORT, mode: 'PERMISSIVE' },
    ]);
    expect(d.connectDenies()).toEqual([{ workloadId: WORKLOAD_ID, ip: '2001:db8::5', port: 443 }]);
    d.removeConnectDeny(WORKLOAD_ID, '2001:db8::5', 443);
    d.removeConnectDeny(WORKLOAD_ID, '2001:db8::5', 443); // absent: no error
    expect(d.connectDenies()).toEqual([]);
    expect(() => d.setInboundMode(POD_IP, 1, 'DISABLE' as never)).toThrow(TypeError);
    expect(() => d.addConnectDeny(-1, POD_IP, 1)).toThrow(TypeError);
  });

  it('STRICT drops plaintext SYNs (connect times out, counted); PERMISSIVE ports pass and are counted; the capture address passes', async () => {
    const d = dp!;
    const before = d.inboundCounters();
    const { server, client } = await exchange(
      [
        { ip: POD_IP, port: STRICT_PORT, localIp: CLIENT_IP, connectTimeoutMs: DROPPED_CONNECT_WAIT_MS },
        { ip: POD_IP, port: PERMISSIVE_PORT, localIp: CLIENT_IP, connectTimeoutMs: 3000 },
        { ip: POD_IP, port: STRICT_PORT, localIp: topo.captureIp, connectTimeoutMs: 3000 },
      ],
      2,
    );
    expect(outcome(client)).toEqual([
      [`${POD_IP}:${STRICT_PORT}`, 'PROBE_TIMEOUT'],
      [`${POD_IP}:${PERMISSIVE_PORT}`, 'connected'],
      [`${POD_IP}:${STRICT_PORT}`, 'connected'],
    ]);
    const accepts = server.filter((e) => e.event === 'accepted');
    expect(accepts.map((e) => [e.listener, String(e.peer).split(':')[0]])).toEqual([
      ['permissive', CLIENT_IP],
      ['strict', topo.captureIp],
    ]);
    const after = d.inboundCounters();
    // The first SYN and (when the wait outlasts it) its 1 s retransmission.
    expect(after.strictDropped - before.strictDropped).toBeGreaterThanOrEqual(1);
    expect(after.strictDropped - before.strictDropped).toBeLessThanOrEqual(3);
    expect(after.plaintextAccepted - before.plaintextAccepted).toBe(1);
  });

  it('a TRUSTED_SOURCE address (the node host address kubelet probes come from) passes STRICT uncounted; removing it drops again', async () => {
    const d = dp!;
    expect(() => d.setInboundMode(CLIENT_IP, 80, 'TRUSTED_SOURCE')).toThrow(/port 0/);
    d.setInboundMode(CLIENT_IP, 0, 'TRUSTED_SOURCE');
    expect(d.inboundModes()).toContainEqual({ ip: CLIENT_IP, port: 0, mode: 'TRUSTED_SOURCE' });
    const before = d.inboundCounters();
    const { client } = await exchange([{ ip: POD_IP, port: STRICT_PORT, localIp: CLIENT_IP, connectTimeoutMs: 3000 }], 1);
    expect(outcome(client)).toEqual([[`${POD_IP}:${STRICT_PORT}`, 'connected']]);
    expect(d.inboundCounters()).toEqual(before);
    d.removeInboundMode(CLIENT_IP, 0);
    const again = await exchange(
      [
        { ip: POD_IP, port: STRICT_PORT, localIp: CLIENT_IP, connectTimeoutMs: DROPPED_CONNECT_WAIT_MS },
        { ip: POD_IP, port: STRICT_PORT, localIp: topo.captureIp, connectTimeoutMs: 3000 },
      ],
      1,
    );
    expect(outcome(again.client)).toEqual([
      [`${POD_IP}:${STRICT_PORT}`, 'PROBE_TIMEOUT'],
      [`${POD_IP}:${STRICT_PORT}`, 'connected'],
    ]);
  });

  it('removing the STRICT entries lets plaintext in again', async () => {
    const d = dp!;
    d.removeInboundMode(POD_IP, 0);
    d.removeInboundMode(POD_IP, PERMISSIVE_PORT);
    const before = d.inboundCounters();
    const { client } = await exchange([{ ip: POD_IP, port: STRICT_PORT, localIp: CLIENT_IP, connectTimeoutMs: 3000 }], 1);
    expect(outcome(client)).toEqual([[`${POD_IP}:${STRICT_PORT}`, 'connected']]);
    expect(d.inboundCounters()).toEqual(before); // no entry: not a meshed pod, not counted
  });

  it('a connect-time deny entry fails connect() at once with ECONNREFUSED and no SYN reaches the listener', async () => {
    const d = dp!;
    d.addConnectDeny(WORKLOAD_ID, POD_IP, STRICT_PORT);
    const { server, client } = await exchange(
      [
        { ip: POD_IP, port: STRICT_PORT, connectTimeoutMs: 3000 },
        { ip: `::ffff:${POD_IP}`, port: STRICT_PORT, connectTimeoutMs: 3000 }, // AF_INET6 socket: connect6
        { ip: POD_IP, port: PERMISSIVE_PORT, connectTimeoutMs: 3000 },
      ],
      1,
      true,
    );
    expect(outcome(client)).toEqual([
      [`${POD_IP}:${STRICT_PORT}`, 'ECONNREFUSED'],
      [`::ffff:${POD_IP}:${STRICT_PORT}`, 'ECONNREFUSED'],
      [`${POD_IP}:${PERMISSIVE_PORT}`, 'connected'],
    ]);
    for (const e of client.filter((x) => x.event === 'connect-error')) expect(Number(e.elapsedMs)).toBeLessThan(IMMEDIATE_MS);
    expect(server.filter((e) => e.event === 'accepted').map((e) => e.listener)).toEqual(['permissive']);

    // A port-0 entry refuses every port; a process outside the enrolled cgroup/netns is not affected.
    d.addConnectDeny(WORKLOAD_ID, POD_IP, 0);
    const all = await exchange([{ ip: POD_IP, port: PERMISSIVE_PORT, connectTimeoutMs: 3000 }], 0, true);
    expect(outcome(all.client)).toEqual([[`${POD_IP}:${PERMISSIVE_PORT}`, 'ECONNREFUSED']]);
    const outside = await exchange([{ ip: POD_IP, port: PERMISSIVE_PORT, connectTimeoutMs: 3000 }], 1, false);
    expect(outcome(outside.client)).toEqual([[`${POD_IP}:${PERMISSIVE_PORT}`, 'connected']]);
  });

  it('removing the deny entries makes connect work again', async () => {
    const d = dp!;
    d.removeConnectDeny(WORKLOAD_ID, POD_IP, STRICT_PORT);
    d.removeConnectDeny(WORKLOAD_ID, POD_IP, 0);
    expect(d.connectDenies()).toEqual([]);
    const { client } = await exchange([{ ip: POD_IP, port: STRICT_PORT, connectTimeoutMs: 3000 }], 1, true);
    expect(outcome(client)).toEqual([[`${POD_IP}:${STRICT_PORT}`, 'connected']]);
  });
});
