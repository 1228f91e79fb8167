// Test fixtures for the xDS client and remote CA: a mesh root with a control-plane TLS cert, resource builders, and a minimal in-test delta ADS + CA server.
import '../../../core/identity/reflect-polyfill';
import { webcrypto } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import * as x509 from '@peculiar/x509';
import { LocalCa } from '../../../core/identity/local-ca';
import { loadMeshProtos, type PackedAny } from '../../../proto';
import type { AggregatedDiscoveryServiceHandlers } from '../../../proto/generated/envoy/service/discovery/v3/AggregatedDiscoveryService';
import type { DeltaDiscoveryRequest__Output } from '../../../proto/generated/envoy/service/discovery/v3/DeltaDiscoveryRequest';
import type { DeltaDiscoveryResponse } from '../../../proto/generated/envoy/service/discovery/v3/DeltaDiscoveryResponse';
import type { IstioCertificateServiceHandlers } from '../../../proto/generated/istio/v1/auth/IstioCertificateService';
import type { Workload } from '../../../proto/generated/istio/workload/Workload';
import type { Service } from '../../../proto/generated/istio/workload/Service';
import { XDS_TYPE_URL, xdsCodecs } from '../../../core/xds/contract';

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);
const subtle = webcrypto.subtle;
const EC = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const SIG = { name: 'ECDSA', hash: 'SHA-256' } as const;

export const TD = 'cluster.local';
export const CONTROL_ID = `spiffe://${TD}/smesh/control`;
export const TOKEN = 'node1-secret-token';

export interface MeshPki {
  rootPem: string;
  ca: LocalCa;
  /** TLS server identity of the fake control plane (IP SAN 127.0.0.1 + URI SAN CONTROL_ID). */
  serverCertPem: string;
  serverKeyPem: string;
}

async function pkcs8Pem(key: webcrypto.CryptoKey): Promise<string> {
  return x509.PemConverter.encode(await subtle.exportKey('pkcs8', key), 'PRIVATE KEY') + '\n';
}

/** A fresh mesh root (as a LocalCa) plus a control-plane server certificate signed by it. */
export async function meshPki(name = 'smesh test root'): Promise<MeshPki> {
  const rootKeys = (await subtle.generateKey(EC, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const now = Date.now();
  const root = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: '01',
    name: `O=${TD}, CN=${name}`,
    notBefore: new Date(now - 60_000),
    notAfter: new Date(now + 24 * 3600_000),
    keys: rootKeys,
    signingAlgorithm: SIG,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(rootKeys.publicKey),
    ],
  });
  const rootPem = root.toString('pem') + '\n';
  const serverKeys = (await subtle.generateKey(EC, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const server = await x509.X509CertificateGenerator.create({
    serialNumber: '02',
    subject: 'CN=smesh control',
    issuer: root.subject,
    notBefore: new Date(now - 60_000),
    notAfter: new Date(now + 24 * 3600_000),
    publicKey: serverKeys.publicKey,
    signingKey: rootKeys.privateKey,
    signingAlgorithm: SIG,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth], false),
      new x509.SubjectAlternativeNameExtension(
        [
          { type: 'url', value: CONTROL_ID },
          { type: 'ip', value: '127.0.0.1' },
        ],
        false,
      ),
    ],
  });
  return {
    rootPem,
    ca: await LocalCa.fromPem(rootPem, await pkcs8Pem(rootKeys.privateKey), TD),
    serverCertPem: server.toString('pem') + '\n',
    serverKeyPem: await pkcs8Pem(serverKeys.privateKey),
  };
}

// ---- resource builders ----

export function ip4(a: string): Buffer {
  return Buffer.from(a.split('.').map(Number));
}

export function workload(ns: string, name: string, ip: string, over: Partial<Workload> = {}): { name: string; any: PackedAny } {
  const uid = `Kubernetes//Pod/${ns}/${name}`;
  return {
    name: over.uid ?? uid,
    any: xdsCodecs().address.pack({
      workload: {
        uid,
        name,
        namespace: ns,
        addresses: [ip4(ip)],
        trustDomain: TD,
        serviceAccount: 'default',
        node: 'node1',
        canonicalName: name.replace(/-\d+$/, ''),
        workloadName: name,
        workloadType: 'POD',
        tunnelProtocol: 'HBONE',
        status: 'HEALTHY',
        ...over,
      },
    }),
  };
}

export function service(ns: string, name: string, vip: string, over: Partial<Service> = {}): { name: string; any: PackedAny } {
  const hostname = `${name}.${ns}.svc.cluster.local`;
  return {
    name: `${ns}/${over.hostname ?? hostname}`,
    any: xdsCodecs().address.pack({
      service: {
        name,
        namespace: ns,
        hostname,
        addresses: [{ network: '', address: ip4(vip) }],
        ports: [{ servicePort: 80, targetPort: 8080 }],
        ...over,
      },
    }),
  };
}

export function meshNode(name: string, address: string): { name: string; any: PackedAny } {
  return { name, any: xdsCodecs().node.pack({ name, address }) };
}

export function localWorkload(uid: string, netns: string): { name: string; any: PackedAny } {
  return { name: uid, any: xdsCodecs().localWorkload.pack({ uid, netns }) };
}

