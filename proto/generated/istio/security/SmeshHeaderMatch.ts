// Original file: proto/istio/security/authorization.proto

import type { StringMatch as _istio_security_StringMatch, StringMatch__Output as _istio_security_StringMatch__Output } from '../../istio/security/StringMatch';

/**
 * smesh extension: one request header condition. `name` is lower-case.
 */
export interface SmeshHeaderMatch {
  'name'?: (string);
  'values'?: (_istio_security_StringMatch)[];
  'notValues'?: (_istio_security_StringMatch)[];
}

/**
 * smesh extension: one request header condition. `name` is lower-case.
 */
export interface SmeshHeaderMatch__Output {
  'name': (string);
  'values': (_istio_security_StringMatch__Output)[];
  'notValues': (_istio_security_StringMatch__Output)[];
}
