// Locality preference with failover: same subzone/zone first, then region, then anywhere, spilling over as Envoy's priority levels do.
import { effectiveWeight, isAvailable, noUsableReason, type LbEndpoint, type Locality } from './endpoint';
import type { PickRequest, PickResult, Picker } from './picker';
import { unit, type RandomSource } from './sampling';

/** A level of topology traffic can be kept within (Istio's locality levels, plus the node). */
export type LocalityScope = 'REGION' | 'ZONE' | 'SUBZONE' | 'NODE';

/** Istio's failover order: same subzone, then zone, then region, then anywhere. */
export const DEFAULT_LOCALITY_SCOPES: readonly LocalityScope[] = ['REGION', 'ZONE', 'SUBZONE'];

/** Envoy's default overprovisioning factor: a tier keeps all its traffic while ≥ 1/1.4 ≈ 71.4% of it is healthy. */
export const DEFAULT_OVERPROVISIONING_FACTOR = 1.4;

/** Where this proxy runs. */
export interface LocalOrigin {
  readonly locality?: Locality;
  readonly node?: string;
}

export interface LocalityPreference {
  /** Scopes to keep traffic within, widest first; default REGION, ZONE, SUBZONE. */
  readonly prefer?: readonly LocalityScope[];
  /**
   * Istio `failover`: when this proxy's region is `from`, endpoints in region `to` come right after
   * the same-region tiers and before every other region.
   */
  readonly failover?: ReadonlyArray<{ readonly from: string; readonly to: string }>;
  /** Only the best tier is used: no failover at all (its endpoints gone → transient_failure). */
  readonly strict?: boolean;
  readonly overprovisioningFactor?: number;
}

/** Number of tiers for a preference: one per scope, the same-region-as-nothing tier, and failover regions. */
export function localityTierCount(preference: LocalityPreference = {}): number {
  return (preference.prefer ?? DEFAULT_LOCALITY_SCOPES).length + 2;
}

function scopeMatches(scope: LocalityScope, local: LocalOrigin, endpoint: LbEndpoint): boolean {
  switch (scope) {
    case 'REGION':
      return local.locality !== undefined && endpoint.locality?.region === local.locality.region;
    case 'ZONE':
      return local.locality !== undefined && endpoint.locality?.zone === local.locality.zone;
    case 'SUBZONE':
      return local.locality !== undefined && endpoint.locality?.subzone === local.locality.subzone;
    case 'NODE':
      return local.node !== undefined && endpoint.node === local.node;
  }
}

/**
 * The tier of an endpoint as seen from `local`: with scopes S (widest first) and d the number of
 * leading scopes that all match, tier = |S| − d; so with the default scopes tier 0 is same
 * subzone, 1 same zone, 2 same region. Endpoints matching no scope are tier |S| when their region
 * is a failover target of the local region, else |S| + 1. Without any local origin there is no
 * preference: everything is tier 0. Empty strings compare like any value, so when nobody sets
 * subzones, same zone is tier 0.
 */
export function localityTier(local: LocalOrigin | undefined, endpoint: LbEndpoint, preference: LocalityPreference = {}): number {
  if (!local || (local.locality === undefined && local.node === undefined)) return 0;
  const scopes = preference.prefer ?? DEFAULT_LOCALITY_SCOPES;
  let depth = 0;
  while (depth < scopes.length && scopeMatches(scopes[depth]!, local, endpoint)) depth++;
  if (depth > 0) return scopes.length - depth;
  const region = endpoint.locality?.region;
  const isFailoverTarget = region !== undefined && local.locality !== undefined && (preference.failover ?? []).some((f) => f.from === local.locality!.region && f.to === region);
  return isFailoverTarget ? scopes.length : scopes.length + 1;
}

export interface TierHealth {
  /** Endpoints that may receive traffic (healthy, not ejected, weight > 0). */
  readonly usable: number;
  readonly total: number;
}

