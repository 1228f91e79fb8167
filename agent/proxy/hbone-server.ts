// Inbound HBONE (port 15008): mutual-TLS HTTP/2 server accepting CONNECT streams to local workloads and relaying them.
import * as http2 from 'http2';
import * as net from 'net';
import type * as tls from 'tls';
import { SmeshError } from '../errors';
import { listenOrFail } from '../telemetry/listen';
import { peerSpiffeId } from '../identity/spiffe';
import type { StateView } from '../state/store';
import type { Workload } from '../state/types';
import { silentLogger, type Logger } from '../telemetry/logger';
import type { MeshMetrics, RefusalReason } from '../telemetry/metrics';
import { abortSide, relay, type Relay } from './relay';
import type { ConnectionRegistry } from './connection-tracker';
import { allowAll, normalizeIp, serviceInfo, type Authorizer, type HostPort, type HttpTunnelServer, type IdentityProvider, type IpPort } from './types';

export const HBONE_STREAM_WINDOW = 4 * 1024 * 1024;
export const HBONE_CONNECTION_WINDOW = 16 * 1024 * 1024;
export const HBONE_MAX_CONCURRENT_STREAMS = 100;
/**
 * node:http2 `maxSessionMemory` (MB) of HBONE sessions. Node counts data written to a session's streams and not yet
 * sent against it and refuses new streams past it (default 10); the relay lets up to ~320 KiB wait per stream
 * (relay.ts), so 100 streams of a busy session may hold ~32 MB.
 */
export const HBONE_MAX_SESSION_MEMORY_MB = 64;

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
  readonly handshakeTimeoutMs?: number;
  readonly maxConcurrentStreams?: number;
  /**
   * The HTTP protocol of a local workload's port ('http' | 'grpc'), undefined for plain TCP. On
   * such a port the connection is authorized with L7 attributes deferred; when a request-level
   * rule applies, the tunnel is handed to `httpTunnels`, which authorizes every request. Without
   * `httpTunnels` such rules fail closed at the connection, as on a TCP port.
   */
  readonly httpProtocolOf?: (workload: Workload | undefined, port: number) => 'http' | 'grpc' | undefined;
  readonly httpTunnels?: HttpTunnelServer;
  /** Open streams are registered here so that a policy change re-decides them (agent/proxy/connection-tracker.ts). */
  readonly connections?: ConnectionRegistry;
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

/** The HBONE inbound server. */
export class InboundProxy {
  private server?: http2.Http2SecureServer;
  private readonly sessions = new Set<http2.ServerHttp2Session>();
  private readonly relays = new Set<Relay>();
  private readonly pending = new Set<net.Socket>();
  private readonly peerIds = new WeakMap<http2.ServerHttp2Session, string | null>();
  private readonly log: Logger;
  private readonly authorize: Authorizer;
  private readonly resolveLocal: ResolveLocal;
  private closing = false;

  constructor(private readonly opts: InboundProxyOptions) {
    this.log = opts.logger ?? silentLogger();
    this.authorize = opts.authorize ?? allowAll;
    this.resolveLocal = opts.resolveLocal ?? defaultResolveLocal(opts.state, opts.nodeName);
  }

  /** Bound address (after start). */
  address(): net.AddressInfo {
    const a = this.server?.address();
    if (!a || typeof a === 'string') throw new SmeshError('SMESH_ERR_BIND', 'inbound HBONE server is not listening');
    return a;
  }

  private secureContextOptions(): tls.SecureContextOptions {
    const cert = this.opts.identities.get(this.opts.nodeId);
    if (!cert) {
      throw new SmeshError('SMESH_ERR_IDENTITY', `no certificate for node identity ${this.opts.nodeId}; ensure identities before starting the inbound proxy`);
    }
    return { key: cert.keyPem, cert: cert.chainPem, ca: this.opts.identities.trustBundlePem() };
  }

