// Original file: proto/smesh/traffic/v1alpha1/traffic.proto

import type { LoadBalancer as _smesh_traffic_v1alpha1_LoadBalancer, LoadBalancer__Output as _smesh_traffic_v1alpha1_LoadBalancer__Output } from '../../../smesh/traffic/v1alpha1/LoadBalancer';
import type { ConnectionPool as _smesh_traffic_v1alpha1_ConnectionPool, ConnectionPool__Output as _smesh_traffic_v1alpha1_ConnectionPool__Output } from '../../../smesh/traffic/v1alpha1/ConnectionPool';
import type { OutlierDetection as _smesh_traffic_v1alpha1_OutlierDetection, OutlierDetection__Output as _smesh_traffic_v1alpha1_OutlierDetection__Output } from '../../../smesh/traffic/v1alpha1/OutlierDetection';

/**
 * A named part of the service's endpoints, already resolved by the control plane (the workload
 * API carries no labels, so the agent cannot evaluate selectors itself).
 */
export interface Subset {
  'name'?: (string);
  /**
   * The selector it came from; informational.
   */
  'labels'?: ({[key: string]: string});
  /**
   * Members, as istio.workload.Workload uids.
   */
  'workloadUids'?: (string)[];
  /**
   * Optional overrides for requests routed to this subset; absent ones inherit the service's.
   */
  'loadBalancer'?: (_smesh_traffic_v1alpha1_LoadBalancer | null);
  'connectionPool'?: (_smesh_traffic_v1alpha1_ConnectionPool | null);
  'outlierDetection'?: (_smesh_traffic_v1alpha1_OutlierDetection | null);
}

/**
 * A named part of the service's endpoints, already resolved by the control plane (the workload
 * API carries no labels, so the agent cannot evaluate selectors itself).
 */
export interface Subset__Output {
  'name': (string);
  /**
   * The selector it came from; informational.
   */
  'labels': ({[key: string]: string});
  /**
   * Members, as istio.workload.Workload uids.
   */
  'workloadUids': (string)[];
  /**
   * Optional overrides for requests routed to this subset; absent ones inherit the service's.
   */
  'loadBalancer': (_smesh_traffic_v1alpha1_LoadBalancer__Output | null);
  'connectionPool': (_smesh_traffic_v1alpha1_ConnectionPool__Output | null);
  'outlierDetection': (_smesh_traffic_v1alpha1_OutlierDetection__Output | null);
}
