// Original file: proto/smesh/traffic/v1alpha1/traffic.proto


export interface WeightedDestination {
  /**
   * Subset name from TrafficPolicy.subsets; empty = all endpoints.
   */
  'subset'?: (string);
  'weight'?: (number);
  /**
   * Another service, "namespace/hostname"; empty = the service this policy belongs to.
   */
  'service'?: (string);
  /**
   * Target service port; 0 = the port the request arrived on.
   */
  'port'?: (number);
}

export interface WeightedDestination__Output {
  /**
   * Subset name from TrafficPolicy.subsets; empty = all endpoints.
   */
  'subset': (string);
  'weight': (number);
  /**
   * Another service, "namespace/hostname"; empty = the service this policy belongs to.
   */
  'service': (string);
  /**
   * Target service port; 0 = the port the request arrived on.
   */
  'port': (number);
}
