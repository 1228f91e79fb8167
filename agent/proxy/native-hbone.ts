// Native HBONE data plane, agent side: certificates pushed into the addon's engine, the outbound connector over it, and the relay handoff of a socket to an engine stream.
import * as net from 'node:net';
import type { Duplex } from 'node:stream';
import { SmeshError } from '../../core/errors';
import { currentTrustDomainAliases, TrustDomains, trustDomainOf, type TrustDomainAliasSource } from '../../core/identity/spiffe';
import type { UsableCert } from '../identity/manager';
import { socketFd } from '../native/datapath';
import type { HboneEngine, HboneOpenResult, HboneSessionEvent, HboneStreamQos, HboneStreamResult } from '../native/hbone-types';
import { LogRateLimiter } from '../telemetry/log-limiter';
import { silentLogger, type Logger } from '../../core/telemetry/logger';
import type { HboneHandshakeFailure, MeshMetrics } from '../telemetry/metrics';
import type { HboneOpenRequest } from './hbone-client';
import { LiveCounters } from './native-counters';
import { NATIVE_ABORT, type ByteCounters, type Relay, type RelayOutcome, type RelayResult } from './relay';
import { canSplice, detachCloseListeners, takeBuffered } from './splice-relay';
import { formatAuthority, type IdentityProvider } from './types';

/** How long an outbound open keeps trying a destination that refuses the connection (its agent restarting). */
export const REFUSED_RETRY_BUDGET_MS = 3_000;
const REFUSED_RETRY_FIRST_MS = 25;
const REFUSED_RETRY_MAX_MS = 400;

function isRefused(res: HboneOpenResult): boolean {
  return !res.ok && res.kind === 'connect' && /refused/i.test(res.message);
}

/** How often live engine streams' byte counts are copied into their ByteCounters. */
export const ENGINE_COUNTER_FLUSH_MS = 1000;

/**
 * Keeps the engine's certificates and trust anchors equal to the identity manager's: a certificate is pushed the first
 * time a session needs it and again on every rotation; trust anchors at start and on every change.
 */
export class EngineIdentities {
  private readonly pushed = new Map<string, UsableCert>();

  constructor(
    private readonly engine: HboneEngine,
    private readonly ids: IdentityProvider,
  ) {
    engine.setTrustAnchors(ids.trustBundlePem());
    ids.onTrustBundleChange?.((pem) => engine.setTrustAnchors(pem));
    ids.onRotate?.((id, cert) => {
      if (this.pushed.has(id)) this.push(id, cert);
    });
  }

  /** Whether the engine now holds `id`'s current certificate (false: none issued yet). */
  ensure(id: string): boolean {
    const cert = this.ids.get(id);
    if (!cert) return false;
    if (this.pushed.get(id) !== cert) this.push(id, cert);
    return true;
  }

  /** As ensure(), issuing the certificate first when the provider can. */
  async ensureIssued(id: string): Promise<boolean> {
    if (this.ensure(id)) return true;
    if (!this.ids.certificate) return false;
    const cert = await this.ids.certificate(id);
    this.push(id, cert);
    return true;
  }

  private push(id: string, cert: UsableCert): void {
    this.engine.setIdentity(id, cert.chainPem, cert.keyPem);
    this.pushed.set(id, cert);
  }
}

const ENGINE_HANDSHAKE_REASON: Readonly<Record<Extract<HboneSessionEvent, { type: 'handshake_failed' }>['reason'], HboneHandshakeFailure>> = {
  bad_certificate: 'bad_chain',
  no_certificate: 'no_client_cert',
  not_tls: 'not_tls',
  tls_error: 'tls',
  timeout: 'timeout',
  no_alpn_h2: 'no_alpn_h2',
};

