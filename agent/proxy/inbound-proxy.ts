// Inbound HBONE (port 15008): mutual-TLS HTTP/2 server accepting CONNECT streams to local workloads and relaying them.
import { EventEmitter } from 'node:events';
import * as http2 from 'node:http2';
import * as net from 'node:net';
import type { Duplex } from 'node:stream';
import { performance } from 'node:perf_hooks';
import type * as tls from 'node:tls';
import { SmeshError } from '../../core/errors';
import { boundAddress, listenOrFail } from '../../core/telemetry/listen';
import { currentTrustDomainAliases, peerSpiffeId, TrustDomains, trustDomainOf, type TrustDomainAliasSource } from '../../core/identity/spiffe';
import type { StateView } from '../state/store';
import type { Workload } from '../../core/model/types';
import { silentLogger, type Logger } from '../../core/telemetry/logger';
import { LogRateLimiter } from '../telemetry/log-limiter';
import type { ConnectionStats, HboneHandshakeFailure, HboneSessionError, MeshMetrics, RefusalReason, TcpConnectionInfo } from '../telemetry/metrics';
import { parseBaggage } from '../telemetry/baggage';
import { dialPod, sourceAddressFor, type SourceAddressFor } from './dial';
import type { HboneEngine, HboneStreamRequest } from '../native/hbone-types';
import { socketFd } from '../native/datapath';
import { engineDuplex, engineRelay, recordEngineSessionEvent, type EngineIdentities } from './native-hbone';
import { abortSide, relay, type Relay, type RelayLimits } from './relay';
import type { ConnectionRegistry } from './connection-tracker';
import type { ConnectionFacts, TrafficShaper } from '../qos/shaping';
import { allowAll, formatAuthority, normalizeIp, serviceInfo, type Authorizer, type HostPort, type HttpTunnelServer, type IdentityProvider, type IpPort } from './types';

export { HBONE_CONNECTION_WINDOW, HBONE_MAX_CONCURRENT_STREAMS, HBONE_MAX_SESSION_MEMORY_MB, HBONE_STREAM_WINDOW } from './hbone-settings';
import { HBONE_CONNECTION_WINDOW, HBONE_MAX_CONCURRENT_STREAMS, HBONE_MAX_SESSION_MEMORY_MB, HBONE_STREAM_WINDOW } from './hbone-settings';

/**
 * Period of the inbound session liveness check. node:http2 stops reading a session once nghttp2 has sent a GOAWAY for
 * a protocol error, and never closes it; nothing tells JavaScript. A session that read nothing since the last check
 * gets a PING; one whose PING is still unanswered at the next check without having read anything is destroyed, with
 * its streams and their pod-side connections. So a session is released at most 3 periods after a protocol error or
 * after its peer vanished, and an idle healthy one costs one PING every other period.
 */
export const HBONE_LIVENESS_CHECK_MS = 2_000;
/**
 * Streams a peer may reset before they were answered, per session and 10 s, before the session is closed with GOAWAY
 * ENHANCE_YOUR_CALM (HTTP/2 rapid reset, CVE-2023-44487). An HBONE client resets a stream before its 200 only when
 * its own connection went away while the destination was still connecting.
 */
export const HBONE_MAX_EARLY_RESETS = 100;
const EARLY_RESET_WINDOW_MS = 10_000;
/**
 * node:http2 `maxSessionInvalidFrames`: invalid frames tolerated per session before it is destroyed (GOAWAY
 * ENHANCE_YOUR_CALM). Node's default, stated here: the count never resets, and a long-lived pooled session sees some in
 * ordinary use (DATA already in flight for a stream that was just reset), so a low limit would close healthy tunnels.
 */
export const HBONE_MAX_INVALID_FRAMES = 1000;

/** A local destination the inbound may connect to; `workload` labels telemetry and feeds policy. */
export interface LocalDestination {
  readonly workload?: Workload;
}
export type ResolveLocal = (ip: string, port: number) => LocalDestination | undefined;

export interface InboundProxyOptions {
  readonly identities: IdentityProvider;
  /** SPIFFE id whose certificate this server presents (spiffe://<td>/smesh/node/<name>). */
  readonly nodeId: string;
  readonly listen: HostPort;
  /** Used for the default `resolveLocal` (workloads on `nodeName`) and for telemetry. */
  readonly state?: StateView;
  readonly nodeName?: string;
  readonly resolveLocal?: ResolveLocal;
  readonly authorize?: Authorizer;
  readonly metrics?: MeshMetrics;
  readonly logger?: Logger;
  readonly connectTimeoutMs?: number;
  /**
   * Source address of the connections to local pods (the node's capture address): the kernel's STRICT
   * check lets SYNs from it through, and the pod's replies return via its default route to the node.
   */
  readonly upstreamSourceIp?: string;
  /** The same for IPv6 pod addresses (--capture-ip6); absent: the kernel picks the source. */
  readonly upstreamSourceIp6?: string;
  readonly handshakeTimeoutMs?: number;
  readonly maxConcurrentStreams?: number;
  /**
   * The HTTP protocol of a local workload's port ('http' | 'grpc'), undefined for plain TCP. On
   * such a port the connection is authorized with L7 attributes deferred and the tunnel is handed to
   * `httpTunnels`, which authorizes and reports every request (reporter destination). Without
   * `httpTunnels` such rules fail closed at the connection, as on a TCP port.
   */
  readonly httpProtocolOf?: (workload: Workload | undefined, port: number) => 'http' | 'grpc' | undefined;
  readonly httpTunnels?: HttpTunnelServer;
  /**
   * Trust domains accepted besides the mesh's own (the trust domain of `nodeId`), as Istio's MeshConfig
   * `trustDomainAliases`. A peer certificate naming any other trust domain gets 401, even when it chains to the root.
   * A function is asked for each new session (a MeshConfig change applies without a restart).
   */
  readonly trustDomainAliases?: TrustDomainAliasSource;
  /** Session liveness check period (default HBONE_LIVENESS_CHECK_MS); also the grace a destroyed session's socket gets to flush its GOAWAY. */
  readonly livenessCheckMs?: number;
  /** Streams reset by the peer before their response per session and 10 s before GOAWAY ENHANCE_YOUR_CALM (default HBONE_MAX_EARLY_RESETS). */
  readonly maxEarlyResets?: number;
  /** Limits the info lines about refused handshakes and closed sessions (default 10 per 10 s; the rest only counted). */
  readonly failureLogLimiter?: LogRateLimiter;
  /** Open streams are registered here so that a policy change re-decides them (agent/proxy/connection-tracker.ts). */
  readonly connections?: ConnectionRegistry;
  /**
   * The addon's HBONE engine (with `engineIdentities` feeding it certificates): TLS, HTTP/2 and the relay run on its
   * threads, every stream is still decided here. Absent: node:tls + node:http2 on the JS thread.
   */
  readonly engine?: HboneEngine;
  readonly engineIdentities?: EngineIdentities;
  /** TrafficShaping inbound rules (agent/qos/shaping.ts): a CONNECT over a connection rate or concurrency limit gets 429. */
  readonly shaping?: TrafficShaper;
  /** bytes/s limits of tunnels relayed in JavaScript (the JS data plane; the engine paces its own). */
  readonly relayLimits?: (facts: readonly ConnectionFacts[]) => RelayLimits | undefined;
}

