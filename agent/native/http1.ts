// Typed facade over the addon's native HTTP/1.1 engine (native/http1*.cc): implements Http1Engine (http1-types.ts) on raw functions, mapping batched native events to handlers and takeovers to promises.
import * as fs from 'node:fs';
import { SmeshError } from '../../core/errors';
import { loadRawNative, type RawNative } from './raw';
import type {
  Http1Decision,
  Http1Engine,
  Http1EngineHandlers,
  Http1EngineOptions,
  Http1EngineStats,
  Http1Header,
  Http1Request,
  Http1Result,
  Http1ServeOptions,
  Http1Takeover,
  Http1UpstreamFailureReason,
} from './http1-types';

/** One record of a native event batch. */
export type RawHttp1Event =
  | {
      t: 'request';
      id: number;
      session: number;
      method: string;
      target: string;
      authority: string;
      version: '1.0' | '1.1';
      /** name, value, name, value, ... */
      headers: string[];
      bodyKind: 'none' | 'length' | 'chunked';
      contentLength: number;
      upgrade: boolean;
      expectContinue: boolean;
      keepAlive: boolean;
      localAddress: string;
      localPort: number;
      remoteAddress: string;
      remotePort: number;
    }
  | { t: 'failed'; id: number; session: number; failure: string; detail: string; target: string; reused: boolean }
  | {
      t: 'result';
      id: number;
      session: number;
      status: number;
      requestBytes: number;
      responseBytes: number;
      durationUs: number;
      outcome: string;
      failure?: string;
      detail?: string;
      target?: string;
      reused: boolean;
    }
  | { t: 'takeover'; id: number; session: number; fd: number; pending: Buffer }
  | { t: 'pair'; id: number; session: number; fd: number; key: string }
  | { t: 'closed'; id: number; session: number; reason: string; detail?: string; requests: number; bytesIn?: number; bytesOut?: number };

/** The decision object the addon validates (headers flattened). */
export interface RawHttp1Decision {
  kind: 'deny' | 'forward' | 'takeover';
  status?: number;
  headers?: string[];
  body?: Buffer | string;
  host?: string;
  port?: number;
  sourceAddress?: string;
  pair?: string;
  setHeaders?: string[];
  removeHeaders?: string[];
  path?: string;
  maxRequestsPerConnection?: number;
  connectTimeoutMs?: number;
  responseTimeoutMs?: number;
}

/** The addon's raw HTTP/1.1 surface (absent from addons built before it). */
export interface RawHttp1 {
  http1Init(callback: (events: RawHttp1Event[]) => void): void;
  http1Configure(options: Http1EngineOptions): void;
  /** Returns the session id. */
  http1Serve(fd: number, options?: { maxHeadBytes?: number }): number;
  http1Decide(request: number, decision: RawHttp1Decision): boolean;
  http1Reply(request: number, status: number, headers?: string[], body?: Buffer | string): boolean;
  http1CloseAll(): void;
  /** Absent from addons built before it. */
  http1CloseSession?(session: number): void;
  http1Stats(): {
    sessions: number;
    requestsInFlight: number;
    upstreams: number;
    upstreamsIdle: number;
    bufferedBytes: number;
    requestsTotal: number;
    badRequests: number;
    upstreamConnects: number;
    upstreamReuses: number;
    running: boolean;
  };
  /** Keeps the Node event loop alive (true) while sessions are open. */
  http1Ref(keepAlive: boolean): void;
  /** Decision features beyond the first version ('pair'); absent from addons built before it. */
  http1Features?: readonly string[];
}

const FAILURES = new Set(['connect_failed', 'reset', 'timeout', 'protocol']);
const OUTCOMES = new Set(['forwarded', 'denied', 'replied', 'aborted']);

function isRawHttp1(raw: unknown): raw is RawHttp1 {
  const r = raw as Partial<RawHttp1>;
  return typeof r.http1Init === 'function' && typeof r.http1Serve === 'function' && typeof r.http1Decide === 'function';
}

function flatten(headers: readonly Http1Header[] | undefined): string[] | undefined {
  if (!headers) return undefined;
  const out: string[] = [];
  for (const [name, value] of headers) out.push(name, value);
  return out;
}

