// Original file: proto/istio/workload/workload.proto


// Original file: proto/istio/workload/workload.proto

/**
 * For hostname-resolved endpoints: which resolved IP(s) to connect to.
 */
export const _istio_workload_LoadBalancing_DnsConnectStrategy = {
  /**
   * One resolved address, picked at random.
   */
  DEFAULT: 'DEFAULT',
  /**
   * Connect to all resolved addresses in parallel; first established wins.
   */
  FIRST_HEALTHY_RACE: 'FIRST_HEALTHY_RACE',
} as const;

/**
 * For hostname-resolved endpoints: which resolved IP(s) to connect to.
 */
export type _istio_workload_LoadBalancing_DnsConnectStrategy =
  /**
   * One resolved address, picked at random.
   */
  | 'DEFAULT'
  | 0
  /**
   * Connect to all resolved addresses in parallel; first established wins.
   */
  | 'FIRST_HEALTHY_RACE'
  | 1

/**
 * For hostname-resolved endpoints: which resolved IP(s) to connect to.
 */
export type _istio_workload_LoadBalancing_DnsConnectStrategy__Output = typeof _istio_workload_LoadBalancing_DnsConnectStrategy[keyof typeof _istio_workload_LoadBalancing_DnsConnectStrategy]

// Original file: proto/istio/workload/workload.proto

export const _istio_workload_LoadBalancing_HealthPolicy = {
  ONLY_HEALTHY: 'ONLY_HEALTHY',
  ALLOW_ALL: 'ALLOW_ALL',
} as const;

export type _istio_workload_LoadBalancing_HealthPolicy =
  | 'ONLY_HEALTHY'
  | 0
  | 'ALLOW_ALL'
  | 1

export type _istio_workload_LoadBalancing_HealthPolicy__Output = typeof _istio_workload_LoadBalancing_HealthPolicy[keyof typeof _istio_workload_LoadBalancing_HealthPolicy]

// Original file: proto/istio/workload/workload.proto

export const _istio_workload_LoadBalancing_Mode = {
  UNSPECIFIED_MODE: 'UNSPECIFIED_MODE',
  /**
   * Only endpoints matching every preference; may leave no endpoint at all.
   */
  STRICT: 'STRICT',
  /**
   * Prefer endpoints matching all preferences, dropping them one by one from the end.
   */
  FAILOVER: 'FAILOVER',
  /**
   * No endpoint selection: connect to the original destination address.
   */
  PASSTHROUGH: 'PASSTHROUGH',
} as const;

export type _istio_workload_LoadBalancing_Mode =
  | 'UNSPECIFIED_MODE'
  | 0
  /**
   * Only endpoints matching every preference; may leave no endpoint at all.
   */
  | 'STRICT'
  | 1
  /**
   * Prefer endpoints matching all preferences, dropping them one by one from the end.
   */
  | 'FAILOVER'
  | 2
  /**
   * No endpoint selection: connect to the original destination address.
   */
  | 'PASSTHROUGH'
  | 3

export type _istio_workload_LoadBalancing_Mode__Output = typeof _istio_workload_LoadBalancing_Mode[keyof typeof _istio_workload_LoadBalancing_Mode]

// Original file: proto/istio/workload/workload.proto

/**
 * Scopes, narrowest last, that traffic should preferably stay within.
 */
export const _istio_workload_LoadBalancing_Scope = {
  UNSPECIFIED_SCOPE: 'UNSPECIFIED_SCOPE',
  REGION: 'REGION',
  ZONE: 'ZONE',
  SUBZONE: 'SUBZONE',
  NODE: 'NODE',
  CLUSTER: 'CLUSTER',
  NETWORK: 'NETWORK',
} as const;

/**
 * Scopes, narrowest last, that traffic should preferably stay within.
 */
export type _istio_workload_LoadBalancing_Scope =
  | 'UNSPECIFIED_SCOPE'
  | 0
  | 'REGION'
  | 1
  | 'ZONE'
  | 2
  | 'SUBZONE'
  | 3
  | 'NODE'
  | 4
  | 'CLUSTER'
  | 5
  | 'NETWORK'
  | 6

/**
 * Scopes, narrowest last, that traffic should preferably stay within.
 */
export type _istio_workload_LoadBalancing_Scope__Output = typeof _istio_workload_LoadBalancing_Scope[keyof typeof _istio_workload_LoadBalancing_Scope]

export interface LoadBalancing {
  'routingPreference'?: (_istio_workload_LoadBalancing_Scope)[];
  'mode'?: (_istio_workload_LoadBalancing_Mode);
  'healthPolicy'?: (_istio_workload_LoadBalancing_HealthPolicy);
  'dnsConnectStrategy'?: (_istio_workload_LoadBalancing_DnsConnectStrategy);
}

export interface LoadBalancing__Output {
  'routingPreference': (_istio_workload_LoadBalancing_Scope__Output)[];
  'mode': (_istio_workload_LoadBalancing_Mode__Output);
  'healthPolicy': (_istio_workload_LoadBalancing_HealthPolicy__Output);
  'dnsConnectStrategy': (_istio_workload_LoadBalancing_DnsConnectStrategy__Output);
}
