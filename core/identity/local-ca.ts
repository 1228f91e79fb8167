// The local mesh CA: loads or atomically creates the root (ECDSA P-256) and issues SPIFFE X.509-SVIDs.
import './reflect-polyfill';
import { randomBytes, webcrypto, X509Certificate as NodeX509, createPrivateKey, createPublicKey } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import * as x509 from '@peculiar/x509';
import { SmeshError } from '../errors';
import { DEFAULT_LEAF_TTL_SECONDS } from './defaults';
import { parseSpiffeId } from './spiffe';
import type { CertificateSource, IssuedCert } from './types';

const subtle = webcrypto.subtle;
x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;

const EC_ALG = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const SIGN_ALG = { name: 'ECDSA', hash: 'SHA-256' } as const;
const ROOT_CERT = 'root-cert.pem';
const ROOT_KEY = 'root-key.pem';
const ROOT_TTL_MS = 10 * 365 * 24 * 3600 * 1000;
/** Backdate notBefore so small clock skew between nodes does not reject fresh certificates. */
const CLOCK_SKEW_MS = 5 * 60 * 1000;
export { DEFAULT_LEAF_TTL_SECONDS };

function serialNumber(): string {
  const b = randomBytes(16);
  b[0] = b[0]! & 0x7f; // positive INTEGER
  if (b[0] === 0) b[0] = 1;
  return b.toString('hex');
}

async function generateKeyPair(): Promise<CryptoKeyPair> {
  return (await subtle.generateKey(EC_ALG, true, ['sign', 'verify'])) as CryptoKeyPair;
}

async function privateKeyToPem(key: CryptoKey): Promise<string> {
  const der = await subtle.exportKey('pkcs8', key);
  return x509.PemConverter.encode(der, 'PRIVATE KEY');
}

async function importPrivateKeyPem(pem: string): Promise<CryptoKey> {
  const der = x509.PemConverter.decodeFirst(pem);
  return subtle.importKey('pkcs8', der, EC_ALG, false, ['sign']);
}

/** A loaded root: certificate and signing key. */
export class LocalCa implements CertificateSource {
  private constructor(
    private readonly rootCert: x509.X509Certificate,
    readonly rootCertPem: string,
    private readonly rootKey: CryptoKey,
    readonly trustDomain: string,
  ) {}

  static async fromPem(rootCertPem: string, rootKeyPem: string, trustDomain: string): Promise<LocalCa> {
    let cert: x509.X509Certificate;
    let key: CryptoKey;
    try {
      cert = new x509.X509Certificate(rootCertPem);
      // The key must belong to the certificate, or every issued leaf would fail verification.
      const fromKey = createPublicKey(createPrivateKey(rootKeyPem)).export({ type: 'spki', format: 'der' });
      const fromCert = new NodeX509(rootCertPem).publicKey.export({ type: 'spki', format: 'der' });
      if (!fromKey.equals(fromCert)) throw new Error('root key does not match root certificate');
      key = await importPrivateKeyPem(rootKeyPem);
    } catch (err) {
      throw new SmeshError('SMESH_ERR_IDENTITY', `cannot load mesh root CA: ${(err as Error).message}`, { cause: err });
    }
    return new LocalCa(cert, cert.toString('pem') + '\n', key, trustDomain);
  }

  trustBundlePem(): string {
    return this.rootCertPem;
  }

