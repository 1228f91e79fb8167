// Original file: proto/smesh/traffic/v1alpha1/traffic.proto

import type { Duration as _google_protobuf_Duration, Duration__Output as _google_protobuf_Duration__Output } from '../../../google/protobuf/Duration';
import type { Long } from '@grpc/proto-loader';

export interface _smesh_traffic_v1alpha1_ConsistentHash_HttpCookie {
  'name'?: (string);
  /**
   * Cookie path; empty means none.
   */
  'path'?: (string);
  /**
   * If set and the cookie is missing, the agent issues it with this lifetime.
   */
  'ttl'?: (_google_protobuf_Duration | null);
}

export interface _smesh_traffic_v1alpha1_ConsistentHash_HttpCookie__Output {
  'name': (string);
  /**
   * Cookie path; empty means none.
   */
  'path': (string);
  /**
   * If set and the cookie is missing, the agent issues it with this lifetime.
   */
  'ttl': (_google_protobuf_Duration__Output | null);
}

export interface ConsistentHash {
  'httpHeaderName'?: (string);
  'httpCookie'?: (_smesh_traffic_v1alpha1_ConsistentHash_HttpCookie | null);
  /**
   * The client's IP address.
   */
  'useSourceIp'?: (boolean);
  'httpQueryParameterName'?: (string);
  /**
   * Size of the lookup table (Maglev); should be prime. 0 means 65537.
   */
  'tableSize'?: (number | string | Long);
  /**
   * What is hashed. HTTP keys need an HTTP port; on L4 only use_source_ip applies.
   */
  'hashKey'?: "httpHeaderName"|"httpCookie"|"useSourceIp"|"httpQueryParameterName";
}

export interface ConsistentHash__Output {
  'httpHeaderName'?: (string);
  'httpCookie'?: (_smesh_traffic_v1alpha1_ConsistentHash_HttpCookie__Output | null);
  /**
   * The client's IP address.
   */
  'useSourceIp'?: (boolean);
  'httpQueryParameterName'?: (string);
  /**
   * Size of the lookup table (Maglev); should be prime. 0 means 65537.
   */
  'tableSize': (number);
  /**
   * What is hashed. HTTP keys need an HTTP port; on L4 only use_source_ip applies.
   */
  'hashKey'?: "httpHeaderName"|"httpCookie"|"useSourceIp"|"httpQueryParameterName";
}
