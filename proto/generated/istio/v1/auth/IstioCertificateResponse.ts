// Original file: proto/istio/ca/ca.proto

import type { Roots as _istio_v1_auth_Roots, Roots__Output as _istio_v1_auth_Roots__Output } from '../../../istio/v1/auth/Roots';

export interface IstioCertificateResponse {
  /**
   * PEM certificates, leaf first. Without root_cert the last entry holds the root(s).
   */
  'certChain'?: (string)[];
  /**
   * When set, cert_chain has no roots and this is the full trusted root bundle.
   */
  'rootCert'?: (_istio_v1_auth_Roots | null);
}

export interface IstioCertificateResponse__Output {
  /**
   * PEM certificates, leaf first. Without root_cert the last entry holds the root(s).
   */
  'certChain': (string)[];
  /**
   * When set, cert_chain has no roots and this is the full trusted root bundle.
   */
  'rootCert': (_istio_v1_auth_Roots__Output | null);
}
