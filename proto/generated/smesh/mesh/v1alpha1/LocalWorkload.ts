// Original file: proto/smesh/mesh/v1alpha1/mesh.proto

import type { Long } from '@grpc/proto-loader';

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
  /**
   * Pod annotations kubernetes.io/egress-bandwidth and kubernetes.io/ingress-bandwidth in bits per
   * second (0: no limit): the agent paces what the pod sends / what is sent to it in the kernel.
   */
  'egressBandwidthBps'?: (number | string | Long);
  'ingressBandwidthBps'?: (number | string | Long);
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
  /**
   * Pod annotations kubernetes.io/egress-bandwidth and kubernetes.io/ingress-bandwidth in bits per
   * second (0: no limit): the agent paces what the pod sends / what is sent to it in the kernel.
   */
  'egressBandwidthBps': (number);
  'ingressBandwidthBps': (number);
}
