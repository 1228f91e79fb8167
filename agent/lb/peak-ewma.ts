// Peak-EWMA latency balancing (Linkerd): power of two choices over cost = RTT estimate × (in flight + 1).
import { effectiveWeight, noUsableReason, usableEndpoints, type LbEndpoint } from './endpoint';
import type { Clock, EndpointLoadView } from './load';
import type { PickResult, Picker } from './picker';
import { WeightedSampler, type RandomSource } from './sampling';

export interface PeakEwmaOptions {
  /** Estimate used for an endpoint never sampled; Linkerd's default is 30 ms. */
  readonly defaultRttMs?: number;
  readonly random?: RandomSource;
  readonly now: Clock;
}

/** The peak-EWMA load of one endpoint, as tower's `PeakEwma::load` defines it. */
export function peakEwmaCost(rttEstimateMs: number, activeRequests: number): number {
  return rttEstimateMs * (activeRequests + 1);
}

/**
 * linkerd2-proxy balances with tower's p2c over PeakEwma loads: two *distinct* endpoints are drawn
 * (here by weight) and the one with the lower cost wins, the first on a tie. The estimate itself
 * (peak-sensitive, decaying with time) is kept by the load view; see `peakEwmaObserve`.
 */
export class PeakEwmaPicker<E extends LbEndpoint> implements Picker<E> {
  private readonly usable: readonly E[];
  private readonly sampler: WeightedSampler;
  private readonly defaultRttMs: number;
  private readonly random: RandomSource;
  private readonly now: Clock;
  private readonly failure: PickResult<E> | undefined;

  constructor(
    readonly endpoints: readonly E[],
    private readonly load: EndpointLoadView,
    options: PeakEwmaOptions,
  ) {
    this.usable = usableEndpoints(endpoints);
    this.sampler = new WeightedSampler(this.usable.map(effectiveWeight));
    const d = options.defaultRttMs ?? 30;
    this.defaultRttMs = Number.isFinite(d) && d >= 0 ? d : 30;
    this.random = options.random ?? Math.random;
    this.now = options.now;
    this.failure = this.usable.length === 0 ? { kind: 'transient_failure', reason: noUsableReason(endpoints) } : undefined;
  }

  pick(): PickResult<E> {
    if (this.failure) return this.failure;
    if (this.usable.length === 1) return { kind: 'complete', endpoint: this.usable[0]! };
    const i = this.sampler.sample(this.random);
    const j = this.sampler.sampleExcluding(i, this.random);
    const now = this.now();
    const a = this.usable[i]!;
    const b = this.usable[j]!;
    return { kind: 'complete', endpoint: this.cost(a, now) <= this.cost(b, now) ? a : b };
  }

  /** Exposed for tests and the admin view. */
  cost(endpoint: E, now: number = this.now()): number {
    const rtt = this.load.rttEstimate?.(endpoint, now) ?? this.defaultRttMs;
    return peakEwmaCost(rtt, this.load.activeRequests(endpoint));
  }
}