/** What a CONNECT is decided on, whichever server received it. */
interface StreamFacts {
  readonly peer?: string;
  readonly refusal?: { readonly reason: RefusalReason; readonly detail: string };
  readonly method?: string;
  readonly authority?: string;
  readonly forwarded?: string | string[];
  readonly baggage?: string | string[];
  /** The workload address a pod-addressed session serves (it carries CONNECTs to that pod only). */
  readonly servedIp?: string;
}

/** The verdict on one CONNECT. */
type StreamDecision =
  | {
      readonly kind: 'reject';
      readonly status: number;
      readonly reason: RefusalReason;
      readonly detail: string;
      readonly fields: Record<string, unknown>;
      readonly level: 'info' | 'debug';
      /** Reported as a failed connection with Istio's response flag (a policy denial). */
      readonly failed?: { readonly telemetry: TcpConnectionInfo; readonly flag: 'DENY' };
    }
  | {
      /** tcp: relay to the pod; http/grpc: parse and authorize every request. */
      readonly kind: 'tcp' | 'http';
      readonly protocol?: 'http' | 'grpc';
      readonly peer: string;
      readonly sourceIp?: string;
      readonly dest: IpPort;
      readonly workload?: Workload;
      readonly dialled?: string;
      /** Frees the stream's TrafficShaping maxConnections slots when it ends (idempotent). */
      readonly release?: () => void;
    };

/** A CONNECT allowed to reach its pod. */
type Admitted = Exclude<StreamDecision, { readonly kind: 'reject' }>;

/** An inbound session the engine terminates: who the peer is and which pod it was addressed to. */
interface NativeSession {
  readonly servedIp?: string;
  identity?: Pick<SessionInfo, 'peer' | 'refusal'>;
}

/** Parses an HBONE :authority ("1.2.3.4:80" or "[::1]:80") into an IP and port; undefined when malformed. */
export function parseAuthority(authority: string | undefined): IpPort | undefined {
  if (!authority) return undefined;
  let host: string;
  let portText: string;
  if (authority.startsWith('[')) {
    const close = authority.indexOf(']');
    if (close < 0 || authority[close + 1] !== ':') return undefined;
    host = authority.slice(1, close);
    portText = authority.slice(close + 2);
    if (net.isIPv6(host) === false) return undefined;
  } else {
    const colon = authority.lastIndexOf(':');
    if (colon <= 0) return undefined;
    host = authority.slice(0, colon);
    portText = authority.slice(colon + 1);
    if (!net.isIPv4(host)) return undefined;
  }
  if (!/^[0-9]{1,5}$/.test(portText)) return undefined;
  const port = Number(portText);
  if (port < 1 || port > 65535) return undefined;
  return { ip: host, port };
}

/** Client address from a `forwarded: for="ip:port"` header (RFC 7239), if any. */
export function forwardedForIp(header: string | string[] | undefined): string | undefined {
  const v = Array.isArray(header) ? header[0] : header;
  if (!v) return undefined;
  const m = /for=("?)(\[[^\]]+\]|[^;,"]+)\1/i.exec(v);
  if (!m) return undefined;
  let host = m[2]!;
  if (host.startsWith('[')) host = host.slice(1, host.indexOf(']'));
  else if (host.includes(':') && net.isIPv4(host.split(':')[0]!)) host = host.split(':')[0]!;
  return net.isIP(host) ? host : undefined;
}

/** What the inbound keeps about one HBONE session. */
interface SessionInfo {
  /** The TLS socket itself (`session.socket` is a proxy that refuses destroy()). */
  readonly socket: tls.TLSSocket;
  /** The peer's SPIFFE id, when its certificate carries one in an accepted trust domain. */
  readonly peer?: string;
  /** Why the session's streams are refused with 401 when there is no `peer`. */
  readonly refusal?: { readonly reason: RefusalReason; readonly detail: string };
  /** The peer's SETTINGS arrived: its HTTP/2 preface was valid (errors before are handshake failures). */
  settled: boolean;
  /** The proxy closes or has counted this session's failure (its later errors are not counted again). */
  failed: boolean;
  /**
   * Liveness: the socket's progress at the last check (bytes read, bytes waiting to be sent), a PING in flight, the
   * session seen destroyed with its socket open.
   */
  progress: string;
  pingOutstanding: boolean;
  destroyedSeen: boolean;
  /** Streams the peer reset before their response, in the window that started at `earlyResetWindowStart` (monotonic ms). */
  earlyResets: number;
  earlyResetWindowStart: number;
}

