// Inbound L7 enforcement: parses HTTP/1.1 or HTTP/2 inside one HBONE tunnel to an HTTP port, authorizes each request with its attributes and forwards the allowed ones to the local pod.
import * as http from 'node:http';
import * as http2 from 'node:http2';
import * as net from 'node:net';
import { Duplex } from 'node:stream';
import type { HttpAttributes } from '../../core/policy/types';
import { silentLogger, type Logger } from '../../core/telemetry/logger';
import type { MeshMetrics, RequestSizes } from '../telemetry/metrics';
import type { Authorizer, HttpTunnelServer, TunnelContext, TunnelOutcome } from '../proxy/types';
import type { ConnectionRegistry } from '../proxy/connection-tracker';
import { dial, sourceAddressFor, type SourceAddressFor } from '../proxy/dial';
import { HOP_BY_HOP, sniffHttpVersion } from '../../core/model/protocol';
import { checkMethod, normalizeRequestTarget, type PathRejection } from './path-normalize';
import { headerLists } from './policy-headers';
import { BodyMeter, sizesOf } from './body-meter';
import type { TrafficShaper } from '../qos/shaping';

/** Istio's body for an RBAC denial of an HTTP request. */
export const RBAC_DENIED_BODY = 'RBAC: access denied';
/** Largest first flight we wait for before deciding the tunnel is not HTTP/2 (the preface is 24 bytes). */
const SNIFF_TIMEOUT_MS = 10_000;

export interface InboundHttpOptions {
  readonly authorize: Authorizer;
  /** Source address of the connections to the pod (the capture address; see InboundProxyOptions). */
  readonly upstreamSourceIp?: string;
  /** Source address of connections to IPv6 pods (a socket cannot connect from an IPv4 address to an IPv6 one). */
  readonly upstreamSourceIp6?: string;
  readonly connectTimeoutMs?: number;
  /** Upgraded (WebSocket) connections are registered so that a policy change re-decides them on their upgrade request (proxy/connection-tracker.ts). */
  readonly connections?: ConnectionRegistry;
  readonly metrics?: MeshMetrics;
  readonly logger?: Logger;
  /** TrafficShaping inbound requestRate rules (agent/qos/shaping.ts): a request over one gets 429 with RateLimit headers. */
  readonly shaping?: TrafficShaper;
}

/** One request head as the destination decides it, whichever parser read it (node:http, node:http2, the HTTP/1.1 engine). */
export interface InboundRequestHead {
  readonly method: string;
  /** The request target as received; undefined for an HTTP/2 CONNECT without :path. */
  readonly target: string | undefined;
  readonly host: string;
  /** Every value of every header, as Envoy's RBAC sees them. */
  readonly headers: HttpAttributes['headers'];
}

/**
 * The destination's verdict on one request: forward it to the pod with the normalized path, or answer it locally
 * (404/400 refused target, 403 RBAC, 429 rate limit) with `flags` for the request metrics.
 */
export type InboundRequestDecision =
  | { readonly kind: 'forward'; readonly path: string; readonly attrs: HttpAttributes }
  | {
      readonly kind: 'reply';
      readonly status: number;
      /** Without content-length (each writer sets it). */
      readonly headers: Readonly<Record<string, string>>;
      readonly body: string;
      readonly flags: '-' | 'RBAC' | 'RL';
      /** The request was denied by AuthorizationPolicy. */
      readonly denied: boolean;
      readonly attrs?: HttpAttributes;
    };

export function flatHeaders(h: http.IncomingHttpHeaders | http2.IncomingHttpHeaders): Record<string, string | string[] | undefined> {
  const out: Record<string, string | string[] | undefined> = {};
  for (const [k, v] of Object.entries(h)) if (!k.startsWith(':')) out[k] = v as string | string[] | undefined;
  return out;
}

/**
 * A plain Duplex in front of the HBONE stream for Node's HTTP parsers. Writes reach the HTTP/2
 * stream one Buffer at a time: the HTTP servers cork and write strings, and strings handed to an
 * Http2Stream's writev were seen corrupted on the wire (first bytes of a response replaced by
 * heap garbage) and, under load, crashing the process with std::bad_alloc. Also counts bytes.
 */
