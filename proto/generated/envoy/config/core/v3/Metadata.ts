// Original file: proto/envoy/config/core/v3/base.proto

import type { Struct as _google_protobuf_Struct, Struct__Output as _google_protobuf_Struct__Output } from '../../../../google/protobuf/Struct';

/**
 * Filter-scoped metadata: reverse-DNS filter name → structured value.
 */
export interface Metadata {
  'filterMetadata'?: ({[key: string]: _google_protobuf_Struct});
}

/**
 * Filter-scoped metadata: reverse-DNS filter name → structured value.
 */
export interface Metadata__Output {
  'filterMetadata': ({[key: string]: _google_protobuf_Struct__Output});
}