/** Counts and logs (rate-limited) what the engine reports about sessions, both directions. */
export function recordEngineSessionEvent(ev: HboneSessionEvent, metrics: MeshMetrics | undefined, log: Logger, limiter: LogRateLimiter): void {
  if (ev.type === 'handshake_failed') {
    const reason = ENGINE_HANDSHAKE_REASON[ev.reason] ?? 'tls';
    metrics?.hboneHandshakeFailures.inc({ direction: ev.direction, reason });
    const suppressed = limiter.take();
    if (suppressed !== undefined) log.info({ reason, direction: ev.direction, peerAddress: ev.remote, err: ev.detail, ...(suppressed > 0 ? { suppressed } : {}) }, 'HBONE handshake refused');
    return;
  }
  if (ev.reason === 'protocol_error' || ev.reason === 'rapid_reset' || ev.reason === 'unresponsive') {
    metrics?.hboneSessionErrors.inc({ direction: ev.direction, reason: ev.reason });
    const suppressed = limiter.take();
    if (suppressed !== undefined)
      log.info({ reason: ev.reason, direction: ev.direction, peerAddress: ev.remote, detail: ev.detail, ...(suppressed > 0 ? { suppressed } : {}) }, 'HBONE session closed');
  }
}

let liveCounters: LiveCounters | undefined;
let countersEngine: HboneEngine | undefined;
/** Per-stream counts oriented as each relay's a→b / b→a (set when the relay is attached). */
const orientation = new Map<number, boolean>();

function engineCounters(engine: HboneEngine): LiveCounters {
  if (!liveCounters || countersEngine !== engine) {
    countersEngine = engine;
    liveCounters = new LiveCounters(() => {
      const out = new Map<number, { aToB: number; bToA: number }>();
      for (const [id, c] of engine.counters()) {
        const socketIsA = orientation.get(id);
        if (socketIsA === undefined) continue;
        out.set(id, socketIsA ? { aToB: c.sent, bToA: c.received } : { aToB: c.received, bToA: c.sent });
      }
      return out;
    }, ENGINE_COUNTER_FLUSH_MS);
  }
  return liveCounters;
}

function toRelayResult(r: HboneStreamResult, socketIsA: boolean): RelayResult {
  const aToB = socketIsA ? r.sent : r.received;
  const bToA = socketIsA ? r.received : r.sent;
  let outcome: RelayOutcome;
  if (r.outcome === 'eof') outcome = 'closed';
  else if (r.outcome === 'aborted') outcome = 'aborted';
  else outcome = (r.side === 'fd') === socketIsA ? 'reset_a' : 'reset_b';
  const error =
    r.outcome === 'reset' || r.outcome === 'error'
      ? Object.assign(
          new Error(
            `${r.side === 'fd' ? 'socket' : 'HBONE stream'} ${r.outcome === 'reset' ? 'was reset' : 'failed'}${r.h2Code !== undefined ? ` (HTTP/2 code ${r.h2Code})` : ''}${r.errno !== undefined ? ` (errno ${r.errno})` : ''}`,
          ),
          { errno: r.errno },
        )
      : undefined;
  return { aToB, bToA, outcome, error };
}

/**
 * Hands a connected plain TCP socket to an engine stream: the engine relays it ⇄ the tunnel until both directions end
 * (inbound streams are answered 200 first). `socketIsA`: the socket is the relay's side a (outbound: the app's
 * connection; inbound: false, the tunnel is a and the pod's connection b), which orients the counts like relay().
 * The JS socket is destroyed at once; its 'close' listeners run when the relay ends. Throws if the socket cannot be
 * handed over (canSplice) — the caller falls back to attachPair + the JS relay.
 */
export function engineRelay(engine: HboneEngine, stream: number, sock: net.Socket, socketIsA: boolean, counters?: ByteCounters, qos?: HboneStreamQos): Relay {
  if (!canSplice(sock)) throw new SmeshError('SMESH_ERR_NATIVE', 'engineRelay needs a connected plain TCP socket with nothing queued for writing');
  const buffered = takeBuffered(sock);
  let done: Promise<HboneStreamResult>;
  try {
    done = engine.attach(stream, socketFd(sock), buffered.length ? Buffer.concat(buffered) : undefined, qos);
  } catch (err) {
    for (const c of buffered) sock.unshift(c);
    throw err;
  }
  const closeListeners = detachCloseListeners(sock);
  sock.destroy();
  orientation.set(stream, socketIsA);
  const live = engineCounters(engine);
  const state = live.track(stream, counters);
  const result = done.then((res) => {
    const r = toRelayResult(res, socketIsA);
    live.finish(stream, r.aToB, r.bToA);
    orientation.delete(stream);
    for (const l of closeListeners) l(r.outcome !== 'closed');
    return r;
  });
  return {
    done: result,
    reset() {
      engine.abort(stream);
    },
    get aToB() {
      live.refresh(stream);
      return state.aToB;
    },
    get bToA() {
      live.refresh(stream);
      return state.bToA;
    },
  };
}

