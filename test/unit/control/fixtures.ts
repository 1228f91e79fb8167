// Shared fixtures for control-plane tests: a config directory, a running control plane on 127.0.0.1:0, a delta ADS test client, and CSR builders.
import '../../../core/identity/reflect-polyfill';
import * as grpc from '@grpc/grpc-js';
import { webcrypto } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as x509 from '@peculiar/x509';
import { loadMeshProtos } from '../../../proto';
import type { AggregatedDiscoveryServiceClient } from '../../../proto/generated/envoy/service/discovery/v3/AggregatedDiscoveryService';
import type { DeltaDiscoveryRequest } from '../../../proto/generated/envoy/service/discovery/v3/DeltaDiscoveryRequest';
import type { DeltaDiscoveryResponse__Output } from '../../../proto/generated/envoy/service/discovery/v3/DeltaDiscoveryResponse';
import type { IstioCertificateServiceClient } from '../../../proto/generated/istio/v1/auth/IstioCertificateService';
import { startControlPlane, type ControlPlane } from '../../../control/main';
import { FileSource } from '../../../control/sources/files';

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

export const TOKENS = { 'token-node1-aaaa': 'node1', 'token-node2-bbbb': 'node2' } as const;
export const TOKEN1 = 'token-node1-aaaa';
export const TOKEN2 = 'token-node2-bbbb';

export const NODES_YAML = `
apiVersion: smesh.io/v1alpha1
kind: MeshConfig
metadata: {name: mesh}
spec: {trustDomain: example.org}
---
apiVersion: v1
kind: Node
metadata: {name: node1}
status: {addresses: [{type: InternalIP, address: 198.18.0.1}]}
---
apiVersion: v1
kind: Node
metadata: {name: node2}
status: {addresses: [{type: InternalIP, address: 198.18.0.2}]}
---
apiVersion: v1
kind: Namespace
metadata: {name: default}
`;

export function podYaml(name: string, node: string, ip: string, sa: string, labels: Record<string, string> = {}): string {
  return `
apiVersion: v1
kind: Pod
metadata: {name: ${name}, namespace: default, labels: ${JSON.stringify(labels)}, annotations: {smesh.io/netns: /run/netns/${name}}}
spec: {nodeName: ${node}, serviceAccountName: ${sa}}
status: {podIP: ${ip}}
`;
}

export const WORKLOADS_YAML = [
  podYaml('web-1', 'node1', '198.18.1.10', 'web', { app: 'web' }),
  podYaml('client-1', 'node2', '198.18.2.10', 'client', { app: 'client' }),
  `
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec: {clusterIP: 198.19.0.10, selector: {app: web}, ports: [{name: http, port: 80, targetPort: 8080}]}
`,
].join('---\n');

const dirs: string[] = [];
export function tempDir(prefix = 'smesh-test-control-'): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  dirs.push(d);
  return d;
}
export function cleanupDirs(): void {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
}

/** A config dir (nodes.yaml + workloads.yaml) and a CA dir. */
export function meshDirs(workloads = WORKLOADS_YAML): { configDir: string; caDir: string } {
  const configDir = tempDir();
  writeFileSync(join(configDir, 'nodes.yaml'), NODES_YAML);
  writeFileSync(join(configDir, 'workloads.yaml'), workloads);
  const caDir = join(tempDir(), 'ca');
  return { configDir, caDir };
}

export async function startTestControlPlane(opts: { configDir: string; caDir: string; certTtlSeconds?: number }): Promise<ControlPlane> {
  return startControlPlane({
    source: new FileSource({ dir: opts.configDir, debounceMs: 30, rescanMs: 300 }),
    caDir: opts.caDir,
    tokens: { ...TOKENS },
    listen: '127.0.0.1:0',
    certTtlSeconds: opts.certTtlSeconds,
  });
}

const protos = loadMeshProtos();

