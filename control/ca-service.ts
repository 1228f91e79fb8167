// The mesh CA service of `smesh control`: IstioCertificateService/CreateCertificate (CSR → chain) with the node binding check, root rotation anchors reloaded from --ca-dir without a restart, and the control plane's own TLS certificate.
import '../core/identity/reflect-polyfill';
import * as grpc from '@grpc/grpc-js';
import { randomBytes, webcrypto, createPrivateKey, createPublicKey, X509Certificate as NodeX509, type KeyObject } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import { FileChangeWatch } from './file-watch';
import { isIP } from 'node:net';
import * as path from 'node:path';
import * as x509 from '@peculiar/x509';
import { SmeshError } from '../core/errors';
import { DEFAULT_LEAF_TTL_SECONDS, LocalCa, loadOrCreateRootCa } from '../core/identity/local-ca';
import { controlSpiffeId, parseSpiffeId } from '../core/identity/spiffe';
import type { MeshSnapshot } from '../core/model/types';
import { silentLogger, type Logger } from '../core/telemetry/logger';
import type { IstioCertificateServiceHandlers } from '../proto/generated/istio/v1/auth/IstioCertificateService';
import type { TokenAuthenticator } from './auth';
import type { CaRefusalReason, ControlMetrics } from './metrics';

const subtle = webcrypto.subtle;
x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

const EC_ALG = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const SIGN_ALG = { name: 'ECDSA', hash: 'SHA-256' } as const;
const CLOCK_SKEW_MS = 5 * 60 * 1000;
/**
 * Lifetime of the control plane's serving certificate. It is renewed in place at half its remaining lifetime
 * (grpc-js certificate provider, see control/main.ts) and re-issued at once when a new root is promoted, so it
 * need not outlive anything; 30 days keeps a leaked serving key useful for a bounded time.
 */
const SERVER_CERT_TTL_SECONDS = 30 * 24 * 3600;

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
  b[0] = b[0]! & 0x7f || 1;
  return b.toString('hex');
}

/** A file of --ca-dir that cannot be used; `file` is the path. The message names the file and never quotes its content. */
export class CaFileError extends SmeshError {
  constructor(
    readonly file: string,
    reason: string,
    options?: { cause?: unknown },
  ) {
    super('SMESH_ERR_IDENTITY', `${file}: ${reason}`, options);
  }
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

/** Parses a root certificate file: one PEM certificate, a CA, within its validity (when `mustBeValidNow`). */
function readRootCert(file: string, pem: string, mustBeValidNow: boolean): NodeX509 {
  if (!pem.includes('-----BEGIN CERTIFICATE-----')) throw new CaFileError(file, 'not a PEM certificate (no -----BEGIN CERTIFICATE----- block; empty or half-written?)');
  let cert: NodeX509;
  try {
    cert = new NodeX509(pem);
  } catch (err) {
    throw new CaFileError(file, `not a valid X.509 certificate (${(err as Error).message.split('\n')[0]})`, { cause: err });
  }
  if (!cert.ca) throw new CaFileError(file, `${cert.subject.replace(/\n/g, ', ')} is not a CA certificate (basicConstraints CA:TRUE missing)`);
  if (mustBeValidNow) {
    const now = Date.now();
    if (Date.parse(cert.validFrom) > now + CLOCK_SKEW_MS) throw new CaFileError(file, `not valid before ${cert.validFrom}`);
    if (Date.parse(cert.validTo) <= now) throw new CaFileError(file, `expired ${cert.validTo}`);
  }
  return cert;
}

/** Parses a root key file and checks it belongs to `cert`. Never quotes the key or the library's view of it. */
function checkRootKey(file: string, pem: string, cert: NodeX509, certName: string): void {
  if (!pem.includes('-----BEGIN PRIVATE KEY-----')) {
    if (pem.includes('-----BEGIN EC PRIVATE KEY-----')) throw new CaFileError(file, 'a SEC1 EC key; smesh reads PKCS#8 (-----BEGIN PRIVATE KEY-----): convert it with openssl pkcs8 -topk8 -nocrypt');
    throw new CaFileError(file, 'not a PEM private key (no -----BEGIN PRIVATE KEY----- block; empty or half-written?)');
  }
  let key: KeyObject;
  try {
    key = createPrivateKey(pem);
  } catch (err) {
    throw new CaFileError(file, `not a readable private key${(err as NodeJS.ErrnoException).code ? ` (${(err as NodeJS.ErrnoException).code})` : ''}`);
  }
  if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
    throw new CaFileError(file, `not an ECDSA P-256 key (${key.asymmetricKeyType}${key.asymmetricKeyDetails?.namedCurve ? ` ${key.asymmetricKeyDetails.namedCurve}` : ''}); smesh roots are P-256`);
  }
  const fromKey = createPublicKey(key).export({ type: 'spki', format: 'der' });
  const fromCert = cert.publicKey.export({ type: 'spki', format: 'der' });
  if (!fromKey.equals(fromCert)) throw new CaFileError(file, `does not match ${certName} (the key is not the certificate's)`);
}

