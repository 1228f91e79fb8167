// Original file: proto/istio/security/authorization.proto


/**
 * An exact namespace + service account pair. The field is spelled serviceAccount upstream too,
 * which keeps its JSON name identical.
 */
export interface ServiceAccountMatch {
  'namespace'?: (string);
  'serviceAccount'?: (string);
}

/**
 * An exact namespace + service account pair. The field is spelled serviceAccount upstream too,
 * which keeps its JSON name identical.
 */
export interface ServiceAccountMatch__Output {
  'namespace': (string);
  'serviceAccount': (string);
}
