// HBONE client ⇄ inbound server over real TLS 1.3 + HTTP/2 on 127.0.0.1: identity, bulk bytes, half-close, resets, bad clients, 503.
import { createHash, randomBytes } from 'node:crypto';
import * as http2 from 'node:http2';
import * as net from 'node:net';
import * as tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadOrCreateRootCa, type LocalCa } from '../../../../core/identity/local-ca';
import type { IdentityManager } from '../../../../agent/identity/manager';
import { nodeSpiffeId, workloadSpiffeId } from '../../../../core/identity/spiffe';
import { HboneClient } from '../../../../agent/proxy/hbone-client';
import { InboundProxy } from '../../../../agent/proxy/inbound-proxy';
import type { AuthorizeInput } from '../../../../agent/proxy/types';
import { SmeshError } from '../../../../core/errors';
import { resetHttp2Stream } from '../../../../agent/proxy/relay';
import '../../../../core/identity/reflect-polyfill';
import * as x509 from '@peculiar/x509';
import { webcrypto } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import * as path from 'node:path';
import { echoServer, freePort, identities, listen, meshCa, readAll, tempDir, TD, waitFor } from '../../fixtures/proxy';

const NODE = nodeSpiffeId(TD, 'node2');
const CLIENT = workloadSpiffeId(TD, 'default', 'client');

