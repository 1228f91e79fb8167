// In-process retained-heap probe for the agent's state at scale: 10k services / 50k workloads through the real wire decode → parse → IncrementalSnapshot → StateStore → Reconciler path, heap measured after forced GCs.
// Run: node --expose-gc --semi-space-growth-factor=1 --heap-growing-percent=20 -r tsx/cjs bench/scale-heap.ts (the
// launcher's flags; no root, no network; ~10 s). Prints MiB retained per stage and the agent-side CPU time of the sync; the bench/README.md "Scale" section explains how it is used.
import { loadMeshProtos } from '../proto';
import { parseResource, releaseSharingCaches, type AnyMessage } from '../agent/xds/convert';
import { IncrementalSnapshot } from '../agent/xds/incremental';
import { decodeDeltaResponse } from '../agent/xds/wire';
import { StateStore } from '../agent/state/store';
import { Reconciler, WorkloadIds, type DatapathMaps } from '../agent/datapath/reconciler';
import { XDS_TYPE_URL, xdsCodecs } from '../core/xds/contract';

const SERVICES = Number(process.env.SCALE_SERVICES ?? 10_000);
const PODS = Number(process.env.SCALE_PODS ?? 50_000);
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('run with node --expose-gc -r tsx/cjs bench/scale-heap.ts');
const heapMiB = (): number => {
  gc();
  gc();
  return process.memoryUsage().heapUsed / 1048576;
};
const say = (s: string) => process.stdout.write(s + '\n');

// The same shapes bench/scale.ts's control plane sends (service j selects pods 5j … 5j+4, app label s<j>).
const c = xdsCodecs();
const ip4 = (s: string) => Buffer.from(s.split('.').map(Number));
const podIp = (i: number) => `198.18.${40 + Math.floor(i / 250)}.${(i % 250) + 2}`;
const vipOf = (j: number) => `198.19.${Math.floor(j / 250)}.${(j % 250) + 2}`;
const input: Array<{ name: string; any: AnyMessage }> = [];
const perService = Math.max(1, Math.floor(PODS / SERVICES));
for (let j = 0; j < SERVICES; j++) {
  const ns = `ns-${j % 10}`;
  const hostname = `s${j}.${ns}.svc.cluster.local`;
  input.push({
    name: `${ns}/${hostname}`,
    any: c.address.pack({ service: { name: `s${j}`, namespace: ns, hostname, addresses: [{ network: '', address: ip4(vipOf(j)) }], ports: [{ servicePort: 80, targetPort: 8080 }] } } as never),
  });
}
for (let i = 0; i < PODS; i++) {
  const j = Math.min(SERVICES - 1, Math.floor(i / perService));
  const ns = `ns-${j % 10}`;
  const uid = `Kubernetes//Pod/${ns}/p${i}`;
  const workload = {
    uid,
    name: `p${i}`,
    namespace: ns,
    addresses: [ip4(podIp(i))],
    trustDomain: 'cluster.local',
    serviceAccount: `sa-${j % 100}`,
    node: `fake${2 + (i % 49)}`,
    canonicalName: `s${j}`,
    workloadName: `p${i}`,
    tunnelProtocol: 'HBONE',
    services: { [`${ns}/s${j}.${ns}.svc.cluster.local`]: { ports: [{ servicePort: 80, targetPort: 8080 }] } },
  };
  input.push({ name: uid, any: c.address.pack({ workload } as never) });
}
// As smesh control sends them: DeltaDiscoveryResponses of 2,000 resources (XDS_CHUNK_RESOURCES), decoded by the agent's wire decoder.
const CHUNK = 2000;
const responses: Uint8Array[] = [];
for (let i = 0; i < input.length; i += CHUNK) {
  const resources = input.slice(i, i + CHUNK).map((r, k) => ({ name: r.name, version: (0x1000000000 + (i + k) * 7919).toString(16).padStart(16, '0'), resource: r.any }));
  const last = i + CHUNK >= input.length;
  responses.push(loadMeshProtos().codecs.deltaDiscoveryResponse.encode({ systemVersionInfo: last ? 'v1' : 'v1+partial', typeUrl: XDS_TYPE_URL.address, nonce: String(i), resources } as never));
}
input.length = 0;

const maps: DatapathMaps = {
  enrollPod: () => undefined,
  unenrollPod: () => undefined,
  enrolledPods: () => [],
  addMeshedDestination: () => undefined,
  removeMeshedDestination: () => undefined,
  meshedDestinations: () => [],
  addMeshedDestinations: () => undefined,
  removeMeshedDestinations: () => 0,
};

async function main(): Promise<void> {
  const base = heapMiB();
  const cpu0 = process.cpuUsage();
  const inc = new IncrementalSnapshot();
  const versions = new Map<string, string>(); // what the xDS client keeps per resource
  for (const bytes of responses) {
    for (const r of decodeDeltaResponse(bytes).resources) {
      const p = parseResource(XDS_TYPE_URL.address, r.name, r.resource);
      if (!p.ok) throw new Error(p.error);
      inc.set(p.value);
      versions.set(r.name, r.version);
    }
  }
  const built = inc.build();
  releaseSharingCaches(); // as the xDS client does after a complete push
  const store = new StateStore();
  store.replace(built.snapshot);
  const rec = new Reconciler(maps, async () => 1n, 'node1', new WorkloadIds(), { warn: () => undefined, info: () => undefined });
  await rec.reconcile(built.snapshot);
  const cpu = process.cpuUsage(cpu0);
  const rss = process.memoryUsage().rss / 1048576;
  say(
    `${SERVICES} services, ${PODS} workloads: agent-side sync CPU ${((cpu.user + cpu.system) / 1000).toFixed(0)} ms, RSS after it ${rss.toFixed(0)} MiB (before any forced GC; the probe's own input included)`,
  );
  // Retained, stage by stage (each stage released from the end to measure what it holds).
  const all = heapMiB() - base;
  if (process.env.SCALE_HEAP_SNAPSHOT) {
    // SCALE_HEAP_SNAPSHOT=FILE: the whole retained state as a V8 heap snapshot (Chrome DevTools → Memory), before the stages are released.
    say(`heap snapshot: ${require('node:v8').writeHeapSnapshot(process.env.SCALE_HEAP_SNAPSHOT)}`);
  }
  (rec as unknown as { desired: Map<string, number> }).desired.clear();
  const withoutReconciler = heapMiB() - base;
  store.replace({ trustDomain: 'x', nodes: new Map(), workloads: new Map(), services: new Map(), namespaces: new Map() });
  const withoutStore = heapMiB() - base;
  say(
    `retained heap: ${all.toFixed(1)} MiB = state (accepted + snapshot + xDS versions) ${withoutStore.toFixed(1)} + StateStore indexes ${(withoutReconciler - withoutStore).toFixed(1)} + reconciler ${(all - withoutReconciler).toFixed(1)}`,
  );
  void [inc, versions, built];
}

void main();
