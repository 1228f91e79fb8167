// Original file: proto/envoy/service/discovery/v3/discovery.proto

import type { Node as _envoy_config_core_v3_Node, Node__Output as _envoy_config_core_v3_Node__Output } from '../../../../envoy/config/core/v3/Node';
import type { Status as _google_rpc_Status, Status__Output as _google_rpc_Status__Output } from '../../../../google/rpc/Status';

/**
 * Incremental request. One message may subscribe, unsubscribe and (N)ACK at once; the first
 * message for a type on a new stream may also list what the client already holds.
 */
export interface DeltaDiscoveryRequest {
  /**
   * Sent on the first request of a stream; may be omitted afterwards.
   */
  'node'?: (_envoy_config_core_v3_Node | null);
  'typeUrl'?: (string);
  /**
   * Names added to / removed from this client's interest. "*" subscribes to everything.
   */
  'resourceNamesSubscribe'?: (string)[];
  'resourceNamesUnsubscribe'?: (string)[];
  /**
   * Name → version of resources the client kept across a reconnect.
   */
  'initialResourceVersions'?: ({[key: string]: string});
  /**
   * Nonce of the response this message ACKs/NACKs; empty if it is not an ACK/NACK.
   */
  'responseNonce'?: (string);
  /**
   * Set only on a NACK.
   */
  'errorDetail'?: (_google_rpc_Status | null);
}

/**
 * Incremental request. One message may subscribe, unsubscribe and (N)ACK at once; the first
 * message for a type on a new stream may also list what the client already holds.
 */
export interface DeltaDiscoveryRequest__Output {
  /**
   * Sent on the first request of a stream; may be omitted afterwards.
   */
  'node': (_envoy_config_core_v3_Node__Output | null);
  'typeUrl': (string);
  /**
   * Names added to / removed from this client's interest. "*" subscribes to everything.
   */
  'resourceNamesSubscribe': (string)[];
  'resourceNamesUnsubscribe': (string)[];
  /**
   * Name → version of resources the client kept across a reconnect.
   */
  'initialResourceVersions': ({[key: string]: string});
  /**
   * Nonce of the response this message ACKs/NACKs; empty if it is not an ACK/NACK.
   */
  'responseNonce': (string);
  /**
   * Set only on a NACK.
   */
  'errorDetail': (_google_rpc_Status__Output | null);
}
