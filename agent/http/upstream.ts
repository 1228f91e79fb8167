// Upstream HTTP/1.1 connections per endpoint, reused: plain TCP to a same-node pod, or carried over an HBONE CONNECT stream to a remote one.
import * as http from 'node:http';
import type * as net from 'node:net';
import type { Duplex } from 'node:stream';
import { dial, type SourceAddressFor } from '../proxy/dial';
import type { HboneOpenRequest } from '../proxy/hbone-client';
import type { LegacyMtlsRequest } from '../proxy/legacy-mtls';

export interface UpstreamTarget {
  /** Pool key: one agent per endpoint address and transport. */
  readonly key: string;
  readonly kind: 'local' | 'hbone' | 'legacy_mtls';
  readonly ip: string;
  readonly port: number;
  /** For hbone: how to open the tunnel stream. */
  readonly hbone?: HboneOpenRequest;
  /** For legacy_mtls (an Istio sidecar): the mutual TLS connection to open. */
  readonly legacy?: LegacyMtlsRequest;
}

type CreateCb = (err: Error | null, socket?: Duplex) => void;

type WriteFn = (chunk: unknown, encoding: BufferEncoding, cb: (err?: Error | null) => void) => void;

/**
 * The HTTP client writes its head as a string (often corked with the body, i.e. writev). Http2Stream
 * does not decode strings itself, and on Node 20 string chunks written to an HTTP/2 stream were seen
 * arriving at the far end with their first bytes overwritten; so every chunk becomes a Buffer first.
 */
export function buffersOnly(stream: Duplex): void {
  const s = stream as unknown as { _write: WriteFn; _writev?: (chunks: Array<{ chunk: unknown; encoding: BufferEncoding }>, cb: (err?: Error | null) => void) => void };
  const write = s._write.bind(stream);
  const toBuffer = (chunk: unknown, encoding: BufferEncoding): Buffer => (typeof chunk === 'string' ? Buffer.from(chunk, encoding) : (chunk as Buffer));
  s._write = (chunk, encoding, cb) => write(toBuffer(chunk, encoding), 'buffer' as BufferEncoding, cb);
  s._writev = (chunks, cb) => write(Buffer.concat(chunks.map((c) => toBuffer(c.chunk, c.encoding))), 'buffer' as BufferEncoding, cb);
}

/** An HBONE stream made fit to be an http.ClientRequest's socket: no-op setKeepAlive/setNoDelay/ref/unref, Buffer writes only. */
export function asHttpSocket(stream: Duplex): Duplex {
  const s = stream as Duplex & Record<string, unknown>;
  for (const m of ['setKeepAlive', 'setNoDelay', 'ref', 'unref']) if (typeof s[m] !== 'function') s[m] = () => s;
  buffersOnly(stream);
  return stream;
}

/** How the connections to one endpoint are kept (from the backend's DestinationRule connectionPool). */
export interface PoolSettings {
  /** Concurrent connections (Infinity = unlimited). */
  readonly maxSockets: number;
  readonly connectTimeoutMs: number;
  /** A connection idle this long is closed. */
  readonly idleTimeoutMs: number;
  /** A connection is closed after carrying this many requests (0 = unlimited). */
  readonly maxRequestsPerConnection: number;
}

/** Idle upstream HTTP/1.1 connections are closed after this long unless the DestinationRule sets http.idleTimeout. */
export const DEFAULT_HTTP1_IDLE_MS = 60_000;

function sameSettings(a: PoolSettings, b: PoolSettings): boolean {
  return a.maxSockets === b.maxSockets && a.connectTimeoutMs === b.connectTimeoutMs && a.idleTimeoutMs === b.idleTimeoutMs && a.maxRequestsPerConnection === b.maxRequestsPerConnection;
}

/**
 * http.Agent whose sockets may be HTTP/2 streams (given no-op setKeepAlive/ref/unref, which the agent's keep-alive calls).
 * A socket goes back to the free list only while it has carried fewer than maxRequestsPerConnection
 * requests and the agent is not retired; free sockets close after idleTimeoutMs (the agent's timeout).
 */
class MeshAgent extends http.Agent {
  private readonly served = new WeakMap<object, number>();
  private retired = false;

