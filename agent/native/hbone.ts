// Typed facade over the addon's native HBONE engine (native/hbone*.cc): implements HboneEngine (hbone-types.ts) on raw functions, mapping ids to promises and batched native events to handlers.
import { SmeshError } from '../../core/errors';
import { loadRawNative, type RawNative } from './raw';
import type {
  HboneByteLimit,
  HboneEngine,
  HboneEngineHandlers,
  HboneEngineOptions,
  HboneEngineStats,
  HboneOpenRequest,
  HboneOpenResult,
  HboneQosState,
  HboneSessionEvent,
  HboneStreamQos,
  HboneStreamRequest,
  HboneStreamResult,
} from './hbone-types';

/** One record of a native event batch. */
export type RawHboneEvent =
  | { t: 'open'; id: number; ok: boolean; kind?: string; message?: string; status?: number; peerId?: string }
  | {
      t: 'stream';
      id: number;
      session: number;
      peerId?: string;
      authority: string;
      /** name, value, name, value, ... */
      headers: string[];
      localAddress: string;
      localPort: number;
      remoteAddress: string;
      remotePort: number;
    }
  /** done: an attached stream's relay ended; ended: a stream that was never attached ended (peer reset, timeout, session closed). */
  | { t: 'done' | 'ended'; id: number; sent: number; received: number; outcome: HboneStreamResult['outcome']; side?: 'tunnel' | 'fd'; h2Code?: number; errno?: number }
  | { t: 'session'; id: number; type: HboneSessionEvent['type']; direction: 'inbound' | 'outbound'; reason: string; remote: string; detail?: string };

/** The addon's raw HBONE surface (absent from addons built before it). */
export interface RawHbone {
  /** Installs the one event callback; before the engine starts. */
  hboneInit(callback: (events: RawHboneEvent[]) => void): void;
  hboneConfigure(options: HboneEngineOptions): void;
  hboneSetIdentity(id: string, chainPem: string, keyPem: string): void;
  hboneRemoveIdentity(id: string): boolean;
  hboneSetTrustAnchors(pem: string): void;
  /** Returns the stream id; the result arrives as an 'open' event. */
  hboneOpen(sourceId: string, host: string, port: number, acceptIds: string[], authority: string, headers: string[], dscp?: number): number;
  hboneServe(fd: number, certId: string): number;
  hboneRespond(stream: number, status: number): boolean;
  /** false: the stream is unknown or over (the caller's socket is then set to reset when closed). */
  hboneAttach(stream: number, fd: number, pending?: Buffer, qos?: RawStreamQos): boolean;
  /** The caller's end of a socketpair, -1 when the stream is unknown or over. */
  hboneAttachPair(stream: number, qos?: RawStreamQos): number;
  hboneAbort(stream: number): boolean;
  hboneCloseAll(): void;
  hboneDrain(): void;
  /** [id, sent, received] triples of attached streams. */
  hboneCounters(): Float64Array;
  hboneStats(): { sessionsIn: number; sessionsOut: number; streamsIn: number; streamsOut: number; bufferedBytes: number; running: boolean };
  /** Keeps the Node event loop alive (true) while events are awaited. */
  hboneRef(keepAlive: boolean): void;
  hboneQosState?(): HboneQosState;
  hboneChargeLimits?(limits: RawByteLimit[], bytes: number): number;
  /** Test entry point: the engine's QoS classes on a virtual clock (see native/hbone.cc QosSimulate). */
  hboneQosSimulate?(spec: QosSimulation): unknown;
}

/** QoS as the addon takes it: priority as its class index (0 latency, 1 normal, 2 bulk). */
export interface RawByteLimit {
  key: string;
  bytesPerSecond: number;
}

export interface RawStreamQos {
  flow: string;
  priority?: number;
  weight?: number;
  dscp?: number;
  send?: RawByteLimit | RawByteLimit[];
  receive?: RawByteLimit | RawByteLimit[];
}

export type QosSimulation =
  | { kind: 'drr'; quantum?: number; flows: Array<{ priority: number; weight: number; streams: number; chunk: number }>; grants: number }
  | { kind: 'bucket'; bytesPerSecond: number; burst?: number; steps: Array<{ atNs: number; want: number }> }
  | {
      kind: 'limits';
      buckets: Array<{ bytesPerSecond: number; burst?: number }>;
      streams: number[][];
      steps: Array<{ atNs: number; stream: number; want: number }>;
    };

