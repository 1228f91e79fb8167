// A root rotation on the HBONE inbound server: new trust anchors apply at once, not when the node's own certificate renews; a certificate rotation racing a session being opened fails that open, never the agent.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadOrCreateRootCa, type LocalCa } from '../../../../core/identity/local-ca';
import { IdentityManager } from '../../../../agent/identity/manager';
import { nodeSpiffeId, workloadSpiffeId } from '../../../../core/identity/spiffe';
import type { CertificateSource } from '../../../../core/identity/types';
import { HboneClient } from '../../../../agent/proxy/hbone-client';
import { InboundProxy } from '../../../../agent/proxy/inbound-proxy';
import { echoServer, listen, readAll, tempDir, TD } from '../../fixtures/proxy';

const NODE = nodeSpiffeId(TD, 'node2');
const CLIENT = workloadSpiffeId(TD, 'default', 'client');

/**
 * A real CA issuing certificates, with the trusted roots handed out separately and changeable: what RemoteCa does with
 * MeshConfig.trust_anchors (the xDS side of that is covered by test/unit/control/ca-reload.test.ts and
 * test/e2e/root-rotation.test.ts).
 */
class AnchoredSource implements CertificateSource {
  private readonly listeners: Array<(bundle: string) => void> = [];
  constructor(
    private readonly issuer: LocalCa,
    private bundle: string,
  ) {}
  issue(spiffeId: string) {
    return this.issuer.issue(spiffeId);
  }
  trustBundlePem(): string {
    return this.bundle;
  }
  onTrustAnchorsChange(listener: (bundle: string) => void): void {
    this.listeners.push(listener);
  }
  setAnchors(bundle: string): void {
    this.bundle = bundle;
    for (const l of this.listeners) l(bundle);
  }
}

describe('HBONE inbound: trust anchors change without a restart', () => {
  let oldRoot: LocalCa;
  let newRoot: LocalCa;
  let cleanup: () => Promise<void>;
  let serverSource: AnchoredSource;
  let serverIds: IdentityManager;
  let clientIds: IdentityManager;
  let inbound: InboundProxy;
  let echo: ReturnType<typeof echoServer>;
  let echoPort: number;

  beforeAll(async () => {
    const t = await tempDir();
    cleanup = t.cleanup;
    oldRoot = await loadOrCreateRootCa(`${t.dir}/old`, TD);
    newRoot = await loadOrCreateRootCa(`${t.dir}/new`, TD);
    // node2: certificate from the old root, trusting only the old root (before the rotation is introduced).
    serverSource = new AnchoredSource(oldRoot, oldRoot.trustBundlePem());
    serverIds = new IdentityManager({ source: serverSource, nodeId: NODE });
    await serverIds.ensure([]);
    // node1 after the promotion: its client certificate comes from the new root; it trusts both.
    clientIds = new IdentityManager({ source: new AnchoredSource(newRoot, oldRoot.trustBundlePem() + newRoot.trustBundlePem()), nodeId: nodeSpiffeId(TD, 'node1') });
    await clientIds.ensure([CLIENT]);
    echo = echoServer();
    echoPort = await listen(echo.server);
    inbound = new InboundProxy({ identities: serverIds, nodeId: NODE, listen: { host: '127.0.0.1', port: 0 }, resolveLocal: (ip, p) => (ip === '127.0.0.1' && p === echoPort ? {} : undefined) });
    await inbound.start();
  });

  afterAll(async () => {
    await inbound?.close();
    await echo?.close();
    clientIds?.close();
    serverIds?.close();
    await cleanup?.();
  });

  async function roundTrip(): Promise<string> {
    const client = new HboneClient({ identities: clientIds, connectTimeoutMs: 3000 });
    try {
      const stream = await client.open({ sourceId: CLIENT, node: { host: '127.0.0.1', port: inbound.address().port }, expectedServerId: NODE, authority: `127.0.0.1:${echoPort}` });
      stream.end('hi');
      return (await readAll(stream)).toString();
    } finally {
      client.close();
    }
  }

  it('refuses a peer from a root it does not trust, then accepts it once the anchors include that root — same server certificate', async () => {
    const before = serverIds.get(NODE)!;
    await expect(roundTrip()).rejects.toThrow();
    serverSource.setAnchors(oldRoot.trustBundlePem() + newRoot.trustBundlePem());
    expect(await roundTrip()).toBe('hibye');
    expect(serverIds.get(NODE)).toBe(before); // not renewed: the new anchors alone did it
  });
});

describe('HBONE client: certificate rotation while a session is connecting', () => {
  it('fails the opens caught by the rotation and keeps working (no crash)', async () => {
    const t = await tempDir();
    const ca = await loadOrCreateRootCa(`${t.dir}/ca`, TD);
    const serverIds = new IdentityManager({ source: ca, nodeId: NODE });
    await serverIds.ensure([]);
    const clientIds = new IdentityManager({ source: ca, nodeId: nodeSpiffeId(TD, 'node1') });
    await clientIds.ensure([CLIENT]);
    const echo = echoServer();
    const echoPort = await listen(echo.server);
    const inbound = new InboundProxy({ identities: serverIds, nodeId: NODE, listen: { host: '127.0.0.1', port: 0 }, resolveLocal: (ip, p) => (ip === '127.0.0.1' && p === echoPort ? {} : undefined) });
    await inbound.start();
    const rotationListeners: Array<(id: string, cert: NonNullable<ReturnType<IdentityManager['get']>>) => void> = [];
    const identities = {
      get: (id: string) => clientIds.get(id),
      trustBundlePem: () => clientIds.trustBundlePem(),
      onRotate: (l: (typeof rotationListeners)[number]) => void rotationListeners.push(l),
    };
    const client = new HboneClient({ identities, connectTimeoutMs: 3000 });
    const rotate = () => rotationListeners.forEach((l) => l(CLIENT, clientIds.get(CLIENT)!));
    try {
      const outcomes = { ok: 0, failed: 0 };
      for (let i = 0; i < 40; i++) {
        setTimeout(rotate, i % 5); // lands while the pooled session is connecting, or just after
        try {
          const stream = await client.open({ sourceId: CLIENT, node: { host: '127.0.0.1', port: inbound.address().port }, expectedServerId: NODE, authority: `127.0.0.1:${echoPort}` });
          stream.end('x');
          await readAll(stream);
          outcomes.ok++;
        } catch {
          outcomes.failed++;
        }
      }
      expect(outcomes.ok + outcomes.failed).toBe(40);
      // After the storm, a plain open works.
      const stream = await client.open({ sourceId: CLIENT, node: { host: '127.0.0.1', port: inbound.address().port }, expectedServerId: NODE, authority: `127.0.0.1:${echoPort}` });
      stream.end('after');
      expect((await readAll(stream)).toString()).toBe('afterbye');
    } finally {
      client.close();
      await inbound.close();
      await echo.close();
      clientIds.close();
      serverIds.close();
      await t.cleanup();
    }
  });
});
