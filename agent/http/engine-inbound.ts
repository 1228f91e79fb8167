// Opt-in (--http-engine) destination-side HTTP/1.1 through the addon's native HTTP/1.1 engine: an HBONE tunnel's socketpair end or a captured plaintext socket to an HTTP port is served by the engine, every request head decided by InboundHttp's shared decision (path normalization, L7 AuthorizationPolicy, request rate) and reported with the destination's labels; everything else stays on node:http.
import * as fs from 'node:fs';
import * as net from 'node:net';
import type { Duplex } from 'node:stream';
import type { Http1Engine, Http1EngineHandlers, Http1Request, Http1Result, Http1SessionClosed, Http1UpstreamFailure } from '../native/http1-types';
import type { HttpTunnelServer, TunnelContext, TunnelOutcome } from '../proxy/types';
import type { MeshMetrics } from '../telemetry/metrics';
import { silentLogger, type Logger } from '../../core/telemetry/logger';
import { httpEngineCounters, type HttpEngineCounters } from './engine-metrics';
import type { InboundHttp, InboundRequestDecision } from './inbound-http';
import { engineHeaderViews } from './policy-headers';

export interface EngineInboundHttpOptions {
  /** The node:http path: the shared per-request decision and telemetry, and the fallback (h2c, gRPC ports, Upgrade, tunnels without a socket). */
  readonly http: InboundHttp;
  readonly engine: Http1Engine;
  readonly metrics?: MeshMetrics;
  readonly logger?: Logger;
  /** Largest request head (default 64 KiB, node:http's on this path); bigger gets 431. */
  readonly maxHeadBytes?: number;
}

/** Why a tunnel stays on node:http (undefined: the engine serves it). */
export type InboundEngineIneligibility = 'not_http1_port' | 'no_fd' | 'already_read';

/** Engine session-close reasons that mean malformed client input → smesh_http_protocol_errors_total reason (as inbound-http.ts clientError). */
const CLIENT_ERROR_REASONS: Readonly<Record<string, string>> = { bad_request: 'malformed_request', header_too_large: 'header_overflow', header_timeout: 'malformed_request' };

/** The same body node:http's inbound answers an upstream failure with. */
const UPSTREAM_FAILED_BODY = 'upstream connect error or disconnect/reset before headers';

/** The libuv handle behind a net.Socket: its fd, and the calls that stop it reading. */
interface SocketHandle {
  fd?: number;
  reading?: boolean;
  readStop?: () => number;
}

/** One tunnel (engine session) being served. */
interface Tunnel {
  readonly ctx: TunnelContext;
  readonly counts: { received: number; sent: number };
  readonly resolve: (o: TunnelOutcome) => void;
  /** The caller's socket on the same connection (see serve). */
  readonly socket: net.Socket;
  requests: number;
  denied: number;
  /** Set when an Upgrade / HTTP/2 preface took the connection back to node:http: the tunnel ends when that serve does. */
  takeover?: Promise<TunnelOutcome | undefined>;
  /** Body bytes added to `counts` as requests ended (the session's totals replace them when it closes). */
  bodyIn: number;
  bodyOut: number;
  /** Bytes the engine read and handed over with a takeover (node:http counts them again). */
  handedOver: number;
}

interface InFlight {
  readonly tunnel: Tunnel;
  decision?: InboundRequestDecision;
  /** Set when an upstream failure was answered locally. */
  flags?: string;
}

/** The inbound HttpTunnelServer of main.ts with --http-engine: the engine in front of InboundHttp. */
export class EngineInboundHttp implements HttpTunnelServer {
  private readonly log: Logger;
  private readonly counters?: HttpEngineCounters;
  private readonly tunnels = new Map<number, Tunnel>();
  private readonly inFlight = new Map<number, InFlight>();
  private readonly handlers: Http1EngineHandlers;

  constructor(private readonly opts: EngineInboundHttpOptions) {
    this.log = opts.logger ?? silentLogger();
    this.counters = httpEngineCounters(opts.metrics);
    this.handlers = {
      onRequest: (req) => this.onRequest(req),
      onUpstreamFailure: (f) => this.onUpstreamFailure(f),
      onResult: (r) => this.onResult(r),
      onSessionClosed: (ev) => this.onSessionClosed(ev),
    };
  }

