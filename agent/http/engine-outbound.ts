// Opt-in (--http-engine) outbound HTTP/1.1 through the addon's native HTTP/1.1 engine: eligible client connections of HTTP service ports go to the engine, every request head is decided by HttpOutbound's shared decision, results feed the request metrics; everything else stays on node:http.
import * as fs from 'node:fs';
import * as net from 'node:net';
import type { Duplex } from 'node:stream';
import { SmeshError } from '../../core/errors';
import type { Http1Decision, Http1Engine, Http1Request, Http1Result, Http1UpstreamFailure, Http1UpstreamPair } from '../native/http1-types';
import type { HboneStreamQos } from '../native/hbone-types';
import type { HboneOpenRequest } from '../proxy/hbone-client';
import type { LegacyMtlsRequest } from '../proxy/legacy-mtls';
import type { OutboundHttpHandler } from '../proxy/outbound';
import type { ByteCounters, Relay } from '../proxy/relay';
import { canSplice } from '../proxy/splice-relay';
import type { ConnectionFacts } from '../qos/shaping';
import type { StateView } from '../state/store';
import type { Service, ServicePort, ServiceTrafficPolicy } from '../../core/model/types';
import type { MeshMetrics } from '../telemetry/metrics';
import { silentLogger, type Logger } from '../../core/telemetry/logger';
import type { EngineRequestDecision, HttpConnectionContext, HttpOutbound } from './outbound-http';
import { httpEngineCounters, type HttpEngineCounters } from './engine-metrics';
import { engineHeaderViews } from './policy-headers';
import { portProtocol } from '../../core/model/protocol';
import type { UpstreamTarget } from './upstream';

export interface EngineHttpOutboundOptions {
  /** The node:http path: the shared decision, the fallback for ineligible connections, and Upgrade requests. */
  readonly http: HttpOutbound;
  readonly engine: Http1Engine;
  readonly state: Pick<StateView, 'snapshot'>;
  /** Opens the tunnel of a remote endpoint (HBONE) or an Istio sidecar (legacy mTLS) for the loopback bridge. */
  readonly tunnels: EngineTunnels;
  /** TrafficShaping relay QoS of an engine stream (TrafficShaper.streamQos): the bridge's native HBONE streams get their source workload's. */
  readonly streamQos?: (f: ConnectionFacts) => HboneStreamQos;
  readonly metrics?: MeshMetrics;
  readonly logger?: Logger;
  /** Largest request head (default 16 KiB, node:http's on this path); bigger gets 431. */
  readonly maxHeadBytes?: number;
}

/** Engine session-close reasons that mean malformed client input → smesh_http_protocol_errors_total reason (as outbound-http.ts onClientError). */
const CLIENT_ERROR_REASONS: Readonly<Record<string, string>> = { bad_request: 'bad_request', header_too_large: 'header_overflow', header_timeout: 'timeout' };

/** Why a connection stays on node:http (undefined: the engine serves it). */
export type EngineIneligibility = 'not_http1_port' | 'already_read' | 'no_fd' | 'route_retries' | 'route_fault' | 'cookie_hash' | 'max_connections';

/**
 * Whether requests of a connection to `port` of `service` can be served by the engine, from the traffic policies only
 * (pure). Conservative: the engine path does no retries, faults or cookie affinity and cannot cap upstream
 * connections, so a port whose routes (or any service they route to) use one of those stays on node:http. Ports
 * declared HTTP/2 or gRPC stay too: the engine speaks HTTP/1.1 and the socket cannot be sniffed before the hand-over.
 */