  async start(): Promise<void> {
    const maxStreams = this.opts.maxConcurrentStreams ?? HBONE_MAX_CONCURRENT_STREAMS;
    const server = http2.createSecureServer({
      ...this.secureContextOptions(),
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
    });
    this.server = server;
    // The TLS context holds this node's certificate and the roots peers are verified against: rebuilt when either
    // changes. New trust anchors (a root rotation) apply at once, not when this node's own certificate next renews.
    const refresh = (what: string, fields: Record<string, unknown> = {}): void => {
      if (this.closing) return;
      try {
        server.setSecureContext(this.secureContextOptions());
        this.log.info(fields, `inbound server: ${what}`);
      } catch (err) {
        this.log.error({ ...fields, err: (err as Error).message }, `inbound server: cannot apply ${what}`);
      }
    };
    this.opts.identities.onRotate?.((id) => {
      if (id === this.opts.nodeId) refresh('certificate rotated', { spiffeId: id });
    });
    this.opts.identities.onTrustBundleChange?.(() => refresh('new mesh trust anchors'));

    server.on('tlsClientError', (err: Error, socket: tls.TLSSocket) => {
      this.refuse('unauthenticated');
      this.log.debug({ peer: socket.remoteAddress, err: err.message }, 'HBONE TLS handshake failed');
      socket.destroy();
    });
    server.on('unknownProtocol', (socket: tls.TLSSocket) => {
      this.refuse('bad_request');
      this.log.debug({ peer: socket.remoteAddress }, 'HBONE client did not negotiate ALPN h2');
      socket.destroy();
    });
    server.on('sessionError', (err: Error) => this.log.debug({ err: err.message }, 'HBONE session error'));
    server.on('session', (session: http2.ServerHttp2Session) => this.onSession(session));
    server.on('stream', (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => this.onStream(stream, headers));

    await listenOrFail(server, this.opts.listen.host, this.opts.listen.port, 'inbound HBONE listener', 'is another agent running?', this.log);
    this.log.info({ address: this.address() }, 'inbound HBONE listening');
  }

  /** The service (if any) through which this workload port is reached, for the destination_service labels. */
  private serviceFor(w: Workload | undefined, port: number): ReturnType<typeof serviceInfo> {
    if (!w || !this.opts.state) return undefined;
    const services = this.opts.state.servicesOf(w);
    const svc = services.find((s) => s.ports.some((p) => p.targetPort === port)) ?? services[0];
    return serviceInfo(svc, this.opts.state.trustDomain);
  }

  async close(): Promise<void> {
    this.closing = true;
    const server = this.server;
    if (!server) return;
    const closed = new Promise<void>((r) => server.close(() => r()));
    for (const r of this.relays) r.reset();
    this.opts.httpTunnels?.close();
    for (const s of this.pending) s.destroy();
    for (const s of this.sessions) s.destroy();
    await closed;
  }

  private refuse(reason: RefusalReason): void {
    this.opts.metrics?.refused.inc({ direction: 'inbound', reason });
  }

  private onSession(session: http2.ServerHttp2Session): void {
    this.sessions.add(session);
    this.opts.metrics?.hboneSessions.inc({ direction: 'inbound' });
    session.on('error', (err) => this.log.debug({ err: err.message }, 'HBONE session error'));
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

  private peerId(session: http2.ServerHttp2Session): string | undefined {
    let id = this.peerIds.get(session);
    if (id === undefined) {
      id = peerSpiffeId(session.socket as tls.TLSSocket) ?? null;
      this.peerIds.set(session, id);
    }
    return id ?? undefined;
  }

  private reject(stream: http2.ServerHttp2Stream, status: number, reason: RefusalReason, detail: string, fields: Record<string, unknown> = {}): void {
    this.refuse(reason);
    this.opts.metrics?.hboneStreams.inc({ direction: 'inbound', result: String(status) });
    this.log.info({ status, reason, ...fields }, `HBONE stream refused: ${detail}`);
    if (stream.destroyed || stream.closed) return;
    if (!stream.headersSent) stream.respond({ ':status': status }, { endStream: true });
    else stream.close(http2.constants.NGHTTP2_CONNECT_ERROR);
  }

  private onStream(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders): void {
    stream.on('error', (err) => this.log.debug({ err: err.message }, 'HBONE stream error'));
    if (this.closing) {
      this.reject(stream, 503, 'shutting_down', 'agent is shutting down');
      return;
    }
    const peer = this.peerId(stream.session as http2.ServerHttp2Session);
    if (!peer) {
      this.reject(stream, 401, 'unauthenticated', 'client certificate has no valid SPIFFE URI SAN');
      return;
    }
    if (headers[':method'] !== 'CONNECT') {
      this.reject(stream, 400, 'bad_request', 'only CONNECT is accepted', { method: headers[':method'], peer });
      return;
    }
    const dest = parseAuthority(headers[':authority']);
    if (!dest) {
      this.reject(stream, 400, 'bad_request', ':authority must be ip:port', { authority: headers[':authority'], peer });
      return;
    }
    const local = this.resolveLocal(dest.ip, dest.port);
    if (!local) {
      this.reject(stream, 400, 'not_local_workload', 'not a local workload', { dest, peer });
      return;
    }
    const sourceIp = forwardedForIp(headers['forwarded']);
    const httpProtocol = this.opts.httpTunnels ? this.opts.httpProtocolOf?.(local.workload, dest.port) : undefined;
    const verdict = this.authorize({ sourceIdentity: peer, sourceIp, destination: dest, destinationWorkload: local.workload, ...(httpProtocol ? { deferL7: true } : {}) });
    if (!verdict.allow) {
      this.reject(stream, 401, 'denied', `denied by policy: ${verdict.reason}`, { dest, peer });
      return;
    }
    if (httpProtocol && verdict.deferred && this.opts.httpTunnels) {
      this.serveHttp(this.opts.httpTunnels, stream, peer, sourceIp, dest, local.workload, httpProtocol);
      return;
    }

    const upstream = net.connect({ host: dest.ip, port: dest.port, allowHalfOpen: true, noDelay: true, localAddress: this.opts.upstreamSourceIp });
    this.pending.add(upstream);
    const timer = setTimeout(() => upstream.destroy(new Error('connect timeout')), this.opts.connectTimeoutMs ?? 10_000);
    timer.unref();
    const abandon = () => upstream.destroy();
    stream.once('close', abandon);
    // Before connect, 'close' below answers 503; after connect the relay owns errors.
    upstream.on('error', () => undefined);
    upstream.once('close', () => {
      clearTimeout(timer);
      if (!this.pending.delete(upstream)) return;
      stream.off('close', abandon);
      this.reject(stream, 503, 'upstream_connect_failed', 'destination unreachable', { dest, peer });
    });
    upstream.once('connect', () => {
      clearTimeout(timer);
      this.pending.delete(upstream);
      stream.off('close', abandon);
      if (stream.destroyed || stream.closed) {
        upstream.destroy();
        return;
      }
      stream.respond({ ':status': 200 });
      this.opts.metrics?.hboneStreams.inc({ direction: 'inbound', result: '200' });
      this.opts.metrics?.hboneActiveStreams.inc({ direction: 'inbound' });
      const src = sourceIp ? this.opts.state?.workloadByIp(sourceIp) : undefined;
      const stats = this.opts.metrics?.openTcp({
        reporter: 'destination',
        source: src && src.identity === peer ? src : undefined,
        sourcePrincipal: peer,
        destination: local.workload,
        service: this.serviceFor(local.workload, dest.port),
        mtls: true,
      });
      const r = relay(stream, upstream, stats);
      this.relays.add(r);
      const untrack = this.opts.connections?.register({
        direction: 'inbound',
        facts: { sourceIdentity: peer, sourceIp, destination: dest, destinationWorkload: local.workload },
        mode: 'raw',
        inspectable: () => this.opts.httpTunnels !== undefined && this.opts.httpProtocolOf?.(local.workload, dest.port) !== undefined,
        close: () => r.reset(),
      });
      void r.done.then((res) => {
        untrack?.();
        this.relays.delete(r);
        stats?.close();
        this.opts.metrics?.hboneActiveStreams.dec({ direction: 'inbound' });
        this.log.debug({ peer, dest, received: res.aToB, sent: res.bToA, outcome: res.outcome }, 'inbound connection closed');
      });
    });
  }

  /** A tunnel to an HTTP port with request-level rules: answered 200 at once, then parsed and authorized per request. */
  private serveHttp(tunnels: HttpTunnelServer, stream: http2.ServerHttp2Stream, peer: string, sourceIp: string | undefined, dest: IpPort, workload: Workload | undefined, protocol: 'http' | 'grpc'): void {
    stream.respond({ ':status': 200 });
    this.opts.metrics?.hboneStreams.inc({ direction: 'inbound', result: '200' });
    this.opts.metrics?.hboneActiveStreams.inc({ direction: 'inbound' });
    const src = sourceIp ? this.opts.state?.workloadByIp(sourceIp) : undefined;
    const telemetry = {
      reporter: 'destination' as const,
      source: src && src.identity === peer ? src : undefined,
      sourcePrincipal: peer,
      destination: workload,
      service: this.serviceFor(workload, dest.port),
      mtls: true,
    };
    const stats = this.opts.metrics?.openTcp(telemetry);
    const untrack = this.opts.connections?.register({ direction: 'inbound', facts: { sourceIdentity: peer, sourceIp, destination: dest, destinationWorkload: workload }, mode: 'inspected', close: () => abortSide(stream) });
    void tunnels.serve(stream, { peer, sourceIp, destination: dest, workload, protocol, telemetry: this.opts.metrics ? telemetry : undefined }, stats).then((res) => {
      untrack?.();
      stats?.close();
      this.opts.metrics?.hboneActiveStreams.dec({ direction: 'inbound' });
      this.log.debug({ peer, dest, version: res.version, requests: res.requests, denied: res.denied }, 'inbound HTTP tunnel closed');
    });
  }
}

function defaultResolveLocal(state: StateView | undefined, nodeName: string | undefined): ResolveLocal {
  return (ip) => {
    if (!state || !nodeName) return undefined;
    const w = state.workloadByIp(normalizeIp(ip) ?? ip);
    if (!w || w.node !== nodeName) return undefined;
    return { workload: w };
  };
}