  /** Issues a leaf for `spiffeId`; generates a key pair unless `publicKey` (SPKI PEM or CryptoKey) is given. */
  async issue(spiffeId: string): Promise<IssuedCert & { keyPem: string }>;
  async issue(opts: { spiffeId: string; publicKey?: undefined; ttlSeconds?: number }): Promise<IssuedCert & { keyPem: string }>;
  async issue(opts: { spiffeId: string; publicKey: CryptoKey | string; ttlSeconds?: number }): Promise<IssuedCert>;
  async issue(arg: string | { spiffeId: string; publicKey?: CryptoKey | string; ttlSeconds?: number }): Promise<IssuedCert> {
    const opts = typeof arg === 'string' ? { spiffeId: arg } : arg;
    const parsed = parseSpiffeId(opts.spiffeId);
    if (!parsed) throw new SmeshError('SMESH_ERR_IDENTITY', `cannot issue certificate: ${JSON.stringify(opts.spiffeId)} is not a valid smesh SPIFFE id`);
    if (parsed.trustDomain !== this.trustDomain) {
      throw new SmeshError('SMESH_ERR_IDENTITY', `cannot issue certificate for ${opts.spiffeId}: trust domain is not ${this.trustDomain}`);
    }
    const ttlSeconds = opts.ttlSeconds ?? DEFAULT_LEAF_TTL_SECONDS;
    let publicKey: x509.PublicKeyType;
    let keyPem: string | undefined;
    if (opts.publicKey === undefined) {
      const pair = await generateKeyPair();
      publicKey = pair.publicKey;
      keyPem = await privateKeyToPem(pair.privateKey);
    } else if (typeof opts.publicKey === 'string') {
      publicKey = x509.PemConverter.decodeFirst(opts.publicKey);
    } else {
      publicKey = opts.publicKey;
    }
    const now = Date.now();
    const notBefore = new Date(now - CLOCK_SKEW_MS);
    const rootNotAfter = this.rootCert.notAfter.getTime();
    const notAfter = new Date(Math.min(now + ttlSeconds * 1000, rootNotAfter));
    const leaf = await x509.X509CertificateGenerator.create({
      serialNumber: serialNumber(),
      subject: `O=${this.trustDomain}`,
      issuer: this.rootCert.subject,
      notBefore,
      notAfter,
      publicKey,
      signingKey: this.rootKey,
      signingAlgorithm: SIGN_ALG,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth], false),
        new x509.SubjectAlternativeNameExtension([{ type: 'url', value: opts.spiffeId }], true),
        await x509.AuthorityKeyIdentifierExtension.create(this.rootCert, false),
      ],
    });
    const certPem = leaf.toString('pem') + '\n';
    return { spiffeId: opts.spiffeId, certPem, keyPem, chainPem: certPem + this.rootCertPem, notBefore, notAfter };
  }
}

async function createRoot(trustDomain: string): Promise<{ certPem: string; keyPem: string }> {
  const keys = await generateKeyPair();
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serialNumber(),
    name: `O=${trustDomain}, CN=smesh root CA`,
    notBefore: new Date(now - CLOCK_SKEW_MS),
    notAfter: new Date(now + ROOT_TTL_MS),
    keys,
    signingAlgorithm: SIGN_ALG,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.digitalSignature, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { certPem: cert.toString('pem') + '\n', keyPem: await privateKeyToPem(keys.privateKey) };
}

async function readRoot(dir: string): Promise<{ certPem: string; keyPem: string } | undefined> {
  let certPem: string;
  try {
    certPem = await fsp.readFile(path.join(dir, ROOT_CERT), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new SmeshError('SMESH_ERR_IDENTITY', `cannot read ${path.join(dir, ROOT_CERT)}: ${(err as Error).message}`, { cause: err });
  }
  try {
    const keyPem = await fsp.readFile(path.join(dir, ROOT_KEY), 'utf8');
    return { certPem, keyPem };
  } catch (err) {
    throw new SmeshError('SMESH_ERR_IDENTITY', `${path.join(dir, ROOT_CERT)} exists but ${ROOT_KEY} cannot be read (${(err as Error).message}); restore the key or remove the directory`, {
      cause: err,
    });
  }
}

/**
 * Reads dir/root-cert.pem + dir/root-key.pem, or creates them once. Creation writes a sibling temp
 * directory and renames it onto `dir` (atomic; replaces only a missing or empty `dir`), so agents
 * racing on the same directory all end up with the winner's root.
 */
export async function loadOrCreateRootCa(dir: string, trustDomain: string): Promise<LocalCa> {
  const existing = await readRoot(dir);
  if (existing) return LocalCa.fromPem(existing.certPem, existing.keyPem, trustDomain);

  const parent = path.dirname(path.resolve(dir));
  await fsp.mkdir(parent, { recursive: true });
  const tmp = await fsp.mkdtemp(path.join(parent, `.${path.basename(dir)}.tmp-`));
  try {
    const fresh = await createRoot(trustDomain);
    await fsp.writeFile(path.join(tmp, ROOT_KEY), fresh.keyPem, { mode: 0o600 });
    await fsp.writeFile(path.join(tmp, ROOT_CERT), fresh.certPem, { mode: 0o644 });
    await fsp.chmod(tmp, 0o700);
    try {
      await fsp.rename(tmp, dir);
      return await LocalCa.fromPem(fresh.certPem, fresh.keyPem, trustDomain);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ENOTEMPTY' && code !== 'EEXIST') {
        throw new SmeshError('SMESH_ERR_IDENTITY', `cannot create mesh root CA in ${dir}: ${(err as Error).message}`, { cause: err });
      }
    }
  } finally {
    await fsp.rm(tmp, { recursive: true, force: true }).catch(() => undefined);
  }
  // Lost the race (or dir holds other files): use whatever root is there.
  const winner = await readRoot(dir);
  if (!winner) {
    throw new SmeshError('SMESH_ERR_IDENTITY', `${dir} exists and is not empty but has no ${ROOT_CERT}; remove it or put the mesh root there`);
  }
  return LocalCa.fromPem(winner.certPem, winner.keyPem, trustDomain);
}
