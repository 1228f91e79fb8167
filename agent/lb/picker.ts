// Load-balancing pickers: immutable endpoint lists, synchronous pick() returning a discriminated union (never throws).

export type PickResult<T> =
  | { readonly kind: 'complete'; readonly endpoint: T }
  /** Nothing to pick from right now (no endpoints, all ejected). */
  | { readonly kind: 'transient_failure'; readonly reason: string }
  /** Deliberately dropped (e.g. over a limit); do not retry elsewhere. */
  | { readonly kind: 'drop'; readonly reason: string };

export interface Picker<T> {
  readonly endpoints: readonly T[];
  pick(): PickResult<T>;
}

/** Round robin over a fixed list; the cursor is the only state. */
export class RoundRobinPicker<T> implements Picker<T> {
  private next: number;

  constructor(
    readonly endpoints: readonly T[],
    start = 0,
  ) {
    this.next = endpoints.length > 0 ? ((start % endpoints.length) + endpoints.length) % endpoints.length : 0;
  }

  pick(): PickResult<T> {
    const n = this.endpoints.length;
    if (n === 0) return { kind: 'transient_failure', reason: 'no endpoints' };
    const endpoint = this.endpoints[this.next]!;
    this.next = (this.next + 1) % n;
    return { kind: 'complete', endpoint };
  }

  /** Where the next pick starts (used to carry the cursor across endpoint-list updates). */
  get cursor(): number {
    return this.next;
  }
}

/**
 * One round-robin picker per key (a service), rebuilt when that key's endpoint list object
 * changes (the state store publishes new arrays per snapshot); the cursor carries over so an
 * update does not send the next connection back to the first endpoint.
 */
export class RoundRobinPickers<T> {
  private readonly pickers = new Map<string, RoundRobinPicker<T>>();

  pick(key: string, endpoints: readonly T[]): PickResult<T> {
    let p = this.pickers.get(key);
    if (!p || p.endpoints !== endpoints) {
      p = new RoundRobinPicker(endpoints, p?.cursor ?? 0);
      this.pickers.set(key, p);
    }
    return p.pick();
  }

  /** Drops pickers for keys no longer present. */
  retain(keys: Iterable<string>): void {
    const keep = new Set(keys);
    for (const k of this.pickers.keys()) if (!keep.has(k)) this.pickers.delete(k);
  }
}