export class TunnelSocket extends Duplex {
  /** `counts` (e.g. the tunnel's TcpConnectionStats) sees the bytes live: received from the tunnel, sent into it. */
  constructor(
    private readonly tunnel: Duplex,
    private readonly counts: { received: number; sent: number } = { received: 0, sent: 0 },
  ) {
    super({ allowHalfOpen: true });
    tunnel.on('data', (d: Buffer) => {
      counts.received += d.length;
      if (!this.push(d)) tunnel.pause();
    });
    tunnel.once('end', () => this.push(null));
    tunnel.once('close', () => this.destroy());
    tunnel.on('error', (err: Error) => this.destroy(err));
  }
  override _read(): void {
    this.tunnel.resume();
  }
  override _write(chunk: Buffer | string, encoding: BufferEncoding, cb: (err?: Error | null) => void): void {
    const buf = typeof chunk === 'string' ? Buffer.from(chunk, encoding) : Buffer.from(chunk);
    this.counts.sent += buf.length;
    if (this.tunnel.destroyed) return cb(new Error('tunnel closed'));
    this.tunnel.write(buf, (err) => cb(err ?? null));
  }
  override _final(cb: (err?: Error | null) => void): void {
    this.tunnel.end();
    cb();
  }
  override _destroy(err: Error | null, cb: (err: Error | null) => void): void {
    this.tunnel.destroy();
    cb(err);
  }
  // The parts of net.Socket the HTTP servers call.
  setTimeout(): this {
    return this;
  }
  setNoDelay(): this {
    return this;
  }
  setKeepAlive(): this {
    return this;
  }
  ref(): this {
    return this;
  }
  unref(): this {
    return this;
  }
}

/** Reads until the tunnel's first bytes tell HTTP/1.x from the HTTP/2 preface; pushes them back for the parser. */
function sniff(tunnel: Duplex): Promise<'h1' | 'h2' | 'closed'> {
  return new Promise((resolve) => {
    let head: Buffer = Buffer.alloc(0);
    let done = false;
    const finish = (v: 'h1' | 'h2' | 'closed') => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      tunnel.off('readable', onReadable);
      tunnel.off('end', onEnd);
      tunnel.off('close', onEnd);
      if (head.length > 0) tunnel.unshift(head);
      resolve(v);
    };
    const onEnd = () => finish(head.length > 0 ? 'h1' : 'closed');
    const onReadable = () => {
      let chunk: Buffer | null;
      while ((chunk = tunnel.read() as Buffer | null) !== null) {
        head = head.length === 0 ? chunk : Buffer.concat([head, chunk]);
        const v = sniffHttpVersion(head);
        if (v !== 'more') return finish(v);
      }
    };
    const timer = setTimeout(() => finish(head.length > 0 ? 'h1' : 'closed'), SNIFF_TIMEOUT_MS);
    timer.unref();
    tunnel.on('readable', onReadable);
    tunnel.once('end', onEnd);
    tunnel.once('close', onEnd);
    onReadable();
  });
}

/**
 * Serves one tunnel: every request is authorized with its method, path, host and headers (the
 * connection itself was already allowed with L7 deferred). Denied requests get 403 "RBAC: access
 * denied" and the tunnel stays open for the next request; allowed ones go to the pod over a
 * connection (HTTP/1.1) or an h2c session (HTTP/2, gRPC) owned by this tunnel and closed with it.
 */
export class InboundHttp implements HttpTunnelServer {
  private readonly log: Logger;
  private readonly closers = new Set<() => void>();

  /** The source address for a connection to the pod at an address: the configured one of its family. */
  readonly sourceFor: SourceAddressFor;

  constructor(private readonly opts: InboundHttpOptions) {
    this.sourceFor = sourceAddressFor(opts.upstreamSourceIp, opts.upstreamSourceIp6);
    this.log = opts.logger ?? silentLogger();
  }

