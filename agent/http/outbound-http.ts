// Per-request outbound proxying for HTTP service ports: route, pick, circuit-break, outlier-track, retry, time out, inject faults, count.
import { routeToEndpoint } from '../proxy/endpoint-route';
import { sidecarSni, type LegacyMtlsRequest } from '../proxy/legacy-mtls';
import * as http from 'node:http';
import * as http2 from 'node:http2';
import type * as net from 'node:net';
import type { Duplex } from 'node:stream';
import type { LbEndpoint } from '../lb/endpoint';
import { EndpointLoadTracker } from '../lb/load';
import type { PickRequest } from '../lb/picker';
import { lbPolicyFromSettings } from '../lb/policy';
import { LoadBalancerRegistry, PickerCache, registerBuiltinLoadBalancers, type LbPolicy } from '../lb/registry';
import { endpointAddress } from '../../core/model/addresses';
import { dialConnected, sourceAddressFor, type SourceAddressFor } from '../proxy/dial';
import type { HboneOpenRequest } from '../proxy/hbone-client';
import { formatAuthority, serviceInfo, type AuthorizeInput, type AuthorizeResult } from '../proxy/types';
import { type AcceptQueue, defaultAcceptClass } from '../qos/accept-queue';
import type { TrafficShaper } from '../qos/shaping';
import type { ConnectionRegistry } from '../proxy/connection-tracker';
import type { HttpAttributes } from '../../core/policy/types';
import type { StateView } from '../state/store';
import type { MeshSnapshot } from '../../core/model/types';
import type { ConnectionPoolSettings, LoadBalancerSettings, RetrySettings, Service, ServicePort, ServiceTrafficPolicy, Workload } from '../../core/model/types';
import { silentLogger, type Logger } from '../../core/telemetry/logger';
import { DEFAULT_CLUSTER, type MeshMetrics, type RequestSizes, type TcpConnectionInfo } from '../telemetry/metrics';
import { baggageHeader, sourceBaggage } from '../telemetry/baggage';
import { CircuitBreaker, type OverloadReason } from './circuit-breaker';
import { OutlierDetector, outcomeOfStatus, type Outcome } from './outlier';
import { BodyTap } from './body';
import { BodyMeter, sizesOf } from './body-meter';
import { blamesPeer, H2WatchedTransport, h2ErrorName } from './h2-watch';
import { HOP_BY_HOP, HTTP2_PREFACE, isHttpPort, sniffHttpVersion } from '../../core/model/protocol';
import { checkMethod, normalizeRequestTarget, type PathRejection } from './path-normalize';
import { headerLists } from './policy-headers';
import { routeRequest, type RoutableService, type RouteTarget } from './route';
import { rawReply, responseHead, splice, upgradeRequestHeaders } from './tunnel';
import { asHttpSocket, DEFAULT_HTTP1_IDLE_MS, UpstreamPool, type PoolSettings, type UpstreamTarget } from './upstream';

export const OVERLOAD_HEADER = 'x-smesh-overload';
/** Request bodies up to this size are buffered so the request can be retried; larger ones stream once. */
export const MAX_RETRY_BODY = 64 * 1024;
/** Upstream HTTP/2 sessions with no stream activity for this long are closed (unless the DestinationRule sets http.idleTimeout). */
export const UPSTREAM_IDLE_MS = 5 * 60_000;
/**
 * HTTP/2 receive windows of the proxy's sessions (both sides): per stream and per connection. Node's
 * 64 KiB default lets a peer send one window per event-loop turn; larger windows let bodies flow at
 * the rate they are consumed. Paused streams stop updating the window, so a stream buffers at most this.
 */
const H2_STREAM_WINDOW = 1024 * 1024;
const H2_CONNECTION_WINDOW = 16 * 1024 * 1024;

/** Istio's default retry policy when no route sets one. */
export const DEFAULT_RETRY: RetrySettings = { attempts: 2, retryOn: ['connect-failure', 'refused-stream', '503'] };

/** A refused upgrade's answer is relayed close-delimited: its own framing and connection headers go. */
const NOT_UPGRADED_DROP: ReadonlySet<string> = new Set(['connection', 'keep-alive', 'transfer-encoding', 'upgrade']);

/** The proxies' authorizer with the request attributes of an HTTP port (agent/policy/authorizer.ts createAuthorizer fits). */
export type HttpAuthorizer = (input: AuthorizeInput & { readonly http?: HttpAttributes }) => AuthorizeResult;

export interface HttpConnectionContext {
  readonly source: Workload;
  readonly sourceIp?: string;
  readonly service: Service;
  readonly port: ServicePort;
}

export interface HttpOutboundOptions {
  readonly state: Pick<StateView, 'snapshot' | 'resolve' | 'node' | 'trustDomain'>;
  readonly hbone: { open(req: HboneOpenRequest): Promise<Duplex> };
  readonly nodeName: string;
  readonly hbonePort: number;
  /** Pod-addressed (default, ztunnel's) or node-addressed HBONE. */
  readonly hboneAddressing?: 'pod' | 'node';
  /** Source address for same-node upstream connections (the capture address in production). */
  readonly localSourceIp?: string;
  /** The same for IPv6 local pods (--capture-ip6); absent: the kernel picks the source. */
  readonly localSourceIp6?: string;
  /** Originates an Istio sidecar's mutual TLS (endpoints with tunnel LEGACY_ISTIO_MTLS); absent: such endpoints get 503. */
  readonly legacyMtls?: { connect(req: LegacyMtlsRequest): Promise<Duplex> };
  /** Same-node requests are authorized here, per request with their HTTP attributes (remote ones by the destination's inbound, per connection). */
  readonly authorize?: HttpAuthorizer;
  readonly metrics?: MeshMetrics;
  readonly logger?: Logger;
  readonly connectTimeoutMs?: number;
  /** Largest accepted request head (default 16 KiB, Node's); bigger gets 431. */
  readonly maxHeaderSize?: number;
  readonly random?: () => number;
  /** Monotonic ms. */
  readonly now?: () => number;
  /** How often per-service state (breakers, outlier trackers, pickers, upstream connections) of services and endpoints that left the mesh state is dropped (default 10 s). */
  readonly pruneIntervalMs?: number;
  /** Same-node upgraded (WebSocket) connections, authorized here, are registered so that a policy change re-decides them (proxy/connection-tracker.ts). */
  readonly connections?: ConnectionRegistry;
  /** TrafficShaping outbound requestRate rules (agent/qos/shaping.ts): a request over one gets 429 with RateLimit headers. */
  readonly shaping?: TrafficShaper;
  /** The node's accept queue: each HTTP/1.1 request's handling waits its turn by class and fair share (agent/qos/accept-queue.ts). */
  readonly requestQueue?: AcceptQueue;
}

/**
 * One request of the native HTTP/1.1 engine path (agent/http/engine-outbound.ts) after the decision it shares with the
 * node:http path (normalize → shaping → route → fault → circuit breaker → endpoint pick → endpoint route and, same
 * node, authorization): a local reply, or an upstream to forward to.
 */
export type EngineRequestDecision =
  | {
      readonly kind: 'reply';
      readonly service: Service;
      readonly destination?: Workload;
      readonly status: number;
      /** Plain-text body, newline-terminated, as the node:http path writes it. */
      readonly body: string;
      readonly headers: Readonly<Record<string, string>>;
      readonly flags: string;
    }
  | {
      readonly kind: 'forward';
      readonly service: Service;
      readonly destination: Workload;
      readonly upstream: UpstreamTarget;
      /** The normalized request target the upstream gets. */
      readonly path: string;
      readonly pool: PoolSettings;
      /** The route timeout (absent: none). */
      readonly timeoutMs?: number;
      readonly flags: string;
      /** Ends the request's hold on its backend (breaker request slot, endpoint load) and feeds outlier detection; idempotent. */
      readonly done: (status: number, connectFailure?: boolean) => void;
    };

/** What the HTTP outbound holds, for tests and diagnostics. */
export interface HttpOutboundStats {
  /** Service/subset/port backends with a circuit breaker and outlier tracker. */
  readonly backends: number;
  /** Endpoints with an HTTP/1.1 connection pool. */
  readonly upstreamPools: number;
  /** Upstream HTTP/2 sessions taking new streams. */
  readonly h2Sessions: number;
}

interface HttpEndpoint extends LbEndpoint {
  readonly workload: Workload;
}

interface Backend {
  readonly key: string;
  readonly breaker: CircuitBreaker;
  outlier?: OutlierDetector;
  signature: string;
  endpoints: readonly HttpEndpoint[];
  /** The picker cache rebuilds on a new policy object: keep one per settings object. */
  lbSettings?: LoadBalancerSettings;
  lbPolicy: LbPolicy;
}

/** One upstream HTTP/2 session and how many streams it has carried. */
interface H2Upstream {
  readonly target: UpstreamTarget;
  session: Promise<http2.ClientHttp2Session>;
  readonly signature: string;
  streams: number;
  /** Streams not closed yet. */
  open: number;
  readonly maxStreams: number;
  /** Takes no new streams; closes when `open` reaches 0 (closing earlier would refuse streams nghttp2 has not sent yet). */
  retired: boolean;
}

function poolSignature(p: PoolSettings): string {
  return `${p.connectTimeoutMs}|${p.idleTimeoutMs}|${p.maxRequestsPerConnection}`;
}

