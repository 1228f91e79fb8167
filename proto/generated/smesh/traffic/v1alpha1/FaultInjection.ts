// Original file: proto/smesh/traffic/v1alpha1/traffic.proto

import type { Duration as _google_protobuf_Duration, Duration__Output as _google_protobuf_Duration__Output } from '../../../google/protobuf/Duration';

export interface _smesh_traffic_v1alpha1_FaultInjection_Abort {
  /**
   * Status returned instead of forwarding.
   */
  'httpStatus'?: (number);
  /**
   * Share of requests aborted, 0-100.
   */
  'percent'?: (number | string);
}

export interface _smesh_traffic_v1alpha1_FaultInjection_Abort__Output {
  /**
   * Status returned instead of forwarding.
   */
  'httpStatus': (number);
  /**
   * Share of requests aborted, 0-100.
   */
  'percent': (number);
}

export interface _smesh_traffic_v1alpha1_FaultInjection_Delay {
  'fixedDelay'?: (_google_protobuf_Duration | null);
  /**
   * Share of requests delayed, 0-100.
   */
  'percent'?: (number | string);
}

export interface _smesh_traffic_v1alpha1_FaultInjection_Delay__Output {
  'fixedDelay': (_google_protobuf_Duration__Output | null);
  /**
   * Share of requests delayed, 0-100.
   */
  'percent': (number);
}

export interface FaultInjection {
  'delay'?: (_smesh_traffic_v1alpha1_FaultInjection_Delay | null);
  'abort'?: (_smesh_traffic_v1alpha1_FaultInjection_Abort | null);
}

export interface FaultInjection__Output {
  'delay': (_smesh_traffic_v1alpha1_FaultInjection_Delay__Output | null);
  'abort': (_smesh_traffic_v1alpha1_FaultInjection_Abort__Output | null);
}