export function engineIneligibility(service: Service, port: ServicePort, policies: ReadonlyMap<string, ServiceTrafficPolicy> | undefined): EngineIneligibility | undefined {
  const origin = policies?.get(service.key);
  if (portProtocol(port, origin) !== 'http') return 'not_http1_port';
  const reachable: ServiceTrafficPolicy[] = origin ? [origin] : [];
  for (const r of origin?.routes ?? []) {
    if (r.retries) return 'route_retries';
    if (r.fault) return 'route_fault';
    for (const d of r.destinations) {
      const p = d.service ? policies?.get(d.service) : undefined;
      if (p) reachable.push(p);
    }
  }
  for (const p of reachable) {
    for (const s of [p, ...p.subsets, ...p.portSettings]) {
      if (s.loadBalancer?.consistentHash?.key.kind === 'cookie') return 'cookie_hash';
      if (s.connectionPool?.maxConnections !== undefined && s.connectionPool.maxConnections > 0) return 'max_connections';
    }
  }
  return undefined;
}

interface InFlight {
  readonly ctx: HttpConnectionContext;
  decision?: EngineRequestDecision;
  /** Set when an upstream failure was answered locally. */
  flags?: string;
}

/** The native HBONE engine's stream API (NativeHboneClient): a stream opened by id, a plain TCP socket handed to it. */
export interface NativeHboneStreams {
  openStream(req: HboneOpenRequest): Promise<number>;
  relay(stream: number, sock: net.Socket, counters?: ByteCounters, qos?: HboneStreamQos): Relay;
  abandon(stream: number): void;
}

/** How the loopback bridge reaches tunnels: Duplex openers (JS relay) and, with the native data plane, engine streams. */
export interface EngineTunnels {
  hbone(req: HboneOpenRequest): Promise<Duplex>;
  legacyMtls?(req: LegacyMtlsRequest): Promise<Duplex>;
  /** With the native HBONE engine: HBONE upstream connections are attached to engine streams, no byte through JavaScript. */
  readonly native?: NativeHboneStreams;
}

/** What one bridge listener carries: the upstream tunnel, and whose connection (the TrafficShaping relay QoS of the engine stream). */
interface BridgeTarget {
  readonly ut: UpstreamTarget;
  readonly qos?: ConnectionFacts;
}

/** ByteCounters that feed smesh_http_engine_bridge_bytes_total (received = bridge socket → tunnel, sent = tunnel → bridge socket, as relay()'s a → b / b → a). */
class BridgeByteCounters implements ByteCounters {
  private toTunnel = 0;
  private fromTunnel = 0;

  constructor(
    private readonly counter: HttpEngineCounters['bridgeBytes'] | undefined,
    private readonly relay: 'native' | 'js',
  ) {}

  get received(): number {
    return this.toTunnel;
  }
  set received(v: number) {
    if (v > this.toTunnel) this.counter?.inc({ relay: this.relay, direction: 'to_tunnel' }, v - this.toTunnel);
    this.toTunnel = v;
  }
  get sent(): number {
    return this.fromTunnel;
  }
  set sent(v: number) {
    if (v > this.fromTunnel) this.counter?.inc({ relay: this.relay, direction: 'from_tunnel' }, v - this.fromTunnel);
    this.fromTunnel = v;
  }
}

/**
 * Carries the engine's upstream connections into HBONE tunnels or Istio sidecar mTLS, per tunnel key (source
 * identity, destination, service; with the source workload and port for its relay QoS). With the native HBONE engine
 * and an HTTP engine that takes `pair` decisions, a new upstream connection is a socketpair made by the HTTP engine
 * whose other end is attached to an HBONE engine stream (HTTP engine → socketpair → HBONE engine). Else each key gets a
 * 127.0.0.1 listener the engine connects to: with the native HBONE engine the accepted socket is attached to the
 * stream (HTTP engine → loopback TCP → HBONE engine); a legacy mTLS tunnel, or the JS data plane, is relayed here in
 * JavaScript. No byte of a remote request passes through JavaScript but in that last case.
 */
class TunnelBridge {
  private readonly listeners = new Map<string, Promise<{ server: net.Server; port: number }>>();
  /** Pair keys of `pair` decisions → what their connections carry. */
  private readonly pairTargets = new Map<string, BridgeTarget>();
  private readonly sockets = new Set<net.Socket>();
  private readonly relays = new Set<Relay>();

