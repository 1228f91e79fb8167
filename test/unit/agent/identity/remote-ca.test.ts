// RemoteCa against an in-test CreateCertificate server signing with LocalCa: happy path, PERMISSION_DENIED, and chains that must be rejected.
import '../../../../core/identity/reflect-polyfill';
import { createPrivateKey, createPublicKey, X509Certificate } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import * as x509 from '@peculiar/x509';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SmeshError } from '../../../../core/errors';
import { RemoteCa } from '../../../../agent/identity/remote-ca';
import { ControlPlaneChannel } from '../../../../agent/xds/channel';
import { CONTROL_ID, FakeControlPlane, meshPki, TD, TOKEN, type MeshPki } from '../../fixtures/xds';

type Mode = 'ok' | 'deny' | 'wrong-id' | 'wrong-key' | 'other-root' | 'leaf-only' | 'garbage';

const WEB = `spiffe://${TD}/ns/default/sa/web`;

describe('RemoteCa', () => {
  let pki: MeshPki;
  let rogue: MeshPki;
  let cp: FakeControlPlane;
  let channel: ControlPlaneChannel;
  let ca: RemoteCa;
  let mode: Mode = 'ok';
  const requested: Array<{ csrSan: string; ttl: number }> = [];

  beforeAll(async () => {
    pki = await meshPki();
    rogue = await meshPki('rogue root');
    cp = new FakeControlPlane(pki);
    cp.caHandler = (call, cb) => {
      void (async () => {
        const csr = new x509.Pkcs10CertificateRequest(call.request.csr);
        if (!(await csr.verify())) return cb({ code: grpc.status.INVALID_ARGUMENT, details: 'CSR signature' });
        const san = (csr.getExtension('2.5.29.17') as x509.SubjectAlternativeNameExtension).names.items.find((n) => n.type === 'url')!.value;
        requested.push({ csrSan: san, ttl: call.request.validityDuration });
        const publicKey = await csr.publicKey.export();
        switch (mode) {
          case 'deny':
            return cb({ code: grpc.status.PERMISSION_DENIED, details: `node node1 may not hold ${san}` });
          case 'wrong-id': {
            const c = await pki.ca.issue({ spiffeId: `spiffe://${TD}/ns/default/sa/admin`, publicKey });
            return cb(null, { certChain: [c.certPem, pki.rootPem] });
          }
          case 'wrong-key': {
            const c = await pki.ca.issue(san); // a key the server made, not ours
            return cb(null, { certChain: [c.certPem, pki.rootPem] });
          }
          case 'other-root': {
            const c = await rogue.ca.issue({ spiffeId: san, publicKey });
            return cb(null, { certChain: [c.certPem, rogue.rootPem] });
          }
          case 'garbage':
            return cb(null, { certChain: ['not a certificate'] });
          case 'leaf-only':
          case 'ok': {
            const c = await pki.ca.issue({ spiffeId: san, publicKey, ttlSeconds: call.request.validityDuration });
            // Istio allows one entry holding the whole PEM bundle as well as one entry per certificate.
            return cb(null, { certChain: mode === 'ok' ? [c.certPem, pki.rootPem] : [c.certPem] });
          }
        }
      })().catch((err: Error) => cb({ code: grpc.status.INTERNAL, details: err.message }));
    };
    await cp.start();
    channel = new ControlPlaneChannel({ address: cp.address, trustAnchorsPem: pki.rootPem, token: TOKEN, controlPlaneId: CONTROL_ID });
    ca = new RemoteCa({ channel, trustAnchorsPem: pki.rootPem, ttlSeconds: 3600, timeoutMs: 5000 });
  });

  afterAll(() => {
    channel?.close();
    cp?.stop();
  });

  it('happy path: CSR with the SPIFFE URI SAN, verified chain, our private key returned', async () => {
    mode = 'ok';
    const issued = await ca.issue(WEB);
    expect(requested.at(-1)).toEqual({ csrSan: WEB, ttl: 3600 });
    const leaf = new X509Certificate(issued.certPem);
    expect(leaf.subjectAltName).toBe(`URI:${WEB}`);
    expect(leaf.checkIssued(new X509Certificate(pki.rootPem))).toBe(true);
    // The key we hold belongs to the certificate.
    const fromKey = createPublicKey(createPrivateKey(issued.keyPem)).export({ type: 'spki', format: 'der' });
    expect(fromKey.equals(leaf.publicKey.export({ type: 'spki', format: 'der' }))).toBe(true);
    expect(issued.keyPem).toMatch(/^-----BEGIN PRIVATE KEY-----/);
    expect(issued.chainPem).toBe(issued.certPem + pki.rootPem);
    expect(issued.spiffeId).toBe(WEB);
    expect(issued.notAfter.getTime() - Date.now()).toBeLessThanOrEqual(3600_000);
    expect(issued.notAfter.getTime()).toBeGreaterThan(Date.now());
    expect(ca.trustBundlePem()).toBe(pki.rootPem);
    expect(cp.authorizations.at(-1)).toBe(`Bearer ${TOKEN}`);
  });

  it('a response without roots (leaf only) is completed from our anchors', async () => {
    mode = 'leaf-only';
    const issued = await ca.issue(WEB);
    expect(issued.chainPem).toBe(issued.certPem + pki.rootPem);
  });

  it('PERMISSION_DENIED is a SMESH_ERR_IDENTITY naming the identity, the status and what to check', async () => {
    mode = 'deny';
    const err = await ca.issue(WEB).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SmeshError);
    expect((err as SmeshError).code).toBe('SMESH_ERR_IDENTITY');
    expect((err as SmeshError).message).toContain(`certificate for ${WEB}: PERMISSION_DENIED: node node1 may not hold ${WEB}`);
    expect((err as SmeshError).message).toContain('scheduled on this node');
    expect((err as { grpcCode?: number }).grpcCode).toBe(grpc.status.PERMISSION_DENIED);
  });

  it.each<[Mode, RegExp]>([
    ['wrong-id', /leaf URI SAN is "spiffe:\/\/cluster\.local\/ns\/default\/sa\/admin", expected spiffe:\/\/cluster\.local\/ns\/default\/sa\/web/],
    ['wrong-key', /leaf public key is not the key of our CSR/],
    ['other-root', /does not chain to a trusted anchor/],
    ['garbage', /cert_chain holds no PEM certificate/],
  ])('rejects a response with %s', async (m, message) => {
    mode = m;
    const err = await ca.issue(WEB).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SmeshError);
    expect((err as SmeshError).code).toBe('SMESH_ERR_IDENTITY');
    expect((err as SmeshError).message).toContain(`unusable certificate for ${WEB}`);
    expect((err as SmeshError).message).toMatch(message);
    expect((err as SmeshError).message).not.toContain('PRIVATE KEY');
  });

  it('setTrustAnchors: new anchors are used for verification and announced; invalid ones are refused', async () => {
    const seen: string[] = [];
    const local = new RemoteCa({ channel, trustAnchorsPem: pki.rootPem });
    local.onTrustAnchorsChange((b) => seen.push(b));
    mode = 'other-root';
    await expect(local.issue(WEB)).rejects.toThrow(/does not chain/);
    // Rotation: both roots trusted.
    local.setTrustAnchors([pki.rootPem, rogue.rootPem]);
    expect(seen).toEqual([pki.rootPem + rogue.rootPem]);
    expect(local.trustBundlePem()).toBe(pki.rootPem + rogue.rootPem);
    const issued = await local.issue(WEB);
    expect(issued.chainPem.endsWith(rogue.rootPem)).toBe(true);
    local.setTrustAnchors([rogue.rootPem, pki.rootPem, pki.rootPem]);
    expect(seen).toHaveLength(2);
    local.setTrustAnchors([rogue.rootPem, pki.rootPem]); // no change: no event
    expect(seen).toHaveLength(2);
    expect(() => local.setTrustAnchors([pki.serverCertPem])).toThrow(SmeshError);
    expect(() => local.setTrustAnchors([])).toThrow(/no PEM certificate/);
    expect(local.trustBundlePem()).toBe(rogue.rootPem + pki.rootPem);
  });

  it('an invalid SPIFFE id fails before any call', async () => {
    const n = requested.length;
    await expect(ca.issue('spiffe://cluster.local/whatever')).rejects.toThrow(/not a valid smesh SPIFFE id/);
    expect(requested.length).toBe(n);
  });
});
