// Identity types shared by the CA, the certificate manager and the proxies: an issued X.509-SVID and where it comes from.

/** One issued workload (or node) certificate. `keyPem` is secret: never log it. */
export interface IssuedCert {
  readonly spiffeId: string;
  /** The leaf certificate (PEM). */
  readonly certPem: string;
  /** PKCS#8 private key (PEM); absent when the caller supplied its own public key. */
  readonly keyPem?: string;
  /** Leaf first, then intermediates, then the root (PEM, concatenated). */
  readonly chainPem: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
}

/** Where certificates come from: the local CA today, a remote CA (CreateCertificate over gRPC) later. */
export interface CertificateSource {
  /** Issues a fresh certificate with a freshly generated key pair for the SPIFFE id. */
  issue(spiffeId: string): Promise<IssuedCert & { readonly keyPem: string }>;
  /** Roots the mesh trusts (PEM, concatenated). */
  trustBundlePem(): string;
  /** Called with the new bundle when the trusted roots change (a root rotation); absent for fixed roots. */
  onTrustAnchorsChange?(listener: (bundlePem: string) => void): void;
}
