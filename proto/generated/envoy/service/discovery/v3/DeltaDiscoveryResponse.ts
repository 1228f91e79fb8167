// Original file: proto/envoy/service/discovery/v3/discovery.proto

import type { Resource as _envoy_service_discovery_v3_Resource, Resource__Output as _envoy_service_discovery_v3_Resource__Output } from '../../../../envoy/service/discovery/v3/Resource';
import type { ControlPlane as _envoy_config_core_v3_ControlPlane, ControlPlane__Output as _envoy_config_core_v3_ControlPlane__Output } from '../../../../envoy/config/core/v3/ControlPlane';

export interface DeltaDiscoveryResponse {
  /**
   * For debugging only; resource versions live on each Resource.
   */
  'systemVersionInfo'?: (string);
  /**
   * Added or changed resources.
   */
  'resources'?: (_envoy_service_discovery_v3_Resource)[];
  'typeUrl'?: (string);
  /**
   * Required; the client echoes it in response_nonce.
   */
  'nonce'?: (string);
  /**
   * Names of resources the client must drop.
   */
  'removedResources'?: (string)[];
  'controlPlane'?: (_envoy_config_core_v3_ControlPlane | null);
}

export interface DeltaDiscoveryResponse__Output {
  /**
   * For debugging only; resource versions live on each Resource.
   */
  'systemVersionInfo': (string);
  /**
   * Added or changed resources.
   */
  'resources': (_envoy_service_discovery_v3_Resource__Output)[];
  'typeUrl': (string);
  /**
   * Required; the client echoes it in response_nonce.
   */
  'nonce': (string);
  /**
   * Names of resources the client must drop.
   */
  'removedResources': (string)[];
  'controlPlane': (_envoy_config_core_v3_ControlPlane__Output | null);
}
