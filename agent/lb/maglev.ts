// Maglev consistent hashing (Eisenbud et al., NSDI 2016; Envoy MAGLEV): a prime-sized lookup table filled from per-endpoint permutations.
import { effectiveWeight, noUsableReason, usableEndpoints, type LbEndpoint } from './endpoint';
import { derivedUnit, mod64, stableHash64 } from './hash';
import { affinityKey, type HashSource } from './consistent-hash';
import type { PickRequest, PickResult, Picker } from './picker';
import { unit, type RandomSource } from './sampling';

/** Envoy's and Istio's default table size (prime). */
export const DEFAULT_MAGLEV_TABLE_SIZE = 65537;
/** Largest table size accepted (Istio's limit, prime). */
export const MAX_MAGLEV_TABLE_SIZE = 5_000_011;

export interface MaglevOptions {
  /** Tried in order; the first that yields a key is hashed. No key → a random slot (like Envoy). */
  readonly hashOn: readonly HashSource[];
  /** Rounded up to the next prime (the permutations need a prime size); default 65537. */
  readonly tableSize?: number;
  readonly random?: RandomSource;
}

function isPrime(n: number): boolean {
  if (n < 2) return false;
  if (n % 2 === 0) return n === 2;
  for (let d = 3; d * d <= n; d += 2) if (n % d === 0) return false;
  return true;
}

/** The table size used for a requested size: the next prime ≥ it, within [2, MAX_MAGLEV_TABLE_SIZE]. */
export function maglevTableSize(requested: number | undefined): number {
  let n = requested !== undefined && Number.isFinite(requested) ? Math.floor(requested) : DEFAULT_MAGLEV_TABLE_SIZE;
  n = Math.min(Math.max(n, 2), MAX_MAGLEV_TABLE_SIZE);
  while (!isPrime(n)) n++;
  return n;
}

/**
 * Each endpoint has a permutation of the table's slots: offset = h1(key) mod M,
 * skip = h2(key) mod (M − 1) + 1, slot_j = (offset + j × skip) mod M. Endpoints take turns claiming
 * their next free slot until the table is full. Weights follow Envoy: on iteration n an endpoint
 * claims a slot only while n × w ≥ its target, and each claim raises its target by the largest
 * weight, so the heaviest claims every round and one a third as heavy every third round.
 * A lookup is one hash and one array read; removing or adding an endpoint changes little more
 * than that endpoint's share of the slots. Endpoints are processed in key order so every proxy
 * builds the same table.
 */
export class MaglevPicker<E extends LbEndpoint> implements Picker<E> {
  private readonly table: Int32Array;
  private readonly usable: readonly E[];
  private readonly hashOn: readonly HashSource[];
  private readonly random: RandomSource;
  private readonly failure: PickResult<E> | undefined;

  constructor(
    readonly endpoints: readonly E[],
    options: MaglevOptions,
  ) {
    this.hashOn = options.hashOn;
    this.random = options.random ?? Math.random;
    this.usable = usableEndpoints(endpoints).sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    this.failure = this.usable.length === 0 ? { kind: 'transient_failure', reason: noUsableReason(endpoints) } : undefined;
    this.table = this.usable.length === 0 ? new Int32Array(0) : buildTable(this.usable, maglevTableSize(options.tableSize));
  }

  get tableSize(): number {
    return this.table.length;
  }

  pick(request?: PickRequest): PickResult<E> {
    if (this.failure) return this.failure;
    const key = affinityKey(request, this.hashOn);
    const slot = key === undefined ? Math.floor(unit(this.random) * this.table.length) : mod64(stableHash64(key), this.table.length);
    return { kind: 'complete', endpoint: this.usable[this.table[slot]!]! };
  }

  affinity(request?: PickRequest): number | undefined {
    const key = affinityKey(request, this.hashOn);
    return key === undefined ? undefined : derivedUnit(stableHash64(key));
  }
}

function buildTable(usable: readonly LbEndpoint[], size: number): Int32Array {
  const n = usable.length;
  const offset = new Float64Array(n);
  const skip = new Float64Array(n);
  const next = new Float64Array(n);
  const target = new Float64Array(n);
  const weights = usable.map(effectiveWeight);
  const maxWeight = weights.reduce((a, b) => Math.max(a, b), 0);
  for (let i = 0; i < n; i++) {
    offset[i] = mod64(stableHash64(usable[i]!.key), size);
    skip[i] = mod64(stableHash64(`${usable[i]!.key}#maglev-skip`), size - 1) + 1;
  }
  const table = new Int32Array(size).fill(-1);
  let filled = 0;
  for (let iteration = 1; filled < size; iteration++) {
    for (let i = 0; i < n && filled < size; i++) {
      if (iteration * weights[i]! < target[i]!) continue;
      target[i] += maxWeight;
      let slot = (offset[i]! + next[i]! * skip[i]!) % size;
      while (table[slot] !== -1) {
        next[i]++;
        slot = (offset[i]! + next[i]! * skip[i]!) % size;
      }
      table[slot] = i;
      next[i]++;
      filled++;
    }
  }
  return table;
}
