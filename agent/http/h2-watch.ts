// Watches the frames an HTTP/2 session writes: nghttp2 answers a peer's invalid frames with an error GOAWAY or RST_STREAM and tells Node nothing, so this is where they become visible.
import { Duplex } from 'node:stream';
import type * as net from 'node:net';

const FRAME_HEADER = 9;
const TYPE_RST_STREAM = 3;
const TYPE_GOAWAY = 7;

/** RFC 9113 §7 error codes, as metric label suffixes (bounded: anything else is "other"). */
const ERROR_NAMES: readonly string[] = [
  'no_error',
  'protocol_error',
  'internal_error',
  'flow_control_error',
  'settings_timeout',
  'stream_closed',
  'frame_size_error',
  'refused_stream',
  'cancel',
  'compression_error',
  'connect_error',
  'enhance_your_calm',
  'inadequate_security',
  'http_1_1_required',
];

export function h2ErrorName(code: number): string {
  return ERROR_NAMES[code] ?? 'other';
}

/**
 * Stream error codes that only nghttp2 sends, on a peer's malformed stream (the proxy itself resets
 * streams with CANCEL, INTERNAL_ERROR or REFUSED_STREAM only).
 */
const MALFORMED_STREAM_CODES: ReadonlySet<number> = new Set([1, 3, 5, 6, 9]);

export interface H2ErrorFrame {
  readonly kind: 'goaway' | 'reset';
  readonly code: number;
  readonly streamId: number;
}

/** Whether a frame this proxy sent says the peer broke the protocol: any error GOAWAY, or a RST_STREAM with a malformed-input code. */
export function blamesPeer(f: H2ErrorFrame): boolean {
  return f.kind === 'goaway' ? f.code !== 0 : MALFORMED_STREAM_CODES.has(f.code);
}

/** Incremental parser of an outgoing HTTP/2 byte stream; reports GOAWAY and RST_STREAM frames that carry an error code. */
export class H2FrameScanner {
  private skip: number;
  private readonly head = Buffer.alloc(FRAME_HEADER + 8);
  private have = 0;
  private want = FRAME_HEADER;
  private length = 0;

  /** `skipFirst`: bytes before the first frame (24 for a client's connection preface). */
  constructor(
    private readonly onError: (f: H2ErrorFrame) => void,
    skipFirst = 0,
  ) {
    this.skip = skipFirst;
  }

  feed(chunk: Buffer): void {
    let i = 0;
    const n = chunk.length;
    while (i < n) {
      if (this.skip > 0) {
        const k = Math.min(this.skip, n - i);
        this.skip -= k;
        i += k;
        continue;
      }
      const k = Math.min(this.want - this.have, n - i);
      chunk.copy(this.head, this.have, i, i + k);
      this.have += k;
      i += k;
      if (this.have < this.want) return;
      if (this.want === FRAME_HEADER) {
        this.length = this.head.readUIntBE(0, 3);
        const type = this.head[3];
        const extra = type === TYPE_GOAWAY && this.length >= 8 ? 8 : type === TYPE_RST_STREAM && this.length === 4 ? 4 : 0;
        if (extra > 0) {
          this.want = FRAME_HEADER + extra;
          continue;
        }
        this.skip = this.length;
        this.have = 0;
        continue;
      }
      const type = this.head[3];
      const streamId = this.head.readUInt32BE(5) & 0x7fffffff;
      const code = type === TYPE_GOAWAY ? this.head.readUInt32BE(FRAME_HEADER + 4) : this.head.readUInt32BE(FRAME_HEADER);
      this.skip = this.length - (this.want - FRAME_HEADER);
      this.want = FRAME_HEADER;
      this.have = 0;
      if (code !== 0) this.onError({ kind: type === TYPE_GOAWAY ? 'goaway' : 'reset', code, streamId });
    }
  }
}

export interface H2WatchOptions {
  /** Bytes before the first outgoing frame: 24 when this side is the client (connection preface). */
  readonly skipFirst?: number;
  /** Called for each error GOAWAY / RST_STREAM this side sends. */
  readonly onErrorFrame: (f: H2ErrorFrame) => void;
  /** After an error GOAWAY is written: half-close, discard further input, destroy after this many ms. */
  readonly lingerMs?: number;
}

/**
 * The transport an HTTP/2 session runs on, with every outgoing byte scanned. After the session
 * sends an error GOAWAY nghttp2 stops reading and would hold the connection (and its streams) until
 * an idle timeout; here the connection is closed once the GOAWAY is flushed, so the session and its
 * streams end at once (upstream: the waiting requests fail with 502 instead of hanging).
 */
export class H2WatchedTransport extends Duplex {
  private readonly scanner: H2FrameScanner;
  private errorGoaway = false;
  private closing = false;

  constructor(
    private readonly inner: Duplex,
    private readonly opts: H2WatchOptions,
  ) {
    super({ allowHalfOpen: true });
    this.scanner = new H2FrameScanner((f) => {
      if (f.kind === 'goaway') this.errorGoaway = true;
      opts.onErrorFrame(f);
    }, opts.skipFirst ?? 0);
    const sock = inner as Partial<net.Socket>;
    if (typeof sock.setNoDelay === 'function') sock.setNoDelay(true);
    inner.on('data', (d: Buffer) => {
      if (this.closing) return;
      if (!this.push(d)) inner.pause();
    });
    inner.once('end', () => {
      if (!this.closing) this.push(null);
    });
    inner.on('error', (err: Error) => this.destroy(err));
    inner.once('close', () => this.destroy());
  }

  override _read(): void {
    this.inner.resume();
  }

  // A write completes as soon as the inner stream takes it without asking for backpressure (its
  // own buffer then flushes): waiting for each flush would leave one write in flight at a time.
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.scanner.feed(chunk);
    this.afterWrite(this.inner.write(chunk), cb);
  }

  override _writev(chunks: Array<{ chunk: Buffer }>, cb: (err?: Error | null) => void): void {
    let ok = true;
    for (const c of chunks) {
      this.scanner.feed(c.chunk);
      ok = this.inner.write(c.chunk) && ok;
    }
    this.afterWrite(ok, cb);
  }

  private afterWrite(ok: boolean, cb: (err?: Error | null) => void): void {
    const done = () => {
      if (this.errorGoaway && !this.closing) this.closeAfterGoaway();
      cb();
    };
    if (ok && !this.errorGoaway) done();
    else if (ok) this.inner.write(Buffer.alloc(0), done);
    else this.inner.once('drain', done);
  }

  /** FIN after the GOAWAY, drop what the peer still sends (unread input would turn our close into a RST that can eat the GOAWAY), then close. */
  private closeAfterGoaway(): void {
    this.closing = true;
    this.inner.end();
    this.inner.resume();
    const timer = setTimeout(() => this.destroy(), this.opts.lingerMs ?? 1000);
    timer.unref();
    this.once('close', () => clearTimeout(timer));
  }

  override _final(cb: (err?: Error | null) => void): void {
    this.inner.end();
    cb();
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.inner.destroy();
    cb(err);
  }
}
