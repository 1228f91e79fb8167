// A small real Kubernetes API stand-in on 127.0.0.1 (core collections and the mesh CRDs: list with resourceVersion, chunked JSON-lines watch, 410 Gone on demand, CRDs installed or not) for testing @kubernetes/client-node users.
import * as k8s from '@kubernetes/client-node';
import * as http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export type CoreCollection = 'pods' | 'services' | 'endpointslices' | 'namespaces' | 'nodes';
export type CustomCollection = 'authorizationpolicies' | 'peerauthentications' | 'destinationrules' | 'virtualservices' | 'meshconfigs' | 'trafficshapings';
export type Collection = CoreCollection | CustomCollection;

/** The custom resources the stand-in knows, with the versions a current Istio (and smesh) serve. */
export const CUSTOM_RESOURCES: Readonly<Record<CustomCollection, { group: string; kind: string; versions: readonly string[] }>> = {
  authorizationpolicies: { group: 'security.istio.io', kind: 'AuthorizationPolicy', versions: ['v1', 'v1beta1'] },
  peerauthentications: { group: 'security.istio.io', kind: 'PeerAuthentication', versions: ['v1', 'v1beta1'] },
  destinationrules: { group: 'networking.istio.io', kind: 'DestinationRule', versions: ['v1', 'v1beta1', 'v1alpha3'] },
  virtualservices: { group: 'networking.istio.io', kind: 'VirtualService', versions: ['v1', 'v1beta1', 'v1alpha3'] },
  meshconfigs: { group: 'smesh.io', kind: 'MeshConfig', versions: ['v1alpha1'] },
  trafficshapings: { group: 'smesh.io', kind: 'TrafficShaping', versions: ['v1alpha1'] },
};

const CORE_ROUTES: Record<string, { collection: CoreCollection; listKind: string; apiVersion: string }> = {
  '/api/v1/pods': { collection: 'pods', listKind: 'PodList', apiVersion: 'v1' },
  '/api/v1/services': { collection: 'services', listKind: 'ServiceList', apiVersion: 'v1' },
  '/api/v1/namespaces': { collection: 'namespaces', listKind: 'NamespaceList', apiVersion: 'v1' },
  '/api/v1/nodes': { collection: 'nodes', listKind: 'NodeList', apiVersion: 'v1' },
  '/apis/discovery.k8s.io/v1/endpointslices': { collection: 'endpointslices', listKind: 'EndpointSliceList', apiVersion: 'discovery.k8s.io/v1' },
};

interface Route {
  collection: Collection;
  listKind: string;
  apiVersion: string;
  /** Custom resources: items and events carry apiVersion (of the requested version) and kind. */
  kind?: string;
}

type Obj = { metadata: { name: string; namespace?: string; resourceVersion?: string } & Record<string, unknown> } & Record<string, unknown>;
interface Event {
  rv: number;
  collection: Collection;
  type: 'ADDED' | 'MODIFIED' | 'DELETED';
  object: Obj;
}
interface OpenWatch {
  route: Route;
  res: http.ServerResponse;
}

function key(o: Obj): string {
  return o.metadata.namespace ? `${o.metadata.namespace}/${o.metadata.name}` : o.metadata.name;
}

export class K8sStandIn {
  private server: http.Server | undefined;
  private readonly sockets = new Set<Socket>();
  private readonly objects: Record<Collection, Map<string, Obj>> = {
    pods: new Map(),
    services: new Map(),
    endpointslices: new Map(),
    namespaces: new Map(),
    nodes: new Map(),
    authorizationpolicies: new Map(),
    peerauthentications: new Map(),
    destinationrules: new Map(),
    virtualservices: new Map(),
    meshconfigs: new Map(),
    trafficshapings: new Map(),
  };
  /** Served versions per custom resource; an empty list = CRD not installed (404 on list and watch). */
  private readonly served = new Map<CustomCollection, readonly string[]>((Object.keys(CUSTOM_RESOURCES) as CustomCollection[]).map((c) => [c, CUSTOM_RESOURCES[c].versions]));
  private history: Event[] = [];
  private rv = 100;
  /** Watches from a resourceVersion older than this get 410 Gone. */
  private compactedRv = 0;
  private readonly watches = new Set<OpenWatch>();
  /** Requests seen, for assertions ("GET /api/v1/pods?watch=true&resourceVersion=…"). */
  readonly requests: string[] = [];
  port = 0;

