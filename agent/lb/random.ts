// Weighted random (Envoy RANDOM): each pick independent, probability weight / total.
import { effectiveWeight, noUsableReason, usableEndpoints, type LbEndpoint } from './endpoint';
import type { PickResult, Picker } from './picker';
import { WeightedSampler, type RandomSource } from './sampling';

export class RandomPicker<E extends LbEndpoint> implements Picker<E> {
  private readonly usable: readonly E[];
  private readonly sampler: WeightedSampler;
  private readonly failure: PickResult<E> | undefined;

  constructor(
    readonly endpoints: readonly E[],
    private readonly random: RandomSource = Math.random,
  ) {
    this.usable = usableEndpoints(endpoints);
    this.sampler = new WeightedSampler(this.usable.map(effectiveWeight));
    this.failure = this.usable.length === 0 ? { kind: 'transient_failure', reason: noUsableReason(endpoints) } : undefined;
  }

  pick(): PickResult<E> {
    if (this.failure) return this.failure;
    return { kind: 'complete', endpoint: this.usable[this.sampler.sample(this.random)]! };
  }
}