/** The HBONE inbound server. */
export class InboundProxy {
  private server?: net.Server;
  /** Per-workload servers (pod-addressed HBONE) and, for their sessions, the workload address they serve. */
  private readonly podServers = new Set<net.Server>();
  private readonly nativeSessions = new Map<number, NativeSession>();
  private readonly podSessions = new WeakMap<http2.ServerHttp2Session, string>();
  private readonly sessions = new Set<http2.ServerHttp2Session>();
  private readonly sessionInfo = new WeakMap<http2.ServerHttp2Session, SessionInfo>();
  private readonly relays = new Set<Relay>();
  private readonly pending = new Set<net.Socket>();
  private readonly log: Logger;
  private readonly authorize: Authorizer;
  private readonly resolveLocal: ResolveLocal;
  private readonly meshTrustDomain: string;
  private readonly failureLog: LogRateLimiter;
  /** The TLS socket whose session node:http2 is creating ('secureConnection' runs just before 'session'). */
  private accepting?: tls.TLSSocket;
  private livenessTimer?: NodeJS.Timeout;
  private closing = false;

  /** Source address of connections to local pods, by the pod address's family. */
  private readonly sourceFor: SourceAddressFor;

  constructor(private readonly opts: InboundProxyOptions) {
    this.sourceFor = sourceAddressFor(opts.upstreamSourceIp, opts.upstreamSourceIp6);
    this.log = opts.logger ?? silentLogger();
    this.authorize = opts.authorize ?? allowAll;
    this.resolveLocal = opts.resolveLocal ?? defaultResolveLocal(opts.state, opts.nodeName);
    const meshTrustDomain = trustDomainOf(opts.nodeId);
    if (!meshTrustDomain) throw new SmeshError('SMESH_ERR_IDENTITY', `node identity ${JSON.stringify(opts.nodeId)} is not a smesh SPIFFE id (spiffe://<td>/smesh/node/<name>)`);
    this.meshTrustDomain = meshTrustDomain;
    this.failureLog = opts.failureLogLimiter ?? new LogRateLimiter(10, 10_000);
    if (opts.engine) {
      if (!opts.engineIdentities) throw new SmeshError('SMESH_ERR_CONFIG', 'InboundProxy: engine needs engineIdentities');
      opts.engine.setHandlers({
        onStream: (req) => this.onNativeStream(req),
        onSessionEvent: (ev) => {
          recordEngineSessionEvent(ev, this.opts.metrics, this.log, this.failureLog);
          if (ev.type === 'session_closed') this.nativeSessions.delete(ev.session);
        },
      });
    }
  }

  /** Bound address (after start). */
  address(): net.AddressInfo {
    const a = this.server?.address();
    if (!a || typeof a === 'string') throw new SmeshError('SMESH_ERR_BIND', 'inbound HBONE server is not listening');
    return a;
  }

  private secureContextOptions(certId: string = this.opts.nodeId): tls.SecureContextOptions {
    const cert = this.opts.identities.get(certId);
    if (!cert) {
      throw new SmeshError('SMESH_ERR_IDENTITY', `no certificate for identity ${certId}; ensure identities before starting an inbound HBONE server for it`);
    }
    return { key: cert.keyPem, cert: cert.chainPem, ca: this.opts.identities.trustBundlePem() };
  }

  async start(): Promise<void> {
    const server = this.opts.engine ? this.createNativeServer(this.opts.nodeId) : this.createServer(this.opts.nodeId);
    this.server = server;
    await listenOrFail(server, this.opts.listen.host, this.opts.listen.port, 'inbound HBONE listener', 'is another agent running?', this.log);
    this.livenessTimer = setInterval(() => this.checkLiveness(), this.opts.livenessCheckMs ?? HBONE_LIVENESS_CHECK_MS);
    this.livenessTimer.unref();
    this.log.info({ address: boundAddress(server) }, 'inbound HBONE listening');
  }

  /**
   * An HBONE server for one local workload, as ztunnel's inbound on `<pod IP>:15008`: it presents that workload's
   * certificate (no SNI: the listener decides) and accepts CONNECTs to that workload's address only. The caller
   * makes it listen (on the in-pod capture socket) and closes it; `close()` of this proxy closes it too.
   * Throws SMESH_ERR_IDENTITY while the workload's certificate is not issued yet.
   */
  podServer(workload: Workload, ip: string = workload.ip): net.Server {
    if (this.opts.engine) {
      if (!this.opts.identities.get(workload.identity))
        throw new SmeshError('SMESH_ERR_IDENTITY', `no certificate for identity ${workload.identity}; ensure identities before starting an inbound HBONE server for it`);
      const server = this.createNativeServer(workload.identity, ip);
      this.podServers.add(server);
      server.once('close', () => this.podServers.delete(server));
      return server;
    }
    const server = this.createServer(workload.identity);
    this.podServers.add(server);
    server.on('session', (session: http2.ServerHttp2Session) => this.podSessions.set(session, ip));
    server.once('close', () => this.podServers.delete(server));
    return server;
  }

  /**
   * A listener whose connections the engine terminates (TLS presenting `certId`'s certificate, HTTP/2): JavaScript
   * never reads them; their CONNECTs come back through onNativeStream.
   */
  private createNativeServer(certId: string, servedIp?: string): net.Server {
    const engine = this.opts.engine!;
    return net.createServer({ pauseOnConnect: true, noDelay: true }, (sock) => {
      sock.on('error', () => undefined);
      if (this.closing || !this.opts.engineIdentities!.ensure(certId)) {
        if (!this.closing) this.log.warn({ spiffeId: certId }, 'inbound HBONE connection closed: no certificate for the identity it is addressed to yet');
        sock.destroy();
        return;
      }
      try {
        const session = engine.serve(socketFd(sock), certId);
        this.nativeSessions.set(session, { servedIp });
      } catch (err) {
        this.log.warn({ err: (err as Error).message }, 'inbound HBONE connection not handed to the engine');
      }
      sock.destroy(); // the engine holds its own dup of the connection
    });
  }

