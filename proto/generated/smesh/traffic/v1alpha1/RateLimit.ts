// Original file: proto/smesh/traffic/v1alpha1/traffic.proto

import type { TokenBucket as _smesh_traffic_v1alpha1_TokenBucket, TokenBucket__Output as _smesh_traffic_v1alpha1_TokenBucket__Output } from '../../../smesh/traffic/v1alpha1/TokenBucket';

/**
 * Each dimension is its own token bucket; an absent bucket means unlimited.
 */
export interface RateLimit {
  'requests'?: (_smesh_traffic_v1alpha1_TokenBucket | null);
  'connections'?: (_smesh_traffic_v1alpha1_TokenBucket | null);
  'bytes'?: (_smesh_traffic_v1alpha1_TokenBucket | null);
}

/**
 * Each dimension is its own token bucket; an absent bucket means unlimited.
 */
export interface RateLimit__Output {
  'requests': (_smesh_traffic_v1alpha1_TokenBucket__Output | null);
  'connections': (_smesh_traffic_v1alpha1_TokenBucket__Output | null);
  'bytes': (_smesh_traffic_v1alpha1_TokenBucket__Output | null);
}
