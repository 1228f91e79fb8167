// Kernel relay for two plain TCP sockets (same-node path): hands them to the addon's splice engine; same result shape as relay().
import * as net from 'net';
import { SmeshError } from '../errors';
import { socketFd } from '../native/datapath';
import type { SpliceApi, SpliceResult } from '../native/splice';
import type { ByteCounters, Relay, RelayOutcome, RelayResult } from './relay';

/** How often live relays' native byte counts are copied into their ByteCounters (metrics scrapes read those). */
export const SPLICE_COUNTER_FLUSH_MS = 1000;

type CloseListener = (...args: unknown[]) => void;

/** A socket the native side can take over: plain TCP (not TLS), connected, open both ways, nothing queued for writing. */
export function canSplice(s: net.Socket): boolean {
  if (!(s instanceof net.Socket) || s.destroyed || s.connecting) return false;
  if ('encrypted' in s) return false; // tls.TLSSocket: its fd carries records, not the payload
  if (s.writableEnded || s.writableLength > 0 || s.readableEncoding !== null) return false;
  return socketFd(s) >= 0;
}

/** Everything JS already read from `s` but nobody consumed (Node reads ahead into the stream buffer). */
function takeBuffered(s: net.Socket): Buffer[] {
  const chunks: Buffer[] = [];
  while (s.readableLength > 0) {
    const c = s.read() as Buffer | null;
    if (c === null) break;
    chunks.push(c);
  }
  return chunks;
}

/** Removes and returns the socket's 'close' listeners: they run when the relayed connection really ends, not at handoff. */
function detachCloseListeners(s: net.Socket): CloseListener[] {
  const listeners = s.listeners('close') as CloseListener[];
  s.removeAllListeners('close');
  return listeners;
}

interface Live {
  readonly counters?: ByteCounters;
  aToB: number;
  bToA: number;
}

const live = new Map<number, Live>();
let flushTimer: NodeJS.Timeout | undefined;
let flushApi: SpliceApi | undefined;

/** Copies the native counters of every live relay into its ByteCounters (deltas since the last copy). */
function pollCounters(api: SpliceApi): void {
  if (live.size === 0) return;
  for (const [id, c] of api.counters()) {
    const l = live.get(id);
    if (l) advance(l, c.aToB, c.bToA);
  }
}

function advance(l: Live, aToB: number, bToA: number): void {
  if (aToB > l.aToB) {
    if (l.counters) l.counters.received += aToB - l.aToB;
    l.aToB = aToB;
  }
  if (bToA > l.bToA) {
    if (l.counters) l.counters.sent += bToA - l.bToA;
    l.bToA = bToA;
  }
}

function track(api: SpliceApi, id: number, l: Live): void {
  live.set(id, l);
  flushApi = api;
  if (!flushTimer) {
    flushTimer = setInterval(() => flushApi && pollCounters(flushApi), SPLICE_COUNTER_FLUSH_MS);
    flushTimer.unref();
  }
}

function untrack(id: number): void {
  live.delete(id);
  if (live.size === 0 && flushTimer) {
    clearInterval(flushTimer);
    flushTimer = undefined;
  }
}

function toRelayResult(r: SpliceResult): RelayResult {
  let outcome: RelayOutcome;
  switch (r.outcome) {
    case 'eof':
      outcome = 'closed';
      break;
    case 'aborted':
      outcome = 'aborted';
      break;
    default:
      outcome = r.side === 'b' ? 'reset_b' : 'reset_a';
  }
  // Shaped like the socket errors relay() reports: message plus the errno name in `code`.
  const error =
    r.outcome === 'reset' || r.outcome === 'error'
      ? Object.assign(new Error(`side ${r.side ?? '?'} ${r.outcome === 'reset' ? 'was reset' : 'failed'}: ${r.code ?? `errno ${r.errno ?? '?'}`}`), { code: r.code, errno: r.errno })
      : undefined;
  return { aToB: r.aToB, bToA: r.bToA, outcome, error };
}

/**
 * Relays `a` ⇄ `b` in the kernel (splice through a pipe per direction, on the addon's threads) and destroys the
 * JS sockets at once; bytes Node had already buffered from either side are sent first. Half-close and reset are
 * propagated as relay() does; the sockets' 'close' listeners run when the relay ends. Both sockets must pass
 * canSplice(); throws (sockets untouched, buffered data put back) if the addon refuses them.
 */
export function spliceRelay(api: SpliceApi, a: net.Socket, b: net.Socket, counters?: ByteCounters): Relay {
  if (!canSplice(a) || !canSplice(b)) throw new SmeshError('SMESH_ERR_NATIVE', 'spliceRelay needs two connected plain TCP sockets with nothing queued for writing');
  const bufferedA = takeBuffered(a);
  const bufferedB = takeBuffered(b);
  let handle;
  try {
    handle = api.start(socketFd(a), socketFd(b), bufferedA.length ? Buffer.concat(bufferedA) : undefined, bufferedB.length ? Buffer.concat(bufferedB) : undefined);
  } catch (err) {
    for (const c of bufferedA) a.unshift(c);
    for (const c of bufferedB) b.unshift(c);
    throw err;
  }
  // From here the native dups own the connections: the JS sockets must never read or write again.
  const closeA = detachCloseListeners(a);
  const closeB = detachCloseListeners(b);
  a.destroy();
  b.destroy();

  const id = handle.id;
  const state: Live = { counters, aToB: 0, bToA: 0 };
  track(api, id, state);
  const done = handle.done.then((res) => {
    untrack(id);
    advance(state, res.aToB, res.bToA);
    const result = toRelayResult(res);
    const hadError = result.outcome !== 'closed';
    for (const l of closeA) l(hadError);
    for (const l of closeB) l(hadError);
    return result;
  });
  const refresh = () => {
    if (live.has(id)) {
      const c = api.counters().get(id);
      if (c) advance(state, c.aToB, c.bToA);
    }
  };
  return {
    done,
    reset() {
      api.abort(id);
    },
    get aToB() {
      refresh();
      return state.aToB;
    },
    get bToA() {
      refresh();
      return state.bToA;
    },
  };
}
