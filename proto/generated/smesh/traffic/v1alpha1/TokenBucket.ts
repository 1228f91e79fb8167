// Original file: proto/smesh/traffic/v1alpha1/traffic.proto

import type { Long } from '@grpc/proto-loader';

export interface TokenBucket {
  /**
   * Refill rate, units per second.
   */
  'ratePerSecond'?: (number | string | Long);
  /**
   * Capacity; 0 means one second's worth (= rate_per_second).
   */
  'burst'?: (number | string | Long);
}

export interface TokenBucket__Output {
  /**
   * Refill rate, units per second.
   */
  'ratePerSecond': (number);
  /**
   * Capacity; 0 means one second's worth (= rate_per_second).
   */
  'burst': (number);
}
