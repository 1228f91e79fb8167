// Kubernetes source: list+watch of Pods, Services, EndpointSlices, Namespaces, Nodes and the mesh resources (Istio security/networking CRDs, smesh MeshConfig) through @kubernetes/client-node, turned into the same MeshSnapshot as the file source.
import * as k8s from '@kubernetes/client-node';
import { AUTHORIZATION_API_VERSIONS } from '../config/authorization';
import { PEER_AUTHENTICATION_API_VERSIONS } from '../config/peer-authentication';
import { buildSnapshot, ConfigError, type ConfigProblem, formatProblem, parseConfigText, type ParsedDoc } from '../config/config-dir';
import { TRAFFIC_API_VERSIONS } from '../config/istio-traffic';
import type { MeshSnapshot, Service } from '../../core/model/types';
import { silentLogger, type Logger } from '../../core/telemetry/logger';
import type { MeshSource, SourceEvents } from './types';

export type CoreKind = 'pods' | 'services' | 'endpointslices' | 'namespaces' | 'nodes';
export type MeshKind = 'authorizationpolicies' | 'peerauthentications' | 'destinationrules' | 'virtualservices' | 'meshconfigs' | 'trafficshapings';
export type WatchedKind = CoreKind | MeshKind;

/** API paths of the watched core collections (cluster-wide). */
export const WATCH_PATHS: Readonly<Record<CoreKind, string>> = Object.freeze({
  pods: '/api/v1/pods',
  services: '/api/v1/services',
  endpointslices: '/apis/discovery.k8s.io/v1/endpointslices',
  namespaces: '/api/v1/namespaces',
  nodes: '/api/v1/nodes',
});

/** A custom resource the source watches: its group, the versions to try (in order) and its kind. */
export interface MeshResourceDef {
  readonly plural: MeshKind;
  readonly kind: string;
  readonly group: string;
  /** Tried in this order; the first one the API server serves is listed and watched. */
  readonly versions: readonly string[];
}

const versionsOf = (apiVersions: readonly string[]): string[] => apiVersions.map((v) => v.slice(v.indexOf('/') + 1));

/**
 * The mesh resources, with the versions the file source's validators accept, newest first.
 * Istio serves every version of a CRD from the same stored objects (no conversion webhook), so
 * watching one served version sees all of them: the newest one served is used (v1 on Istio ≥ 1.22,
 * v1beta1 before), re-checked on every re-list.
 */
export const MESH_RESOURCES: readonly MeshResourceDef[] = Object.freeze([
  { plural: 'authorizationpolicies', kind: 'AuthorizationPolicy', group: 'security.istio.io', versions: versionsOf(AUTHORIZATION_API_VERSIONS) },
  { plural: 'peerauthentications', kind: 'PeerAuthentication', group: 'security.istio.io', versions: versionsOf(PEER_AUTHENTICATION_API_VERSIONS) },
  { plural: 'destinationrules', kind: 'DestinationRule', group: 'networking.istio.io', versions: versionsOf(TRAFFIC_API_VERSIONS) },
  { plural: 'virtualservices', kind: 'VirtualService', group: 'networking.istio.io', versions: versionsOf(TRAFFIC_API_VERSIONS) },
  { plural: 'meshconfigs', kind: 'MeshConfig', group: 'smesh.io', versions: ['v1alpha1'] },
  { plural: 'trafficshapings', kind: 'TrafficShaping', group: 'smesh.io', versions: ['v1alpha1'] },
] as const);

const CORE_KINDS = Object.keys(WATCH_PATHS) as CoreKind[];
const MESH_KINDS = MESH_RESOURCES.map((d) => d.plural);

const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';

export interface KubernetesSourceOptions {
  /** A ready KubeConfig; else `kubeconfigFile`; else the default lookup (in-cluster, $KUBECONFIG, ~/.kube/config). */
  readonly kubeConfig?: k8s.KubeConfig;
  readonly kubeconfigFile?: string;
  /**
   * Trust domain of the mesh. When set it wins over a MeshConfig resource's spec.trustDomain (a
   * different value there is reported); when unset, the MeshConfig's value, else cluster.local.
   */
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
  /** How often to look again for a mesh CRD that is not installed (404). Default 30 s. */
  readonly missingCrdRetryMs?: number;
}

type KObject = { metadata?: { name?: string; namespace?: string; resourceVersion?: string; labels?: Record<string, string>; annotations?: Record<string, string> } } & Record<string, any>;

