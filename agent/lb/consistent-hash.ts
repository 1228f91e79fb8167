// Consistent hashing for session affinity (Ketama ring hash): a key from a header, a cookie or the source IP picks a point on a ring.
import { effectiveWeight, noUsableReason, usableEndpoints, type LbEndpoint } from './endpoint';
import { derivedUnit, hashTop53, stableHash64, type Hash64 } from './hash';
import type { PickRequest, PickResult, Picker } from './picker';
import { unit, type RandomSource } from './sampling';

/** Where the affinity key comes from (Istio `consistentHash`: httpHeaderName, httpCookie, useSourceIp, httpQueryParameterName). */
export type HashSource =
  | { readonly type: 'header'; readonly name: string }
  | { readonly type: 'cookie'; readonly name: string }
  | { readonly type: 'source_ip' }
  | { readonly type: 'query_parameter'; readonly name: string };

export interface RingHashOptions {
  /** Tried in order; the first that yields a key is hashed. No key → a random point (like Envoy). */
  readonly hashOn: readonly HashSource[];
  /** Ring entries per unit of weight (Ketama uses 160 per server); default 160. */
  readonly entriesPerWeight?: number;
  /** Cap on the ring's total size; above it every endpoint's count is scaled down. Default 8M (Envoy's maximum). */
  readonly maxRingSize?: number;
  readonly random?: RandomSource;
}

export const DEFAULT_ENTRIES_PER_WEIGHT = 160;
export const DEFAULT_MAX_RING_SIZE = 8 * 1024 * 1024;

function headerValue(request: PickRequest | undefined, name: string): string | undefined {
  const v = request?.headers?.[name.toLowerCase()];
  if (v === undefined) return undefined;
  if (typeof v === 'string') return v;
  return v.length > 0 ? v.join(',') : undefined;
}

