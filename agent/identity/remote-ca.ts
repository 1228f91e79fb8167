// Certificates from `smesh control`: a fresh P-256 key and PKCS#10 CSR per identity, CreateCertificate over the authenticated channel, and a strict check of the returned chain.
import { X509Certificate as NodeX509, createPublicKey } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { SmeshError } from '../../core/errors';
import { silentLogger, type Logger } from '../../core/telemetry/logger';
import { createCsr } from './csr';
import { DEFAULT_LEAF_TTL_SECONDS } from '../../core/identity/defaults';
import { parseSpiffeId, spiffeIdFromSubjectAltName } from '../../core/identity/spiffe';
import type { CertificateSource, IssuedCert } from '../../core/identity/types';
import type { IstioCertificateServiceClient } from '../../proto/generated/istio/v1/auth/IstioCertificateService';
import type { IstioCertificateResponse__Output } from '../../proto/generated/istio/v1/auth/IstioCertificateResponse';

const PEM_CERT_RE = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;
/** Longest chain walked from the leaf to an anchor (leaf + intermediates). */
const MAX_CHAIN_DEPTH = 5;

/** Where the CA client comes from: ControlPlaneChannel, or anything that hands out one. */
export interface CertificateClientProvider {
  caClient(): IstioCertificateServiceClient;
}

export interface RemoteCaOptions {
  readonly channel: CertificateClientProvider;
  /** Roots trusted until MeshConfig.trust_anchors arrives (the --ca-cert file): PEM, one or more certificates. */
  readonly trustAnchorsPem: string;
  /** Requested lifetime; the CA may shorten it. */
  readonly ttlSeconds?: number;
  /** Per-call deadline. */
  readonly timeoutMs?: number;
  readonly logger?: Logger;
}

export type TrustAnchorsChangeListener = (bundlePem: string) => void;

/** Splits concatenated PEM text into one normalized PEM per certificate. */
export function splitPemCertificates(text: string): string[] {
  return (text.match(PEM_CERT_RE) ?? []).map((p) => p.trim() + '\n');
}

interface Anchor {
  readonly pem: string;
  readonly cert: NodeX509;
}

function parseAnchors(pems: readonly string[], what: string): Anchor[] {
  const anchors = pems.flatMap(splitPemCertificates).map((pem, i) => {
    let cert: NodeX509;
    try {
      cert = new NodeX509(pem);
    } catch (err) {
      throw new SmeshError('SMESH_ERR_IDENTITY', `${what}: certificate ${i} is not valid X.509: ${(err as Error).message}`, { cause: err });
    }
    if (!cert.ca) throw new SmeshError('SMESH_ERR_IDENTITY', `${what}: certificate ${i} (${cert.subject}) is not a CA certificate`);
    return { pem, cert };
  });
  if (anchors.length === 0) throw new SmeshError('SMESH_ERR_IDENTITY', `${what}: no PEM certificate found`);
  // Duplicates (same root listed twice during a rotation hand-over) are dropped.
  const seen = new Set<string>();
  return anchors.filter((a) => (seen.has(a.cert.fingerprint256) ? false : (seen.add(a.cert.fingerprint256), true)));
}

function spkiDer(key: { export(o: { type: 'spki'; format: 'der' }): Buffer }): Buffer {
  return key.export({ type: 'spki', format: 'der' });
}

function withinValidity(cert: NodeX509, now: number): boolean {
  return new Date(cert.validFrom).getTime() <= now && now <= new Date(cert.validTo).getTime();
}

function grpcHint(code: grpc.status, spiffeId: string): string {
  switch (code) {
    case grpc.status.PERMISSION_DENIED:
      return `the control plane only signs identities of workloads scheduled on this node: check that a pod with identity ${spiffeId} is scheduled on this node (spec.nodeName) and known to smesh control`;
    case grpc.status.UNAUTHENTICATED:
      return 'check the agent token (--token-file) against the control plane --tokens file';
    case grpc.status.UNAVAILABLE:
      return 'is smesh control running and reachable, and does its certificate chain to --ca-cert?';
    case grpc.status.DEADLINE_EXCEEDED:
      return 'the control plane did not answer in time';
    default:
      return '';
  }
}

