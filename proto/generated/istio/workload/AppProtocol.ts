// Original file: proto/istio/workload/workload.proto

/**
 * Application protocol of a service port (istiod: UDP, Mongo, Redis, MySQL, gRPC-Web, undeclared
 * names → UNKNOWN; HTTPS and TLS → TLS).
 */
export const AppProtocol = {
  UNKNOWN: 'UNKNOWN',
  HTTP11: 'HTTP11',
  HTTP2: 'HTTP2',
  GRPC: 'GRPC',
  TCP: 'TCP',
  TLS: 'TLS',
} as const;

/**
 * Application protocol of a service port (istiod: UDP, Mongo, Redis, MySQL, gRPC-Web, undeclared
 * names → UNKNOWN; HTTPS and TLS → TLS).
 */
export type AppProtocol =
  | 'UNKNOWN'
  | 0
  | 'HTTP11'
  | 1
  | 'HTTP2'
  | 2
  | 'GRPC'
  | 3
  | 'TCP'
  | 4
  | 'TLS'
  | 5

/**
 * Application protocol of a service port (istiod: UDP, Mongo, Redis, MySQL, gRPC-Web, undeclared
 * names → UNKNOWN; HTTPS and TLS → TLS).
 */
export type AppProtocol__Output = typeof AppProtocol[keyof typeof AppProtocol]
