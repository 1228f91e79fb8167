// Token revocation cuts open xDS streams: a revoked token's streams (raw and the real agent XdsClient) end with UNAUTHENTICATED within ~2 s, logged without the token and counted; other tokens' streams keep receiving pushes.
import * as grpc from '@grpc/grpc-js';
import { renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { controlSpiffeId } from '../../../control/ca-service';
import { TokenAuthenticator } from '../../../control/auth';
import { startControlPlane, type ControlPlane } from '../../../control/main';
import { FileSource } from '../../../control/sources/files';
import { REVOKED_TOKEN_DETAILS } from '../../../control/xds-server';
import { ControlPlaneChannel } from '../../../agent/xds/channel';
import { XdsClient } from '../../../agent/xds/client';
import { AdsTestClient, cleanupDirs, meshDirs, podYaml, tempDir, WORKLOADS_YAML } from '../fixtures/control';
import { captureLogs, waitUntil } from '../../helpers/logs';
import { XDS_TYPE_URL } from '../../../core/xds/contract';

const REVOKED = 'token-node1-to-be-revoked';
const OTHER1 = 'token-node1-second-valid';
const NODE2 = 'token-node2-stays-valid';

async function subscribeAddresses(c: AdsTestClient): Promise<void> {
  c.send({ typeUrl: XDS_TYPE_URL.address, resourceNamesSubscribe: ['*'] });
  c.ack(await c.next(XDS_TYPE_URL.address, 3000));
}

async function revokedCount(cp: ControlPlane, node: string): Promise<number> {
  return (await cp.metrics.xdsRevoked.get()).values.find((v) => v.labels.node === node)?.value ?? 0;
}

describe('control: revoking a token cuts its open xDS streams', () => {
  let cp: ControlPlane | undefined;
  const cleanups: Array<() => void> = [];
  afterEach(async () => {
    for (const f of cleanups.splice(0).reverse()) f();
    await cp?.close();
    cp = undefined;
    cleanupDirs();
  });
  const connect = (token: string): AdsTestClient => {
    const c = new AdsTestClient(cp!, token);
    cleanups.push(() => c.close());
    return c;
  };

  it('tokens file edit: the revoked token’s streams end UNAUTHENTICATED (agent told why), streams of valid tokens keep receiving pushes', async () => {
    const { configDir, caDir } = meshDirs();
    const tokensFile = join(tempDir(), 'tokens.yaml');
    writeFileSync(tokensFile, `${REVOKED}: node1\n${OTHER1}: node1\n${NODE2}: node2\n`, { mode: 0o600 });
    const control = captureLogs();
    cp = await startControlPlane({
      source: new FileSource({ dir: configDir, debounceMs: 30, rescanMs: 300 }),
      caDir,
      tokens: tokensFile,
      tokenReloadIntervalMs: 200,
      listen: '127.0.0.1:0',
      logger: control.logger,
    });

    // The real agent-side client on node1 with the token that will be revoked.
    const agent = captureLogs();
    const channel = new ControlPlaneChannel({ address: `127.0.0.1:${cp.port}`, trustAnchorsPem: cp.trustBundlePem, token: REVOKED, controlPlaneId: controlSpiffeId('example.org') });
    const xds = new XdsClient({ channel, nodeName: 'node1', backoff: { initialMs: 100, maxMs: 400 }, logger: agent.logger });
    cleanups.push(() => channel.close());
    cleanups.push(() => xds.close());
    xds.start();
    expect(await xds.waitForSync(5000)).toBe(true);

    const revoked = connect(REVOKED);
    const sameNode = connect(OTHER1);
    const otherNode = connect(NODE2);
    for (const c of [revoked, sameNode, otherNode]) await subscribeAddresses(c);
    await waitUntil(() => cp!.streams().length === 4, 2000, 'four streams open');

    const next = `${tokensFile}.next`;
    writeFileSync(next, `${OTHER1}: node1\n${NODE2}: node2\n`, { mode: 0o600 });
    const changed = Date.now();
    renameSync(next, tokensFile);

    const err = await revoked.status(3000);
    expect(Date.now() - changed).toBeLessThan(2000);
    expect(err.code).toBe(grpc.status.UNAUTHENTICATED);
    expect(err.details).toBe(REVOKED_TOKEN_DETAILS);
    expect(err.details).not.toContain(REVOKED);
    // The agent's stream was cut too, and its log says why and what to check.
    await waitUntil(() => agent.lines.some((l) => l.includes('xDS stream closed') && l.includes('UNAUTHENTICATED')), 2000, 'agent logged the cut');
    const cut = JSON.parse(agent.lines.find((l) => l.includes('xDS stream closed') && l.includes('UNAUTHENTICATED'))!) as Record<string, unknown>;
    expect(cut.details).toBe(REVOKED_TOKEN_DETAILS);
    expect(cut.hint).toMatch(/--token-file/);
    expect(xds.status().connected).toBe(false);
    await waitUntil(() => cp!.streams().length === 2, 2000, 'only the valid streams remain');
    expect(
      cp
        .streams()
        .map((s) => s.node)
        .sort(),
    ).toEqual(['node1', 'node2']);
    expect(await revokedCount(cp, 'node1')).toBe(2);
    expect(await revokedCount(cp, 'node2')).toBe(0);

    // Streams of still-valid tokens (same node and other node) were not disturbed: they get the next push.
    writeFileSync(join(configDir, 'workloads.yaml'), WORKLOADS_YAML + '---\n' + podYaml('web-2', 'node1', '198.18.1.11', 'web', { app: 'web' }));
    for (const c of [sameNode, otherNode]) {
      const push = await c.next(XDS_TYPE_URL.address, 3000);
      expect(push.resources.map((r) => r.name)).toContain('Kubernetes//Pod/default/web-2');
      expect(c.error).toBeUndefined();
    }

    // The agent keeps retrying with backoff and is refused each time; it stays cut off.
    await waitUntil(() => agent.lines.filter((l) => l.includes('xDS stream closed')).length >= 2, 3000, 'agent reconnect refused');
    expect(agent.lines.some((l) => l.includes('missing or unknown bearer token'))).toBe(true);
    expect(xds.status().connected).toBe(false);
    expect(cp.streams()).toHaveLength(2);

    // A broken edit afterwards is counted and cuts nothing: the previous tokens stay in force.
    writeFileSync(tokensFile, `${NODE2}: node2\nshort: node1\n`);
    await waitUntil(async () => (await cp!.metrics.tokenReloadErrors.get()).values[0]?.value === 1, 3000, 'rejected edit counted');
    expect(cp.streams()).toHaveLength(2);
    expect(await revokedCount(cp, 'node1')).toBe(2);

    const controlLog = control.lines.join('\n');
    expect(controlLog).toContain('its bearer token was revoked');
    expect(controlLog).not.toContain(REVOKED);
    expect(controlLog).not.toContain(OTHER1);
    expect(agent.lines.join('\n')).not.toContain(REVOKED);
  });

  it('a token moved to another node cuts its stream; an unchanged table cuts nothing', async () => {
    const { configDir, caDir } = meshDirs();
    const auth = new TokenAuthenticator({ [REVOKED]: 'node1', [NODE2]: 'node2' });
    cp = await startControlPlane({ source: new FileSource({ dir: configDir, debounceMs: 30, rescanMs: 300 }), caDir, tokens: auth, listen: '127.0.0.1:0' });
    const a = connect(REVOKED);
    const b = connect(NODE2);
    await subscribeAddresses(a);
    await subscribeAddresses(b);

    auth.replace({ [REVOKED]: 'node1', [NODE2]: 'node2' });
    expect(await a.drain(300)).toEqual([]);
    expect(a.error).toBeUndefined();
    expect(b.error).toBeUndefined();

    auth.replace({ [REVOKED]: 'node2', [NODE2]: 'node2' });
    expect((await a.status(2000)).code).toBe(grpc.status.UNAUTHENTICATED);
    expect(await revokedCount(cp, 'node1')).toBe(1);
    writeFileSync(join(configDir, 'workloads.yaml'), WORKLOADS_YAML + '---\n' + podYaml('web-2', 'node1', '198.18.1.11', 'web', { app: 'web' }));
    expect((await b.next(XDS_TYPE_URL.address, 3000)).resources.map((r) => r.name)).toContain('Kubernetes//Pod/default/web-2');
  });
});
