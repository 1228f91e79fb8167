// Original file: proto/envoy/config/core/v3/base.proto


/**
 * Where a node (or an endpoint) runs.
 */
export interface Locality {
  'region'?: (string);
  'zone'?: (string);
  'subZone'?: (string);
}

/**
 * Where a node (or an endpoint) runs.
 */
export interface Locality__Output {
  'region': (string);
  'zone': (string);
  'subZone': (string);
}
