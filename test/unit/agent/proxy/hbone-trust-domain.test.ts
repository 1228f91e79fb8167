// HBONE accepts only the mesh's trust domain and its aliases (inbound client certificates, outbound server certificates), and counts and logs refused handshakes by reason.
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import * as tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LocalCa } from '../../../../core/identity/local-ca';
import { loadOrCreateRootCa } from '../../../../core/identity/local-ca';
import type { IdentityManager, UsableCert } from '../../../../agent/identity/manager';
import { nodeSpiffeId, TrustDomains, workloadSpiffeId } from '../../../../core/identity/spiffe';
import { parseAgentArgs } from '../../../../agent/config/options';
import { SmeshError } from '../../../../core/errors';
import { HboneClient } from '../../../../agent/proxy/hbone-client';
import { InboundProxy } from '../../../../agent/proxy/inbound-proxy';
import type { AuthorizeInput, IdentityProvider } from '../../../../agent/proxy/types';
import { LogRateLimiter } from '../../../../agent/telemetry/log-limiter';
import { MeshMetrics } from '../../../../agent/telemetry/metrics';
import { issueLeaf } from '../../../helpers/certs';
import { captureLogs, waitUntil } from '../../../helpers/logs';
import { parseMetrics, sum } from '../../../helpers/metrics';
import { echoServer, identities, listen, meshCa, readAll, TD, tempDir } from '../../fixtures/proxy';

const NODE = nodeSpiffeId(TD, 'node2');
const CLIENT = workloadSpiffeId(TD, 'default', 'client');
const ALIAS = 'old.example';
const FOREIGN_CLIENT = 'spiffe://evil.example/ns/default/sa/client';
const ALIAS_CLIENT = `spiffe://${ALIAS}/ns/default/sa/client`;

async function count(metrics: MeshMetrics, name: string, labels: Record<string, string>): Promise<number> {
  return sum(parseMetrics(await metrics.text()), name, labels);
}

