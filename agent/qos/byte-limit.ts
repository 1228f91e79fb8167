// bytes/s limits for relays that run in JavaScript (same-node connections with a limit, the JS data plane, captured plaintext): a ByteLimiter charges what moved and says how long the source must wait. Backed by the native engine's buckets when the engine runs (one bucket per rule and scope for every relay, whichever path), else by GCRA buckets here.
import type { HboneByteLimit } from '../native/hbone-types';
import { type Clock, monotonicClock } from './rate-limit';

/** The least a limited side moves at once (one DATA frame, as the engine's MinGrant), or the burst if smaller. */
export const MIN_GRANT_BYTES = 16 * 1024;

export interface ByteLimiter {
  /** Records `n` bytes that moved; returns the ms to wait before reading more (0: go on). */
  charge(n: number): number;
}

/** Burst of a bucket: 100 ms at the rate, at least 16 KiB (as the engine's DefaultBurst). */
export function defaultBurst(bytesPerSecond: number): number {
  return Math.max(MIN_GRANT_BYTES, Math.floor(bytesPerSecond / 10));
}

/**
 * GCRA over bytes: `tat` is the time (ms) at which the bucket would be full again. A charge may overdraw (the bytes
 * already moved); the wait returned is until a whole MIN_GRANT (or the burst) is available again, so a limited
 * relay moves whole chunks instead of crumbs.
 */
export class JsByteBucket {
  private tat = Number.NEGATIVE_INFINITY;
  private readonly burstMs: number;
  granted = 0;
  throttles = 0;

  constructor(
    readonly bytesPerSecond: number,
    readonly burst: number,
    private readonly clock: Clock,
  ) {
    this.burstMs = (burst * 1000) / bytesPerSecond;
  }

  charge(n: number): number {
    const now = this.clock();
    this.tat = Math.max(this.tat, now) + (n * 1000) / this.bytesPerSecond;
    this.granted += n;
    const minMs = (Math.min(MIN_GRANT_BYTES, this.burst) * 1000) / this.bytesPerSecond;
    // Available bytes correspond to burstMs − (tat − now); a whole grant needs minMs of it.
    const wait = this.tat - now - (this.burstMs - minMs);
    if (wait <= 0) return 0;
    this.throttles++;
    return wait;
  }
}

/** JS buckets by key (and rate), shared by every relay naming the key; a new rate replaces the bucket. */
export class JsByteBuckets {
  private readonly buckets = new Map<string, JsByteBucket>();

  constructor(private readonly clock: Clock = monotonicClock) {}

  get(limit: HboneByteLimit): JsByteBucket {
    let b = this.buckets.get(limit.key);
    if (!b || b.bytesPerSecond !== limit.bytesPerSecond) {
      b = new JsByteBucket(limit.bytesPerSecond, defaultBurst(limit.bytesPerSecond), this.clock);
      this.buckets.set(limit.key, b);
    }
    return b;
  }

  dump(): Array<{ key: string; bytesPerSecond: number; burst: number; granted: number; throttles: number }> {
    return [...this.buckets].map(([key, b]) => ({ key, bytesPerSecond: b.bytesPerSecond, burst: b.burst, granted: b.granted, throttles: b.throttles }));
  }
}

/** Charges the native engine's bucket(s) (`HboneEngine.chargeLimits`), in ms to wait. */
export type EngineCharge = (limits: readonly HboneByteLimit[], bytes: number) => number;

/**
 * The limiter of one relay direction: every listed limit is charged (several TrafficShaping rules: all hold), the
 * wait is the longest. `engine` charges the native engine's shared buckets; without it the JS buckets are used.
 */
export function byteLimiter(limits: HboneByteLimit | readonly HboneByteLimit[] | undefined, source: { engine?: EngineCharge; js: JsByteBuckets }): ByteLimiter | undefined {
  if (!limits) return undefined;
  const list: readonly HboneByteLimit[] = Array.isArray(limits) ? limits : [limits as HboneByteLimit];
  if (list.length === 0) return undefined;
  const engine = source.engine;
  if (engine) return { charge: (n) => engine(list, n) };
  const buckets = list.map((l) => source.js.get(l));
  return {
    charge(n) {
      let wait = 0;
      for (const b of buckets) wait = Math.max(wait, b.charge(n));
      return wait;
    },
  };
}

/** The relay limits (a = the client side) of a connection's upload / download limits; undefined when none. */
export function relayLimits(
  ways: { readonly upload: readonly HboneByteLimit[]; readonly download: readonly HboneByteLimit[] },
  source: { engine?: EngineCharge; js: JsByteBuckets },
): { aToB?: ByteLimiter; bToA?: ByteLimiter } | undefined {
  const aToB = ways.upload.length ? byteLimiter(ways.upload, source) : undefined;
  const bToA = ways.download.length ? byteLimiter(ways.download, source) : undefined;
  return aToB || bToA ? { ...(aToB ? { aToB } : {}), ...(bToA ? { bToA } : {}) } : undefined;
}