function channelCreds(cp: ControlPlane, token?: string): grpc.ChannelCredentials {
  const tls = grpc.credentials.createSsl(Buffer.from(cp.trustBundlePem));
  if (token === undefined) return tls;
  const call = grpc.credentials.createFromMetadataGenerator((_params, cb) => {
    const md = new grpc.Metadata();
    md.set('authorization', `Bearer ${token}`);
    cb(null, md);
  });
  return grpc.credentials.combineChannelCredentials(tls, call);
}

export function caClient(cp: ControlPlane, token?: string): IstioCertificateServiceClient {
  return new protos.grpc.istio.v1.auth.IstioCertificateService(`127.0.0.1:${cp.port}`, channelCreds(cp, token));
}

/** A delta ADS stream with a queue of received responses. */
export class AdsTestClient {
  readonly client: AggregatedDiscoveryServiceClient;
  readonly call: grpc.ClientDuplexStream<DeltaDiscoveryRequest, DeltaDiscoveryResponse__Output>;
  private readonly queue: DeltaDiscoveryResponse__Output[] = [];
  private waiters: Array<() => void> = [];
  error: grpc.ServiceError | undefined;
  ended = false;

  constructor(cp: ControlPlane, token?: string) {
    this.client = new protos.grpc.envoy.service.discovery.v3.AggregatedDiscoveryService(`127.0.0.1:${cp.port}`, channelCreds(cp, token));
    this.call = this.client.DeltaAggregatedResources();
    this.call.on('data', (r: DeltaDiscoveryResponse__Output) => {
      this.queue.push(r);
      this.wake();
    });
    this.call.on('error', (e: grpc.ServiceError) => {
      this.error = e;
      this.wake();
    });
    this.call.on('end', () => {
      this.ended = true;
      this.wake();
    });
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  send(req: DeltaDiscoveryRequest): void {
    this.call.write(req);
  }

  /** Next response (optionally of one type), or throws after `timeoutMs`. */
  async next(typeUrl?: string, timeoutMs = 3000): Promise<DeltaDiscoveryResponse__Output> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const i = this.queue.findIndex((r) => !typeUrl || r.typeUrl === typeUrl);
      if (i >= 0) return this.queue.splice(i, 1)[0]!;
      if (this.error) throw this.error;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no ADS response${typeUrl ? ` of ${typeUrl}` : ''} within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  /** Waits `ms` and returns whatever arrived (for "nothing is resent" checks). */
  async drain(ms: number): Promise<DeltaDiscoveryResponse__Output[]> {
    await new Promise((r) => setTimeout(r, ms));
    return this.queue.splice(0);
  }

  /** Resolves with the stream's error status (e.g. UNAUTHENTICATED). */
  async status(timeoutMs = 3000): Promise<grpc.ServiceError> {
    const deadline = Date.now() + timeoutMs;
    while (!this.error) {
      if (Date.now() > deadline) throw new Error('stream did not fail');
      await new Promise((r) => setTimeout(r, 10));
    }
    return this.error;
  }

  ack(r: DeltaDiscoveryResponse__Output): void {
    this.send({ typeUrl: r.typeUrl, responseNonce: r.nonce });
  }

  close(): void {
    this.call.cancel();
    this.client.close();
  }
}

/** Builds a PEM CSR; `spoofPublicKey` signs with one key but embeds another (signature mismatch). */
export async function makeCsr(opts: { uris?: string[]; spoofPublicKey?: boolean } = {}): Promise<string> {
  const alg = { name: 'ECDSA', namedCurve: 'P-256' } as const;
  const keys = (await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  let pair = keys;
  if (opts.spoofPublicKey) {
    const other = (await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
    pair = { publicKey: other.publicKey, privateKey: keys.privateKey } as webcrypto.CryptoKeyPair;
  }
  const extensions = opts.uris && opts.uris.length > 0 ? [new x509.SubjectAlternativeNameExtension(opts.uris.map((u) => ({ type: 'url' as const, value: u })))] : [];
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name: 'O=smesh-test',
    keys: pair as unknown as Parameters<typeof x509.Pkcs10CertificateRequestGenerator.create>[0]['keys'],
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
    extensions,
  });
  return csr.toString('pem');
}
