// Original file: proto/smesh/traffic/v1alpha1/traffic.proto

import type { Duration as _google_protobuf_Duration, Duration__Output as _google_protobuf_Duration__Output } from '../../../google/protobuf/Duration';

/**
 * Envoy's token bucket (extensions.filters.http.local_ratelimit): starts full with max_tokens, gains
 * tokens_per_fill every fill_interval up to max_tokens; each admitted unit takes one token.
 */
export interface LocalRateLimit {
  /**
   * Capacity, at least 1.
   */
  'maxTokens'?: (number);
  /**
   * 0 means 1 (Envoy's default).
   */
  'tokensPerFill'?: (number);
  /**
   * At least 50ms (Envoy's minimum).
   */
  'fillInterval'?: (_google_protobuf_Duration | null);
}

/**
 * Envoy's token bucket (extensions.filters.http.local_ratelimit): starts full with max_tokens, gains
 * tokens_per_fill every fill_interval up to max_tokens; each admitted unit takes one token.
 */
export interface LocalRateLimit__Output {
  /**
   * Capacity, at least 1.
   */
  'maxTokens': (number);
  /**
   * 0 means 1 (Envoy's default).
   */
  'tokensPerFill': (number);
  /**
   * At least 50ms (Envoy's minimum).
   */
  'fillInterval': (_google_protobuf_Duration__Output | null);
}