async function readOptional(file: string): Promise<string | undefined> {
  try {
    return await fsp.readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new CaFileError(file, `cannot read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { cause: err });
  }
}

/**
 * Reads and checks --ca-dir without creating anything: root-cert.pem + root-key.pem (required, matching, a CA,
 * valid now), next-root-cert.pem (+ next-root-key.pem, which must match), previous-root-cert.pem. Throws a
 * CaFileError naming the first unusable file.
 */
export async function readCaDir(dir: string): Promise<MeshCaPem> {
  const f = (name: string): string => path.join(dir, name);
  const rootCertPem = await readOptional(f(CA_FILES.rootCert));
  if (rootCertPem === undefined) throw new CaFileError(f(CA_FILES.rootCert), 'missing (the signing root certificate is required)');
  const rootKeyPem = await readOptional(f(CA_FILES.rootKey));
  if (rootKeyPem === undefined) throw new CaFileError(f(CA_FILES.rootKey), `missing (the key of ${CA_FILES.rootCert} is required)`);
  const root = readRootCert(f(CA_FILES.rootCert), rootCertPem, true);
  checkRootKey(f(CA_FILES.rootKey), rootKeyPem, root, CA_FILES.rootCert);
  const extra: string[] = [];
  const next = await readOptional(f(CA_FILES.nextRootCert));
  const nextKey = await readOptional(f(CA_FILES.nextRootKey));
  if (next !== undefined) {
    const cert = readRootCert(f(CA_FILES.nextRootCert), next, false);
    if (nextKey !== undefined) checkRootKey(f(CA_FILES.nextRootKey), nextKey, cert, CA_FILES.nextRootCert);
    extra.push(next);
  } else if (nextKey !== undefined) {
    throw new CaFileError(f(CA_FILES.nextRootKey), `present without ${CA_FILES.nextRootCert} (add the certificate too, or remove the key)`);
  }
  const previous = await readOptional(f(CA_FILES.previousRootCert));
  if (previous !== undefined) {
    readRootCert(f(CA_FILES.previousRootCert), previous, false);
    extra.push(previous);
  }
  return { rootCertPem, rootKeyPem, extraAnchorsPem: extra };
}

export interface MeshCaPem {
  readonly rootCertPem: string;
  readonly rootKeyPem: string;
  /** Further roots to publish (rotation), current root excluded. */
  readonly extraAnchorsPem?: readonly string[];
}

/** What signs and what is published; replaced whole on a reload. */
interface CaState {
  readonly local: LocalCa;
  readonly rootCert: x509.X509Certificate;
  readonly rootKey: webcrypto.CryptoKey;
  /** PEMs, the signing root first. */
  readonly anchors: readonly string[];
}

/** The outcome of MeshCa.adopt: what changed, by SHA-256 fingerprint (public data, safe to log). */
export interface CaChange {
  readonly rootChanged: boolean;
  readonly anchorsChanged: boolean;
  readonly root: { readonly fingerprint: string; readonly subject: string; readonly notAfter: string };
  readonly previousRoot: string;
  readonly anchors: readonly string[];
  readonly added: readonly string[];
  readonly removed: readonly string[];
  /** The new signing root was not a published anchor before (promoted without being introduced as next-root-cert.pem). */
  readonly promotedUnannounced: boolean;
}

function fingerprint(pem: string): string {
  return new NodeX509(pem).fingerprint256;
}

/**
 * Wraps LocalCa (which issues SPIFFE leaves for a given public key) with what the control plane
 * adds: the published trust anchors during a rotation and the control plane's own serving certificate.
 * Its roots can be replaced at run time (`adopt`, driven by a CaDirWatcher); each issuance uses one
 * consistent state (signing root and chain).
 */
export class MeshCa {
  private constructor(
    private state: CaState,
    readonly trustDomain: string,
  ) {}

  get local(): LocalCa {
    return this.state.local;
  }

  /** Published trust anchors (PEM), the signing root first. */
  get trustAnchors(): readonly string[] {
    return this.state.anchors;
  }

  /** SHA-256 fingerprint of the signing root. */
  get rootFingerprint(): string {
    return fingerprint(this.state.anchors[0]!);
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
    return new MeshCa({ local, rootCert: new x509.X509Certificate(pem.rootCertPem), rootKey: key, anchors }, trustDomain);
  }

  /**
   * Loads (or creates once, via loadOrCreateRootCa) the signing root in `dir`, plus the optional
   * rotation anchors next-root-cert.pem and previous-root-cert.pem. A next-root-key.pem, when
   * present, must match next-root-cert.pem (so the promotion step cannot go wrong later).
   */
  static async load(dir: string, trustDomain: string): Promise<MeshCa> {
    const exists = await fsp.access(path.join(dir, CA_FILES.rootCert)).then(
      () => true,
      () => false,
    );
    if (!exists) await loadOrCreateRootCa(dir, trustDomain);
    return MeshCa.fromPem(await readCaDir(dir), trustDomain); // errors name the file
  }

  /** Reads `dir` as it is now (never creates a root); throws CaFileError naming an unusable file. */
  static async read(dir: string, trustDomain: string): Promise<MeshCa> {
    return MeshCa.fromPem(await readCaDir(dir), trustDomain);
  }

  /** Takes over `next`'s roots (same trust domain); returns what changed. */
  adopt(next: MeshCa): CaChange {
    if (next.trustDomain !== this.trustDomain) throw new SmeshError('SMESH_ERR_IDENTITY', `cannot switch the CA from trust domain ${this.trustDomain} to ${next.trustDomain}`);
    const before = this.state.anchors.map(fingerprint);
    const after = next.state.anchors.map(fingerprint);
    this.state = next.state;
    const root = new NodeX509(next.state.anchors[0]!);
    return {
      rootChanged: before[0] !== after[0],
      anchorsChanged: before.length !== after.length || before.some((f, i) => after[i] !== f),
      root: { fingerprint: after[0]!, subject: root.subject.replace(/\n/g, ', '), notAfter: root.validTo },
      previousRoot: before[0]!,
      anchors: after,
      added: after.filter((f) => !before.includes(f)),
      removed: before.filter((f) => !after.includes(f)),
      promotedUnannounced: !before.includes(after[0]!),
    };
  }

  /** Issues a leaf for `spiffeId` over `publicKeySpkiPem`; returns the chain leaf first, then every anchor. */
  async issueLeaf(spiffeId: string, publicKeySpkiPem: string, ttlSeconds: number): Promise<{ chain: string[]; notAfter: Date }> {
    const s = this.state;
    const issued = await s.local.issue({ spiffeId, publicKey: publicKeySpkiPem, ttlSeconds });
    return { chain: [issued.certPem, ...s.anchors], notAfter: issued.notAfter };
  }

  /** The control plane's serving certificate: URI SAN spiffe://<td>/smesh/control plus DNS/IP SANs, signed by the current root. */
  async issueServerCertificate(opts: { dnsNames: readonly string[]; ips: readonly string[] }): Promise<{ certPem: string; keyPem: string; chainPem: string }> {
    const s = this.state;
    const keys = (await subtle.generateKey(EC_ALG, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
    const now = Date.now();
    const names: x509.JsonGeneralName[] = [{ type: 'url', value: controlSpiffeId(this.trustDomain) }];
    for (const d of new Set(opts.dnsNames)) names.push({ type: 'dns', value: d });
    for (const ip of new Set(opts.ips)) if (isIP(ip)) names.push({ type: 'ip', value: ip });
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber: serialNumber(),
      subject: `O=${this.trustDomain}, CN=smesh control`,
      issuer: s.rootCert.subject,
      notBefore: new Date(now - CLOCK_SKEW_MS),
      notAfter: new Date(Math.min(now + SERVER_CERT_TTL_SECONDS * 1000, s.rootCert.notAfter.getTime())),
      publicKey: keys.publicKey,
      signingKey: s.rootKey,
      signingAlgorithm: SIGN_ALG,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth], false),
        new x509.SubjectAlternativeNameExtension(names, false),
        await x509.AuthorityKeyIdentifierExtension.create(s.rootCert, false),
      ],
    });
    const certPem = cert.toString('pem') + '\n';
    const keyPem = x509.PemConverter.encode(await subtle.exportKey('pkcs8', keys.privateKey), 'PRIVATE KEY');
    return { certPem, keyPem, chainPem: certPem + s.anchors[0] };
  }
}

export interface CaDirWatcherOptions {
  /** Stat poll period (fs.watch misses some changes, e.g. on network file systems). Default 1000 ms. */
  readonly intervalMs?: number;
  /** Quiet time after the last change before the directory is read (files are often replaced in steps). Default 500 ms. */
  readonly debounceMs?: number;
  readonly logger?: Logger;
  readonly metrics?: ControlMetrics;
  /** Called after a change was adopted (publish anchors, re-issue the serving certificate). */
  readonly onReload?: (change: CaChange) => void | Promise<void>;
}

/**
 * Keeps a MeshCa in step with --ca-dir: fs.watch on the directory plus a stat poll of the CA files (a Kubernetes
 * Secret volume swaps a `..data` symlink, which both see). After `debounceMs` without further changes the whole
 * directory is read and checked; a good state is adopted at once (new anchors published, a promoted root signs),
 * a broken one (bad PEM, key not matching, not a CA, missing root) is logged with the file and reason, counted in
 * smesh_ca_reload_errors_total{file}, and the previous roots stay in use. If the files changed again while being
 * read (a multi-step replacement still under way), the read is simply repeated. Key material is never logged.
 */
export class CaDirWatcher {
  private readonly log: Logger;
  private readonly changes: FileChangeWatch;
  private running: Promise<boolean> | undefined;
  private again = false;
  private closed = false;

  constructor(
    private readonly dir: string,
    private readonly ca: MeshCa,
    private readonly opts: CaDirWatcherOptions = {},
  ) {
    this.log = opts.logger ?? silentLogger();
    this.changes = new FileChangeWatch({
      dir,
      files: Object.values(CA_FILES).map((name) => path.join(dir, name)),
      intervalMs: opts.intervalMs,
      debounceMs: opts.debounceMs ?? 500,
      onChange: () => void this.reload(),
    });
    opts.metrics?.caTrustAnchors.set(ca.trustAnchors.length);
  }

  start(): this {
    this.changes.start();
    return this;
  }

  /** Reads the directory now; resolves true when its state is in force (changed or not), false when rejected. */
  reload(): Promise<boolean> {
    if (this.running) {
      this.again = true;
      return this.running;
    }
    const run = async (): Promise<boolean> => {
      let ok = false;
      do {
        this.again = false;
        ok = await this.reloadOnce();
      } while (this.again && !this.closed);
      return ok;
    };
    this.running = run().finally(() => (this.running = undefined));
    return this.running;
  }

  private async reloadOnce(): Promise<boolean> {
    const before = this.changes.stamp();
    let next: MeshCa | undefined;
    let failure: unknown;
    try {
      next = await MeshCa.read(this.dir, this.ca.trustDomain);
    } catch (err) {
      failure = err;
    }
    // A read that overlapped a change may have failed on a half-written file, or succeeded on a mix of old and new
    // files (e.g. the old root with the new previous-root-cert.pem of a promotion under way): either way it is not
    // the directory's state. Read again once it has settled.
    if (this.changes.stamp() !== before && !this.closed) {
      this.changes.schedule();
      return false;
    }
    if (!next) {
      this.changes.seen(before);
      const file = failure instanceof CaFileError ? failure.file : this.dir;
      this.opts.metrics?.caReloadErrors.inc({ file: path.basename(file) });
      this.log.error(
        { file, error: (failure as Error).message, signingRoot: this.ca.rootFingerprint, anchors: this.ca.trustAnchors.length },
        'CA directory change rejected; the previous roots stay in use (signing and published anchors unchanged)',
      );
      return false;
    }
    this.changes.seen(before);
    if (this.closed) return false;
    const change = this.ca.adopt(next);
    if (!change.rootChanged && !change.anchorsChanged) return true;
    this.opts.metrics?.caReloads.inc();
    this.opts.metrics?.caTrustAnchors.set(change.anchors.length);
    const fields = { signingRoot: change.root.fingerprint, subject: change.root.subject, rootNotAfter: change.root.notAfter, anchors: change.anchors, added: change.added, removed: change.removed };
    if (change.rootChanged) {
      this.log.info({ ...fields, previousSigningRoot: change.previousRoot }, 'CA root promoted: new certificates are signed by the new root');
      if (change.promotedUnannounced) {
        this.log.warn(
          { signingRoot: change.root.fingerprint },
          `the new signing root was not published before (add it as ${CA_FILES.nextRootCert} first and wait for agents to receive it); agents that have not received it yet will reject certificates it signs until they do`,
        );
      }
    } else {
      this.log.info(fields, 'CA trust anchors changed; publishing them to agents');
    }
    try {
      await this.opts.onReload?.(change);
    } catch (err) {
      this.log.error({ error: (err as Error).message }, 'applying the CA change failed');
    }
    return true;
  }

  close(): void {
    this.closed = true;
    this.changes.close();
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
          log.warn({ peerNode: node, problem: err.message }, 'rejected certificate request with an unusable CSR');
          callback({ code: grpc.status.INVALID_ARGUMENT, details: err.message });
          return;
        }
        const refusal = checkIdentityForNode(csr.uri, node, deps.snapshot(), deps.ca.trustDomain);
        if (refusal === 'not_a_mesh_identity') {
          deps.metrics.caInvalid.inc();
          const details = `csr: URI SAN ${JSON.stringify(csr.uri)} is not spiffe://<td>/ns/<ns>/sa/<sa> or spiffe://<td>/smesh/node/<node>`;
          log.warn({ peerNode: node, requested: csr.uri }, 'rejected certificate request for a non-mesh identity');
          callback({ code: grpc.status.INVALID_ARGUMENT, details });
          return;
        }
        if (refusal) {
          deps.metrics.caRefused.inc({ reason: refusal });
          log.warn({ peerNode: node, requested: csr.uri, reason: refusal }, 'refused certificate request: identity not bound to the caller node');
          callback({ code: grpc.status.PERMISSION_DENIED, details: `node ${node} may not hold ${csr.uri} (${refusal.replace(/_/g, ' ')})` });
          return;
        }
        const requested = Number(call.request.validityDuration) || 0;
        const ttl = requested > 0 ? Math.min(requested, maxTtl) : maxTtl;
        const issued = await deps.ca.issueLeaf(csr.uri, csr.publicKeySpkiPem, ttl);
        deps.metrics.caIssued.inc({ kind: csr.uri.includes('/smesh/node/') ? 'node' : 'workload' });
        log.info({ peerNode: node, identity: csr.uri, notAfter: issued.notAfter.toISOString() }, 'issued certificate');
        callback(null, { certChain: issued.chain });
      };
      handle().catch((err: unknown) => {
        log.error({ peerNode: node, err }, 'certificate issuance failed');
        callback({ code: grpc.status.INTERNAL, details: `certificate issuance failed: ${(err as Error).message}` });
      });
    },
  };
}
