// Original file: proto/istio/security/authorization.proto


/**
 * A CIDR: raw address bytes (4 or 16) and prefix length.
 */
export interface Address {
  'address'?: (Buffer | Uint8Array | string);
  'length'?: (number);
}

/**
 * A CIDR: raw address bytes (4 or 16) and prefix length.
 */
export interface Address__Output {
  'address': (Buffer);
  'length': (number);
}