type Admission =
  | { readonly kind: 'reply'; readonly service: Service; readonly delayed: boolean; readonly reply: ProxyReply }
  | { readonly kind: 'gone'; readonly service: Service; readonly delayed: boolean }
  | { readonly kind: 'admitted'; readonly service: Service; readonly delayed: boolean; readonly target: RouteTarget; readonly backend: Backend };

/** `dead_connection`: a pooled connection the upstream had closed (e.g. the app restarted) failed before any response byte. */
type FailureKind = 'connect_failure' | 'reset' | 'dead_connection' | 'timeout' | 'overflow' | 'denied';

/** Errors of a request written to a kept-alive connection the upstream closed meanwhile (nothing was answered). */
const DEAD_CONNECTION_CODES: ReadonlySet<string> = new Set(['ECONNRESET', 'EPIPE', 'ECONNABORTED', 'ERR_HTTP2_STREAM_ERROR', 'ERR_STREAM_PREMATURE_CLOSE']);
/** RFC 9110 §9.2.2: a request with one of these methods may be sent again. */
const IDEMPOTENT_METHODS: ReadonlySet<string> = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);

type AttemptResult = { readonly kind: 'response'; readonly res: http.IncomingMessage } | { readonly kind: 'failure'; readonly failure: FailureKind; readonly message: string };

type H2AttemptResult =
  | {
      readonly kind: 'response';
      readonly up: http2.ClientHttp2Stream;
      readonly head: http2.IncomingHttpHeaders & http2.IncomingHttpStatusHeader;
      readonly status: number;
      readonly endStream: boolean;
      readonly early: { trailers?: http2.IncomingHttpHeaders };
    }
  | { readonly kind: 'failure'; readonly failure: FailureKind; readonly message: string; readonly refused?: boolean };

class ProxyReply {
  constructor(
    readonly status: number,
    readonly message: string,
    readonly flags: string,
    readonly headers: Record<string, string> = {},
  ) {}
}

/** What the retry loop needs of one try's result, whichever the protocol. */
type TryResult = { readonly kind: 'response' } | { readonly kind: 'failure'; readonly failure: FailureKind; readonly message: string; readonly refused?: boolean };

/** One request's tries: how to run one against an upstream, and how to read and drop a response. */
interface TryPlan<R extends TryResult> {
  readonly ctx: HttpConnectionContext;
  readonly service: Service;
  readonly target: RouteTarget;
  readonly backend: Backend;
  readonly tap: BodyTap;
  /** When the request arrived (the route timeout runs from here). */
  readonly started: number;
  readonly pick: PickRequest;
  readonly attrs: HttpAttributes;
  readonly onDestination: (w: Workload) => void;
  /** One try; undefined when the client went away. */
  readonly run: (ut: UpstreamTarget, timeoutMs: number | undefined) => Promise<R | undefined>;
  readonly statusOf: (r: Extract<R, { kind: 'response' }>) => number;
  /** Drops a response that is retried. */
  readonly discard: (r: Extract<R, { kind: 'response' }>) => void;
}

/** The local reply for a request that got no upstream response (undefined: every try was refused by the breaker). */
function failureReply(last: Extract<TryResult, { kind: 'failure' }> | ProxyReply | undefined): ProxyReply {
  if (!last) return new ProxyReply(503, 'upstream overflow: retries exhausted by the circuit breaker', 'UO', { [OVERLOAD_HEADER]: 'max_retries' });
  if (last instanceof ProxyReply) return last;
  switch (last.failure) {
    case 'timeout':
      return new ProxyReply(504, 'upstream request timeout', 'UT');
    case 'overflow':
      return new ProxyReply(503, `upstream overflow: ${last.message}`, 'UO', { [OVERLOAD_HEADER]: last.message });
    case 'connect_failure':
      return new ProxyReply(503, `upstream connect error: ${last.message}`, 'UF');
    case 'dead_connection':
      return new ProxyReply(503, `upstream connect error or disconnect/reset before headers: pooled connection closed by the upstream (${last.message})`, 'UC');
    case 'reset':
      return new ProxyReply(502, `upstream reset before response: ${last.message}`, 'UC');
    case 'denied':
      return new ProxyReply(403, 'RBAC: access denied by the destination', 'UAEX');
  }
}

function retriableFailure(failure: FailureKind, retryOn: readonly string[], refused = false): boolean {
  if (failure === 'overflow' || failure === 'denied') return false;
  for (const cond of retryOn) {
    if (cond === '5xx' || cond === 'gateway-error') return true;
    if (cond === 'reset' && failure !== 'connect_failure') return true;
    if (cond === 'connect-failure' && failure === 'connect_failure') return true;
    if (cond === 'refused-stream' && (failure === 'connect_failure' || refused)) return true;
  }
  return false;
}

function retriableStatus(s: number, retryOn: readonly string[]): boolean {
  for (const cond of retryOn) {
    if (cond === '5xx' && s >= 500) return true;
    if (cond === 'gateway-error' && (s === 502 || s === 503 || s === 504)) return true;
    if (cond === 'retriable-4xx' && s === 409) return true;
    if (/^\d{3}$/.test(cond) && Number(cond) === s) return true;
  }
  return false;
}

/**
 * The code a client's stream is reset with when its upstream stream was: REFUSED_STREAM (the client
 * may retry), CANCEL and ENHANCE_YOUR_CALM pass; the rest become INTERNAL_ERROR, so a protocol-error
 * code sent to a client always means the client's own frames were invalid (h2-watch.ts counts those).
 */
function downstreamResetCode(code: number): number {
  const c = http2.constants;
  return code === c.NGHTTP2_REFUSED_STREAM || code === c.NGHTTP2_CANCEL || code === c.NGHTTP2_ENHANCE_YOUR_CALM ? code : c.NGHTTP2_INTERNAL_ERROR;
}

/** The HTTP/1.1 outbound handler the OutboundProxy hands sockets of HTTP service ports to. */
export class HttpOutbound {
  private readonly server: http.Server;
  private readonly contexts = new WeakMap<net.Socket, HttpConnectionContext>();
  private readonly baggageByConnection = new WeakMap<HttpConnectionContext, { host: string | undefined; baggage: string }>();
  private readonly backends = new Map<string, Backend>();
  private readonly registry = new LoadBalancerRegistry();
  private readonly load = new EndpointLoadTracker();
  private readonly pickers: PickerCache<HttpEndpoint>;
  private readonly pool: UpstreamPool;
  private readonly log: Logger;
  private readonly random: () => number;
  private readonly now: () => number;
  private readonly authorize: HttpAuthorizer;
  private readonly sockets = new Set<net.Socket>();
  private readonly h2server: http2.Http2Server;
  private readonly h2contexts = new WeakMap<http2.Http2Session, HttpConnectionContext>();
  private pendingH2Context?: HttpConnectionContext;
  /** Upstream HTTP/2 sessions per endpoint (prior knowledge), shared by the streams to it. */
  private readonly h2sessions = new Map<string, H2Upstream>();

  private readonly pruneTimer: NodeJS.Timeout;
  /** Source address of same-node upstream connections, by the destination's family. */
  /** Source address of connections to a same-node pod (the capture address; the engine path uses it too). */
  readonly sourceFor: SourceAddressFor;
  private prunedSnapshot?: MeshSnapshot;