  constructor(
    private readonly tunnels: EngineTunnels,
    private readonly streamQos: ((f: ConnectionFacts) => HboneStreamQos) | undefined,
    private readonly counters: HttpEngineCounters | undefined,
    private readonly log: Logger,
  ) {}

  private static key(target: BridgeTarget): string {
    const { ut, qos } = target;
    return qos ? `${ut.key}|${qos.source?.uid ?? ''}|${qos.servicePort ?? ''}` : ut.key;
  }

  /** Whether `target`'s connections can be engine socketpairs attached to HBONE engine streams. */
  canPair(target: BridgeTarget, engine: Http1Engine): boolean {
    return target.ut.kind === 'hbone' && target.ut.hbone !== undefined && this.tunnels.native !== undefined && engine.upstreamPairs;
  }

  /** The pool key of a `pair` decision for `target` (the latest decision's target is what new connections open). */
  pairKey(target: BridgeTarget): string {
    const key = TunnelBridge.key(target);
    this.pairTargets.set(key, target);
    return key;
  }

  /** A new upstream connection of a `pair` decision: JavaScript's end of the engine's socketpair goes to an HBONE engine stream. */
  paired(p: Http1UpstreamPair): void {
    const target = this.pairTargets.get(p.key);
    let sock: net.Socket;
    try {
      // Never read by JavaScript (pauseOnCreate): the HBONE engine takes a dup of the fd and this socket is destroyed.
      sock = new net.Socket({ fd: p.fd, readable: true, writable: true, allowHalfOpen: true, pauseOnCreate: true } as net.SocketConstructorOpts);
    } catch (err) {
      this.log.warn({ key: p.key, err: (err as Error).message }, 'HTTP engine tunnel bridge: cannot wrap an upstream socketpair end');
      try {
        fs.closeSync(p.fd);
      } catch {
        // already closed
      }
      return;
    }
    const native = this.tunnels.native;
    if (!target?.ut.hbone || !native) {
      sock.destroy(); // the engine sees the upstream close: the request fails as a reset
      return;
    }
    this.sockets.add(sock);
    sock.once('close', () => this.sockets.delete(sock));
    sock.on('error', () => undefined);
    this.attachNative(sock, target, native, target.ut.hbone, 'socketpair');
  }

  port(target: BridgeTarget): Promise<number> {
    const key = TunnelBridge.key(target);
    let l = this.listeners.get(key);
    if (!l) {
      l = this.listen(target);
      this.listeners.set(key, l);
      l.catch(() => this.listeners.delete(key));
    }
    return l.then((x) => x.port);
  }