  constructor(
    readonly target: UpstreamTarget,
    private readonly open: (req: HboneOpenRequest) => Promise<Duplex>,
    private readonly localAddress: SourceAddressFor,
    readonly settings: PoolSettings,
    private readonly legacy?: (req: LegacyMtlsRequest) => Promise<Duplex>,
  ) {
    super({ keepAlive: true, maxSockets: settings.maxSockets, maxFreeSockets: 64, timeout: settings.idleTimeoutMs });
  }

  override keepSocketAlive(socket: Duplex): boolean {
    if (this.retired) return false;
    const n = (this.served.get(socket) ?? 0) + 1;
    this.served.set(socket, n);
    const max = this.settings.maxRequestsPerConnection;
    if (max > 0 && n >= max) return false;
    // Node's Agent returns whether it may keep the socket; its typings say void.
    const keep = super.keepSocketAlive(socket as net.Socket) as unknown;
    return keep !== false;
  }

  /** No new requests: free sockets close now, busy ones when their request ends. */
  retire(): void {
    this.retired = true;
    this.closeIdle();
  }

  closeIdle(): void {
    for (const list of Object.values(this.freeSockets)) for (const s of list ?? []) s.destroy();
  }

  private isIdle(socket: Duplex): boolean {
    return Object.values(this.freeSockets).some((list) => (list as Duplex[] | undefined)?.includes(socket) ?? false);
  }

  override createConnection(_options: unknown, cb: CreateCb): undefined {
    const t = this.target;
    if (t.kind === 'local') {
      dial(
        { ip: t.ip, port: t.port },
        { localAddress: this.localAddress(t.ip), noDelay: true, timeoutMs: this.settings.connectTimeoutMs },
        {
          connected: (sock) => cb(null, sock),
          failed: (err) => cb(Object.assign(err, { smeshConnectFailure: true })),
        },
      );
      return undefined;
    }
    const opening = t.kind === 'legacy_mtls' ? (this.legacy ? this.legacy(t.legacy!) : Promise.reject(new Error(`no sidecar mTLS connector for ${t.key}`))) : this.open(t.hbone!);
    opening.then(
      (stream) => {
        // The far side ended the tunnel (its app closed the connection): an idle stream is useless, and Node's agent,
        // unlike a plain socket, would keep a half-closed stream in the pool and write the next request into it.
        stream.once('end', () => {
          if (this.isIdle(stream)) stream.destroy();
        });
        cb(null, asHttpSocket(stream));
      },
      (err: Error) => cb(Object.assign(err, { smeshConnectFailure: true })),
    );
    return undefined;
  }
}

/** One keep-alive agent per upstream endpoint; new settings retire the old agent without cutting its requests. */
export class UpstreamPool {
  private readonly agents = new Map<string, MeshAgent>();

  constructor(
    private readonly open: (req: HboneOpenRequest) => Promise<Duplex>,
    private readonly localAddress: SourceAddressFor,
    private readonly legacy?: (req: LegacyMtlsRequest) => Promise<Duplex>,
  ) {}

  agent(target: UpstreamTarget, settings: PoolSettings): http.Agent {
    let a = this.agents.get(target.key);
    if (!a || !sameSettings(a.settings, settings)) {
      a?.retire();
      a = new MeshAgent(target, this.open, this.localAddress, settings, this.legacy);
      this.agents.set(target.key, a);
    }
    return a;
  }

  /** Closes the idle connections to `target` (one was found closed by the upstream: the others likely are too). */
  closeIdle(target: UpstreamTarget): void {
    this.agents.get(target.key)?.closeIdle();
  }

  /** Endpoints with an agent. */
  get size(): number {
    return this.agents.size;
  }

  /** Drops the agents of endpoints that are gone (`keep` false): idle connections close, busy ones after their request. */
  retain(keep: (target: UpstreamTarget) => boolean): void {
    for (const [key, a] of this.agents) {
      if (keep(a.target)) continue;
      a.retire();
      this.agents.delete(key);
    }
  }

  close(): void {
    for (const a of this.agents.values()) a.destroy();
    this.agents.clear();
  }
}
