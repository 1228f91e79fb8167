// Original file: proto/istio/workload/workload.proto

import type { NetworkAddress as _istio_workload_NetworkAddress, NetworkAddress__Output as _istio_workload_NetworkAddress__Output } from '../../istio/workload/NetworkAddress';
import type { Port as _istio_workload_Port, Port__Output as _istio_workload_Port__Output } from '../../istio/workload/Port';
import type { GatewayAddress as _istio_workload_GatewayAddress, GatewayAddress__Output as _istio_workload_GatewayAddress__Output } from '../../istio/workload/GatewayAddress';
import type { LoadBalancing as _istio_workload_LoadBalancing, LoadBalancing__Output as _istio_workload_LoadBalancing__Output } from '../../istio/workload/LoadBalancing';
import type { IPFamilies as _istio_workload_IPFamilies, IPFamilies__Output as _istio_workload_IPFamilies__Output } from '../../istio/workload/IPFamilies';
import type { Extension as _istio_workload_Extension, Extension__Output as _istio_workload_Extension__Output } from '../../istio/workload/Extension';

/**
 * A named group of workloads reachable at shared addresses and ports. Primary key
 * "namespace/hostname".
 */
export interface Service {
  'name'?: (string);
  'namespace'?: (string);
  /**
   * FQDN, e.g. reviews.default.svc.cluster.local.
   */
  'hostname'?: (string);
  /**
   * VIPs, possibly several (networks, dual stack); empty for a headless service.
   */
  'addresses'?: (_istio_workload_NetworkAddress)[];
  /**
   * Service ports; a workload may override target_port through Workload.services.
   */
  'ports'?: (_istio_workload_Port)[];
  /**
   * If non-empty, the identities to verify instead of each workload's own.
   */
  'subjectAltNames'?: (string)[];
  /**
   * When set, traffic to this service goes through this waypoint.
   */
  'waypoint'?: (_istio_workload_GatewayAddress | null);
  /**
   * Endpoint selection preferences (locality, health) when connecting directly.
   */
  'loadBalancing'?: (_istio_workload_LoadBalancing | null);
  'ipFamilies'?: (_istio_workload_IPFamilies);
  /**
   * Opaque extra configuration; smesh does not put its traffic policy here (see
   * smesh.traffic.v1alpha1.TrafficPolicy) but keeps what istiod sends.
   */
  'extensions'?: (_istio_workload_Extension)[];
  /**
   * Preferred when a hostname matches services in several namespaces and none is in the
   * client's namespace. (An intermediate istiod revision used 11 for a Timestamp
   * creation_timestamp; the merged API uses this bool.)
   */
  'canonical'?: (boolean);
}

/**
 * A named group of workloads reachable at shared addresses and ports. Primary key
 * "namespace/hostname".
 */
export interface Service__Output {
  'name': (string);
  'namespace': (string);
  /**
   * FQDN, e.g. reviews.default.svc.cluster.local.
   */
  'hostname': (string);
  /**
   * VIPs, possibly several (networks, dual stack); empty for a headless service.
   */
  'addresses': (_istio_workload_NetworkAddress__Output)[];
  /**
   * Service ports; a workload may override target_port through Workload.services.
   */
  'ports': (_istio_workload_Port__Output)[];
  /**
   * If non-empty, the identities to verify instead of each workload's own.
   */
  'subjectAltNames': (string)[];
  /**
   * When set, traffic to this service goes through this waypoint.
   */
  'waypoint': (_istio_workload_GatewayAddress__Output | null);
  /**
   * Endpoint selection preferences (locality, health) when connecting directly.
   */
  'loadBalancing': (_istio_workload_LoadBalancing__Output | null);
  'ipFamilies': (_istio_workload_IPFamilies__Output);
  /**
   * Opaque extra configuration; smesh does not put its traffic policy here (see
   * smesh.traffic.v1alpha1.TrafficPolicy) but keeps what istiod sends.
   */
  'extensions': (_istio_workload_Extension__Output)[];
  /**
   * Preferred when a hostname matches services in several namespaces and none is in the
   * client's namespace. (An intermediate istiod revision used 11 for a Timestamp
   * creation_timestamp; the merged API uses this bool.)
   */
  'canonical': (boolean);
}
