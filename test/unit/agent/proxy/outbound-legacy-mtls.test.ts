// Outbound to an Istio sidecar (TunnelProtocol LEGACY_ISTIO_MTLS) against stand-in sidecars: node:tls servers that require a mesh client certificate and speak Istio's TCP metadata exchange with their own (protobufjs) decoder.
import * as crypto from 'node:crypto';
import * as net from 'node:net';
import * as tls from 'node:tls';
import * as protobuf from 'protobufjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LocalCa } from '../../../../core/identity/local-ca';
import type { IdentityManager } from '../../../../agent/identity/manager';
import { nodeSpiffeId } from '../../../../core/identity/spiffe';
import { HboneClient } from '../../../../agent/proxy/hbone-client';
import { decideOutbound, OutboundProxy, type OutboundInputs } from '../../../../agent/proxy/outbound';
import type { IpPort } from '../../../../agent/proxy/types';
import { StateStore } from '../../../../agent/state/store';
import type { MeshSnapshot, Workload } from '../../../../core/model/types';
import { MeshMetrics } from '../../../../agent/telemetry/metrics';
import { freePort, identities, meshCa, readAll, TD, waitFor, wl } from '../../fixtures/proxy';

// ---- the stand-in's own view of Istio's metadata exchange (istio/proxy metadata_exchange): magic, length, Any(Struct) ----
const MAGIC = 0x3d230467;
const root = new protobuf.Root();
root.addJSON(protobuf.common.get('google/protobuf/any.proto')!.nested!);
root.addJSON(protobuf.common.get('google/protobuf/struct.proto')!.nested!);
const AnyType = root.lookupType('google.protobuf.Any');
const StructType = root.lookupType('google.protobuf.Struct');

type JsonStruct = { [k: string]: unknown };
function structToJson(s: { fields?: Record<string, { stringValue?: string; structValue?: unknown }> }): JsonStruct {
  const out: JsonStruct = {};
  for (const [k, v] of Object.entries(s.fields ?? {})) out[k] = v.structValue ? structToJson(v.structValue as never) : v.stringValue;
  return out;
}
function header(struct: JsonStruct): Buffer {
  const fields: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(struct))
    fields[k] = typeof v === 'string' ? { stringValue: v } : { structValue: { fields: Object.fromEntries(Object.entries(v as JsonStruct).map(([a, b]) => [a, { stringValue: b }])) } };
  const any = AnyType.encode({ type_url: 'type.googleapis.com/google.protobuf.Struct', value: StructType.encode(StructType.fromObject({ fields })).finish() }).finish();
  const h = Buffer.alloc(8);
  h.writeUInt32BE(MAGIC, 0);
  h.writeUInt32BE(any.length, 4);
  return Buffer.concat([h, any]);
}

interface Seen {
  peer?: string;
  alpn?: string | false | null;
  sni?: string | false;
  version?: string | null;
  metadata?: JsonStruct;
  received: number;
}

/**
 * A sidecar's inbound as seen from the wire: mTLS with a client certificate chained to the mesh root, ALPN from the
 * list it is given (a sidecar with metadata exchange answers istio-peer-exchange), then the exchange, then an echo
 * that answers the client's FIN with "bye".
 */
function standInSidecar(
  cert: { keyPem: string; chainPem: string },
  bundle: string,
  alpn: string[],
  maxVersion: tls.SecureVersion = 'TLSv1.3',
): { server: tls.Server; seen: Seen[]; sockets: Set<tls.TLSSocket>; close: () => Promise<void> } {
  const seen: Seen[] = [];
  const sockets = new Set<tls.TLSSocket>();
  const server = tls.createServer(
    { key: cert.keyPem, cert: cert.chainPem, ca: bundle, requestCert: true, rejectUnauthorized: true, ALPNProtocols: alpn, minVersion: 'TLSv1.2', maxVersion, allowHalfOpen: true },
    (s) => {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => undefined);
      const san = s.getPeerX509Certificate()?.subjectAltName ?? '';
      const entry: Seen = {
        peer: /URI:(spiffe:\/\/[^,\s]+)/.exec(san)?.[1],
        alpn: s.alpnProtocol,
        sni: (s as unknown as { servername?: string | false }).servername,
        version: s.getProtocol(),
        received: 0,
      };
      seen.push(entry);
      let pending: Buffer = Buffer.alloc(0);
      let exchanged = s.alpnProtocol !== 'istio-peer-exchange';
      s.on('data', (d: Buffer) => {
        if (!exchanged) {
          pending = Buffer.concat([pending, d]);
          if (pending.length < 8) return;
          expect(pending.readUInt32BE(0)).toBe(MAGIC);
          const len = pending.readUInt32BE(4);
          if (pending.length < 8 + len) return;
          const any = AnyType.decode(pending.subarray(8, 8 + len)) as unknown as { type_url: string; value: Uint8Array };
          entry.metadata = { typeUrl: any.type_url, ...structToJson(StructType.toObject(StructType.decode(any.value)) as never) };
          s.write(header({ 'x-envoy-peer-metadata': { NAME: 'web-2', NAMESPACE: 'default' }, 'x-envoy-peer-metadata-id': 'sidecar~127.0.0.2~web-2.default~default.svc.cluster.local' }));
          exchanged = true;
          d = pending.subarray(8 + len);
          if (d.length === 0) return;
        }
        entry.received += d.length;
        s.write(d);
      });
      s.on('end', () => s.end('bye'));
    },
  );
  // Raw connections too: one whose handshake the client abandoned stays half-open here (allowHalfOpen).
  const raw = new Set<net.Socket>();
  server.on('connection', (c: net.Socket) => {
    raw.add(c);
    c.on('close', () => raw.delete(c));
  });
  return {
    server,
    seen,
    sockets,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        for (const c of raw) c.destroy();
        server.close(() => r());
      }),
  };
}

