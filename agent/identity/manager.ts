// Holds the certificate + key of every identity this node serves (its pods and itself) and renews them at half-life.
import { X509Certificate } from 'node:crypto';
import { SmeshError } from '../../core/errors';
import type { Logger } from '../../core/telemetry/logger';
import type { CertificateSource, IssuedCert } from '../../core/identity/types';

export type UsableCert = IssuedCert & { readonly keyPem: string };

export interface IdentityManagerOptions {
  readonly source: CertificateSource;
  /** The node agent's own id (spiffe://<td>/smesh/node/<name>): always kept. */
  readonly nodeId: string;
  readonly logger?: Logger;
  /** First retry delay after a failed renewal; doubles up to `maxRetryMs`. */
  readonly retryMs?: number;
  readonly maxRetryMs?: number;
}

interface Entry {
  cert?: UsableCert;
  pending?: Promise<UsableCert>;
  timer?: NodeJS.Timeout;
  failures: number;
}

export interface CertificateDescription {
  readonly spiffeId: string;
  readonly serial: string;
  readonly notBefore: string;
  readonly notAfter: string;
  /** The certificate after the leaf in its chain (the signing root); absent when the chain holds only the leaf. */
  readonly issuer?: { readonly subject: string; readonly sha256: string };
}

export interface AnchorDescription {
  readonly subject: string;
  readonly sha256: string;
  readonly notAfter: string;
}

function splitPem(pem: string): string[] {
  return pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
}

const described = new WeakMap<UsableCert, CertificateDescription>();

function describeCert(spiffeId: string, cert: UsableCert): CertificateDescription {
  const chain = splitPem(cert.chainPem);
  const leaf = new X509Certificate(chain[0] ?? cert.certPem);
  const issuer = chain[1] ? new X509Certificate(chain[1]) : undefined;
  return {
    spiffeId,
    serial: leaf.serialNumber,
    notBefore: cert.notBefore.toISOString(),
    notAfter: cert.notAfter.toISOString(),
    ...(issuer ? { issuer: { subject: issuer.subject.replace(/\n/g, ', '), sha256: issuer.fingerprint256 } } : {}),
  };
}

function describeAnchor(pem: string): AnchorDescription {
  const c = new X509Certificate(pem);
  return { subject: c.subject.replace(/\n/g, ', '), sha256: c.fingerprint256, notAfter: new Date(c.validTo).toISOString() };
}

export type RotationListener = (spiffeId: string, cert: UsableCert) => void;

/** Certificates by SPIFFE id; `ensure` issues missing ones, timers renew each at half its lifetime. */
export class IdentityManager {
  readonly nodeId: string;
  private readonly source: CertificateSource;
  private readonly entries = new Map<string, Entry>();
  private readonly listeners: RotationListener[] = [];
  private readonly logger?: Logger;
  private readonly retryMs: number;
  private readonly maxRetryMs: number;
  private closed = false;

  constructor(opts: IdentityManagerOptions) {
    this.source = opts.source;
    this.nodeId = opts.nodeId;
    this.logger = opts.logger;
    this.retryMs = opts.retryMs ?? 5_000;
    this.maxRetryMs = opts.maxRetryMs ?? 5 * 60_000;
  }

  /** Issues certificates for ids not held yet (the node id included); resolves when all are present. */
  async ensure(ids: readonly string[] = []): Promise<void> {
    const all = new Set([this.nodeId, ...ids]);
    await Promise.all([...all].map((id) => this.certificate(id)));
  }

  /** Drops identities no longer needed (pods gone), keeping the node id. */
  retain(ids: readonly string[]): void {
    const keep = new Set([this.nodeId, ...ids]);
    for (const [id, e] of this.entries) {
      if (keep.has(id)) continue;
      if (e.timer) clearTimeout(e.timer);
      this.entries.delete(id);
    }
  }

  get(id: string): UsableCert | undefined {
    return this.entries.get(id)?.cert;
  }