const PRIORITY_INDEX = { latency: 0, normal: 1, bulk: 2 } as const;
/** The engine paces at most this fast (1 Tbit/s, native/hbone_qos.h kMaxRateBytes); a higher limit is that. */
const MAX_ENGINE_RATE_BYTES = 125_000_000_000;
const engineRate = (bps: number): number => Math.min(MAX_ENGINE_RATE_BYTES, Math.max(1, Math.round(bps)));

function rawQos(q: HboneStreamQos | undefined): RawStreamQos | undefined {
  if (!q) return undefined;
  return {
    flow: q.flow,
    ...(q.priority ? { priority: PRIORITY_INDEX[q.priority] } : {}),
    ...(q.weight !== undefined ? { weight: q.weight } : {}),
    ...(q.dscp !== undefined ? { dscp: q.dscp } : {}),
    ...(q.send ? { send: rawLimits(q.send) } : {}),
    ...(q.receive ? { receive: rawLimits(q.receive) } : {}),
  };
}

function rawLimits(l: HboneByteLimit | readonly HboneByteLimit[]): RawByteLimit | RawByteLimit[] {
  const one = (x: HboneByteLimit): RawByteLimit => ({ key: x.key, bytesPerSecond: engineRate(x.bytesPerSecond) });
  return isLimitList(l) ? l.map(one) : one(l);
}

function isLimitList(l: HboneByteLimit | readonly HboneByteLimit[]): l is readonly HboneByteLimit[] {
  return Array.isArray(l);
}

/** Results of streams that ended before attach(), kept for a late attach() (bounded, oldest dropped first). */
const MAX_ENDED_KEPT = 4096;
const OPEN_FAILURE_KINDS = new Set(['tls', 'connect', 'timeout', 'protocol', 'no_certificate', 'closed']);
const HANDSHAKE_REASONS = new Set(['bad_certificate', 'no_certificate', 'not_tls', 'tls_error', 'timeout', 'no_alpn_h2']);
const CLOSE_REASONS = new Set(['normal', 'idle', 'protocol_error', 'rapid_reset', 'unresponsive', 'peer_closed', 'io_error', 'rotated']);

function isRawHbone(raw: unknown): raw is RawHbone {
  const r = raw as Partial<RawHbone>;
  return typeof r.hboneInit === 'function' && typeof r.hboneOpen === 'function' && typeof r.hboneAttach === 'function';
}

function toOpenResult(ev: Extract<RawHboneEvent, { t: 'open' }>): HboneOpenResult {
  if (ev.ok) return { ok: true, stream: ev.id };
  const message = ev.message ?? 'HBONE open failed';
  if (ev.kind === 'status') return { ok: false, kind: 'status', status: ev.status ?? 0, message };
  if (ev.kind === 'identity') return ev.peerId !== undefined ? { ok: false, kind: 'identity', message, peerId: ev.peerId } : { ok: false, kind: 'identity', message };
  const kind = OPEN_FAILURE_KINDS.has(ev.kind ?? '') ? (ev.kind as 'tls' | 'connect' | 'timeout' | 'protocol' | 'no_certificate' | 'closed') : 'protocol';
  return { ok: false, kind, message };
}

function toStreamResult(ev: Extract<RawHboneEvent, { t: 'done' | 'ended' }>): HboneStreamResult {
  return {
    sent: ev.sent,
    received: ev.received,
    outcome: ev.outcome,
    ...(ev.side !== undefined ? { side: ev.side } : {}),
    ...(ev.h2Code !== undefined ? { h2Code: ev.h2Code } : {}),
    ...(ev.errno !== undefined ? { errno: ev.errno } : {}),
  };
}

function toSessionEvent(ev: Extract<RawHboneEvent, { t: 'session' }>): HboneSessionEvent {
  if (ev.type === 'handshake_failed') {
    const reason = (HANDSHAKE_REASONS.has(ev.reason) ? ev.reason : 'tls_error') as Extract<HboneSessionEvent, { type: 'handshake_failed' }>['reason'];
    return { type: 'handshake_failed', direction: ev.direction, reason, remote: ev.remote, detail: ev.detail ?? '' };
  }
  const reason = (CLOSE_REASONS.has(ev.reason) ? ev.reason : 'normal') as Extract<HboneSessionEvent, { type: 'session_closed' }>['reason'];
  return { type: 'session_closed', direction: ev.direction, session: ev.id, reason, remote: ev.remote, ...(ev.detail ? { detail: ev.detail } : {}) };
}

