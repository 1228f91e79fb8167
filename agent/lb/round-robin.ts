// Smooth weighted round robin (nginx's definition): exact weight proportions, interleaved rather than in bursts.
import { effectiveWeight, noUsableReason, usableEndpoints, type LbEndpoint } from './endpoint';
import type { PickResult, Picker } from './picker';
import { unit, type RandomSource } from './sampling';

/**
 * nginx `ngx_http_upstream_get_peer`: on every pick each endpoint's current weight grows by its
 * weight; the largest current weight wins (first on a tie) and is reduced by the sum of weights.
 * Over any window of sum-of-weights picks each endpoint is picked exactly `weight` times, and
 * weights {5,1,1} give a a b a c a a rather than a a a a a b c.
 *
 * Equal weights degrade to plain round robin. The list is rotated by a random start so proxies
 * (and pickers rebuilt after an endpoint update) do not all begin with the first endpoint.
 */
export class WeightedRoundRobinPicker<E extends LbEndpoint> implements Picker<E> {
  private readonly usable: readonly E[];
  private readonly weights: Float64Array;
  private readonly current: Float64Array;
  private readonly total: number;
  private readonly failure: PickResult<E> | undefined;

  constructor(
    readonly endpoints: readonly E[],
    random: RandomSource = Math.random,
  ) {
    const usable = usableEndpoints(endpoints);
    const n = usable.length;
    const start = n > 0 ? Math.floor(unit(random) * n) : 0;
    this.usable = n > 0 ? [...usable.slice(start), ...usable.slice(0, start)] : [];
    this.weights = Float64Array.from(this.usable, effectiveWeight);
    this.current = new Float64Array(n);
    this.total = this.weights.reduce((a, b) => a + b, 0);
    this.failure = n === 0 ? { kind: 'transient_failure', reason: noUsableReason(endpoints) } : undefined;
  }

  pick(): PickResult<E> {
    if (this.failure) return this.failure;
    let best = 0;
    for (let i = 0; i < this.current.length; i++) {
      this.current[i] += this.weights[i]!;
      if (this.current[i]! > this.current[best]!) best = i;
    }
    this.current[best] -= this.total;
    return { kind: 'complete', endpoint: this.usable[best]! };
  }
}
