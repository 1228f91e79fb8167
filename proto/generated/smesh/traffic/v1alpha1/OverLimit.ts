// Original file: proto/smesh/traffic/v1alpha1/traffic.proto

import type { Duration as _google_protobuf_Duration, Duration__Output as _google_protobuf_Duration__Output } from '../../../google/protobuf/Duration';

// Original file: proto/smesh/traffic/v1alpha1/traffic.proto

export const _smesh_traffic_v1alpha1_OverLimit_Action = {
  /**
   * Reset the connection at once (inbound: answer the CONNECT with 429).
   */
  REJECT: 'REJECT',
  /**
   * Hold the connection until a token or slot is free, at most max_wait, then reject. Outbound only.
   */
  QUEUE: 'QUEUE',
} as const;

export type _smesh_traffic_v1alpha1_OverLimit_Action =
  /**
   * Reset the connection at once (inbound: answer the CONNECT with 429).
   */
  | 'REJECT'
  | 0
  /**
   * Hold the connection until a token or slot is free, at most max_wait, then reject. Outbound only.
   */
  | 'QUEUE'
  | 1

export type _smesh_traffic_v1alpha1_OverLimit_Action__Output = typeof _smesh_traffic_v1alpha1_OverLimit_Action[keyof typeof _smesh_traffic_v1alpha1_OverLimit_Action]

export interface OverLimit {
  'action'?: (_smesh_traffic_v1alpha1_OverLimit_Action);
  /**
   * QUEUE only; unset = 1s.
   */
  'maxWait'?: (_google_protobuf_Duration | null);
}

export interface OverLimit__Output {
  'action': (_smesh_traffic_v1alpha1_OverLimit_Action__Output);
  /**
   * QUEUE only; unset = 1s.
   */
  'maxWait': (_google_protobuf_Duration__Output | null);
}
