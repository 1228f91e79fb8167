// DestinationRule connectionPool on the L4 outbound path: tcp.connectTimeout (same-node direct and HBONE, against real listeners that never complete a handshake) and tcp.maxConnections.
import { spawn, type ChildProcess } from 'node:child_process';
import * as net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LocalCa } from '../../../../core/identity/local-ca';
import type { IdentityManager } from '../../../../agent/identity/manager';
import { nodeSpiffeId } from '../../../../core/identity/spiffe';
import { HboneClient } from '../../../../agent/proxy/hbone-client';
import { InboundProxy } from '../../../../agent/proxy/inbound-proxy';
import { OutboundProxy } from '../../../../agent/proxy/outbound';
import type { IpPort } from '../../../../agent/proxy/types';
import { StateStore } from '../../../../agent/state/store';
import type { ConnectionPoolSettings, Service, ServiceTrafficPolicy } from '../../../../core/model/types';
import { MeshMetrics } from '../../../../agent/telemetry/metrics';
import { echoServer, freePort, identities, listen, meshCa, TD, waitFor, wl } from '../../fixtures/proxy';

const svc = (name: string, vip: string, targetPort: number): Service => ({
  key: `default/${name}`,
  name,
  namespace: 'default',
  vips: [vip],
  ports: [{ port: 80, targetPort }],
  selector: { app: name },
});

function policy(key: string, service?: ConnectionPoolSettings, port?: ConnectionPoolSettings): ServiceTrafficPolicy {
  return { serviceKey: key, subsets: [], routes: [], portSettings: port ? [{ port: 80, connectionPool: port }] : [], ...(service ? { connectionPool: service } : {}) };
}

/**
 * Listeners with a zero backlog that never accept, one per address: once their accept queue is full the kernel drops
 * further SYNs, so a connect to them neither succeeds nor fails for seconds — the case a connect timeout is for.
 */
const BLACKHOLE_PY = String.raw`
import socket, sys, time
socks = []
for host in sys.argv[1:]:
    s = socket.socket(); s.bind((host, 0)); s.listen(0); socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks), flush=True)
time.sleep(120)
`;

