// Upstream HTTP/1.1 connections per endpoint, reused: plain TCP to a same-node pod, or carried over an HBONE CONNECT stream to a remote one.
import * as http from 'http';
import * as net from 'net';
import type { Duplex } from 'stream';
import type { HboneOpenRequest } from '../proxy/hbone-client';

export interface UpstreamTarget {
  /** Pool key: one agent per endpoint address and transport. */
  readonly key: string;
  readonly kind: 'local' | 'hbone';
  readonly ip: string;
  readonly port: number;
  /** For hbone: how to open the tunnel stream. */
  readonly hbone?: HboneOpenRequest;
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

/** http.Agent whose sockets may be HTTP/2 streams (given no-op setKeepAlive/ref/unref, which the agent's keep-alive calls). */
class MeshAgent extends http.Agent {
  constructor(
    private readonly target: UpstreamTarget,
    private readonly open: (req: HboneOpenRequest) => Promise<Duplex>,
    private readonly localAddress: string | undefined,
    private readonly connectTimeoutMs: number,
    maxSockets: number,
  ) {
    super({ keepAlive: true, maxSockets, maxFreeSockets: 64, timeout: 60_000 });
  }

  override createConnection(_options: unknown, cb: CreateCb): undefined {
    const t = this.target;
    if (t.kind === 'local') {
      const sock = net.connect({ host: t.ip, port: t.port, localAddress: this.localAddress, noDelay: true });
      const timer = setTimeout(() => sock.destroy(Object.assign(new Error(`connect timeout to ${t.ip}:${t.port}`), { code: 'ETIMEDOUT' })), this.connectTimeoutMs);
      timer.unref();
      const onError = (err: Error) => {
        clearTimeout(timer);
        cb(Object.assign(err, { smeshConnectFailure: true }));
      };
      sock.once('error', onError);
      sock.once('connect', () => {
        clearTimeout(timer);
        sock.off('error', onError);
        cb(null, sock);
      });
      return undefined;
    }
    this.open(t.hbone!).then(
      (stream) => {
        const s = stream as Duplex & Record<string, unknown>;
        for (const m of ['setKeepAlive', 'setNoDelay', 'ref', 'unref']) if (typeof s[m] !== 'function') s[m] = () => s;
        buffersOnly(stream);
        cb(null, stream);
      },
      (err: Error) => cb(Object.assign(err, { smeshConnectFailure: true })),
    );
    return undefined;
  }
}

/** One keep-alive agent per upstream endpoint. */
export class UpstreamPool {
  private readonly agents = new Map<string, MeshAgent>();

  constructor(
    private readonly open: (req: HboneOpenRequest) => Promise<Duplex>,
    private readonly localAddress: string | undefined,
    private readonly connectTimeoutMs: number,
  ) {}

  agent(target: UpstreamTarget, maxSockets: number): http.Agent {
    let a = this.agents.get(target.key);
    if (!a || a.maxSockets !== maxSockets) {
      a?.destroy();
      a = new MeshAgent(target, this.open, this.localAddress, this.connectTimeoutMs, maxSockets);
      this.agents.set(target.key, a);
    }
    return a;
  }

  close(): void {
    for (const a of this.agents.values()) a.destroy();
    this.agents.clear();
  }
}
