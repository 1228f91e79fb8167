// Original file: proto/smesh/traffic/v1alpha1/traffic.proto

import type { ConsistentHash as _smesh_traffic_v1alpha1_ConsistentHash, ConsistentHash__Output as _smesh_traffic_v1alpha1_ConsistentHash__Output } from '../../../smesh/traffic/v1alpha1/ConsistentHash';
import type { LocalityFailover as _smesh_traffic_v1alpha1_LocalityFailover, LocalityFailover__Output as _smesh_traffic_v1alpha1_LocalityFailover__Output } from '../../../smesh/traffic/v1alpha1/LocalityFailover';
import type { Duration as _google_protobuf_Duration, Duration__Output as _google_protobuf_Duration__Output } from '../../../google/protobuf/Duration';

// Original file: proto/smesh/traffic/v1alpha1/traffic.proto

export const _smesh_traffic_v1alpha1_LoadBalancer_Simple = {
  /**
   * The agent's default (LEAST_REQUEST).
   */
  SIMPLE_UNSPECIFIED: 'SIMPLE_UNSPECIFIED',
  ROUND_ROBIN: 'ROUND_ROBIN',
  /**
   * Power of d random choices (d = choice_count), fewest outstanding requests wins.
   */
  LEAST_REQUEST: 'LEAST_REQUEST',
  /**
   * Lowest peak-EWMA latency × (outstanding + 1), as in Linkerd.
   */
  PEAK_EWMA: 'PEAK_EWMA',
  RANDOM: 'RANDOM',
} as const;

export type _smesh_traffic_v1alpha1_LoadBalancer_Simple =
  /**
   * The agent's default (LEAST_REQUEST).
   */
  | 'SIMPLE_UNSPECIFIED'
  | 0
  | 'ROUND_ROBIN'
  | 1
  /**
   * Power of d random choices (d = choice_count), fewest outstanding requests wins.
   */
  | 'LEAST_REQUEST'
  | 2
  /**
   * Lowest peak-EWMA latency × (outstanding + 1), as in Linkerd.
   */
  | 'PEAK_EWMA'
  | 3
  | 'RANDOM'
  | 4

export type _smesh_traffic_v1alpha1_LoadBalancer_Simple__Output = typeof _smesh_traffic_v1alpha1_LoadBalancer_Simple[keyof typeof _smesh_traffic_v1alpha1_LoadBalancer_Simple]

export interface LoadBalancer {
  'simple'?: (_smesh_traffic_v1alpha1_LoadBalancer_Simple);
  /**
   * Session affinity: the same key keeps reaching the same endpoint while it stays healthy.
   */
  'consistentHash'?: (_smesh_traffic_v1alpha1_ConsistentHash | null);
  /**
   * Prefer nearby endpoints, failing over outwards.
   */
  'locality'?: (_smesh_traffic_v1alpha1_LocalityFailover | null);
  /**
   * LEAST_REQUEST only: how many random endpoints to compare; 0 means 2.
   */
  'choiceCount'?: (number);
  /**
   * PEAK_EWMA only: decay time of the latency average; unset means 10s.
   */
  'ewmaDecay'?: (_google_protobuf_Duration | null);
  'policy'?: "simple"|"consistentHash";
}

export interface LoadBalancer__Output {
  'simple'?: (_smesh_traffic_v1alpha1_LoadBalancer_Simple__Output);
  /**
   * Session affinity: the same key keeps reaching the same endpoint while it stays healthy.
   */
  'consistentHash'?: (_smesh_traffic_v1alpha1_ConsistentHash__Output | null);
  /**
   * Prefer nearby endpoints, failing over outwards.
   */
  'locality': (_smesh_traffic_v1alpha1_LocalityFailover__Output | null);
  /**
   * LEAST_REQUEST only: how many random endpoints to compare; 0 means 2.
   */
  'choiceCount': (number);
  /**
   * PEAK_EWMA only: decay time of the latency average; unset means 10s.
   */
  'ewmaDecay': (_google_protobuf_Duration__Output | null);
  'policy'?: "simple"|"consistentHash";
}
