// Original file: proto/smesh/mesh/v1alpha1/mesh.proto


/**
 * Mesh-wide settings. Resource name: "mesh". Sent to every agent.
 */
export interface MeshConfig {
  'trustDomain'?: (string);
  /**
   * PEM root certificates agents must trust; two during a root rotation (current first).
   */
  'trustAnchors'?: (string)[];
}

/**
 * Mesh-wide settings. Resource name: "mesh". Sent to every agent.
 */
export interface MeshConfig__Output {
  'trustDomain': (string);
  /**
   * PEM root certificates agents must trust; two during a root rotation (current first).
   */
  'trustAnchors': (string)[];
}
