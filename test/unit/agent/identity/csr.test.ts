// The agent's hand-built PKCS#10 requests: parsed and verified by @peculiar/x509 and openssl, byte-equal to what @peculiar/x509 builds, signed by the real control-plane CA (gRPC and RemoteCa), bad ids and keys refused.
import '../../../../core/identity/reflect-polyfill';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { createPrivateKey, createPublicKey, generateKeyPairSync, webcrypto, X509Certificate, type KeyObject } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SmeshError } from '../../../../core/errors';
import { buildCsrDer, buildCsrPem, createCsr, derLength, derOid, generateP256KeyPair, MAX_CSR_URI_LENGTH } from '../../../../agent/identity/csr';
import { RemoteCa } from '../../../../agent/identity/remote-ca';
import { controlSpiffeId } from '../../../../core/identity/spiffe';
import { ControlPlaneChannel } from '../../../../agent/xds/channel';
import { readCsr } from '../../../../control/ca-service';
import type { ControlPlane } from '../../../../control/main';
import type { IstioCertificateResponse__Output } from '../../../../proto/generated/istio/v1/auth/IstioCertificateResponse';
import { caClient, cleanupDirs, meshDirs, podYaml, startTestControlPlane, TOKEN1, WORKLOADS_YAML } from '../../fixtures/control';
import { pollUntil } from '../../../helpers/wait';

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

const TD = 'example.org';
const WEB = `spiffe://${TD}/ns/default/sa/web`;
/** Service accounts whose ids push the SAN, the extension request and the whole request past 127 and 255 bytes. */
const SA_150 = 'sa-' + 'a'.repeat(147);
const SA_300 = 'sa-' + 'b'.repeat(297);
const LONG_150 = `spiffe://${TD}/ns/default/sa/${SA_150}`;
const LONG_300 = `spiffe://${TD}/ns/default/sa/${SA_300}`;

function spki(key: KeyObject): Buffer {
  return (key.type === 'public' ? key : createPublicKey(key)).export({ type: 'spki', format: 'der' });
}

/**
 * `openssl req -verify -noout -text` on the PEM through stdin. OpenSSL 3.0 exits 0 even when the
 * self-signature does not verify, so `verified` reads its verdict line as well.
 */
function opensslReq(pem: string): Promise<{ ok: boolean; verified: boolean; out: string }> {
  return new Promise((resolve, reject) => {
    const child = execFile('openssl', ['req', '-verify', '-noout', '-text'], { timeout: 10_000 }, (err, stdout, stderr) => {
      if (err && typeof (err as NodeJS.ErrnoException).code === 'string') return reject(err); // could not spawn
      const out = stdout + stderr;
      resolve({ ok: !err, verified: !err && /self-signature verify OK/.test(out) && !/verify fail/.test(out), out });
    });
    child.stdin!.end(pem);
  });
}

/** The CertificationRequestInfo (first element of the outer SEQUENCE) of a DER request. */
function tbsOf(der: Buffer): Buffer {
  const outerHeader = der[1]! < 0x80 ? 2 : 2 + (der[1]! & 0x7f);
  const inner = der.subarray(outerHeader);
  const len = inner[1]! < 0x80 ? inner[1]! : inner.subarray(2, 2 + (inner[1]! & 0x7f)).reduce((a, b) => a * 256 + b, 0);
  const header = inner[1]! < 0x80 ? 2 : 2 + (inner[1]! & 0x7f);
  return inner.subarray(0, header + len);
}

async function expectIdentityError(p: Promise<unknown>, re: RegExp): Promise<void> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(SmeshError);
  expect((err as SmeshError).code).toBe('SMESH_ERR_IDENTITY');
  expect((err as Error).message).toMatch(re);
}