/**
 * An engine stream as a Duplex for JavaScript consumers (the HTTP paths): the engine bridges the tunnel to one end of
 * a socketpair and this is the other. A reset of the Duplex (relay abortSide) resets the stream; a tunnel reset
 * destroys the Duplex with an ECONNRESET error (a socketpair can only carry FIN).
 */
export function engineDuplex(engine: HboneEngine, stream: number): net.Socket {
  const { fd, done } = engine.attachPair(stream);
  const sock = new net.Socket({ fd, readable: true, writable: true, allowHalfOpen: true });
  (sock as unknown as Record<symbol, () => void>)[NATIVE_ABORT] = () => engine.abort(stream);
  void done.then((res) => {
    if ((res.outcome === 'reset' || res.outcome === 'error') && res.side === 'tunnel' && !sock.destroyed) {
      sock.destroy(Object.assign(new Error(`HBONE stream ${res.outcome === 'reset' ? 'reset by the peer' : 'failed'}`), { code: 'ECONNRESET' }));
    }
  });
  return sock;
}

export interface NativeHboneClientOptions {
  readonly engine: HboneEngine;
  readonly identities: EngineIdentities;
  readonly metrics?: MeshMetrics;
  readonly logger?: Logger;
  /** Trust domains accepted besides the expected server's (MeshConfig trustDomainAliases); a function is asked per stream. */
  readonly trustDomainAliases?: TrustDomainAliasSource;
  readonly failureLogLimiter?: LogRateLimiter;
  /** How long a refused connect is retried (default REFUSED_RETRY_BUDGET_MS; 0 = not at all). */
  readonly refusedRetryBudgetMs?: number;
}

/** The outbound HBONE connector over the native engine (pooling, TLS and HTTP/2 live in the engine). */
export class NativeHboneClient {
  private readonly log: Logger;
  private readonly failureLog: LogRateLimiter;

  constructor(private readonly opts: NativeHboneClientOptions) {
    this.log = opts.logger ?? silentLogger();
    this.failureLog = opts.failureLogLimiter ?? new LogRateLimiter(10, 10_000);
  }

  /** A CONNECT stream as a Duplex (HTTP paths). Rejects like HboneClient.open. */
  async open(req: HboneOpenRequest): Promise<Duplex> {
    return engineDuplex(this.opts.engine, await this.openStream(req));
  }

  /** Opens a CONNECT stream in the engine and resolves with its id once the server answered 200. */
  async openStream(req: HboneOpenRequest): Promise<number> {
    if (!(await this.opts.identities.ensureIssued(req.sourceId))) throw new SmeshError('SMESH_ERR_IDENTITY', `no certificate for source identity ${req.sourceId}`);
    const expected = req.expectedServerId;
    const td = trustDomainOf(expected) ?? '';
    const suffix = expected.slice(`spiffe://${td}`.length);
    const accept = [
      expected,
      ...currentTrustDomainAliases(this.opts.trustDomainAliases)
        .filter((a) => a !== td)
        .map((a) => `spiffe://${a}${suffix}`),
    ];
    const open = () =>
      this.opts.engine.open({
        sourceId: req.sourceId,
        host: req.node.host,
        port: req.node.port,
        acceptServerIds: accept,
        authority: req.authority,
        headers: Object.entries(req.headers ?? {}),
        ...(req.dscp !== undefined ? { dscp: req.dscp } : {}),
      });
    let res = await open();
    // A refused connect is a destination agent restarting (its per-pod listeners come back with it): tried again,
    // with backoff, for up to REFUSED_RETRY_BUDGET_MS, instead of resetting the client at once.
    for (
      let waited = 0, delay = REFUSED_RETRY_FIRST_MS;
      !res.ok && isRefused(res) && waited < (this.opts.refusedRetryBudgetMs ?? REFUSED_RETRY_BUDGET_MS);
      delay = Math.min(delay * 2, REFUSED_RETRY_MAX_MS)
    ) {
      await new Promise((r) => setTimeout(r, delay));
      waited += delay;
      this.opts.metrics?.hboneConnectRetries.inc({ reason: 'refused' });
      res = await open();
    }
    if (res.ok) {
      this.opts.metrics?.hboneStreams.inc({ direction: 'outbound', result: '200' });
      return res.stream;
    }
    throw this.failure(req, res);
  }