/** CertificateSource backed by istio.v1.auth.IstioCertificateService/CreateCertificate. */
export class RemoteCa implements CertificateSource {
  private anchors: Anchor[];
  private bundle: string;
  private readonly listeners: TrustAnchorsChangeListener[] = [];
  private readonly log: Logger;
  private readonly ttlSeconds: number;
  private readonly timeoutMs: number;

  constructor(private readonly opts: RemoteCaOptions) {
    this.anchors = parseAnchors([opts.trustAnchorsPem], 'initial trust anchors');
    this.bundle = this.anchors.map((a) => a.pem).join('');
    this.log = opts.logger ?? silentLogger();
    this.ttlSeconds = opts.ttlSeconds ?? DEFAULT_LEAF_TTL_SECONDS;
    this.timeoutMs = opts.timeoutMs ?? 10_000;
  }

  trustBundlePem(): string {
    return this.bundle;
  }

  /**
   * Replaces the trust anchors (MeshConfig.trust_anchors; two during a root rotation). Throws
   * SMESH_ERR_IDENTITY and keeps the old anchors when none is a valid CA certificate.
   */
  setTrustAnchors(pems: readonly string[]): void {
    const next = parseAnchors(pems, 'MeshConfig.trust_anchors');
    const bundle = next.map((a) => a.pem).join('');
    if (bundle === this.bundle) return;
    this.anchors = next;
    this.bundle = bundle;
    this.log.info({ anchors: next.map((a) => ({ subject: a.cert.subject, sha256: a.cert.fingerprint256, notAfter: a.cert.validTo })) }, 'trust anchors updated');
    for (const l of this.listeners) {
      try {
        l(bundle);
      } catch (err) {
        this.log.error({ err: (err as Error).message }, 'trust anchors listener failed');
      }
    }
  }

  /** Called with the new bundle whenever setTrustAnchors changes it (TLS contexts, the control channel). */
  onTrustAnchorsChange(listener: TrustAnchorsChangeListener): void {
    this.listeners.push(listener);
  }

  async issue(spiffeId: string): Promise<IssuedCert & { readonly keyPem: string }> {
    const parsed = parseSpiffeId(spiffeId);
    if (!parsed) throw new SmeshError('SMESH_ERR_IDENTITY', `cannot request a certificate: ${JSON.stringify(spiffeId)} is not a valid smesh SPIFFE id`);
    // Subject O=<trust domain> as before; the CA reads only the URI SAN and the key.
    const { csrPem, keyPem, spkiDer: ourSpki } = await createCsr(spiffeId, parsed.trustDomain);
    const response = await this.call(spiffeId, csrPem);
    const verified = this.verifyChain(spiffeId, response, ourSpki);
    this.log.debug({ spiffeId, notAfter: verified.notAfter.toISOString() }, 'certificate signed by control plane');
    return { spiffeId, keyPem, ...verified };
  }

  private call(spiffeId: string, csrPem: string): Promise<IstioCertificateResponse__Output> {
    return new Promise((resolve, reject) => {
      let client: IstioCertificateServiceClient;
      try {
        client = this.opts.channel.caClient();
      } catch (err) {
        reject(new SmeshError('SMESH_ERR_IDENTITY', `cannot request a certificate for ${spiffeId}: ${(err as Error).message}`, { cause: err }));
        return;
      }
      client.CreateCertificate({ csr: csrPem, validityDuration: this.ttlSeconds }, { deadline: new Date(Date.now() + this.timeoutMs) }, (err, res) => {
        if (err || !res) {
          const code = err?.code ?? grpc.status.UNKNOWN;
          const name = grpc.status[code] ?? String(code);
          const hint = grpcHint(code, spiffeId);
          const msg = `control plane refused the certificate for ${spiffeId}: ${name}: ${err?.details || 'empty response'}${hint ? `; ${hint}` : ''}`;
          if (code === grpc.status.PERMISSION_DENIED) this.log.warn({ spiffeId, code: name, details: err?.details }, 'certificate request denied');
          reject(Object.assign(new SmeshError('SMESH_ERR_IDENTITY', msg, { cause: err }), { grpcCode: code }));
          return;
        }
        resolve(res);
      });
    });
  }

