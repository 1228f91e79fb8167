// Dual-stack pods: every address of a pod (status.podIPs, Istio's Workload.addresses) travels from config through xDS into the agent's state, IP lookups, redirect destinations, STRICT/PERMISSIVE modes and connect denies.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ConfigError, loadConfigDir } from '../../../../control/config/config-dir';
import { buildSnapshot, parseResource, type AcceptedAddress, type AcceptedWorkload } from '../../../../agent/xds/convert';
import { IncrementalSnapshot } from '../../../../agent/xds/incremental';
import { workloadAddress } from '../../../../control/xds-resources';
import { loadMeshProtos } from '../../../../proto';
import { StateStore } from '../../../../agent/state/store';
import { workloadAddresses } from '../../../../core/model/addresses';
import { desiredDestinations } from '../../../../agent/datapath/reconciler';
import { desiredConnectDenies, desiredInboundModes } from '../../../../agent/datapath/policy-maps';
import type { MeshSnapshot, Workload } from '../../../../core/model/types';
import { XDS_TYPE_URL } from '../../../../core/xds/contract';

const V4 = '198.18.1.10';
const V6 = 'fd00:5345:1::a';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
function load(yaml: string): MeshSnapshot {
  const dir = mkdtempSync(join(tmpdir(), 'smesh-test-dual-'));
  dirs.push(dir);
  writeFileSync(join(dir, 'mesh.yaml'), yaml);
  return loadConfigDir(dir);
}

const base = (pods: string, extra = '') => `
apiVersion: v1
kind: Node
metadata: {name: node1}
status: {addresses: [{type: InternalIP, address: 198.18.0.1}]}
---
apiVersion: v1
kind: Namespace
metadata: {name: shop}
${pods}${extra}`;

const pod = (name: string, podIP: string, podIPs: string[]) => `---
apiVersion: v1
kind: Pod
metadata: {name: ${name}, namespace: shop, labels: {app: ${name}}, annotations: {smesh.io/netns: /run/netns/${name}}}
spec: {nodeName: node1, serviceAccountName: ${name}-sa}
status: {podIP: ${podIP}, podIPs: [${podIPs.map((ip) => `{ip: "${ip}"}`).join(', ')}]}
`;

describe('dual-stack pods from file (and Kubernetes) config', () => {
  it('keeps every address of status.podIPs, podIP first; a single-stack pod has just ip', () => {
    const s = load(base(pod('web', V4, [V4, V6]) + pod('db', '198.18.1.11', ['198.18.1.11'])));
    const web = s.workloads.get('shop/web')!;
    expect(web.ip).toBe(V4);
    expect(web.addresses).toEqual([V4, V6]);
    expect(workloadAddresses(web)).toEqual([V4, V6]);
    const db = s.workloads.get('shop/db')!;
    expect(db.addresses).toBeUndefined();
    expect(workloadAddresses(db)).toEqual(['198.18.1.11']);
  });

  it('reports a second address already used by another pod, naming the podIPs entry', () => {
    let err: unknown;
    try {
      load(base(pod('web', V4, [V4, V6]) + pod('db', '198.18.1.11', ['198.18.1.11', V6])));
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).problems).toEqual(
      expect.arrayContaining([expect.objectContaining({ resource: 'Pod shop/db', field: 'status.podIPs[1].ip', message: expect.stringContaining(`address ${V6} is already used by Pod shop/web`) })]),
    );
  });
});