/**
 * Share of traffic per tier, Envoy's priority-level definition (fractions instead of Envoy's
 * integer percentages):
 *   health(P)      = min(1, factor × usable(P) / total(P))            (0 for an empty tier)
 *   normalised     = min(1, Σ health)
 *   load(P0)       = health(P0) / normalised
 *   load(Pn)       = min(1 − Σ load(P<n), health(Pn) / normalised)
 * So a tier at ≥ 1/factor health keeps everything; below that its deficit spills to the next
 * tier(s) in order; if the tiers together are short of 1 the shares are scaled up to sum to 1
 * (the health that exists takes all traffic). All zero → no tier can take traffic.
 * Envoy's panic threshold (ignore health below 50%) is deliberately not applied: ejected endpoints
 * stay skipped, and outlier detection's max-ejection percentage bounds how many that can be.
 */
export function tierLoads(tiers: readonly TierHealth[], overprovisioningFactor = DEFAULT_OVERPROVISIONING_FACTOR): number[] {
  const factor = Number.isFinite(overprovisioningFactor) && overprovisioningFactor > 0 ? overprovisioningFactor : DEFAULT_OVERPROVISIONING_FACTOR;
  const health = tiers.map((t) => (t.total > 0 ? Math.min(1, (factor * t.usable) / t.total) : 0));
  const normalised = Math.min(
    1,
    health.reduce((a, b) => a + b, 0),
  );
  if (normalised === 0) return tiers.map(() => 0);
  const loads: number[] = [];
  let assigned = 0;
  for (const h of health) {
    const load = Math.max(0, Math.min(1 - assigned, h / normalised));
    loads.push(load);
    assigned += load;
  }
  return loads;
}

export interface LocalityFailoverOptions<E extends LbEndpoint> extends LocalityPreference {
  /** Where this proxy runs; undefined = no preference. */
  readonly local: LocalOrigin | undefined;
  readonly random?: RandomSource;
  /** Builds the picker that chooses within one tier (round robin, least request, Maglev…). */
  readonly inner: (endpoints: readonly E[]) => Picker<E>;
}

/**
 * Chooses a tier per request by `tierLoads`, then lets the tier's own picker choose the endpoint.
 * The tier draw is random, except when the inner picker is an affinity picker and the request has
 * a key: then the key decides the tier as well, so affinity holds across tiers (Envoy likewise
 * picks the priority from the request hash).
 */
export class LocalityFailoverPicker<E extends LbEndpoint> implements Picker<E> {
  /** Share of traffic per tier (index = tier), for tests and the admin view. */
  readonly loads: readonly number[];
  private readonly pickers: readonly (Picker<E> | undefined)[];
  private readonly affinitySource: Picker<E> | undefined;
  private readonly random: RandomSource;
  private readonly failure: PickResult<E> | undefined;

  constructor(
    readonly endpoints: readonly E[],
    options: LocalityFailoverOptions<E>,
  ) {
    this.random = options.random ?? Math.random;
    const tiers: E[][] = Array.from({ length: localityTierCount(options) }, () => []);
    for (const e of endpoints) tiers[localityTier(options.local, e, options)]!.push(e);
    // Strict: the best non-empty tier is the only one (its health still decides whether it can take traffic).
    const best = tiers.findIndex((t) => t.length > 0);
    const considered = options.strict ? tiers.map((t, i) => (i === best ? t : [])) : tiers;
    const health = considered.map((t) => ({ usable: t.filter((e) => isAvailable(e) && effectiveWeight(e) > 0).length, total: t.length }));
    this.loads = tierLoads(health, options.overprovisioningFactor);
    this.pickers = considered.map((t, i) => (this.loads[i]! > 0 ? options.inner(t) : undefined));
    this.affinitySource = this.pickers.find((p) => p?.affinity !== undefined);
    this.failure = this.loads.every((l) => l === 0) ? { kind: 'transient_failure', reason: noUsableReason(endpoints) } : undefined;
  }

  pick(request?: PickRequest): PickResult<E> {
    if (this.failure) return this.failure;
    const u = this.affinity(request) ?? unit(this.random);
    let cumulative = 0;
    let last: Picker<E> | undefined;
    for (let i = 0; i < this.pickers.length; i++) {
      const p = this.pickers[i];
      if (!p) continue;
      last = p;
      cumulative += this.loads[i]!;
      if (u < cumulative) return p.pick(request);
    }
    // Rounding left u just above the sum of loads: the last tier with traffic takes it.
    return last!.pick(request);
  }

  affinity(request?: PickRequest): number | undefined {
    return this.affinitySource?.affinity?.(request);
  }
}