describe('HBONE', () => {
  let ca: LocalCa;
  let cleanupCa: () => Promise<void>;
  let caDir: string;
  let serverIds: IdentityManager;
  let clientIds: IdentityManager;
  let echo: ReturnType<typeof echoServer>;
  let echoPort: number;
  let deadPort: number;
  let inbound: InboundProxy;
  let port: number;
  let client: HboneClient;
  const seen: AuthorizeInput[] = [];
  const servernames: Array<string | false | null> = [];
  // A destination whose accepted sockets the test controls (reset tests).
  const held: net.Socket[] = [];
  let holdServer: net.Server;
  let holdPort: number;

  beforeAll(async () => {
    ({ ca, dir: caDir, cleanup: cleanupCa } = await meshCa());
    serverIds = await identities(ca, NODE);
    clientIds = await identities(ca, nodeSpiffeId(TD, 'node1'), [CLIENT]);
    echo = echoServer();
    echoPort = await listen(echo.server);
    deadPort = await freePort();
    holdServer = net.createServer({ allowHalfOpen: true }, (s) => {
      s.on('error', () => undefined);
      s.resume(); // reading, so a reset is noticed
      held.push(s);
    });
    holdPort = await listen(holdServer);
    inbound = new InboundProxy({
      identities: serverIds,
      nodeId: NODE,
      listen: { host: '127.0.0.1', port: 0 },
      resolveLocal: (ip, p) => (ip === '127.0.0.1' && [echoPort, deadPort, holdPort].includes(p) ? {} : undefined),
      authorize: (input) => {
        seen.push(input);
        return { allow: true };
      },
    });
    await inbound.start();
    port = inbound.address().port;
    (inbound as unknown as { server: tls.Server }).server.on('secureConnection', (s: tls.TLSSocket) => servernames.push(s.servername));
    client = new HboneClient({ identities: clientIds });
  });

  afterAll(async () => {
    client?.close();
    await inbound?.close();
    await echo?.close();
    for (const s of held) s.destroy();
    await new Promise<void>((r) => holdServer.close(() => r()));
    clientIds.close();
    serverIds.close();
    await cleanupCa();
  });

  const open = (authority: string, expectedServerId = NODE) =>
    client.open({ sourceId: CLIENT, node: { host: '127.0.0.1', port }, expectedServerId, authority, headers: { forwarded: 'for="127.0.0.1:4242"' } });

  it('round-trips through CONNECT with identities checked on both sides and no SNI', async () => {
    const stream = await open(`127.0.0.1:${echoPort}`);
    stream.write('hello');
    const got = await new Promise<Buffer>((r) => stream.once('data', r));
    expect(got.toString()).toBe('hello');
    stream.end();
    expect((await readAll(stream)).toString()).toBe('bye');
    const last = seen[seen.length - 1]!;
    expect(last.sourceIdentity).toBe(CLIENT);
    expect(last.destination).toEqual({ ip: '127.0.0.1', port: echoPort });
    expect(last.sourceIp).toBe('127.0.0.1');
    expect(servernames.length).toBeGreaterThan(0);
    expect(servernames.every((n) => !n)).toBe(true);
  });

  it('reuses one pooled session for streams of the same source and node', async () => {
    const a = await open(`127.0.0.1:${echoPort}`);
    const b = await open(`127.0.0.1:${echoPort}`);
    expect(a.session).toBe(b.session);
    a.end();
    b.end();
    await Promise.all([readAll(a), readAll(b)]);
  });

  it('rejects a server whose SPIFFE id is not the expected node (SMESH_ERR_TLS)', async () => {
    const err = await open(`127.0.0.1:${echoPort}`, nodeSpiffeId(TD, 'other')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SmeshError);
    expect((err as SmeshError).code).toBe('SMESH_ERR_TLS');
    expect((err as SmeshError).message).toContain('expected spiffe://cluster.local/smesh/node/other');
  });

  it('transfers 5 MB byte-exact in both directions', async () => {
    const payload = randomBytes(5 * 1024 * 1024);
    const stream = await open(`127.0.0.1:${echoPort}`);
    const back = readAll(stream);
    stream.end(payload);
    const got = await back;
    expect(got.length).toBe(payload.length + 3);
    expect(createHash('sha256').update(got.subarray(0, payload.length)).digest('hex')).toBe(createHash('sha256').update(payload).digest('hex'));
    expect(got.subarray(payload.length).toString()).toBe('bye');
  });

  it('half-close: client END_STREAM becomes FIN and the reply still arrives', async () => {
    const stream = await open(`127.0.0.1:${echoPort}`);
    const back = readAll(stream);
    stream.end('ping');
    expect((await back).toString()).toBe('pingbye');
  });

  it('propagates RST_STREAM to a TCP reset, and a TCP reset back to RST_STREAM', async () => {
    // client → server
    const before = held.length;
    const s1 = await open(`127.0.0.1:${holdPort}`);
    await waitFor(() => held.length > before);
    const dest1 = held[held.length - 1]!;
    const dest1Err = new Promise<string | undefined>((r) => {
      dest1.once('error', (e: NodeJS.ErrnoException) => r(e.code));
      dest1.once('close', () => r('close'));
    });
    s1.on('error', () => undefined);
    resetHttp2Stream(s1, http2.constants.NGHTTP2_CONNECT_ERROR);
    expect(await dest1Err).toBe('ECONNRESET');
    // server → client
    const s2 = await open(`127.0.0.1:${holdPort}`);
    s2.on('error', () => undefined);
    await waitFor(() => held.length > before + 1);
    const dest2 = held[held.length - 1]!;
    s2.resume();
    const closed = new Promise<number | undefined>((r) => s2.once('close', () => r(s2.rstCode)));
    dest2.resetAndDestroy();
    expect(await closed).toBe(http2.constants.NGHTTP2_CONNECT_ERROR);
  });

  it('answers 503 for an unreachable destination (SMESH_ERR_HBONE naming the status)', async () => {
    const err = await open(`127.0.0.1:${deadPort}`).catch((e: unknown) => e);
    expect((err as SmeshError).code).toBe('SMESH_ERR_HBONE');
    expect((err as SmeshError).message).toContain('status 503');
  });

  it('answers 400 for a destination that is not a local workload, or a malformed authority', async () => {
    for (const authority of ['127.0.0.9:80', 'example.com:80', '127.0.0.1:99999']) {
      const err = await open(authority).catch((e: unknown) => e);
      expect((err as SmeshError).code).toBe('SMESH_ERR_HBONE');
      expect((err as SmeshError).message).toContain('status 400');
    }
  });

  it('fails only the bad connection: plaintext garbage, wrong-CA and vanishing clients', async () => {
    const good = await open(`127.0.0.1:${echoPort}`);
    // plaintext garbage
    const garbage = net.connect(port, '127.0.0.1');
    garbage.on('error', () => undefined);
    garbage.write(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n\x00\x01\x02garbage'));
    await new Promise((r) => garbage.once('close', r));
    // client vanishing mid-handshake
    const vanish = net.connect(port, '127.0.0.1');
    vanish.on('error', () => undefined);
    vanish.write(Buffer.from([0x16, 0x03, 0x01, 0x00, 0x50, 0x01]));
    vanish.destroy();
    // client with a certificate from another CA
    const other = await tempDir();
    const otherCa = await loadOrCreateRootCa(`${other.dir}/ca`, TD);
    const rogue = await otherCa.issue(CLIENT);
    const rogueErr = await new Promise<unknown>((resolve) => {
      const s = tls.connect({
        host: '127.0.0.1',
        port,
        key: rogue.keyPem,
        cert: rogue.chainPem,
        ca: ca.trustBundlePem(),
        ALPNProtocols: ['h2'],
        minVersion: 'TLSv1.3',
        checkServerIdentity: () => undefined,
      });
      s.on('error', resolve);
      s.on('secureConnect', () => {
        // TLS 1.3: the server's verdict on our cert arrives after the client finished.
        s.once('close', () => resolve(new Error('closed')));
      });
    });
    expect(rogueErr).toBeInstanceOf(Error);
    await other.cleanup();
    // a wrong-CA client via the HBONE client itself
    const rogueClient = new HboneClient({ identities: { get: () => rogue, trustBundlePem: () => ca.trustBundlePem() } });
    const e2 = await rogueClient.open({ sourceId: CLIENT, node: { host: '127.0.0.1', port }, expectedServerId: NODE, authority: `127.0.0.1:${echoPort}` }).catch((e: unknown) => e);
    expect(e2).toBeInstanceOf(SmeshError);
    rogueClient.close();
    // the good stream still works
    good.write('still alive');
    const got = await new Promise<Buffer>((r) => good.once('data', r));
    expect(got.toString()).toBe('still alive');
    good.end();
    await readAll(good);
  });

  it('refuses a chain-valid client certificate without a SPIFFE id with 401', async () => {
    const rootKeyPem = await readFile(path.join(caDir, 'root-key.pem'), 'utf8');
    const rootKey = await webcrypto.subtle.importKey('pkcs8', x509.PemConverter.decodeFirst(rootKeyPem), { name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign']);
    const keys = (await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
    const root = new x509.X509Certificate(ca.rootCertPem);
    const leaf = await x509.X509CertificateGenerator.create({
      subject: 'CN=not-a-workload',
      issuer: root.subject,
      publicKey: keys.publicKey,
      signingKey: rootKey,
      signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
      notBefore: new Date(Date.now() - 60_000),
      notAfter: new Date(Date.now() + 3600_000),
      extensions: [new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth]), new x509.SubjectAlternativeNameExtension([{ type: 'url', value: 'https://example.com/not-spiffe' }])],
    });
    const keyPem = x509.PemConverter.encode(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey), 'PRIVATE KEY');
    const certPem = leaf.toString('pem');
    const cert = { spiffeId: 'x', certPem, keyPem, chainPem: certPem, notBefore: new Date(), notAfter: new Date(Date.now() + 3600_000) };
    const anon = new HboneClient({ identities: { get: () => cert, trustBundlePem: () => ca.trustBundlePem() } });
    const err = await anon.open({ sourceId: 'x', node: { host: '127.0.0.1', port }, expectedServerId: NODE, authority: `127.0.0.1:${echoPort}` }).catch((e: unknown) => e);
    anon.close();
    expect((err as SmeshError).code).toBe('SMESH_ERR_HBONE');
    expect((err as SmeshError).message).toContain('status 401');
  });

  it('answers 401 when authorization denies', async () => {
    const denying = new InboundProxy({
      identities: serverIds,
      nodeId: NODE,
      listen: { host: '127.0.0.1', port: 0 },
      resolveLocal: () => ({}),
      authorize: (i) => (i.sourceIdentity === CLIENT ? { allow: false, reason: 'test policy' } : { allow: true }),
    });
    await denying.start();
    try {
      const err = await client
        .open({ sourceId: CLIENT, node: { host: '127.0.0.1', port: denying.address().port }, expectedServerId: NODE, authority: `127.0.0.1:${echoPort}` })
        .catch((e: unknown) => e);
      expect((err as SmeshError).message).toContain('status 401');
    } finally {
      await denying.close();
    }
  });
});
