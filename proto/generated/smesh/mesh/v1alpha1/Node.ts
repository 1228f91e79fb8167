// Original file: proto/smesh/mesh/v1alpha1/mesh.proto


/**
 * Where a node's agent listens for HBONE. Resource name: the node name. Sent to every agent.
 */
export interface Node {
  'name'?: (string);
  /**
   * IPv4 or IPv6 text form; agents dial <address>:15008.
   */
  'address'?: (string);
}

/**
 * Where a node's agent listens for HBONE. Resource name: the node name. Sent to every agent.
 */
export interface Node__Output {
  'name': (string);
  /**
   * IPv4 or IPv6 text form; agents dial <address>:15008.
   */
  'address': (string);
}