function toRawDecision(d: Http1Decision): RawHttp1Decision {
  switch (d.kind) {
    case 'deny':
      return { kind: 'deny', status: d.status, ...(d.headers ? { headers: flatten(d.headers) } : {}), ...(d.body !== undefined ? { body: d.body } : {}) };
    case 'takeover':
      return { kind: 'takeover' };
    case 'forward':
      return {
        kind: 'forward',
        ...('pair' in d ? { pair: d.pair } : { host: d.host, port: d.port, ...(d.sourceAddress !== undefined ? { sourceAddress: d.sourceAddress } : {}) }),
        ...(d.setHeaders ? { setHeaders: flatten(d.setHeaders) } : {}),
        ...(d.removeHeaders ? { removeHeaders: [...d.removeHeaders] } : {}),
        ...(d.path !== undefined ? { path: d.path } : {}),
        ...(d.maxRequestsPerConnection !== undefined ? { maxRequestsPerConnection: d.maxRequestsPerConnection } : {}),
        ...(d.connectTimeoutMs !== undefined ? { connectTimeoutMs: d.connectTimeoutMs } : {}),
        ...(d.responseTimeoutMs !== undefined ? { responseTimeoutMs: d.responseTimeoutMs } : {}),
      };
  }
}

function toRequest(ev: Extract<RawHttp1Event, { t: 'request' }>): Http1Request {
  const headers: Array<readonly [string, string]> = [];
  for (let i = 0; i + 1 < ev.headers.length; i += 2) headers.push([ev.headers[i]!, ev.headers[i + 1]!]);
  const body = ev.bodyKind === 'length' ? { kind: 'length' as const, length: ev.contentLength } : ev.bodyKind === 'chunked' ? { kind: 'chunked' as const } : { kind: 'none' as const };
  return {
    id: ev.id,
    session: ev.session,
    method: ev.method,
    target: ev.target,
    authority: ev.authority,
    version: ev.version,
    headers,
    body,
    upgrade: ev.upgrade,
    expectContinue: ev.expectContinue,
    keepAlive: ev.keepAlive,
    localAddress: ev.localAddress,
    localPort: ev.localPort,
    remoteAddress: ev.remoteAddress,
    remotePort: ev.remotePort,
  };
}

function toResult(ev: Extract<RawHttp1Event, { t: 'result' }>): Http1Result {
  return {
    id: ev.id,
    session: ev.session,
    status: ev.status,
    requestBytes: ev.requestBytes,
    responseBytes: ev.responseBytes,
    durationUs: ev.durationUs,
    outcome: (OUTCOMES.has(ev.outcome) ? ev.outcome : 'aborted') as Http1Result['outcome'],
    ...(ev.failure !== undefined ? { failure: ev.failure as NonNullable<Http1Result['failure']> } : {}),
    ...(ev.detail !== undefined ? { detail: ev.detail } : {}),
    ...(ev.target !== undefined ? { target: ev.target } : {}),
    reused: ev.reused,
  };
}

function nativeError(what: string, err: unknown): Error {
  if (err instanceof TypeError) return err;
  return new SmeshError('SMESH_ERR_NATIVE', `${what}: ${(err as Error).message}`, { cause: err });
}

class NativeHttp1Engine implements Http1Engine {
  private handlers: Http1EngineHandlers | undefined;
  private readonly takeovers = new Map<number, (t: Http1Takeover | undefined) => void>();
  /** Open sessions → the handlers of the caller that served them (undefined: the setHandlers ones). */
  private readonly sessions = new Map<number, Http1EngineHandlers | undefined>();
  private keepingAlive = false;

  constructor(private readonly raw: RawHttp1) {
    raw.http1Init((events) => this.onEvents(events));
  }

  get upstreamPairs(): boolean {
    return this.raw.http1Features?.includes('pair') ?? false;
  }

  configure(options: Http1EngineOptions): void {
    try {
      this.raw.http1Configure(options);
    } catch (err) {
      throw nativeError('cannot configure the native HTTP/1.1 engine', err);
    }
  }

  setHandlers(handlers: Http1EngineHandlers): void {
    this.handlers = handlers;
  }

  serve(fd: number, options?: Http1ServeOptions): number {
    let session: number;
    try {
      session = options?.maxHeadBytes !== undefined ? this.raw.http1Serve(fd, { maxHeadBytes: options.maxHeadBytes }) : this.raw.http1Serve(fd);
    } catch (err) {
      throw nativeError(`the HTTP/1.1 engine cannot serve socket ${fd}`, err);
    }
    this.sessions.set(session, options?.handlers);
    this.updateKeepAlive();
    return session;
  }

  decide(request: number, decision: Http1Decision): boolean {
    return this.raw.http1Decide(request, toRawDecision(decision));
  }

