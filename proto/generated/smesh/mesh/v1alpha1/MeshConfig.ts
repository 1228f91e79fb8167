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
  /**
   * Other trust domains whose identities the mesh accepts as its own (Istio's MeshConfig
   * trustDomainAliases): HBONE peers of these trust domains are accepted and AuthorizationPolicy
   * principals are expanded across them. Each a lowercase trust domain, distinct, never trust_domain.
   */
  'trustDomainAliases'?: (string)[];
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
  /**
   * Other trust domains whose identities the mesh accepts as its own (Istio's MeshConfig
   * trustDomainAliases): HBONE peers of these trust domains are accepted and AuthorizationPolicy
   * principals are expanded across them. Each a lowercase trust domain, distinct, never trust_domain.
   */
  'trustDomainAliases': (string)[];
}
