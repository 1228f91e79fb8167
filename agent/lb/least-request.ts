// Least request by power of two choices (Envoy LEAST_REQUEST): draw two endpoints by weight, send to the one with fewer in flight.
import { effectiveWeight, noUsableReason, usableEndpoints, type LbEndpoint } from './endpoint';
import type { EndpointLoadView } from './load';
import type { PickResult, Picker } from './picker';
import { WeightedSampler, type RandomSource } from './sampling';

export interface LeastRequestOptions {
  /** Candidates drawn per pick; Envoy's `choice_count`, default 2. */
  readonly choiceCount?: number;
  readonly random?: RandomSource;
}

/**
 * As Envoy defines it: `choiceCount` candidates are drawn at random, with replacement (the same
 * endpoint may be drawn twice), and the one with the fewest active requests wins; on a tie the
 * earlier draw wins. Candidates are drawn by weight, so weights set the long-run shares when load
 * is even and active requests steer away from a busy endpoint. (Envoy switches to an EDF schedule
 * for unequal weights; weighted draws keep one definition for both cases.)
 */
export class LeastRequestPicker<E extends LbEndpoint> implements Picker<E> {
  private readonly usable: readonly E[];
  private readonly sampler: WeightedSampler;
  private readonly choiceCount: number;
  private readonly random: RandomSource;
  private readonly failure: PickResult<E> | undefined;

  constructor(
    readonly endpoints: readonly E[],
    private readonly load: EndpointLoadView,
    options: LeastRequestOptions = {},
  ) {
    this.usable = usableEndpoints(endpoints);
    this.sampler = new WeightedSampler(this.usable.map(effectiveWeight));
    const c = options.choiceCount ?? 2;
    this.choiceCount = Number.isInteger(c) && c >= 1 ? c : 2;
    this.random = options.random ?? Math.random;
    this.failure = this.usable.length === 0 ? { kind: 'transient_failure', reason: noUsableReason(endpoints) } : undefined;
  }

  pick(): PickResult<E> {
    if (this.failure) return this.failure;
    if (this.usable.length === 1) return { kind: 'complete', endpoint: this.usable[0]! };
    let best = this.usable[this.sampler.sample(this.random)]!;
    let bestActive = this.load.activeRequests(best);
    for (let c = 1; c < this.choiceCount; c++) {
      const candidate = this.usable[this.sampler.sample(this.random)]!;
      const active = this.load.activeRequests(candidate);
      if (active < bestActive) {
        best = candidate;
        bestActive = active;
      }
    }
    return { kind: 'complete', endpoint: best };
  }
}
