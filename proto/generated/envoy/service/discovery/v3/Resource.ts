// Original file: proto/envoy/service/discovery/v3/discovery.proto

import type { Any as _google_protobuf_Any, Any__Output as _google_protobuf_Any__Output } from '../../../../google/protobuf/Any';
import type { Duration as _google_protobuf_Duration, Duration__Output as _google_protobuf_Duration__Output } from '../../../../google/protobuf/Duration';
import type { Metadata as _envoy_config_core_v3_Metadata, Metadata__Output as _envoy_config_core_v3_Metadata__Output } from '../../../../envoy/config/core/v3/Metadata';

/**
 * Hints for caching proxies; smesh ignores it.
 */
export interface _envoy_service_discovery_v3_Resource_CacheControl {
  'doNotCache'?: (boolean);
}

/**
 * Hints for caching proxies; smesh ignores it.
 */
export interface _envoy_service_discovery_v3_Resource_CacheControl__Output {
  'doNotCache': (boolean);
}

/**
 * A named, versioned resource inside a DeltaDiscoveryResponse.
 */
export interface Resource {
  /**
   * Per-resource version; opaque to the client.
   */
  'version'?: (string);
  /**
   * The resource itself; absent on a TTL-only heartbeat.
   */
  'resource'?: (_google_protobuf_Any | null);
  /**
   * Unique (per type) name; for istio.workload.Address a workload uid or "namespace/hostname".
   */
  'name'?: (string);
  /**
   * Other names the same resource answers to.
   */
  'aliases'?: (string)[];
  /**
   * If set, the client drops the resource when no update refreshes it within this time.
   */
  'ttl'?: (_google_protobuf_Duration | null);
  'cacheControl'?: (_envoy_service_discovery_v3_Resource_CacheControl | null);
  'metadata'?: (_envoy_config_core_v3_Metadata | null);
}

/**
 * A named, versioned resource inside a DeltaDiscoveryResponse.
 */
export interface Resource__Output {
  /**
   * Per-resource version; opaque to the client.
   */
  'version': (string);
  /**
   * The resource itself; absent on a TTL-only heartbeat.
   */
  'resource': (_google_protobuf_Any__Output | null);
  /**
   * Unique (per type) name; for istio.workload.Address a workload uid or "namespace/hostname".
   */
  'name': (string);
  /**
   * Other names the same resource answers to.
   */
  'aliases': (string)[];
  /**
   * If set, the client drops the resource when no update refreshes it within this time.
   */
  'ttl': (_google_protobuf_Duration__Output | null);
  'cacheControl': (_envoy_service_discovery_v3_Resource_CacheControl__Output | null);
  'metadata': (_envoy_config_core_v3_Metadata__Output | null);
}