function listenOn(server: net.Server, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, () => resolve((server.address() as net.AddressInfo).port));
  });
}

const sidecarPod = (name: string, ip: string, sa = 'web'): Workload => ({
  ...wl(name, ip, 'node2'),
  serviceAccount: sa,
  identity: `spiffe://${TD}/ns/default/sa/${sa}`,
  meshed: false,
  tunnel: 'legacy_istio_mtls',
});

describe('decideOutbound: a LEGACY_ISTIO_MTLS destination', () => {
  const client = wl('client-1', '10.0.0.1', 'node1');
  const base = (w: Workload): OutboundInputs => ({
    originalDestination: { ip: w.ip, port: 8080 },
    capture: { ip: '169.254.7.1', port: 15001 },
    source: client,
    localNode: 'node1',
    hbonePort: 15008,
    state: { trustDomain: TD, node: () => undefined, resolve: (ip, port) => (ip === w.ip ? { kind: 'workload', workload: w, port } : { kind: 'unknown' }) },
    pick: () => ({ kind: 'drop', reason: 'unused' }) as never,
  });

  it.each([
    ['on another node', 'node2'],
    ['on this node (the sidecar still wants mTLS)', 'node1'],
  ])('%s: sidecar mTLS to pod IP:port with its identity', (_name, node) => {
    const w = { ...sidecarPod('web-2', '10.0.0.2'), node };
    expect(decideOutbound(base(w))).toMatchObject({ kind: 'legacy_mtls', ip: '10.0.0.2', port: 8080, serverId: `spiffe://${TD}/ns/default/sa/web` });
  });

  it('a non-meshed workload without a sidecar stays passthrough', () => {
    const w: Workload = { ...wl('plain-1', '10.0.0.3', 'node2'), meshed: false };
    expect(decideOutbound(base(w))).toMatchObject({ kind: 'passthrough' });
  });
});

