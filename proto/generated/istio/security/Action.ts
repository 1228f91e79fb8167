// Original file: proto/istio/security/authorization.proto

export const Action = {
  ALLOW: 'ALLOW',
  DENY: 'DENY',
  /**
   * smesh extension (istiod never sends it): matching traffic is marked in the access log; the
   * decision is unchanged. Numbered far from Istio's values so a future upstream value cannot clash.
   */
  SMESH_AUDIT: 'SMESH_AUDIT',
} as const;

export type Action =
  | 'ALLOW'
  | 0
  | 'DENY'
  | 1
  /**
   * smesh extension (istiod never sends it): matching traffic is marked in the access log; the
   * decision is unchanged. Numbered far from Istio's values so a future upstream value cannot clash.
   */
  | 'SMESH_AUDIT'
  | 100

export type Action__Output = typeof Action[keyof typeof Action]
