// Original file: proto/smesh/traffic/v1alpha1/traffic.proto

import type { LoadBalancer as _smesh_traffic_v1alpha1_LoadBalancer, LoadBalancer__Output as _smesh_traffic_v1alpha1_LoadBalancer__Output } from '../../../smesh/traffic/v1alpha1/LoadBalancer';
import type { ConnectionPool as _smesh_traffic_v1alpha1_ConnectionPool, ConnectionPool__Output as _smesh_traffic_v1alpha1_ConnectionPool__Output } from '../../../smesh/traffic/v1alpha1/ConnectionPool';
import type { OutlierDetection as _smesh_traffic_v1alpha1_OutlierDetection, OutlierDetection__Output as _smesh_traffic_v1alpha1_OutlierDetection__Output } from '../../../smesh/traffic/v1alpha1/OutlierDetection';

export interface PortTrafficPolicy {
  /**
   * Service port, 1-65535; each port at most once.
   */
  'port'?: (number);
  'loadBalancer'?: (_smesh_traffic_v1alpha1_LoadBalancer | null);
  'connectionPool'?: (_smesh_traffic_v1alpha1_ConnectionPool | null);
  'outlierDetection'?: (_smesh_traffic_v1alpha1_OutlierDetection | null);
}

export interface PortTrafficPolicy__Output {
  /**
   * Service port, 1-65535; each port at most once.
   */
  'port': (number);
  'loadBalancer': (_smesh_traffic_v1alpha1_LoadBalancer__Output | null);
  'connectionPool': (_smesh_traffic_v1alpha1_ConnectionPool__Output | null);
  'outlierDetection': (_smesh_traffic_v1alpha1_OutlierDetection__Output | null);
}