describe('OutboundProxy → Istio sidecar (legacy mTLS)', () => {
  let ca: LocalCa;
  let cleanupCa: () => Promise<void>;
  const client = wl('client-1', '127.0.0.1', 'node1');
  let ids1: IdentityManager;
  let sidecarIds: IdentityManager;
  let mx: ReturnType<typeof standInSidecar>;
  let plain: ReturnType<typeof standInSidecar>;
  let impostor: ReturnType<typeof standInSidecar>;
  let outbound: OutboundProxy;
  let hbone: HboneClient;
  const metrics = new MeshMetrics();
  const origDst = new Map<number, IpPort>();
  const webId = `spiffe://${TD}/ns/default/sa/web`;
  const otherId = `spiffe://${TD}/ns/default/sa/other`;

  beforeAll(async () => {
    ({ ca, cleanup: cleanupCa } = await meshCa());
    ids1 = await identities(ca, nodeSpiffeId(TD, 'node1'), [client.identity]);
    sidecarIds = await identities(ca, nodeSpiffeId(TD, 'node2'), [webId, otherId]);
    const bundle = sidecarIds.trustBundlePem();
    mx = standInSidecar(sidecarIds.get(webId)!, bundle, ['istio-peer-exchange', 'h2', 'http/1.1']);
    plain = standInSidecar(sidecarIds.get(webId)!, bundle, ['istio'], 'TLSv1.2');
    impostor = standInSidecar(sidecarIds.get(otherId)!, bundle, ['istio-peer-exchange', 'h2', 'http/1.1']);
    const mxPort = await listenOn(mx.server, '127.0.0.2');
    const plainPort = await listenOn(plain.server, '127.0.0.4');
    const impostorPort = await listenOn(impostor.server, '127.0.0.5');
    const state = new StateStore();
    const snapshot: MeshSnapshot = {
      trustDomain: TD,
      nodes: new Map([['node1', { name: 'node1', address: '127.0.0.1' }]]),
      workloads: new Map(
        [client, sidecarPod('web-2', '127.0.0.2'), { ...sidecarPod('old-1', '127.0.0.4'), labels: { app: 'old' } }, { ...sidecarPod('fake-1', '127.0.0.5'), labels: { app: 'fake' } }].map((w) => [
          w.uid,
          w,
        ]),
      ),
      services: new Map([
        ['default/web', { key: 'default/web', name: 'web', namespace: 'default', vips: ['198.19.0.10'], ports: [{ port: 80, targetPort: mxPort }], selector: { app: 'web' } }],
        ['default/old', { key: 'default/old', name: 'old', namespace: 'default', vips: ['198.19.0.11'], ports: [{ port: 80, targetPort: plainPort }], selector: { app: 'old' } }],
        ['default/fake', { key: 'default/fake', name: 'fake', namespace: 'default', vips: ['198.19.0.12'], ports: [{ port: 80, targetPort: impostorPort }], selector: { app: 'fake' } }],
      ]),
      namespaces: new Map([['default', {}]]),
    };
    state.replace(snapshot);
    hbone = new HboneClient({ identities: ids1, metrics });
    outbound = new OutboundProxy({
      state,
      identities: ids1,
      hbone,
      metrics,
      nodeName: 'node1',
      listen: { host: '127.0.0.1', port: 0 },
      originalDestination: (sock) => origDst.get(sock.remotePort!) ?? null,
    });
    await outbound.start();
  });

  afterAll(async () => {
    await outbound?.close();
    hbone?.close();
    await mx?.close();
    await plain?.close();
    await impostor?.close();
    ids1?.close();
    sidecarIds?.close();
    await cleanupCa();
  });

  async function connectVia(dst: IpPort): Promise<net.Socket & { gone: Promise<void> }> {
    const localPort = await freePort();
    origDst.set(localPort, dst);
    const sock = net.connect({ host: '127.0.0.1', port: outbound.address().port, localAddress: '127.0.0.1', localPort, allowHalfOpen: true });
    sock.on('error', () => undefined);
    const closed = new Promise<void>((r) => sock.once('close', () => r()));
    await Promise.race([new Promise<void>((r) => sock.once('connect', () => r())), closed]);
    return Object.assign(sock, { gone: closed });
  }

  it('originates mTLS with the source certificate, exchanges metadata, relays bytes both ways with half-close', async () => {
    const payload = crypto.randomBytes(300_000);
    const sock = await connectVia({ ip: '198.19.0.10', port: 80 });
    const back = readAll(sock);
    sock.end(payload);
    const got = await back;
    expect(got.length).toBe(payload.length + 3);
    expect(got.subarray(0, payload.length).equals(payload)).toBe(true);
    expect(got.subarray(payload.length).toString()).toBe('bye');
    await sock.gone;
    const seen = mx.seen.at(-1)!;
    expect(seen).toMatchObject({ peer: client.identity, alpn: 'istio-peer-exchange', sni: 'outbound_.80_._.web.default.svc.cluster.local', version: 'TLSv1.3', received: payload.length });
    expect(seen.metadata).toMatchObject({ typeUrl: 'type.googleapis.com/google.protobuf.Struct', 'x-envoy-peer-metadata': { NAME: 'client-1', NAMESPACE: 'default', WORKLOAD_NAME: 'client' } });
    expect(String(seen.metadata?.['x-envoy-peer-metadata-id'])).toMatch(/^sidecar~127\.0\.0\.1~client-1\.default~/);
    await waitFor(() => outbound['relays'].size === 0);
    const text = await metrics.text();
    expect(text).toMatch(
      /istio_tcp_connections_opened_total\{[^}]*reporter="source"[^}]*destination_service="web\.default\.svc\.cluster\.local"[^}]*destination_workload="web"[^}]*connection_security_policy="mutual_tls"[^}]*\} 1/,
    );
    expect(text).toMatch(new RegExp(`istio_tcp_received_bytes_total\\{[^}]*destination_service="web[^}]*\\} ${payload.length}`));
    expect(text).toMatch(/istio_tcp_sent_bytes_total\{[^}]*destination_service="web[^}]*\} 300003/);
  });

  it('a TLS 1.2 sidecar that answers ALPN istio (no metadata exchange) gets the bytes as they are', async () => {
    const sock = await connectVia({ ip: '198.19.0.11', port: 80 });
    const back = readAll(sock);
    sock.end('hello sidecar');
    expect((await back).toString()).toBe('hello sidecarbye');
    expect(plain.seen.at(-1)).toMatchObject({ peer: client.identity, alpn: 'istio', version: 'TLSv1.2', received: 13 });
    expect(plain.seen.at(-1)?.metadata).toBeUndefined();
  });

  it('refuses a sidecar presenting another identity: no byte reaches it, the failure is counted', async () => {
    const sock = await connectVia({ ip: '198.19.0.12', port: 80 });
    sock.write('secret');
    sock.resume();
    await sock.gone;
    expect(impostor.seen.every((s) => s.received === 0)).toBe(true);
    const text = await metrics.text();
    expect(text).toMatch(/smesh_refused_connections_total\{direction="outbound",reason="upstream_connect_failed"\} 1/);
    expect(text).toMatch(/istio_tcp_connections_opened_total\{[^}]*destination_service="fake\.default\.svc\.cluster\.local"[^}]*response_flags="CONNECT",connection_security_policy="mutual_tls"\} 1/);
  });
});
