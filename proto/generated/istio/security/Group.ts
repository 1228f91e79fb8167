// Original file: proto/istio/security/authorization.proto

import type { Rules as _istio_security_Rules, Rules__Output as _istio_security_Rules__Output } from '../../istio/security/Rules';

/**
 * One AuthorizationPolicy rule (its from/to/when).
 */
export interface Group {
  /**
   * AND-ed.
   */
  'rules'?: (_istio_security_Rules)[];
}

/**
 * One AuthorizationPolicy rule (its from/to/when).
 */
export interface Group__Output {
  /**
   * AND-ed.
   */
  'rules': (_istio_security_Rules__Output)[];
}
