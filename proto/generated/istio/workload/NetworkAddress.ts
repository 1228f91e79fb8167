// Original file: proto/istio/workload/workload.proto


/**
 * An IP in a particular network.
 */
export interface NetworkAddress {
  'network'?: (string);
  /**
   * 4 or 16 raw bytes.
   */
  'address'?: (Buffer | Uint8Array | string);
}

/**
 * An IP in a particular network.
 */
export interface NetworkAddress__Output {
  'network': (string);
  /**
   * 4 or 16 raw bytes.
   */
  'address': (Buffer);
}