  reply(request: number, status: number, headers?: readonly Http1Header[], body?: Buffer | string): boolean {
    return this.raw.http1Reply(request, status, flatten(headers) ?? [], body ?? '');
  }

  takeover(request: number): Promise<Http1Takeover | undefined> {
    if (!this.raw.http1Decide(request, { kind: 'takeover' })) return Promise.resolve(undefined);
    return new Promise((resolve) => this.takeovers.set(request, resolve));
  }

  closeSession(session: number): void {
    this.raw.http1CloseSession?.(session);
  }

  closeAll(): void {
    this.raw.http1CloseAll();
  }

  stats(): Http1EngineStats {
    const s = this.raw.http1Stats();
    return {
      sessions: s.sessions,
      requestsInFlight: s.requestsInFlight,
      upstreams: { open: s.upstreams, idle: s.upstreamsIdle, connects: s.upstreamConnects, reuses: s.upstreamReuses },
      requestsTotal: s.requestsTotal,
      badRequests: s.badRequests,
      bufferedBytes: s.bufferedBytes,
    };
  }

  /** The event loop stays alive while a client session is open (its socket left JavaScript). */
  private updateKeepAlive(): void {
    const want = this.sessions.size + this.takeovers.size > 0;
    if (want === this.keepingAlive) return;
    this.keepingAlive = want;
    this.raw.http1Ref(want);
  }

  private onEvents(events: RawHttp1Event[]): void {
    for (const ev of events) {
      try {
        this.onEvent(ev);
      } catch {
        // A throwing handler must not lose the rest of the batch; handlers report their own errors.
      }
    }
    this.updateKeepAlive();
  }

  private onEvent(ev: RawHttp1Event): void {
    const handlers = this.sessions.get(ev.session) ?? this.handlers;
    switch (ev.t) {
      case 'request':
        if (!handlers) {
          this.raw.http1Decide(ev.id, { kind: 'deny', status: 503, body: 'no HTTP handler installed\n' });
          return;
        }
        handlers.onRequest(toRequest(ev));
        return;
      case 'failed': {
        const reason = (FAILURES.has(ev.failure) ? ev.failure : 'protocol') as Http1UpstreamFailureReason;
        if (!handlers?.onUpstreamFailure) {
          this.raw.http1Reply(ev.id, reason === 'timeout' ? 504 : 503, [], `upstream ${reason}\n`);
          return;
        }
        handlers.onUpstreamFailure({ id: ev.id, session: ev.session, reason, detail: ev.detail, target: ev.target, reused: ev.reused });
        return;
      }
      case 'result': {
        const waiting = this.takeovers.get(ev.id);
        if (waiting) {
          this.takeovers.delete(ev.id);
          waiting(undefined);
        }
        handlers?.onResult?.(toResult(ev));
        return;
      }
      case 'takeover': {
        const resolve = this.takeovers.get(ev.id);
        this.takeovers.delete(ev.id);
        if (resolve) resolve({ fd: ev.fd, pending: ev.pending });
        else closeFd(ev.fd);
        return;
      }
      case 'pair':
        if (handlers?.onUpstreamPair) handlers.onUpstreamPair({ id: ev.id, session: ev.session, key: ev.key, fd: ev.fd });
        else closeFd(ev.fd);
        return;
      case 'closed':
        this.sessions.delete(ev.session);
        handlers?.onSessionClosed?.({
          session: ev.session,
          reason: ev.reason,
          ...(ev.detail ? { detail: ev.detail } : {}),
          requests: ev.requests,
          bytesReceived: ev.bytesIn ?? 0,
          bytesSent: ev.bytesOut ?? 0,
        });
        return;
    }
  }
}

function closeFd(fd: number): void {
  try {
    fs.closeSync(fd);
  } catch {
    // already closed
  }
}

/** Builds the engine facade over a raw surface; undefined when the addon has no HTTP/1.1 engine. One per process. */
export function createHttp1Engine(raw: RawNative | RawHttp1): Http1Engine | undefined {
  if (!isRawHttp1(raw)) return undefined;
  return new NativeHttp1Engine(raw);
}

let cached: Http1Engine | null | undefined;

/** The native HTTP/1.1 engine of the loaded addon; undefined when the addon is not built or predates it (callers use node:http). */
export function http1Engine(): Http1Engine | undefined {
  if (cached === undefined) {
    try {
      cached = createHttp1Engine(loadRawNative()) ?? null;
    } catch {
      cached = null;
    }
  }
  return cached ?? undefined;
}
