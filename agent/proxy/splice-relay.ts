// Kernel relay for two plain TCP sockets (same-node path): hands them to the addon's splice engine; same result shape as relay().
import * as net from 'node:net';
import { SmeshError } from '../../core/errors';
import { socketFd } from '../native/datapath';
import type { SpliceApi, SpliceHandle, SpliceResult } from '../native/splice';
import { LiveCounters } from './native-counters';
import type { ByteCounters, Relay, RelayOutcome, RelayResult } from './relay';

/** How often live relays' native byte counts are copied into their ByteCounters (metrics scrapes read those). */
export const SPLICE_COUNTER_FLUSH_MS = 1000;

export type CloseListener = (...args: unknown[]) => void;

/** A socket the native side can take over: plain TCP (not TLS), connected, open both ways, nothing queued for writing. */
export function canSplice(s: net.Socket): boolean {
  if (!(s instanceof net.Socket) || s.destroyed || s.connecting) return false;
  if ('encrypted' in s) return false; // tls.TLSSocket: its fd carries records, not the payload
  if (s.writableEnded || s.writableLength > 0 || s.readableEncoding !== null) return false;
  return socketFd(s) >= 0;
}

/** Everything JS already read from `s` but nobody consumed (Node reads ahead into the stream buffer). */
export function takeBuffered(s: net.Socket): Buffer[] {
  const chunks: Buffer[] = [];
  while (s.readableLength > 0) {
    const c = s.read() as Buffer | null;
    if (c === null) break;
    chunks.push(c);
  }
  return chunks;
}

/** Removes and returns the socket's 'close' listeners: they run when the relayed connection really ends, not at handoff. */
export function detachCloseListeners(s: net.Socket): CloseListener[] {
  const listeners = s.listeners('close') as CloseListener[];
  s.removeAllListeners('close');
  return listeners;
}

/** Live relays' native counts, copied into their ByteCounters every SPLICE_COUNTER_FLUSH_MS. */
let liveCounters: LiveCounters | undefined;
function countersOf(api: SpliceApi): LiveCounters {
  if (!liveCounters) liveCounters = new LiveCounters(() => api.counters(), SPLICE_COUNTER_FLUSH_MS);
  return liveCounters;
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
  let handle: SpliceHandle;
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
  const live = countersOf(api);
  const state = live.track(id, counters);
  const done = handle.done.then((res) => {
    live.finish(id, res.aToB, res.bToA);
    const result = toRelayResult(res);
    const hadError = result.outcome !== 'closed';
    for (const l of closeA) l(hadError);
    for (const l of closeB) l(hadError);
    return result;
  });
  const refresh = () => live.refresh(id);
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