  /** A TLS 1.3 + HTTP/2 server presenting `certId`'s certificate, wired to this proxy's session and stream handling. */
  private createServer(certId: string): http2.Http2SecureServer {
    const maxStreams = this.opts.maxConcurrentStreams ?? HBONE_MAX_CONCURRENT_STREAMS;
    const server = http2.createSecureServer({
      ...this.secureContextOptions(certId),
      requestCert: true,
      rejectUnauthorized: true,
      minVersion: 'TLSv1.3',
      maxVersion: 'TLSv1.3',
      ALPNProtocols: ['h2'],
      allowHTTP1: false,
      handshakeTimeout: this.opts.handshakeTimeoutMs ?? 10_000,
      unknownProtocolTimeout: 1_000,
      settings: { initialWindowSize: HBONE_STREAM_WINDOW, maxConcurrentStreams: maxStreams, enablePush: false },
      maxSessionMemory: HBONE_MAX_SESSION_MEMORY_MB,
      maxSessionInvalidFrames: HBONE_MAX_INVALID_FRAMES,
    });
    // The TLS context holds this server's certificate and the roots peers are verified against: rebuilt when either
    // changes. New trust anchors (a root rotation) apply at once, not when this server's own certificate next renews.
    const refresh = (what: string, fields: Record<string, unknown> = {}): void => {
      if (this.closing || (server !== this.server && !this.podServers.has(server))) return;
      try {
        server.setSecureContext(this.secureContextOptions(certId));
        this.log.info(fields, `inbound server: ${what}`);
      } catch (err) {
        this.log.error({ ...fields, err: (err as Error).message }, `inbound server: cannot apply ${what}`);
      }
    };
    this.opts.identities.onRotate?.((id) => {
      if (id === certId) refresh('certificate rotated', { spiffeId: id });
    });
    this.opts.identities.onTrustBundleChange?.(() => refresh('new mesh trust anchors'));

    server.on('tlsClientError', (err: NodeJS.ErrnoException, socket: tls.TLSSocket) => {
      this.refuse('unauthenticated');
      this.handshakeFailed(tlsFailureReason(err, socket), socket.remoteAddress, 'TLS handshake failed', { err: socket.authorizationError ?? err.code ?? err.message });
      socket.destroy();
    });
    server.on('unknownProtocol', (socket: tls.TLSSocket) => {
      this.refuse('bad_request');
      this.handshakeFailed('no_alpn_h2', socket.remoteAddress, 'client did not negotiate ALPN h2');
      socket.destroy();
    });
    server.prependListener('secureConnection', (socket: tls.TLSSocket) => {
      this.accepting = socket;
    });
    server.on('sessionError', (err: Error) => this.log.debug({ err: err.message }, 'HBONE session error'));
    server.on('session', (session: http2.ServerHttp2Session) => this.onSession(session));
    server.on('stream', (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => this.onStream(stream, headers));
    return server;
  }

  /** The service (if any) through which this workload port is reached, for the destination_service labels. */
  private serviceFor(w: Workload | undefined, port: number, dialled?: string): ReturnType<typeof serviceInfo> {
    if (!w || !this.opts.state) return undefined;
    const services = this.opts.state.servicesOf(w);
    const td = this.opts.state.trustDomain;
    // The service the client dialled (carried in baggage) when it selects this workload; else the first whose port maps here.
    const byHost = dialled ? services.find((s) => serviceInfo(s, td)?.host === dialled) : undefined;
    const svc = byHost ?? services.find((s) => s.ports.some((p) => p.targetPort === port)) ?? services[0];
    return serviceInfo(svc, td);
  }

  /** Labels of a connection this inbound reports (reporter destination). */
  private destinationTelemetry(peer: string, sourceIp: string | undefined, workload: Workload | undefined, port: number, dialled: string | undefined): TcpConnectionInfo {
    const src = sourceIp ? this.opts.state?.workloadByIp(sourceIp) : undefined;
    return {
      reporter: 'destination',
      source: src && src.identity === peer ? src : undefined,
      sourcePrincipal: peer,
      destination: workload,
      service: this.serviceFor(workload, port, dialled),
      mtls: true,
      sourceAddress: sourceIp,
      destinationAddress: workload ? formatAuthority(workload.ip, port) : undefined,
    };
  }

  /**
   * Drain, step 1: the node listener stops accepting (an inherited socket keeps listening in the supervisor) and every
   * HBONE session gets GOAWAY NO_ERROR — node:http2 close() for JS sessions, engine.drain() for the engine's (which
   * also stops new streams on its pooled outbound sessions): open streams finish, peers open new ones elsewhere.
   */
  stopAccepting(): void {
    if (this.server?.listening) this.server.close();
    for (const s of this.sessions) if (!s.closed && !s.destroyed) s.close();
    this.opts.engine?.drain();
  }

  /** Streams still relaying or being set up (JS and engine), what a drain waits for. */
  openConnections(): number {
    const st = this.opts.engine?.stats();
    return this.relays.size + this.pending.size + (st ? st.streams.inbound : 0);
  }

  async close(): Promise<void> {
    this.closing = true;
    clearInterval(this.livenessTimer);
    const server = this.server;
    if (!server) return;
    const closed = new Promise<void>((r) => server.close(() => r()));
    for (const ps of this.podServers) ps.close();
    for (const r of this.relays) r.reset();
    this.opts.engine?.closeAll();
    this.opts.httpTunnels?.close();
    for (const s of this.pending) s.destroy();
    for (const s of this.sessions) {
      s.destroy();
      this.sessionInfo.get(s)?.socket.destroy();
    }
    await closed;
  }

  private refuse(reason: RefusalReason): void {
    this.opts.metrics?.refused.inc({ direction: 'inbound', reason });
  }

  /** Counts and logs (rate-limited) an HBONE connection refused before it could carry a stream. */
  private handshakeFailed(reason: HboneHandshakeFailure, peerAddress: string | undefined, detail: string, fields: Record<string, unknown> = {}): void {
    this.opts.metrics?.hboneHandshakeFailures.inc({ direction: 'inbound', reason });
    const suppressed = this.failureLog.take();
    if (suppressed === undefined) return;
    this.log.info({ reason, peerAddress, ...fields, ...(suppressed > 0 ? { suppressed } : {}) }, `HBONE handshake refused: ${detail}`);
  }

  /** Counts and logs (rate-limited) a session the proxy closes, or node:http2 closed, for misbehaviour. */
  private sessionFailed(info: SessionInfo, reason: HboneSessionError, detail: string): void {
    if (info.failed) return;
    info.failed = true;
    if (!info.settled) {
      this.handshakeFailed('protocol', info.socket.remoteAddress, `no valid HTTP/2 preface and SETTINGS: ${detail}`, { peer: info.peer });
      return;
    }
    this.opts.metrics?.hboneSessionErrors.inc({ direction: 'inbound', reason });
    const suppressed = this.failureLog.take();
    if (suppressed === undefined) return;
    this.log.info({ reason, peerAddress: info.socket.remoteAddress, peer: info.peer, ...(suppressed > 0 ? { suppressed } : {}) }, `HBONE session closed: ${detail}`);
  }

  /** Closes a session for misbehaviour: GOAWAY with `code` when given, its streams (and their pod-side connections) reset. */
  private terminate(session: http2.ServerHttp2Session, info: SessionInfo, reason: HboneSessionError, detail: string, code?: number): void {
    this.sessionFailed(info, reason, detail);
    if (!session.destroyed) {
      if (code === undefined) session.destroy();
      else (session.destroy as unknown as (code: number) => void)(code); // node:http2: destroy(code) sends GOAWAY(code)
    }
  }

  /**
   * Every period: releases sessions node:http2 has stopped serving. See HBONE_LIVENESS_CHECK_MS. A destroyed session
   * whose socket is still open one period later (Node waits for its last write to flush) loses the socket.
   */
  private checkLiveness(): void {
    const suspects: Array<[http2.ServerHttp2Session, SessionInfo]> = [];
    for (const session of this.sessions) {
      const info = this.sessionInfo.get(session);
      if (!info) continue;
      if (session.destroyed) {
        if (info.destroyedSeen) info.socket.destroy();
        info.destroyedSeen = true;
        continue;
      }
      const progress = socketProgress(info.socket);
      if (progress !== info.progress) {
        info.progress = progress;
        continue;
      }
      if (info.pingOutstanding) {
        suspects.push([session, info]);
        continue;
      }
      info.pingOutstanding = true;
      try {
        session.ping((err) => {
          if (!err) info.pingOutstanding = false;
        });
      } catch (err) {
        this.log.debug({ err: (err as Error).message }, 'HBONE liveness PING not sent');
      }
    }
    if (suspects.length === 0) return;
    // Decided after this turn's I/O: a timer that fires late (a busy event loop) runs before the reads that were
    // waiting meanwhile, and a PING answer among them must count.
    setImmediate(() => {
      for (const [session, info] of suspects) {
        if (session.destroyed || !info.pingOutstanding || socketProgress(info.socket) !== info.progress) continue;
        this.terminate(session, info, 'unresponsive', 'no bytes moved and no PING answer (a GOAWAY for a protocol error was sent, or the peer vanished)');
        info.socket.destroy(); // nothing left to flush: node:http2 stopped the session long ago
      }
    });
  }

  /** Identity of a session's peer, from its (chain-verified) certificate: counted and logged when refused. */
  private identify(socket: tls.TLSSocket): Pick<SessionInfo, 'peer' | 'refusal'> {
    return this.identifyId(peerSpiffeId(socket), socket.remoteAddress);
  }

  private identifyId(id: string | undefined, remoteAddress: string | undefined): Pick<SessionInfo, 'peer' | 'refusal'> {
    if (!id) {
      const detail = 'client certificate has no valid SPIFFE URI SAN';
      this.handshakeFailed('no_spiffe_id', remoteAddress, detail);
      return { refusal: { reason: 'unauthenticated', detail } };
    }
    const trustDomains = new TrustDomains(this.meshTrustDomain, currentTrustDomainAliases(this.opts.trustDomainAliases));
    if (!trustDomains.accepts(id)) {
      const accepted = [trustDomains.mesh, ...trustDomains.aliases].join(', ');
      const detail = `client certificate names trust domain ${trustDomainOf(id)}, accepted: ${accepted}`;
      this.handshakeFailed('foreign_trust_domain', remoteAddress, detail, { peer: id });
      return { refusal: { reason: 'foreign_trust_domain', detail } };
    }
    return { peer: id };
  }

  /** Rapid reset: a peer resetting many streams before their response gets GOAWAY ENHANCE_YOUR_CALM. */
  private watchEarlyReset(stream: http2.ServerHttp2Stream, session: http2.ServerHttp2Session, info: SessionInfo): void {
    stream.once('close', () => {
      if (stream.headersSent || session.destroyed || info.failed) return;
      const now = performance.now();
      if (now - info.earlyResetWindowStart >= EARLY_RESET_WINDOW_MS) {
        info.earlyResetWindowStart = now;
        info.earlyResets = 0;
      }
      const max = this.opts.maxEarlyResets ?? HBONE_MAX_EARLY_RESETS;
      if (++info.earlyResets > max) this.terminate(session, info, 'rapid_reset', `more than ${max} streams reset before their response`, http2.constants.NGHTTP2_ENHANCE_YOUR_CALM);
    });
  }

  private onSession(session: http2.ServerHttp2Session): void {
    const socket = this.accepting ?? (session.socket as tls.TLSSocket);
    this.accepting = undefined;
    const info: SessionInfo = {
      socket,
      ...this.identify(socket),
      settled: false,
      failed: false,
      progress: socketProgress(socket),
      pingOutstanding: false,
      destroyedSeen: false,
      earlyResets: 0,
      earlyResetWindowStart: performance.now(),
    };
    this.sessionInfo.set(session, info);
    this.sessions.add(session);
    this.opts.metrics?.hboneSessions.inc({ direction: 'inbound' });
    answerConnectionErrorsWithTheirCode(session);
    session.once('remoteSettings', () => {
      info.settled = true;
    });
    session.on('error', (err: NodeJS.ErrnoException) => {
      this.log.debug({ err: err.message }, 'HBONE session error');
      this.sessionFailed(info, 'protocol_error', err.code === 'ERR_HTTP2_ERROR' ? `HTTP/2 ${err.message.toLowerCase()}` : err.message);
    });
    session.once('close', () => {
      this.sessions.delete(session);
      this.opts.metrics?.hboneSessions.dec({ direction: 'inbound' });
    });
    try {
      session.setLocalWindowSize(HBONE_CONNECTION_WINDOW);
    } catch (err) {
      this.log.debug({ err: (err as Error).message }, 'cannot set HBONE connection window');
    }
  }

  /** Counts and logs a refused stream. `level`: debug for refusals a peer can repeat at will whose cause was logged once already (rate-limited). */
  private countRejection(status: number, reason: RefusalReason, detail: string, fields: Record<string, unknown>, level: 'info' | 'debug'): void {
    this.refuse(reason);
    this.opts.metrics?.hboneStreams.inc({ direction: 'inbound', result: String(status) });
    this.log[level]({ status, reason, ...fields }, `HBONE stream refused: ${detail}`);
  }

  private reject(stream: http2.ServerHttp2Stream, status: number, reason: RefusalReason, detail: string, fields: Record<string, unknown> = {}, level: 'info' | 'debug' = 'info'): void {
    this.countRejection(status, reason, detail, fields, level);
    if (stream.destroyed || stream.closed) return;
    if (!stream.headersSent) stream.respond({ ':status': status }, { endStream: true });
    else stream.close(http2.constants.NGHTTP2_CONNECT_ERROR);
  }

  /** The verdict on one CONNECT: refused with a status, or relayed to a local pod (per connection or per request). */
  private decide(f: StreamFacts): StreamDecision {
    const reject = (status: number, reason: RefusalReason, detail: string, fields: Record<string, unknown> = {}, level: 'info' | 'debug' = 'info'): StreamDecision => ({
      kind: 'reject',
      status,
      reason,
      detail,
      fields,
      level,
    });
    if (this.closing) return reject(503, 'shutting_down', 'agent is shutting down');
    const peer = f.peer;
    if (!peer) {
      const refusal = f.refusal ?? { reason: 'unauthenticated', detail: 'client certificate has no valid SPIFFE URI SAN' };
      return reject(401, refusal.reason, refusal.detail, {}, 'debug');
    }
    if (f.method !== 'CONNECT') return reject(400, 'bad_request', 'only CONNECT is accepted', { method: f.method, peer });
    const dest = parseAuthority(f.authority);
    if (!dest) return reject(400, 'bad_request', ':authority must be ip:port', { authority: f.authority, peer });
    if (f.servedIp !== undefined && (normalizeIp(dest.ip) ?? dest.ip) !== f.servedIp) {
      return reject(400, 'bad_request', 'a pod-addressed HBONE connection carries CONNECTs to that pod only', { dest, peer, pod: f.servedIp });
    }
    const local = this.resolveLocal(dest.ip, dest.port);
    if (!local) return reject(400, 'not_local_workload', 'not a local workload', { dest, peer });
    const sourceIp = forwardedForIp(f.forwarded);
    const dialled = parseBaggage(f.baggage).destinationService;
    const protocol = this.opts.httpTunnels ? this.opts.httpProtocolOf?.(local.workload, dest.port) : undefined;
    const verdict = this.authorize({ sourceIdentity: peer, sourceIp, destination: dest, destinationWorkload: local.workload, ...(protocol ? { deferL7: true } : {}) });
    if (!verdict.allow) {
      return {
        ...reject(401, 'denied', `denied by policy: ${verdict.reason}`, { dest, peer }),
        failed: { telemetry: this.destinationTelemetry(peer, sourceIp, local.workload, dest.port, dialled), flag: 'DENY' },
      } as StreamDecision;
    }
    const shaped = this.opts.shaping?.admitConnection({ direction: 'inbound', destination: local.workload, port: dest.port, sourceIp });
    if (shaped?.kind === 'limited') return reject(429, 'rate_limited', shaped.detail, { dest, peer });
    // Every HTTP port is parsed at the destination, rules or not: requests are reported with reporter="destination"
    // (what dashboards and Kiali read) and a request-level rule added later applies to the open tunnel at once.
    return { kind: protocol ? 'http' : 'tcp', protocol, peer, sourceIp, dest, workload: local.workload, dialled, ...(shaped ? { release: shaped.release } : {}) };
  }

  private onStream(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders): void {
    stream.on('error', (err) => this.log.debug({ err: err.message }, 'HBONE stream error'));
    const session = stream.session as http2.ServerHttp2Session;
    const info = this.sessionInfo.get(session);
    if (info) this.watchEarlyReset(stream, session, info);
    const d = this.decide({
      peer: info?.peer,
      refusal: info?.refusal,
      method: headers[':method'],
      authority: headers[':authority'],
      forwarded: headers['forwarded'],
      baggage: headers['baggage'],
      servedIp: this.podSessions.get(session),
    });
    if (d.kind === 'reject') {
      if (d.failed) this.opts.metrics?.recordFailedTcp(d.failed.telemetry, d.failed.flag);
      this.reject(stream, d.status, d.reason, d.detail, d.fields, d.level);
      return;
    }
    if (d.kind === 'http') {
      this.serveHttp(stream, () => stream.respond({ ':status': 200 }), d);
      return;
    }
    this.dialAndRelay(
      d,
      stream,
      (status) => this.reject(stream, status, 'upstream_connect_failed', 'destination unreachable', { dest: d.dest, peer: d.peer }),
      (upstream, stats) => {
        if (stream.closed) {
          upstream.destroy();
          return undefined;
        }
        stream.respond({ ':status': 200 });
        const limits = this.opts.relayLimits?.([{ direction: 'inbound', destination: d.workload, port: d.dest.port, sourceIp: d.sourceIp, sourceIdentity: d.peer }]);
        return relay(stream, upstream, stats(), limits);
      },
    );
  }

  /** A CONNECT received by the engine: decided as any other, answered through the engine. */
  private onNativeStream(req: HboneStreamRequest): void {
    const engine = this.opts.engine!;
    let session = this.nativeSessions.get(req.session);
    if (!session) this.nativeSessions.set(req.session, (session = {}));
    session.identity ??= this.identifyId(req.peerId, req.remoteAddress);
    const header = (name: string) => req.headers.find(([k]) => k === name)?.[1];
    const d = this.decide({ ...session.identity, method: 'CONNECT', authority: req.authority, forwarded: header('forwarded'), baggage: header('baggage'), servedIp: session.servedIp });
    if (d.kind === 'reject') {
      if (d.failed) this.opts.metrics?.recordFailedTcp(d.failed.telemetry, d.failed.flag);
      this.countRejection(d.status, d.reason, d.detail, d.fields, d.level);
      engine.respond(req.stream, d.status);
      return;
    }
    if (d.kind === 'http') {
      this.serveHttp(engineDuplex(engine, req.stream), () => undefined, d);
      return;
    }
    // The engine does not report a client that leaves before the answer: the dial completes, and attach() ends at once.
    const client = Object.assign(new EventEmitter(), { destroyed: false });
    this.dialAndRelay(
      d,
      client,
      (status) => {
        this.countRejection(status, 'upstream_connect_failed', 'destination unreachable', { dest: d.dest, peer: d.peer }, 'info');
        engine.respond(req.stream, status);
      },
      (upstream, stats) => {
        try {
          return engineRelay(
            engine,
            req.stream,
            upstream,
            false,
            stats(),
            this.opts.shaping?.streamQos({ direction: 'inbound', destination: d.workload, port: d.dest.port, sourceIp: d.sourceIp, sourceIdentity: d.peer }),
          );
        } catch (err) {
          this.log.debug({ err: (err as Error).message }, 'pod connection not handed to the engine');
          upstream.destroy();
          engine.respond(req.stream, 503);
          return undefined;
        }
      },
    );
  }

  /** Telemetry (reporter destination) of a stream about to be relayed; its 200 is counted here. */
  private relayStats(d: Admitted): ConnectionStats | undefined {
    this.opts.metrics?.hboneStreams.inc({ direction: 'inbound', result: '200' });
    this.opts.metrics?.hboneActiveStreams.inc({ direction: 'inbound' });
    return this.opts.metrics?.openTcp(this.destinationTelemetry(d.peer, d.sourceIp, d.workload, d.dest.port, d.dialled));
  }

  /**
   * Connects to the pod for an allowed CONNECT: `failed` answers the client (503), `connected` answers 200 and starts
   * the relay (undefined: the client is gone); the relay is tracked for policy changes and shutdown.
   */
  private dialAndRelay(
    d: Admitted,
    client: Parameters<typeof dialPod>[1],
    failed: (status: number) => void,
    connected: (upstream: net.Socket, stats: () => ConnectionStats | undefined) => Relay | undefined,
  ): void {
    const { peer, sourceIp, dest, workload, dialled } = d;
    dialPod(
      dest,
      client,
      { localAddress: this.sourceFor(dest.ip), timeoutMs: this.opts.connectTimeoutMs ?? 10_000, pending: this.pending },
      {
        failed: () => {
          d.release?.();
          this.opts.metrics?.recordFailedTcp(this.destinationTelemetry(peer, sourceIp, workload, dest.port, dialled), 'CONNECT');
          failed(503);
        },
        connected: (upstream) => {
          let stats: ConnectionStats | undefined;
          const r = connected(upstream, () => (stats = this.relayStats(d)));
          if (!r) return d.release?.();
          this.relays.add(r);
          const untrack = this.opts.connections?.register({
            direction: 'inbound',
            facts: { sourceIdentity: peer, sourceIp, destination: dest, destinationWorkload: workload },
            mode: 'raw',
            inspectable: () => this.opts.httpTunnels !== undefined && this.opts.httpProtocolOf?.(workload, dest.port) !== undefined,
            close: () => r.reset(),
          });
          void r.done.then((res) => {
            d.release?.();
            untrack?.();
            this.relays.delete(r);
            stats?.close();
            this.opts.metrics?.hboneActiveStreams.dec({ direction: 'inbound' });
            this.log.debug({ peer, dest, received: res.aToB, sent: res.bToA, outcome: res.outcome }, 'inbound connection closed');
          });
        },
      },
    );
  }

  /** A tunnel to an HTTP port: answered 200 at once, then parsed and authorized per request. */
  private serveHttp(tunnel: Duplex, answer: () => void, d: Admitted): void {
    const tunnels = this.opts.httpTunnels!;
    const { peer, sourceIp, dest, workload, dialled } = d;
    answer();
    this.opts.metrics?.hboneStreams.inc({ direction: 'inbound', result: '200' });
    this.opts.metrics?.hboneActiveStreams.inc({ direction: 'inbound' });
    const telemetry = this.destinationTelemetry(peer, sourceIp, workload, dest.port, dialled);
    const stats = this.opts.metrics?.openTcp(telemetry);
    const untrack = this.opts.connections?.register({
      direction: 'inbound',
      facts: { sourceIdentity: peer, sourceIp, destination: dest, destinationWorkload: workload },
      mode: 'inspected',
      close: () => abortSide(tunnel),
    });
    void tunnels.serve(tunnel, { peer, sourceIp, destination: dest, workload, protocol: d.protocol ?? 'http', telemetry: this.opts.metrics ? telemetry : undefined }, stats).then((res) => {
      d.release?.();
      untrack?.();
      stats?.close();
      this.opts.metrics?.hboneActiveStreams.dec({ direction: 'inbound' });
      this.log.debug({ peer, dest, version: res.version, requests: res.requests, denied: res.denied }, 'inbound HTTP tunnel closed');
    });
  }
}

/**
 * What changes while a session's peer is alive: bytes read, and bytes still queued for the kernel on the TCP socket
 * under the TLS one. node:http2 stops reading while a write is in progress, so a session sending faster than the peer's
 * link takes reads nothing for a while; its send queue draining shows the peer is there. (`_parent` is the TCP
 * net.Socket a server-side TLSSocket wraps; `writeQueueSize` is libuv's count behind net.Socket's bufferSize. Without
 * them only reads count, which errs towards closing a session behind a slow link, never towards keeping a dead one.)
 */
function socketProgress(socket: tls.TLSSocket): string {
  const tcp = (socket as unknown as { _parent?: { _handle?: { writeQueueSize?: unknown } } })._parent?._handle;
  const queued = typeof tcp?.writeQueueSize === 'number' ? tcp.writeQueueSize : 0;
  return `${socket.bytesRead}/${queued}`;
}

/** Which handshake failure a node:tls 'tlsClientError' is. */
function tlsFailureReason(err: NodeJS.ErrnoException, socket: tls.TLSSocket): HboneHandshakeFailure {
  // A client certificate that fails verification is refused after the handshake (TLS 1.3): a hang-up with the reason here.
  if (socket.authorizationError) return 'bad_chain';
  switch (err.code) {
    case 'ERR_SSL_HTTP_REQUEST':
    case 'ERR_SSL_HTTPS_PROXY_REQUEST':
    case 'ERR_SSL_WRONG_VERSION_NUMBER':
    case 'ERR_SSL_PACKET_LENGTH_TOO_LONG':
    case 'ERR_SSL_UNKNOWN_PROTOCOL':
      return 'not_tls';
    case 'ERR_SSL_PEER_DID_NOT_RETURN_A_CERTIFICATE':
      return 'no_client_cert';
    case 'ERR_SSL_NO_APPLICATION_PROTOCOL':
      return 'no_alpn_h2';
    case 'ERR_TLS_HANDSHAKE_TIMEOUT':
      return 'timeout';
    case 'ECONNRESET':
    case 'EPIPE':
      return 'aborted';
    default:
      return /CERT|VERIFY/.test(err.code ?? '') ? 'bad_chain' : 'tls';
  }
}

/**
 * nghttp2 library errors (nghttp2.h) that node:http2 turns into a session destroy, and the GOAWAY code RFC 9113 asks
 * for. Node sends INTERNAL_ERROR for all of them (or nothing: the socket closes before the GOAWAY is written).
 */
const GOAWAY_CODE_OF_NGHTTP2_ERROR: ReadonlyMap<number, number> = new Map([
  [-505, http2.constants.NGHTTP2_PROTOCOL_ERROR], // NGHTTP2_ERR_PROTO
  [-903, http2.constants.NGHTTP2_PROTOCOL_ERROR], // NGHTTP2_ERR_BAD_CLIENT_MAGIC
  [-536, http2.constants.NGHTTP2_PROTOCOL_ERROR], // NGHTTP2_ERR_SETTINGS_EXPECTED
  [-522, http2.constants.NGHTTP2_FRAME_SIZE_ERROR], // NGHTTP2_ERR_FRAME_SIZE_ERROR
  [-523, http2.constants.NGHTTP2_COMPRESSION_ERROR], // NGHTTP2_ERR_HEADER_COMP
  [-524, http2.constants.NGHTTP2_FLOW_CONTROL_ERROR], // NGHTTP2_ERR_FLOW_CONTROL: window overflow, INITIAL_WINDOW_SIZE > 2^31-1
  [-537, http2.constants.NGHTTP2_ENHANCE_YOUR_CALM], // NGHTTP2_ERR_TOO_MANY_SETTINGS
  [-904, http2.constants.NGHTTP2_ENHANCE_YOUR_CALM], // NGHTTP2_ERR_FLOODED
  [-905, http2.constants.NGHTTP2_ENHANCE_YOUR_CALM], // NGHTTP2_ERR_TOO_MANY_CONTINUATIONS
]);

/**
 * node:http2 destroys a session on a connection error nghttp2 reports to it (rather than handling it) by calling the
 * session's own destroy() with an NghttpError whose `errno` is nghttp2's library error, and closes it with GOAWAY
 * INTERNAL_ERROR whatever the error was. This makes such a destroy send the code the error calls for, e.g.
 * FLOW_CONTROL_ERROR for a window overflow (RFC 9113 §6.9.1) or SETTINGS_INITIAL_WINDOW_SIZE 2^31 (§6.5.2), and
 * ENHANCE_YOUR_CALM when the peer sent more invalid frames than `maxSessionInvalidFrames`. Tested on the wire.
 */
function answerConnectionErrorsWithTheirCode(session: http2.ServerHttp2Session): void {
  const destroy = session.destroy.bind(session) as (error?: Error | number, code?: number) => void;
  session.destroy = ((error?: Error | number, code?: number): void => {
    if (code === undefined && error instanceof Error) {
      const e = error as NodeJS.ErrnoException;
      const mapped =
        e.code === 'ERR_HTTP2_TOO_MANY_INVALID_FRAMES'
          ? http2.constants.NGHTTP2_ENHANCE_YOUR_CALM
          : e.code === 'ERR_HTTP2_ERROR' && typeof e.errno === 'number'
            ? GOAWAY_CODE_OF_NGHTTP2_ERROR.get(e.errno)
            : undefined;
      if (mapped !== undefined) return destroy(error, mapped);
    }
    return destroy(error, code);
  }) as typeof session.destroy;
}

function defaultResolveLocal(state: StateView | undefined, nodeName: string | undefined): ResolveLocal {
  return (ip) => {
    if (!state || !nodeName) return undefined;
    const w = state.workloadByIp(normalizeIp(ip) ?? ip);
    if (!w || w.node !== nodeName) return undefined;
    return { workload: w };
  };
}