describe('HBONE trust domains', () => {
  let ca: LocalCa;
  let caDir: string;
  let cleanupCa: () => Promise<void>;
  let work: { dir: string; cleanup: () => Promise<void> };
  let serverIds: IdentityManager;
  let clientIds: IdentityManager;
  let echo: ReturnType<typeof echoServer>;
  let echoPort: number;
  let inbound: InboundProxy;
  let port: number;
  let metrics: MeshMetrics;
  let logs: ReturnType<typeof captureLogs>;
  const seen: AuthorizeInput[] = [];

  /** A certificate signed by the mesh root for any SPIFFE id (the mesh CA itself refuses foreign trust domains). */
  const rootSigned = (spiffeId: string, name: string): UsableCert => {
    const leaf = issueLeaf(work.dir, { cert: path.join(caDir, 'root-cert.pem'), key: path.join(caDir, 'root-key.pem') }, spiffeId, name);
    const certPem = fs.readFileSync(leaf.cert, 'utf8');
    return { spiffeId, certPem, chainPem: certPem, keyPem: fs.readFileSync(leaf.key, 'utf8'), notBefore: new Date(), notAfter: new Date(Date.now() + 3600_000) } as UsableCert;
  };
  const presenting = (cert: UsableCert): IdentityProvider => ({ get: () => cert, trustBundlePem: () => ca.trustBundlePem() });

  beforeAll(async () => {
    ({ ca, dir: caDir, cleanup: cleanupCa } = await meshCa());
    work = await tempDir();
    serverIds = await identities(ca, NODE);
    clientIds = await identities(ca, nodeSpiffeId(TD, 'node1'), [CLIENT]);
    echo = echoServer();
    echoPort = await listen(echo.server);
    metrics = new MeshMetrics();
    logs = captureLogs('info');
    inbound = new InboundProxy({
      identities: serverIds,
      nodeId: NODE,
      listen: { host: '127.0.0.1', port: 0 },
      resolveLocal: (ip, p) => (ip === '127.0.0.1' && p === echoPort ? {} : undefined),
      authorize: (input) => {
        seen.push(input);
        return { allow: true };
      },
      trustDomainAliases: [ALIAS],
      metrics,
      logger: logs.logger,
    });
    await inbound.start();
    port = inbound.address().port;
  });

  afterAll(async () => {
    await inbound?.close();
    await echo?.close();
    clientIds?.close();
    serverIds?.close();
    await work?.cleanup();
    await cleanupCa?.();
  });

  const openWith = (ids: IdentityProvider, sourceId: string, opts: { port?: number; expectedServerId?: string; aliases?: string[]; metrics?: MeshMetrics } = {}) => {
    const client = new HboneClient({ identities: ids, connectTimeoutMs: 5000, trustDomainAliases: opts.aliases, metrics: opts.metrics });
    const stream = client.open({ sourceId, node: { host: '127.0.0.1', port: opts.port ?? port }, expectedServerId: opts.expectedServerId ?? NODE, authority: `127.0.0.1:${echoPort}` });
    return { client, stream };
  };

  it('refuses a mesh-root certificate of a foreign trust domain with 401, counted and logged at info', async () => {
    const before = await count(metrics, 'smesh_hbone_handshake_failures_total', { direction: 'inbound', reason: 'foreign_trust_domain' });
    const { client, stream } = openWith(presenting(rootSigned(FOREIGN_CLIENT, 'evil')), FOREIGN_CLIENT);
    const err = await stream.catch((e: unknown) => e);
    client.close();
    expect(err).toBeInstanceOf(SmeshError);
    expect((err as SmeshError).message).toContain('status 401');
    expect(await count(metrics, 'smesh_hbone_handshake_failures_total', { direction: 'inbound', reason: 'foreign_trust_domain' })).toBe(before + 1);
    expect(await count(metrics, 'smesh_refused_connections_total', { direction: 'inbound', reason: 'foreign_trust_domain' })).toBeGreaterThanOrEqual(1);
    expect(seen.some((s) => s.sourceIdentity === FOREIGN_CLIENT)).toBe(false);
    const line = logs.lines.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l.reason === 'foreign_trust_domain');
    expect(line).toBeDefined();
    expect(line!.level).toBe(30); // info
    expect(line!.peer).toBe(FOREIGN_CLIENT);
    expect(String(line!.msg)).toContain('evil.example');
  });

  it('accepts a certificate of a configured alias trust domain, and refuses it without the alias', async () => {
    const aliasCert = rootSigned(ALIAS_CLIENT, 'alias');
    const { client, stream } = openWith(presenting(aliasCert), ALIAS_CLIENT);
    const s = await stream;
    s.end('over alias');
    expect((await readAll(s)).toString()).toBe('over aliasbye');
    client.close();
    expect(seen.some((i) => i.sourceIdentity === ALIAS_CLIENT)).toBe(true);

    const strict = new InboundProxy({ identities: serverIds, nodeId: NODE, listen: { host: '127.0.0.1', port: 0 }, resolveLocal: () => ({}) });
    await strict.start();
    try {
      const other = openWith(presenting(aliasCert), ALIAS_CLIENT, { port: strict.address().port });
      const err = await other.stream.catch((e: unknown) => e);
      other.client.close();
      expect((err as SmeshError).message).toContain('status 401');
    } finally {
      await strict.close();
    }
  });

  it('a mesh certificate still gets 200', async () => {
    const { client, stream } = openWith(clientIds, CLIENT);
    const s = await stream;
    s.end('mesh');
    expect((await readAll(s)).toString()).toBe('meshbye');
    client.close();
  });

  it('outbound refuses a server certificate of a foreign trust domain (counted), and accepts one of an alias', async () => {
    const serve = async (nodeId: string, name: string, aliases: string[]) => {
      const cert = rootSigned(nodeId, name);
      const server = new InboundProxy({ identities: presenting(cert), nodeId, listen: { host: '127.0.0.1', port: 0 }, resolveLocal: () => ({}), trustDomainAliases: aliases });
      await server.start();
      return server;
    };
    const clientMetrics = new MeshMetrics();
    const evil = await serve('spiffe://evil.example/smesh/node/node2', 'evil-node', [TD]);
    try {
      const { client, stream } = openWith(clientIds, CLIENT, { port: evil.address().port, metrics: clientMetrics });
      const err = await stream.catch((e: unknown) => e);
      client.close();
      expect((err as SmeshError).code).toBe('SMESH_ERR_TLS');
      expect((err as SmeshError).message).toContain('evil.example');
      expect(await count(clientMetrics, 'smesh_hbone_handshake_failures_total', { direction: 'outbound', reason: 'foreign_trust_domain' })).toBe(1);
    } finally {
      await evil.close();
    }
    const old = await serve(`spiffe://${ALIAS}/smesh/node/node2`, 'alias-node', [TD]);
    try {
      // Without the alias the old trust domain is as foreign as any other; with it, the same node is accepted.
      const refused = openWith(clientIds, CLIENT, { port: old.address().port, metrics: clientMetrics });
      expect(((await refused.stream.catch((e: unknown) => e)) as SmeshError).code).toBe('SMESH_ERR_TLS');
      refused.client.close();
      const accepted = openWith(clientIds, CLIENT, { port: old.address().port, aliases: [ALIAS] });
      const s = await accepted.stream;
      s.end('to old td');
      expect((await readAll(s)).toString()).toBe('to old tdbye');
      accepted.client.close();
      // A different node in an accepted trust domain is still the wrong identity.
      const wrong = openWith(clientIds, CLIENT, { port: old.address().port, aliases: [ALIAS], expectedServerId: nodeSpiffeId(TD, 'node3'), metrics: clientMetrics });
      expect(((await wrong.stream.catch((e: unknown) => e)) as SmeshError).code).toBe('SMESH_ERR_TLS');
      wrong.client.close();
      expect(await count(clientMetrics, 'smesh_hbone_handshake_failures_total', { direction: 'outbound', reason: 'wrong_identity' })).toBe(1);
    } finally {
      await old.close();
    }
  });

  it('aliases given as a function are read for each new session, inbound and outbound (a MeshConfig change applies live)', async () => {
    let live: readonly string[] = [];
    const aliasCert = rootSigned(ALIAS_CLIENT, 'live-alias');
    const server = new InboundProxy({ identities: serverIds, nodeId: NODE, listen: { host: '127.0.0.1', port: 0 }, resolveLocal: () => ({}), trustDomainAliases: () => live });
    await server.start();
    const oldNode = new InboundProxy({
      identities: presenting(rootSigned(`spiffe://${ALIAS}/smesh/node/node2`, 'live-alias-node')),
      nodeId: `spiffe://${ALIAS}/smesh/node/node2`,
      listen: { host: '127.0.0.1', port: 0 },
      resolveLocal: () => ({}),
      trustDomainAliases: [TD],
    });
    await oldNode.start();
    const outbound = (p: number) => {
      const client = new HboneClient({ identities: clientIds, connectTimeoutMs: 5000, trustDomainAliases: () => live });
      return { client, stream: client.open({ sourceId: CLIENT, node: { host: '127.0.0.1', port: p }, expectedServerId: NODE, authority: `127.0.0.1:${echoPort}` }) };
    };
    try {
      const before = openWith(presenting(aliasCert), ALIAS_CLIENT, { port: server.address().port });
      expect(((await before.stream.catch((e: unknown) => e)) as SmeshError).message).toContain('status 401');
      before.client.close();
      const refused = outbound(oldNode.address().port);
      expect(((await refused.stream.catch((e: unknown) => e)) as SmeshError).code).toBe('SMESH_ERR_TLS');
      refused.client.close();

      live = [ALIAS];
      const after = openWith(presenting(aliasCert), ALIAS_CLIENT, { port: server.address().port });
      const s = await after.stream;
      s.end('live');
      expect((await readAll(s)).toString()).toBe('livebye');
      after.client.close();
      const accepted = outbound(oldNode.address().port);
      const o = await accepted.stream;
      o.end('live out');
      expect((await readAll(o)).toString()).toBe('live outbye');
      accepted.client.close();

      live = [];
      const removed = openWith(presenting(aliasCert), ALIAS_CLIENT, { port: server.address().port });
      expect(((await removed.stream.catch((e: unknown) => e)) as SmeshError).message).toContain('status 401');
      removed.client.close();
    } finally {
      await server.close();
      await oldNode.close();
    }
  });

  it('counts refused handshakes by reason: not TLS, no client certificate, another CA, no SPIFFE id', async () => {
    const reason = (r: string) => count(metrics, 'smesh_hbone_handshake_failures_total', { direction: 'inbound', reason: r });
    const before = { notTls: await reason('not_tls'), noCert: await reason('no_client_cert'), badChain: await reason('bad_chain'), noId: await reason('no_spiffe_id') };
    const closed = (s: net.Socket) => new Promise((r) => s.once('close', r));
    const plain = net.connect(port, '127.0.0.1');
    plain.on('error', () => undefined);
    plain.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    await closed(plain);
    const tlsOpts = { host: '127.0.0.1', port, ca: ca.trustBundlePem(), ALPNProtocols: ['h2'], minVersion: 'TLSv1.3' as const, servername: '', checkServerIdentity: () => undefined };
    const anonymous = tls.connect(tlsOpts);
    anonymous.on('error', () => undefined);
    await closed(anonymous);
    const other = await loadOrCreateRootCa(path.join(work.dir, 'other-ca'), TD);
    const rogue = await other.issue(CLIENT);
    const stranger = tls.connect({ ...tlsOpts, key: rogue.keyPem, cert: rogue.chainPem });
    stranger.on('error', () => undefined);
    await closed(stranger);
    const noId = rootSigned('https://example.com/not-spiffe', 'no-spiffe');
    const { client, stream } = openWith(presenting(noId), 'x');
    expect(((await stream.catch((e: unknown) => e)) as SmeshError).message).toContain('status 401');
    client.close();
    await waitUntil(async () => (await reason('bad_chain')) > before.badChain, 5000, 'bad_chain counted');
    expect(await reason('not_tls')).toBe(before.notTls + 1);
    expect(await reason('no_client_cert')).toBe(before.noCert + 1);
    expect(await reason('bad_chain')).toBe(before.badChain + 1);
    expect(await reason('no_spiffe_id')).toBe(before.noId + 1);
    const reasons = new Set(logs.lines.map((l) => (JSON.parse(l) as { reason?: string }).reason));
    for (const r of ['not_tls', 'no_client_cert', 'bad_chain', 'no_spiffe_id']) expect(reasons.has(r)).toBe(true);
    // No key material in any line.
    expect(logs.lines.join('\n')).not.toContain('PRIVATE KEY');
  });
});