  /** Whether the engine can serve `stream` for `ctx` (pure apart from reading the socket's state). */
  static ineligibility(stream: Duplex, ctx: TunnelContext): InboundEngineIneligibility | undefined {
    // gRPC / HTTP/2 ports: the engine speaks HTTP/1.1 (an h2c client on an HTTP port is handed back by its preface).
    if (ctx.protocol !== 'http') return 'not_http1_port';
    const handle = stream instanceof net.Socket ? (stream as unknown as { _handle?: SocketHandle })._handle : undefined;
    // A node:http2 stream (the JS HBONE data plane) has no socket to hand over.
    if (typeof handle?.fd !== 'number' || handle.fd < 0 || !handle.readStop) return 'no_fd';
    const sock = stream as net.Socket;
    // The engine must see the connection's first byte: nothing may have been read into JavaScript yet.
    if (sock.bytesRead > 0 || sock.readableLength > 0) return 'already_read';
    return undefined;
  }

  serve(stream: Duplex, ctx: TunnelContext, counts?: { received: number; sent: number }): Promise<TunnelOutcome> {
    const why = EngineInboundHttp.ineligibility(stream, ctx);
    if (why) {
      this.counters?.fallbacks.inc({ direction: 'inbound', reason: why });
      return this.opts.http.serve(stream, ctx, counts);
    }
    const handle = (stream as unknown as { _handle: Required<SocketHandle> })._handle;
    // Stop libuv reading (as pauseOnConnect does) before the engine dups the fd; node:http resumes it on fallback.
    handle.reading = false;
    handle.readStop();
    let session: number;
    try {
      session = this.opts.engine.serve(handle.fd, { handlers: this.handlers, maxHeadBytes: this.opts.maxHeadBytes ?? 64 * 1024 });
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'HTTP engine refused an inbound connection; serving it on node:http');
      this.counters?.fallbacks.inc({ direction: 'inbound', reason: 'no_fd' });
      return this.opts.http.serve(stream, ctx, counts);
    }
    // The engine serves its own dup of the fd. Ours stays open, not reading, until the session ends, so that the
    // caller's close still works: destroying the socket (a policy change, shutdown; for an HBONE socketpair end also
    // resetting the stream) resets the engine session.
    const sock = stream as net.Socket;
    sock.on('error', () => undefined);
    sock.once('close', () => this.opts.engine.closeSession(session));
    return new Promise((resolve) => {
      this.tunnels.set(session, { ctx, counts: counts ?? { received: 0, sent: 0 }, resolve, socket: sock, requests: 0, denied: 0, bodyIn: 0, bodyOut: 0, handedOver: 0 });
    });
  }

  /** Closes every tunnel being served: the engine's sessions (reset through their sockets) and node:http's. */
  close(): void {
    for (const t of this.tunnels.values()) t.socket.destroy();
    this.opts.http.close();
  }

  private onRequest(req: Http1Request): void {
    const tunnel = this.tunnels.get(req.session);
    if (!tunnel) {
      this.opts.engine.decide(req.id, { kind: 'deny', status: 503, body: 'HTTP engine session has no tunnel context\n' });
      return;
    }
    tunnel.requests++;
    if (req.upgrade) {
      tunnel.takeover = this.takeOver(req, tunnel);
      return;
    }
    const { distinct } = engineHeaderViews(req.headers);
    const d = this.opts.http.decideRequest(tunnel.ctx, { method: req.method, target: req.target, host: req.authority, headers: distinct });
    this.inFlight.set(req.id, { tunnel, decision: d });
    if (d.kind === 'reply') {
      if (d.denied) tunnel.denied++;
      this.opts.engine.decide(req.id, { kind: 'deny', status: d.status, headers: Object.entries(d.headers), body: d.body });
      return;
    }
    const dest = tunnel.ctx.destination;
    const source = this.opts.http.sourceFor(dest.ip);
    this.opts.engine.decide(req.id, {
      kind: 'forward',
      host: dest.ip,
      port: dest.port,
      ...(source !== undefined ? { sourceAddress: source } : {}),
      ...(d.path !== req.target ? { path: d.path } : {}),
      connectTimeoutMs: this.opts.http.connectTimeoutMs,
    });
  }

  /** node:http's inbound answer to any upstream failure before the response: 503 UF. */
  private onUpstreamFailure(f: Http1UpstreamFailure): void {
    const entry = this.inFlight.get(f.id);
    if (entry) entry.flags = 'UF';
    this.log.debug({ target: f.target, reason: f.reason, err: f.detail }, 'inbound HTTP upstream failed');
    this.opts.engine.reply(f.id, 503, [['content-type', 'text/plain']], UPSTREAM_FAILED_BODY);
  }

  private onResult(r: Http1Result): void {
    const entry = this.inFlight.get(r.id);
    if (!entry) return;
    this.inFlight.delete(r.id);
    this.counters?.served.inc({ direction: 'inbound', outcome: r.outcome });
    const { tunnel, decision: d } = entry;
    // Live enough for the tunnel's TCP byte counters; exact (heads and framing too) once the session closes.
    tunnel.counts.received += r.requestBytes;
    tunnel.counts.sent += r.responseBytes;
    tunnel.bodyIn += r.requestBytes;
    tunnel.bodyOut += r.responseBytes;
    if (r.outcome === 'aborted' && r.status === 0) return; // the client left before any answer: nothing to report, as node:http
    const flags = entry.flags ?? (d?.kind === 'reply' ? d.flags : '-');
    this.opts.http.recordRequest(tunnel.ctx, r.status, undefined, r.durationUs / 1000, flags, { requestBytes: r.requestBytes, responseBytes: r.responseBytes });
  }

  private onSessionClosed(ev: Http1SessionClosed): void {
    const tunnel = this.tunnels.get(ev.session);
    if (!tunnel) return;
    this.tunnels.delete(ev.session);
    // The engine closed its fd: ours is the last one (the connection ends with it; no reset: reading never stopped it).
    tunnel.socket.destroy();
    const reason = CLIENT_ERROR_REASONS[ev.reason];
    if (reason) this.opts.metrics?.httpProtocolErrors.inc({ direction: 'inbound', side: 'downstream', reason });
    const outcome = { version: 'h1' as const, requests: tunnel.requests, denied: tunnel.denied };
    const settleBytes = () => {
      tunnel.counts.received += Math.max(0, ev.bytesReceived - tunnel.handedOver) - tunnel.bodyIn;
      tunnel.counts.sent += ev.bytesSent - tunnel.bodyOut;
    };
    if (!tunnel.takeover) {
      settleBytes();
      tunnel.resolve(outcome);
      return;
    }
    // The takeover has recorded what it handed over before its node:http serve ends.
    void tunnel.takeover.then((after) => {
      settleBytes();
      tunnel.resolve(after ? { version: after.version, requests: outcome.requests - 1 + after.requests, denied: outcome.denied + after.denied } : outcome);
    });
  }

  /** Upgrade (WebSocket), or an h2c client's preface: the socket leaves the engine for node:http / node:http2, head bytes first. */
  private async takeOver(req: Http1Request, tunnel: Tunnel): Promise<TunnelOutcome | undefined> {
    const t = await this.opts.engine.takeover(req.id);
    if (!t) return undefined;
    let sock: net.Socket;
    try {
      sock = new net.Socket({ fd: t.fd, readable: true, writable: true, allowHalfOpen: true });
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'HTTP engine takeover: cannot wrap the inbound socket');
      try {
        fs.closeSync(t.fd);
      } catch {
        // already closed
      }
      return undefined;
    }
    this.counters?.served.inc({ direction: 'inbound', outcome: 'takeover' });
    tunnel.handedOver = t.pending.length;
    if (t.pending.length > 0) sock.unshift(t.pending);
    return this.opts.http.serve(sock, tunnel.ctx, tunnel.counts);
  }
}
