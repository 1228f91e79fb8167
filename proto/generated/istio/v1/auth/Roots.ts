// Original file: proto/istio/ca/ca.proto


export interface Roots {
  'caCert'?: (string)[];
}

export interface Roots__Output {
  'caCert': (string)[];
}