  /** Closes every tunnel being served. */
  close(): void {
    for (const c of [...this.closers]) c();
  }

  /** Serves one tunnel until it closes; `counts` (if given) is kept up to date with the tunnel's bytes as they pass. */
  async serve(stream: Duplex, ctx: TunnelContext, counts?: { received: number; sent: number }): Promise<TunnelOutcome> {
    const version = await sniff(stream);
    if (version === 'closed') {
      stream.destroy();
      return { version: 'none', requests: 0, denied: 0 };
    }
    const tunnel = new TunnelSocket(stream, counts);
    return version === 'h2' ? this.serveH2(tunnel, ctx) : this.serveH1(tunnel, ctx);
  }

  /**
   * The per-request decision of the destination (one home for node:http, node:http2 and the engine): Istio's BASE path
   * normalization (and upper-case methods), AuthorizationPolicy with the request's attributes, then the TrafficShaping
   * requestRate of the destination. Refused targets and denials are counted and logged here.
   */
  decideRequest(ctx: TunnelContext, head: InboundRequestHead): InboundRequestDecision {
    let path = '';
    if (head.target !== undefined) {
      const target = checkMethod(head.method) ?? normalizeRequestTarget(head.target);
      if (!target.ok) {
        this.badTarget(ctx, head.target, target);
        return { kind: 'reply', status: target.status, headers: { 'content-type': 'text/plain' }, body: '', flags: '-', denied: false };
      }
      path = target.target;
    }
    const attrs: HttpAttributes = { method: head.method, path, host: head.host, headers: head.headers };
    if (!this.opts.authorize({ sourceIdentity: ctx.peer, sourceIp: ctx.sourceIp, destination: ctx.destination, destinationWorkload: ctx.workload, http: attrs }).allow) {
      return { kind: 'reply', status: 403, headers: { 'content-type': 'text/plain' }, body: RBAC_DENIED_BODY, flags: 'RBAC', denied: true, attrs };
    }
    const shaping = this.opts.shaping;
    const limited =
      shaping && ctx.workload
        ? shaping.admitRequest({ direction: 'inbound', destination: ctx.workload, port: ctx.destination.port, sourceIp: ctx.sourceIp, method: attrs.method, path: attrs.path, headers: attrs.headers })
        : undefined;
    if (limited) return { kind: 'reply', status: 429, headers: { 'content-type': 'text/plain', ...limited.headers }, body: limited.body, flags: 'RL', denied: false, attrs };
    return { kind: 'forward', path, attrs };
  }

  /** Reports one finished request (reporter destination) with the tunnel's labels. */
  recordRequest(ctx: TunnelContext, status: number, grpcStatus: string | undefined, durationMs: number, flags = '-', sizes?: RequestSizes): void {
    if (!ctx.telemetry || !this.opts.metrics) return;
    this.opts.metrics.recordRequest(ctx.telemetry, grpcStatus !== undefined ? 'grpc' : ctx.protocol, status, grpcStatus, durationMs, flags, sizes);
  }

  /** Connect timeout towards the pod. */
  get connectTimeoutMs(): number {
    return this.opts.connectTimeoutMs ?? 10_000;
  }

  private record(ctx: TunnelContext, status: number, grpcStatus: string | undefined, startedAt: bigint, flags = '-', sizes?: RequestSizes): void {
    this.recordRequest(ctx, status, grpcStatus, Number(process.hrtime.bigint() - startedAt) / 1e6, flags, sizes);
  }

  private protocolError(reason: string): void {
    this.opts.metrics?.httpProtocolErrors.inc({ direction: 'inbound', side: 'downstream', reason });
  }

  /** A request target that normalization refuses (Envoy: 404 not origin-form, 400 `%00`): counted, logged, never forwarded. */
  private badTarget(ctx: TunnelContext, target: string, r: PathRejection): void {
    this.protocolError(r.reason);
    this.log.debug({ dest: ctx.destination, peer: ctx.peer, target: target.slice(0, 256), reason: r.reason }, 'request target refused by path normalization');
  }

