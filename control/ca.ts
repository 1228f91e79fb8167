// The mesh CA service of `smesh control`: IstioCertificateService/CreateCertificate (CSR → chain) with the node binding check, root rotation anchors, and the control plane's own TLS certificate.
import '../agent/identity/reflect-polyfill';
import * as grpc from '@grpc/grpc-js';
import { randomBytes, webcrypto, createPrivateKey, createPublicKey, X509Certificate as NodeX509 } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import { isIP } from 'node:net';
import * as path from 'node:path';
import * as x509 from '@peculiar/x509';
import { SmeshError } from '../agent/errors';
import { DEFAULT_LEAF_TTL_SECONDS, LocalCa, loadOrCreateRootCa } from '../agent/identity/ca';
import { controlSpiffeId, parseSpiffeId } from '../agent/identity/spiffe';
import type { MeshSnapshot } from '../agent/state/types';
import type { Logger } from '../agent/telemetry/logger';
import type { IstioCertificateServiceHandlers } from '../proto/generated/istio/v1/auth/IstioCertificateService';
import type { TokenAuthenticator } from './auth';
import type { CaRefusalReason, ControlMetrics } from './metrics';

const subtle = webcrypto.subtle;
x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

const EC_ALG = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const SIGN_ALG = { name: 'ECDSA', hash: 'SHA-256' } as const;
const CLOCK_SKEW_MS = 5 * 60 * 1000;
/** The control plane's serving certificate lives long; grpc-js cannot swap it without a restart. */
const SERVER_CERT_TTL_SECONDS = 365 * 24 * 3600;

/** Files in --ca-dir. root-* are the signing root (LocalCa's layout); the others are rotation anchors. */
export const CA_FILES = Object.freeze({
  rootCert: 'root-cert.pem',
  rootKey: 'root-key.pem',
  /** A root being introduced: trusted (published) now, signs after it is promoted to root-cert.pem. */
  nextRootCert: 'next-root-cert.pem',
  nextRootKey: 'next-root-key.pem',
  /** A root being retired: still trusted until leaves it signed have expired. */
  previousRootCert: 'previous-root-cert.pem',
});

export { controlSpiffeId };

function serialNumber(): string {
  const b = randomBytes(16);
  b[0] = (b[0]! & 0x7f) || 1;
  return b.toString('hex');
}

function checkRootPem(pem: string, what: string): string {
  try {
    const c = new NodeX509(pem);
    if (!c.ca) throw new Error('not a CA certificate (basicConstraints CA:TRUE missing)');
    return c.toString().trimEnd() + '\n';
  } catch (err) {
    throw new SmeshError('SMESH_ERR_IDENTITY', `${what}: ${(err as Error).message}`, { cause: err });
  }
}

async function readOptional(file: string): Promise<string | undefined> {
  try {
    return await fsp.readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new SmeshError('SMESH_ERR_IDENTITY', `cannot read ${file}: ${(err as Error).message}`, { cause: err });
  }
}

export interface MeshCaPem {
  readonly rootCertPem: string;
  readonly rootKeyPem: string;
  /** Further roots to publish (rotation), current root excluded. */
  readonly extraAnchorsPem?: readonly string[];
}

/**
 * Wraps LocalCa (which issues SPIFFE leaves for a given public key) with what the control plane
 * adds: the published trust anchors during a rotation and the control plane's own serving certificate.
 */
export class MeshCa {
  private constructor(
    readonly local: LocalCa,
    private readonly rootCert: x509.X509Certificate,
    private readonly rootKey: webcrypto.CryptoKey,
    readonly trustAnchors: readonly string[],
  ) {}

  get trustDomain(): string {
    return this.local.trustDomain;
  }

  static async fromPem(pem: MeshCaPem, trustDomain: string): Promise<MeshCa> {
    const local = await LocalCa.fromPem(pem.rootCertPem, pem.rootKeyPem, trustDomain); // checks the key matches
    const der = createPrivateKey(pem.rootKeyPem).export({ type: 'pkcs8', format: 'der' });
    const key = await subtle.importKey('pkcs8', der, EC_ALG, false, ['sign']);
    const current = checkRootPem(pem.rootCertPem, 'root certificate');
    const anchors = [current];
    for (const extra of pem.extraAnchorsPem ?? []) {
      const p = checkRootPem(extra, 'additional trust anchor');
      if (!anchors.includes(p)) anchors.push(p);
    }
    return new MeshCa(local, new x509.X509Certificate(pem.rootCertPem), key, anchors);
  }