describe('OutboundProxy: DestinationRule connectionPool on L4', () => {
  let ca: LocalCa;
  let cleanupCa: () => Promise<void>;
  const client = wl('client-1', '127.0.0.1', 'node1');
  let ids1: IdentityManager;
  let ids2: IdentityManager;
  let inbound: InboundProxy;
  let outbound: OutboundProxy;
  let hbone: HboneClient;
  let blackhole: ChildProcess;
  const fillers: net.Socket[] = [];
  const metrics1 = new MeshMetrics();
  const origDst = new Map<number, IpPort>();
  const logs: string[] = [];
  let nearPort = 0;
  let echo: ReturnType<typeof echoServer>;

  beforeAll(async () => {
    ({ ca, cleanup: cleanupCa } = await meshCa());
    blackhole = spawn('python3', ['-c', BLACKHOLE_PY, '127.0.0.4', '127.0.0.5'], { stdio: ['ignore', 'pipe', 'inherit'] });
    const [localPort, remotePort] = await new Promise<number[]>((resolve, reject) => {
      blackhole.stdout!.once('data', (b: Buffer) => resolve(b.toString().trim().split(' ').map(Number)));
      blackhole.once('exit', (code) => reject(new Error(`blackhole listener exited (${code})`)));
    });
    nearPort = localPort!;
    // Fill both accept queues (backlog 0 holds one connection; a second may be taken too): plain connections kept open.
    for (const [host, port] of [
      ['127.0.0.4', localPort],
      ['127.0.0.5', remotePort],
    ] as const) {
      for (let i = 0; i < 2; i++) {
        const s = net.connect({ host, port });
        s.on('error', () => undefined);
        fillers.push(s);
      }
    }
    await new Promise((r) => setTimeout(r, 200));
    echo = echoServer();
    const echoPort = await listen(echo.server, '127.0.0.6');
    ids2 = await identities(ca, nodeSpiffeId(TD, 'node2'));
    ids1 = await identities(ca, nodeSpiffeId(TD, 'node1'), [client.identity]);
    const state = new StateStore();
    state.replace({
      trustDomain: TD,
      nodes: new Map([
        ['node1', { name: 'node1', address: '127.0.0.1' }],
        ['node2', { name: 'node2', address: '127.0.0.1' }],
      ]),
      workloads: new Map([client, wl('near-1', '127.0.0.4', 'node1'), wl('far-1', '127.0.0.5', 'node2'), wl('limited-1', '127.0.0.6', 'node1')].map((w) => [w.uid, w])),
      services: new Map(
        [svc('near', '198.19.0.20', localPort!), svc('portwins', '198.19.0.21', localPort!), svc('nodr', '198.19.0.22', localPort!), svc('far', '198.19.0.23', remotePort!)]
          .map((s): [string, Service] => [s.key, { ...s, selector: { app: s.name === 'far' ? 'far' : 'near' } }])
          .concat([['default/limited', svc('limited', '198.19.0.24', echoPort)]]),
      ),
      namespaces: new Map([['default', {}]]),
      trafficPolicies: new Map([
        ['default/near', policy('default/near', { connectTimeoutMs: 300 })],
        ['default/portwins', policy('default/portwins', { connectTimeoutMs: 8000 }, { connectTimeoutMs: 300 })],
        ['default/far', policy('default/far', { connectTimeoutMs: 400 })],
        ['default/limited', policy('default/limited', { maxConnections: 2 })],
      ]),
    });
    inbound = new InboundProxy({ identities: ids2, nodeId: ids2.nodeId, listen: { host: '127.0.0.1', port: 0 }, state, nodeName: 'node2' });
    await inbound.start();
    hbone = new HboneClient({ identities: ids1 });
    const { default: pino } = await import('pino');
    outbound = new OutboundProxy({
      // The in-process inbound stands in for the remote node's agent (pod-addressed HBONE needs the in-pod capture: test/e2e/pod-hbone).
      hboneAddressing: 'node',
      state,
      identities: ids1,
      hbone,
      metrics: metrics1,
      nodeName: 'node1',
      hbonePort: inbound.address().port,
      listen: { host: '127.0.0.1', port: 0 },
      originalDestination: (sock) => origDst.get(sock.remotePort!) ?? null,
      logger: pino({ level: 'info' }, { write: (l: string) => void logs.push(l) }),
    });
    await outbound.start();
  });

  afterAll(async () => {
    await outbound?.close();
    hbone?.close();
    await inbound?.close();
    await echo?.close();
    for (const s of fillers) s.destroy();
    blackhole?.kill('SIGKILL');
    ids1?.close();
    ids2?.close();
    await cleanupCa();
  });

  /** Connects through the capture listener to `dst`; resolves with how long until the mesh closed it (or null). */
  async function closedAfter(dst: IpPort, waitMs: number): Promise<number | null> {
    const localPort = await freePort();
    origDst.set(localPort, dst);
    const sock = net.connect({ host: '127.0.0.1', port: outbound.address().port, localAddress: '127.0.0.1', localPort });
    sock.on('error', () => undefined);
    sock.resume();
    const t0 = Date.now();
    try {
      return await new Promise<number | null>((resolve) => {
        const timer = setTimeout(() => resolve(null), waitMs);
        sock.once('close', () => {
          clearTimeout(timer);
          resolve(Date.now() - t0);
        });
      });
    } finally {
      sock.destroy();
    }
  }

  it('the listeners really hang a connect (precondition)', async () => {
    const s = net.connect({ host: '127.0.0.4', port: nearPort });
    s.on('error', () => undefined);
    const outcome = await new Promise<string>((r) => {
      const t = setTimeout(() => r('pending'), 700);
      s.once('connect', () => (clearTimeout(t), r('connected')));
      s.once('error', () => (clearTimeout(t), r('error')));
    });
    s.destroy();
    expect(outcome).toBe('pending');
  });

  it('same node: the service-level connect timeout refuses after ~300 ms, counted as upstream_connect_failed', async () => {
    const ms = await closedAfter({ ip: '198.19.0.20', port: 80 }, 3000);
    expect(ms).not.toBeNull();
    expect(ms!).toBeGreaterThanOrEqual(250);
    expect(ms!).toBeLessThan(2500);
    expect(await metrics1.text()).toMatch(/smesh_refused_connections_total\{direction="outbound",reason="upstream_connect_failed"\} [1-9]/);
  });

  it('a port-level connect timeout wins over the service-level one', async () => {
    const ms = await closedAfter({ ip: '198.19.0.21', port: 80 }, 3000);
    expect(ms).not.toBeNull();
    expect(ms!).toBeLessThan(2500);
  });

  it('without a DestinationRule the agent default (10 s) applies: still connecting after 1.5 s', async () => {
    expect(await closedAfter({ ip: '198.19.0.22', port: 80 }, 1500)).toBeNull();
  });

  it('across nodes the timeout bounds the whole HBONE open (the remote agent is still connecting to the pod)', async () => {
    const ms = await closedAfter({ ip: '198.19.0.23', port: 80 }, 3000);
    expect(ms).not.toBeNull();
    expect(ms!).toBeGreaterThanOrEqual(350);
    expect(ms!).toBeLessThan(2500);
    expect(logs.some((l) => l.includes('connect timeout') && l.includes('DestinationRule connectTimeout'))).toBe(true);
  });

  it('maxConnections: connections over the limit are refused at once and counted; a closed one frees its slot', { timeout: 15_000 }, async () => {
    const open = async (): Promise<{ sock: net.Socket; closed: Promise<void> }> => {
      const localPort = await freePort();
      origDst.set(localPort, { ip: '198.19.0.24', port: 80 });
      const sock = net.connect({ host: '127.0.0.1', port: outbound.address().port, localAddress: '127.0.0.1', localPort, allowHalfOpen: true });
      sock.on('error', () => undefined);
      sock.resume();
      const closed = new Promise<void>((r) => sock.once('close', () => r()));
      // A refused connection can be reset before 'connect' is reported.
      await Promise.race([new Promise<void>((r) => sock.once('connect', () => r())), closed]);
      return { sock, closed };
    };
    const a = await open();
    const b = await open();
    await waitFor(() => outbound['relays'].size >= 2);
    const over = await open();
    await over.closed; // reset by the proxy, no upstream connection made
    expect(await metrics1.text()).toMatch(/smesh_circuit_breaker_trips_total\{destination_service="limited\.default\.svc\.cluster\.local",reason="max_connections"\} 1/);
    expect(await metrics1.text()).toMatch(/smesh_refused_connections_total\{direction="outbound",reason="circuit_breaker"\} 1/);
    a.sock.destroy();
    await a.closed;
    await waitFor(() => outbound['relays'].size === 1); // the proxy saw it close
    const c = await open();
    const chunks: Buffer[] = [];
    c.sock.on('data', (d: Buffer) => chunks.push(d));
    c.sock.write('still ');
    c.sock.end('works');
    await c.closed;
    expect(Buffer.concat(chunks).toString()).toBe('still worksbye');
    expect(await metrics1.text()).toMatch(/smesh_refused_connections_total\{direction="outbound",reason="circuit_breaker"\} 1/);
    b.sock.destroy();
  });
});
