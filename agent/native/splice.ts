// Typed facade over the addon's splice relay (native/splice.cc): start a kernel-side relay of two socket fds, abort it, read live byte counts.
import { loadRawNative, type RawNative } from './raw';

/** How a native relay ended: both FINs relayed, a reset (RST/EPIPE) or another socket error on one side, or abort(). */
export type SpliceOutcome = 'eof' | 'reset' | 'error' | 'aborted';

export interface SpliceResult {
  readonly aToB: number;
  readonly bToA: number;
  readonly outcome: SpliceOutcome;
  /** The side whose socket failed (reset/error). */
  readonly side?: 'a' | 'b';
  readonly errno?: number;
  /** errno name, e.g. 'ECONNRESET'. */
  readonly code?: string;
}

/** The addon's raw splice surface (absent from addons built before it). */
export interface RawSplice {
  spliceStart(fdA: number, fdB: number, pendingAtoB?: Buffer, pendingBtoA?: Buffer): { id: number; done: Promise<SpliceResult> };
  spliceAbort(id: number): boolean;
  /** [id, aToB, bToA] triples, one per live relay. */
  spliceCounters(): Float64Array;
  spliceActive(): number;
  spliceConfigure(options: { threads: number }): void;
}

export interface SpliceHandle {
  readonly id: number;
  /** Resolves once both sockets are closed (never rejects). */
  readonly done: Promise<SpliceResult>;
}

export interface SpliceApi {
  /**
   * Dups `fdA`/`fdB` and relays them on a native thread; `pendingAtoB`/`pendingBtoA` (bytes already read from a/b
   * in user space) are written to the other side first. The caller must destroy its own sockets at once, without
   * reading or writing them again: from here the dups are the only users of the connections.
   */
  start(fdA: number, fdB: number, pendingAtoB?: Buffer, pendingBtoA?: Buffer): SpliceHandle;
  /** Resets both sockets; false if the relay is unknown or already over. */
  abort(id: number): boolean;
  /** Current byte counts of every live relay, by id. */
  counters(): Map<number, { aToB: number; bToA: number }>;
  /** Relays whose completion has not been delivered yet. */
  active(): number;
  /** Number of native worker threads (1..8); only before the first start(). */
  configure(options: { threads: number }): void;
}

function isRawSplice(raw: unknown): raw is RawSplice {
  const r = raw as Partial<RawSplice>;
  return typeof r.spliceStart === 'function' && typeof r.spliceAbort === 'function' && typeof r.spliceCounters === 'function';
}

/** Builds the facade over a raw surface; undefined when the addon has no splice relay. */
export function createSpliceApi(raw: RawNative | RawSplice): SpliceApi | undefined {
  if (!isRawSplice(raw)) return undefined;
  return {
    start(fdA, fdB, pendingAtoB, pendingBtoA) {
      if (!Number.isInteger(fdA) || fdA < 0) throw new TypeError(`fdA must be a non-negative integer, got ${String(fdA)}`);
      if (!Number.isInteger(fdB) || fdB < 0) throw new TypeError(`fdB must be a non-negative integer, got ${String(fdB)}`);
      return raw.spliceStart(fdA, fdB, pendingAtoB && pendingAtoB.length > 0 ? pendingAtoB : undefined, pendingBtoA && pendingBtoA.length > 0 ? pendingBtoA : undefined);
    },
    abort: (id) => raw.spliceAbort(id),
    counters() {
      const flat = raw.spliceCounters();
      const out = new Map<number, { aToB: number; bToA: number }>();
      for (let i = 0; i + 2 < flat.length; i += 3) out.set(flat[i], { aToB: flat[i + 1], bToA: flat[i + 2] });
      return out;
    },
    active: () => raw.spliceActive(),
    configure: (options) => raw.spliceConfigure(options),
  };
}

let cached: SpliceApi | null | undefined;

/** The splice relay of the loaded addon; undefined when the addon is not built or predates it (callers fall back to the JS relay). */
export function spliceApi(): SpliceApi | undefined {
  if (cached === undefined) {
    try {
      cached = createSpliceApi(loadRawNative()) ?? null;
    } catch {
      cached = null;
    }
  }
  return cached ?? undefined;
}