describe('DER primitives', () => {
  it('length octets: short form below 128, long form with the minimal byte count above', () => {
    const cases: Array<[number, string]> = [
      [0, '00'],
      [127, '7f'],
      [128, '8180'],
      [255, '81ff'],
      [256, '820100'],
      [65535, '82ffff'],
      [65536, '83010000'],
    ];
    for (const [n, hex] of cases) expect(derLength(n).toString('hex'), String(n)).toBe(hex);
    expect(() => derLength(-1)).toThrow(RangeError);
  });

  it('object identifiers encode as X.690 says', () => {
    expect(derOid('1.2.840.10045.4.3.2').toString('hex')).toBe('06082a8648ce3d040302');
    expect(derOid('1.2.840.113549.1.9.14').toString('hex')).toBe('06092a864886f70d01090e');
    expect(derOid('2.5.29.17').toString('hex')).toBe('0603551d11');
    expect(derOid('2.5.4.10').toString('hex')).toBe('060355040a');
  });
});

describe('buildCsr / createCsr', () => {
  const ids = [WEB, `spiffe://${TD}/smesh/node/node1`, LONG_150, LONG_300];

  it('is parsed and verified by @peculiar/x509: signature, URI SAN (critical), subject O=<td>, P-256 key, ecdsa-with-SHA256', async () => {
    for (const id of ids) {
      const { csrPem, keyPem, spkiDer } = await createCsr(id, TD);
      const csr = new x509.Pkcs10CertificateRequest(csrPem);
      expect(await csr.verify(), id).toBe(true);
      const sans = csr.extensions.filter((e) => e.type === '2.5.29.17');
      expect(sans).toHaveLength(1);
      expect(sans[0]!.critical).toBe(true);
      const san = new x509.SubjectAlternativeNameExtension(sans[0]!.rawData);
      expect(san.names.items.map((n) => [n.type, n.value])).toEqual([['url', id]]);
      expect(csr.subject).toBe(`O=${TD}`);
      expect(csr.signatureAlgorithm).toMatchObject({ name: 'ECDSA', hash: { name: 'SHA-256' } });
      expect(csr.publicKey.algorithm).toMatchObject({ name: 'ECDSA', namedCurve: 'P-256' });
      expect(Buffer.from(csr.publicKey.rawData).equals(spkiDer)).toBe(true);
      // The returned PKCS#8 key is the private half of the key in the request.
      expect(spki(createPrivateKey(keyPem)).equals(spkiDer)).toBe(true);
      expect(keyPem).toMatch(/^-----BEGIN PRIVATE KEY-----\n/);
    }
  });

  it('the signed part is byte-equal to what @peculiar/x509 builds for the same key, subject and SAN (PrintableString and UTF8String subjects)', async () => {
    for (const [id, td] of [
      [WEB, TD],
      [LONG_300, TD],
      ['spiffe://my_domain.local/ns/a/sa/b', 'my_domain.local'], // '_' is not PrintableString
    ] as const) {
      const { privateKey } = await generateP256KeyPair();
      const ours = await buildCsrDer({ uri: id, organization: td, privateKey });
      const pkcs8 = privateKey.export({ type: 'pkcs8', format: 'der' });
      const alg = { name: 'ECDSA', namedCurve: 'P-256' } as const;
      const keys = {
        privateKey: await webcrypto.subtle.importKey('pkcs8', pkcs8, alg, true, ['sign']),
        publicKey: await webcrypto.subtle.importKey('spki', spki(privateKey), alg, true, ['verify']),
      };
      const theirs = await x509.Pkcs10CertificateRequestGenerator.create({
        name: `O=${td}`,
        keys: keys as unknown as webcrypto.CryptoKeyPair,
        signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
        extensions: [new x509.SubjectAlternativeNameExtension([{ type: 'url', value: id }], true)],
      });
      expect(tbsOf(ours).toString('hex'), id).toBe(tbsOf(Buffer.from(theirs.rawData)).toString('hex'));
    }
  });

  it('openssl req -verify accepts it and shows the SAN, the curve and the subject; DER lengths above 127 and 255 bytes included', async () => {
    for (const id of ids) {
      const { csrPem } = await createCsr(id, TD);
      const der = Buffer.from(csrPem.replace(/-----[^-]+-----|\s/g, ''), 'base64');
      if (id === LONG_300) expect(der[1]).toBe(0x82); // outer SEQUENCE needs two length bytes
      if (id === LONG_150) expect(der[1]).toBe(0x82);
      const { ok, verified, out } = await opensslReq(csrPem);
      expect(ok, out).toBe(true);
      expect(verified, out).toBe(true);
      expect(out).toContain(`URI:${id}`);
      expect(out).toMatch(/X509v3 Subject Alternative Name: critical/);
      expect(out).toMatch(/NIST CURVE: P-256/);
      expect(out).toMatch(/Subject: O\s?=\s?example\.org/);
      expect(out).toMatch(/Signature Algorithm: ecdsa-with-SHA256/);
    }
  });

  it('openssl rejects a request whose signature was tampered with (the check above can fail)', async () => {
    const { privateKey } = await generateP256KeyPair();
    const der = await buildCsrDer({ uri: WEB, organization: TD, privateKey });
    const i = der.indexOf(Buffer.from(WEB));
    der[i + 10] ^= 0x01; // flip a bit of the SAN inside the signed part
    const pem = `-----BEGIN CERTIFICATE REQUEST-----\n${der.toString('base64').replace(/(.{64})/g, '$1\n')}\n-----END CERTIFICATE REQUEST-----\n`;
    const { verified, out } = await opensslReq(pem);
    expect(out).toMatch(/verify fail/);
    expect(verified).toBe(false);
    await expect(new x509.Pkcs10CertificateRequest(pem).verify()).resolves.toBe(false);
  });

  it('no organization → empty subject; still verifies', async () => {
    const { privateKey } = await generateP256KeyPair();
    const pem = await buildCsrPem({ uri: WEB, privateKey });
    const csr = new x509.Pkcs10CertificateRequest(pem);
    expect(csr.subject).toBe('');
    expect(await csr.verify()).toBe(true);
  });

  it('refuses ids that cannot be an IA5String URI, naming the character and its position', async () => {
    await expectIdentityError(createCsr('spiffe://example.org/ns/dé/sa/web', TD), /"é" \(U\+00E9\) at index 25.*printable ASCII only/);
    await expectIdentityError(createCsr('spiffe://example.org/ns/default/sa/💥', TD), /U\+D83D.*at index 35/);
    await expectIdentityError(createCsr('spiffe://example.org/ns/a b/sa/web', TD), /" " \(U\+0020\) at index 25/);
    await expectIdentityError(createCsr('spiffe://example.org/ns/a\n/sa/web', TD), /U\+000A/);
    await expectIdentityError(createCsr('', TD), /non-empty string/);
    await expectIdentityError(createCsr(`spiffe://${TD}/ns/default/sa/${'x'.repeat(MAX_CSR_URI_LENGTH)}`, TD), /at most 2048/);
    await expectIdentityError(createCsr(WEB, 'bad\u0000org'), /organization.*control character/);
  });

  it('refuses keys that are not a P-256 private key, naming what was given', async () => {
    const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 });
    const p384 = generateKeyPairSync('ec', { namedCurve: 'secp384r1' });
    const p256 = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    await expectIdentityError(buildCsrDer({ uri: WEB, privateKey: rsa.privateKey }), /the key is rsa; an ECDSA P-256 key is required/);
    await expectIdentityError(buildCsrDer({ uri: WEB, privateKey: p384.privateKey }), /curve secp384r1/);
    await expectIdentityError(buildCsrDer({ uri: WEB, privateKey: p256.publicKey }), /public key; a private key is needed/);
    await expectIdentityError(buildCsrDer({ uri: WEB, privateKey: 'not a key' as unknown as KeyObject }), /KeyObject/);
  });
});

