// Kubernetes source: list+watch of Pods, Services, EndpointSlices, Namespaces and Nodes through @kubernetes/client-node, turned into the same MeshSnapshot as the file source.
import * as k8s from '@kubernetes/client-node';
import { buildSnapshot, ConfigProblem, formatProblem } from '../../agent/config/resources';
import type { MeshSnapshot, Service } from '../../agent/state/types';
import { silentLogger, type Logger } from '../../agent/telemetry/logger';
import type { MeshSource, SourceEvents } from './types';

export type WatchedKind = 'pods' | 'services' | 'endpointslices' | 'namespaces' | 'nodes';

/** API paths of the watched collections (cluster-wide). */
export const WATCH_PATHS: Readonly<Record<WatchedKind, string>> = Object.freeze({
  pods: '/api/v1/pods',
  services: '/api/v1/services',
  endpointslices: '/apis/discovery.k8s.io/v1/endpointslices',
  namespaces: '/api/v1/namespaces',
  nodes: '/api/v1/nodes',
});

const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';

export interface KubernetesSourceOptions {
  /** A ready KubeConfig; else `kubeconfigFile`; else the default lookup (in-cluster, $KUBECONFIG, ~/.kube/config). */
  readonly kubeConfig?: k8s.KubeConfig;
  readonly kubeconfigFile?: string;
  /** Trust domain of the mesh (Kubernetes has no MeshConfig resource of ours). Default cluster.local. */
  readonly trustDomain?: string;
  readonly logger?: Logger;
  /** Reconnect backoff: first delay and cap. Default 250 ms … 10 s. */
  readonly backoffInitialMs?: number;
  readonly backoffMaxMs?: number;
  /** Batch events for this long before rebuilding the snapshot. Default 50 ms. */
  readonly rebuildDelayMs?: number;
  /** Give up start() if the first list of every kind has not succeeded by then. Default 60 s. */
  readonly initialSyncTimeoutMs?: number;
  /** Server-side watch timeout (connections are rotated at least this often). Default 240-300 s. */
  readonly watchTimeoutSeconds?: number;
}

type KObject = { metadata?: { name?: string; namespace?: string; resourceVersion?: string; labels?: Record<string, string>; annotations?: Record<string, string> } } & Record<string, any>;

function objectKey(o: KObject): string {
  const ns = o.metadata?.namespace;
  return ns ? `${ns}/${o.metadata?.name}` : String(o.metadata?.name);
}

class GoneError extends Error {}

function sleep(ms: number, signal: { cancelled: boolean; wake?: () => void }): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal.wake = () => {
      clearTimeout(t);
      resolve();
    };
  });
}

/**
 * One collection's list+watch loop with resourceVersion bookkeeping: list (records the list's
 * resourceVersion), watch from it, follow each event's resourceVersion; on 410 Gone re-list; on
 * errors or a dropped connection, reconnect with exponential backoff.
 */
class Reflector {
  readonly store = new Map<string, KObject>();
  resourceVersion = '';
  synced = false;
  private readonly stopper: { cancelled: boolean; wake?: () => void } = { cancelled: false };
  private abort: AbortController | undefined;
  private backoff: number;

  constructor(
    readonly kind: WatchedKind,
    private readonly list: () => Promise<{ items: KObject[]; resourceVersion: string }>,
    private readonly watcher: k8s.Watch,
    private readonly opts: { initialMs: number; maxMs: number; watchTimeoutSeconds?: number },
    private readonly log: Logger,
    private readonly changed: () => void,
  ) {
    this.backoff = opts.initialMs;
  }

