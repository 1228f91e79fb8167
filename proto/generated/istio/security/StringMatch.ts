// Original file: proto/istio/security/authorization.proto

import type { Empty as _google_protobuf_Empty, Empty__Output as _google_protobuf_Empty__Output } from '../../google/protobuf/Empty';

export interface StringMatch {
  'exact'?: (string);
  'prefix'?: (string);
  'suffix'?: (string);
  /**
   * Matches any non-empty value.
   */
  'presence'?: (_google_protobuf_Empty | null);
  'matchType'?: "exact"|"prefix"|"suffix"|"presence";
}

export interface StringMatch__Output {
  'exact'?: (string);
  'prefix'?: (string);
  'suffix'?: (string);
  /**
   * Matches any non-empty value.
   */
  'presence'?: (_google_protobuf_Empty__Output | null);
  'matchType'?: "exact"|"prefix"|"suffix"|"presence";
}
