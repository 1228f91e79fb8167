// Original file: proto/istio/security/authorization.proto

import type { Scope as _istio_security_Scope, Scope__Output as _istio_security_Scope__Output } from '../../istio/security/Scope';
import type { Action as _istio_security_Action, Action__Output as _istio_security_Action__Output } from '../../istio/security/Action';
import type { Group as _istio_security_Group, Group__Output as _istio_security_Group__Output } from '../../istio/security/Group';

/**
 * Delta name: "namespace/name".
 */
export interface Authorization {
  'name'?: (string);
  'namespace'?: (string);
  /**
   * Which workloads the policy applies to.
   */
  'scope'?: (_istio_security_Scope);
  'action'?: (_istio_security_Action);
  /**
   * OR-ed.
   */
  'groups'?: (_istio_security_Group)[];
  /**
   * smesh extension, ALLOW only: the rules that need L7 attributes, left out of `groups` (see the
   * file comment). OR-ed with `groups` by smesh agents; ignored by Istio consumers.
   */
  'smeshL7Groups'?: (_istio_security_Group)[];
}

/**
 * Delta name: "namespace/name".
 */
export interface Authorization__Output {
  'name': (string);
  'namespace': (string);
  /**
   * Which workloads the policy applies to.
   */
  'scope': (_istio_security_Scope__Output);
  'action': (_istio_security_Action__Output);
  /**
   * OR-ed.
   */
  'groups': (_istio_security_Group__Output)[];
  /**
   * smesh extension, ALLOW only: the rules that need L7 attributes, left out of `groups` (see the
   * file comment). OR-ed with `groups` by smesh agents; ignored by Istio consumers.
   */
  'smeshL7Groups': (_istio_security_Group__Output)[];
}
