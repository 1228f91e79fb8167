// Original file: proto/smesh/traffic/v1alpha1/traffic.proto

import type { UInt32Value as _google_protobuf_UInt32Value, UInt32Value__Output as _google_protobuf_UInt32Value__Output } from '../../../google/protobuf/UInt32Value';

// Original file: proto/smesh/traffic/v1alpha1/traffic.proto

export const _smesh_traffic_v1alpha1_QosClass_Priority = {
  /**
   * Not set here (inherit; in the end NORMAL).
   */
  PRIORITY_UNSPECIFIED: 'PRIORITY_UNSPECIFIED',
  /**
   * Served before normal and bulk when a worker has several connections ready.
   */
  LATENCY: 'LATENCY',
  NORMAL: 'NORMAL',
  /**
   * Served after latency and normal.
   */
  BULK: 'BULK',
} as const;

export type _smesh_traffic_v1alpha1_QosClass_Priority =
  /**
   * Not set here (inherit; in the end NORMAL).
   */
  | 'PRIORITY_UNSPECIFIED'
  | 0
  /**
   * Served before normal and bulk when a worker has several connections ready.
   */
  | 'LATENCY'
  | 1
  | 'NORMAL'
  | 2
  /**
   * Served after latency and normal.
   */
  | 'BULK'
  | 3

export type _smesh_traffic_v1alpha1_QosClass_Priority__Output = typeof _smesh_traffic_v1alpha1_QosClass_Priority[keyof typeof _smesh_traffic_v1alpha1_QosClass_Priority]

/**
 * Relay QoS of a connection in the native HBONE engine's workers.
 */
export interface QosClass {
  'priority'?: (_smesh_traffic_v1alpha1_QosClass_Priority);
  /**
   * Fair-share weight of the source workload inside its priority class, 1-1000; 0 = unset (100).
   */
  'weight'?: (number);
  /**
   * DSCP (0-63) marked on the engine's sockets of the connection (IP_TOS / IPV6_TCLASS); absent = not marked.
   */
  'dscp'?: (_google_protobuf_UInt32Value | null);
}

/**
 * Relay QoS of a connection in the native HBONE engine's workers.
 */
export interface QosClass__Output {
  'priority': (_smesh_traffic_v1alpha1_QosClass_Priority__Output);
  /**
   * Fair-share weight of the source workload inside its priority class, 1-1000; 0 = unset (100).
   */
  'weight': (number);
  /**
   * DSCP (0-63) marked on the engine's sockets of the connection (IP_TOS / IPV6_TCLASS); absent = not marked.
   */
  'dscp': (_google_protobuf_UInt32Value__Output | null);
}
