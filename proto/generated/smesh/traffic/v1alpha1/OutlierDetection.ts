// Original file: proto/smesh/traffic/v1alpha1/traffic.proto

import type { UInt32Value as _google_protobuf_UInt32Value, UInt32Value__Output as _google_protobuf_UInt32Value__Output } from '../../../google/protobuf/UInt32Value';
import type { Duration as _google_protobuf_Duration, Duration__Output as _google_protobuf_Duration__Output } from '../../../google/protobuf/Duration';

/**
 * An endpoint that hits a consecutive-error threshold is ejected for base_ejection_time × n
 * (n = how many times it has been ejected), at most max_ejection_time, then returns by itself.
 * Never more than max_ejection_percent of the service's endpoints are ejected at once.
 */
export interface OutlierDetection {
  /**
   * HTTP 5xx responses (and, on L4, connection resets after connect). Unset = 5; 0 disables.
   * (Not named consecutive_5xx: a digit after "_" would survive camel-casing in TypeScript.)
   */
  'consecutiveServerErrors'?: (_google_protobuf_UInt32Value | null);
  /**
   * 502/503/504 only. Unset or 0 disables.
   */
  'consecutiveGatewayErrors'?: (_google_protobuf_UInt32Value | null);
  /**
   * Failed connection attempts (TCP or HBONE). Unset = 5; 0 disables.
   */
  'consecutiveConnectFailures'?: (_google_protobuf_UInt32Value | null);
  /**
   * How often ejections are re-evaluated; unset = 10s.
   */
  'interval'?: (_google_protobuf_Duration | null);
  /**
   * Unset = 30s.
   */
  'baseEjectionTime'?: (_google_protobuf_Duration | null);
  /**
   * Unset = 300s.
   */
  'maxEjectionTime'?: (_google_protobuf_Duration | null);
  /**
   * Percentage (0-100). Unset = 10; 0 means no endpoint is ever ejected.
   */
  'maxEjectionPercent'?: (_google_protobuf_UInt32Value | null);
}

/**
 * An endpoint that hits a consecutive-error threshold is ejected for base_ejection_time × n
 * (n = how many times it has been ejected), at most max_ejection_time, then returns by itself.
 * Never more than max_ejection_percent of the service's endpoints are ejected at once.
 */
export interface OutlierDetection__Output {
  /**
   * HTTP 5xx responses (and, on L4, connection resets after connect). Unset = 5; 0 disables.
   * (Not named consecutive_5xx: a digit after "_" would survive camel-casing in TypeScript.)
   */
  'consecutiveServerErrors': (_google_protobuf_UInt32Value__Output | null);
  /**
   * 502/503/504 only. Unset or 0 disables.
   */
  'consecutiveGatewayErrors': (_google_protobuf_UInt32Value__Output | null);
  /**
   * Failed connection attempts (TCP or HBONE). Unset = 5; 0 disables.
   */
  'consecutiveConnectFailures': (_google_protobuf_UInt32Value__Output | null);
  /**
   * How often ejections are re-evaluated; unset = 10s.
   */
  'interval': (_google_protobuf_Duration__Output | null);
  /**
   * Unset = 30s.
   */
  'baseEjectionTime': (_google_protobuf_Duration__Output | null);
  /**
   * Unset = 300s.
   */
  'maxEjectionTime': (_google_protobuf_Duration__Output | null);
  /**
   * Percentage (0-100). Unset = 10; 0 means no endpoint is ever ejected.
   */
  'maxEjectionPercent': (_google_protobuf_UInt32Value__Output | null);
}