/** The value of cookie `name` in the request's Cookie header(s) (RFC 6265 `a=b; c=d`), or undefined. */
export function cookieValue(request: PickRequest | undefined, name: string): string | undefined {
  const raw = request?.headers?.['cookie'];
  if (raw === undefined) return undefined;
  const lines = typeof raw === 'string' ? [raw] : raw;
  for (const line of lines) {
    for (const part of line.split(';')) {
      const eq = part.indexOf('=');
      if (eq < 0) continue;
      if (part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
    }
  }
  return undefined;
}

/** The first value of query parameter `name` in the request path, percent-decoded when valid. */
export function queryParameterValue(request: PickRequest | undefined, name: string): string | undefined {
  const path = request?.path;
  if (path === undefined) return undefined;
  const q = path.indexOf('?');
  if (q < 0) return undefined;
  const end = path.indexOf('#', q);
  for (const pair of path.slice(q + 1, end < 0 ? undefined : end).split('&')) {
    const eq = pair.indexOf('=');
    const k = decode(eq < 0 ? pair : pair.slice(0, eq));
    if (k === name) return eq < 0 ? '' : decode(pair.slice(eq + 1));
  }
  return undefined;
}

function decode(s: string): string {
  const plus = s.replace(/\+/g, ' ');
  try {
    return decodeURIComponent(plus);
  } catch {
    return plus; // malformed escape: hash the raw text rather than fail the pick
  }
}

/**
 * The affinity key of a request, tagged with its source so a header and a cookie with the same
 * text do not collide; undefined when no source yields one (an empty value counts as absent).
 */
export function affinityKey(request: PickRequest | undefined, hashOn: readonly HashSource[]): string | undefined {
  for (const source of hashOn) {
    let v: string | undefined;
    switch (source.type) {
      case 'header':
        v = headerValue(request, source.name);
        if (v) return `h:${v}`;
        break;
      case 'cookie':
        v = cookieValue(request, source.name);
        if (v) return `c:${v}`;
        break;
      case 'source_ip':
        v = request?.sourceIp;
        if (v) return `ip:${v}`;
        break;
      case 'query_parameter':
        v = queryParameterValue(request, source.name);
        if (v) return `q:${v}`;
        break;
    }
  }
  return undefined;
}

/**
 * Ketama-style ring: an endpoint of weight w owns max(1, round(w × entriesPerWeight)) entries,
 * entry i at hash(`${key}_${i}`). A lookup takes the first entry at or after the key's hash,
 * wrapping. An endpoint's entries depend only on its own key and weight, never on the rest of
 * the set, so adding or removing (or ejecting) one endpoint moves exactly the keys whose nearest
 * entry belongs, or belonged, to it: about 1/N of them, and no key moves between the others.
 * (Envoy instead sizes the whole ring from `minimum_ring_size`, which re-slices every endpoint's
 * entries when N changes and so moves more keys than necessary.)
 */
export class RingHashPicker<E extends LbEndpoint> implements Picker<E> {
  private readonly positions: Float64Array;
  private readonly owners: readonly E[];
  private readonly hashOn: readonly HashSource[];
  private readonly random: RandomSource;
  private readonly failure: PickResult<E> | undefined;

  constructor(
    readonly endpoints: readonly E[],
    options: RingHashOptions,
  ) {
    this.hashOn = options.hashOn;
    this.random = options.random ?? Math.random;
    const usable = usableEndpoints(endpoints);
    this.failure = usable.length === 0 ? { kind: 'transient_failure', reason: noUsableReason(endpoints) } : undefined;
    const entries = buildRing(usable, options.entriesPerWeight ?? DEFAULT_ENTRIES_PER_WEIGHT, options.maxRingSize ?? DEFAULT_MAX_RING_SIZE);
    this.positions = Float64Array.from(entries, (e) => e.position);
    this.owners = entries.map((e) => e.endpoint);
  }

  get ringSize(): number {
    return this.positions.length;
  }

  pick(request?: PickRequest): PickResult<E> {
    if (this.failure) return this.failure;
    const key = affinityKey(request, this.hashOn);
    const point = key === undefined ? Math.floor(unit(this.random) * 2 ** 53) : hashTop53(stableHash64(key));
    return { kind: 'complete', endpoint: this.owners[this.lookup(point)]! };
  }

  /** Independent of the ring position, so a wrapper choosing a tier by it does not bias which part of the ring a tier sees. */
  affinity(request?: PickRequest): number | undefined {
    const key = affinityKey(request, this.hashOn);
    return key === undefined ? undefined : derivedUnit(stableHash64(key));
  }

  private lookup(point: number): number {
    let lo = 0;
    let hi = this.positions.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.positions[mid]! < point) lo = mid + 1;
      else hi = mid;
    }
    return lo === this.positions.length ? 0 : lo;
  }
}

interface RingEntry<E> {
  readonly position: number;
  readonly hash: Hash64;
  readonly endpoint: E;
}

function buildRing<E extends LbEndpoint>(usable: readonly E[], entriesPerWeight: number, maxRingSize: number): RingEntry<E>[] {
  if (usable.length === 0) return [];
  const perWeight = Number.isFinite(entriesPerWeight) && entriesPerWeight > 0 ? entriesPerWeight : DEFAULT_ENTRIES_PER_WEIGHT;
  const maxSize = Number.isFinite(maxRingSize) && maxRingSize >= usable.length ? Math.floor(maxRingSize) : DEFAULT_MAX_RING_SIZE;
  const wanted = usable.map((e) => Math.max(1, Math.round(effectiveWeight(e) * perWeight)));
  const total = wanted.reduce((a, b) => a + b, 0);
  const shrink = total > maxSize ? maxSize / total : 1;
  const entries: RingEntry<E>[] = [];
  for (let e = 0; e < usable.length; e++) {
    const endpoint = usable[e]!;
    const count = Math.max(1, Math.floor(wanted[e]! * shrink));
    for (let i = 0; i < count; i++) {
      const hash = stableHash64(`${endpoint.key}_${i}`);
      entries.push({ position: hashTop53(hash), hash, endpoint });
    }
  }
  // Ties on the top 53 bits are astronomically rare; break them on the full hash, then on key.
  entries.sort((a, b) => a.position - b.position || a.hash.lo - b.hash.lo || (a.endpoint.key < b.endpoint.key ? -1 : a.endpoint.key > b.endpoint.key ? 1 : 0));
  return entries;
}
