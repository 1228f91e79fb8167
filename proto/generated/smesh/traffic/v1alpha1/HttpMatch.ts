// Original file: proto/smesh/traffic/v1alpha1/traffic.proto

import type { StringMatch as _smesh_traffic_v1alpha1_StringMatch, StringMatch__Output as _smesh_traffic_v1alpha1_StringMatch__Output } from '../../../smesh/traffic/v1alpha1/StringMatch';

/**
 * All set fields must hold.
 */
export interface HttpMatch {
  'path'?: (_smesh_traffic_v1alpha1_StringMatch | null);
  /**
   * Upper-case method, e.g. exact "GET".
   */
  'method'?: (_smesh_traffic_v1alpha1_StringMatch | null);
  /**
   * Key: lower-case header name.
   */
  'headers'?: ({[key: string]: _smesh_traffic_v1alpha1_StringMatch});
  /**
   * Service port the request arrived on; 0 = any.
   */
  'port'?: (number);
}

/**
 * All set fields must hold.
 */
export interface HttpMatch__Output {
  'path': (_smesh_traffic_v1alpha1_StringMatch__Output | null);
  /**
   * Upper-case method, e.g. exact "GET".
   */
  'method': (_smesh_traffic_v1alpha1_StringMatch__Output | null);
  /**
   * Key: lower-case header name.
   */
  'headers': ({[key: string]: _smesh_traffic_v1alpha1_StringMatch__Output});
  /**
   * Service port the request arrived on; 0 = any.
   */
  'port': (number);
}
