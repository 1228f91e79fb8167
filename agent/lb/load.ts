// Per-endpoint load the request path reports (in-flight count, peak-EWMA latency) and pickers read.
import type { LbEndpoint } from './endpoint';

/** Monotonic milliseconds (performance.now in production, a fake in tests). */
export type Clock = () => number;

export const monotonicClock: Clock = () => performance.now();

/** What least-request and peak-EWMA pickers read; implemented by EndpointLoadTracker or a test fake. */
export interface EndpointLoadView {
  /** Requests (or connections) sent to the endpoint and not finished yet. */
  activeRequests(endpoint: LbEndpoint): number;
  /** Peak-EWMA round-trip estimate in ms as of `now`; undefined when the endpoint was never sampled. */
  rttEstimate?(endpoint: LbEndpoint, now: number): number | undefined;
}

/** One endpoint's peak-EWMA estimate as of the last sample. */
export interface PeakEwma {
  readonly rttMs: number;
  readonly at: number;
}

/**
 * Feeds one RTT sample into a peak-EWMA estimate (linkerd2-proxy / tower `PeakEwma`):
 * a sample above the estimate replaces it at once (peak); otherwise the estimate moves toward the
 * sample with weight 1 - e^(-Δt/τ), Δt being the time since the previous sample, so the weight
 * of old samples decays with time constant τ rather than with sample count.
 */
export function peakEwmaObserve(prev: PeakEwma | undefined, sampleMs: number, at: number, decayMs: number): PeakEwma {
  const sample = Number.isFinite(sampleMs) && sampleMs > 0 ? sampleMs : 0;
  if (!prev || sample > prev.rttMs) return { rttMs: sample, at };
  const elapsed = Math.max(0, at - prev.at);
  const decay = Math.exp(-elapsed / decayMs);
  return { rttMs: prev.rttMs * decay + sample * (1 - decay), at };
}

/**
 * The estimate read at `now`: it decays toward zero while no sample arrives (tower decays on every
 * load read). That is how an endpoint that was slow, and so stopped receiving traffic, is probed
 * again: its cost eventually drops below its peers', it gets a request, and a fast sample keeps it.
 */
export function peakEwmaAt(state: PeakEwma, now: number, decayMs: number): number {
  const elapsed = Math.max(0, now - state.at);
  return state.rttMs * Math.exp(-elapsed / decayMs);
}

export interface EndpointLoadTrackerOptions {
  readonly now?: Clock;
  /** Peak-EWMA time constant τ; Linkerd's default is 10 s. */
  readonly decayMs?: number;
}

interface EndpointStats {
  active: number;
  ewma: PeakEwma | undefined;
}

/**
 * The mutable side of load balancing: the request path calls begin() when it sends to an endpoint
 * and end() when the response (or the connection) finishes; pickers only read. Shared by all
 * pickers of a proxy, keyed by endpoint key, so it survives picker rebuilds on endpoint updates.
 */
export class EndpointLoadTracker implements EndpointLoadView {
  private readonly stats = new Map<string, EndpointStats>();
  private readonly now: Clock;
  readonly decayMs: number;

  constructor(options: EndpointLoadTrackerOptions = {}) {
    this.now = options.now ?? monotonicClock;
    const decay = options.decayMs ?? 10_000;
    this.decayMs = Number.isFinite(decay) && decay > 0 ? decay : 10_000;
  }

  /** Counts a request as in flight; returns its start time for end(). */
  begin(endpoint: LbEndpoint): number {
    let s = this.stats.get(endpoint.key);
    if (!s) {
      s = { active: 0, ewma: undefined };
      this.stats.set(endpoint.key, s);
    }
    s.active++;
    return this.now();
  }

  /** Finishes a request begun at `startedAt` and records its latency as an RTT sample. */
  end(endpoint: LbEndpoint, startedAt: number): void {
    const s = this.stats.get(endpoint.key);
    if (!s) return;
    if (s.active > 0) s.active--;
    const now = this.now();
    s.ewma = peakEwmaObserve(s.ewma, now - startedAt, now, this.decayMs);
  }

  /** Finishes a request without a latency sample (e.g. it failed before any response). */
  cancel(endpoint: LbEndpoint): void {
    const s = this.stats.get(endpoint.key);
    if (s && s.active > 0) s.active--;
  }

  activeRequests(endpoint: LbEndpoint): number {
    return this.stats.get(endpoint.key)?.active ?? 0;
  }

  rttEstimate(endpoint: LbEndpoint, now: number): number | undefined {
    const ewma = this.stats.get(endpoint.key)?.ewma;
    return ewma ? peakEwmaAt(ewma, now, this.decayMs) : undefined;
  }

  /** Forgets endpoints no longer present (keeps those with requests still in flight). */
  retain(keys: Iterable<string>): void {
    const keep = new Set(keys);
    for (const [k, s] of this.stats) if (!keep.has(k) && s.active === 0) this.stats.delete(k);
  }
}