  async run(): Promise<void> {
    let quickEmptyCloses = 0;
    while (!this.stopper.cancelled) {
      try {
        if (!this.resourceVersion) await this.relist();
        const started = Date.now();
        const events = await this.watchOnce();
        if (this.stopper.cancelled) return;
        // A watch the server closed normally (its timeout) resumes from the last resourceVersion.
        // One that closes at once without delivering anything is suspicious: the client library
        // can drop the last line of a response (e.g. a 410 ERROR event) when the server closes
        // right after it. Back off, and after a few in a row re-list, which is always correct.
        if (events === 0 && Date.now() - started < 1000) {
          quickEmptyCloses++;
          if (quickEmptyCloses >= 3) {
            this.log.info({ kind: this.kind }, 'watch keeps closing without events; re-listing');
            this.resourceVersion = '';
            quickEmptyCloses = 0;
          }
          await sleep(this.backoff, this.stopper);
          this.backoff = Math.min(this.backoff * 2, this.opts.maxMs);
        } else {
          quickEmptyCloses = 0;
        }
      } catch (err) {
        if (this.stopper.cancelled) return;
        if (err instanceof GoneError) {
          this.log.info({ kind: this.kind, resourceVersion: this.resourceVersion }, 'watch resourceVersion expired (410 Gone); re-listing');
          this.resourceVersion = '';
          continue;
        }
        this.log.warn({ kind: this.kind, error: (err as Error).message, retryInMs: this.backoff }, 'Kubernetes list/watch failed; retrying (check the API server address and RBAC for list/watch on this resource)');
        await sleep(this.backoff, this.stopper);
        this.backoff = Math.min(this.backoff * 2, this.opts.maxMs);
      }
    }
  }

  private async relist(): Promise<void> {
    const { items, resourceVersion } = await this.list();
    this.store.clear();
    for (const o of items) this.store.set(objectKey(o), o);
    this.resourceVersion = resourceVersion;
    this.synced = true;
    this.backoff = this.opts.initialMs;
    this.log.debug({ kind: this.kind, items: items.length, resourceVersion }, 'listed');
    this.changed();
  }

  /** Watches until the server or the network ends it; resolves with the number of events seen. */
  private watchOnce(): Promise<number> {
    return new Promise<number>((resolve, reject) => {
      let settled = false;
      let events = 0;
      const finish = (err: Error | null): void => {
        if (settled) return;
        settled = true;
        if (err) reject(err);
        else resolve(events);
      };
      const timeoutSeconds = this.opts.watchTimeoutSeconds ?? 240 + Math.floor(Math.random() * 60);
      const query = { resourceVersion: this.resourceVersion, allowWatchBookmarks: true, timeoutSeconds };
      this.watcher
        .watch(
          WATCH_PATHS[this.kind],
          query,
          (type: string, obj: KObject) => {
            if (settled) return;
            if (type === 'ERROR') {
              const code = (obj as { code?: number }).code;
              // Settle first: aborting makes the library report an AbortError synchronously.
              finish(code === 410 ? new GoneError('410 Gone') : new Error(`watch ERROR event: ${(obj as { message?: string }).message ?? JSON.stringify(obj)}`));
              this.abort?.abort();
              return;
            }
            events++;
            const rv = obj?.metadata?.resourceVersion;
            if (rv) this.resourceVersion = rv;
            this.backoff = this.opts.initialMs;
            if (type === 'BOOKMARK') return;
            if (type === 'ADDED' || type === 'MODIFIED') this.store.set(objectKey(obj), obj);
            else if (type === 'DELETED') this.store.delete(objectKey(obj));
            else return;
            this.changed();
          },
          (err: unknown) => {
            if (err && (err as { statusCode?: number }).statusCode === 410) finish(new GoneError('410 Gone'));
            else if (err && (err as Error).name !== 'AbortError') finish(err as Error);
            else finish(null);
          },
        )
        .then((controller) => {
          this.abort = controller;
          if (this.stopper.cancelled) controller.abort();
        })
        .catch((err: Error) => finish(err));
    });
  }

  stop(): void {
    this.stopper.cancelled = true;
    this.stopper.wake?.();
    this.abort?.abort();
  }
}

export class KubernetesSource implements MeshSource {
  readonly kind = 'kubernetes';
  private readonly log: Logger;
  private readonly reflectors: Reflector[] = [];
  private readonly runs: Promise<void>[] = [];
  private rebuildTimer: NodeJS.Timeout | undefined;
  private events: SourceEvents | undefined;
  private started = false;
  private lastProblems = '';

  constructor(private readonly opts: KubernetesSourceOptions = {}) {
    this.log = opts.logger ?? silentLogger();
  }

  private kubeConfig(): k8s.KubeConfig {
    if (this.opts.kubeConfig) return this.opts.kubeConfig;
    const kc = new k8s.KubeConfig();
    if (this.opts.kubeconfigFile) kc.loadFromFile(this.opts.kubeconfigFile);
    else kc.loadFromDefault();
    return kc;
  }