describe('HBONE refused-handshake log lines are rate-limited', () => {
  it('logs at most N per interval, counts every one, and reports the suppressed number with the next line', async () => {
    const { ca, cleanup } = await meshCa();
    const serverIds = await identities(ca, NODE);
    const metrics = new MeshMetrics();
    const logs = captureLogs('info');
    let now = 0;
    const inbound = new InboundProxy({
      identities: serverIds,
      nodeId: NODE,
      listen: { host: '127.0.0.1', port: 0 },
      metrics,
      logger: logs.logger,
      failureLogLimiter: new LogRateLimiter(2, 10_000, () => now),
    });
    await inbound.start();
    const port = inbound.address().port;
    const garbage = async () => {
      const s = net.connect(port, '127.0.0.1');
      s.on('error', () => undefined);
      s.write('\x00\x01 not TLS at all \r\n\r\n');
      await new Promise((r) => s.once('close', r));
    };
    const refusals = () => logs.lines.map((l) => JSON.parse(l) as { msg: string; reason?: string; suppressed?: number }).filter((l) => l.msg.startsWith('HBONE handshake refused'));
    try {
      for (let i = 0; i < 5; i++) await garbage();
      await waitUntil(async () => (await count(metrics, 'smesh_hbone_handshake_failures_total', { direction: 'inbound', reason: 'not_tls' })) === 5, 5000, 'five refusals counted');
      expect(refusals().length).toBe(2);
      now += 10_000;
      await garbage();
      await waitUntil(() => refusals().length === 3, 5000, 'a line in the next interval');
      expect(refusals()[2]).toMatchObject({ reason: 'not_tls', suppressed: 3 });
    } finally {
      await inbound.close();
      serverIds.close();
      await cleanup();
    }
  });
});

