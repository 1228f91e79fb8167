// Outbound proxy end to end on 127.0.0.0/8: capture listener → HBONE → inbound → echo, same-node direct path, loop guard, and metrics labels.
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
import type { MeshSnapshot } from '../../../../core/model/types';
import { MeshMetrics } from '../../../../agent/telemetry/metrics';
import { echoServer, freePort, identities, listen, meshCa, readAll, TD, waitFor, wl } from '../../fixtures/proxy';

describe('OutboundProxy', () => {
  let ca: LocalCa;
  let cleanupCa: () => Promise<void>;
  const client = wl('client-1', '127.0.0.1', 'node1');
  let ids1: IdentityManager;
  let ids2: IdentityManager;
  let echoRemote: ReturnType<typeof echoServer>;
  let echoLocal: ReturnType<typeof echoServer>;
  let inbound: InboundProxy;
  let outbound: OutboundProxy;
  let hbone: HboneClient;
  const metrics1 = new MeshMetrics();
  const metrics2 = new MeshMetrics();
  // Fake SO_ORIGINAL_DST: keyed by the client's local port.
  const origDst = new Map<number, IpPort>();

  beforeAll(async () => {
    ({ ca, cleanup: cleanupCa } = await meshCa());
    echoRemote = echoServer();
    const remotePort = await listen(echoRemote.server, '127.0.0.2');
    echoLocal = echoServer();
    const localPort = await listen(echoLocal.server, '127.0.0.3');
    ids2 = await identities(ca, nodeSpiffeId(TD, 'node2'));
    ids1 = await identities(ca, nodeSpiffeId(TD, 'node1'), [client.identity]);
    const state = new StateStore();
    const build = (hbonePort: number): MeshSnapshot => ({
      trustDomain: TD,
      nodes: new Map([
        ['node1', { name: 'node1', address: '127.0.0.1' }],
        ['node2', { name: 'node2', address: '127.0.0.1' }],
      ]),
      workloads: new Map([client, wl('web-1', '127.0.0.2', 'node2'), wl('local-1', '127.0.0.3', 'node1')].map((w) => [w.uid, w])),
      services: new Map([
        ['default/web', { key: 'default/web', name: 'web', namespace: 'default', vips: ['198.19.0.10'], ports: [{ port: 80, targetPort: remotePort }], selector: { app: 'web' } }],
        ['default/local', { key: 'default/local', name: 'local', namespace: 'default', vips: ['198.19.0.11'], ports: [{ port: 80, targetPort: localPort }], selector: { app: 'local' } }],
      ]),
      namespaces: new Map([['default', {}]]),
    });
    state.replace(build(0));
    inbound = new InboundProxy({ identities: ids2, nodeId: ids2.nodeId, listen: { host: '127.0.0.1', port: 0 }, state, nodeName: 'node2', metrics: metrics2 });
    await inbound.start();
    metrics1.setCertificateProvider(() => ids1.list());
    hbone = new HboneClient({ identities: ids1, metrics: metrics1 });
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
    });
    await outbound.start();
  });

  afterAll(async () => {
    await outbound?.close();
    hbone?.close();
    await inbound?.close();
    await echoRemote?.close();
    await echoLocal?.close();
    ids1?.close();
    ids2?.close();
    await cleanupCa();
  });

  async function connectVia(dst: IpPort): Promise<net.Socket & { gone: Promise<void> }> {
    // The fake SO_ORIGINAL_DST is keyed by the client's local port, so pick it before connecting.
    const localPort = await freePort();
    origDst.set(localPort, dst);
    const sock = net.connect({ host: '127.0.0.1', port: outbound.address().port, localAddress: '127.0.0.1', localPort, allowHalfOpen: true });
    sock.on('error', () => undefined);
    const closed = new Promise<void>((r) => sock.once('close', () => r()));
    // A refused connection can be reset before 'connect' is reported.
    await Promise.race([new Promise<void>((r) => sock.once('connect', () => r())), closed]);
    return Object.assign(sock, { gone: closed });
  }

  it('relays a service connection to a remote node over HBONE and labels metrics', async () => {
    const sock = await connectVia({ ip: '198.19.0.10', port: 80 });
    const back = readAll(sock);
    sock.end('hello remote');
    expect((await back).toString()).toBe('hello remotebye');
    await sock.gone;
    await waitFor(() => inbound['relays'].size === 0 && outbound['relays'].size === 0);
    const text1 = await metrics1.text();
    expect(text1).toMatch(
      /istio_tcp_connections_opened_total\{[^}]*reporter="source"[^}]*source_workload="client"[^}]*destination_service="web\.default\.svc\.cluster\.local"[^}]*destination_workload="web"[^}]*connection_security_policy="mutual_tls"[^}]*\} 1/,
    );
    expect(text1).toMatch(
      /istio_tcp_received_bytes_total\{[^}]*source_principal="spiffe:\/\/cluster\.local\/ns\/default\/sa\/client"[^}]*destination_principal="spiffe:\/\/cluster\.local\/ns\/default\/sa\/web"[^}]*\} 12/,
    );
    expect(text1).toMatch(/istio_tcp_sent_bytes_total\{[^}]*\} 15/);
    expect(text1).toMatch(/istio_tcp_connections_closed_total\{[^}]*reporter="source"[^}]*\} 1/);
    expect(text1).toMatch(/smesh_certificate_expiry_seconds\{identity="spiffe:\/\/cluster\.local\/ns\/default\/sa\/client"\} \d+/);
    expect(text1).toMatch(/smesh_hbone_streams_total\{direction="outbound",result="200"\} 1/);
    const text2 = await metrics2.text();
    expect(text2).toMatch(
      /istio_tcp_connections_opened_total\{[^}]*reporter="destination"[^}]*source_workload="client"[^}]*source_principal="spiffe:\/\/cluster\.local\/ns\/default\/sa\/client"[^}]*destination_workload="web"[^}]*connection_security_policy="mutual_tls"[^}]*\} 1/,
    );
  });

  it('connects same-node destinations directly (no TLS) and reports connection_security_policy none', async () => {
    const sock = await connectVia({ ip: '198.19.0.11', port: 80 });
    const back = readAll(sock);
    sock.end('hello local');
    expect((await back).toString()).toBe('hello localbye');
    await waitFor(() => outbound['relays'].size === 0);
    expect(await metrics1.text()).toMatch(/istio_tcp_connections_opened_total\{[^}]*destination_workload="local"[^}]*connection_security_policy="none"[^}]*\} 1/);
  });

  it('refuses a connection whose original destination is the capture listener (loop guard), counted by reason', async () => {
    const sock = await connectVia({ ip: '127.0.0.1', port: outbound.address().port });
    sock.resume(); // a reset is noticed by a reading socket
    await sock.gone;
    expect(await metrics1.text()).toMatch(/smesh_refused_connections_total\{direction="outbound",reason="loop"\} 1/);
  });

  it('refuses an unknown original destination', async () => {
    const sock = await connectVia({ ip: '203.0.113.1', port: 80 });
    sock.resume();
    await sock.gone;
    expect(await metrics1.text()).toMatch(/smesh_refused_connections_total\{direction="outbound",reason="unknown_destination"\} 1/);
  });
});