function objectKey(o: KObject): string {
  const ns = o.metadata?.namespace;
  return ns ? `${ns}/${o.metadata?.name}` : String(o.metadata?.name);
}

/** The watch cannot resume from its resourceVersion (410 Gone, or 404 once a CRD went away): re-list. */
class GoneError extends Error {
  constructor(
    message: string,
    /** Re-list after the backoff, not at once (a 404 watch whose list still works must not spin). */
    readonly delay = false,
  ) {
    super(message);
  }
}

/** No served version of a custom resource (its CRD is not installed). */
class NotInstalledError extends Error {}

interface Lister {
  /** Lists the collection; throws NotInstalledError when the API server serves none of its versions. */
  list(): Promise<{ items: KObject[]; resourceVersion: string }>;
  /** Path to watch (for a custom resource: of the version the last list used). */
  path(): string;
}

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
 * errors or a dropped connection, reconnect with exponential backoff. A custom resource whose CRD
 * is not installed counts as synced and empty, and is looked for again every `missingRetryMs`.
 */
class Reflector {
  readonly store = new Map<string, KObject>();
  resourceVersion = '';
  synced = false;
  private readonly stopper: { cancelled: boolean; wake?: () => void } = { cancelled: false };
  private abort: AbortController | undefined;
  private backoff: number;

  /** Set while the resource's CRD is not installed (so "not installed" is logged once per outage). */
  private missing = false;

