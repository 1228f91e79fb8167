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

export type TunnelProtocol__Output = typeof TunnelProtocol[keyof typeof TunnelProtocol]
