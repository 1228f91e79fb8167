// Original file: proto/smesh/traffic/v1alpha1/traffic.proto


/**
 * When the client's own region has no healthy endpoint, try region `to` before any other.
 */
export interface _smesh_traffic_v1alpha1_LocalityFailover_RegionFailover {
  'from'?: (string);
  'to'?: (string);
}

/**
 * When the client's own region has no healthy endpoint, try region `to` before any other.
 */
export interface _smesh_traffic_v1alpha1_LocalityFailover_RegionFailover__Output {
  'from': (string);
  'to': (string);
}

// Original file: proto/smesh/traffic/v1alpha1/traffic.proto

export const _smesh_traffic_v1alpha1_LocalityFailover_Scope = {
  SCOPE_UNSPECIFIED: 'SCOPE_UNSPECIFIED',
  REGION: 'REGION',
  ZONE: 'ZONE',
  SUBZONE: 'SUBZONE',
  NODE: 'NODE',
} as const;

export type _smesh_traffic_v1alpha1_LocalityFailover_Scope =
  | 'SCOPE_UNSPECIFIED'
  | 0
  | 'REGION'
  | 1
  | 'ZONE'
  | 2
  | 'SUBZONE'
  | 3
  | 'NODE'
  | 4

export type _smesh_traffic_v1alpha1_LocalityFailover_Scope__Output = typeof _smesh_traffic_v1alpha1_LocalityFailover_Scope[keyof typeof _smesh_traffic_v1alpha1_LocalityFailover_Scope]

export interface LocalityFailover {
  /**
   * Scopes to keep traffic within, widest first; e.g. [REGION, ZONE] tries the client's zone,
   * then its region, then anywhere. Empty disables locality preference.
   */
  'prefer'?: (_smesh_traffic_v1alpha1_LocalityFailover_Scope)[];
  /**
   * Explicit region order for failover, consulted once the preferred scopes are exhausted.
   */
  'failover'?: (_smesh_traffic_v1alpha1_LocalityFailover_RegionFailover)[];
  /**
   * If true, never leave the preferred scopes: no endpoint there means the request fails.
   */
  'strict'?: (boolean);
}

export interface LocalityFailover__Output {
  /**
   * Scopes to keep traffic within, widest first; e.g. [REGION, ZONE] tries the client's zone,
   * then its region, then anywhere. Empty disables locality preference.
   */
  'prefer': (_smesh_traffic_v1alpha1_LocalityFailover_Scope__Output)[];
  /**
   * Explicit region order for failover, consulted once the preferred scopes are exhausted.
   */
  'failover': (_smesh_traffic_v1alpha1_LocalityFailover_RegionFailover__Output)[];
  /**
   * If true, never leave the preferred scopes: no endpoint there means the request fails.
   */
  'strict': (boolean);
}
