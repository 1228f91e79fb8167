// Original file: proto/istio/workload/workload.proto

/**
 * How a workload's addresses identify it.
 */
export const NetworkMode = {
  /**
   * The address (within its network) identifies exactly this workload.
   */
  STANDARD: 'STANDARD',
  /**
   * The address is shared (host network); never resolve a workload from it.
   */
  HOST_NETWORK: 'HOST_NETWORK',
} as const;

/**
 * How a workload's addresses identify it.
 */
export type NetworkMode =
  /**
   * The address (within its network) identifies exactly this workload.
   */
  | 'STANDARD'
  | 0
  /**
   * The address is shared (host network); never resolve a workload from it.
   */
  | 'HOST_NETWORK'
  | 1

/**
 * How a workload's addresses identify it.
 */
export type NetworkMode__Output = typeof NetworkMode[keyof typeof NetworkMode]
