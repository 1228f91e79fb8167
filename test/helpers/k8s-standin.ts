// A small real Kubernetes API stand-in on 127.0.0.1 (list with resourceVersion, chunked JSON-lines watch, 410 Gone on demand) for testing @kubernetes/client-node users.
import * as http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export type Collection = 'pods' | 'services' | 'endpointslices' | 'namespaces' | 'nodes';

const ROUTES: Record<string, { collection: Collection; listKind: string; apiVersion: string }> = {
  '/api/v1/pods': { collection: 'pods', listKind: 'PodList', apiVersion: 'v1' },
  '/api/v1/services': { collection: 'services', listKind: 'ServiceList', apiVersion: 'v1' },
  '/api/v1/namespaces': { collection: 'namespaces', listKind: 'NamespaceList', apiVersion: 'v1' },
  '/api/v1/nodes': { collection: 'nodes', listKind: 'NodeList', apiVersion: 'v1' },
  '/apis/discovery.k8s.io/v1/endpointslices': { collection: 'endpointslices', listKind: 'EndpointSliceList', apiVersion: 'discovery.k8s.io/v1' },
};

type Obj = { metadata: { name: string; namespace?: string; resourceVersion?: string } & Record<string, unknown> } & Record<string, unknown>;
interface Event {
  rv: number;
  collection: Collection;
  type: 'ADDED' | 'MODIFIED' | 'DELETED';
  object: Obj;
}
interface OpenWatch {
  collection: Collection;
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
  };
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
    return [...this.watches].filter((w) => !collection || w.collection === collection).length;
  }

  private emit(e: Event): void {
    this.history.push(e);
    for (const w of this.watches) if (w.collection === e.collection) w.res.write(JSON.stringify({ type: e.type, object: e.object }) + '\n');
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
    const route = ROUTES[url.pathname];
    if (!route || req.method !== 'GET') {
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ kind: 'Status', apiVersion: 'v1', status: 'Failure', code: 404, reason: 'NotFound', message: `no route ${url.pathname}` }));
      return;
    }
    const watch = url.searchParams.get('watch');
    if (watch === 'true' || watch === '1') return this.watch(route.collection, url, res);
    const items = [...this.objects[route.collection].values()];
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ kind: route.listKind, apiVersion: route.apiVersion, metadata: { resourceVersion: String(this.rv) }, items }));
  }

  private watch(collection: Collection, url: URL, res: http.ServerResponse): void {
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
      for (const o of this.objects[collection].values()) res.write(JSON.stringify({ type: 'ADDED', object: o }) + '\n');
    } else {
      for (const e of this.history) if (e.collection === collection && e.rv > from) res.write(JSON.stringify({ type: e.type, object: e.object }) + '\n');
    }
    const w: OpenWatch = { collection, res };
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
