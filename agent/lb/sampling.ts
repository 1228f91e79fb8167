// Weighted random sampling over a fixed endpoint list (prefix sums + binary search), for the power-of-two-choices pickers.

/** A source of uniform numbers in [0, 1); injected so pickers are deterministic under test. */
export type RandomSource = () => number;

/** Clamps a random draw into [0, 1) so a misbehaving source cannot index out of range. */
export function unit(random: RandomSource): number {
  const r = random();
  if (!(r >= 0)) return 0; // NaN or negative
  return r < 1 ? r : 1 - Number.EPSILON;
}

export class WeightedSampler {
  /** prefix[i] = sum of weights[0..i] (inclusive). */
  private readonly prefix: Float64Array;
  readonly total: number;

  /** Weights must be positive and finite (callers pass `effectiveWeight` of usable endpoints). */
  constructor(private readonly weights: readonly number[]) {
    this.prefix = new Float64Array(weights.length);
    let sum = 0;
    for (let i = 0; i < weights.length; i++) {
      sum += weights[i]!;
      this.prefix[i] = sum;
    }
    this.total = sum;
  }

  get size(): number {
    return this.weights.length;
  }

  /** An index drawn with probability weight/total. */
  sample(random: RandomSource): number {
    return this.indexAt(unit(random) * this.total);
  }

  /** An index other than `excluded`, drawn by weight among the rest (size must be ≥ 2). */
  sampleExcluding(excluded: number, random: RandomSource): number {
    const w = this.weights[excluded]!;
    let u = unit(random) * (this.total - w);
    const before = excluded === 0 ? 0 : this.prefix[excluded - 1]!;
    if (u >= before) u += w;
    const i = this.indexAt(u);
    // Floating-point edge: landing exactly on the excluded slot's boundary.
    return i === excluded ? (excluded + 1) % this.weights.length : i;
  }

  /** First index whose inclusive prefix sum exceeds `u`. */
  private indexAt(u: number): number {
    let lo = 0;
    let hi = this.prefix.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.prefix[mid]! > u) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  }
}