  /**
   * Loads (or creates once, via loadOrCreateRootCa) the signing root in `dir`, plus the optional
   * rotation anchors next-root-cert.pem and previous-root-cert.pem. A next-root-key.pem, when
   * present, must match next-root-cert.pem (so the promotion step cannot go wrong later).
   */
  static async load(dir: string, trustDomain: string): Promise<MeshCa> {
    await loadOrCreateRootCa(dir, trustDomain);
    const rootCertPem = await fsp.readFile(path.join(dir, CA_FILES.rootCert), 'utf8');
    const rootKeyPem = await fsp.readFile(path.join(dir, CA_FILES.rootKey), 'utf8');
    const extra: string[] = [];
    const next = await readOptional(path.join(dir, CA_FILES.nextRootCert));
    if (next !== undefined) {
      extra.push(next);
      const nextKey = await readOptional(path.join(dir, CA_FILES.nextRootKey));
      if (nextKey !== undefined) {
        const fromKey = createPublicKey(createPrivateKey(nextKey)).export({ type: 'spki', format: 'der' });
        const fromCert = new NodeX509(next).publicKey.export({ type: 'spki', format: 'der' });
        if (!fromKey.equals(fromCert)) throw new SmeshError('SMESH_ERR_IDENTITY', `${path.join(dir, CA_FILES.nextRootKey)} does not match ${CA_FILES.nextRootCert}`);
      }
    }
    const previous = await readOptional(path.join(dir, CA_FILES.previousRootCert));
    if (previous !== undefined) extra.push(previous);
    return MeshCa.fromPem({ rootCertPem, rootKeyPem, extraAnchorsPem: extra }, trustDomain);
  }

  /** Issues a leaf for `spiffeId` over `publicKeySpkiPem`; returns the chain leaf first, then every anchor. */
  async issueLeaf(spiffeId: string, publicKeySpkiPem: string, ttlSeconds: number): Promise<{ chain: string[]; notAfter: Date }> {
    const issued = await this.local.issue({ spiffeId, publicKey: publicKeySpkiPem, ttlSeconds });
    return { chain: [issued.certPem, ...this.trustAnchors], notAfter: issued.notAfter };
  }

  /** The control plane's serving certificate: URI SAN spiffe://<td>/smesh/control plus DNS/IP SANs. */
  async issueServerCertificate(opts: { dnsNames: readonly string[]; ips: readonly string[] }): Promise<{ certPem: string; keyPem: string; chainPem: string }> {
    const keys = (await subtle.generateKey(EC_ALG, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
    const now = Date.now();
    const names: x509.JsonGeneralName[] = [{ type: 'url', value: controlSpiffeId(this.trustDomain) }];
    for (const d of new Set(opts.dnsNames)) names.push({ type: 'dns', value: d });
    for (const ip of new Set(opts.ips)) if (isIP(ip)) names.push({ type: 'ip', value: ip });
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber: serialNumber(),
      subject: `O=${this.trustDomain}, CN=smesh control`,
      issuer: this.rootCert.subject,
      notBefore: new Date(now - CLOCK_SKEW_MS),
      notAfter: new Date(Math.min(now + SERVER_CERT_TTL_SECONDS * 1000, this.rootCert.notAfter.getTime())),
      publicKey: keys.publicKey,
      signingKey: this.rootKey,
      signingAlgorithm: SIGN_ALG,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth], false),
        new x509.SubjectAlternativeNameExtension(names, false),
        await x509.AuthorityKeyIdentifierExtension.create(this.rootCert, false),
      ],
    });
    const certPem = cert.toString('pem') + '\n';
    const keyPem = x509.PemConverter.encode(await subtle.exportKey('pkcs8', keys.privateKey), 'PRIVATE KEY');
    return { certPem, keyPem, chainPem: certPem + this.trustAnchors[0] };
  }
}

/** Why a CSR cannot be used at all (→ INVALID_ARGUMENT), as opposed to a refused identity. */
export class CsrProblem extends Error {}

/** Parses and checks a PEM PKCS#10 request: signature valid, exactly one URI SAN. */
export async function readCsr(csrPem: string): Promise<{ uri: string; publicKeySpkiPem: string }> {
  let csr: x509.Pkcs10CertificateRequest;
  if (typeof csrPem !== 'string' || !csrPem.includes('-----BEGIN CERTIFICATE REQUEST-----')) {
    throw new CsrProblem('csr: expected a PEM-encoded PKCS#10 certificate request (-----BEGIN CERTIFICATE REQUEST-----)');
  }
  try {
    csr = new x509.Pkcs10CertificateRequest(csrPem);
  } catch (err) {
    throw new CsrProblem(`csr: cannot parse the PKCS#10 certificate request: ${(err as Error).message}`);
  }
  let valid = false;
  try {
    valid = await csr.verify();
  } catch {
    valid = false;
  }
  if (!valid) throw new CsrProblem('csr: signature does not verify with the public key in the request');
  const uris: string[] = [];
  for (const ext of csr.extensions) {
    if (ext.type !== '2.5.29.17') continue;
    const san = new x509.SubjectAlternativeNameExtension(ext.rawData);
    for (const n of san.names.items) if (n.type === 'url') uris.push(n.value);
  }
  if (uris.length === 0) throw new CsrProblem('csr: no URI SAN; expected exactly one spiffe:// identity');
  if (uris.length > 1) throw new CsrProblem(`csr: ${uris.length} URI SANs; expected exactly one spiffe:// identity`);
  return { uri: uris[0]!, publicKeySpkiPem: csr.publicKey.toString('pem') };
}

