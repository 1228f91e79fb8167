// Original file: proto/istio/workload/workload.proto


// Original file: proto/istio/workload/workload.proto

export const _istio_workload_ApplicationTunnel_Protocol = {
  /**
   * Plain bytes.
   */
  NONE: 'NONE',
  /**
   * A PROXY protocol v2 header first (TLV 0xD0 source identity, 0xD1 target service).
   */
  PROXY: 'PROXY',
} as const;

export type _istio_workload_ApplicationTunnel_Protocol =
  /**
   * Plain bytes.
   */
  | 'NONE'
  | 0
  /**
   * A PROXY protocol v2 header first (TLV 0xD0 source identity, 0xD1 target service).
   */
  | 'PROXY'
  | 1

export type _istio_workload_ApplicationTunnel_Protocol__Output = typeof _istio_workload_ApplicationTunnel_Protocol[keyof typeof _istio_workload_ApplicationTunnel_Protocol]

/**
 * What the last hop hands to a workload that understands tunnel metadata.
 */
export interface ApplicationTunnel {
  'protocol'?: (_istio_workload_ApplicationTunnel_Protocol);
  /**
   * If set, deliver to this port instead of the original one.
   */
  'port'?: (number);
}

/**
 * What the last hop hands to a workload that understands tunnel metadata.
 */
export interface ApplicationTunnel__Output {
  'protocol': (_istio_workload_ApplicationTunnel_Protocol__Output);
  /**
   * If set, deliver to this port instead of the original one.
   */
  'port': (number);
}