describe('dual-stack pods over xDS (smesh control → agent)', () => {
  const { codecs } = loadMeshProtos();
  const dual: Workload = {
    uid: 'shop/web',
    name: 'web',
    namespace: 'shop',
    serviceAccount: 'web-sa',
    node: 'node1',
    ip: V4,
    addresses: [V4, V6],
    labels: { app: 'web' },
    workloadName: 'web',
    identity: 'spiffe://cluster.local/ns/shop/sa/web-sa',
    meshed: true,
  };
  const accepted = (w: Workload): AcceptedWorkload => {
    const address = workloadAddress(w, 'cluster.local', undefined);
    expect(address.workload?.addresses?.length).toBe(workloadAddresses(w).length);
    const any = { type_url: XDS_TYPE_URL.address, value: Buffer.from(codecs.address.encode(address)) };
    const res = parseResource(XDS_TYPE_URL.address, address.workload!.uid!, any);
    if (!res.ok) throw new Error(res.error);
    return res.value as AcceptedWorkload;
  };

  it('sends every address in Workload.addresses and the agent keeps them, in order (full snapshot and incremental state)', () => {
    const a = accepted(dual);
    expect(a.ips).toEqual([V4, V6]);
    const full = buildSnapshot({ addresses: new Map<string, AcceptedAddress>([[a.uid, a]]), nodes: new Map(), localWorkloads: new Map() }).snapshot;
    const w = full.workloads.get(a.uid)!;
    expect(w.ip).toBe(V4);
    expect(w.addresses).toEqual([V4, V6]);
    const single = accepted({ ...dual, uid: 'shop/db', name: 'db', ip: '198.18.1.11', addresses: undefined });
    expect(
      buildSnapshot({ addresses: new Map<string, AcceptedAddress>([[single.uid, single]]), nodes: new Map(), localWorkloads: new Map() }).snapshot.workloads.get(single.uid)!.addresses,
    ).toBeUndefined();

    const inc = new IncrementalSnapshot();
    inc.set(a);
    const built = inc.build().snapshot;
    expect(built.workloads.get(a.uid)!.addresses).toEqual([V4, V6]);
    // The IP owners index of the incremental state finds the pod by either address.
    const store = new StateStore(built);
    expect(store.workloadByIp(V6)?.uid).toBe(a.uid);
    expect(store.workloadByIp(V4)?.uid).toBe(a.uid);
    // Losing the second address releases it.
    const v4only = accepted({ ...dual, addresses: undefined });
    inc.set(v4only);
    store.replace(inc.build().snapshot);
    expect(store.workloadByIp(V6)).toBeUndefined();
    expect(store.workloadByIp(V4)?.uid).toBe(a.uid);
  });
});

describe('dual-stack pods in the kernel maps', () => {
  const snapshotWith = (extra: string) => load(base(pod('web', V4, [V4, V6]) + pod('client', '198.18.1.12', ['198.18.1.12']), extra));

  it('StateStore finds the pod by either address (own index, from file config)', () => {
    const store = new StateStore(snapshotWith(''));
    expect(store.workloadByIp(V4)?.uid).toBe('shop/web');
    expect(store.workloadByIp(V6)?.uid).toBe('shop/web');
  });

  it('redirects connections to either address (meshed destinations)', () => {
    const d = desiredDestinations(snapshotWith(''));
    expect([...d.values()]).toEqual(
      expect.arrayContaining([
        { ip: V4, port: 0 },
        { ip: V6, port: 0 },
      ]),
    );
  });

  it('STRICT applies to plaintext on both addresses', () => {
    const strict = `---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: strict, namespace: shop}
spec: {selector: {matchLabels: {app: web}}, mtls: {mode: STRICT}}
`;
    const modes = desiredInboundModes(snapshotWith(strict), 'node1');
    expect(modes.get(`${V4}|0`)?.mode).toBe('STRICT');
    expect(modes.get(`${V6}|0`)?.mode).toBe('STRICT');
    const open = desiredInboundModes(snapshotWith(''), 'node1');
    expect(open.get(`${V6}|0`)?.mode).toBe('PERMISSIVE');
  });

  it('a connect deny for a mesh client covers both addresses of the denied endpoint', () => {
    const deny = `---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec: {clusterIP: 198.19.0.10, selector: {app: web}, ports: [{name: tcp, port: 9000, targetPort: 9000}]}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-client, namespace: shop}
spec: {selector: {matchLabels: {app: web}}, action: DENY, rules: [{from: [{source: {principals: ["cluster.local/ns/shop/sa/client-sa"]}}]}]}
`;
    const denies = [...desiredConnectDenies(snapshotWith(deny), 'node1', () => 1).values()].map((e) => `${e.ip}|${e.port}`);
    expect(denies).toEqual(expect.arrayContaining([`${V4}|9000`, `${V6}|9000`, '198.19.0.10|9000']));
  });
});
