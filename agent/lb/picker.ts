// Load-balancing pickers: immutable endpoint lists, synchronous pick() returning a discriminated union (never throws).

export type PickResult<T> =
  | { readonly kind: 'complete'; readonly endpoint: T }
  /** Nothing to pick from right now (no endpoints, all ejected). */
  | { readonly kind: 'transient_failure'; readonly reason: string }
  /** Deliberately dropped (e.g. over a limit); do not retry elsewhere. */
  | { readonly kind: 'drop'; readonly reason: string };

/**
 * What a picker may look at in the request. Everything is optional: an L4 connection has only a
 * source address, an L7 request also has headers. Header names are lower-case (Node's
 * IncomingHttpHeaders shape).
 */
export interface PickRequest {
  readonly headers?: Readonly<Record<string, string | readonly string[] | undefined>>;
  readonly sourceIp?: string;
  /** Request target (`/path?query`), for query-parameter affinity. */
  readonly path?: string;
}

export interface Picker<T> {
  readonly endpoints: readonly T[];
  pick(request?: PickRequest): PickResult<T>;
  /**
   * A request-derived value in [0, 1) that is stable for the same affinity key, or undefined when
   * the request carries none. Only affinity pickers (consistent hash) implement it; a wrapping
   * picker (locality failover) uses it instead of a random draw so the key keeps its tier too.
   */
  affinity?(request?: PickRequest): number | undefined;
}

/** A picker that never picks: nothing usable, or a configuration the factory could not accept. */
export class FailingPicker<T> implements Picker<T> {
  private readonly result: PickResult<T>;

  constructor(
    readonly endpoints: readonly T[],
    reason: string,
  ) {
    this.result = { kind: 'transient_failure', reason };
  }

  pick(): PickResult<T> {
    return this.result;
  }
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