  async start(events: SourceEvents): Promise<MeshSnapshot> {
    this.events = events;
    const kc = this.kubeConfig();
    const core = kc.makeApiClient(k8s.CoreV1Api);
    const discovery = kc.makeApiClient(k8s.DiscoveryV1Api);
    const watcher = new k8s.Watch(kc);
    const asList = (p: Promise<{ items: unknown[]; metadata?: { resourceVersion?: string } }>) =>
      p.then((l) => ({ items: l.items as KObject[], resourceVersion: l.metadata?.resourceVersion ?? '' }));
    const lists: Record<WatchedKind, () => Promise<{ items: KObject[]; resourceVersion: string }>> = {
      pods: () => asList(core.listPodForAllNamespaces({})),
      services: () => asList(core.listServiceForAllNamespaces({})),
      endpointslices: () => asList(discovery.listEndpointSliceForAllNamespaces({})),
      namespaces: () => asList(core.listNamespace({})),
      nodes: () => asList(core.listNode({})),
    };
    const backoff = { initialMs: this.opts.backoffInitialMs ?? 250, maxMs: this.opts.backoffMaxMs ?? 10_000, watchTimeoutSeconds: this.opts.watchTimeoutSeconds };
    for (const kind of Object.keys(WATCH_PATHS) as WatchedKind[]) {
      const r = new Reflector(kind, lists[kind], watcher, backoff, this.log, () => this.scheduleRebuild());
      this.reflectors.push(r);
    }
    const synced = new Promise<void>((resolve, reject) => {
      const deadline = Date.now() + (this.opts.initialSyncTimeoutMs ?? 60_000);
      const check = (): void => {
        if (this.reflectors.every((r) => r.synced)) return resolve();
        if (Date.now() > deadline) {
          const missing = this.reflectors.filter((r) => !r.synced).map((r) => r.kind);
          return reject(new Error(`Kubernetes source: initial list of ${missing.join(', ')} did not succeed in time (is the API server reachable and may this account list them?)`));
        }
        setTimeout(check, 20).unref();
      };
      check();
    });
    for (const r of this.reflectors) this.runs.push(r.run());
    try {
      await synced;
    } catch (err) {
      await this.close();
      throw err;
    }
    this.started = true;
    return this.build();
  }

  private scheduleRebuild(): void {
    if (!this.started || this.rebuildTimer) return;
    this.rebuildTimer = setTimeout(() => {
      this.rebuildTimer = undefined;
      try {
        this.events?.onSnapshot(this.build());
      } catch (err) {
        this.log.error({ err }, 'cannot build a snapshot from Kubernetes objects');
        this.events?.onError?.(err as Error);
      }
    }, this.opts.rebuildDelayMs ?? 50);
    this.rebuildTimer.unref();
  }

  private store(kind: WatchedKind): Iterable<KObject> {
    return this.reflectors.find((r) => r.kind === kind)!.store.values();
  }

  /** The snapshot of the current caches (exposed for tests). */
  build(): MeshSnapshot {
    return snapshotFromObjects(
      {
        pods: [...this.store('pods')],
        services: [...this.store('services')],
        endpointslices: [...this.store('endpointslices')],
        namespaces: [...this.store('namespaces')],
        nodes: [...this.store('nodes')],
      },
      this.opts.trustDomain ?? 'cluster.local',
      (problems) => {
        const text = problems.map(formatProblem).join('\n');
        if (text && text !== this.lastProblems) this.log.warn({ problems }, 'skipped Kubernetes objects the mesh cannot use');
        this.lastProblems = text;
      },
    );
  }

  async close(): Promise<void> {
    if (this.rebuildTimer) clearTimeout(this.rebuildTimer);
    this.rebuildTimer = undefined;
    this.started = false;
    for (const r of this.reflectors) r.stop();
    await Promise.allSettled(this.runs);
  }
}

/**
 * Builds the snapshot through the file source's own buildSnapshot (one definition of a pod,
 * service, node, namespace), after dropping what Kubernetes legitimately has but the mesh cannot
 * serve (pending or finished pods, host-network pods, ExternalName services, unresolvable named
 * target ports). EndpointSlices then make service membership explicit (ready endpoints only).
 */