/** The binding check: which identities a node may hold. Returns the refusal reason, or undefined when allowed. */
export function checkIdentityForNode(spiffeId: string, node: string, snapshot: MeshSnapshot | undefined, trustDomain: string): CaRefusalReason | undefined {
  const id = parseSpiffeId(spiffeId);
  if (!id) return 'not_a_mesh_identity';
  if (id.trustDomain !== trustDomain) return 'foreign_trust_domain';
  if (id.kind === 'node') return id.nodeName === node ? undefined : 'not_on_node';
  if (!snapshot) return 'unknown_identity';
  let known = false;
  for (const w of snapshot.workloads.values()) {
    if (!w.meshed || w.namespace !== id.namespace || w.serviceAccount !== id.serviceAccount) continue;
    if (w.node === node) return undefined;
    known = true;
  }
  return known ? 'not_on_node' : 'unknown_identity';
}

export interface CaServiceDeps {
  readonly ca: MeshCa;
  readonly auth: TokenAuthenticator;
  readonly metrics: ControlMetrics;
  readonly logger: Logger;
  /** Current snapshot (the binding check reads the latest). */
  snapshot(): MeshSnapshot | undefined;
  readonly certTtlSeconds?: number;
}

export function createCaService(deps: CaServiceDeps): IstioCertificateServiceHandlers {
  const maxTtl = deps.certTtlSeconds ?? DEFAULT_LEAF_TTL_SECONDS;
  const log = deps.logger;
  return {
    CreateCertificate(call, callback) {
      const node = deps.auth.authenticate(call.metadata);
      if (!node) {
        deps.metrics.xdsUnauthenticated.inc();
        log.warn({ peer: call.getPeer(), rpc: 'CreateCertificate' }, 'refused certificate request: missing or unknown bearer token');
        callback({ code: grpc.status.UNAUTHENTICATED, details: 'missing or unknown bearer token' });
        return;
      }
      const handle = async (): Promise<void> => {
        let csr: { uri: string; publicKeySpkiPem: string };
        try {
          csr = await readCsr(call.request.csr);
        } catch (err) {
          if (!(err instanceof CsrProblem)) throw err;
          deps.metrics.caInvalid.inc();
          log.warn({ node, problem: err.message }, 'rejected certificate request with an unusable CSR');
          callback({ code: grpc.status.INVALID_ARGUMENT, details: err.message });
          return;
        }
        const refusal = checkIdentityForNode(csr.uri, node, deps.snapshot(), deps.ca.trustDomain);
        if (refusal === 'not_a_mesh_identity') {
          deps.metrics.caInvalid.inc();
          const details = `csr: URI SAN ${JSON.stringify(csr.uri)} is not spiffe://<td>/ns/<ns>/sa/<sa> or spiffe://<td>/smesh/node/<node>`;
          log.warn({ node, requested: csr.uri }, 'rejected certificate request for a non-mesh identity');
          callback({ code: grpc.status.INVALID_ARGUMENT, details });
          return;
        }
        if (refusal) {
          deps.metrics.caRefused.inc({ reason: refusal });
          log.warn({ node, requested: csr.uri, reason: refusal }, 'refused certificate request: identity not bound to the caller node');
          callback({ code: grpc.status.PERMISSION_DENIED, details: `node ${node} may not hold ${csr.uri} (${refusal.replace(/_/g, ' ')})` });
          return;
        }
        const requested = Number(call.request.validityDuration) || 0;
        const ttl = requested > 0 ? Math.min(requested, maxTtl) : maxTtl;
        const issued = await deps.ca.issueLeaf(csr.uri, csr.publicKeySpkiPem, ttl);
        deps.metrics.caIssued.inc({ kind: csr.uri.includes('/smesh/node/') ? 'node' : 'workload' });
        log.info({ node, identity: csr.uri, notAfter: issued.notAfter.toISOString() }, 'issued certificate');
        callback(null, { certChain: issued.chain });
      };
      handle().catch((err: unknown) => {
        log.error({ node, err }, 'certificate issuance failed');
        callback({ code: grpc.status.INTERNAL, details: `certificate issuance failed: ${(err as Error).message}` });
      });
    },
  };
}
