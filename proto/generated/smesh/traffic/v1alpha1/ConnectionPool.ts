// Original file: proto/smesh/traffic/v1alpha1/traffic.proto

import type { Duration as _google_protobuf_Duration, Duration__Output as _google_protobuf_Duration__Output } from '../../../google/protobuf/Duration';

/**
 * Limits count per node proxy per service (across its endpoints), like Envoy's per-cluster
 * circuit breakers. Over a limit the request or connection fails fast with a counted reason.
 * 0 means the agent's default for every field.
 */
export interface ConnectionPool {
  /**
   * Concurrent upstream connections.
   */
  'maxConnections'?: (number);
  /**
   * Requests waiting for a connection or stream.
   */
  'maxPendingRequests'?: (number);
  /**
   * Concurrent requests in flight (HTTP/2 streams included).
   */
  'maxRequests'?: (number);
  /**
   * Concurrent retries in flight.
   */
  'maxRetries'?: (number);
  /**
   * TCP + TLS (HBONE) connect timeout.
   */
  'connectTimeout'?: (_google_protobuf_Duration | null);
  /**
   * Upstream connection reuse limit; 0 = unlimited.
   */
  'maxRequestsPerConnection'?: (number);
  /**
   * Close upstream connections idle this long.
   */
  'idleTimeout'?: (_google_protobuf_Duration | null);
}

/**
 * Limits count per node proxy per service (across its endpoints), like Envoy's per-cluster
 * circuit breakers. Over a limit the request or connection fails fast with a counted reason.
 * 0 means the agent's default for every field.
 */
export interface ConnectionPool__Output {
  /**
   * Concurrent upstream connections.
   */
  'maxConnections': (number);
  /**
   * Requests waiting for a connection or stream.
   */
  'maxPendingRequests': (number);
  /**
   * Concurrent requests in flight (HTTP/2 streams included).
   */
  'maxRequests': (number);
  /**
   * Concurrent retries in flight.
   */
  'maxRetries': (number);
  /**
   * TCP + TLS (HBONE) connect timeout.
   */
  'connectTimeout': (_google_protobuf_Duration__Output | null);
  /**
   * Upstream connection reuse limit; 0 = unlimited.
   */
  'maxRequestsPerConnection': (number);
  /**
   * Close upstream connections idle this long.
   */
  'idleTimeout': (_google_protobuf_Duration__Output | null);
}