export function snapshotFromObjects(
  objs: Readonly<Record<WatchedKind, readonly KObject[]>>,
  trustDomain: string,
  onProblems: (problems: ConfigProblem[]) => void = () => undefined,
): MeshSnapshot {
  const source = 'kubernetes';
  const docs: Array<{ file: string; kind: string; name: string; namespace: string; body: any }> = [];
  docs.push({ file: source, kind: 'MeshConfig', name: 'mesh', namespace: '', body: { spec: { trustDomain } } });

  const slicesByService = new Map<string, KObject[]>();
  for (const s of objs.endpointslices) {
    const svc = s.metadata?.labels?.[SERVICE_NAME_LABEL];
    if (!svc || !s.metadata?.namespace) continue;
    const key = `${s.metadata.namespace}/${svc}`;
    let list = slicesByService.get(key);
    if (!list) slicesByService.set(key, (list = []));
    list.push(s);
  }

  for (const n of objs.nodes) {
    if (!n.metadata?.name) continue;
    docs.push({ file: source, kind: 'Node', name: n.metadata.name, namespace: '', body: { metadata: { name: n.metadata.name }, status: { addresses: n.status?.addresses ?? [] } } });
  }
  for (const ns of objs.namespaces) {
    if (!ns.metadata?.name) continue;
    docs.push({ file: source, kind: 'Namespace', name: ns.metadata.name, namespace: '', body: { metadata: { name: ns.metadata.name, labels: ns.metadata.labels ?? {} } } });
  }
  for (const p of objs.pods) {
    const m = p.metadata;
    if (!m?.name || !m.namespace) continue;
    const podIP: string | undefined = p.status?.podIP ?? p.status?.podIPs?.[0]?.ip;
    const phase: string | undefined = p.status?.phase;
    if (!p.spec?.nodeName || !podIP || p.spec?.hostNetwork || phase === 'Succeeded' || phase === 'Failed') continue;
    docs.push({
      file: source,
      kind: 'Pod',
      name: m.name,
      namespace: m.namespace,
      body: {
        metadata: { name: m.name, namespace: m.namespace, labels: m.labels ?? {}, annotations: m.annotations ?? {} },
        spec: { nodeName: p.spec.nodeName, serviceAccountName: p.spec.serviceAccountName ?? p.spec.serviceAccount ?? 'default' },
        status: { podIP },
      },
    });
  }
  for (const s of objs.services) {
    const m = s.metadata;
    if (!m?.name || !m.namespace || s.spec?.type === 'ExternalName') continue;
    const slices = slicesByService.get(`${m.namespace}/${m.name}`) ?? [];
    const ports: any[] = [];
    for (const p of (s.spec?.ports ?? []) as any[]) {
      let targetPort = p.targetPort;
      if (typeof targetPort === 'string' && !/^\d+$/.test(targetPort)) {
        // Named target port: the EndpointSlice controller already resolved it per service port name.
        const resolved = slices.flatMap((sl) => (sl.ports ?? []) as any[]).find((sp) => (sp.name ?? '') === (p.name ?? ''))?.port;
        if (typeof resolved !== 'number') continue;
        targetPort = resolved;
      }
      ports.push({ name: p.name, port: p.port, targetPort, protocol: p.protocol, appProtocol: p.appProtocol });
    }
    docs.push({
      file: source,
      kind: 'Service',
      name: m.name,
      namespace: m.namespace,
      body: { metadata: { name: m.name, namespace: m.namespace }, spec: { clusterIP: s.spec?.clusterIP, clusterIPs: s.spec?.clusterIPs, selector: s.spec?.selector ?? {}, ports } },
    });
  }

  const problems: ConfigProblem[] = [];
  const base = buildSnapshot(docs, problems);
  onProblems(problems);

  const services = new Map<string, Service>();
  for (const [key, svc] of base.services) {
    const slices = slicesByService.get(key);
    if (!slices || slices.length === 0) {
      services.set(key, svc);
      continue;
    }
    const uids = new Set<string>();
    for (const sl of slices) {
      for (const ep of (sl.endpoints ?? []) as any[]) {
        if (ep.conditions?.ready === false) continue;
        const ref = ep.targetRef;
        if (ref?.kind !== 'Pod' || !ref.name) continue;
        const uid = `${ref.namespace ?? sl.metadata?.namespace}/${ref.name}`;
        if (base.workloads.has(uid)) uids.add(uid);
      }
    }
    services.set(key, { ...svc, endpointUids: [...uids].sort() });
  }
  return { ...base, services };
}
