// Original file: proto/envoy/service/discovery/v3/discovery.proto

import type { Node as _envoy_config_core_v3_Node, Node__Output as _envoy_config_core_v3_Node__Output } from '../../../../envoy/config/core/v3/Node';
import type { Status as _google_rpc_Status, Status__Output as _google_rpc_Status__Output } from '../../../../google/rpc/Status';

/**
 * State-of-the-world request; also the ACK (same version_info) or NACK (error_detail set).
 */
export interface DiscoveryRequest {
  /**
   * Version of the last response this client applied; empty on the first request.
   */
  'versionInfo'?: (string);
  'node'?: (_envoy_config_core_v3_Node | null);
  /**
   * Names to watch; empty means "all of this type" (wildcard).
   */
  'resourceNames'?: (string)[];
  'typeUrl'?: (string);
  /**
   * Nonce of the response being ACKed or NACKed.
   */
  'responseNonce'?: (string);
  /**
   * Set only on a NACK: why the last response was rejected.
   */
  'errorDetail'?: (_google_rpc_Status | null);
}

/**
 * State-of-the-world request; also the ACK (same version_info) or NACK (error_detail set).
 */
export interface DiscoveryRequest__Output {
  /**
   * Version of the last response this client applied; empty on the first request.
   */
  'versionInfo': (string);
  'node': (_envoy_config_core_v3_Node__Output | null);
  /**
   * Names to watch; empty means "all of this type" (wildcard).
   */
  'resourceNames': (string)[];
  'typeUrl': (string);
  /**
   * Nonce of the response being ACKed or NACKed.
   */
  'responseNonce': (string);
  /**
   * Set only on a NACK: why the last response was rejected.
   */
  'errorDetail': (_google_rpc_Status__Output | null);
}
