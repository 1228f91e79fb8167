// OutboundProxy with a LEAST_REQUEST DestinationRule on 127.0.0.0/8: open connections are counted per endpoint from pick to client close, so new connections avoid the busy endpoint.
import * as net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HboneConnector } from '../../../../agent/proxy/outbound';
import { OutboundProxy } from '../../../../agent/proxy/outbound';
import type { IdentityProvider, IpPort } from '../../../../agent/proxy/types';
import { StateStore } from '../../../../agent/state/store';
import type { MeshSnapshot, Workload } from '../../../../core/model/types';
import { echoServer, freePort, TD, waitFor } from '../../fixtures/proxy';

function wl(name: string, ip: string): Workload {
  const app = name.split('-')[0]!;
  return {
    uid: `default/${name}`,
    name,
    namespace: 'default',
    serviceAccount: app,
    node: 'node1',
    ip,
    labels: { app },
    workloadName: app,
    identity: `spiffe://${TD}/ns/default/sa/${app}`,
    meshed: true,
  };
}

describe('OutboundProxy L4 least request', () => {
  const client = wl('client-1', '127.0.0.1');
  const eps = [wl('lr-1', '127.0.0.5'), wl('lr-2', '127.0.0.6')];
  const servers = eps.map(() => echoServer());
  const origDst = new Map<number, IpPort>();
  const socks: net.Socket[] = [];
  let outbound: OutboundProxy;

  beforeAll(async () => {
    const port = await freePort();
    for (const [i, s] of servers.entries()) await new Promise<void>((r) => s.server.listen(port, eps[i]!.ip, () => r()));
    const snapshot: MeshSnapshot = {
      trustDomain: TD,
      nodes: new Map([['node1', { name: 'node1', address: '127.0.0.1' }]]),
      workloads: new Map([client, ...eps].map((w) => [w.uid, w])),
      services: new Map([['default/lr', { key: 'default/lr', name: 'lr', namespace: 'default', vips: ['198.19.0.20'], ports: [{ port: 80, targetPort: port }], selector: { app: 'lr' } }]]),
      namespaces: new Map([['default', {}]]),
      trafficPolicies: new Map([['default/lr', { serviceKey: 'default/lr', subsets: [], portSettings: [], routes: [], loadBalancer: { algorithm: 'LEAST_REQUEST' } }]]),
    };
    let n = 0;
    outbound = new OutboundProxy({
      // The in-process inbound stands in for the remote node's agent (pod-addressed HBONE needs the in-pod capture: test/e2e/pod-hbone).
      hboneAddressing: 'node',
      state: new StateStore(snapshot),
      identities: {} as IdentityProvider,
      hbone: {} as HboneConnector,
      nodeName: 'node1',
      listen: { host: '127.0.0.1', port: 0 },
      originalDestination: (sock) => origDst.get(sock.remotePort!) ?? null,
      random: () => (n++ % 2 === 0 ? 0.1 : 0.9), // two-choice draws always compare lr-1 with lr-2
    });
    await outbound.start();
  });

  afterAll(async () => {
    for (const s of socks) s.destroy();
    await outbound?.close();
    for (const s of servers) await s.close();
  });

  async function open(): Promise<net.Socket> {
    const localPort = await freePort();
    origDst.set(localPort, { ip: '198.19.0.20', port: 80 });
    const sock = net.connect({ host: '127.0.0.1', port: outbound.address().port, localAddress: '127.0.0.1', localPort });
    sock.on('error', () => undefined);
    socks.push(sock);
    await new Promise<void>((r) => sock.once('connect', () => r()));
    return sock;
  }
  const active = (i: number) => outbound['balancer'].load.activeRequests({ key: eps[i]!.uid });
  const served = () => servers.map((s) => s.sockets.size);

  it('sends a new connection to the endpoint without open connections, and forgets closed ones', async () => {
    const a = await open(); // tie at 0: the first draw (lr-1) wins
    await waitFor(() => served()[0] === 1);
    expect([active(0), active(1)]).toEqual([1, 0]);
    await open(); // lr-1 has one open: lr-2
    await waitFor(() => served()[1] === 1);
    expect([active(0), active(1)]).toEqual([1, 1]);
    a.destroy();
    await waitFor(() => active(0) === 0);
    await open(); // lr-1 is idle again: it wins over lr-2's open connection
    await waitFor(() => served()[0] === 1 && active(0) === 1);
    expect(served()).toEqual([1, 1]);
  });
});