export function meshConfig(trustDomain: string, trustAnchors: string[] = [], trustDomainAliases: string[] = []): { name: string; any: PackedAny } {
  return { name: 'mesh', any: xdsCodecs().meshConfig.pack({ trustDomain, trustAnchors, trustDomainAliases }) };
}

// ---- fake control plane ----

interface StoredResource {
  version: string;
  any: PackedAny;
}

type AdsCall = Parameters<AggregatedDiscoveryServiceHandlers['DeltaAggregatedResources']>[0];

/**
 * A minimal delta ADS server: wildcard subscriptions only, answers each subscription with what the
 * client lacks (honouring initial_resource_versions), pushes on demand, records every request.
 */
export class FakeControlPlane {
  readonly resources = new Map<string, Map<string, StoredResource>>();
  readonly requests: DeltaDiscoveryRequest__Output[] = [];
  readonly authorizations: string[] = [];
  readonly streams = new Set<AdsCall>();
  caHandler?: IstioCertificateServiceHandlers['CreateCertificate'];
  port = 0;
  private server?: grpc.Server;
  private nonce = 0;

  constructor(private readonly pki: MeshPki) {
    for (const t of Object.values(XDS_TYPE_URL)) this.resources.set(t, new Map());
  }

  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  /** Starts (or restarts on the same port). */
  async start(): Promise<void> {
    const protos = loadMeshProtos();
    const server = new grpc.Server();
    const ads: AggregatedDiscoveryServiceHandlers = {
      StreamAggregatedResources: (call) => call.emit('error', { code: grpc.status.UNIMPLEMENTED, details: 'delta only' }),
      DeltaAggregatedResources: (call) => this.onStream(call),
    };
    server.addService(protos.adsService, ads);
    server.addService(protos.certificateService, {
      CreateCertificate: (call, cb) => {
        if (!this.authorized(call.metadata)) return cb({ code: grpc.status.UNAUTHENTICATED, details: 'bad token' });
        if (!this.caHandler) return cb({ code: grpc.status.UNIMPLEMENTED, details: 'no CA in this test' });
        return this.caHandler(call, cb);
      },
    } satisfies IstioCertificateServiceHandlers);
    const creds = grpc.ServerCredentials.createSsl(null, [{ cert_chain: Buffer.from(this.pki.serverCertPem), private_key: Buffer.from(this.pki.serverKeyPem) }], false);
    this.port = await new Promise<number>((resolve, reject) => server.bindAsync(`127.0.0.1:${this.port}`, creds, (err, p) => (err ? reject(err) : resolve(p))));
    this.server = server;
  }

  /** Kills the server and every stream at once (a crash, as the client sees it). */
  stop(): void {
    for (const s of this.streams) s.destroy();
    this.streams.clear();
    this.server?.forceShutdown();
    this.server = undefined;
  }

  set(typeUrl: string, r: { name: string; any: PackedAny }, version: string): void {
    this.resources.get(typeUrl)!.set(r.name, { version, any: r.any });
  }

  /** Stores the changes and pushes them as one response to every stream. */
  push(typeUrl: string, upserts: Array<{ name: string; any: PackedAny; version: string }>, removed: string[] = []): string {
    for (const u of upserts) this.set(typeUrl, u, u.version);
    for (const n of removed) this.resources.get(typeUrl)!.delete(n);
    const nonce = `n${++this.nonce}`;
    for (const s of this.streams) {
      s.write({
        typeUrl,
        nonce,
        systemVersionInfo: nonce,
        resources: upserts.map((u) => ({ name: u.name, version: u.version, resource: u.any })),
        removedResources: removed,
      } satisfies DeltaDiscoveryResponse);
    }
    return nonce;
  }

  /** Requests that answered `nonce`. */
  answersTo(nonce: string): DeltaDiscoveryRequest__Output[] {
    return this.requests.filter((r) => r.responseNonce === nonce);
  }

  private authorized(md: grpc.Metadata): boolean {
    const v = md.get('authorization')[0];
    this.authorizations.push(String(v));
    return v === `Bearer ${TOKEN}`;
  }

  private onStream(call: AdsCall): void {
    if (!this.authorized(call.metadata)) {
      call.emit('error', { code: grpc.status.UNAUTHENTICATED, details: 'bad token' });
      return;
    }
    this.streams.add(call);
    call.on('data', (req: DeltaDiscoveryRequest__Output) => {
      this.requests.push(req);
      if (req.responseNonce !== '' || !req.resourceNamesSubscribe.includes('*')) return;
      const held = this.resources.get(req.typeUrl) ?? new Map<string, StoredResource>();
      const have = req.initialResourceVersions ?? {};
      const resources = [...held].filter(([n, r]) => have[n] !== r.version).map(([name, r]) => ({ name, version: r.version, resource: r.any }));
      const removedResources = Object.keys(have).filter((n) => !held.has(n));
      call.write({ typeUrl: req.typeUrl, nonce: `n${++this.nonce}`, resources, removedResources } satisfies DeltaDiscoveryResponse);
    });
    call.on('end', () => call.end());
    call.on('error', () => undefined);
    call.on('close', () => this.streams.delete(call));
  }
}