function nativeError(code: 'SMESH_ERR_IDENTITY' | 'SMESH_ERR_HBONE' | 'SMESH_ERR_TLS', what: string, err: unknown): Error {
  if (err instanceof TypeError) return err;
  return new SmeshError(code, `${what}: ${(err as Error).message}`, { cause: err });
}

class NativeHboneEngine implements HboneEngine {
  private handlers: HboneEngineHandlers | undefined;
  private readonly opens = new Map<number, (r: HboneOpenResult) => void>();
  private readonly relays = new Map<number, (r: HboneStreamResult) => void>();
  private readonly ended = new Map<number, HboneStreamResult>();
  private keepingAlive = false;

  constructor(private readonly raw: RawHbone) {
    raw.hboneInit((events) => this.onEvents(events));
  }

  configure(options: HboneEngineOptions): void {
    try {
      this.raw.hboneConfigure(options);
    } catch (err) {
      throw nativeError('SMESH_ERR_HBONE', 'cannot configure the native HBONE engine', err);
    }
  }

  setHandlers(handlers: HboneEngineHandlers): void {
    this.handlers = handlers;
  }

  setIdentity(id: string, chainPem: string, keyPem: string): void {
    try {
      this.raw.hboneSetIdentity(id, chainPem, keyPem);
    } catch (err) {
      throw nativeError('SMESH_ERR_IDENTITY', `cannot load the certificate of ${id} into the HBONE engine`, err);
    }
  }

  removeIdentity(id: string): void {
    this.raw.hboneRemoveIdentity(id);
  }

  setTrustAnchors(pem: string): void {
    try {
      this.raw.hboneSetTrustAnchors(pem);
    } catch (err) {
      throw nativeError('SMESH_ERR_TLS', 'cannot load the trust anchors into the HBONE engine', err);
    }
  }

  open(req: HboneOpenRequest): Promise<HboneOpenResult> {
    const headers: string[] = [];
    for (const [name, value] of req.headers ?? []) headers.push(name.toLowerCase(), value);
    let id: number;
    try {
      id =
        req.dscp !== undefined
          ? this.raw.hboneOpen(req.sourceId, req.host, req.port, [...req.acceptServerIds], req.authority, headers, req.dscp)
          : this.raw.hboneOpen(req.sourceId, req.host, req.port, [...req.acceptServerIds], req.authority, headers);
    } catch (err) {
      return Promise.resolve({ ok: false, kind: 'connect', message: `cannot open HBONE CONNECT ${req.authority} via ${req.host}:${req.port}: ${(err as Error).message}` });
    }
    return new Promise<HboneOpenResult>((resolve) => {
      this.opens.set(id, resolve);
      this.updateKeepAlive();
    });
  }

  serve(fd: number, certId: string): number {
    try {
      return this.raw.hboneServe(fd, certId);
    } catch (err) {
      const code = (err as { code?: string }).code === 'SMESH_ERR_IDENTITY' ? 'SMESH_ERR_IDENTITY' : 'SMESH_ERR_HBONE';
      throw nativeError(code, `the HBONE engine cannot serve socket ${fd}`, err);
    }
  }

  respond(stream: number, status: number): void {
    this.ended.delete(stream);
    this.raw.hboneRespond(stream, status);
  }

  attach(stream: number, fd: number, pending?: Buffer, qos?: HboneStreamQos): Promise<HboneStreamResult> {
    if (!this.raw.hboneAttach(stream, fd, pending && pending.length > 0 ? pending : undefined, rawQos(qos))) return Promise.resolve(this.endedResult(stream));
    return this.awaitRelay(stream);
  }

  /** Throws SMESH_ERR_HBONE when the stream is unknown or already over (there is no socket to hand out then). */
  attachPair(stream: number, qos?: HboneStreamQos): { readonly fd: number; readonly done: Promise<HboneStreamResult> } {
    const fd = this.raw.hboneAttachPair(stream, rawQos(qos));
    if (fd < 0) {
      const r = this.endedResult(stream);
      throw new SmeshError('SMESH_ERR_HBONE', `HBONE stream ${stream} is over (${r.outcome}${r.h2Code !== undefined ? `, h2 code ${r.h2Code}` : ''}); nothing to attach`);
    }
    return { fd, done: this.awaitRelay(stream) };
  }

  abort(stream: number): boolean {
    return this.raw.hboneAbort(stream);
  }

  drain(): void {
    this.raw.hboneDrain();
  }

  closeAll(): void {
    this.raw.hboneCloseAll();
  }

