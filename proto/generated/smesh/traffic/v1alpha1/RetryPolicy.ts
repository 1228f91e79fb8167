// Original file: proto/smesh/traffic/v1alpha1/traffic.proto

import type { UInt32Value as _google_protobuf_UInt32Value, UInt32Value__Output as _google_protobuf_UInt32Value__Output } from '../../../google/protobuf/UInt32Value';
import type { Duration as _google_protobuf_Duration, Duration__Output as _google_protobuf_Duration__Output } from '../../../google/protobuf/Duration';
import type { RetryBudget as _smesh_traffic_v1alpha1_RetryBudget, RetryBudget__Output as _smesh_traffic_v1alpha1_RetryBudget__Output } from '../../../smesh/traffic/v1alpha1/RetryBudget';

export interface RetryPolicy {
  /**
   * Retries after the first attempt. Unset = 2; 0 disables retries.
   */
  'attempts'?: (_google_protobuf_UInt32Value | null);
  /**
   * Deadline of each attempt; unset = the route timeout only.
   */
  'perTryTimeout'?: (_google_protobuf_Duration | null);
  /**
   * Conditions, Envoy's names: "5xx", "gateway-error", "reset", "connect-failure",
   * "refused-stream", "retriable-4xx", or a status code such as "503". Empty =
   * ["connect-failure", "refused-stream", "503"].
   */
  'retryOn'?: (string)[];
  /**
   * Caps retries relative to live traffic so they cannot amplify an outage.
   */
  'budget'?: (_smesh_traffic_v1alpha1_RetryBudget | null);
}

export interface RetryPolicy__Output {
  /**
   * Retries after the first attempt. Unset = 2; 0 disables retries.
   */
  'attempts': (_google_protobuf_UInt32Value__Output | null);
  /**
   * Deadline of each attempt; unset = the route timeout only.
   */
  'perTryTimeout': (_google_protobuf_Duration__Output | null);
  /**
   * Conditions, Envoy's names: "5xx", "gateway-error", "reset", "connect-failure",
   * "refused-stream", "retriable-4xx", or a status code such as "503". Empty =
   * ["connect-failure", "refused-stream", "503"].
   */
  'retryOn': (string)[];
  /**
   * Caps retries relative to live traffic so they cannot amplify an outage.
   */
  'budget': (_smesh_traffic_v1alpha1_RetryBudget__Output | null);
}