  private listen(target: BridgeTarget): Promise<{ server: net.Server; port: number }> {
    const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true, noDelay: true }, (sock) => this.accepted(sock, target));
    return new Promise((resolve, reject) => {
      server.once('error', (err) => reject(new SmeshError('SMESH_ERR_BIND', `HTTP engine tunnel bridge for ${target.ut.key}: cannot listen on 127.0.0.1: ${err.message}`, { cause: err })));
      server.listen(0, '127.0.0.1', () => resolve({ server, port: (server.address() as net.AddressInfo).port }));
    });
  }

  private accepted(sock: net.Socket, target: BridgeTarget): void {
    this.sockets.add(sock);
    sock.once('close', () => this.sockets.delete(sock));
    sock.on('error', () => undefined);
    const { ut } = target;
    const native = this.tunnels.native;
    if (ut.kind === 'hbone' && ut.hbone && native && canSplice(sock)) this.attachNative(sock, target, native, ut.hbone, 'loopback');
    else this.relayJs(sock, ut);
  }

  /** The accepted socket goes to an HBONE engine stream: the HTTP engine's bytes reach the tunnel without entering JavaScript. */
  private attachNative(sock: net.Socket, target: BridgeTarget, native: NativeHboneStreams, req: HboneOpenRequest, via: 'loopback' | 'socketpair'): void {
    const qos = target.qos && this.streamQos ? this.streamQos(target.qos) : undefined;
    const open: HboneOpenRequest = qos?.dscp !== undefined ? { ...req, dscp: qos.dscp } : req;
    native.openStream(open).then(
      (stream) => {
        if (sock.destroyed) {
          native.abandon(stream);
          return;
        }
        let r: Relay;
        try {
          r = native.relay(stream, sock, new BridgeByteCounters(this.counters?.bridgeBytes, 'native'), qos);
        } catch (err) {
          this.log.debug({ endpoint: target.ut.key, err: (err as Error).message }, 'HTTP engine tunnel bridge: the HBONE engine refused the socket');
          native.abandon(stream);
          sock.destroy();
          return;
        }
        this.counters?.bridgeConnections.inc({ relay: 'native', via });
        this.relays.add(r);
        void r.done.finally(() => this.relays.delete(r));
      },
      (err: Error) => this.openFailed(sock, target.ut, err),
    );
  }

  private relayJs(sock: net.Socket, ut: UpstreamTarget): void {
    this.open(ut).then(
      (tunnel) => {
        if (sock.destroyed) {
          tunnel.destroy();
          return;
        }
        this.counters?.bridgeConnections.inc({ relay: 'js', via: 'loopback' });
        const bytes = new BridgeByteCounters(this.counters?.bridgeBytes, 'js');
        sock.on('data', (c: Buffer) => {
          bytes.received += c.length;
        });
        tunnel.on('data', (c: Buffer) => {
          bytes.sent += c.length;
        });
        tunnel.on('error', () => sock.destroy());
        sock.on('error', () => tunnel.destroy());
        tunnel.once('close', () => sock.destroy());
        sock.once('close', () => tunnel.destroy());
        sock.pipe(tunnel);
        tunnel.pipe(sock);
        sock.resume();
      },
      (err: Error) => this.openFailed(sock, ut, err),
    );
  }

  private open(ut: UpstreamTarget): Promise<Duplex> {
    if (ut.kind === 'hbone' && ut.hbone) return this.tunnels.hbone(ut.hbone);
    if (ut.kind === 'legacy_mtls' && ut.legacy && this.tunnels.legacyMtls) return this.tunnels.legacyMtls(ut.legacy);
    return Promise.reject(new SmeshError('SMESH_ERR_CONNECT', `upstream ${ut.key} (${ut.kind}) has no tunnel this agent can open`));
  }

  private openFailed(sock: net.Socket, ut: UpstreamTarget, err: Error): void {
    // The engine sees the connection end before a response (503/502 to the client); a destination's 401 is not told apart.
    this.log.debug({ endpoint: ut.key, err: err.message }, 'HTTP engine tunnel bridge: tunnel open failed');
    sock.destroy();
  }

  close(): void {
    for (const r of this.relays) r.reset();
    this.relays.clear();
    for (const s of this.sockets) s.destroy();
    for (const l of this.listeners.values())
      void l.then(
        (x) => x.server.close(),
        () => undefined,
      );
    this.listeners.clear();
    this.pairTargets.clear();
  }
}

/** The OutboundProxy's HTTP handler with the native engine in front of HttpOutbound (main.ts builds it with --http-engine). */
export class EngineHttpOutbound implements OutboundHttpHandler {
  private readonly sessions = new Map<number, HttpConnectionContext>();
  private readonly inFlight = new Map<number, InFlight>();
  private readonly log: Logger;
  private readonly bridge: TunnelBridge;
  private readonly counters?: HttpEngineCounters;

