// Original file: proto/smesh/traffic/v1alpha1/traffic.proto

import type { LocalRateLimit as _smesh_traffic_v1alpha1_LocalRateLimit, LocalRateLimit__Output as _smesh_traffic_v1alpha1_LocalRateLimit__Output } from '../../../smesh/traffic/v1alpha1/LocalRateLimit';
import type { HttpMatch as _smesh_traffic_v1alpha1_HttpMatch, HttpMatch__Output as _smesh_traffic_v1alpha1_HttpMatch__Output } from '../../../smesh/traffic/v1alpha1/HttpMatch';
import type { OverLimit as _smesh_traffic_v1alpha1_OverLimit, OverLimit__Output as _smesh_traffic_v1alpha1_OverLimit__Output } from '../../../smesh/traffic/v1alpha1/OverLimit';
import type { BytesPerSecond as _smesh_traffic_v1alpha1_BytesPerSecond, BytesPerSecond__Output as _smesh_traffic_v1alpha1_BytesPerSecond__Output } from '../../../smesh/traffic/v1alpha1/BytesPerSecond';
import type { QosClass as _smesh_traffic_v1alpha1_QosClass, QosClass__Output as _smesh_traffic_v1alpha1_QosClass__Output } from '../../../smesh/traffic/v1alpha1/QosClass';

/**
 * One resolved TrafficShaping rule: token buckets with Envoy's local-rate-limit semantics.
 */
export interface RateLimitRule {
  /**
   * "<namespace>/<TrafficShaping name>/<rule name>": names the rule in metrics, logs and /config_dump.
   */
  'name'?: (string);
  /**
   * Destination service "namespace/hostname" the rule is limited to; empty = every destination.
   */
  'service'?: (string);
  /**
   * New connections (outbound: captured; inbound: HBONE CONNECT streams).
   */
  'connectionRate'?: (_smesh_traffic_v1alpha1_LocalRateLimit | null);
  /**
   * Concurrent connections; 0 = unlimited.
   */
  'maxConnections'?: (number);
  /**
   * HTTP requests (ports handled as HTTP only).
   */
  'requestRate'?: (_smesh_traffic_v1alpha1_LocalRateLimit | null);
  /**
   * Which requests request_rate counts; OR-ed, empty = every request. Only path, method and headers are used.
   */
  'requestMatch'?: (_smesh_traffic_v1alpha1_HttpMatch)[];
  /**
   * What happens to a connection over connection_rate or max_connections.
   */
  'overLimit'?: (_smesh_traffic_v1alpha1_OverLimit | null);
  /**
   * Relay bandwidth each way; over it the engine stops reading that side until its bucket refills (never drops).
   */
  'bytesPerSecond'?: (_smesh_traffic_v1alpha1_BytesPerSecond | null);
  /**
   * Destination service port (1-65535) the rule is limited to; 0 = every port. Requires service.
   */
  'port'?: (number);
  /**
   * QoS of the connections this rule matches; overrides TrafficShaping.qos field by field.
   */
  'qos'?: (_smesh_traffic_v1alpha1_QosClass | null);
}

/**
 * One resolved TrafficShaping rule: token buckets with Envoy's local-rate-limit semantics.
 */
export interface RateLimitRule__Output {
  /**
   * "<namespace>/<TrafficShaping name>/<rule name>": names the rule in metrics, logs and /config_dump.
   */
  'name': (string);
  /**
   * Destination service "namespace/hostname" the rule is limited to; empty = every destination.
   */
  'service': (string);
  /**
   * New connections (outbound: captured; inbound: HBONE CONNECT streams).
   */
  'connectionRate': (_smesh_traffic_v1alpha1_LocalRateLimit__Output | null);
  /**
   * Concurrent connections; 0 = unlimited.
   */
  'maxConnections': (number);
  /**
   * HTTP requests (ports handled as HTTP only).
   */
  'requestRate': (_smesh_traffic_v1alpha1_LocalRateLimit__Output | null);
  /**
   * Which requests request_rate counts; OR-ed, empty = every request. Only path, method and headers are used.
   */
  'requestMatch': (_smesh_traffic_v1alpha1_HttpMatch__Output)[];
  /**
   * What happens to a connection over connection_rate or max_connections.
   */
  'overLimit': (_smesh_traffic_v1alpha1_OverLimit__Output | null);
  /**
   * Relay bandwidth each way; over it the engine stops reading that side until its bucket refills (never drops).
   */
  'bytesPerSecond': (_smesh_traffic_v1alpha1_BytesPerSecond__Output | null);
  /**
   * Destination service port (1-65535) the rule is limited to; 0 = every port. Requires service.
   */
  'port': (number);
  /**
   * QoS of the connections this rule matches; overrides TrafficShaping.qos field by field.
   */
  'qos': (_smesh_traffic_v1alpha1_QosClass__Output | null);
}
