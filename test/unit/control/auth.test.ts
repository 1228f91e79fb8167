// Control-plane authentication and serving TLS at run time: the tokens file reloads (added tokens work, revoked ones are refused for new streams and CSRs and their open streams are cut, a bad edit keeps the old set), and the serving certificate rotates without a restart.
import * as grpc from '@grpc/grpc-js';
import { renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tls from 'node:tls';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { TokenAuthenticator, TokenFileWatcher } from '../../../control/auth';
import { startControlPlane, type ControlPlane } from '../../../control/main';
import { FileSource } from '../../../control/sources/files';
import type { IstioCertificateResponse__Output } from '../../../proto/generated/istio/v1/auth/IstioCertificateResponse';
import { AdsTestClient, caClient, cleanupDirs, makeCsr, meshDirs, podYaml, tempDir, WORKLOADS_YAML } from '../fixtures/control';
import { XDS_TYPE_URL } from '../../../core/xds/contract';
import { waitUntil } from '../../helpers/wait';

const OLD = 'token-node1-original';
const NEW = 'token-node1-rotated';
const NODE2 = 'token-node2-bbbbbbbb';

function createCertificate(cp: ControlPlane, token: string, csr: string): Promise<IstioCertificateResponse__Output> {
  const client = caClient(cp, token);
  return new Promise((resolve, reject) => {
    client.CreateCertificate({ csr, validityDuration: 0 }, { deadline: Date.now() + 5000 }, (err, res) => {
      client.close();
      if (err) reject(err);
      else resolve(res!);
    });
  });
}

/** Serial number of the certificate a fresh TLS (h2) connection to the control plane is served. */
function servedSerial(cp: ControlPlane): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port: cp.port, ca: cp.trustBundlePem, servername: 'localhost', ALPNProtocols: ['h2'] }, () => {
      const serial = s.getPeerCertificate().serialNumber;
      s.destroy();
      resolve(serial);
    });
    s.on('error', reject);
  });
}

/** Opens an ADS stream and resolves with its first Address response, or rejects with the stream's error. */
async function firstAddressPush(c: AdsTestClient): Promise<string[]> {
  c.send({ typeUrl: XDS_TYPE_URL.address, resourceNamesSubscribe: ['*'] });
  const r = await c.next(XDS_TYPE_URL.address, 3000);
  c.ack(r);
  return r.resources.map((x) => x.name);
}

