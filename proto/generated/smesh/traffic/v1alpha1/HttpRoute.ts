// Original file: proto/smesh/traffic/v1alpha1/traffic.proto

import type { HttpMatch as _smesh_traffic_v1alpha1_HttpMatch, HttpMatch__Output as _smesh_traffic_v1alpha1_HttpMatch__Output } from '../../../smesh/traffic/v1alpha1/HttpMatch';
import type { WeightedDestination as _smesh_traffic_v1alpha1_WeightedDestination, WeightedDestination__Output as _smesh_traffic_v1alpha1_WeightedDestination__Output } from '../../../smesh/traffic/v1alpha1/WeightedDestination';
import type { Duration as _google_protobuf_Duration, Duration__Output as _google_protobuf_Duration__Output } from '../../../google/protobuf/Duration';
import type { RetryPolicy as _smesh_traffic_v1alpha1_RetryPolicy, RetryPolicy__Output as _smesh_traffic_v1alpha1_RetryPolicy__Output } from '../../../smesh/traffic/v1alpha1/RetryPolicy';
import type { FaultInjection as _smesh_traffic_v1alpha1_FaultInjection, FaultInjection__Output as _smesh_traffic_v1alpha1_FaultInjection__Output } from '../../../smesh/traffic/v1alpha1/FaultInjection';

export interface HttpRoute {
  /**
   * For metrics and logs.
   */
  'name'?: (string);
  /**
   * OR-ed; empty matches every request.
   */
  'match'?: (_smesh_traffic_v1alpha1_HttpMatch)[];
  /**
   * Weighted split; weights are relative (they need not sum to 100). Empty means the whole
   * service, as if it were one destination with no subset.
   */
  'destinations'?: (_smesh_traffic_v1alpha1_WeightedDestination)[];
  /**
   * Overall deadline for the request including retries; unset = none.
   */
  'timeout'?: (_google_protobuf_Duration | null);
  'retries'?: (_smesh_traffic_v1alpha1_RetryPolicy | null);
  'fault'?: (_smesh_traffic_v1alpha1_FaultInjection | null);
}

export interface HttpRoute__Output {
  /**
   * For metrics and logs.
   */
  'name': (string);
  /**
   * OR-ed; empty matches every request.
   */
  'match': (_smesh_traffic_v1alpha1_HttpMatch__Output)[];
  /**
   * Weighted split; weights are relative (they need not sum to 100). Empty means the whole
   * service, as if it were one destination with no subset.
   */
  'destinations': (_smesh_traffic_v1alpha1_WeightedDestination__Output)[];
  /**
   * Overall deadline for the request including retries; unset = none.
   */
  'timeout': (_google_protobuf_Duration__Output | null);
  'retries': (_smesh_traffic_v1alpha1_RetryPolicy__Output | null);
  'fault': (_smesh_traffic_v1alpha1_FaultInjection__Output | null);
}
