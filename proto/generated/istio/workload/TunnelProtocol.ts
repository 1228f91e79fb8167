// Original file: proto/istio/workload/workload.proto

export const TunnelProtocol = {
  /**
   * Forward the bytes as they are.
   */
  NONE: 'NONE',
  /**
   * HTTP CONNECT over mTLS HTTP/2 to port 15008.
   */
  HBONE: 'HBONE',
  /**
   * The workload runs an Istio sidecar (istiod: endpoint label security.istio.io/tlsMode=istio and no
   * HBONE support): connect to <workload IP>:<target port> over Istio's sidecar mutual TLS.
   */
  LEGACY_ISTIO_MTLS: 'LEGACY_ISTIO_MTLS',
} as const;

export type TunnelProtocol =
  /**
   * Forward the bytes as they are.
   */
  | 'NONE'
  | 0
  /**
   * HTTP CONNECT over mTLS HTTP/2 to port 15008.
   */
  | 'HBONE'
  | 1
  /**
   * The workload runs an Istio sidecar (istiod: endpoint label security.istio.io/tlsMode=istio and no
   * HBONE support): connect to <workload IP>:<target port> over Istio's sidecar mutual TLS.
   */
  | 'LEGACY_ISTIO_MTLS'
  | 2

export type TunnelProtocol__Output = typeof TunnelProtocol[keyof typeof TunnelProtocol]
