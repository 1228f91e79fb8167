// Original file: proto/istio/workload/workload.proto

import type { NamespacedHostname as _istio_workload_NamespacedHostname, NamespacedHostname__Output as _istio_workload_NamespacedHostname__Output } from '../../istio/workload/NamespacedHostname';
import type { NetworkAddress as _istio_workload_NetworkAddress, NetworkAddress__Output as _istio_workload_NetworkAddress__Output } from '../../istio/workload/NetworkAddress';

/**
 * A gateway or waypoint: a service (by namespace/hostname) or a raw address.
 */
export interface GatewayAddress {
  'hostname'?: (_istio_workload_NamespacedHostname | null);
  'address'?: (_istio_workload_NetworkAddress | null);
  /**
   * Port for mTLS HBONE connections (normally 15008).
   */
  'hboneMtlsPort'?: (number);
  'destination'?: "hostname"|"address";
}

/**
 * A gateway or waypoint: a service (by namespace/hostname) or a raw address.
 */
export interface GatewayAddress__Output {
  'hostname'?: (_istio_workload_NamespacedHostname__Output | null);
  'address'?: (_istio_workload_NetworkAddress__Output | null);
  /**
   * Port for mTLS HBONE connections (normally 15008).
   */
  'hboneMtlsPort': (number);
  'destination'?: "hostname"|"address";
}
