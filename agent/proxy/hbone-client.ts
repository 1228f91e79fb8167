// Outbound HBONE: pooled mutual-TLS HTTP/2 sessions per (source identity, destination node), one CONNECT stream per proxied connection.
import * as http2 from 'node:http2';
import * as tls from 'node:tls';
import { SmeshError } from '../../core/errors';
import { currentTrustDomainAliases, spiffeIdFromSubjectAltName, TrustDomains, trustDomainOf, type TrustDomainAliasSource } from '../../core/identity/spiffe';
import { LogRateLimiter } from '../telemetry/log-limiter';
import { silentLogger, type Logger } from '../../core/telemetry/logger';
import type { MeshMetrics } from '../telemetry/metrics';
import { HBONE_CONNECTION_WINDOW, HBONE_MAX_CONCURRENT_STREAMS, HBONE_MAX_SESSION_MEMORY_MB, HBONE_STREAM_WINDOW } from './hbone-settings';
import { formatAuthority, type HostPort, type IdentityProvider } from './types';

export const HBONE_IDLE_TIMEOUT_MS = 5 * 60_000;

export interface HboneClientOptions {
  readonly identities: IdentityProvider;
  readonly metrics?: MeshMetrics;
  readonly logger?: Logger;
  /** Close sessions that carried no stream for this long (default 5 min, as ztunnel). */
  readonly idleTimeoutMs?: number;
  /** TLS + HTTP/2 handshake, and CONNECT response, deadline. */
  readonly connectTimeoutMs?: number;
  /** Open another session to the same node once this many streams are active on each. */
  readonly maxStreamsPerSession?: number;
  /**
   * Trust domains accepted besides the mesh's own (that of the expected server id), as Istio's MeshConfig
   * `trustDomainAliases`: a server may present the expected identity under an alias. Any other trust domain is refused.
   * A function is asked for each new session (a MeshConfig change applies without a restart).
   */
  readonly trustDomainAliases?: TrustDomainAliasSource;
  /** Limits the info lines about refused server certificates (default 10 per 10 s; the rest only counted). */
  readonly failureLogLimiter?: LogRateLimiter;
  /** How long a refused connect is retried (default 3 s; 0 = not at all). */
  readonly refusedRetryBudgetMs?: number;
}

export interface HboneOpenRequest {
  /** SPIFFE id of the source workload; its certificate is presented. */
  readonly sourceId: string;
  /** The destination node's HBONE address (port 15008 in production). */
  readonly node: HostPort;
  /** The URI SAN the node's certificate must carry (spiffe://<td>/smesh/node/<name>). */
  readonly expectedServerId: string;
  /** CONNECT :authority, the destination "ip:port". */
  readonly authority: string;
  /** Extra request headers (forwarded, baggage, traceparent). */
  readonly headers?: Readonly<Record<string, string>>;
  /** DSCP for the tunnel's socket (native engine only: its sessions are pooled per DSCP; the JS client ignores it). */
  readonly dscp?: number;
}

interface PooledSession {
  readonly key: string;
  readonly session: http2.ClientHttp2Session;
  readonly ready: Promise<void>;
  active: number;
  dead: boolean;
  /** A PING is checking whether the session still answers (see probe). */
  probing?: boolean;
  idleTimer?: NodeJS.Timeout;
  /** The TLS socket under the session (node:http2 hands out only a proxy that may not be destroyed). */
  tlsSocket?: () => tls.TLSSocket | undefined;
  /** Armed when the session is closed: a socket still open then is destroyed (see reapIfStuck). */
  reaper?: NodeJS.Timeout;
  /** The session emitted 'close'. */
  gone?: boolean;
}

function connectError(req: HboneOpenRequest, err: NodeJS.ErrnoException): SmeshError {
  const where = `${formatAuthority(req.node.host, req.node.port)} (${req.expectedServerId})`;
  const code = err.code ?? '';
  if (code.startsWith('ERR_TLS') || code.startsWith('ERR_SSL') || /certificate|SSL|TLS|SPIFFE/i.test(err.message) || code.includes('CERT')) {
    return new SmeshError('SMESH_ERR_TLS', `HBONE TLS handshake with ${where} failed: ${err.message}; check both agents trust the same mesh root`, { cause: err });
  }
  return new SmeshError(
    'SMESH_ERR_CONNECT',
    `cannot open HBONE connection to ${where}: ${code || err.message}; is the agent running there, or is a firewall/NetworkPolicy blocking port ${req.node.port}?`,
    { cause: err },
  );
}

