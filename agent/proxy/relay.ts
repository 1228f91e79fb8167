// Pure-TypeScript byte relay between two duplexes (TCP sockets, HTTP/2 streams): backpressure, half-close and reset propagation, byte counts.
import * as http2 from 'node:http2';
import * as net from 'node:net';
import type { Duplex } from 'node:stream';
import type { ByteLimiter } from '../qos/byte-limit';

const { NGHTTP2_NO_ERROR, NGHTTP2_CONNECT_ERROR } = http2.constants;

/** Byte counters the relay adds to as data flows (Istio direction: received = a→b, sent = b→a). */
export interface ByteCounters {
  received: number;
  sent: number;
}

export type RelayOutcome =
  /** Both directions ended with FIN / END_STREAM. */
  | 'closed'
  /** Side a was reset or failed; b was reset in turn. */
  | 'reset_a'
  | 'reset_b'
  /** The relay was aborted locally (`Relay.reset()`, e.g. shutdown). */
  | 'aborted';

export interface RelayResult {
  readonly aToB: number;
  readonly bToA: number;
  readonly outcome: RelayOutcome;
  readonly error?: Error;
}

export interface Relay {
  readonly done: Promise<RelayResult>;
  /** Resets both sides (TCP RST / RST_STREAM CONNECT_ERROR). */
  reset(): void;
  readonly aToB: number;
  readonly bToA: number;
}

/** Bytes written but not yet taken by the destination past which the source is paused (memory bound per direction). */
const MAX_BUFFERED_BYTES = 256 * 1024;

function isHttp2Stream(d: Duplex): d is http2.Http2Stream {
  return 'rstCode' in d && 'session' in d;
}

let kHandle: symbol | undefined | null;

/**
 * Sends RST_STREAM without a preceding END_STREAM. Node's `stream.close(code)` first ends the
 * writable side (an empty DATA frame with END_STREAM) and only then resets, which the peer would
 * see as a half-close (TCP FIN) followed by a reset. The native stream handle's `rstStream`
 * sends the reset alone and Node then tears the stream down as for a received reset. Falls back
 * to `close(code)` if the internal handle is not found (other Node versions).
 */
export function resetHttp2Stream(stream: http2.Http2Stream, code: number): void {
  if (kHandle === undefined) kHandle = Object.getOwnPropertySymbols(stream).find((s) => s.description === 'kHandle') ?? null;
  const handle = kHandle ? (stream as unknown as Record<symbol, { rstStream?: (code: number) => void } | undefined>)[kHandle] : undefined;
  if (handle && typeof handle.rstStream === 'function' && !stream.pending) {
    handle.rstStream(code);
    return;
  }
  // close() also covers a stream whose id is not yet assigned; never destroy() right after it (that drops the frame).
  stream.close(code);
}

/**
 * A Duplex standing for a native engine stream (a socketpair end, agent/proxy/native-hbone.ts) carries its reset here:
 * a socketpair can only pass a FIN, so abortSide() resets the stream itself.
 */
export const NATIVE_ABORT = Symbol('smesh.nativeAbort');

/** Aborts one side: TCP reset for plain sockets, RST_STREAM(CONNECT_ERROR) for HTTP/2 streams (RFC 7540 §8.3). */
export function abortSide(d: Duplex): void {
  if (d.destroyed) return;
  const nativeAbort = (d as unknown as Record<symbol, (() => void) | undefined>)[NATIVE_ABORT];
  if (nativeAbort) {
    nativeAbort();
    d.destroy();
    return;
  }
  if (isHttp2Stream(d)) {
    if (!d.closed) resetHttp2Stream(d, NGHTTP2_CONNECT_ERROR);
    return;
  }
  if (d instanceof net.Socket) {
    try {
      d.resetAndDestroy(); // throws for TLS sockets (handle is not TCP): fall back to destroy
      return;
    } catch {
      /* fall through */
    }
  }
  d.destroy();
}

/** bytes/s limits per direction (TrafficShaping, agent/qos/byte-limit.ts): over one, the source is not read until it refills. */
export interface RelayLimits {
  readonly aToB?: ByteLimiter;
  readonly bToA?: ByteLimiter;
}

interface SideState {
  readonly d: Duplex;
  readEnded: boolean;
  closed: boolean;
  failed: boolean;
  error?: Error;
}

/**
 * Relays `a` ⇄ `b` until both are closed. Sockets must be created with `allowHalfOpen: true`, so
 * a FIN on one side becomes end() (FIN / END_STREAM) on the other while the reverse direction
 * keeps flowing. A reset or error on either side resets the other.
 */
