// Original file: proto/smesh/traffic/v1alpha1/traffic.proto

import type { LoadBalancer as _smesh_traffic_v1alpha1_LoadBalancer, LoadBalancer__Output as _smesh_traffic_v1alpha1_LoadBalancer__Output } from '../../../smesh/traffic/v1alpha1/LoadBalancer';
import type { ConnectionPool as _smesh_traffic_v1alpha1_ConnectionPool, ConnectionPool__Output as _smesh_traffic_v1alpha1_ConnectionPool__Output } from '../../../smesh/traffic/v1alpha1/ConnectionPool';
import type { OutlierDetection as _smesh_traffic_v1alpha1_OutlierDetection, OutlierDetection__Output as _smesh_traffic_v1alpha1_OutlierDetection__Output } from '../../../smesh/traffic/v1alpha1/OutlierDetection';
import type { Subset as _smesh_traffic_v1alpha1_Subset, Subset__Output as _smesh_traffic_v1alpha1_Subset__Output } from '../../../smesh/traffic/v1alpha1/Subset';
import type { HttpRoute as _smesh_traffic_v1alpha1_HttpRoute, HttpRoute__Output as _smesh_traffic_v1alpha1_HttpRoute__Output } from '../../../smesh/traffic/v1alpha1/HttpRoute';
import type { RateLimit as _smesh_traffic_v1alpha1_RateLimit, RateLimit__Output as _smesh_traffic_v1alpha1_RateLimit__Output } from '../../../smesh/traffic/v1alpha1/RateLimit';
import type { PortTrafficPolicy as _smesh_traffic_v1alpha1_PortTrafficPolicy, PortTrafficPolicy__Output as _smesh_traffic_v1alpha1_PortTrafficPolicy__Output } from '../../../smesh/traffic/v1alpha1/PortTrafficPolicy';

/**
 * Everything about how clients on this node reach one service. Delta name: "namespace/hostname",
 * the same key as the istio.workload.Service it applies to.
 */
export interface TrafficPolicy {
  'namespace'?: (string);
  'hostname'?: (string);
  /**
   * How an endpoint is picked for a new connection (L4) or request (L7).
   */
  'loadBalancer'?: (_smesh_traffic_v1alpha1_LoadBalancer | null);
  /**
   * Circuit-breaker thresholds and connection settings towards this service.
   */
  'connectionPool'?: (_smesh_traffic_v1alpha1_ConnectionPool | null);
  /**
   * Passive health checking: which endpoints to eject, and for how long.
   */
  'outlierDetection'?: (_smesh_traffic_v1alpha1_OutlierDetection | null);
  /**
   * Named groups of this service's endpoints that routes can target (canary, versions).
   */
  'subsets'?: (_smesh_traffic_v1alpha1_Subset)[];
  /**
   * HTTP routing, in order; the first route whose match holds wins. When none matches (or the
   * list is empty) requests go to all endpoints with the service-level settings above.
   * Routes apply only to ports the agent handles as HTTP; on L4-only ports they are ignored.
   */
  'routes'?: (_smesh_traffic_v1alpha1_HttpRoute)[];
  /**
   * Token buckets per source workload for traffic to this service.
   */
  'rateLimit'?: (_smesh_traffic_v1alpha1_RateLimit | null);
  /**
   * Overrides for one service port (DestinationRule portLevelSettings); absent ones inherit the
   * service-level settings above. Subsets override these in turn.
   */
  'portLevelSettings'?: (_smesh_traffic_v1alpha1_PortTrafficPolicy)[];
}

/**
 * Everything about how clients on this node reach one service. Delta name: "namespace/hostname",
 * the same key as the istio.workload.Service it applies to.
 */
export interface TrafficPolicy__Output {
  'namespace': (string);
  'hostname': (string);
  /**
   * How an endpoint is picked for a new connection (L4) or request (L7).
   */
  'loadBalancer': (_smesh_traffic_v1alpha1_LoadBalancer__Output | null);
  /**
   * Circuit-breaker thresholds and connection settings towards this service.
   */
  'connectionPool': (_smesh_traffic_v1alpha1_ConnectionPool__Output | null);
  /**
   * Passive health checking: which endpoints to eject, and for how long.
   */
  'outlierDetection': (_smesh_traffic_v1alpha1_OutlierDetection__Output | null);
  /**
   * Named groups of this service's endpoints that routes can target (canary, versions).
   */
  'subsets': (_smesh_traffic_v1alpha1_Subset__Output)[];
  /**
   * HTTP routing, in order; the first route whose match holds wins. When none matches (or the
   * list is empty) requests go to all endpoints with the service-level settings above.
   * Routes apply only to ports the agent handles as HTTP; on L4-only ports they are ignored.
   */
  'routes': (_smesh_traffic_v1alpha1_HttpRoute__Output)[];
  /**
   * Token buckets per source workload for traffic to this service.
   */
  'rateLimit': (_smesh_traffic_v1alpha1_RateLimit__Output | null);
  /**
   * Overrides for one service port (DestinationRule portLevelSettings); absent ones inherit the
   * service-level settings above. Subsets override these in turn.
   */
  'portLevelSettings': (_smesh_traffic_v1alpha1_PortTrafficPolicy__Output)[];
}