describe('trust-domain aliases: configuration and matching', () => {
  const base = ['--node', 'n1', '--standalone', '--config', '/tmp/x', '--no-bpf'];

  it('--trust-domain-aliases / $SMESH_TRUST_DOMAIN_ALIASES take a comma list and reject a malformed entry naming the flag', () => {
    expect(parseAgentArgs(base, {}).trustDomainAliases).toEqual([]);
    expect(parseAgentArgs([...base, '--trust-domain-aliases', 'old.example, legacy.local,old.example'], {}).trustDomainAliases).toEqual(['old.example', 'legacy.local']);
    expect(parseAgentArgs(base, { SMESH_TRUST_DOMAIN_ALIASES: 'a.example' }).trustDomainAliases).toEqual(['a.example']);
    expect(() => parseAgentArgs([...base, '--trust-domain-aliases', 'ok.example,Bad/TD'], {})).toThrow(/--trust-domain-aliases: invalid trust domain "Bad\/TD"/);
  });

  it('matches an identity across accepted trust domains only, path for path', () => {
    const tds = new TrustDomains(TD, [ALIAS]);
    expect(tds.accepts(CLIENT)).toBe(true);
    expect(tds.accepts(ALIAS_CLIENT)).toBe(true);
    expect(tds.accepts(FOREIGN_CLIENT)).toBe(false);
    expect(tds.accepts('not a spiffe id')).toBe(false);
    expect(tds.matches(`spiffe://${ALIAS}/smesh/node/node2`, NODE)).toBe(true);
    expect(tds.matches('spiffe://evil.example/smesh/node/node2', NODE)).toBe(false);
    expect(tds.matches(`spiffe://${ALIAS}/smesh/node/node3`, NODE)).toBe(false);
    expect(tds.matches(ALIAS_CLIENT, NODE)).toBe(false);
  });
});
