// Delta ADS client against an in-test TLS grpc-js server: initial sync, incremental update, removal, per-resource NACK, reconnect with initial_resource_versions, auth failures.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type pino from 'pino';
import { captureLogs } from '../../../helpers/logs';
import { ControlPlaneChannel } from '../../../../agent/xds/channel';
import { XdsClient, type XdsEvent, type XdsUpdate } from '../../../../agent/xds/client';
import { waitFor } from '../../fixtures/proxy';
import { CONTROL_ID, FakeControlPlane, localWorkload, meshConfig, meshNode, meshPki, service, TD, TOKEN, workload, type MeshPki } from '../../fixtures/xds';
import { XDS_PARTIAL_VERSION_SUFFIX, XDS_TYPE_URL, XDS_TYPE_URLS } from '../../../../core/xds/contract';

const A = XDS_TYPE_URL.address;
const WEB = 'default/web.default.svc.cluster.local';
const POD = (n: string) => `Kubernetes//Pod/default/${n}`;
const member = { services: { [WEB]: { ports: [{ servicePort: 80, targetPort: 8080 }] } } };

describe('XdsClient', () => {
  let pki: MeshPki;
  let cp: FakeControlPlane;
  let channel: ControlPlaneChannel;
  let client: XdsClient;
  const updates: XdsUpdate[] = [];
  const events: XdsEvent[] = [];
  const anchors: Array<readonly string[]> = [];
  const latest = () => updates.at(-1)!.snapshot;

  beforeAll(async () => {
    pki = await meshPki();
    cp = new FakeControlPlane(pki);
    cp.set(A, workload('default', 'web-1', '198.18.1.10', member), 'v1');
    cp.set(A, workload('default', 'web-2', '198.18.1.11', member), 'v1');
    cp.set(A, workload('default', 'db-0', '198.18.2.10', { node: 'node2' }), 'v1');
    cp.set(A, service('default', 'web', '198.19.0.10'), 'v1');
    cp.set(XDS_TYPE_URL.node, meshNode('node1', '198.18.0.1'), 'v1');
    cp.set(XDS_TYPE_URL.node, meshNode('node2', '198.18.0.2'), 'v1');
    cp.set(XDS_TYPE_URL.localWorkload, localWorkload(POD('web-1'), '/run/netns/web-1'), 'v1');
    cp.set(XDS_TYPE_URL.meshConfig, meshConfig(TD, [pki.rootPem]), 'v1');
    await cp.start();
    channel = new ControlPlaneChannel({ address: cp.address, trustAnchorsPem: pki.rootPem, token: async () => TOKEN + '\n', controlPlaneId: CONTROL_ID });
    client = new XdsClient({ channel, nodeName: 'node1', backoff: { initialMs: 50, maxMs: 400 } });
    client.onUpdate((u) => updates.push(u));
    client.onEvent((e) => events.push(e));
    client.onTrustAnchors((a) => anchors.push(a));
    client.start();
  });

  afterAll(() => {
    client?.close();
    channel?.close();
    cp?.stop();
  });

  it('initial sync: subscribes to every type with a wildcard, sends the token, ACKs, publishes one complete snapshot', async () => {
    expect(await client.waitForSync(5000)).toBe(true);
    await waitFor(() => updates.length > 0);
    expect(updates).toHaveLength(1); // held back until every type answered: never a partial first snapshot
    const s = latest();
    expect([...s.workloads.keys()].sort()).toEqual([POD('db-0'), POD('web-1'), POD('web-2')]);
    expect(s.workloads.get(POD('web-1'))).toMatchObject({ ip: '198.18.1.10', netns: '/run/netns/web-1', identity: `spiffe://${TD}/ns/default/sa/default`, node: 'node1' });
    expect(s.services.get('default/web')).toMatchObject({ vips: ['198.19.0.10'], endpointUids: [POD('web-1'), POD('web-2')], ports: [{ port: 80, targetPort: 8080 }] });
    expect(s.nodes.get('node2')).toEqual({ name: 'node2', address: '198.18.0.2' });
    expect(anchors).toEqual([[pki.rootPem]]);

    const subscribes = cp.requests.filter((r) => r.responseNonce === '');
    expect(subscribes.map((r) => r.typeUrl)).toEqual([...XDS_TYPE_URLS]);
    expect(subscribes.every((r) => r.resourceNamesSubscribe.join() === '*' && Object.keys(r.initialResourceVersions).length === 0)).toBe(true);
    expect(subscribes[0]!.node?.id).toBe('node1');
    expect(cp.authorizations.every((a) => a === `Bearer ${TOKEN}`)).toBe(true);
    await waitFor(() => cp.requests.filter((r) => r.responseNonce !== '').length === XDS_TYPE_URLS.length);
    expect(cp.requests.filter((r) => r.responseNonce !== '').every((r) => r.errorDetail === null)).toBe(true);
    const st = client.status();
    expect(st.connected).toBe(true);
    expect(st.synced).toBe(true);
    expect(st.types.find((t) => t.typeUrl === A)).toMatchObject({ resources: 4, acks: 1, nacks: 0, rejected: [] });
  });

  it('incremental update: a new workload joins the service, everything else is kept', async () => {
    const n = updates.length;
    const nonce = cp.push(A, [{ ...workload('default', 'web-3', '198.18.1.12', member), version: 'v2' }]);
    await waitFor(() => updates.length > n);
    const s = latest();
    expect(s.workloads.size).toBe(4);
    expect(s.services.get('default/web')!.endpointUids).toEqual([POD('web-1'), POD('web-2'), POD('web-3')]);
    await waitFor(() => cp.answersTo(nonce).length === 1);
    expect(cp.answersTo(nonce)[0]).toMatchObject({ typeUrl: A, errorDetail: null });
    expect(client.resourceVersions(A)[POD('web-3')]).toBe('v2');
  });

  it('removal: removed_resources drops the workload and its membership', async () => {
    const n = updates.length;
    const nonce = cp.push(A, [], [POD('web-3')]);
    await waitFor(() => updates.length > n);
    expect(latest().workloads.has(POD('web-3'))).toBe(false);
    expect(latest().services.get('default/web')!.endpointUids).toEqual([POD('web-1'), POD('web-2')]);
    await waitFor(() => cp.answersTo(nonce).length === 1);
    expect(cp.answersTo(nonce)[0]!.errorDetail).toBeNull();
  });

  it('a push split into chunks (system_version_info "+partial" on all but the last) is ACKed per chunk and published once, at the last', async () => {
    const n = updates.length;
    const chunk = (nonce: string, name: string, ip: string, partial: boolean) => {
      const w = workload('default', name, ip, member);
      for (const s of cp.streams) {
        s.write({ typeUrl: A, nonce, systemVersionInfo: partial ? `g7${XDS_PARTIAL_VERSION_SUFFIX}` : 'g7', resources: [{ name: w.name, version: 'v3', resource: w.any }], removedResources: [] });
      }
    };
    chunk('c1', 'web-4', '198.18.1.13', true);
    await waitFor(() => cp.answersTo('c1').length === 1);
    expect(cp.answersTo('c1')[0]!.errorDetail).toBeNull();
    await new Promise((r) => setTimeout(r, 50));
    expect(updates.length).toBe(n); // nothing published mid-push
    chunk('c2', 'web-5', '198.18.1.14', false);
    await waitFor(() => updates.length > n);
    expect(updates.length).toBe(n + 1);
    expect(latest().services.get('default/web')!.endpointUids).toEqual([POD('web-1'), POD('web-2'), POD('web-4'), POD('web-5')]);
    expect(client.status().types.find((t) => t.typeUrl === A)!.systemVersionInfo).toBe('g7');
    const r = cp.push(A, [], [POD('web-4'), POD('web-5')]);
    await waitFor(() => cp.answersTo(r).length === 1 && !latest().workloads.has(POD('web-5')));
  });

  it('NACK: only the bad resources are rejected; the rest of the push applies, a bad update keeps the previous value', async () => {
    const n = updates.length;
    const nonce = cp.push(A, [
      { ...workload('default', 'web-1', '198.18.1.20', member), version: 'v3' }, // good update
      { ...workload('default', 'web-2', '198.18.1.21', { ...member, addresses: [Buffer.from([198, 18, 1])] }), version: 'v3' }, // bad update
      { ...workload('default', 'web-9', '198.18.1.29', { node: '' }), version: 'v3' }, // bad new
    ]);
    await waitFor(() => cp.answersTo(nonce).length === 1);
    const nack = cp.answersTo(nonce)[0]!;
    expect(nack.typeUrl).toBe(A);
    expect(nack.errorDetail?.code).toBe(3); // INVALID_ARGUMENT
    expect(nack.errorDetail?.message).toContain(`Address ${POD('web-2')}: workload.addresses[0]: expected 4 or 16 bytes, got 3`);
    expect(nack.errorDetail?.message).toContain(`Address ${POD('web-9')}: workload.node: expected the name of the node`);
    expect(nack.errorDetail?.message).toMatch(/^rejected 2 of 3 resources \(others applied\)/);

    await waitFor(() => updates.length > n);
    const s = latest();
    expect(s.workloads.get(POD('web-1'))!.ip).toBe('198.18.1.20');
    expect(s.workloads.get(POD('web-2'))!.ip).toBe('198.18.1.11');
    expect(s.workloads.has(POD('web-9'))).toBe(false);
    // The client reports what it actually holds: web-2 still at v1.
    expect(client.resourceVersions(A)[POD('web-2')]).toBe('v1');
    const t = client.status().types.find((x) => x.typeUrl === A)!;
    expect(t.lastNack).toMatchObject({ nonce });
    expect(t.rejected.map((r) => [r.name, r.version])).toEqual([
      [POD('web-2'), 'v3'],
      [POD('web-9'), 'v3'],
    ]);
    expect(events.some((e) => e.kind === 'nack' && e.nonce === nonce)).toBe(true);
  });

  it('server restart: state is kept while down, the reconnect sends initial_resource_versions and receives only the diff', async () => {
    const before = latest();
    const nUpdates = updates.length;
    const nRequests = cp.requests.length;
    cp.stop();
    await waitFor(() => !client.status().connected);
    expect(client.status().lastDisconnect).toBeDefined();
    // While the control plane is away: changes the agent will learn about on reconnect.
    cp.resources.get(A)!.delete(POD('db-0'));
    cp.set(A, workload('default', 'web-4', '198.18.1.13', member), 'v4');
    await new Promise((r) => setTimeout(r, 300));
    expect(updates.length).toBe(nUpdates); // no empty snapshot while disconnected
    expect(client.latestUpdate()!.snapshot).toBe(before);

    await cp.start();
    await waitFor(() => client.status().connected, 10_000);
    await waitFor(() => updates.length > nUpdates);
    await waitFor(() => cp.requests.slice(nRequests).filter((r) => r.responseNonce !== '').length >= XDS_TYPE_URLS.length);

    const resub = cp.requests.slice(nRequests).filter((r) => r.responseNonce === '');
    const addr = resub.find((r) => r.typeUrl === A)!;
    expect(addr.initialResourceVersions).toEqual({ [POD('web-1')]: 'v3', [POD('web-2')]: 'v1', [POD('db-0')]: 'v1', [WEB]: 'v1' });
    expect(resub.find((r) => r.typeUrl === XDS_TYPE_URL.node)!.initialResourceVersions).toEqual({ node1: 'v1', node2: 'v1' });

    const s = latest();
    expect(s.workloads.has(POD('db-0'))).toBe(false);
    expect(s.workloads.get(POD('web-4'))!.ip).toBe('198.18.1.13');
    // web-2: the server's v3 differs from the held v1, so it was resent (and is still bad).
    expect(s.workloads.get(POD('web-2'))!.ip).toBe('198.18.1.11');
    expect(s.nodes.size).toBe(2);
    expect(events.filter((e) => e.kind === 'connected').length).toBeGreaterThanOrEqual(2);
  });
});