/** The outbound HBONE connector with its session pool. */
export class HboneClient {
  private readonly pool = new Map<string, PooledSession[]>();
  private readonly log: Logger;
  private readonly idleTimeoutMs: number;
  private readonly connectTimeoutMs: number;
  private readonly maxStreams: number;
  private readonly failureLog: LogRateLimiter;
  private closed = false;

  constructor(private readonly opts: HboneClientOptions) {
    this.log = opts.logger ?? silentLogger();
    this.idleTimeoutMs = opts.idleTimeoutMs ?? HBONE_IDLE_TIMEOUT_MS;
    this.connectTimeoutMs = opts.connectTimeoutMs ?? 10_000;
    this.maxStreams = opts.maxStreamsPerSession ?? HBONE_MAX_CONCURRENT_STREAMS;
    this.failureLog = opts.failureLogLimiter ?? new LogRateLimiter(10, 10_000);
    // A renewed certificate is used by new sessions; retire pooled ones (their streams finish).
    opts.identities.onRotate?.((id) => {
      const prefix = `${id}|`;
      for (const [key, list] of this.pool) if (key.startsWith(prefix)) for (const e of [...list]) this.discard(e);
    });
  }

  /** Number of pooled sessions (all keys). */
  sessionCount(): number {
    let n = 0;
    for (const list of this.pool.values()) n += list.length;
    return n;
  }