  /** The certificate for `id`, issuing it now if needed. */
  async certificate(id: string): Promise<UsableCert> {
    if (this.closed) throw new SmeshError('SMESH_ERR_IDENTITY', 'identity manager is closed');
    let e = this.entries.get(id);
    if (!e) this.entries.set(id, (e = { failures: 0 }));
    if (e.cert) return e.cert;
    return this.fetch(id, e);
  }

  trustBundlePem(): string {
    return this.source.trustBundlePem();
  }

  /** Every identity held with its expiry (for metrics and config_dump; no key material). */
  list(): Array<{ spiffeId: string; notBefore: Date; notAfter: Date }> {
    const out: Array<{ spiffeId: string; notBefore: Date; notAfter: Date }> = [];
    for (const [id, e] of this.entries) if (e.cert) out.push({ spiffeId: id, notBefore: e.cert.notBefore, notAfter: e.cert.notAfter });
    return out;
  }

  /**
   * For config_dump: every identity held with its serial and the certificate that issued it (subject and SHA-256
   * fingerprint: during a root rotation this tells which root signed it), and the roots this node trusts.
   */
  describe(): { certificates: CertificateDescription[]; trustAnchors: AnchorDescription[] } {
    const certificates: CertificateDescription[] = [];
    for (const [id, e] of this.entries) {
      if (!e.cert) continue;
      let d = described.get(e.cert);
      if (!d) described.set(e.cert, (d = describeCert(id, e.cert)));
      certificates.push(d);
    }
    return { certificates, trustAnchors: splitPem(this.trustBundlePem()).map(describeAnchor) };
  }

  onRotate(listener: RotationListener): void {
    this.listeners.push(listener);
  }

  /** Called with the new bundle when the trusted roots change (TLS servers must pick it up: they verify peers with it). */
  onTrustBundleChange(listener: (bundlePem: string) => void): void {
    this.source.onTrustAnchorsChange?.(listener);
  }

  close(): void {
    this.closed = true;
    for (const e of this.entries.values()) if (e.timer) clearTimeout(e.timer);
    this.entries.clear();
  }

  private fetch(id: string, e: Entry): Promise<UsableCert> {
    if (e.pending) return e.pending;
    const p = this.source.issue(id).then(
      (cert) => {
        e.pending = undefined;
        e.failures = 0;
        if (this.entries.get(id) !== e || this.closed) return cert; // forgotten meanwhile
        const rotated = e.cert !== undefined;
        e.cert = cert;
        this.schedule(id, e, halfLifeDelay(cert));
        this.logger?.info({ spiffeId: id, notAfter: cert.notAfter.toISOString(), rotated }, 'certificate issued');
        if (rotated) for (const l of this.listeners) l(id, cert);
        return cert;
      },
      (err: unknown) => {
        e.pending = undefined;
        e.failures++;
        if (this.entries.get(id) === e && !this.closed) {
          // Keep serving the still-valid certificate; retry with backoff (never past expiry).
          const delay = Math.min(this.retryMs * 2 ** (e.failures - 1), this.maxRetryMs);
          this.schedule(id, e, delay);
        }
        this.logger?.warn({ spiffeId: id, err: (err as Error).message, failures: e.failures }, 'certificate issuance failed; is the CA reachable?');
        throw err instanceof SmeshError ? err : new SmeshError('SMESH_ERR_IDENTITY', `cannot obtain certificate for ${id}: ${(err as Error).message}`, { cause: err });
      },
    );
    e.pending = p;
    return p;
  }

  private schedule(id: string, e: Entry, delayMs: number): void {
    if (e.timer) clearTimeout(e.timer);
    e.timer = setTimeout(
      () => {
        e.timer = undefined;
        this.fetch(id, e).catch(() => undefined); // failure already logged and rescheduled
      },
      Math.max(0, Math.min(delayMs, 2 ** 31 - 1)),
    );
    e.timer.unref();
  }
}

/**
 * Renews halfway through the lifetime that is left when the certificate arrives. Counting from notBefore would be
 * wrong: CAs back-date notBefore for clock skew, which would make short-lived certificates renew almost at once.
 */
function halfLifeDelay(cert: IssuedCert): number {
  const now = Date.now();
  return Math.max(1_000, (cert.notAfter.getTime() - now) / 2);
}