  constructor(private readonly opts: EngineHttpOutboundOptions) {
    this.log = opts.logger ?? silentLogger();
    this.counters = httpEngineCounters(opts.metrics);
    this.bridge = new TunnelBridge(opts.tunnels, opts.streamQos, this.counters, this.log);
    // node:http's limit on this path (HttpOutbound maxHeaderSize, 16 KiB): bigger heads get 431 either way.
    try {
      opts.engine.configure({ maxHeadBytes: opts.maxHeadBytes ?? 16 * 1024 });
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'HTTP engine: cannot configure (already in use); keeping its settings');
    }
    opts.engine.setHandlers({
      onRequest: (req) => this.onRequest(req),
      onUpstreamFailure: (f) => this.onUpstreamFailure(f),
      onResult: (r) => this.onResult(r),
      onUpstreamPair: (p) => this.bridge.paired(p),
      onSessionClosed: (ev) => {
        this.sessions.delete(ev.session);
        // Malformed input the engine answered itself (400/431/408), counted as node:http's clientError handler does.
        const reason = CLIENT_ERROR_REASONS[ev.reason];
        if (reason) this.opts.metrics?.httpProtocolErrors.inc({ direction: 'outbound', side: 'client', reason });
      },
    });
  }

  accepts(service: Service, port: ServicePort): boolean {
    return this.opts.http.accepts(service, port);
  }

  handle(sock: net.Socket, ctx: HttpConnectionContext): void {
    const handle = (sock as unknown as { _handle?: { fd?: number; reading?: boolean; readStop?: () => number } })._handle;
    const fd = typeof handle?.fd === 'number' ? handle.fd : -1;
    let why = engineIneligibility(ctx.service, ctx.port, this.opts.state.snapshot().trafficPolicies);
    // The engine must see the connection's first byte: nothing may have been read into JavaScript yet.
    if (!why && (sock.bytesRead > 0 || sock.readableLength > 0)) why = 'already_read';
    if (!why && (fd < 0 || !handle?.readStop)) why = 'no_fd';
    if (why) {
      this.counters?.fallbacks.inc({ direction: 'outbound', reason: why });
      this.opts.http.handle(sock, ctx);
      return;
    }
    // Stop libuv reading (as pauseOnConnect does) before the engine dups the fd; node:http resumes it on fallback.
    handle!.reading = false;
    handle!.readStop!();
    let session: number;
    try {
      session = this.opts.engine.serve(fd);
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'HTTP engine refused a connection; serving it on node:http');
      this.counters?.fallbacks.inc({ direction: 'outbound', reason: 'no_fd' });
      this.opts.http.handle(sock, ctx);
      return;
    }
    this.sessions.set(session, ctx);
    // The engine holds its own dup of the fd: closing ours neither resets nor shuts down the connection.
    sock.destroy();
  }

  close(): void {
    this.opts.engine.closeAll();
    this.bridge.close();
    this.opts.http.close();
  }

  private onRequest(req: Http1Request): void {
    const ctx = this.sessions.get(req.session);
    if (!ctx) {
      this.opts.engine.decide(req.id, { kind: 'deny', status: 503, body: 'HTTP engine session has no connection context\n' });
      return;
    }
    if (req.upgrade) {
      void this.takeOver(req, ctx);
      return;
    }
    const entry: InFlight = { ctx };
    this.inFlight.set(req.id, entry);
    void this.decide(req, entry).catch((err: unknown) => {
      this.log.warn({ err: (err as Error).message }, 'HTTP engine request decision failed');
      entry.decision = { kind: 'reply', service: ctx.service, status: 502, body: 'proxy error\n', headers: {}, flags: '-' };
      this.opts.engine.decide(req.id, { kind: 'deny', status: 502, body: 'proxy error\n' });
    });
  }

  private async decide(req: Http1Request, entry: InFlight): Promise<void> {
    const { joined, distinct } = engineHeaderViews(req.headers);
    if (req.authority && joined.host === undefined) joined.host = req.authority;
    const d = await this.opts.http.decideForEngine(entry.ctx, { method: req.method, target: req.target, headers: joined, headersDistinct: distinct }, () => !this.inFlight.has(req.id));
    if (!d) return;
    entry.decision = d;
    let decision: Http1Decision;
    if (d.kind === 'reply') {
      decision = { kind: 'deny', status: d.status, headers: Object.entries(d.headers), body: d.body };
    } else {
      const ut = d.upstream;
      const bridged: BridgeTarget = { ut, ...(this.opts.streamQos ? { qos: { direction: 'outbound', source: entry.ctx.source, service: entry.ctx.service, servicePort: entry.ctx.port.port } } : {}) };
      let to: { host: string; port: number; sourceAddress?: string } | { pair: string };
      if (ut.kind === 'local') {
        const source = this.opts.http.sourceFor(ut.ip);
        to = { host: ut.ip, port: ut.port, ...(source !== undefined ? { sourceAddress: source } : {}) };
      } else if (this.bridge.canPair(bridged, this.opts.engine)) {
        to = { pair: this.bridge.pairKey(bridged) };
      } else {
        to = { host: '127.0.0.1', port: await this.bridge.port(bridged) };
      }
      decision = {
        kind: 'forward',
        ...to,
        ...(d.path !== req.target ? { path: d.path } : {}),
        connectTimeoutMs: d.pool.connectTimeoutMs,
        ...(d.pool.maxRequestsPerConnection > 0 ? { maxRequestsPerConnection: d.pool.maxRequestsPerConnection } : {}),
        ...(d.timeoutMs !== undefined ? { responseTimeoutMs: d.timeoutMs } : {}),
      };
    }
    if (!this.opts.engine.decide(req.id, decision)) {
      // The request ended meanwhile (client gone): its result event releases it.
      if (d.kind === 'forward' && !this.inFlight.has(req.id)) d.done(0);
    }
  }

  private onUpstreamFailure(f: Http1UpstreamFailure): void {
    const entry = this.inFlight.get(f.id);
    const d = entry?.decision;
    if (d?.kind === 'forward') d.done(0, f.reason === 'connect_failed');
    // The node:http path's local replies (failureReply), without retries: the engine already retried a stale pooled connection once.
    let status: number;
    let flags: string;
    let body: string;
    switch (f.reason) {
      case 'connect_failed':
        [status, flags, body] = [503, 'UF', `upstream connect error: ${f.detail}`];
        break;
      case 'timeout':
        [status, flags, body] = [504, 'UT', 'upstream request timeout'];
        break;
      case 'reset':
        [status, flags, body] = f.reused
          ? [503, 'UC', `upstream connect error or disconnect/reset before headers: pooled connection closed by the upstream (${f.detail})`]
          : [502, 'UC', `upstream reset before response: ${f.detail}`];
        break;
      case 'protocol':
        this.opts.metrics?.httpProtocolErrors.inc({ direction: 'outbound', side: 'upstream', reason: 'bad_response' });
        [status, flags, body] = [502, 'UC', `upstream reset before response: ${f.detail}`];
        break;
    }
    if (entry) entry.flags = flags;
    this.opts.engine.reply(f.id, status, [['content-type', 'text/plain']], `${body}\n`);
  }

  private onResult(r: Http1Result): void {
    const entry = this.inFlight.get(r.id);
    if (!entry) return;
    this.inFlight.delete(r.id);
    this.counters?.served.inc({ direction: 'outbound', outcome: r.outcome });
    const d = entry.decision;
    if (d?.kind === 'forward') d.done(r.status);
    const flags = entry.flags ?? d?.flags ?? '-';
    this.opts.http.recordEngineRequest(entry.ctx, d?.service ?? entry.ctx.service, d?.destination, r.status, r.durationUs / 1000, flags, {
      requestBytes: r.requestBytes,
      responseBytes: r.responseBytes,
    });
  }

  /** Upgrade / CONNECT: the socket leaves the engine and is served by node:http's upgrade handler, head bytes first. */
  private async takeOver(req: Http1Request, ctx: HttpConnectionContext): Promise<void> {
    const t = await this.opts.engine.takeover(req.id);
    if (!t) return;
    let sock: net.Socket;
    try {
      sock = new net.Socket({ fd: t.fd, readable: true, writable: true, allowHalfOpen: true });
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'HTTP engine takeover: cannot wrap the client socket');
      try {
        fs.closeSync(t.fd);
      } catch {
        // already closed
      }
      return;
    }
    this.counters?.served.inc({ direction: 'outbound', outcome: 'takeover' });
    // Not paused: node:http's sniffing 'data' listener starts the flow with the engine's pending bytes first.
    if (t.pending.length > 0) sock.unshift(t.pending);
    this.opts.http.handle(sock, ctx);
  }
}