  constructor(private readonly opts: HttpOutboundOptions) {
    this.sourceFor = sourceAddressFor(opts.localSourceIp, opts.localSourceIp6);
    this.log = opts.logger ?? silentLogger();
    this.random = opts.random ?? Math.random;
    this.now = opts.now ?? (() => performance.now());
    this.authorize = opts.authorize ?? (() => ({ allow: true }));
    registerBuiltinLoadBalancers(this.registry);
    this.pickers = new PickerCache(this.registry, { load: this.load, random: this.random });
    this.pool = new UpstreamPool((req) => opts.hbone.open(req), this.sourceFor, opts.legacyMtls ? (req) => opts.legacyMtls!.connect(req) : undefined);
    this.prunedSnapshot = opts.state.snapshot();
    this.pruneTimer = setInterval(() => this.prune(), opts.pruneIntervalMs ?? 10_000);
    this.pruneTimer.unref();
    this.server = http.createServer({ maxHeaderSize: opts.maxHeaderSize ?? 16 * 1024, requestTimeout: 0, keepAliveTimeout: 60_000 }, (req, res) => {
      const handle = () =>
        void this.onRequest(req, res).catch((err: unknown) => {
          this.log.warn({ err: (err as Error).message }, 'HTTP request handling failed');
          if (!res.headersSent) {
            res.writeHead(502, { 'content-type': 'text/plain' });
            res.end('proxy error\n');
          } else res.destroy();
        });
      const queue = opts.requestQueue;
      const ctx = queue ? this.contexts.get(req.socket) : undefined;
      if (!queue || !ctx) return handle();
      // Under contention requests are handled by class (TrafficShaping priority by method, path or header) and fair share.
      const cls =
        opts.shaping?.requestClass({ direction: 'outbound', source: ctx.source, service: ctx.service, port: ctx.port.port, method: req.method ?? '', path: req.url ?? '', headers: req.headers }) ??
        defaultAcceptClass(ctx.source, ctx.sourceIp);
      queue.submit(
        cls,
        handle,
        (_reason, detail) => {
          this.opts.metrics?.refused.inc({ direction: 'outbound', reason: 'overloaded' });
          if (res.headersSent) return void res.destroy();
          const body = `overloaded: ${detail}\n`;
          res.writeHead(503, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body), 'retry-after': '1' });
          res.end(body);
        },
        () => req.destroyed || res.destroyed,
      );
    });
    this.h2server = http2.createServer({ maxSessionInvalidFrames: 100, settings: { enablePush: false, initialWindowSize: H2_STREAM_WINDOW } });
    // Idle sessions (and ones nghttp2 already sent GOAWAY on after a protocol error) are closed after 2 minutes.
    this.h2server.setTimeout(120_000);
    this.h2server.on('session', (session: http2.ServerHttp2Session) => {
      if (this.pendingH2Context) this.h2contexts.set(session, this.pendingH2Context);
      session.once('connect', () => session.setLocalWindowSize(H2_CONNECTION_WINDOW));
      session.on('error', () => undefined);
    });
    // Invalid frames from the client are counted where nghttp2's answer to them is written (see handle()).
    this.h2server.on('sessionError', (err: NodeJS.ErrnoException) => this.log.debug({ err: err.message }, 'HTTP/2 client session error'));
    this.h2server.on('stream', (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, _flags: number, rawHeaders: string[]) => {
      void this.onH2Stream(stream, headers, rawHeaders).catch((err: unknown) => {
        this.log.warn({ err: (err as Error).message }, 'HTTP/2 stream handling failed');
        if (!stream.destroyed) stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
      });
    });
    this.server.on('clientError', (err: NodeJS.ErrnoException, sock: Duplex) => this.onClientError(err, sock));
    this.server.on('upgrade', (req: http.IncomingMessage, sock: Duplex, head: Buffer) => {
      void this.onUpgrade(req, sock, head).catch((err: unknown) => {
        this.log.warn({ err: (err as Error).message }, 'HTTP upgrade handling failed');
        sock.destroy();
      });
    });
  }

  /** The backend's connectionPool as connection handling: per-backend connect and idle timeouts, reuse limit. */
  private poolSettings(limits: ConnectionPoolSettings, h2: boolean): PoolSettings {
    return {
      maxSockets: limits.maxConnections && limits.maxConnections > 0 ? limits.maxConnections : Infinity,
      connectTimeoutMs: limits.connectTimeoutMs ?? this.opts.connectTimeoutMs ?? 10_000,
      idleTimeoutMs: limits.idleTimeoutMs ?? (h2 ? UPSTREAM_IDLE_MS : DEFAULT_HTTP1_IDLE_MS),
      maxRequestsPerConnection: limits.maxRequestsPerConnection ?? 0,
    };
  }

  private policyOf(key: string): ServiceTrafficPolicy | undefined {
    return this.opts.state.snapshot().trafficPolicies?.get(key);
  }

  /** Whether connections to this service port are proxied per request. */
  accepts(service: Service, port: ServicePort): boolean {
    return isHttpPort(service, port, this.policyOf(service.key));
  }

  /**
   * Serves the client on `sock`, HTTP/1.1 or HTTP/2 as the client's first bytes say (h2c prior
   * knowledge and gRPC start with the preface); the upstream speaks the client's protocol.
   */
  handle(sock: net.Socket, ctx: HttpConnectionContext): void {
    let head: Buffer = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      head = head.length === 0 ? chunk : Buffer.concat([head, chunk]);
      const v = sniffHttpVersion(head);
      if (v === 'more' && head.length < 24) return;
      sock.off('data', onData);
      sock.off('end', onEnd);
      sock.pause();
      sock.unshift(head);
      this.sockets.add(sock);
      sock.once('close', () => this.sockets.delete(sock));
      if (v === 'h2') {
        // The http2 server creates the session synchronously inside emit('connection'). The watched
        // transport reads the socket (buffered preface first) only when the session asks for data.
        this.pendingH2Context = ctx;
        this.h2server.emit('connection', this.watchH2(sock, 'client', 0));
        this.pendingH2Context = undefined;
      } else {
        this.contexts.set(sock, ctx);
        this.server.emit('connection', sock);
        sock.resume();
      }
    };
    const onEnd = () => {
      sock.off('data', onData);
      sock.destroy();
    };
    sock.on('data', onData);
    sock.once('end', onEnd);
  }

  /** `transport` with the frames its HTTP/2 session sends scanned: error GOAWAYs and malformed-stream resets are the peer's invalid frames, counted here. */
  private watchH2(transport: Duplex, side: 'client' | 'upstream', skipFirst: number): H2WatchedTransport {
    return new H2WatchedTransport(transport, {
      skipFirst,
      onErrorFrame: (f) => {
        if (!blamesPeer(f)) return;
        this.opts.metrics?.httpProtocolErrors.inc({ direction: 'outbound', side, reason: `h2_${f.kind}_${h2ErrorName(f.code)}` });
        this.log.debug({ side, frame: f.kind, code: f.code, stream: f.streamId }, 'HTTP/2 peer sent invalid frames');
      },
    });
  }

  stats(): HttpOutboundStats {
    return { backends: this.backends.size, upstreamPools: this.pool.size, h2Sessions: this.h2sessions.size };
  }

  /**
   * Drops what belongs to services, subsets, ports and endpoints no longer in the mesh state: backends
   * (breakers, outlier trackers), their pickers, endpoint load stats, upstream pools and HTTP/2
   * sessions (requests in flight finish on what they hold). Runs on a timer when the state changed.
   */
  prune(force = false): void {
    const snap = this.opts.state.snapshot();
    if (!force && snap === this.prunedSnapshot) return;
    this.prunedSnapshot = snap;
    for (const [key, b] of this.backends) {
      const [serviceKey, subset, port] = key.split('|');
      const svc = snap.services.get(serviceKey!);
      const alive = svc !== undefined && svc.ports.some((p) => String(p.port) === port) && (!subset || (snap.trafficPolicies?.get(serviceKey!)?.subsets.some((s) => s.name === subset) ?? false));
      if (!alive) this.backends.delete(key);
      else b.outlier?.retain(b.endpoints.map((e) => e.key).filter((uid) => snap.workloads.has(uid)));
    }
    this.pickers.retain(this.backends.keys());
    this.load.retain(snap.workloads.keys());
    const ips = new Set<string>();
    for (const w of snap.workloads.values()) ips.add(w.ip);
    this.pool.retain((t) => ips.has(t.ip));
    for (const [key, e] of this.h2sessions) if (!ips.has(e.target.ip)) this.retireH2(key, e);
  }

  close(): void {
    clearInterval(this.pruneTimer);
    for (const s of this.sockets) s.destroy();
    this.pool.close();
    for (const e of this.h2sessions.values())
      void e.session.then(
        (x) => x.destroy(),
        () => undefined,
      );
    this.h2sessions.clear();
  }

  /** A connection of its own to the endpoint for an upgrade (never pooled: after 101 it is the tunnel). Rejects with smeshConnectFailure. */
  private async connectRaw(ut: UpstreamTarget, connectTimeoutMs: number): Promise<Duplex> {
    if (ut.kind === 'hbone') {
      try {
        return asHttpSocket(await this.opts.hbone.open(ut.hbone!));
      } catch (err) {
        throw Object.assign(err as Error, { smeshConnectFailure: true });
      }
    }
    try {
      return await dialConnected({ ip: ut.ip, port: ut.port }, { localAddress: this.sourceFor(ut.ip), noDelay: true, allowHalfOpen: true, timeoutMs: connectTimeoutMs });
    } catch (err) {
      throw Object.assign(err as Error, { smeshConnectFailure: true });
    }
  }

  /**
   * HTTP/1.1 Upgrade (WebSocket and others): routed, fault-injected and admitted like any request
   * (it holds a request and a connection slot of the circuit breaker while open), sent on a
   * connection of its own to one endpoint, connect failures retried on another. A 101 splices client
   * and upstream raw both ways, half-closes passed through; any other answer is relayed and the
   * connection closed. Counted as one request (code 101 when upgraded) when it ends.
   */
  private async onUpgrade(req: http.IncomingMessage, sock: Duplex, head: Buffer): Promise<void> {
    const started = this.now();
    const ctx = this.contexts.get(req.socket);
    sock.on('error', () => undefined);
    if (!ctx) {
      sock.destroy();
      return;
    }
    const method = req.method ?? 'GET';
    // Routes, policy and the upstream see the normalized target (Istio's default BASE path normalization).
    const normalized = normalizeRequestTarget(req.url ?? '');
    const path = normalized.ok ? normalized.target : '/';
    let service = ctx.service;
    let destination: Workload | undefined;
    let flags = '-';
    let recorded = false;
    const record = (status: number) => {
      if (recorded) return;
      recorded = true;
      this.recordRequest(ctx, service, destination, 'http', status, undefined, this.now() - started, flags);
    };
    const cleanups: Array<() => void> = [];
    const cleanup = () => {
      for (const f of cleanups.splice(0)) f();
    };
    let headWritten = false;
    let upgraded = false;
    const reply = (r: ProxyReply) => {
      flags = r.flags;
      if (sock.writable && !headWritten) sock.end(rawReply(r.status, http.STATUS_CODES[r.status] ?? '', r.message, r.headers));
      else sock.destroy();
      headWritten = true;
      record(r.status);
      cleanup();
    };
    sock.once('close', () => {
      if (upgraded) return; // the splice records and cleans up when both sides are closed
      record(0);
      cleanup();
    });

    if (!normalized.ok) {
      reply(this.badTarget(req.url ?? '', normalized));
      return;
    }
    const admission = await this.admit(ctx, { method, path, headers: req.headers }, () => sock.destroyed);
    service = admission.service;
    if (admission.delayed) flags = 'DI';
    if (admission.kind === 'gone') return;
    if (admission.kind === 'reply') {
      reply(admission.reply);
      return;
    }
    const t = admission.target;
    const backend = admission.backend;
    cleanups.push(() => backend.breaker.releaseRequest());
    const overload = await backend.breaker.acquireConnection();
    if (overload) {
      this.trip(service, overload);
      reply(new ProxyReply(503, `upstream overflow: ${overload}`, 'UO', { [OVERLOAD_HEADER]: overload }));
      return;
    }
    cleanups.push(() => backend.breaker.releaseConnection());
    if (sock.destroyed) {
      cleanup();
      return;
    }

    const retry = t.route?.retries ?? DEFAULT_RETRY;
    const retryOn = retry.retryOn.length > 0 ? retry.retryOn : DEFAULT_RETRY.retryOn;
    const maxAttempts = 1 + (retryOn.some((c) => c === 'connect-failure' || c === 'refused-stream' || c === '5xx' || c === 'gateway-error') ? Math.max(0, retry.attempts ?? 2) : 0);
    const pool = this.poolSettings(backend.breaker.limits, false);
    const tried = new Set<string>();
    let transport: Duplex | undefined;
    let ep: HttpEndpoint | undefined;
    let lastError = 'no attempt';
    for (let attempt = 0; attempt < maxAttempts && !transport; attempt++) {
      const e = this.pickEndpoint(t, backend, { headers: req.headers, sourceIp: ctx.sourceIp, path }, tried);
      if (e instanceof ProxyReply) {
        reply(e);
        return;
      }
      tried.add(e.key);
      destination = e.workload;
      const ut = this.upstreamTarget(e.workload, t.targetPort, ctx, { method, path, host: req.headers.host ?? '', headers: req.headersDistinct });
      if (ut instanceof ProxyReply) {
        reply(ut);
        return;
      }
      try {
        transport = await this.connectRaw(ut, pool.connectTimeoutMs);
        ep = e;
      } catch (err) {
        lastError = (err as Error).message;
        if (/status 401\b/.test(lastError)) {
          reply(new ProxyReply(403, 'RBAC: access denied by the destination', 'UAEX'));
          return;
        }
        if (backend.outlier?.record(e.key, 'connect_failure', backend.endpoints.length))
          this.opts.metrics?.outlierEjections.inc({ destination_service: serviceInfo(service, this.opts.state.trustDomain)!.host });
      }
      if (sock.destroyed) {
        transport?.destroy();
        return;
      }
    }
    if (!transport || !ep) {
      reply(new ProxyReply(503, `upstream connect error: ${lastError}`, 'UF'));
      return;
    }
    const chosen = ep;
    const upstream = transport;
    const startedAt = this.load.begin(chosen);
    let loadEnded = false;
    const endLoad = (outcome: Outcome) => {
      if (loadEnded) return;
      loadEnded = true;
      this.load.end(chosen, startedAt);
      if (backend.outlier?.record(chosen.key, outcome, backend.endpoints.length))
        this.opts.metrics?.outlierEjections.inc({ destination_service: serviceInfo(service, this.opts.state.trustDomain)!.host });
    };
    cleanups.push(() => {
      endLoad('success');
      upstream.destroy();
    });
    const up = http.request({ method, path, headers: upgradeRequestHeaders(req), createConnection: () => upstream, setHost: false });
    const timeoutMs = t.route?.timeoutMs && t.route.timeoutMs > 0 ? t.route.timeoutMs : undefined;
    // The route timeout bounds the handshake only: an open tunnel has no deadline.
    const timer =
      timeoutMs !== undefined
        ? setTimeout(() => {
            endLoad('gateway_error');
            up.destroy();
            reply(new ProxyReply(504, 'upstream request timeout', 'UT'));
          }, timeoutMs)
        : undefined;
    timer?.unref();
    up.once('upgrade', (res: http.IncomingMessage, upSock: Duplex, upHead: Buffer) => {
      if (timer) clearTimeout(timer);
      endLoad('success');
      if (sock.destroyed) {
        upSock.destroy();
        return;
      }
      upgraded = true;
      headWritten = true;
      sock.write(responseHead(res));
      if (upHead.length > 0) sock.write(upHead);
      if (head.length > 0) upSock.write(head);
      // After 101 the connection is raw bytes: a same-node one is re-decided on its upgrade request when policies change.
      const w = chosen.workload;
      const untrack =
        w.meshed && w.node === this.opts.nodeName
          ? this.opts.connections?.register({
              direction: 'outbound',
              facts: {
                sourceIdentity: ctx.source.identity,
                sourceIp: ctx.sourceIp,
                destination: { ip: w.ip, port: t.targetPort },
                destinationWorkload: w,
                http: { method, path, host: req.headers.host ?? '', headers: req.headers },
              },
              mode: 'raw',
              close: () => {
                sock.destroy();
                upSock.destroy();
              },
            })
          : undefined;
      splice(sock, upSock, () => {
        untrack?.();
        record(101);
        cleanup();
      });
    });
    up.once('response', (res: http.IncomingMessage) => {
      if (timer) clearTimeout(timer);
      const status = res.statusCode ?? 502;
      endLoad(outcomeOfStatus(status));
      headWritten = true;
      sock.write(responseHead(res, NOT_UPGRADED_DROP, ['connection: close']));
      res.pipe(sock);
      res.once('end', () => record(status));
      res.once('error', () => sock.destroy());
    });
    up.once('error', (err: Error) => {
      if (timer) clearTimeout(timer);
      endLoad('gateway_error');
      reply(new ProxyReply(502, `upstream reset before response: ${err.message}`, 'UC'));
    });
    up.end();
  }

  /**
   * The per-request decision for the native HTTP/1.1 engine path, from the same steps as onRequest's first try
   * (no retries, no fault delay beyond what admit() does). undefined: `gone()` turned true during a fault delay.
   * A forward holds a breaker request slot and endpoint load until its done() is called.
   */
  async decideForEngine(
    ctx: HttpConnectionContext,
    request: { method: string; target: string; headers: http.IncomingHttpHeaders; headersDistinct: HttpAttributes['headers'] },
    gone: () => boolean,
  ): Promise<EngineRequestDecision | undefined> {
    const replyOf = (service: Service, r: ProxyReply, destination?: Workload, delayed = false): EngineRequestDecision => ({
      kind: 'reply',
      service,
      ...(destination ? { destination } : {}),
      status: r.status,
      body: `${r.message}\n`,
      headers: { 'content-type': 'text/plain', ...r.headers },
      flags: delayed && r.flags === '-' ? 'DI' : r.flags,
    });
    const normalized = normalizeRequestTarget(request.target);
    if (!normalized.ok) return replyOf(ctx.service, this.badTarget(request.target, normalized));
    const path = normalized.target;
    const admission = await this.admit(ctx, { method: request.method, path, headers: request.headers }, gone);
    if (admission.kind === 'gone') return undefined;
    if (admission.kind === 'reply') return replyOf(admission.service, admission.reply, undefined, admission.delayed);
    const { target: t, backend, service } = admission;
    const ep = this.pickEndpoint(t, backend, { headers: request.headers, sourceIp: ctx.sourceIp, path }, new Set());
    if (ep instanceof ProxyReply) {
      backend.breaker.releaseRequest();
      return replyOf(service, ep, undefined, admission.delayed);
    }
    const ut = this.upstreamTarget(ep.workload, t.targetPort, ctx, { method: request.method, path, host: request.headers.host ?? '', headers: request.headersDistinct });
    if (ut instanceof ProxyReply) {
      backend.breaker.releaseRequest();
      return replyOf(service, ut, ep.workload, admission.delayed);
    }
    const startedAt = this.load.begin(ep);
    let ended = false;
    return {
      kind: 'forward',
      service,
      destination: ep.workload,
      upstream: ut,
      path,
      pool: this.poolSettings(backend.breaker.limits, false),
      ...(t.route?.timeoutMs && t.route.timeoutMs > 0 ? { timeoutMs: t.route.timeoutMs } : {}),
      flags: admission.delayed ? 'DI' : '-',
      done: (status, connectFailure = false) => {
        if (ended) return;
        ended = true;
        this.load.end(ep, startedAt);
        backend.breaker.releaseRequest();
        const outcome: Outcome = connectFailure ? 'connect_failure' : status === 0 ? 'gateway_error' : outcomeOfStatus(status);
        if (backend.outlier?.record(ep.key, outcome, backend.endpoints.length))
          this.opts.metrics?.outlierEjections.inc({ destination_service: serviceInfo(service, this.opts.state.trustDomain)!.host });
      },
    };
  }

  /** istio_requests_total / duration / sizes of a request the native HTTP/1.1 engine served, with the node:http path's labels and reporters. */
  recordEngineRequest(ctx: HttpConnectionContext, service: Service, destination: Workload | undefined, status: number, ms: number, flags: string, sizes: RequestSizes): void {
    this.recordRequest(ctx, service, destination, 'http', status, undefined, ms, flags, sizes);
  }

  /** A request target that normalization refuses (Envoy: 404 not origin-form, 400 `%00`): counted, logged, never forwarded. */
  private badTarget(target: string, r: PathRejection): ProxyReply {
    this.opts.metrics?.httpProtocolErrors.inc({ direction: 'outbound', side: 'client', reason: r.reason });
    this.log.debug({ target: target.slice(0, 256), reason: r.reason }, 'request target refused by path normalization');
    return new ProxyReply(r.status, r.status === 400 ? 'Bad Request: invalid path' : 'Not Found: request target must be a path', '-');
  }

  private onClientError(err: NodeJS.ErrnoException, sock: Duplex): void {
    const code = err.code ?? '';
    const overflow = code === 'HPE_HEADER_OVERFLOW';
    const reason = overflow ? 'header_overflow' : code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 'timeout' : code === 'ECONNRESET' ? 'reset' : 'bad_request';
    this.opts.metrics?.httpProtocolErrors.inc({ direction: 'outbound', side: 'client', reason });
    if (reason === 'reset' || !sock.writable) {
      sock.destroy();
      return;
    }
    const status = overflow ? '431 Request Header Fields Too Large' : '400 Bad Request';
    sock.end(`HTTP/1.1 ${status}\r\nconnection: close\r\ncontent-length: 0\r\n\r\n`);
  }

  private lookup(key: string): RoutableService | undefined {
    const svc = this.opts.state.snapshot().services.get(key);
    if (!svc || svc.vips.length === 0 || svc.ports.length === 0) return svc ? { service: svc, endpoints: [], policy: this.policyOf(key) } : undefined;
    const r = this.opts.state.resolve(svc.vips[0]!, svc.ports[0]!.port);
    return { service: svc, endpoints: r.kind === 'service' ? r.endpoints : [], policy: this.policyOf(key) };
  }

  private backend(t: RouteTarget): Backend {
    const key = `${t.service.key}|${t.subset ?? ''}|${t.servicePort.port}`;
    let b = this.backends.get(key);
    if (!b)
      this.backends.set(key, (b = { key, breaker: new CircuitBreaker(), signature: '', endpoints: [], lbPolicy: lbPolicyFromSettings(t.settings.loadBalancer), lbSettings: t.settings.loadBalancer }));
    if (b.lbSettings !== t.settings.loadBalancer) {
      b.lbSettings = t.settings.loadBalancer;
      b.lbPolicy = lbPolicyFromSettings(b.lbSettings);
    }
    b.breaker.limits = t.settings.connectionPool ?? {};
    const od = t.settings.outlierDetection;
    if (od && !b.outlier) b.outlier = new OutlierDetector(od, this.now);
    else if (od && b.outlier) b.outlier.settings = od;
    else if (!od) b.outlier = undefined;
    const o = b.outlier;
    const ejected = o ? t.endpoints.filter((w) => o.isEjected(w.uid)).map((w) => w.uid) : [];
    const signature = `${t.endpoints.map((w) => w.uid).join(',')}#${ejected.join(',')}`;
    if (signature !== b.signature) {
      const ej = new Set(ejected);
      b.endpoints = t.endpoints.map((w) => ({ key: w.uid, node: w.node, workload: w, ejected: ej.has(w.uid) }));
      b.signature = signature;
    }
    return b;
  }

  /** Source reporter always; a same-node request is also reported as the destination (no inbound sees it). */
  private recordRequest(
    ctx: HttpConnectionContext,
    service: Service,
    dst: Workload | undefined,
    protocol: 'http' | 'grpc',
    status: number,
    grpcStatus: string | undefined,
    ms: number,
    flags: string,
    sizes?: RequestSizes,
  ): void {
    const m = this.opts.metrics;
    if (!m) return;
    const info = this.info(ctx, service, dst);
    m.recordRequest(info, protocol, status, grpcStatus, ms, flags, sizes);
    if (dst && dst.node === this.opts.nodeName && dst.meshed)
      m.recordRequest({ ...info, reporter: 'destination', sourcePrincipal: ctx.source.identity }, protocol, status, grpcStatus, ms, flags, sizes);
  }

  private info(ctx: HttpConnectionContext, service: Service, dst: Workload | undefined): TcpConnectionInfo {
    return {
      reporter: 'source',
      source: ctx.source,
      destination: dst,
      destinationPrincipal: dst?.identity,
      service: serviceInfo(service, this.opts.state.trustDomain),
      mtls: dst !== undefined && dst.node !== this.opts.nodeName,
    };
  }

  /** The dialled service's host and the HBONE baggage of a client connection: fixed for it, so built once, not per request. */
  private baggageOf(ctx: HttpConnectionContext): { host: string | undefined; baggage: string } {
    let b = this.baggageByConnection.get(ctx);
    if (!b) {
      const host = serviceInfo(ctx.service, this.opts.state.trustDomain)?.host;
      b = { host, baggage: baggageHeader(sourceBaggage(ctx.source, host, DEFAULT_CLUSTER)) };
      this.baggageByConnection.set(ctx, b);
    }
    return b;
  }

  private upstreamTarget(w: Workload, port: number, ctx: HttpConnectionContext, http: HttpAttributes): UpstreamTarget | ProxyReply {
    // The same endpoint decision as the L4 outbound (agent/proxy/endpoint-route.ts); a dual-stack endpoint by the
    // family the client connected with.
    const ip = endpointAddress(w, ctx.sourceIp);
    const route = routeToEndpoint(
      w,
      port,
      {
        localNode: this.opts.nodeName,
        hbonePort: this.opts.hbonePort,
        hboneAddressing: this.opts.hboneAddressing,
        trustDomain: this.opts.state.trustDomain,
        node: (n) => this.opts.state.node(n),
      },
      ip,
    );
    switch (route.kind) {
      case 'local': {
        const v = this.authorize({ sourceIdentity: ctx.source.identity, sourceIp: ctx.sourceIp, destination: { ip, port }, destinationWorkload: w, http });
        if (!v.allow) return new ProxyReply(403, `RBAC: access denied (${v.reason})`, 'UAEX');
        // The destination's inbound TrafficShaping requestRate: same-node requests never pass an inbound proxy, so here.
        const limited = this.opts.shaping?.admitRequest({ direction: 'inbound', source: ctx.source, destination: w, port, method: http.method, path: http.path, headers: http.headers });
        if (limited) return new ProxyReply(429, limited.body.trimEnd(), 'RL', limited.headers);
        return { key: `local|${ip}|${port}`, kind: 'local', ip, port };
      }
      case 'passthrough':
        return { key: `local|${ip}|${port}`, kind: 'local', ip, port };
      case 'unknown_node':
        return new ProxyReply(503, route.detail, 'UH');
      case 'legacy_mtls': {
        // An Istio sidecar: its mutual TLS per upstream connection, never plaintext (as the L4 outbound).
        if (!this.opts.legacyMtls) return new ProxyReply(503, `${w.uid} runs an Istio sidecar (LEGACY_ISTIO_MTLS) and this proxy cannot originate its mutual TLS`, 'UF');
        const host = serviceInfo(ctx.service, this.opts.state.trustDomain)?.host;
        return {
          key: `legacy|${ctx.source.identity}|${formatAuthority(ip, port)}`,
          kind: 'legacy_mtls',
          ip,
          port,
          legacy: {
            source: ctx.source,
            address: { host: ip, port },
            expectedServerId: route.serverId,
            timeoutMs: this.opts.connectTimeoutMs ?? 10_000,
            ...(host ? { sni: sidecarSni(ctx.port.port, host) } : {}),
          },
        };
      }
      case 'hbone': {
        // The dialled service rides in baggage, so the destination reports it: tunnels are not shared across services.
        const { host, baggage } = this.baggageOf(ctx);
        return {
          key: `hbone|${ctx.source.identity}|${route.authority}|${host ?? ''}`,
          kind: 'hbone',
          ip,
          port,
          hbone: {
            sourceId: ctx.source.identity,
            node: route.nodeAddr,
            expectedServerId: route.nodeId,
            authority: route.authority,
            headers: { ...(ctx.sourceIp ? { forwarded: `for="${ctx.sourceIp}"` } : {}), ...(baggage ? { baggage } : {}) },
          },
        };
      }
    }
  }

  /**
   * What the HTTP/1.1 and HTTP/2 paths share before the upstream: route the request, inject faults (before anything
   * reaches the upstream, as Envoy's fault filter), and admit it through the backend's circuit breaker. An admitted
   * request holds a breaker slot the caller must release when the request ends.
   */
  private async admit(ctx: HttpConnectionContext, request: { method: string; path: string; headers: http.IncomingHttpHeaders }, gone: () => boolean): Promise<Admission> {
    const limited = this.opts.shaping?.admitRequest({ direction: 'outbound', source: ctx.source, service: ctx.service, port: ctx.port.port, ...request });
    if (limited) return { kind: 'reply', service: ctx.service, delayed: false, reply: new ProxyReply(429, limited.body.trimEnd(), 'RL', limited.headers) };
    const routed = routeRequest({
      origin: { service: ctx.service, endpoints: this.lookupEndpoints(ctx), policy: this.policyOf(ctx.service.key) },
      port: ctx.port,
      request,
      lookup: (k) => this.lookup(k),
      random: this.random,
    });
    if (routed.kind === 'error') {
      return { kind: 'reply', service: ctx.service, delayed: false, reply: new ProxyReply(routed.status, routed.reason, routed.status === 404 ? 'NR' : 'UH') };
    }
    const t = routed.target;
    const fault = t.route?.fault;
    let delayed = false;
    if (fault?.delay && this.random() * 100 < fault.delay.percent) {
      delayed = true;
      await new Promise<void>((r) => setTimeout(r, fault.delay!.fixedDelayMs).unref());
      if (gone()) return { kind: 'gone', service: t.service, delayed };
    }
    if (fault?.abort && this.random() * 100 < fault.abort.percent) {
      return { kind: 'reply', service: t.service, delayed, reply: new ProxyReply(fault.abort.httpStatus, 'fault filter abort', 'FI') };
    }
    const backend = this.backend(t);
    const overload = backend.breaker.admitRequest();
    if (overload) {
      this.trip(t.service, overload);
      return { kind: 'reply', service: t.service, delayed, reply: new ProxyReply(503, `upstream overflow: ${overload}`, 'UO', { [OVERLOAD_HEADER]: overload }) };
    }
    return { kind: 'admitted', service: t.service, delayed, target: t, backend };
  }

  private async onRequest(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const started = this.now();
    const ctx = this.contexts.get(req.socket);
    if (!ctx) {
      res.writeHead(500).end();
      return;
    }
    let service = ctx.service;
    let destination: Workload | undefined;
    let flags = '-';
    let recorded = false;
    const record = (status: number) => {
      if (recorded) return;
      recorded = true;
      this.recordRequest(ctx, service, destination, 'http', status, undefined, this.now() - started, flags);
    };
    res.once('close', () => record(res.headersSent ? res.statusCode : 0));
    const reply = (r: ProxyReply) => {
      flags = r.flags;
      if (!res.headersSent) {
        const body = `${r.message}\n`;
        res.writeHead(r.status, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body), ...r.headers });
        res.end(body);
      } else res.destroy();
      record(r.status);
    };

    const normalized = normalizeRequestTarget(req.url ?? '');
    if (!normalized.ok) {
      req.resume();
      reply(this.badTarget(req.url ?? '', normalized));
      return;
    }
    // Routes, policy and the upstream (req.url) see the normalized target (Istio's default BASE path normalization).
    req.url = normalized.target;
    const admission = await this.admit(ctx, { method: req.method ?? 'GET', path: req.url ?? '/', headers: req.headers }, () => res.destroyed);
    service = admission.service;
    if (admission.delayed) flags = 'DI';
    if (admission.kind === 'gone') return;
    if (admission.kind === 'reply') {
      reply(admission.reply);
      return;
    }
    const t = admission.target;
    const backend = admission.backend;
    res.once('close', () => backend.breaker.releaseRequest());

    // The body streams to the upstream as it arrives; up to MAX_RETRY_BODY of it is kept so a failed attempt can be replayed.
    const tap = new BodyTap(req, MAX_RETRY_BODY);
    const last = await this.tries<AttemptResult>({
      ctx,
      service,
      target: t,
      backend,
      tap,
      started,
      pick: { headers: req.headers, sourceIp: ctx.sourceIp, path: req.url },
      attrs: { method: req.method ?? 'GET', path: req.url ?? '/', host: req.headers.host ?? '', headers: req.headersDistinct },
      onDestination: (w) => (destination = w),
      run: (ut, timeout) => this.attempt(ut, t, backend, req, tap, timeout, res),
      statusOf: (r) => r.res.statusCode ?? 0,
      discard: (r) => r.res.resume(),
    });
    if (last === 'gone') return;
    if (!last || last instanceof ProxyReply || last.kind === 'failure') {
      reply(failureReply(last));
      return;
    }
    const up = last.res;
    const headers: http.OutgoingHttpHeaders = {};
    for (const [k, v] of Object.entries(up.headers)) if (v !== undefined && !HOP_BY_HOP.has(k)) headers[k] = v;
    res.writeHead(up.statusCode ?? 502, up.statusMessage, headers);
    up.on('error', () => res.destroy());
    up.on('aborted', () => res.destroy());
    up.pipe(res);
  }

  /**
   * Picks an endpoint and tries it, retrying as the route says (retryOn, attempts, per-try timeout,
   * retry budget, a body still replayable), within the route timeout; outlier detection and endpoint
   * load see every try. Resolves the last result — a response, a failure or a local reply —,
   * undefined when the breaker refused every retry, 'gone' when the client went away.
   */
  private async tries<R extends TryResult>(p: TryPlan<R>): Promise<R | ProxyReply | undefined | 'gone'> {
    const { backend, tap, target: t } = p;
    const route = t.route;
    const retry = route?.retries ?? DEFAULT_RETRY;
    const maxAttempts = 1 + Math.max(0, retry.attempts ?? 2);
    const retryOn = retry.retryOn.length > 0 ? retry.retryOn : DEFAULT_RETRY.retryOn;
    const deadline = route?.timeoutMs && route.timeoutMs > 0 ? p.started + route.timeoutMs : undefined;
    const tried = new Set<string>();
    let last: R | ProxyReply | undefined;
    for (let attempt = 0; attempt < maxAttempts; attempt++) {
      if (attempt > 0) {
        if (!tap.replayable) break;
        const r = backend.breaker.admitRetry(retry.budget);
        if (r) {
          this.trip(p.service, r);
          break;
        }
      }
      const retrying = attempt > 0;
      try {
        const ep = this.pickEndpoint(t, backend, p.pick, tried);
        if (ep instanceof ProxyReply) return ep;
        tried.add(ep.key);
        p.onDestination(ep.workload);
        const ut = this.upstreamTarget(ep.workload, t.targetPort, p.ctx, p.attrs);
        if (ut instanceof ProxyReply) return ut;
        const remaining = deadline !== undefined ? deadline - this.now() : undefined;
        if (remaining !== undefined && remaining <= 0) return { kind: 'failure', failure: 'timeout', message: 'upstream request timeout' } as R;
        const perTry = retry.perTryTimeoutMs && retry.perTryTimeoutMs > 0 ? retry.perTryTimeoutMs : undefined;
        const timeout = perTry !== undefined && (remaining === undefined || perTry < remaining) ? perTry : remaining;
        const startedAt = this.load.begin(ep);
        const result = await p.run(ut, timeout);
        if (result === undefined) {
          this.load.cancel(ep);
          return 'gone';
        }
        this.load.end(ep, startedAt); // latency to the response head
        last = result;
        // A local refusal (breaker overflow, destination's policy) says nothing about the endpoint's health.
        if (result.kind === 'failure' && (result.failure === 'overflow' || result.failure === 'denied')) break;
        const response = result.kind === 'response' ? (result as Extract<R, { kind: 'response' }>) : undefined;
        const failure = result.kind === 'failure' ? (result as Extract<TryResult, { kind: 'failure' }>) : undefined;
        const outcome: Outcome = response ? outcomeOfStatus(p.statusOf(response)) : failure!.failure === 'connect_failure' ? 'connect_failure' : 'gateway_error';
        if (backend.outlier?.record(ep.key, outcome, backend.endpoints.length)) {
          this.opts.metrics?.outlierEjections.inc({ destination_service: serviceInfo(p.service, this.opts.state.trustDomain)!.host });
          this.log.info({ endpoint: ep.key, service: p.service.key }, 'outlier detection ejected an endpoint');
        }
        const overallExpired = deadline !== undefined && this.now() >= deadline;
        const again = response ? retriableStatus(p.statusOf(response), retryOn) : retriableFailure(failure!.failure, retryOn, failure!.refused);
        if (attempt + 1 < maxAttempts && !overallExpired && again && tap.replayable) {
          if (response) p.discard(response);
          tap.detach();
          continue;
        }
        break;
      } finally {
        if (retrying) backend.breaker.releaseRetry();
      }
    }
    return last;
  }

  private lookupEndpoints(ctx: HttpConnectionContext): readonly Workload[] {
    const r = this.opts.state.resolve(ctx.service.vips[0] ?? '', ctx.port.port);
    return r.kind === 'service' ? r.endpoints : [];
  }

  private trip(service: Service, reason: OverloadReason): void {
    this.opts.metrics?.circuitBreakerTrips.inc({ destination_service: serviceInfo(service, this.opts.state.trustDomain)!.host, reason });
  }

  private pickEndpoint(t: RouteTarget, b: Backend, pickReq: PickRequest, tried: ReadonlySet<string>): HttpEndpoint | ProxyReply {
    const picker = this.pickers.picker(b.key, b.lbPolicy, b.endpoints);
    let chosen: HttpEndpoint | undefined;
    // Prefer an endpoint not tried yet (Envoy's previous_hosts retry predicate, 3 tries).
    for (let i = 0; i < 3; i++) {
      const p = picker.pick(pickReq);
      if (p.kind !== 'complete') return new ProxyReply(503, `no healthy upstream for ${t.service.key}: ${p.reason}`, 'UH');
      chosen = p.endpoint;
      if (!tried.has(chosen.key)) break;
    }
    return chosen!;
  }

  /** One upstream try. Resolves undefined when the client went away. */
  private attempt(
    ut: UpstreamTarget,
    t: RouteTarget,
    b: Backend,
    req: http.IncomingMessage,
    tap: BodyTap,
    timeoutMs: number | undefined,
    res: http.ServerResponse,
  ): Promise<AttemptResult | undefined> {
    return new Promise((resolve) => {
      void this.attemptWithSlot(ut, t, b, req, tap, timeoutMs, res, resolve);
    });
  }

  private async attemptWithSlot(
    ut: UpstreamTarget,
    t: RouteTarget,
    b: Backend,
    req: http.IncomingMessage,
    tap: BodyTap,
    timeoutMs: number | undefined,
    res: http.ServerResponse,
    resolve: (r: AttemptResult | undefined) => void,
    onFreshConnection = false,
  ): Promise<void> {
    {
      const began = this.now();
      const overload = await b.breaker.acquireConnection();
      if (overload) {
        this.trip(t.service, overload);
        resolve({ kind: 'failure', failure: 'overflow', message: overload });
        return;
      }
      if (res.destroyed) {
        b.breaker.releaseConnection();
        resolve(undefined);
        return;
      }
      const agent = this.pool.agent(ut, this.poolSettings(b.breaker.limits, false));
      const headers: http.OutgoingHttpHeaders = {};
      for (const [k, v] of Object.entries(req.headers)) if (v !== undefined && !HOP_BY_HOP.has(k)) headers[k] = v;
      if (req.headers['transfer-encoding']) headers['transfer-encoding'] = 'chunked';
      let settled = false;
      const finish = (r: AttemptResult | undefined) => {
        if (settled) return;
        settled = true;
        if (timer) clearTimeout(timer);
        res.off('close', onClientGone);
        resolve(r);
      };
      const up = http.request({ host: ut.ip, port: ut.port, method: req.method, path: req.url, headers, agent, setHost: false });
      const onClientGone = () => {
        if (!res.writableFinished) {
          up.destroy();
          finish(undefined);
        }
      };
      res.once('close', onClientGone);
      const timer =
        timeoutMs !== undefined
          ? setTimeout(
              () => {
                up.destroy();
                finish({ kind: 'failure', failure: 'timeout', message: `no response within ${timeoutMs} ms` });
              },
              Math.max(1, timeoutMs),
            )
          : undefined;
      timer?.unref();
      up.once('close', () => b.breaker.releaseConnection());
      up.once('response', (r) => finish({ kind: 'response', res: r }));
      // `on`: a body write to a request that already failed errors again.
      up.on('error', (err: Error & { smeshConnectFailure?: boolean; code?: string }) => {
        const connectFailure = err.smeshConnectFailure === true;
        if (connectFailure && /status 401\b/.test(err.message)) {
          finish({ kind: 'failure', failure: 'denied', message: err.message });
          return;
        }
        if (!connectFailure && err.code?.startsWith('HPE_')) this.opts.metrics?.httpProtocolErrors.inc({ direction: 'outbound', side: 'upstream', reason: 'bad_response' });
        // A kept-alive connection that the upstream closed while it sat in the pool (the app restarted, the destination
        // closed the tunnel): nothing was answered. Sent once more on a new connection when that is safe — an idempotent
        // method or a body held whole (as undici and Envoy do); otherwise a fast 503 UC, never a hang.
        const dead = !connectFailure && !settled && up.reusedSocket && DEAD_CONNECTION_CODES.has(err.code ?? '');
        if (dead) {
          const replay = !onFreshConnection && tap.replayable && (IDEMPOTENT_METHODS.has(req.method ?? 'GET') || tap.complete);
          this.pool.closeIdle(ut);
          this.log.info(
            { endpoint: ut.key, method: req.method, err: err.code, retried: replay },
            replay
              ? 'pooled upstream connection was closed by the upstream; sending the request again on a new connection'
              : 'pooled upstream connection was closed by the upstream before a response; answering 503 (the request cannot be replayed)',
          );
          if (replay) {
            settled = true;
            if (timer) clearTimeout(timer);
            res.off('close', onClientGone);
            tap.detach();
            const left = timeoutMs === undefined ? undefined : timeoutMs - (this.now() - began);
            if (left !== undefined && left <= 0) resolve({ kind: 'failure', failure: 'timeout', message: `no response within ${timeoutMs} ms` });
            else void this.attemptWithSlot(ut, t, b, req, tap, left, res, resolve, true);
            return;
          }
          finish({ kind: 'failure', failure: 'dead_connection', message: err.code ?? err.message });
          return;
        }
        finish({ kind: 'failure', failure: connectFailure ? 'connect_failure' : 'reset', message: err.message });
      });
      tap.attach(up);
    }
  }

  /**
   * Upstream HTTP/2 session to an endpoint: plain TCP (same node) or over an HBONE stream, shared by
   * the streams to it while it has carried fewer than maxRequestsPerConnection of them and the
   * pool settings are unchanged (otherwise a new one; the old one finishes its streams, then closes).
   * Rejects with smeshConnectFailure.
   */
  private h2session(ut: UpstreamTarget, settings: PoolSettings): H2Upstream {
    const existing = this.h2sessions.get(ut.key);
    if (existing && existing.signature === poolSignature(settings)) return existing;
    if (existing) this.retireH2(ut.key, existing);
    const entry: H2Upstream = {
      target: ut,
      signature: poolSignature(settings),
      streams: 0,
      open: 0,
      retired: false,
      maxStreams: settings.maxRequestsPerConnection,
      session: undefined as unknown as Promise<http2.ClientHttp2Session>,
    };
    const p = (async () => {
      let transport: Duplex;
      if (ut.kind === 'local') {
        transport = await dialConnected({ ip: ut.ip, port: ut.port }, { localAddress: this.sourceFor(ut.ip), noDelay: true, timeoutMs: settings.connectTimeoutMs });
      } else {
        transport = await this.opts.hbone.open(ut.hbone!);
      }
      const watched = this.watchH2(transport, 'upstream', HTTP2_PREFACE.length);
      const session = http2.connect(`http://${formatAuthority(ut.ip, ut.port)}`, { createConnection: () => watched, settings: { enablePush: false, initialWindowSize: H2_STREAM_WINDOW } });
      session.once('connect', () => session.setLocalWindowSize(H2_CONNECTION_WINDOW));
      session.on('error', (err: Error) => this.log.debug({ err: err.message, endpoint: ut.key }, 'upstream HTTP/2 session error'));
      // Idle upstream sessions (e.g. to endpoints that went away) are closed; in-flight streams finish first.
      session.setTimeout(settings.idleTimeoutMs, () => session.close());
      const forget = () => {
        if (this.h2sessions.get(ut.key) === entry) this.h2sessions.delete(ut.key);
      };
      session.once('close', forget);
      session.once('goaway', forget);
      return session;
    })();
    entry.session = p;
    p.catch((err: Error & { smeshConnectFailure?: boolean }) => {
      err.smeshConnectFailure = true;
      if (this.h2sessions.get(ut.key) === entry) this.h2sessions.delete(ut.key);
    });
    this.h2sessions.set(ut.key, entry);
    return entry;
  }

  /** `up` was opened on `entry`: at maxRequestsPerConnection the session takes no more (it closes once its streams end). */
  private countH2Stream(key: string, entry: H2Upstream, up: http2.ClientHttp2Stream): void {
    entry.streams++;
    entry.open++;
    up.once('close', () => {
      entry.open--;
      if (entry.retired && entry.open === 0)
        void entry.session.then(
          (x) => x.close(),
          () => undefined,
        );
    });
    if (entry.maxStreams > 0 && entry.streams >= entry.maxStreams) this.retireH2(key, entry);
  }

  private retireH2(key: string, entry: H2Upstream): void {
    if (this.h2sessions.get(key) === entry) this.h2sessions.delete(key);
    entry.retired = true;
    if (entry.open === 0)
      void entry.session.then(
        (x) => x.close(),
        () => undefined,
      );
  }

  private async onH2Stream(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, rawHeaders: readonly string[] = []): Promise<void> {
    const started = this.now();
    const ctx = this.h2contexts.get(stream.session!);
    stream.on('error', () => undefined);
    if (!ctx) {
      stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
      return;
    }
    const method = String(headers[':method'] ?? 'GET');
    // Routes, policy and the upstream see the normalized :path (Istio's default BASE path normalization); a CONNECT has none.
    const normalized = headers[':path'] === undefined && method === 'CONNECT' ? undefined : (checkMethod(method) ?? normalizeRequestTarget(String(headers[':path'] ?? '')));
    const path = normalized?.ok ? normalized.target : '/';
    const grpc = String(headers['content-type'] ?? '').startsWith('application/grpc');
    let service = ctx.service;
    let destination: Workload | undefined;
    let flags = '-';
    let status = 0;
    let grpcStatus: string | undefined;
    let recorded = false;
    // gRPC: the source reporter counts messages both ways too (istio_request/response_messages_total), as the inbound does.
    let requestMeter: BodyMeter | undefined;
    let responseMeter: BodyMeter | undefined;
    const record = () => {
      if (recorded) return;
      recorded = true;
      const sizes = requestMeter && responseMeter ? sizesOf(requestMeter, responseMeter) : undefined;
      this.recordRequest(ctx, service, destination, grpc ? 'grpc' : 'http', status, grpcStatus, this.now() - started, flags, sizes);
    };
    stream.once('close', record);
    const reply = (r: ProxyReply) => {
      flags = r.flags;
      status = r.status;
      if (!stream.headersSent && !stream.destroyed) {
        stream.respond({ ':status': r.status, 'content-type': 'text/plain', ...r.headers });
        stream.end(`${r.message}\n`);
      } else if (!stream.destroyed) stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
      record();
    };
    const plainHeaders: Record<string, string | string[] | undefined> = {};
    for (const [k, v] of Object.entries(headers)) if (!k.startsWith(':')) plainHeaders[k] = v;
    if (normalized && !normalized.ok) {
      stream.resume();
      reply(this.badTarget(String(headers[':path'] ?? ''), normalized));
      return;
    }
    const admission = await this.admit(ctx, { method, path, headers: plainHeaders }, () => stream.destroyed);
    service = admission.service;
    if (admission.delayed) flags = 'DI';
    if (admission.kind === 'gone') return;
    if (admission.kind === 'reply') {
      reply(admission.reply);
      return;
    }
    const t = admission.target;
    const route = t.route;
    const backend = admission.backend;
    stream.once('close', () => backend.breaker.releaseRequest());

    // The body streams to the upstream as it arrives; up to MAX_RETRY_BODY of it is kept so a failed attempt can be replayed.
    const tap = new BodyTap(stream, MAX_RETRY_BODY);
    // The tap starts reading the body only once an upstream stream exists (a 'data' listener makes the stream flow, and
    // bytes read before the tap listens would be lost): the meter joins when the stream first resumes, before data flows.
    if (grpc) stream.once('resume', () => (requestMeter = new BodyMeter(true).watch(stream)));
    const deadline = route?.timeoutMs && route.timeoutMs > 0 ? started + route.timeoutMs : undefined;
    const upHeaders: http2.OutgoingHttpHeaders = { ':method': method, ':path': path, ':scheme': 'http', ':authority': String(headers[':authority'] ?? headers.host ?? '') };
    for (const [k, v] of Object.entries(plainHeaders)) if ((v !== undefined && !HOP_BY_HOP.has(k)) || k === 'te') upHeaders[k] = v;
    const last = await this.tries<H2AttemptResult>({
      ctx,
      service,
      target: t,
      backend,
      tap,
      started,
      pick: { headers: plainHeaders, sourceIp: ctx.sourceIp, path },
      // Policy sees every value of a repeated header (Node's merged object keeps only the first of some).
      attrs: { method, path, host: String(headers[':authority'] ?? headers.host ?? ''), headers: rawHeaders.length > 0 ? headerLists(rawHeaders) : plainHeaders },
      onDestination: (w) => (destination = w),
      run: (ut, timeout) => this.h2attempt(ut, backend, upHeaders, tap, timeout, stream),
      statusOf: (r) => r.status,
      discard: (r) => r.up.close(http2.constants.NGHTTP2_CANCEL),
    });
    if (last === 'gone') return;
    if (!last || last instanceof ProxyReply || last.kind === 'failure') {
      reply(failureReply(last));
      return;
    }
    if (requestMeter) responseMeter = new BodyMeter(true).watch(last.up);
    this.forwardH2Response(
      stream,
      last,
      deadline,
      (s, g) => {
        status = s;
        if (g !== undefined) grpcStatus = g;
      },
      () => reply(new ProxyReply(504, 'upstream request timeout', 'UT')),
    );
  }

  /**
   * One upstream HTTP/2 try: the session (connect failures are failures), the stream with the body
   * attached, up to its response head. Resolves undefined when the client went away.
   */
  private async h2attempt(
    ut: UpstreamTarget,
    backend: Backend,
    upHeaders: http2.OutgoingHttpHeaders,
    tap: BodyTap,
    timeoutMs: number | undefined,
    stream: http2.ServerHttp2Stream,
    onFreshSession = false,
  ): Promise<H2AttemptResult | undefined> {
    const began = this.now();
    let entry: H2Upstream;
    let session: http2.ClientHttp2Session;
    try {
      entry = this.h2session(ut, this.poolSettings(backend.breaker.limits, true));
      session = await entry.session;
    } catch (err) {
      const message = (err as Error).message;
      return /status 401\b/.test(message) ? { kind: 'failure', failure: 'denied', message } : { kind: 'failure', failure: 'connect_failure', message };
    }
    if (stream.destroyed) return undefined;
    let up: http2.ClientHttp2Stream;
    const reused = entry.streams > 0;
    try {
      up = session.request(upHeaders, { endStream: false });
      this.countH2Stream(ut.key, entry, up);
    } catch (err) {
      return { kind: 'failure', failure: 'connect_failure', message: `upstream stream refused: ${(err as Error).message}` };
    }
    up.on('error', () => undefined);
    tap.attach(up);
    return new Promise((resolve) => {
      let settled = false;
      const finish = (r: H2AttemptResult | undefined) => {
        if (settled) return;
        settled = true;
        if (timer) clearTimeout(timer);
        stream.off('close', onClientGone);
        resolve(r);
      };
      const onClientGone = () => {
        if (!up.closed) up.close(http2.constants.NGHTTP2_CANCEL);
        finish(undefined);
      };
      stream.once('close', onClientGone);
      const timer =
        timeoutMs !== undefined
          ? setTimeout(
              () => {
                up.close(http2.constants.NGHTTP2_CANCEL);
                finish({ kind: 'failure', failure: 'timeout', message: `no response within ${timeoutMs} ms` });
              },
              Math.max(1, timeoutMs),
            )
          : undefined;
      timer?.unref();
      // Trailers can come before anyone listens for them in forwardH2Response.
      const early: { trailers?: http2.IncomingHttpHeaders } = {};
      up.once('trailers', (tr: http2.IncomingHttpHeaders) => (early.trailers = tr));
      up.once('response', (h: http2.IncomingHttpHeaders & http2.IncomingHttpStatusHeader, flags: number) => {
        finish({ kind: 'response', up, head: h, status: Number(h[':status'] ?? 502), endStream: (flags & http2.constants.NGHTTP2_FLAG_END_STREAM) !== 0, early });
      });
      up.once('close', () => {
        const code = up.rstCode ?? 0;
        // The pooled session died under the stream before any response (its connection closed: the app restarted,
        // the destination reset the tunnel). As for HTTP/1.1: once more on a new session when that is safe, else 503 UC.
        if (!settled && reused && (session.destroyed || session.closed) && code !== http2.constants.NGHTTP2_REFUSED_STREAM) {
          const method = String(upHeaders[':method'] ?? 'GET');
          const replay = !onFreshSession && tap.replayable && (IDEMPOTENT_METHODS.has(method) || tap.complete);
          this.retireH2(ut.key, entry);
          this.log.info(
            { endpoint: ut.key, method, code, retried: replay },
            replay
              ? 'pooled upstream HTTP/2 session was closed by the upstream; sending the request again on a new session'
              : 'pooled upstream HTTP/2 session was closed by the upstream before a response; answering 503 (the request cannot be replayed)',
          );
          if (replay) {
            settled = true;
            if (timer) clearTimeout(timer);
            stream.off('close', onClientGone);
            tap.detach();
            const left = timeoutMs === undefined ? undefined : timeoutMs - (this.now() - began);
            if (left !== undefined && left <= 0) resolve({ kind: 'failure', failure: 'timeout', message: `no response within ${timeoutMs} ms` });
            else void this.h2attempt(ut, backend, upHeaders, tap, left, stream, true).then(resolve);
            return;
          }
          finish({ kind: 'failure', failure: 'dead_connection', message: `session closed (stream code ${code})` });
          return;
        }
        finish({
          kind: 'failure',
          failure: 'reset',
          message: code === http2.constants.NGHTTP2_REFUSED_STREAM ? 'stream refused (REFUSED_STREAM)' : `stream reset (code ${code})`,
          refused: code === http2.constants.NGHTTP2_REFUSED_STREAM,
        });
      });
    });
  }

  /** Relays the chosen upstream response: head, body, trailers (gRPC status); the rest of the route timeout still applies. */
  private forwardH2Response(
    stream: http2.ServerHttp2Stream,
    r: Extract<H2AttemptResult, { kind: 'response' }>,
    deadline: number | undefined,
    setStatus: (status: number, grpcStatus?: string) => void,
    onTimeout: () => void,
  ): void {
    const up = r.up;
    let trailers = r.early.trailers;
    const grpcOf = (h: http2.IncomingHttpHeaders | undefined) => (h?.['grpc-status'] !== undefined ? String(h['grpc-status']) : undefined);
    setStatus(r.status, grpcOf(trailers) ?? grpcOf(r.head));
    if (!trailers) {
      up.once('trailers', (tr: http2.IncomingHttpHeaders) => {
        trailers = tr;
        setStatus(r.status, grpcOf(tr));
      });
    }
    if (stream.destroyed) {
      up.close(http2.constants.NGHTTP2_CANCEL);
      return;
    }
    const remaining = deadline !== undefined ? deadline - this.now() : undefined;
    const timer =
      remaining !== undefined
        ? setTimeout(
            () => {
              up.close(http2.constants.NGHTTP2_CANCEL);
              if (!stream.headersSent) onTimeout();
              else stream.close(http2.constants.NGHTTP2_CANCEL);
            },
            Math.max(1, remaining),
          )
        : undefined;
    timer?.unref();
    stream.once('close', () => {
      if (timer) clearTimeout(timer);
      if (!up.closed) up.close(http2.constants.NGHTTP2_CANCEL);
    });
    const out: http2.OutgoingHttpHeaders = {};
    for (const [k, v] of Object.entries(r.head)) if (v !== undefined && (!k.startsWith(':') || k === ':status') && !HOP_BY_HOP.has(k)) out[k] = v;
    stream.respond(out, r.endStream ? { endStream: true } : { waitForTrailers: true });
    if (!r.endStream) {
      stream.once('wantTrailers', () => {
        const tr: http2.OutgoingHttpHeaders = {};
        for (const [k, v] of Object.entries(trailers ?? {})) if (v !== undefined && !k.startsWith(':')) tr[k] = v;
        // Empty trailers end the stream with an empty DATA frame (stream.close() here would not end it cleanly).
        stream.sendTrailers(tr);
      });
      up.pipe(stream);
    }
    up.once('close', () => {
      if (timer) clearTimeout(timer);
      if (up.rstCode !== undefined && up.rstCode !== http2.constants.NGHTTP2_NO_ERROR && !stream.destroyed) stream.close(downstreamResetCode(up.rstCode));
    });
  }
}
