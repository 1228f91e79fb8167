// Original file: proto/istio/security/authorization.proto

import type { Match as _istio_security_Match, Match__Output as _istio_security_Match__Output } from '../../istio/security/Match';

export interface Rules {
  /**
   * OR-ed.
   */
  'matches'?: (_istio_security_Match)[];
}

export interface Rules__Output {
  /**
   * OR-ed.
   */
  'matches': (_istio_security_Match__Output)[];
}