describe('round trip through the real control-plane CA', () => {
  let cp: ControlPlane;
  let channel: ControlPlaneChannel | undefined;

  beforeAll(async () => {
    const workloads = [WORKLOADS_YAML, podYaml('long-1', 'node1', '198.18.1.11', SA_150), podYaml('long-2', 'node1', '198.18.1.12', SA_300)].join('---\n');
    cp = await startTestControlPlane({ ...meshDirs(workloads), certTtlSeconds: 3600 });
  });
  afterAll(async () => {
    channel?.close();
    await cp?.close();
    cleanupDirs();
  });

  function createCertificate(csr: string): Promise<IstioCertificateResponse__Output> {
    const client = caClient(cp, TOKEN1);
    return new Promise((resolve, reject) => {
      client.CreateCertificate({ csr, validityDuration: 600 }, { deadline: Date.now() + 5000 }, (err, res) => {
        client.close();
        if (err) reject(err);
        else resolve(res!);
      });
    });
  }

  it('readCsr (the CA-side check) accepts it and returns our URI and key', async () => {
    for (const id of [WEB, LONG_300]) {
      const { csrPem, spkiDer } = await createCsr(id, TD);
      const read = await readCsr(csrPem);
      expect(read.uri).toBe(id);
      expect(spki(createPublicKey(read.publicKeySpkiPem)).equals(spkiDer)).toBe(true);
    }
  });

  it('CreateCertificate over gRPC: the leaf carries the SPIFFE id as its only SAN and the key of the request', async () => {
    const deadline = Date.now() + 10_000;
    for (const id of [WEB, LONG_150, LONG_300]) {
      const { csrPem, spkiDer } = await createCsr(id, TD);
      // The long-SA pods arrive through the file source shortly after start; retry PERMISSION_DENIED briefly.
      const res = await pollUntil(
        () => createCertificate(csrPem).catch((err: unknown) => err as Error),
        (r) => !(r instanceof Error) || (r as { code?: number }).code !== 7,
        deadline - Date.now(),
        100,
      );
      if (res instanceof Error) throw res;
      const leaf = new X509Certificate(res.certChain[0]!);
      expect(leaf.subjectAltName).toBe(`URI:${id}`);
      expect(spki(leaf.publicKey).equals(spkiDer)).toBe(true);
      expect(leaf.verify(new X509Certificate(cp.trustBundlePem).publicKey)).toBe(true);
    }
  });

  it('RemoteCa.issue against smesh control: verified chain, key matching the leaf', async () => {
    channel = new ControlPlaneChannel({ address: cp.address, trustAnchorsPem: cp.trustBundlePem, token: TOKEN1, controlPlaneId: controlSpiffeId(TD) });
    const ca = new RemoteCa({ channel, trustAnchorsPem: cp.trustBundlePem, ttlSeconds: 600, timeoutMs: 5000 });
    const issued = await ca.issue(WEB);
    const leaf = new X509Certificate(issued.certPem);
    expect(leaf.subjectAltName).toBe(`URI:${WEB}`);
    expect(spki(createPrivateKey(issued.keyPem)).equals(spki(leaf.publicKey))).toBe(true);
    expect(issued.chainPem.endsWith(cp.trustBundlePem)).toBe(true);
  });
});

describe('module weight', () => {
  it('loading remote-ca loads neither @peculiar/x509 (nor tsyringe, the asn1 schema modules, the reflect polyfill) nor the in-process CA', async () => {
    const script = [
      "require('./agent/identity/remote-ca.ts');",
      'const heavy = Object.keys(require.cache).filter((k) => /peculiar|tsyringe|asn1|reflect-polyfill|identity[\\/]ca\\.ts$/.test(k));',
      'process.stdout.write(JSON.stringify({ total: Object.keys(require.cache).length, heavy }));',
    ].join('\n');
    const out = await new Promise<string>((resolve, reject) => {
      execFile(process.execPath, ['--require', 'tsx/cjs', '-e', script], { cwd: join(__dirname, '../../../..'), timeout: 30_000 }, (err, stdout, stderr) =>
        err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(stdout),
      );
    });
    const { total, heavy } = JSON.parse(out) as { total: number; heavy: string[] };
    expect(total).toBeGreaterThan(5); // the script did load the module graph
    expect(heavy).toEqual([]);
  });
});