  constructor(
    readonly kind: WatchedKind,
    private readonly lister: Lister,
    private readonly watcher: k8s.Watch,
    private readonly opts: { initialMs: number; maxMs: number; watchTimeoutSeconds?: number; missingRetryMs: number },
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
          this.log.info({ kind: this.kind, resourceVersion: this.resourceVersion, reason: err.message }, 'watch cannot resume; re-listing');
          this.resourceVersion = '';
          if (err.delay) {
            await sleep(this.backoff, this.stopper);
            this.backoff = Math.min(this.backoff * 2, this.opts.maxMs);
          }
          continue;
        }
        if (err instanceof NotInstalledError) {
          // A mesh CRD that is not installed means there are none of those objects: the source
          // syncs without them and looks again slowly (an install is picked up on the next try).
          if (!this.missing) this.log.warn({ kind: this.kind, retryInMs: this.opts.missingRetryMs }, `${err.message}; continuing without it and checking again periodically`);
          this.missing = true;
          this.resourceVersion = '';
          if (this.store.size > 0) {
            this.store.clear();
            this.changed();
          }
          this.synced = true;
          await sleep(this.opts.missingRetryMs, this.stopper);
          continue;
        }
        this.log.warn(
          { kind: this.kind, error: (err as Error).message, retryInMs: this.backoff },
          'Kubernetes list/watch failed; retrying (check the API server address and RBAC for list/watch on this resource)',
        );
        await sleep(this.backoff, this.stopper);
        this.backoff = Math.min(this.backoff * 2, this.opts.maxMs);
      }
    }
  }

  private async relist(): Promise<void> {
    const { items, resourceVersion } = await this.lister.list();
    if (this.missing) this.log.info({ kind: this.kind, path: this.lister.path() }, 'resource is served now; watching it');
    this.missing = false;
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
          this.lister.path(),
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
            const status = err ? (err as { statusCode?: number }).statusCode : undefined;
            if (status === 410) finish(new GoneError('410 Gone'));
            else if (status === 404) finish(new GoneError('404 Not Found (resource no longer served)', true));
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
  private currentProblems: readonly ConfigProblem[] = [];
  /** Validated mesh objects by kind/key and resourceVersion: a rebuild re-validates only what changed. */
  private readonly meshCache: MeshObjectCache = new Map();

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
    const custom = kc.makeApiClient(k8s.CustomObjectsApi);
    const watcher = new k8s.Watch(kc);
    const asList = (p: Promise<{ items: unknown[]; metadata?: { resourceVersion?: string } }>) => p.then((l) => ({ items: l.items as KObject[], resourceVersion: l.metadata?.resourceVersion ?? '' }));
    const coreLists: Record<CoreKind, () => Promise<{ items: KObject[]; resourceVersion: string }>> = {
      pods: () => asList(core.listPodForAllNamespaces({})),
      services: () => asList(core.listServiceForAllNamespaces({})),
      endpointslices: () => asList(discovery.listEndpointSliceForAllNamespaces({})),
      namespaces: () => asList(core.listNamespace({})),
      nodes: () => asList(core.listNode({})),
    };
    const backoff = {
      initialMs: this.opts.backoffInitialMs ?? 250,
      maxMs: this.opts.backoffMaxMs ?? 10_000,
      watchTimeoutSeconds: this.opts.watchTimeoutSeconds,
      missingRetryMs: this.opts.missingCrdRetryMs ?? 30_000,
    };
    const changed = (): void => this.scheduleRebuild();
    for (const kind of CORE_KINDS) {
      this.reflectors.push(new Reflector(kind, { list: coreLists[kind], path: () => WATCH_PATHS[kind] }, watcher, backoff, this.log, changed));
    }
    for (const def of MESH_RESOURCES) this.reflectors.push(new Reflector(def.plural, customResourceLister(custom, def), watcher, backoff, this.log, changed));
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

  private store(kind: WatchedKind): KObject[] {
    return [...this.reflectors.find((r) => r.kind === kind)!.store.values()];
  }

  /**
   * Objects the last snapshot skipped, by resource and field (`kubernetes: AuthorizationPolicy
   * ns/name: field spec.rules[0]...`). Everything else stays in force.
   */
  get problems(): readonly ConfigProblem[] {
    return this.currentProblems;
  }

  /** The snapshot of the current caches (exposed for tests). */
  build(): MeshSnapshot {
    const objs = {} as Record<WatchedKind, KObject[]>;
    for (const kind of [...CORE_KINDS, ...MESH_KINDS]) objs[kind] = this.store(kind);
    return snapshotFromObjects(
      objs,
      this.opts.trustDomain,
      (problems) => {
        this.currentProblems = problems;
        const text = problems.map(formatProblem).join('\n');
        if (text && text !== this.lastProblems) {
          // Reported by resource and field; the objects are skipped and the rest is served.
          this.log.warn({ problems: problems.map(formatProblem) }, 'skipped Kubernetes objects the mesh cannot use');
          if (this.started) this.events?.onError?.(new ConfigError(problems));
        }
        this.lastProblems = text;
      },
      this.meshCache,
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

function isNotFound(err: unknown): boolean {
  return (err as { code?: number }).code === 404 || (err as { statusCode?: number }).statusCode === 404;
}

/** Lists a custom resource cluster-wide at the first served version of `def.versions`. */
function customResourceLister(api: k8s.CustomObjectsApi, def: MeshResourceDef): Lister {
  let version = def.versions[0]!;
  return {
    path: () => `/apis/${def.group}/${version}/${def.plural}`,
    list: async () => {
      for (const v of def.versions) {
        let l: { items?: KObject[]; metadata?: { resourceVersion?: string } };
        try {
          l = (await api.listClusterCustomObject({ group: def.group, version: v, plural: def.plural })) as typeof l;
        } catch (err) {
          if (isNotFound(err)) continue;
          throw err;
        }
        version = v;
        // Items of a custom resource list carry apiVersion and kind; fill them in if a server left them out.
        const items = (l.items ?? []).map((o) => ({ ...o, apiVersion: o.apiVersion ?? `${def.group}/${v}`, kind: o.kind ?? def.kind }));
        return { items, resourceVersion: l.metadata?.resourceVersion ?? '' };
      }
      throw new NotInstalledError(`${def.kind} (${def.plural}.${def.group}, versions ${def.versions.join(', ')}) is not served by the API server (CRD not installed)`);
    },
  };
}

/** Parsed mesh objects keyed by `plural/namespace/name`, valid while the resourceVersion is unchanged. */
export type MeshObjectCache = Map<string, { readonly resourceVersion: string; readonly docs: readonly ParsedDoc[]; readonly problems: readonly ConfigProblem[] }>;

const SOURCE_LABEL = 'kubernetes';

/**
 * Runs one mesh object through the file source's own validation (schema, apiVersion, unknown
 * fields). Only what a user writes is checked: server-managed metadata (uid, managedFields,
 * finalizers, ...) and status are dropped first.
 */
function validateMeshObject(def: MeshResourceDef, o: KObject, problems: ConfigProblem[], cache: MeshObjectCache | undefined, seen: Set<string>): ParsedDoc[] {
  const m = o.metadata ?? {};
  const cacheKey = `${def.plural}/${m.namespace ?? ''}/${m.name ?? ''}`;
  seen.add(cacheKey);
  const rv = m.resourceVersion;
  const hit = rv ? cache?.get(cacheKey) : undefined;
  if (hit && hit.resourceVersion === rv) {
    problems.push(...hit.problems);
    return [...hit.docs];
  }
  const body: Record<string, unknown> = {
    apiVersion: o.apiVersion,
    kind: o.kind ?? def.kind,
    metadata: {
      name: m.name,
      ...(m.namespace !== undefined ? { namespace: m.namespace } : {}),
      ...(m.labels !== undefined ? { labels: m.labels } : {}),
      ...(m.annotations !== undefined ? { annotations: m.annotations } : {}),
    },
    ...(o.spec !== undefined ? { spec: o.spec } : {}),
  };
  const own: ConfigProblem[] = [];
  // JSON is YAML: the text goes through exactly the parser and schema the file source uses.
  const docs = parseConfigText(SOURCE_LABEL, JSON.stringify(body), own).map((d) => ({ ...d, line: undefined }));
  const ownProblems = own.map((p) => ({ ...p, line: undefined }));
  if (rv && cache) cache.set(cacheKey, { resourceVersion: rv, docs, problems: ownProblems });
  problems.push(...ownProblems);
  return docs;
}

/**
 * Builds the snapshot through the file source's own buildSnapshot (one definition of a pod,
 * service, node, namespace, policy), after dropping what Kubernetes legitimately has but the mesh
 * cannot serve (pending or finished pods, host-network pods, ExternalName services, unresolvable
 * named target ports). EndpointSlices then make service membership explicit (ready endpoints
 * only). Mesh resources (AuthorizationPolicy, PeerAuthentication, DestinationRule,
 * VirtualService, MeshConfig) are validated as in files; an invalid one is reported through
 * `onProblems` and skipped, the rest stays in force.
 */
export function snapshotFromObjects(
  objs: Readonly<Record<CoreKind, readonly KObject[]> & Partial<Record<MeshKind, readonly KObject[]>>>,
  trustDomain: string | undefined,
  onProblems: (problems: ConfigProblem[]) => void = () => undefined,
  cache?: MeshObjectCache,
): MeshSnapshot {
  const source = SOURCE_LABEL;
  const problems: ConfigProblem[] = [];
  const docs: ParsedDoc[] = [];

  const seenMesh = new Set<string>();
  const meshDocs: ParsedDoc[] = [];
  const meshConfigs: ParsedDoc[] = [];
  for (const def of MESH_RESOURCES) {
    const list = [...(objs[def.plural] ?? [])].sort((a, b) => (objectKey(a) < objectKey(b) ? -1 : objectKey(a) > objectKey(b) ? 1 : 0));
    for (const o of list) {
      for (const d of validateMeshObject(def, o, problems, cache, seenMesh)) (d.kind === 'MeshConfig' ? meshConfigs : meshDocs).push(d);
    }
  }
  if (cache) for (const k of [...cache.keys()]) if (!seenMesh.has(k)) cache.delete(k);

  // MeshConfig: the resource's settings (rootNamespace, trustDomain) with the --trust-domain flag on top.
  if (meshConfigs.length === 0) {
    docs.push({ file: source, kind: 'MeshConfig', name: 'mesh', namespace: '', body: { spec: trustDomain ? { trustDomain } : {} } });
  } else {
    const first = meshConfigs[0]!;
    const spec = { ...(first.body.spec ?? {}) };
    if (trustDomain) {
      if (spec.trustDomain !== undefined && spec.trustDomain !== trustDomain) {
        problems.push({
          file: source,
          resource: `MeshConfig ${first.name}`,
          field: 'spec.trustDomain',
          message: `differs from the control plane's --trust-domain ${JSON.stringify(trustDomain)}, which is used`,
        });
      }
      spec.trustDomain = trustDomain;
    }
    docs.push({ ...first, body: { ...first.body, spec } });
    docs.push(...meshConfigs.slice(1)); // buildSnapshot reports every extra one
  }

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
        // Every address of a dual-stack pod (one per family); the first is podIP.
        status: { podIP, podIPs: ((p.status?.podIPs ?? []) as Array<{ ip?: string }>).filter((a) => typeof a.ip === 'string').map((a) => ({ ip: a.ip })) },
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

  docs.push(...meshDocs);
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
