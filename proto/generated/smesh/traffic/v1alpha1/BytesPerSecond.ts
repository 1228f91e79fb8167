// Original file: proto/smesh/traffic/v1alpha1/traffic.proto

import type { Long } from '@grpc/proto-loader';

/**
 * Bytes per second each way over all connections a rule's bucket covers (per source workload outbound, per
 * destination service or workload inbound), in bits per second as the Kubernetes bandwidth annotations; 0 = no limit.
 */
export interface BytesPerSecond {
  /**
   * Client → server (what the connection's originator sends).
   */
  'uploadBps'?: (number | string | Long);
  /**
   * Server → client.
   */
  'downloadBps'?: (number | string | Long);
}

/**
 * Bytes per second each way over all connections a rule's bucket covers (per source workload outbound, per
 * destination service or workload inbound), in bits per second as the Kubernetes bandwidth annotations; 0 = no limit.
 */
export interface BytesPerSecond__Output {
  /**
   * Client → server (what the connection's originator sends).
   */
  'uploadBps': (number);
  /**
   * Server → client.
   */
  'downloadBps': (number);
}
