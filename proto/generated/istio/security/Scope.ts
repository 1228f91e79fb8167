// Original file: proto/istio/security/authorization.proto

export const Scope = {
  /**
   * Every workload in the mesh.
   */
  GLOBAL: 'GLOBAL',
  /**
   * Every workload in `namespace`.
   */
  NAMESPACE: 'NAMESPACE',
  /**
   * Only workloads that list this policy in Workload.authorization_policies.
   */
  WORKLOAD_SELECTOR: 'WORKLOAD_SELECTOR',
} as const;

export type Scope =
  /**
   * Every workload in the mesh.
   */
  | 'GLOBAL'
  | 0
  /**
   * Every workload in `namespace`.
   */
  | 'NAMESPACE'
  | 1
  /**
   * Only workloads that list this policy in Workload.authorization_policies.
   */
  | 'WORKLOAD_SELECTOR'
  | 2

export type Scope__Output = typeof Scope[keyof typeof Scope]