  /**
   * Opens a CONNECT stream and resolves once the server answered 200; the stream is then a
   * Duplex carrying the destination's bytes. Rejects with SMESH_ERR_HBONE naming the status
   * otherwise, SMESH_ERR_TLS / SMESH_ERR_CONNECT when the session cannot be established.
   */
  async open(req: HboneOpenRequest): Promise<http2.ClientHttp2Stream> {
    if (this.closed) throw new SmeshError('SMESH_ERR_HBONE', 'HBONE client is closed');
    const entry = await this.sessionRetryingRefused(req);
    entry.active++;
    if (entry.idleTimer) {
      clearTimeout(entry.idleTimer);
      entry.idleTimer = undefined;
    }
    let stream: http2.ClientHttp2Stream;
    try {
      stream = entry.session.request({ ':method': 'CONNECT', ':authority': req.authority, ...req.headers }, { endStream: false });
    } catch (err) {
      this.release(entry);
      this.discard(entry);
      throw new SmeshError('SMESH_ERR_HBONE', `cannot open HBONE stream to ${req.authority}: ${(err as Error).message}`, { cause: err });
    }
    this.opts.metrics?.hboneActiveStreams.inc({ direction: 'outbound' });
    stream.once('close', () => {
      this.opts.metrics?.hboneActiveStreams.dec({ direction: 'outbound' });
      this.release(entry);
    });
    return new Promise<http2.ClientHttp2Stream>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.discard(entry);
        this.probe(entry, req);
        fail(new SmeshError('SMESH_ERR_HBONE', `HBONE CONNECT ${req.authority} via ${req.node.host}:${req.node.port} got no response in ${this.connectTimeoutMs} ms`));
      }, this.connectTimeoutMs);
      timer.unref();
      const cleanup = () => {
        clearTimeout(timer);
        stream.off('response', onResponse);
        stream.off('error', onError);
        stream.off('close', onClose);
      };
      const fail = (err: SmeshError) => {
        cleanup();
        stream.on('error', () => undefined);
        if (!stream.destroyed) stream.close(http2.constants.NGHTTP2_CANCEL);
        this.opts.metrics?.hboneStreams.inc({ direction: 'outbound', result: 'error' });
        reject(err);
      };
      const onResponse = (headers: http2.IncomingHttpHeaders & http2.IncomingHttpStatusHeader) => {
        const status = Number(headers[':status']);
        if (status === 200) {
          cleanup();
          this.opts.metrics?.hboneStreams.inc({ direction: 'outbound', result: '200' });
          resolve(stream);
          return;
        }
        cleanup();
        stream.on('error', () => undefined);
        stream.resume();
        if (!stream.destroyed) stream.close(http2.constants.NGHTTP2_CANCEL);
        this.opts.metrics?.hboneStreams.inc({ direction: 'outbound', result: String(status) });
        reject(new SmeshError('SMESH_ERR_HBONE', `HBONE CONNECT ${req.authority} via ${req.node.host}:${req.node.port} was answered with status ${status}`));
      };
      const onError = (err: Error) => fail(new SmeshError('SMESH_ERR_HBONE', `HBONE CONNECT ${req.authority} via ${req.node.host}:${req.node.port} failed: ${err.message}`, { cause: err }));
      const onClose = () => fail(new SmeshError('SMESH_ERR_HBONE', `HBONE CONNECT ${req.authority} via ${req.node.host}:${req.node.port} was closed before a response (rst code ${stream.rstCode})`));
      stream.once('response', onResponse);
      stream.once('error', onError);
      stream.once('close', onClose);
    });
  }

  /**
   * A session to the destination; a refused connect (its agent restarting: per-pod listeners come back with it) is
   * tried again with backoff for up to `refusedRetryBudgetMs` (default 3 s) instead of failing the client at once.
   */
  private async sessionRetryingRefused(req: HboneOpenRequest): Promise<PooledSession> {
    const budget = this.opts.refusedRetryBudgetMs ?? 3_000;
    for (let waited = 0, delay = 25; ; delay = Math.min(delay * 2, 400)) {
      try {
        return await this.sessionFor(req);
      } catch (err) {
        const cause = (err as { cause?: NodeJS.ErrnoException }).cause;
        if (this.closed || cause?.code !== 'ECONNREFUSED' || waited >= budget) throw err;
      }
      await new Promise((r) => setTimeout(r, delay));
      waited += delay;
      this.opts.metrics?.hboneConnectRetries.inc({ reason: 'refused' });
    }
  }

  /** Closes every pooled session (streams on them are reset). */
  close(): void {
    this.closed = true;
    for (const list of this.pool.values()) for (const e of list) this.discard(e, true);
    this.pool.clear();
  }

  private async sessionFor(req: HboneOpenRequest): Promise<PooledSession> {
    const key = `${req.sourceId}|${formatAuthority(req.node.host, req.node.port)}|${req.expectedServerId}`;
    const list = this.pool.get(key);
    const usable = list?.find((e) => !e.dead && e.active < this.maxStreams);
    const entry = usable ?? (await this.connect(key, req));
    await entry.ready;
    if (entry.dead) throw new SmeshError('SMESH_ERR_HBONE', `HBONE session to ${req.node.host}:${req.node.port} closed before use`);
    return entry;
  }

  private async connect(key: string, req: HboneOpenRequest): Promise<PooledSession> {
    const ids = this.opts.identities;
    const cert = ids.get(req.sourceId) ?? (ids.certificate ? await ids.certificate(req.sourceId) : undefined);
    if (!cert) throw new SmeshError('SMESH_ERR_IDENTITY', `no certificate for source identity ${req.sourceId}`);
    // Re-check the pool: another open() may have connected while we awaited the certificate.
    const again = this.pool.get(key)?.find((e) => !e.dead && e.active < this.maxStreams);
    if (again) return again;

    const expected = req.expectedServerId;
    const trustDomains = new TrustDomains(trustDomainOf(expected) ?? '', currentTrustDomainAliases(this.opts.trustDomainAliases));
    const tlsOptions: tls.ConnectionOptions = {
      host: req.node.host,
      port: req.node.port,
      key: cert.keyPem,
      cert: cert.chainPem,
      ca: ids.trustBundlePem(),
      ALPNProtocols: ['h2'],
      minVersion: 'TLSv1.3',
      maxVersion: 'TLSv1.3',
      servername: '', // HBONE sends no SNI; an empty servername makes Node skip the extension
      rejectUnauthorized: true,
      checkServerIdentity: (_host, peer) => {
        const got = spiffeIdFromSubjectAltName(peer.subjectaltname);
        if (got !== undefined && trustDomains.matches(got, expected)) return undefined;
        const foreign = got !== undefined && !trustDomains.accepts(got);
        this.serverRefused(foreign ? 'foreign_trust_domain' : got === undefined ? 'no_spiffe_id' : 'wrong_identity', req, got);
        const why = foreign ? ` (trust domain ${trustDomainOf(got)} is neither the mesh's nor an alias)` : '';
        return Object.assign(new Error(`HBONE server certificate SPIFFE id is ${got ?? 'missing'}${why}, expected ${expected}`), { code: 'ERR_TLS_CERT_ALTNAME_INVALID' });
      },
    };
    let raw: tls.TLSSocket | undefined;
    const session = http2.connect(`https://${formatAuthority(req.node.host, req.node.port)}`, {
      settings: { initialWindowSize: HBONE_STREAM_WINDOW, enablePush: false },
      maxSessionMemory: HBONE_MAX_SESSION_MEMORY_MB,
      createConnection: () => (raw = tls.connect(tlsOptions)),
    });
    const entry: PooledSession = {
      key,
      session,
      active: 0,
      dead: false,
      ready: new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => {
          session.destroy();
          reject(new SmeshError('SMESH_ERR_CONNECT', `HBONE connection to ${req.node.host}:${req.node.port} timed out after ${this.connectTimeoutMs} ms; is port ${req.node.port} reachable?`));
        }, this.connectTimeoutMs);
        timer.unref();
        session.once('connect', () => {
          clearTimeout(timer);
          // A session discarded while still connecting (a certificate rotation closes the pool) still reports
          // 'connect', with its socket already gone: that open fails, the agent does not.
          const socket = session.socket as tls.TLSSocket | undefined;
          if (!socket || session.closed || session.destroyed || entry.dead) {
            session.destroy();
            reject(new SmeshError('SMESH_ERR_CONNECT', `HBONE connection to ${req.node.host}:${req.node.port} was closed while connecting (certificate rotation)`));
            return;
          }
          const alpn = socket.alpnProtocol;
          if (alpn !== 'h2') {
            session.destroy();
            reject(new SmeshError('SMESH_ERR_TLS', `HBONE server ${req.node.host}:${req.node.port} did not negotiate ALPN h2 (got ${alpn || 'none'})`));
            return;
          }
          try {
            session.setLocalWindowSize(HBONE_CONNECTION_WINDOW);
          } catch {
            /* window is an optimisation */
          }
          resolve();
        });
        session.once('error', (err: NodeJS.ErrnoException) => {
          clearTimeout(timer);
          reject(connectError(req, err));
        });
        session.once('close', () => {
          clearTimeout(timer);
          reject(new SmeshError('SMESH_ERR_CONNECT', `HBONE connection to ${req.node.host}:${req.node.port} closed during the handshake`));
        });
      }),
    };
    entry.ready.catch(() => this.discard(entry, true));
    session.on('error', (err) => this.log.debug({ peerNode: formatAuthority(req.node.host, req.node.port), err: err.message }, 'HBONE client session error'));
    session.on('goaway', () => this.discard(entry));
    entry.tlsSocket = () => raw;
    session.on('close', () => {
      entry.gone = true;
      if (entry.reaper) clearTimeout(entry.reaper);
      if (!entry.dead) this.discard(entry);
      this.opts.metrics?.hboneSessions.dec({ direction: 'outbound' });
    });
    this.opts.metrics?.hboneSessions.inc({ direction: 'outbound' });
    let list = this.pool.get(key);
    if (!list) this.pool.set(key, (list = []));
    list.push(entry);
    this.log.debug({ peerNode: formatAuthority(req.node.host, req.node.port), sourceId: req.sourceId }, 'HBONE session opening');
    return entry;
  }

  /**
   * A CONNECT got no answer in time: the session is out of the pool, and a PING tells whether it still answers.
   * node:http2 keeps a session it has shut after a protocol error (it sent a GOAWAY, reads nothing more, tells nobody,
   * and its streams never close): such a session is destroyed when the PING goes unanswered; a live one (a slow
   * destination) keeps serving its streams and is closed after the last.
   */
  private probe(entry: PooledSession, req: HboneOpenRequest): void {
    if (entry.probing || entry.session.destroyed) return;
    entry.probing = true;
    const unresponsive = () => {
      this.opts.metrics?.hboneSessionErrors.inc({ direction: 'outbound', reason: 'unresponsive' });
      const suppressed = this.failureLog.take();
      if (suppressed !== undefined)
        this.log.info({ peerNode: formatAuthority(req.node.host, req.node.port), ...(suppressed > 0 ? { suppressed } : {}) }, 'HBONE session closed: no answer to a CONNECT nor to a PING');
      this.discard(entry, true);
    };
    const timer = setTimeout(unresponsive, this.connectTimeoutMs);
    timer.unref();
    try {
      entry.session.ping((err) => {
        clearTimeout(timer);
        entry.probing = false;
        if (err && !entry.session.destroyed) unresponsive();
      });
    } catch {
      clearTimeout(timer);
      unresponsive();
    }
  }

  /** Counts and logs (rate-limited) a server certificate refused for its identity. */
  private serverRefused(reason: 'foreign_trust_domain' | 'no_spiffe_id' | 'wrong_identity', req: HboneOpenRequest, got: string | undefined): void {
    this.opts.metrics?.hboneHandshakeFailures.inc({ direction: 'outbound', reason });
    const suppressed = this.failureLog.take();
    if (suppressed === undefined) return;
    this.log.info(
      { reason, peerNode: formatAuthority(req.node.host, req.node.port), expected: req.expectedServerId, got, ...(suppressed > 0 ? { suppressed } : {}) },
      'HBONE server certificate refused',
    );
  }

  private release(entry: PooledSession): void {
    entry.active = Math.max(0, entry.active - 1);
    if (entry.dead) {
      // Out of the pool already (GOAWAY, rotation, no answer): closed once its last stream is gone, never left open.
      if (entry.active === 0) this.discard(entry);
      return;
    }
    if (entry.active > 0) return;
    if (entry.idleTimer) clearTimeout(entry.idleTimer);
    entry.idleTimer = setTimeout(() => {
      if (entry.active === 0) this.discard(entry, true);
    }, this.idleTimeoutMs);
    entry.idleTimer.unref();
  }

  /** Removes a session from the pool; `hard` also closes it (else in-flight streams finish). */
  private discard(entry: PooledSession, hard = false): void {
    if (!entry.dead) {
      entry.dead = true;
      const list = this.pool.get(entry.key);
      if (list) {
        const i = list.indexOf(entry);
        if (i >= 0) list.splice(i, 1);
        if (list.length === 0) this.pool.delete(entry.key);
      }
    }
    if (entry.idleTimer) clearTimeout(entry.idleTimer);
    if (hard) entry.session.destroy();
    else if (entry.active === 0 && !entry.session.closed) entry.session.close();
    // Only once no stream is left: a peer's GOAWAY also closes the session while its streams finish (a drain).
    if (entry.session.destroyed || (entry.session.closed && entry.active === 0)) this.reapIfStuck(entry);
  }

  /**
   * A closed session whose peer vanished (a link down, a node gone without a FIN) does not finish closing: node:http2
   * waits for its last frames (GOAWAY) to be written, which TCP retries for ~15 min, and a PING probing it was
   * cancelled by the close. After the connect timeout such a session is unresponsive: counted, and its socket destroyed.
   */
  private reapIfStuck(entry: PooledSession): void {
    if (entry.reaper || entry.gone) return;
    entry.reaper = setTimeout(() => {
      if (entry.gone || (!entry.session.destroyed && entry.active > 0)) return;
      this.opts.metrics?.hboneSessionErrors.inc({ direction: 'outbound', reason: 'unresponsive' });
      const suppressed = this.failureLog.take();
      if (suppressed !== undefined)
        this.log.info({ ...(suppressed > 0 ? { suppressed } : {}) }, `HBONE session closed: still not closed ${this.connectTimeoutMs} ms after its GOAWAY, its socket is destroyed`);
      entry.tlsSocket?.()?.destroy();
    }, this.connectTimeoutMs);
    entry.reaper.unref();
  }
}