export function relay(a: Duplex, b: Duplex, counters?: ByteCounters, limits?: RelayLimits): Relay {
  const sa: SideState = { d: a, readEnded: false, closed: false, failed: false };
  const sb: SideState = { d: b, readEnded: false, closed: false, failed: false };
  let aToB = 0;
  let bToA = 0;
  let outcome: RelayOutcome | undefined;
  let firstError: Error | undefined;
  let resolve!: (r: RelayResult) => void;
  const done = new Promise<RelayResult>((r) => (resolve = r));

  const fail = (side: SideState, why: RelayOutcome, err?: Error) => {
    if (!outcome) {
      outcome = why;
      firstError = err;
    }
    side.failed = true;
    const other = side === sa ? sb : sa;
    abortSide(other.d);
    abortSide(side.d);
  };

  const finishIfDone = () => {
    if (!sa.closed || !sb.closed) return;
    for (const t of timers) clearTimeout(t);
    timers.clear();
    resolve({ aToB, bToA, outcome: outcome ?? 'closed', error: firstError });
  };

  const timers = new Set<NodeJS.Timeout>();
  const wire = (from: SideState, to: SideState, isAtoB: boolean) => {
    const src = from.d;
    const dst = to.d;
    const limiter = isAtoB ? limits?.aToB : limits?.bToA;
    // The source is paused for two reasons, each resumed only when the other does not hold.
    let blocked = false; // the destination has MAX_BUFFERED_BYTES unwritten
    let throttled = false; // over a bytes/s limit until the timer fires
    const resume = () => {
      if (!blocked && !throttled) src.resume();
    };
    const resetOutcome: RelayOutcome = from === sa ? 'reset_a' : 'reset_b';
    // Write batching: the first chunk of an event-loop turn is written at once (no added latency); further chunks of
    // the same turn (an HTTP/2 stream delivers one chunk per DATA frame piece, often 100+ per turn at full speed) are
    // corked and leave as one writev when the turn's I/O is done (setImmediate), instead of one syscall each.
    let batchOpen = false;
    let corked = false;
    const flush = () => {
      batchOpen = false;
      if (!corked) return;
      corked = false;
      if (!dst.destroyed && !dst.writableEnded) dst.uncork();
    };
    src.on('data', (chunk: Buffer) => {
      const n = chunk.length;
      if (isAtoB) {
        aToB += n;
        if (counters) counters.received += n;
      } else {
        bToA += n;
        if (counters) counters.sent += n;
      }
      if (dst.destroyed || dst.writableEnded) return;
      if (!batchOpen) {
        batchOpen = true;
        setImmediate(flush);
      } else if (!corked) {
        corked = true;
        dst.cork();
      }
      // Backpressure: write() reports false past the destination's highWaterMark (16 KiB), less than one read
      // (64 KiB); pausing there would stop and restart the source on every chunk. Pause past MAX_BUFFERED_BYTES
      // instead; 'drain' (due since write() reported false) resumes it.
      if (!dst.write(chunk) && dst.writableLength >= MAX_BUFFERED_BYTES) {
        blocked = true;
        src.pause();
      }
      if (limiter && !throttled) {
        const waitMs = limiter.charge(n);
        if (waitMs > 0) {
          throttled = true;
          src.pause();
          const t = setTimeout(
            () => {
              timers.delete(t);
              throttled = false;
              resume();
            },
            Math.max(1, Math.ceil(waitMs)),
          );
          timers.add(t);
        }
      } else if (limiter) limiter.charge(n);
    });
    dst.on('drain', () => {
      blocked = false;
      resume();
    });
    const endDst = () => {
      if (!from.failed && !dst.destroyed && !dst.writableEnded) dst.end();
    };
    const h2 = isHttp2Stream(src);
    src.on('end', () => {
      from.readEnded = true;
      // Node ends an HTTP/2 stream's readable just before it reports a received RST_STREAM
      // ('aborted'); wait one turn so a reset is not forwarded as a FIN first.
      if (h2) setImmediate(endDst);
      else endDst();
    });
    src.on('error', (err: Error) => {
      from.error = err;
      fail(from, resetOutcome, err);
    });
    if (h2) src.on('aborted', () => fail(from, resetOutcome));
    src.on('close', () => {
      from.closed = true;
      const rst = h2 && (src as http2.Http2Stream).rstCode !== undefined && (src as http2.Http2Stream).rstCode !== NGHTTP2_NO_ERROR;
      // Closed without a clean end of its read side: the peer reset or the session died.
      if (!from.failed && (rst || !from.readEnded)) fail(from, resetOutcome, from.error);
      finishIfDone();
    });
  };

  wire(sa, sb, true);
  wire(sb, sa, false);

  return {
    done,
    reset() {
      if (!outcome) outcome = 'aborted';
      abortSide(a);
      abortSide(b);
    },
    get aToB() {
      return aToB;
    },
    get bToA() {
      return bToA;
    },
  };
}