  async start(port = 0): Promise<number> {
    this.server = http.createServer((req, res) => this.handle(req, res));
    this.server.on('connection', (s) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
    await new Promise<void>((resolve, reject) => {
      this.server!.once('error', reject);
      this.server!.listen(port, '127.0.0.1', () => resolve());
    });
    this.port = (this.server.address() as AddressInfo).port;
    return this.port;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Stops listening and drops every connection (watches included); the objects stay for a restart. */
  async stop(): Promise<void> {
    const srv = this.server;
    if (!srv) return;
    this.server = undefined;
    for (const w of this.watches) w.res.destroy();
    this.watches.clear();
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => srv.close(() => resolve()));
  }

  /**
   * Which versions of a custom resource are served ([] = the CRD is not installed). Open watches of
   * versions no longer served are closed, as when a CRD is deleted; stored objects are kept.
   */
  serveVersions(collection: CustomCollection, versions: readonly string[]): void {
    this.served.set(collection, [...versions]);
    for (const w of [...this.watches]) {
      if (w.route.collection === collection && !versions.some((v) => w.route.apiVersion.endsWith(`/${v}`))) {
        w.res.end();
        this.watches.delete(w);
      }
    }
  }

  private route(pathname: string): Route | undefined {
    const core = CORE_ROUTES[pathname];
    if (core) return core;
    const m = /^\/apis\/([^/]+)\/([^/]+)\/([^/]+)$/.exec(pathname);
    if (!m) return undefined;
    const [, group, version, plural] = m;
    const def = CUSTOM_RESOURCES[plural as CustomCollection];
    if (!def || def.group !== group || !this.served.get(plural as CustomCollection)?.includes(version!)) return undefined;
    return { collection: plural as CustomCollection, listKind: `${def.kind}List`, apiVersion: `${group}/${version}`, kind: def.kind };
  }

  /** An object as served on `route` (custom resources carry the requested apiVersion and kind). */
  private render(route: Route, o: Obj): Obj {
    return route.kind ? { ...o, apiVersion: route.apiVersion, kind: route.kind } : o;
  }

  get resourceVersion(): string {
    return String(this.rv);
  }

  /** Creates or replaces an object, bumping the resourceVersion and notifying watches. */
  upsert(collection: Collection, object: Obj): void {
    const o = structuredClone(object);
    const k = key(o);
    const type = this.objects[collection].has(k) ? 'MODIFIED' : 'ADDED';
    o.metadata.resourceVersion = String(++this.rv);
    this.objects[collection].set(k, o);
    this.emit({ rv: this.rv, collection, type, object: o });
  }

  remove(collection: Collection, namespace: string | undefined, name: string): void {
    const k = namespace ? `${namespace}/${name}` : name;
    const o = this.objects[collection].get(k);
    if (!o) return;
    this.objects[collection].delete(k);
    const gone = structuredClone(o);
    gone.metadata.resourceVersion = String(++this.rv);
    this.emit({ rv: this.rv, collection, type: 'DELETED', object: gone });
  }

  /**
   * Simulates etcd compaction: every open watch gets an ERROR event with a 410 Status and is
   * closed, and watches from any resourceVersion older than now get the same, so clients must re-list.
   */
  expireWatches(): void {
    this.compactedRv = this.rv;
    this.history = [];
    for (const w of [...this.watches]) {
      this.writeGone(w.res);
      this.endSoon(w.res);
      this.watches.delete(w);
    }
  }

  /** Number of open watch connections, per collection. */
  openWatches(collection?: Collection): number {
    return [...this.watches].filter((w) => !collection || w.route.collection === collection).length;
  }

  private emit(e: Event): void {
    this.history.push(e);
    for (const w of this.watches) if (w.route.collection === e.collection) w.res.write(JSON.stringify({ type: e.type, object: this.render(w.route, e.object) }) + '\n');
  }

  /** Ends a watch response just after its last event (a fresh timer tick, as a real server's write and close are separate). */
  private endSoon(res: http.ServerResponse): void {
    setTimeout(() => res.end(), 20).unref();
  }

  private writeGone(res: http.ServerResponse): void {
    res.write(
      JSON.stringify({
        type: 'ERROR',
        object: { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: 'too old resource version', reason: 'Expired', code: 410 },
      }) + '\n',
    );
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://x');
    this.requests.push(`${req.method} ${url.pathname}${url.search}`);
    const route = this.route(url.pathname);
    if (!route || req.method !== 'GET') {
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ kind: 'Status', apiVersion: 'v1', status: 'Failure', code: 404, reason: 'NotFound', message: `no route ${url.pathname}` }));
      return;
    }
    const watch = url.searchParams.get('watch');
    if (watch === 'true' || watch === '1') return this.watch(route, url, res);
    const items = [...this.objects[route.collection].values()].map((o) => this.render(route, o));
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ kind: route.listKind, apiVersion: route.apiVersion, metadata: { resourceVersion: String(this.rv) }, items }));
  }

  private watch(route: Route, url: URL, res: http.ServerResponse): void {
    const collection = route.collection;
    res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
    res.flushHeaders();
    const rvText = url.searchParams.get('resourceVersion') ?? '';
    const from = rvText === '' ? 0 : Number(rvText);
    if (from !== 0 && from < this.compactedRv) {
      this.writeGone(res);
      this.endSoon(res);
      return;
    }
    if (from === 0) {
      for (const o of this.objects[collection].values()) res.write(JSON.stringify({ type: 'ADDED', object: this.render(route, o) }) + '\n');
    } else {
      for (const e of this.history) if (e.collection === collection && e.rv > from) res.write(JSON.stringify({ type: e.type, object: this.render(route, e.object) }) + '\n');
    }
    const w: OpenWatch = { route, res };
    this.watches.add(w);
    const timeout = Number(url.searchParams.get('timeoutSeconds') ?? '0');
    const timer = timeout > 0 ? setTimeout(() => res.end(), timeout * 1000) : undefined;
    timer?.unref();
    res.on('close', () => {
      if (timer) clearTimeout(timer);
      this.watches.delete(w);
    });
  }
}

/** A KubeConfig for the real client library pointing at a stand-in. */
export function kubeConfigFor(url: string): k8s.KubeConfig {
  const kc = new k8s.KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'standin', server: url, skipTLSVerify: true }],
    users: [{ name: 'u', token: 'standin-token' }],
    contexts: [{ name: 'c', cluster: 'standin', user: 'u' }],
    currentContext: 'c',
  });
  return kc;
}
