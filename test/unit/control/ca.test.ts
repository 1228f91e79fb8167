// The control plane's CA over real gRPC: issues for own-node workloads and the node id, refuses other identities (PERMISSION_DENIED, counted), rejects unusable CSRs (INVALID_ARGUMENT), serves rotation anchors.
import * as grpc from '@grpc/grpc-js';
import { X509Certificate } from 'node:crypto';
import { copyFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadOrCreateRootCa } from '../../../core/identity/local-ca';
import { MeshCa } from '../../../control/ca-service';
import type { ControlPlane } from '../../../control/main';
import type { IstioCertificateResponse__Output } from '../../../proto/generated/istio/v1/auth/IstioCertificateResponse';
import { caClient, cleanupDirs, makeCsr, meshDirs, startTestControlPlane, tempDir, TOKEN1, TOKEN2 } from '../fixtures/control';

function createCertificate(cp: ControlPlane, token: string | undefined, csr: string, validityDuration = 0): Promise<IstioCertificateResponse__Output> {
  const client = caClient(cp, token);
  return new Promise<IstioCertificateResponse__Output>((resolve, reject) => {
    client.CreateCertificate({ csr, validityDuration }, { deadline: Date.now() + 5000 }, (err, res) => {
      client.close();
      if (err) reject(err);
      else resolve(res!);
    });
  });
}

async function refusedCount(cp: ControlPlane): Promise<number> {
  return (await cp.metrics.caRefused.get()).values.reduce((a, v) => a + v.value, 0);
}

describe('control: CA (IstioCertificateService/CreateCertificate)', () => {
  let cp: ControlPlane;

  beforeAll(async () => {
    cp = await startTestControlPlane({ ...meshDirs(), certTtlSeconds: 3600 });
  });
  afterAll(async () => {
    await cp.close();
    cleanupDirs();
  });

  it('issues a workload certificate for a pod on the caller node: leaf first, then the root; TTL capped', async () => {
    const id = 'spiffe://example.org/ns/default/sa/web';
    const res = await createCertificate(cp, TOKEN1, await makeCsr({ uris: [id] }), 7 * 24 * 3600);
    expect(res.certChain).toHaveLength(2);
    const leaf = new X509Certificate(res.certChain[0]!);
    const root = new X509Certificate(res.certChain[1]!);
    expect(leaf.subjectAltName).toBe(`URI:${id}`);
    expect(leaf.verify(root.publicKey)).toBe(true);
    expect(res.certChain[1]).toBe(cp.trustBundlePem);
    const lifetime = (Date.parse(leaf.validTo) - Date.now()) / 1000;
    expect(lifetime).toBeLessThanOrEqual(3600 + 5);
    expect(lifetime).toBeGreaterThan(3500);
  });

  it('issues the caller its own node identity', async () => {
    const res = await createCertificate(cp, TOKEN2, await makeCsr({ uris: ['spiffe://example.org/smesh/node/node2'] }));
    expect(new X509Certificate(res.certChain[0]!).subjectAltName).toBe('URI:spiffe://example.org/smesh/node/node2');
  });

  it("refuses another node's workload identity, another node id and foreign trust domains (PERMISSION_DENIED, counted)", async () => {
    const cases = [
      ['spiffe://example.org/ns/default/sa/web', TOKEN2], // web runs on node1 only
      ['spiffe://example.org/smesh/node/node1', TOKEN2],
      ['spiffe://example.org/ns/default/sa/nobody', TOKEN1],
      ['spiffe://other.org/ns/default/sa/web', TOKEN1],
    ] as const;
    for (const [id, token] of cases) {
      const before = await refusedCount(cp);
      const err = await createCertificate(cp, token, await makeCsr({ uris: [id] })).then(
        () => undefined,
        (e: grpc.ServiceError) => e,
      );
      expect(err?.code, id).toBe(grpc.status.PERMISSION_DENIED);
      expect(err?.details).toContain(id);
      expect(await refusedCount(cp)).toBe(before + 1);
    }
  });

  it('rejects unusable CSRs with INVALID_ARGUMENT naming the problem', async () => {
    const cases: Array<[string, Promise<string> | string, RegExp]> = [
      ['garbage', 'not a csr at all', /PEM-encoded PKCS#10/],
      ['garbage inside PEM', '-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n', /cannot parse/],
      ['signature mismatch', makeCsr({ uris: ['spiffe://example.org/ns/default/sa/web'], spoofPublicKey: true }), /signature does not verify/],
      ['no URI SAN', makeCsr({}), /no URI SAN/],
      ['two URI SANs', makeCsr({ uris: ['spiffe://example.org/ns/default/sa/web', 'spiffe://example.org/ns/default/sa/client'] }), /2 URI SANs/],
      ['not a mesh id', makeCsr({ uris: ['https://example.org/x'] }), /is not spiffe:/],
    ];
    for (const [what, csr, message] of cases) {
      const err = await createCertificate(cp, TOKEN1, await csr).then(
        () => undefined,
        (e: grpc.ServiceError) => e,
      );
      expect(err?.code, what).toBe(grpc.status.INVALID_ARGUMENT);
      expect(err?.details, what).toMatch(message);
    }
  });

  it('refuses callers without a valid token (UNAUTHENTICATED)', async () => {
    const csr = await makeCsr({ uris: ['spiffe://example.org/ns/default/sa/web'] });
    for (const token of [undefined, 'wrong-token-123']) {
      const err = await createCertificate(cp, token, csr).then(
        () => undefined,
        (e: grpc.ServiceError) => e,
      );
      expect(err?.code).toBe(grpc.status.UNAUTHENTICATED);
    }
  });
});

describe('control: CA root rotation', () => {
  afterAll(() => cleanupDirs());

  it('publishes next-root-cert.pem and previous-root-cert.pem as extra trust anchors, signing with root-cert.pem', async () => {
    const caDir = join(tempDir(), 'ca');
    await loadOrCreateRootCa(caDir, 'example.org');
    const next = join(tempDir(), 'next');
    await loadOrCreateRootCa(next, 'example.org');
    const prev = join(tempDir(), 'prev');
    await loadOrCreateRootCa(prev, 'example.org');
    mkdirSync(caDir, { recursive: true });
    copyFileSync(join(next, 'root-cert.pem'), join(caDir, 'next-root-cert.pem'));
    copyFileSync(join(next, 'root-key.pem'), join(caDir, 'next-root-key.pem'));
    copyFileSync(join(prev, 'root-cert.pem'), join(caDir, 'previous-root-cert.pem'));
    const ca = await MeshCa.load(caDir, 'example.org');
    expect(ca.trustAnchors).toHaveLength(3);

    const { chain } = await ca.issueLeaf(
      'spiffe://example.org/ns/default/sa/web',
      (await import('node:crypto')).generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ type: 'spki', format: 'pem' }) as string,
      600,
    );
    expect(chain).toHaveLength(4);
    const leaf = new X509Certificate(chain[0]!);
    expect(leaf.verify(new X509Certificate(chain[1]!).publicKey)).toBe(true);
    expect(leaf.verify(new X509Certificate(chain[2]!).publicKey)).toBe(false);

    // A mismatching next key is refused loudly.
    copyFileSync(join(prev, 'root-key.pem'), join(caDir, 'next-root-key.pem'));
    await expect(MeshCa.load(caDir, 'example.org')).rejects.toThrow(/does not match/);
  });
});
