// Original file: proto/smesh/traffic/v1alpha1/traffic.proto

import type { RateLimit as _smesh_traffic_v1alpha1_RateLimit, RateLimit__Output as _smesh_traffic_v1alpha1_RateLimit__Output } from '../../../smesh/traffic/v1alpha1/RateLimit';
import type { RateLimitRule as _smesh_traffic_v1alpha1_RateLimitRule, RateLimitRule__Output as _smesh_traffic_v1alpha1_RateLimitRule__Output } from '../../../smesh/traffic/v1alpha1/RateLimitRule';
import type { QosClass as _smesh_traffic_v1alpha1_QosClass, QosClass__Output as _smesh_traffic_v1alpha1_QosClass__Output } from '../../../smesh/traffic/v1alpha1/QosClass';

/**
 * Per-workload shaping on the shared node proxy, so one noisy pod cannot starve its neighbours.
 * Delta name: the workload's uid (istio.workload.Workload.uid). Applies to traffic the workload
 * originates through the proxy.
 */
export interface TrafficShaping {
  'workloadUid'?: (string);
  /**
   * Token buckets over all of the workload's outbound traffic.
   */
  'limits'?: (_smesh_traffic_v1alpha1_RateLimit | null);
  /**
   * Concurrent connections the workload may hold open through the proxy; 0 = unlimited.
   */
  'maxConnections'?: (number);
  /**
   * Relative share of the proxy when it is saturated: a workload with weight 2 gets twice the
   * service of one with weight 1. 0 means 1. (A weight belongs to the competing workload, not to
   * a destination, which is why it lives here and not on TrafficPolicy.)
   */
  'fairShareWeight'?: (number);
  /**
   * Rate-limit rules (smesh.io/v1alpha1 TrafficShaping spec.outbound) on what this workload originates,
   * enforced by its node's outbound proxy with buckets per source workload. Every rule must admit.
   */
  'outbound'?: (_smesh_traffic_v1alpha1_RateLimitRule)[];
  /**
   * Rate-limit rules (spec.inbound) on what this workload receives, enforced by its node's inbound proxy;
   * with `service` set, one set of buckets per destination service on that node, else per workload.
   */
  'inbound'?: (_smesh_traffic_v1alpha1_RateLimitRule)[];
  /**
   * Resource-level QoS (spec.priority, spec.weight, spec.dscp) of the selected workloads' connections through the
   * node proxy, as source (outbound) and as destination (inbound); a matching rule's own qos overrides it field by
   * field. Absent = normal priority, weight 100, no DSCP. (Supersedes fair_share_weight, which stays unused.)
   */
  'qos'?: (_smesh_traffic_v1alpha1_QosClass | null);
}

/**
 * Per-workload shaping on the shared node proxy, so one noisy pod cannot starve its neighbours.
 * Delta name: the workload's uid (istio.workload.Workload.uid). Applies to traffic the workload
 * originates through the proxy.
 */
export interface TrafficShaping__Output {
  'workloadUid': (string);
  /**
   * Token buckets over all of the workload's outbound traffic.
   */
  'limits': (_smesh_traffic_v1alpha1_RateLimit__Output | null);
  /**
   * Concurrent connections the workload may hold open through the proxy; 0 = unlimited.
   */
  'maxConnections': (number);
  /**
   * Relative share of the proxy when it is saturated: a workload with weight 2 gets twice the
   * service of one with weight 1. 0 means 1. (A weight belongs to the competing workload, not to
   * a destination, which is why it lives here and not on TrafficPolicy.)
   */
  'fairShareWeight': (number);
  /**
   * Rate-limit rules (smesh.io/v1alpha1 TrafficShaping spec.outbound) on what this workload originates,
   * enforced by its node's outbound proxy with buckets per source workload. Every rule must admit.
   */
  'outbound': (_smesh_traffic_v1alpha1_RateLimitRule__Output)[];
  /**
   * Rate-limit rules (spec.inbound) on what this workload receives, enforced by its node's inbound proxy;
   * with `service` set, one set of buckets per destination service on that node, else per workload.
   */
  'inbound': (_smesh_traffic_v1alpha1_RateLimitRule__Output)[];
  /**
   * Resource-level QoS (spec.priority, spec.weight, spec.dscp) of the selected workloads' connections through the
   * node proxy, as source (outbound) and as destination (inbound); a matching rule's own qos overrides it field by
   * field. Absent = normal priority, weight 100, no DSCP. (Supersedes fair_share_weight, which stays unused.)
   */
  'qos': (_smesh_traffic_v1alpha1_QosClass__Output | null);
}
