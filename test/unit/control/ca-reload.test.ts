// Root rotation without a restart: --ca-dir is watched; next root published to agents, promotion signs with the new root (leaves and the serving certificate), previous root retired, broken files rejected (named, counted, no key material logged) with the previous roots kept.
import * as grpc from '@grpc/grpc-js';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tls from 'node:tls';
import type pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { loadOrCreateRootCa } from '../../../core/identity/local-ca';
import { RemoteCa } from '../../../agent/identity/remote-ca';
import { ControlPlaneChannel } from '../../../agent/xds/channel';
import { XdsClient } from '../../../agent/xds/client';
import { CA_FILES, controlSpiffeId } from '../../../control/ca-service';
import { startControlPlane, type ControlPlane } from '../../../control/main';
import { FileSource } from '../../../control/sources/files';
import type { IstioCertificateResponse__Output } from '../../../proto/generated/istio/v1/auth/IstioCertificateResponse';
import { AdsTestClient, caClient, cleanupDirs, makeCsr, meshDirs, tempDir, TOKEN1, TOKENS } from '../fixtures/control';
import { captureLogs, waitUntil } from '../../helpers/logs';
import { XDS_TYPE_URL, xdsCodecs } from '../../../core/xds/contract';

const TD = 'example.org';
const WEB = `spiffe://${TD}/ns/default/sa/web`;

interface Root {
  certPem: string;
  keyPem: string;
  fingerprint: string;
}

/** A fresh self-signed mesh root made the way smesh makes its own. */
async function newRoot(): Promise<Root> {
  const dir = join(tempDir(), 'root');
  await loadOrCreateRootCa(dir, TD);
  const certPem = readFileSync(join(dir, 'root-cert.pem'), 'utf8');
  return { certPem, keyPem: readFileSync(join(dir, 'root-key.pem'), 'utf8'), fingerprint: new X509Certificate(certPem).fingerprint256 };
}

function readRoot(caDir: string): Root {
  const certPem = readFileSync(join(caDir, CA_FILES.rootCert), 'utf8');
  return { certPem, keyPem: readFileSync(join(caDir, CA_FILES.rootKey), 'utf8'), fingerprint: new X509Certificate(certPem).fingerprint256 };
}

/** Writes a file the way careful tooling does: a temporary sibling renamed into place. */
function put(dir: string, name: string, text: string): void {
  writeFileSync(join(dir, `.${name}.tmp`), text, { mode: 0o600 });
  renameSync(join(dir, `.${name}.tmp`), join(dir, name));
}

const fp = (pem: string): string => new X509Certificate(pem).fingerprint256;

function createCertificate(cp: ControlPlane, csr: string): Promise<IstioCertificateResponse__Output> {
  const client = caClient(cp, TOKEN1);
  return new Promise((resolve, reject) => {
    client.CreateCertificate({ csr, validityDuration: 0 }, { deadline: Date.now() + 5000 }, (err, res) => {
      client.close();
      if (err) reject(err);
      else resolve(res!);
    });
  });
}

/** Whether a fresh TLS connection's serving certificate verifies against `caPem` alone. */
function servingChainsTo(cp: ControlPlane, caPem: string): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port: cp.port, ca: caPem, servername: 'localhost', ALPNProtocols: ['h2'], rejectUnauthorized: false }, () => {
      const ok = s.authorized;
      s.destroy();
      resolve(ok);
    });
    s.on('error', reject);
  });
}

/** Next MeshConfig push on `c`, ACKed; returns the anchor fingerprints. */
async function nextAnchors(c: AdsTestClient, timeoutMs = 3000): Promise<string[]> {
  const r = await c.next(XDS_TYPE_URL.meshConfig, timeoutMs);
  c.ack(r);
  return xdsCodecs().meshConfig.unpack(r.resources[0]!.resource!).trustAnchors.map(fp);
}

/** The base64 body lines of a PEM key (what must never show up in logs). */
function keyLines(keyPem: string): string[] {
  return keyPem.split('\n').filter((l) => l.length > 20 && !l.startsWith('-----'));
}

