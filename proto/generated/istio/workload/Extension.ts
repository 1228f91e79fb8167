// Original file: proto/istio/workload/workload.proto

import type { Any as _google_protobuf_Any, Any__Output as _google_protobuf_Any__Output } from '../../google/protobuf/Any';

/**
 * Named opaque configuration attached to a Service or Workload.
 */
export interface Extension {
  'name'?: (string);
  'config'?: (_google_protobuf_Any | null);
}

/**
 * Named opaque configuration attached to a Service or Workload.
 */
export interface Extension__Output {
  'name': (string);
  'config': (_google_protobuf_Any__Output | null);
}