  counters(): Map<number, { readonly sent: number; readonly received: number }> {
    const flat = this.raw.hboneCounters();
    const out = new Map<number, { sent: number; received: number }>();
    for (let i = 0; i + 2 < flat.length; i += 3) out.set(flat[i]!, { sent: flat[i + 1]!, received: flat[i + 2]! });
    return out;
  }

  stats(): HboneEngineStats {
    const s = this.raw.hboneStats();
    return { sessions: { inbound: s.sessionsIn, outbound: s.sessionsOut }, streams: { inbound: s.streamsIn, outbound: s.streamsOut }, bufferedBytes: s.bufferedBytes };
  }

  qosState(): HboneQosState {
    return this.raw.hboneQosState?.() ?? { fairShare: false, buckets: [], flows: [] };
  }

  chargeLimits(limits: readonly HboneByteLimit[], bytes: number): number {
    if (!this.raw.hboneChargeLimits) throw new SmeshError('SMESH_ERR_HBONE', 'this addon cannot charge engine buckets from JavaScript (hboneChargeLimits missing)');
    return this.raw.hboneChargeLimits(rawLimits(limits) as RawByteLimit[], bytes) / 1e6;
  }

  private awaitRelay(stream: number): Promise<HboneStreamResult> {
    return new Promise<HboneStreamResult>((resolve) => {
      this.relays.set(stream, resolve);
      this.updateKeepAlive();
    });
  }

  private endedResult(stream: number): HboneStreamResult {
    const r = this.ended.get(stream);
    this.ended.delete(stream);
    return r ?? { sent: 0, received: 0, outcome: 'reset', side: 'tunnel' };
  }

  /** The event loop stays alive only while an open or a relay awaits its event (idle engine: no ref). */
  private updateKeepAlive(): void {
    const want = this.opens.size + this.relays.size > 0;
    if (want === this.keepingAlive) return;
    this.keepingAlive = want;
    this.raw.hboneRef(want);
  }

  private onEvents(events: RawHboneEvent[]): void {
    for (const ev of events) {
      try {
        this.onEvent(ev);
      } catch {
        // A throwing handler must not lose the rest of the batch; handlers report their own errors.
      }
    }
    this.updateKeepAlive();
  }

  private onEvent(ev: RawHboneEvent): void {
    switch (ev.t) {
      case 'open': {
        const resolve = this.opens.get(ev.id);
        this.opens.delete(ev.id);
        resolve?.(toOpenResult(ev));
        return;
      }
      case 'stream': {
        const headers: Array<readonly [string, string]> = [];
        for (let i = 0; i + 1 < ev.headers.length; i += 2) headers.push([ev.headers[i]!, ev.headers[i + 1]!]);
        const req: HboneStreamRequest = {
          stream: ev.id,
          session: ev.session,
          ...(ev.peerId !== undefined ? { peerId: ev.peerId } : {}),
          authority: ev.authority,
          headers,
          localAddress: ev.localAddress,
          localPort: ev.localPort,
          remoteAddress: ev.remoteAddress,
          remotePort: ev.remotePort,
        };
        if (!this.handlers) {
          this.raw.hboneRespond(ev.id, 503);
          return;
        }
        this.handlers.onStream(req);
        return;
      }
      case 'done':
      case 'ended': {
        const result = toStreamResult(ev);
        const resolve = this.relays.get(ev.id);
        if (resolve) {
          this.relays.delete(ev.id);
          resolve(result);
          return;
        }
        this.ended.set(ev.id, result);
        if (this.ended.size > MAX_ENDED_KEPT) this.ended.delete(this.ended.keys().next().value as number);
        return;
      }
      case 'session':
        this.handlers?.onSessionEvent?.(toSessionEvent(ev));
        return;
    }
  }
}

/** Builds the engine facade over a raw surface; undefined when the addon has no HBONE engine. One per process. */
export function createHboneEngine(raw: RawNative | RawHbone): HboneEngine | undefined {
  if (!isRawHbone(raw)) return undefined;
  return new NativeHboneEngine(raw);
}

let cached: HboneEngine | null | undefined;

/** The native HBONE engine of the loaded addon; undefined when the addon is not built or predates it (callers use the JS path). */
export function hboneEngine(): HboneEngine | undefined {
  if (cached === undefined) {
    try {
      cached = createHboneEngine(loadRawNative()) ?? null;
    } catch {
      cached = null;
    }
  }
  return cached ?? undefined;
}
