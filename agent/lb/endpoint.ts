// What a load balancer needs to know about an endpoint: a stable key, a weight, a locality and whether it may be used.

/** Kubernetes topology of an endpoint or of this proxy; an empty string means "not set". */
export interface Locality {
  readonly region: string;
  readonly zone: string;
  readonly subzone: string;
}

/**
 * The narrow view pickers take of an endpoint. Callers carry their own payload by extending it
 * (`interface WorkloadEndpoint extends LbEndpoint { workload: Workload }`); pickers hand back the
 * same object they were given.
 */
export interface LbEndpoint {
  /**
   * Stable identity (e.g. `<workload uid>:<port>` or `ip:port`). Consistent hashing places the
   * endpoint on the ring by this key and load views look the endpoint up by it, so it must not
   * change while the endpoint lives.
   */
  readonly key: string;
  /** Relative weight; absent = 1, 0 = send nothing (draining). Negative or non-finite counts as 1. */
  readonly weight?: number;
  readonly locality?: Locality;
  /** Node the endpoint runs on, for node-local preference (scope NODE). */
  readonly node?: string;
  /** Health as the control plane reports it; absent = healthy. */
  readonly healthy?: boolean;
  /** Set by outlier detection; an ejected endpoint is skipped until it returns. */
  readonly ejected?: boolean;
}

/** The weight a picker uses: absent → 1; 0 stays 0; negative, NaN or infinite → 1 (never throw on bad input). */
export function effectiveWeight(endpoint: LbEndpoint): number {
  const w = endpoint.weight;
  if (w === undefined) return 1;
  if (w === 0) return 0;
  return Number.isFinite(w) && w > 0 ? w : 1;
}

/** Healthy and not ejected; weight is not considered (a weight-0 endpoint is healthy but idle). */
export function isAvailable(endpoint: LbEndpoint): boolean {
  return endpoint.healthy !== false && endpoint.ejected !== true;
}

/** Endpoints a picker may send to: available with a positive weight. */
export function usableEndpoints<E extends LbEndpoint>(endpoints: readonly E[]): E[] {
  return endpoints.filter((e) => isAvailable(e) && effectiveWeight(e) > 0);
}

/** Reason string for "nothing usable", saying how many were there and why they were skipped. */
export function noUsableReason(endpoints: readonly LbEndpoint[]): string {
  if (endpoints.length === 0) return 'no endpoints';
  let ejected = 0;
  let unhealthy = 0;
  let zeroWeight = 0;
  for (const e of endpoints) {
    if (e.ejected === true) ejected++;
    else if (e.healthy === false) unhealthy++;
    else if (effectiveWeight(e) === 0) zeroWeight++;
  }
  return `no usable endpoints (${endpoints.length} total: ${ejected} ejected, ${unhealthy} unhealthy, ${zeroWeight} weight 0)`;
}

export const TOPOLOGY_REGION_LABEL = 'topology.kubernetes.io/region';
export const TOPOLOGY_ZONE_LABEL = 'topology.kubernetes.io/zone';
/** Istio's subzone label; Kubernetes has no standard one. */
export const TOPOLOGY_SUBZONE_LABEL = 'topology.istio.io/subzone';

/** Locality from the well-known topology labels (a node's or a workload's); missing labels are "". */
export function localityFromLabels(labels: Readonly<Record<string, string>>): Locality {
  return {
    region: labels[TOPOLOGY_REGION_LABEL] ?? '',
    zone: labels[TOPOLOGY_ZONE_LABEL] ?? '',
    subzone: labels[TOPOLOGY_SUBZONE_LABEL] ?? '',
  };
}
