// Original file: proto/smesh/traffic/v1alpha1/traffic.proto


export interface StringMatch {
  'exact'?: (string);
  'prefix'?: (string);
  /**
   * RE2 syntax (the subset ECMAScript shares); must match the whole value.
   */
  'regex'?: (string);
  'match'?: "exact"|"prefix"|"regex";
}

export interface StringMatch__Output {
  'exact'?: (string);
  'prefix'?: (string);
  /**
   * RE2 syntax (the subset ECMAScript shares); must match the whole value.
   */
  'regex'?: (string);
  'match'?: "exact"|"prefix"|"regex";
}