describe('control: tokens file reload and serving certificate rotation', () => {
  let cp: ControlPlane | undefined;
  const clients: AdsTestClient[] = [];
  const connect = (token: string): AdsTestClient => {
    const c = new AdsTestClient(cp!, token);
    clients.push(c);
    return c;
  };
  afterEach(async () => {
    for (const c of clients.splice(0)) c.close();
    await cp?.close();
    cp = undefined;
    cleanupDirs();
  });

  const start = async (tokensFile: string, configDir: string, caDir: string): Promise<ControlPlane> =>
    startControlPlane({ source: new FileSource({ dir: configDir, debounceMs: 30, rescanMs: 300 }), caDir, tokens: tokensFile, tokenReloadIntervalMs: 200, listen: '127.0.0.1:0' });

  it('an added token works and a revoked one is refused for new streams and CSRs without a restart; its open stream is cut', async () => {
    const { configDir, caDir } = meshDirs();
    const tokensFile = join(tempDir(), 'tokens.yaml');
    writeFileSync(tokensFile, `${OLD}: node1\n${NODE2}: node2\n`, { mode: 0o600 });
    cp = await start(tokensFile, configDir, caDir);
    const csr = await makeCsr({ uris: ['spiffe://example.org/ns/default/sa/web'] });

    const established = connect(OLD);
    expect(await firstAddressPush(established)).toContain('Kubernetes//Pod/default/web-1');
    const early = connect(NEW);
    expect((await early.status()).code).toBe(grpc.status.UNAUTHENTICATED);

    // Rotate node1's token: write a new file and rename it over the old one (atomic, like a Secret update).
    const next = `${tokensFile}.next`;
    writeFileSync(next, `${NEW}: node1\n${NODE2}: node2\n`, { mode: 0o600 });
    const changed = Date.now();
    renameSync(next, tokensFile);
    await waitUntil(
      async () => {
        const c = connect(NEW);
        try {
          await firstAddressPush(c);
          return true;
        } catch {
          return false;
        } finally {
          c.close();
        }
      },
      3000,
      'new token accepted',
    );
    expect(Date.now() - changed).toBeLessThan(2000);
    expect((await createCertificate(cp, NEW, csr)).certChain.length).toBeGreaterThan(0);

    // The revoked token: new streams and CSRs are refused.
    expect((await connect(OLD).status()).code).toBe(grpc.status.UNAUTHENTICATED);
    await expect(createCertificate(cp, OLD, csr)).rejects.toMatchObject({ code: grpc.status.UNAUTHENTICATED });
    // The other node's token is untouched.
    expect(await firstAddressPush(connect(NODE2))).toContain('Kubernetes//Pod/default/client-1');

    // The stream opened with the old token is cut (token-revocation.test.ts covers the details).
    expect((await established.status()).code).toBe(grpc.status.UNAUTHENTICATED);
  });

  it('an invalid tokens file edit is logged without token values and the previous tokens stay in force', async () => {
    const file = join(tempDir(), 'tokens.yaml');
    writeFileSync(file, `${OLD}: node1\n`);
    const auth = TokenAuthenticator.fromFile(file);
    const lines: string[] = [];
    const logger = pino({ level: 'info' }, { write: (l: string) => void lines.push(l) });
    const reloads: Array<{ added: number; removed: number }> = [];
    const w = new TokenFileWatcher(file, auth, { intervalMs: 50, logger, onReload: (c) => reloads.push(c) }).start();
    try {
      writeFileSync(file, `${NEW}: node1\nshort: node2\n`); // "short" is under 8 characters
      await waitUntil(() => lines.some((l) => l.includes('tokens file change rejected')), 2000, 'rejection logged');
      expect(auth.nodeForToken(OLD)).toBe('node1');
      expect(auth.nodeForToken(NEW)).toBeUndefined();
      expect(lines.join('\n')).toContain('at least 8 characters');
      expect(lines.join('\n')).not.toContain(NEW);

      writeFileSync(file, `${NEW}: node1\n: [broken yaml`);
      await new Promise((r) => setTimeout(r, 300));
      expect(auth.nodeForToken(OLD)).toBe('node1');
      expect(lines.join('\n')).not.toContain(NEW);

      writeFileSync(file, `${NEW}: node1\n${NODE2}: node2\n`);
      await waitUntil(() => auth.nodeForToken(NEW) === 'node1', 2000, 'valid edit applied');
      expect(auth.nodeForToken(OLD)).toBeUndefined();
      expect(auth.nodeForToken(NODE2)).toBe('node2');
      expect(reloads.at(-1)).toEqual({ added: 2, removed: 1, nodes: 2 });
      expect(lines.join('\n')).not.toContain(NODE2);
    } finally {
      w.close();
    }
  });

  it('rotates the serving certificate without a restart: new connections get the new one, open streams continue', async () => {
    const { configDir, caDir } = meshDirs();
    const tokensFile = join(tempDir(), 'tokens.yaml');
    writeFileSync(tokensFile, `${OLD}: node1\n${NODE2}: node2\n`);
    cp = await start(tokensFile, configDir, caDir);
    const established = connect(OLD);
    await firstAddressPush(established);
    const before = await servedSerial(cp);

    await cp.rotateServingCertificate();
    const after = await servedSerial(cp);
    expect(after).not.toBe(before);
    // A new gRPC client verifies the new certificate against the same root.
    expect(await firstAddressPush(connect(NODE2))).toContain('Kubernetes//Pod/default/client-1');
    // The stream on the old connection still receives pushes.
    writeFileSync(join(configDir, 'workloads.yaml'), WORKLOADS_YAML + '---\n' + podYaml('web-3', 'node1', '198.18.1.12', 'web', { app: 'web' }));
    const push = await established.next(XDS_TYPE_URL.address, 3000);
    expect(push.resources.map((r) => r.name)).toContain('Kubernetes//Pod/default/web-3');
  });
});