  /** Hands the app's socket to a stream (see engineRelay), with the connection's relay QoS (TrafficShaping). */
  relay(stream: number, sock: net.Socket, counters?: ByteCounters, qos?: HboneStreamQos): Relay {
    return engineRelay(this.opts.engine, stream, sock, true, counters, qos);
  }

  /** Resets a stream opened but not used (its client went away meanwhile). */
  abandon(stream: number): void {
    this.opts.engine.abort(stream);
  }

  close(): void {
    /* sessions belong to the engine; the agent closes it (closeAll) at shutdown */
  }

  private failure(req: HboneOpenRequest, res: Exclude<HboneOpenResult, { ok: true }>): SmeshError {
    const where = `${formatAuthority(req.node.host, req.node.port)} (${req.expectedServerId})`;
    switch (res.kind) {
      case 'status':
        this.opts.metrics?.hboneStreams.inc({ direction: 'outbound', result: String(res.status) });
        return new SmeshError('SMESH_ERR_HBONE', `HBONE CONNECT ${req.authority} via ${formatAuthority(req.node.host, req.node.port)} was answered with status ${res.status}`);
      case 'identity': {
        const trust = new TrustDomains(trustDomainOf(req.expectedServerId) ?? '', currentTrustDomainAliases(this.opts.trustDomainAliases));
        const reason = res.peerId === undefined ? 'no_spiffe_id' : trust.accepts(res.peerId) ? 'wrong_identity' : 'foreign_trust_domain';
        this.opts.metrics?.hboneHandshakeFailures.inc({ direction: 'outbound', reason });
        const suppressed = this.failureLog.take();
        if (suppressed !== undefined)
          this.log.info(
            { reason, peerNode: formatAuthority(req.node.host, req.node.port), expected: req.expectedServerId, got: res.peerId, ...(suppressed > 0 ? { suppressed } : {}) },
            'HBONE server certificate refused',
          );
        this.opts.metrics?.hboneStreams.inc({ direction: 'outbound', result: 'error' });
        return new SmeshError('SMESH_ERR_TLS', `HBONE TLS handshake with ${where} failed: server certificate SPIFFE id is ${res.peerId ?? 'missing'}, expected ${req.expectedServerId}`);
      }
      case 'tls':
        this.opts.metrics?.hboneStreams.inc({ direction: 'outbound', result: 'error' });
        return new SmeshError('SMESH_ERR_TLS', `HBONE TLS handshake with ${where} failed: ${res.message}; check both agents trust the same mesh root`);
      case 'connect':
      case 'timeout':
        this.opts.metrics?.hboneStreams.inc({ direction: 'outbound', result: 'error' });
        return new SmeshError(
          'SMESH_ERR_CONNECT',
          `cannot open HBONE connection to ${where}: ${res.message}; is the agent running there, or is a firewall/NetworkPolicy blocking port ${req.node.port}?`,
        );
      case 'no_certificate':
        return new SmeshError('SMESH_ERR_IDENTITY', `no certificate for source identity ${req.sourceId}: ${res.message}`);
      default:
        this.opts.metrics?.hboneStreams.inc({ direction: 'outbound', result: 'error' });
        return new SmeshError('SMESH_ERR_HBONE', `HBONE CONNECT ${req.authority} via ${formatAuthority(req.node.host, req.node.port)} failed: ${res.message}`);
    }
  }
}
