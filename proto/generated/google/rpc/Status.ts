// Original file: proto/google/rpc/status.proto

import type { Any as _google_protobuf_Any, Any__Output as _google_protobuf_Any__Output } from '../../google/protobuf/Any';

/**
 * An error outcome: a canonical gRPC status code, a text for humans, and typed details.
 */
export interface Status {
  /**
   * One of the gRPC status codes (google.rpc.Code); 0 means OK.
   */
  'code'?: (number);
  /**
   * Developer-facing explanation, in English.
   */
  'message'?: (string);
  /**
   * Structured details; each Any names its own type.
   */
  'details'?: (_google_protobuf_Any)[];
}

/**
 * An error outcome: a canonical gRPC status code, a text for humans, and typed details.
 */
export interface Status__Output {
  /**
   * One of the gRPC status codes (google.rpc.Code); 0 means OK.
   */
  'code': (number);
  /**
   * Developer-facing explanation, in English.
   */
  'message': (string);
  /**
   * Structured details; each Any names its own type.
   */
  'details': (_google_protobuf_Any__Output)[];
}
