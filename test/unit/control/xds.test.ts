// Delta ADS against a real control plane on 127.0.0.1: initial push, ACK, incremental change and removal, NACK, reconnect with initial_resource_versions, per-node scoping, authentication.
import * as grpc from '@grpc/grpc-js';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { loadMeshProtos } from '../../../proto';
import type { ControlPlane } from '../../../control/main';
import { AdsTestClient, cleanupDirs, meshDirs, podYaml, startTestControlPlane, TOKEN1, TOKEN2, WORKLOADS_YAML } from '../fixtures/control';
import { XDS_TYPE_URL, xdsCodecs } from '../../../core/xds/contract';
import { pollUntil } from '../../helpers/wait';

const { codecs } = loadMeshProtos();
const T = XDS_TYPE_URL;

describe('control: delta ADS', () => {
  let cp: ControlPlane;
  let configDir: string;
  const clients: AdsTestClient[] = [];
  const connect = (token?: string): AdsTestClient => {
    const c = new AdsTestClient(cp, token);
    clients.push(c);
    return c;
  };
  const writeWorkloads = (text: string): void => writeFileSync(join(configDir, 'workloads.yaml'), text);

  beforeAll(async () => {
    const dirs = meshDirs();
    configDir = dirs.configDir;
    cp = await startTestControlPlane(dirs);
  });
  afterEach(async () => {
    for (const c of clients.splice(0)) c.close();
    writeWorkloads(WORKLOADS_YAML);
    // Wait until the reset configuration is served, so tests do not see each other's edits.
    const isReset = (): boolean => {
      const s = cp.registry.snapshot!;
      return s.workloads.size === 2 && s.services.size === 1 && s.workloads.get('default/client-1')?.ip === '198.18.2.10';
    };
    await pollUntil(isReset, (met) => met, 3000, 20);
    expect(isReset()).toBe(true);
  });
  afterAll(async () => {
    await cp.close();
    cleanupDirs();
  });

  it('pushes every subscribed type on the first request, names and versions per resource', async () => {
    const c = connect(TOKEN1);
    c.send({ typeUrl: T.address, resourceNamesSubscribe: ['*'] });
    const r = await c.next(T.address);
    expect(r.nonce).not.toBe('');
    expect(r.resources.map((x) => x.name).sort()).toEqual(['Kubernetes//Pod/default/client-1', 'Kubernetes//Pod/default/web-1', 'default/web.default.svc.cluster.local']);
    const web = r.resources.find((x) => x.name === 'Kubernetes//Pod/default/web-1')!;
    expect(web.version).toMatch(/^[0-9a-f]{16}$/);
    const addr = codecs.address.unpack(web.resource!);
    expect(addr.type).toBe('workload');
    expect(addr.workload).toMatchObject({
      uid: 'Kubernetes//Pod/default/web-1',
      name: 'web-1',
      namespace: 'default',
      trustDomain: 'example.org',
      serviceAccount: 'web',
      node: 'node1',
      workloadType: 'POD',
      tunnelProtocol: 'HBONE',
      canonicalName: 'web',
      workloadName: 'web-1',
      status: 'HEALTHY',
    });
    expect([...addr.workload!.addresses[0]!]).toEqual([198, 18, 1, 10]);
    // As istiod: the workload's port lists carry no protocol, the Service's ports do (port name `http` → HTTP11).
    expect(addr.workload!.services).toEqual({ 'default/web.default.svc.cluster.local': { ports: [{ servicePort: 80, targetPort: 8080, appProtocol: 'UNKNOWN', smeshAppProtocol: '' }] } });
    const svc = codecs.address.unpack(r.resources.find((x) => x.name === 'default/web.default.svc.cluster.local')!.resource!);
    expect(svc.service).toMatchObject({ name: 'web', namespace: 'default', hostname: 'web.default.svc.cluster.local', ports: [{ servicePort: 80, targetPort: 8080, appProtocol: 'HTTP11' }] });
    // Every response names the instance in istiod's JSON shape.
    const id = JSON.parse(r.controlPlane!.identifier);
    expect(id).toEqual({ Component: 'smesh-control', ID: expect.any(String), Info: expect.objectContaining({ version: expect.any(String) }) });
    expect(id.ID).not.toBe('');
    expect([...svc.service!.addresses[0]!.address]).toEqual([198, 19, 0, 10]);

    c.send({ typeUrl: T.node, resourceNamesSubscribe: ['*'] });
    const nodes = await c.next(T.node);
    expect(nodes.resources.map((x) => xdsCodecs().node.unpack(x.resource!))).toEqual(
      expect.arrayContaining([
        { name: 'node1', address: '198.18.0.1' },
        { name: 'node2', address: '198.18.0.2' },
      ]),
    );
    c.send({ typeUrl: T.meshConfig, resourceNamesSubscribe: ['*'] });
    const mc = xdsCodecs().meshConfig.unpack((await c.next(T.meshConfig)).resources[0]!.resource!);
    expect(mc.trustDomain).toBe('example.org');
    expect(mc.trustAnchors).toEqual([cp.trustBundlePem]);
    // Authorization is reserved: subscribing yields an (empty) first response, so the client knows it is synced.
    c.send({ typeUrl: T.authorization, resourceNamesSubscribe: ['*'] });
    const authz = await c.next(T.authorization);
    expect(authz.resources).toEqual([]);
  });

  it('after ACK, pushes only changed and removed resources; NACK keeps the stream and is not answered with a resend', async () => {
    const c = connect(TOKEN1);
    c.send({ typeUrl: T.address, resourceNamesSubscribe: ['*'] });
    const first = await c.next(T.address);
    c.ack(first);
    expect(await c.drain(100)).toEqual([]);

    // Moving client-1's IP changes only client-1's Address.
    writeWorkloads(WORKLOADS_YAML.replace('198.18.2.10', '198.18.2.11'));
    const change = await c.next(T.address);
    expect(change.resources.map((x) => x.name)).toEqual(['Kubernetes//Pod/default/client-1']);
    expect(change.removedResources).toEqual([]);

    // The agent rejects it.
    const nacksBefore = (await cp.metrics.xdsNacks.get()).values.find((v) => v.labels.type_url === T.address)?.value ?? 0;
    c.send({ typeUrl: T.address, responseNonce: change.nonce, errorDetail: { code: 3, message: 'bad address' } });
    expect(await c.drain(200)).toEqual([]); // the same version is not resent
    const nacksAfter = (await cp.metrics.xdsNacks.get()).values.find((v) => v.labels.type_url === T.address)?.value ?? 0;
    expect(nacksAfter).toBe(nacksBefore + 1);
    expect(cp.streams().find((s) => s.node === 'node1')).toBeDefined();

    // Removal of the service and client-1: both in removed_resources; web-1 changes because it lost its service entry.
    writeWorkloads(podYaml('web-1', 'node1', '198.18.1.10', 'web', { app: 'web' }));
    const removal = await c.next(T.address);
    expect(removal.resources.map((x) => x.name)).toEqual(['Kubernetes//Pod/default/web-1']);
    expect(codecs.address.unpack(removal.resources[0]!.resource!).workload!.services).toEqual({});
    expect(removal.removedResources.sort()).toEqual(['Kubernetes//Pod/default/client-1', 'default/web.default.svc.cluster.local']);
    c.ack(removal);
  });

  it('on reconnect with initial_resource_versions, sends only the difference', async () => {
    const c1 = connect(TOKEN2);
    c1.send({ typeUrl: T.address, resourceNamesSubscribe: ['*'] });
    const first = await c1.next(T.address);
    c1.ack(first);
    const held: Record<string, string> = {};
    for (const r of first.resources) held[r.name] = r.version;
    c1.close();

    writeWorkloads(WORKLOADS_YAML.replace('198.18.2.10', '198.18.2.12') + '---\n' + podYaml('web-2', 'node1', '198.18.1.11', 'web', { app: 'web' }));
    // Wait for the change to reach the registry.
    await pollUntil(
      () => cp.registry.get('node2', T.address, 'Kubernetes//Pod/default/web-2'),
      (w) => Boolean(w),
      2000,
      20,
    );

    const c2 = connect(TOKEN2);
    c2.send({ typeUrl: T.address, resourceNamesSubscribe: ['*'], initialResourceVersions: { ...held, 'Kubernetes//Pod/default/gone-1': 'deadbeef' } });
    const r = await c2.next(T.address);
    // client-1 changed, web-2 is new, the web service gained a member only on the workload side (unchanged), gone-1 is removed.
    expect(r.resources.map((x) => x.name).sort()).toEqual(['Kubernetes//Pod/default/client-1', 'Kubernetes//Pod/default/web-2']);
    expect(r.removedResources).toEqual(['Kubernetes//Pod/default/gone-1']);
  });

  it('scopes LocalWorkload to the authenticated node; node2 never sees node1 pods', async () => {
    const n1 = connect(TOKEN1);
    const n2 = connect(TOKEN2);
    for (const c of [n1, n2]) c.send({ typeUrl: T.localWorkload, resourceNamesSubscribe: ['*'], node: { id: 'node1' } });
    const r1 = await n1.next(T.localWorkload);
    const r2 = await n2.next(T.localWorkload);
    expect(r1.resources.map((x) => xdsCodecs().localWorkload.unpack(x.resource!))).toEqual([
      { uid: 'Kubernetes//Pod/default/web-1', netns: '/run/netns/web-1', egressBandwidthBps: 0, ingressBandwidthBps: 0 },
    ]); // 0: no bandwidth limit
    expect(r2.resources.map((x) => x.name)).toEqual(['Kubernetes//Pod/default/client-1']);
    n1.ack(r1);
    n2.ack(r2);

    // A new pod on node1 reaches node1 only.
    writeWorkloads(WORKLOADS_YAML + '---\n' + podYaml('web-3', 'node1', '198.18.1.13', 'web', { app: 'web' }));
    const add = await n1.next(T.localWorkload);
    expect(add.resources.map((x) => x.name)).toEqual(['Kubernetes//Pod/default/web-3']);
    expect(await n2.drain(300)).toEqual([]);

    // Explicitly asking for another node's workload by name yields "does not exist".
    n2.send({ typeUrl: T.localWorkload, resourceNamesSubscribe: ['Kubernetes//Pod/default/web-1'] });
    const denied = await n2.next(T.localWorkload);
    expect(denied.resources).toEqual([]);
    expect(denied.removedResources).toEqual(['Kubernetes//Pod/default/web-1']);
  });

  it('refuses streams without a token or with an unknown one (UNAUTHENTICATED)', async () => {
    for (const token of [undefined, 'not-a-known-token']) {
      const c = connect(token);
      c.send({ typeUrl: T.address, resourceNamesSubscribe: ['*'] });
      const err = await c.status();
      expect(err.code).toBe(grpc.status.UNAUTHENTICATED);
    }
  });
});
