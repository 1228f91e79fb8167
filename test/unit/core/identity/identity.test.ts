// Mesh CA creation race, issued leaf contents, SPIFFE id helpers, and certificate renewal at half-life.
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadOrCreateRootCa } from '../../../../core/identity/local-ca';
import { IdentityManager } from '../../../../agent/identity/manager';
import { nodeSpiffeId, parseSpiffeId, spiffeIdFromSubjectAltName, workloadSpiffeId } from '../../../../core/identity/spiffe';
import type { CertificateSource } from '../../../../core/identity/types';
import { SmeshError } from '../../../../core/errors';
import { tempDir, TD, waitFor } from '../../fixtures/proxy';

describe('loadOrCreateRootCa', () => {
  it('agents racing on one directory end up with the same root, and no temp dirs are left', async () => {
    const t = await tempDir();
    try {
      const dir = path.join(t.dir, 'ca');
      const cas = await Promise.all([1, 2, 3, 4].map(() => loadOrCreateRootCa(dir, TD)));
      const roots = new Set(cas.map((c) => c.rootCertPem));
      expect(roots.size).toBe(1);
      const again = await loadOrCreateRootCa(dir, TD);
      expect(again.rootCertPem).toBe(cas[0]!.rootCertPem);
      expect((await readdir(t.dir)).sort()).toEqual(['ca']);
      expect((await readdir(dir)).sort()).toEqual(['root-cert.pem', 'root-key.pem']);
      const root = new X509Certificate(again.rootCertPem);
      expect(root.ca).toBe(true);
      expect(root.publicKey.asymmetricKeyDetails?.namedCurve).toBe('prime256v1');
      expect(new Date(root.validTo).getTime() - Date.now()).toBeGreaterThan(9 * 365 * 24 * 3600 * 1000);
    } finally {
      await t.cleanup();
    }
  });

  it('issues a leaf with the SPIFFE URI SAN, client+server EKU, not a CA, chained to the root', async () => {
    const t = await tempDir();
    try {
      const ca = await loadOrCreateRootCa(path.join(t.dir, 'ca'), TD);
      const id = workloadSpiffeId(TD, 'default', 'web');
      const issued = await ca.issue({ spiffeId: id, ttlSeconds: 3600 });
      const leaf = new X509Certificate(issued.certPem);
      const root = new X509Certificate(ca.rootCertPem);
      expect(leaf.subjectAltName).toBe(`URI:${id}`);
      expect(leaf.ca).toBe(false);
      expect(leaf.checkIssued(root)).toBe(true);
      expect(leaf.verify(root.publicKey)).toBe(true);
      expect(leaf.keyUsage).toEqual(expect.arrayContaining(['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2']));
      expect(leaf.checkPrivateKey(createPrivateKey(issued.keyPem))).toBe(true);
      expect(issued.chainPem.startsWith(issued.certPem)).toBe(true);
      expect(issued.chainPem.endsWith(ca.rootCertPem)).toBe(true);
      expect(Math.abs(issued.notAfter.getTime() - Date.now() - 3600_000)).toBeLessThan(10_000);
      await expect(ca.issue('spiffe://other.domain/ns/a/sa/b')).rejects.toMatchObject({ code: 'SMESH_ERR_IDENTITY' });
      await expect(ca.issue('not-a-spiffe-id')).rejects.toBeInstanceOf(SmeshError);
    } finally {
      await t.cleanup();
    }
  });
});