  private serveH1(tunnel: Duplex, ctx: TunnelContext): Promise<TunnelOutcome> {
    const { destination: dest } = ctx;
    let requests = 0;
    let denied = 0;
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    // What Node's Agent does with net.createConnection(options) — SO_KEEPALIVE, the request's socket timeout — through the dialer.
    agent.createConnection = (o: { timeout?: number }): net.Socket => {
      const s = dial(dest, { localAddress: this.sourceFor(dest.ip), noDelay: true });
      s.setKeepAlive(true);
      if (o.timeout !== undefined) s.setTimeout(o.timeout);
      return s;
    };
    const upstreamOpts = { host: dest.ip, port: dest.port, localAddress: this.sourceFor(dest.ip), agent, timeout: this.connectTimeoutMs };
    const server = http.createServer({ maxHeaderSize: 64 * 1024 });
    server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
      requests++;
      const t0 = process.hrtime.bigint();
      // Policy and the pod both see the normalized target (Istio's default BASE path normalization).
      const d = this.decideRequest(ctx, { method: req.method ?? '', target: req.url ?? '', host: req.headers.host ?? '', headers: req.headersDistinct });
      if (d.kind === 'reply') {
        if (d.denied) denied++;
        req.resume();
        res.writeHead(d.status, { ...d.headers, 'content-length': String(Buffer.byteLength(d.body)) });
        res.end(d.body);
        this.record(ctx, d.status, undefined, t0, d.flags, d.denied ? { requestBytes: 0, responseBytes: Buffer.byteLength(d.body) } : undefined);
        return;
      }
      const headers: http.OutgoingHttpHeaders = {};
      for (const [k, v] of Object.entries(req.headers)) if (!HOP_BY_HOP.has(k) && v !== undefined) headers[k] = v;
      const up = http.request({ ...upstreamOpts, method: req.method, path: d.path, headers });
      const reqMeter = new BodyMeter(false).watch(req);
      up.on('response', (ur) => {
        const resMeter = new BodyMeter(false).watch(ur);
        const rh: http.OutgoingHttpHeaders = {};
        for (const [k, v] of Object.entries(ur.headers)) if (!HOP_BY_HOP.has(k) && v !== undefined) rh[k] = v;
        res.writeHead(ur.statusCode ?? 502, ur.statusMessage, rh);
        ur.pipe(res);
        ur.once('end', () => this.record(ctx, ur.statusCode ?? 502, undefined, t0, '-', sizesOf(reqMeter, resMeter)));
        ur.once('error', () => res.destroy());
      });
      up.on('timeout', () => up.destroy(new Error('upstream connect timeout')));
      up.on('error', (err) => {
        this.log.debug({ dest, err: err.message }, 'inbound HTTP upstream failed');
        if (!res.headersSent) {
          const body = 'upstream connect error or disconnect/reset before headers';
          res.writeHead(503, { 'content-type': 'text/plain', 'content-length': String(body.length) });
          res.end(body);
          this.record(ctx, 503, undefined, t0, 'UF');
        } else res.destroy();
      });
      req.pipe(up);
      req.once('aborted', () => up.destroy());
    });
    server.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
      requests++;
      const t0 = process.hrtime.bigint();
      const d = this.decideRequest(ctx, { method: req.method ?? '', target: req.url ?? '', host: req.headers.host ?? '', headers: req.headersDistinct });
      if (d.kind === 'reply') {
        if (d.denied) denied++;
        const fields = Object.entries(d.headers)
          .map(([k, v]) => `${k}: ${v}\r\n`)
          .join('');
        socket.end(`HTTP/1.1 ${d.status} ${http.STATUS_CODES[d.status]}\r\n${fields}content-length: ${Buffer.byteLength(d.body)}\r\nconnection: close\r\n\r\n${d.body}`);
        this.record(ctx, d.status, undefined, t0, d.flags);
        return;
      }
      const attrs = d.attrs;
      // Allowed upgrade (WebSocket and the like): replay the request head to the pod, then splice raw.
      const up = dial(dest, { localAddress: this.sourceFor(dest.ip) });
      const lines = [`${req.method} ${d.path} HTTP/${req.httpVersion}`];
      for (let i = 0; i < req.rawHeaders.length; i += 2) lines.push(`${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}`);
      up.write(`${lines.join('\r\n')}\r\n\r\n`);
      if (head.length > 0) up.write(head);
      up.on('error', () => socket.destroy());
      socket.on('error', () => up.destroy());
      up.pipe(socket);
      socket.pipe(up);
      const untrack = this.opts.connections?.register({
        direction: 'inbound',
        facts: { sourceIdentity: ctx.peer, sourceIp: ctx.sourceIp, destination: dest, destinationWorkload: ctx.workload, http: attrs },
        mode: 'raw',
        close: () => {
          up.destroy();
          socket.destroy();
        },
      });
      if (untrack) {
        up.once('close', untrack);
        socket.once('close', untrack);
      }
      this.record(ctx, 101, undefined, t0);
    });
    server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
      const code = err.code ?? '';
      const status = code === 'HPE_HEADER_OVERFLOW' ? 431 : 400;
      this.protocolError(code === 'HPE_HEADER_OVERFLOW' ? 'header_overflow' : 'malformed_request');
      this.log.debug({ dest, peer: ctx.peer, err: err.message }, 'malformed HTTP request inside HBONE tunnel');
      if ((socket as net.Socket).writable) socket.end(`HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n`);
      else socket.destroy();
    });
    return new Promise((resolve) => {
      const finish = () => {
        this.closers.delete(finish);
        agent.destroy();
        server.close();
        tunnel.destroy();
        resolve({ version: 'h1', requests, denied });
      };
      this.closers.add(finish);
      tunnel.once('close', finish);
      server.emit('connection', tunnel);
    });
  }

  private serveH2(tunnel: Duplex, ctx: TunnelContext): Promise<TunnelOutcome> {
    const { destination: dest } = ctx;
    let requests = 0;
    let denied = 0;
    let upstream: http2.ClientHttp2Session | undefined;
    const upstreamSession = (): http2.ClientHttp2Session => {
      if (upstream && !upstream.closed && !upstream.destroyed) return upstream;
      const host = net.isIPv6(dest.ip) ? `[${dest.ip}]` : dest.ip;
      const s = http2.connect(`http://${host}:${dest.port}`, {
        createConnection: () => dial(dest, { localAddress: this.sourceFor(dest.ip) }),
      });
      s.on('error', (err) => this.log.debug({ dest, err: err.message }, 'inbound h2 upstream session error'));
      upstream = s;
      return s;
    };
    const server = http2.createServer({ maxSessionInvalidFrames: 100 });
    server.on('sessionError', (err: Error) => {
      this.protocolError('invalid_frame');
      this.log.debug({ dest, peer: ctx.peer, err: err.message }, 'invalid HTTP/2 inside HBONE tunnel');
    });
    server.on('session', (session: http2.ServerHttp2Session) => {
      session.on('error', () => undefined);
      session.on('frameError', () => this.protocolError('invalid_frame'));
    });
    server.on('stream', (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, _flags: number, rawHeaders: string[]) => {
      requests++;
      const t0 = process.hrtime.bigint();
      stream.on('error', () => undefined);
      const grpc = String(headers['content-type'] ?? '').startsWith('application/grpc');
      // A CONNECT carries no :path; every other request is matched and forwarded with its normalized :path.
      const rawPath = headers[':path'];
      const d = this.decideRequest(ctx, {
        method: String(headers[':method'] ?? ''),
        target: rawPath !== undefined || headers[':method'] !== 'CONNECT' ? String(rawPath ?? '') : undefined,
        host: String(headers[':authority'] ?? headers.host ?? ''),
        headers: headerLists(rawHeaders), // every value of a repeated header, as Envoy's RBAC sees them
      });
      if (d.kind === 'reply') {
        if (d.denied) denied++;
        stream.resume();
        if (!stream.destroyed) {
          if (d.body === '') stream.respond({ ':status': d.status, 'content-length': '0' }, { endStream: true });
          else {
            stream.respond({ ':status': d.status, ...d.headers, 'content-length': String(Buffer.byteLength(d.body)) });
            stream.end(d.body);
          }
        }
        const grpcStatus = !grpc ? undefined : d.flags === 'RBAC' ? '7' : d.flags === 'RL' ? '14' : undefined;
        this.record(ctx, d.status, grpcStatus, t0, d.flags);
        return;
      }
      const path = d.path;
      const out: http2.OutgoingHttpHeaders = {};
      for (const [k, v] of Object.entries(headers)) if (!HOP_BY_HOP.has(k) && v !== undefined) out[k] = v;
      if (rawPath !== undefined) out[':path'] = path;
      let up: http2.ClientHttp2Stream;
      try {
        up = upstreamSession().request(out);
      } catch (err) {
        stream.close(http2.constants.NGHTTP2_REFUSED_STREAM);
        this.log.debug({ dest, err: (err as Error).message }, 'inbound h2 upstream request failed');
        return;
      }
      let grpcStatus: string | undefined;
      let status = 502;
      const reqMeter = new BodyMeter(grpc).watch(stream);
      const resMeter = new BodyMeter(grpc);
      up.on('response', (rh, flags) => {
        status = Number(rh[':status'] ?? 502);
        if (rh['grpc-status'] !== undefined) grpcStatus = String(rh['grpc-status']);
        const resp: http2.OutgoingHttpHeaders = {};
        for (const [k, v] of Object.entries(rh)) if (!HOP_BY_HOP.has(k) && v !== undefined) resp[k] = v;
        if (stream.destroyed) return;
        const endNow = (flags & http2.constants.NGHTTP2_FLAG_END_STREAM) !== 0;
        stream.respond(resp, endNow ? { endStream: true } : { waitForTrailers: true });
      });
      let trailers: http2.IncomingHttpHeaders | undefined;
      up.on('trailers', (t) => {
        trailers = t;
        if (t['grpc-status'] !== undefined) grpcStatus = String(t['grpc-status']);
      });
      stream.on('wantTrailers', () => {
        const t: http2.OutgoingHttpHeaders = {};
        for (const [k, v] of Object.entries(trailers ?? {})) if (!k.startsWith(':') && v !== undefined) t[k] = v;
        try {
          stream.sendTrailers(t);
        } catch {
          stream.close();
        }
      });
      up.on('data', (d: Buffer) => {
        resMeter.add(d);
        if (!stream.destroyed && stream.headersSent && !stream.write(d)) up.pause();
      });
      stream.on('drain', () => up.resume());
      up.on('end', () => {
        if (!stream.destroyed && stream.headersSent) stream.end();
      });
      up.on('close', () => {
        this.record(ctx, status, grpcStatus, t0, up.rstCode && up.rstCode !== http2.constants.NGHTTP2_NO_ERROR ? 'UR' : '-', sizesOf(reqMeter, resMeter));
        if (stream.destroyed) return;
        if (!stream.headersSent) {
          stream.respond({ ':status': 503, 'content-type': 'text/plain' }, { endStream: false });
          stream.end('upstream connect error or disconnect/reset before headers');
        } else if (up.rstCode && up.rstCode !== http2.constants.NGHTTP2_NO_ERROR) stream.close(up.rstCode);
      });
      up.on('error', () => undefined);
      stream.pipe(up);
      stream.on('close', () => {
        if (!up.closed && stream.rstCode && stream.rstCode !== http2.constants.NGHTTP2_NO_ERROR) up.close(stream.rstCode);
      });
    });
    return new Promise((resolve) => {
      const finish = () => {
        this.closers.delete(finish);
        upstream?.destroy();
        server.close();
        tunnel.destroy();
        resolve({ version: 'h2', requests, denied });
      };
      this.closers.add(finish);
      tunnel.once('close', finish);
      server.emit('connection', tunnel);
    });
  }
}
