// The agent's xDS client and RemoteCa against the real `smesh control` (file source, in process): snapshot contents, node scoping, CA node binding.
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startControlPlane, type ControlPlane } from '../../../../control/main';
import { controlSpiffeId } from '../../../../control/ca-service';
import { FileSource } from '../../../../control/sources/files';
import { SmeshError } from '../../../../core/errors';
import { RemoteCa } from '../../../../agent/identity/remote-ca';
import { StateStore } from '../../../../agent/state/store';
import { ControlPlaneChannel } from '../../../../agent/xds/channel';
import { XdsClient, type XdsUpdate } from '../../../../agent/xds/client';
import { tempDir, waitFor } from '../../fixtures/proxy';

const TD = 'cluster.local';
const CONFIG = `
apiVersion: smesh.io/v1alpha1
kind: MeshConfig
metadata: {name: mesh}
spec: {trustDomain: ${TD}}
---
apiVersion: v1
kind: Node
metadata: {name: node1}
status: {addresses: [{type: InternalIP, address: 198.18.0.1}]}
---
apiVersion: v1
kind: Node
metadata: {name: node2}
status: {addresses: [{type: InternalIP, address: 198.18.0.2}]}
---
apiVersion: v1
kind: Namespace
metadata: {name: default}
---
apiVersion: v1
kind: Pod
metadata: {name: web-1, namespace: default, labels: {app: web}, annotations: {smesh.io/netns: /run/netns/web-1}}
spec: {nodeName: node1, serviceAccountName: web}
status: {podIP: 198.18.1.10}
---
apiVersion: v1
kind: Pod
metadata: {name: db-1, namespace: default, labels: {app: db}, annotations: {smesh.io/netns: /run/netns/db-1}}
spec: {nodeName: node2, serviceAccountName: db}
status: {podIP: 198.18.2.10}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec: {clusterIP: 198.19.0.10, selector: {app: web}, ports: [{name: http, port: 80, targetPort: 8080, protocol: TCP}]}
`;

describe('agent xDS client + RemoteCa against smesh control', () => {
  let t: { dir: string; cleanup: () => Promise<void> };
  let cp: ControlPlane;
  let channel: ControlPlaneChannel;
  let client: XdsClient;
  let ca: RemoteCa;
  const updates: XdsUpdate[] = [];

  beforeAll(async () => {
    t = await tempDir();
    await fsp.mkdir(path.join(t.dir, 'config'));
    await fsp.writeFile(path.join(t.dir, 'config', 'mesh.yaml'), CONFIG);
    cp = await startControlPlane({
      source: new FileSource({ dir: path.join(t.dir, 'config') }),
      caDir: path.join(t.dir, 'ca'),
      tokens: { 'token-node1': 'node1' },
      listen: '127.0.0.1:0',
      instanceId: 'smesh-control-7f9c',
    });
    ca = new RemoteCa({ channel: { caClient: () => channel.caClient() }, trustAnchorsPem: cp.trustBundlePem });
    channel = new ControlPlaneChannel({
      address: `127.0.0.1:${cp.port}`,
      trustAnchorsPem: () => ca.trustBundlePem(),
      token: 'token-node1',
      controlPlaneId: controlSpiffeId(TD),
    });
    client = new XdsClient({ channel, nodeName: 'node1', backoff: { initialMs: 50, maxMs: 500 } });
    client.onUpdate((u) => updates.push(u));
    client.onTrustAnchors((a) => ca.setTrustAnchors(a));
    client.start();
  });

  afterAll(async () => {
    client?.close();
    channel?.close();
    await cp?.close();
    await t?.cleanup();
  });

  it('syncs every type and builds the same mesh the file describes, with node-scoped netns', async () => {
    expect(await client.waitForSync(10_000)).toBe(true);
    await waitFor(() => updates.length > 0);
    const s = updates.at(-1)!.snapshot;
    expect(s.trustDomain).toBe(TD);
    expect(s.nodes.get('node2')).toEqual({ name: 'node2', address: '198.18.0.2' });
    const web = [...s.workloads.values()].find((w) => w.name === 'web-1')!;
    const db = [...s.workloads.values()].find((w) => w.name === 'db-1')!;
    expect(web).toMatchObject({ ip: '198.18.1.10', node: 'node1', identity: `spiffe://${TD}/ns/default/sa/web`, netns: '/run/netns/web-1', meshed: true, workloadName: 'web' });
    // LocalWorkload is sent only to the pod's own node.
    expect(db).toMatchObject({ ip: '198.18.2.10', node: 'node2' });
    expect(db.netns).toBeUndefined();
    const store = new StateStore(s);
    const resolved = store.resolve('198.19.0.10', 80);
    expect(resolved.kind).toBe('service');
    if (resolved.kind === 'service') {
      expect(resolved.port.targetPort).toBe(8080);
      // Port name `http`: app_protocol HTTP11 on the wire, read first by the agent.
      expect(resolved.port.appProtocol).toBe('http');
      expect(resolved.endpoints.map((w) => w.name)).toEqual(['web-1']);
    }
    const st = client.status();
    expect(st.types.every((x) => x.nacks === 0 && x.acks >= 1)).toBe(true);
    expect(JSON.parse(st.controlPlane!)).toMatchObject({ Component: 'smesh-control', ID: 'smesh-control-7f9c', Info: { version: expect.stringMatching(/^\d+\.\d+\.\d+/) } });
    expect(ca.trustBundlePem()).toBe(cp.trustBundlePem);
  });

  it('CA: a pod of this node and the node id are signed; a pod of another node is PERMISSION_DENIED', async () => {
    const issued = await ca.issue(`spiffe://${TD}/ns/default/sa/web`);
    expect(issued.keyPem).toMatch(/PRIVATE KEY/);
    await ca.issue(`spiffe://${TD}/smesh/node/node1`);
    const err = await ca.issue(`spiffe://${TD}/ns/default/sa/db`).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SmeshError);
    expect((err as Error).message).toMatch(/PERMISSION_DENIED.*scheduled on this node/);
  });
});