describe('SPIFFE ids', () => {
  it('builds and parses workload and node ids', () => {
    expect(workloadSpiffeId(TD, 'default', 'web')).toBe('spiffe://cluster.local/ns/default/sa/web');
    expect(nodeSpiffeId(TD, 'node1')).toBe('spiffe://cluster.local/smesh/node/node1');
    expect(parseSpiffeId('spiffe://cluster.local/ns/default/sa/web')).toMatchObject({ kind: 'workload', namespace: 'default', serviceAccount: 'web' });
    expect(parseSpiffeId('spiffe://cluster.local/smesh/node/n-1')).toMatchObject({ kind: 'node', nodeName: 'n-1' });
    for (const bad of ['http://x/ns/a/sa/b', 'spiffe://cluster.local/ns/a/sa', 'spiffe://Cluster/ns/a/sa/b', 'spiffe://td/ns/../sa/b', 'spiffe:///ns/a/sa/b']) {
      expect(parseSpiffeId(bad)).toBeUndefined();
    }
    expect(() => workloadSpiffeId(TD, 'a/b', 'c')).toThrow(SmeshError);
  });

  it('extracts exactly one SPIFFE URI SAN from Node subjectAltName text', () => {
    expect(spiffeIdFromSubjectAltName('URI:spiffe://cluster.local/ns/a/sa/b')).toBe('spiffe://cluster.local/ns/a/sa/b');
    expect(spiffeIdFromSubjectAltName('DNS:x.example, URI:spiffe://cluster.local/ns/a/sa/b, IP Address:1.2.3.4')).toBe('spiffe://cluster.local/ns/a/sa/b');
    expect(spiffeIdFromSubjectAltName('URI:spiffe://cluster.local/ns/a/sa/b, URI:spiffe://cluster.local/ns/c/sa/d')).toBeUndefined();
    expect(spiffeIdFromSubjectAltName('DNS:x.example')).toBeUndefined();
    expect(spiffeIdFromSubjectAltName(undefined)).toBeUndefined();
    expect(spiffeIdFromSubjectAltName('URI:"spiffe://cluster.local/ns/a/sa/b,evil"')).toBeUndefined();
  });
});

describe('IdentityManager', () => {
  it('issues on ensure, serves get(), and renews at half-life', async () => {
    const t = await tempDir();
    const ca = await loadOrCreateRootCa(path.join(t.dir, 'ca'), TD);
    let issued = 0;
    // 4 s certificates not backdated: renewal due after ~2 s (the floor is 1 s).
    const source: CertificateSource = {
      trustBundlePem: () => ca.trustBundlePem(),
      issue: async (id) => {
        issued++;
        const c = await ca.issue({ spiffeId: id, ttlSeconds: 4 });
        return { ...c, notBefore: new Date() };
      },
    };
    const m = new IdentityManager({ source, nodeId: nodeSpiffeId(TD, 'n1') });
    try {
      const web = workloadSpiffeId(TD, 'default', 'web');
      await m.ensure([web]);
      expect(issued).toBe(2);
      const first = m.get(web)!;
      expect(first.keyPem).toContain('PRIVATE KEY');
      expect(
        m
          .list()
          .map((c) => c.spiffeId)
          .sort(),
      ).toEqual([nodeSpiffeId(TD, 'n1'), web].sort());
      const rotated: string[] = [];
      m.onRotate((id) => rotated.push(id));
      await m.ensure([web]);
      expect(issued).toBe(2); // nothing new to issue
      await waitFor(() => rotated.includes(web), 6000);
      expect(m.get(web)!.certPem).not.toBe(first.certPem);
      m.retain([]);
      expect(m.get(web)).toBeUndefined();
      expect(m.get(m.nodeId)).toBeDefined();
    } finally {
      m.close();
      await t.cleanup();
    }
  });

  it('keeps the old certificate and retries when the CA fails', async () => {
    let fail = false;
    const t = await tempDir();
    const ca = await loadOrCreateRootCa(path.join(t.dir, 'ca'), TD);
    const source: CertificateSource = {
      trustBundlePem: () => ca.trustBundlePem(),
      issue: async (id) => {
        if (fail) throw new Error('CA unreachable');
        return ca.issue(id);
      },
    };
    const m = new IdentityManager({ source, nodeId: nodeSpiffeId(TD, 'n1'), retryMs: 10 });
    try {
      await m.ensure();
      fail = true;
      await expect(m.certificate(workloadSpiffeId(TD, 'x', 'y'))).rejects.toMatchObject({ code: 'SMESH_ERR_IDENTITY' });
      expect(m.get(m.nodeId)).toBeDefined();
    } finally {
      m.close();
      await t.cleanup();
    }
  });
});
