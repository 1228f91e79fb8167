// Original file: proto/smesh/mesh/v1alpha1/mesh.proto


/**
 * A workload scheduled on the receiving agent's own node. Resource name: the workload uid (the
 * same uid as its istio.workload.Address resource). Sent only to the agent of that node.
 */
export interface LocalWorkload {
  'uid'?: (string);
  /**
   * Path of the pod's network namespace (e.g. /run/netns/NAME); empty when the agent must find it.
   */
  'netns'?: (string);
}

/**
 * A workload scheduled on the receiving agent's own node. Resource name: the workload uid (the
 * same uid as its istio.workload.Address resource). Sent only to the agent of that node.
 */
export interface LocalWorkload__Output {
  'uid': (string);
  /**
   * Path of the pod's network namespace (e.g. /run/netns/NAME); empty when the agent must find it.
   */
  'netns': (string);
}