describe('control: --ca-dir reload (root rotation without a restart)', () => {
  let cp: ControlPlane | undefined;
  const cleanups: Array<() => void> = [];
  afterEach(async () => {
    for (const f of cleanups.splice(0).reverse()) f();
    await cp?.close();
    cp = undefined;
    cleanupDirs();
  });

  const start = async (logger: pino.Logger): Promise<{ caDir: string; cp: ControlPlane }> => {
    const { configDir, caDir } = meshDirs();
    cp = await startControlPlane({
      source: new FileSource({ dir: configDir, debounceMs: 30, rescanMs: 300 }),
      caDir,
      tokens: { ...TOKENS },
      listen: '127.0.0.1:0',
      caReloadIntervalMs: 200,
      caReloadDebounceMs: 100,
      logger,
    });
    return { caDir, cp };
  };

  it('introduce → promote → retire: anchors published, new root signs leaves and the serving certificate, agents follow without restarts', async () => {
    const log = captureLogs();
    const { caDir } = await start(log.logger);
    const a = readRoot(caDir);
    const b = await newRoot();

    // A real agent-side stack on node1: xDS client, RemoteCa fed with MeshConfig anchors, one channel trusting them.
    let remote: RemoteCa | undefined;
    const channel = new ControlPlaneChannel({ address: `127.0.0.1:${cp!.port}`, trustAnchorsPem: () => remote!.trustBundlePem(), token: TOKEN1, controlPlaneId: controlSpiffeId(TD) });
    remote = new RemoteCa({ channel: { caClient: () => channel.caClient() }, trustAnchorsPem: a.certPem });
    const xds = new XdsClient({ channel, nodeName: 'node1', backoff: { initialMs: 50, maxMs: 500 } });
    xds.onTrustAnchors((anchors) => remote!.setTrustAnchors(anchors));
    cleanups.push(() => channel.close());
    cleanups.push(() => xds.close());
    xds.start();
    expect(await xds.waitForSync(5000)).toBe(true);
    const streamsStarted = xds.status().streamsStarted;

    const watcher = new AdsTestClient(cp!, TOKEN1);
    cleanups.push(() => watcher.close());
    watcher.send({ typeUrl: XDS_TYPE_URL.meshConfig, resourceNamesSubscribe: ['*'] });
    expect(await nextAnchors(watcher)).toEqual([a.fingerprint]);

    // 1. Introduce: next-root-cert.pem (+ key) is published as a second anchor; the current root still signs.
    put(caDir, CA_FILES.nextRootKey, b.keyPem);
    put(caDir, CA_FILES.nextRootCert, b.certPem);
    expect(await nextAnchors(watcher)).toEqual([a.fingerprint, b.fingerprint]);
    await waitUntil(() => remote!.trustBundlePem().includes(b.certPem.trim()), 3000, 'agent received the next root');
    let chain = (await createCertificate(cp!, await makeCsr({ uris: [WEB] }))).certChain;
    expect(new X509Certificate(chain[0]!).verify(new X509Certificate(a.certPem).publicKey)).toBe(true);
    expect(await servingChainsTo(cp!, a.certPem)).toBe(true);

    // 2. Promote: the old root becomes previous-root-cert.pem, next-* move onto root-* (several steps).
    put(caDir, CA_FILES.previousRootCert, a.certPem);
    renameSync(join(caDir, CA_FILES.nextRootKey), join(caDir, CA_FILES.rootKey));
    renameSync(join(caDir, CA_FILES.nextRootCert), join(caDir, CA_FILES.rootCert));
    expect(await nextAnchors(watcher)).toEqual([b.fingerprint, a.fingerprint]);
    chain = (await createCertificate(cp!, await makeCsr({ uris: [WEB] }))).certChain;
    expect(chain.map(fp)).toEqual([fp(chain[0]!), b.fingerprint, a.fingerprint]);
    const leaf = new X509Certificate(chain[0]!);
    expect(leaf.verify(new X509Certificate(b.certPem).publicKey)).toBe(true);
    expect(leaf.verify(new X509Certificate(a.certPem).publicKey)).toBe(false);
    expect(leaf.checkIssued(new X509Certificate(b.certPem))).toBe(true);
    // The serving certificate was re-issued from the new root.
    await waitUntil(() => servingChainsTo(cp!, b.certPem), 2000, 'serving certificate from the new root');
    expect(await servingChainsTo(cp!, a.certPem)).toBe(false);
    expect(fp(cp!.trustBundlePem)).toBe(b.fingerprint);
    // The agent: still on its stream, and its next CSR (a new connection, verified against the anchors it was pushed) gets a new-root leaf.
    const issued = await remote.issue(WEB);
    expect(new X509Certificate(issued.certPem).verify(new X509Certificate(b.certPem).publicKey)).toBe(true);
    expect(xds.status().connected).toBe(true);
    expect(xds.status().streamsStarted).toBe(streamsStarted);
    expect(log.lines.some((l) => l.includes('CA root promoted'))).toBe(true);
    expect(log.lines.some((l) => l.includes('was not published before'))).toBe(false);

    // 3. Retire: removing previous-root-cert.pem stops publishing it.
    rmSync(join(caDir, CA_FILES.previousRootCert));
    expect(await nextAnchors(watcher)).toEqual([b.fingerprint]);
    await waitUntil(() => !remote!.trustBundlePem().includes(a.certPem.trim()), 3000, 'agent dropped the old root');
    expect((await cp!.metrics.caReloads.get()).values[0]!.value).toBe(3);
    expect((await cp!.metrics.caTrustAnchors.get()).values[0]!.value).toBe(1);
    expect((await cp!.metrics.caReloadErrors.get()).values.reduce((s, v) => s + v.value, 0)).toBe(0);
    const all = log.lines.join('\n');
    for (const line of [...keyLines(a.keyPem), ...keyLines(b.keyPem)]) expect(all).not.toContain(line);
  });

  it('broken files (bad PEM, mismatched key, not a CA, missing root) are rejected by name and counted; the previous roots keep signing and stay published', async () => {
    const log = captureLogs();
    const { caDir } = await start(log.logger);
    const a = readRoot(caDir);
    const c = await newRoot();
    const watcher = new AdsTestClient(cp!, TOKEN1);
    cleanups.push(() => watcher.close());
    watcher.send({ typeUrl: XDS_TYPE_URL.meshConfig, resourceNamesSubscribe: ['*'] });
    expect(await nextAnchors(watcher)).toEqual([a.fingerprint]);
    const errors = async (file: string): Promise<number> => (await cp!.metrics.caReloadErrors.get()).values.find((v) => v.labels.file === file)?.value ?? 0;
    const rejected = (file: string, reason: RegExp): void => {
      const hit = log.lines
        .map((l) => JSON.parse(l) as { msg: string; file?: string; error?: string })
        .find((l) => l.msg.includes('CA directory change rejected') && l.file === join(caDir, file) && reason.test(l.error ?? ''));
      expect(hit, `${file}: ${reason}`).toBeDefined();
    };
    const stillA = async (): Promise<void> => {
      const chain = (await createCertificate(cp!, await makeCsr({ uris: [WEB] }))).certChain;
      expect(new X509Certificate(chain[0]!).verify(new X509Certificate(a.certPem).publicKey)).toBe(true);
      expect(chain.slice(1).map(fp)).toEqual([a.fingerprint]);
    };

    // Half-written certificate.
    put(caDir, CA_FILES.nextRootCert, c.certPem.slice(0, 200));
    await waitUntil(async () => (await errors(CA_FILES.nextRootCert)) === 1, 3000, 'bad PEM counted');
    rejected(CA_FILES.nextRootCert, /not a valid X\.509 certificate|not a PEM certificate/);

    // A key that is not the certificate's.
    put(caDir, CA_FILES.nextRootKey, a.keyPem);
    put(caDir, CA_FILES.nextRootCert, c.certPem);
    await waitUntil(async () => (await errors(CA_FILES.nextRootKey)) === 1, 3000, 'mismatched next key counted');
    rejected(CA_FILES.nextRootKey, /does not match next-root-cert\.pem/);
    // The right key, but SEC1-encoded (smesh reads PKCS#8): named with how to convert it.
    put(caDir, CA_FILES.nextRootKey, createPrivateKey(c.keyPem).export({ type: 'sec1', format: 'pem' }) as string);
    await waitUntil(async () => (await errors(CA_FILES.nextRootKey)) === 2, 3000, 'SEC1 key counted');
    rejected(CA_FILES.nextRootKey, /SEC1 EC key.*openssl pkcs8 -topk8/);
    rmSync(join(caDir, CA_FILES.nextRootKey));
    rmSync(join(caDir, CA_FILES.nextRootCert));

    // A leaf (not a CA) as previous root.
    const leafPem = (await createCertificate(cp!, await makeCsr({ uris: [WEB] }))).certChain[0]!;
    put(caDir, CA_FILES.previousRootCert, leafPem);
    await waitUntil(async () => (await errors(CA_FILES.previousRootCert)) === 1, 3000, 'not-a-CA counted');
    rejected(CA_FILES.previousRootCert, /is not a CA certificate/);
    rmSync(join(caDir, CA_FILES.previousRootCert));

    // The signing key replaced by another root's key; then the key file removed.
    put(caDir, CA_FILES.rootKey, c.keyPem);
    await waitUntil(async () => (await errors(CA_FILES.rootKey)) === 1, 3000, 'mismatched root key counted');
    rejected(CA_FILES.rootKey, /does not match root-cert\.pem/);
    put(caDir, CA_FILES.rootKey, 'garbage\n');
    await waitUntil(async () => (await errors(CA_FILES.rootKey)) === 2, 3000, 'garbage root key counted');
    rejected(CA_FILES.rootKey, /not a PEM private key/);
    rmSync(join(caDir, CA_FILES.rootKey));
    await waitUntil(async () => (await errors(CA_FILES.rootKey)) === 3, 3000, 'missing root key counted');
    rejected(CA_FILES.rootKey, /missing/);

    // Through all of it: still signing with A, A alone published (no MeshConfig push), serving certificate from A.
    await stillA();
    expect(await watcher.drain(200)).toEqual([]);
    expect(await servingChainsTo(cp!, a.certPem)).toBe(true);
    expect((await cp!.metrics.caReloads.get()).values[0]?.value ?? 0).toBe(0);

    // Repaired: nothing changed on the wire, and later good changes apply again.
    put(caDir, CA_FILES.rootKey, a.keyPem);
    put(caDir, CA_FILES.nextRootCert, c.certPem);
    expect(await nextAnchors(watcher)).toEqual([a.fingerprint, c.fingerprint]);

    const all = log.lines.join('\n');
    const sec1 = createPrivateKey(c.keyPem).export({ type: 'sec1', format: 'pem' }) as string;
    for (const line of [...keyLines(a.keyPem), ...keyLines(c.keyPem), ...keyLines(sec1)]) expect(all).not.toContain(line);
    expect(all).not.toContain('garbage');
  });

  it('at start-up a broken --ca-dir fails naming the file, without key material', async () => {
    const { configDir, caDir } = meshDirs();
    await loadOrCreateRootCa(caDir, TD);
    const other = await newRoot();
    put(caDir, CA_FILES.rootKey, other.keyPem);
    const err = await startControlPlane({ source: new FileSource({ dir: configDir }), caDir, tokens: { ...TOKENS }, listen: '127.0.0.1:0' }).then(
      () => undefined,
      (e: Error) => e,
    );
    expect(err?.message).toBe(`${join(caDir, CA_FILES.rootKey)}: does not match root-cert.pem (the key is not the certificate's)`);
  });

  it('a promotion without introducing the root first works but warns that agents may not trust it yet', async () => {
    const log = captureLogs();
    const { caDir } = await start(log.logger);
    const a = readRoot(caDir);
    const d = await newRoot();
    put(caDir, CA_FILES.previousRootCert, a.certPem);
    put(caDir, CA_FILES.rootKey, d.keyPem);
    put(caDir, CA_FILES.rootCert, d.certPem);
    await waitUntil(() => cp!.ca.rootFingerprint === d.fingerprint, 3000, 'promotion applied');
    expect(cp!.ca.trustAnchors.map(fp)).toEqual([d.fingerprint, a.fingerprint]);
    await waitUntil(() => log.lines.some((l) => l.includes('was not published before')), 2000, 'warning logged');
    await waitUntil(() => servingChainsTo(cp!, d.certPem), 2000, 'serving certificate from the new root');
    // The CA service is unaffected by which path changed it.
    await expect(createCertificate(cp!, 'not a csr')).rejects.toMatchObject({ code: grpc.status.INVALID_ARGUMENT });
  });
});