describe('XdsClient authentication failures', () => {
  let pki: MeshPki;
  let cp: FakeControlPlane;

  beforeAll(async () => {
    pki = await meshPki();
    cp = new FakeControlPlane(pki);
    await cp.start();
  });
  afterAll(() => cp?.stop());

  async function failWith(opts: { token: string; anchors: string; logger?: pino.Logger; streams?: number }): Promise<ReturnType<XdsClient['status']>> {
    const channel = new ControlPlaneChannel({ address: cp.address, trustAnchorsPem: opts.anchors, token: opts.token, controlPlaneId: CONTROL_ID });
    const client = new XdsClient({ channel, nodeName: 'node1', backoff: { initialMs: 50, maxMs: 100 }, ...(opts.logger ? { logger: opts.logger } : {}) });
    const updates: XdsUpdate[] = [];
    client.onUpdate((u) => updates.push(u));
    client.start();
    try {
      await waitFor(() => client.status().lastDisconnect !== undefined && client.status().streamsStarted >= (opts.streams ?? 2), 10_000);
      expect(client.status().connected).toBe(false);
      expect(updates).toEqual([]);
      return client.status();
    } finally {
      client.close();
      channel.close();
    }
  }

  it('a wrong token is UNAUTHENTICATED and retried with backoff; the repeated refusal is warned about once', async () => {
    const { logger, lines } = captureLogs();
    const st = await failWith({ token: 'wrong', anchors: pki.rootPem, logger, streams: 4 });
    expect(st.lastDisconnect!.code).toBe('UNAUTHENTICATED');
    const records = lines.map((l) => JSON.parse(l) as { level: number; msg: string; code?: string; hint?: string });
    const warned = records.filter((r) => r.msg.startsWith('xDS stream closed;'));
    expect(warned).toHaveLength(1);
    expect(warned[0]).toMatchObject({ level: 40, code: 'UNAUTHENTICATED' });
    expect(warned[0]!.hint).toMatch(/--token-file/);
    const again = records.filter((r) => r.msg.startsWith('xDS stream closed again for the same reason'));
    expect(again.length).toBeGreaterThanOrEqual(2);
    expect(again.every((r) => r.level === 20 && r.code === 'UNAUTHENTICATED')).toBe(true);
    expect(lines.join('\n')).not.toContain('wrong"'); // the token itself is never logged
  });

  it('a control plane whose certificate does not chain to the mesh root is never trusted', async () => {
    const other = await meshPki('another root');
    const n = cp.requests.length;
    const st = await failWith({ token: TOKEN, anchors: other.rootPem });
    expect(st.lastDisconnect!.code).toBe('UNAVAILABLE');
    expect(cp.requests.length).toBe(n);
  });
});