  /**
   * Leaf first; leaf URI SAN == requested id; leaf key == ours; leaf not a CA; every certificate
   * valid now; leaf → intermediates (from the response) → one of OUR anchors, signatures checked.
   * Roots in the response are never trusted by themselves.
   */
  private verifyChain(spiffeId: string, res: IstioCertificateResponse__Output, ourSpki: Buffer): Omit<IssuedCert, 'spiffeId' | 'keyPem'> {
    const bad = (why: string): SmeshError => new SmeshError('SMESH_ERR_IDENTITY', `control plane returned an unusable certificate for ${spiffeId}: ${why}`);
    const pems = res.certChain.flatMap(splitPemCertificates);
    if (pems.length === 0) throw bad('cert_chain holds no PEM certificate');
    let certs: NodeX509[];
    try {
      certs = pems.map((p) => new NodeX509(p));
    } catch (err) {
      throw bad(`cert_chain is not valid X.509: ${(err as Error).message}`);
    }
    const leaf = certs[0]!;
    if (leaf.ca) throw bad('the first certificate of cert_chain is a CA certificate, expected the leaf');
    const san = spiffeIdFromSubjectAltName(leaf.subjectAltName);
    if (san !== spiffeId) throw bad(`leaf URI SAN is ${san === undefined ? 'missing or not a single SPIFFE id' : JSON.stringify(san)}, expected ${spiffeId}`);
    if (!spkiDer(leaf.publicKey).equals(spkiDer(createPublicKey({ key: ourSpki, format: 'der', type: 'spki' })))) {
      throw bad('leaf public key is not the key of our CSR');
    }
    const now = Date.now();
    if (!withinValidity(leaf, now)) throw bad(`leaf is not valid now (${leaf.validFrom} – ${leaf.validTo})`);

    // Walk up: at each step an anchor that signed `current` ends the walk; otherwise an
    // intermediate from the response that signed it becomes `current`.
    const intermediates = certs.slice(1).filter((c) => c.ca);
    const path: NodeX509[] = [leaf];
    let anchor: Anchor | undefined;
    for (let current = leaf; path.length <= MAX_CHAIN_DEPTH; ) {
      anchor = this.anchors.find((a) => withinValidity(a.cert, now) && current.checkIssued(a.cert) && current.verify(a.cert.publicKey));
      if (anchor) break;
      const next = intermediates.find((c) => !path.includes(c) && current.checkIssued(c) && current.verify(c.publicKey) && withinValidity(c, now));
      if (!next) break;
      path.push(next);
      current = next;
    }
    if (!anchor) {
      throw bad(
        `the chain (${certs.map((c) => c.subject.replace(/\n/g, ', ') || '<empty subject>').join(' <- ')}) does not chain to a trusted anchor ` +
          `(${this.anchors.map((a) => a.cert.subject.replace(/\n/g, ', ')).join('; ')}); if the mesh root is rotating, the new anchor arrives with MeshConfig`,
      );
    }
    // Presented chain: leaf + the intermediates actually used, then the anchor (as LocalCa does).
    const used = path.map((c) => c.toString().trim() + '\n');
    return {
      certPem: used[0]!,
      chainPem: used.join('') + anchor.pem,
      notBefore: new Date(leaf.validFrom),
      notAfter: new Date(leaf.validTo),
    };
  }
}
