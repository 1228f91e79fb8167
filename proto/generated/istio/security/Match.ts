// Original file: proto/istio/security/authorization.proto

import type { StringMatch as _istio_security_StringMatch, StringMatch__Output as _istio_security_StringMatch__Output } from '../../istio/security/StringMatch';
import type { Address as _istio_security_Address, Address__Output as _istio_security_Address__Output } from '../../istio/security/Address';
import type { ServiceAccountMatch as _istio_security_ServiceAccountMatch, ServiceAccountMatch__Output as _istio_security_ServiceAccountMatch__Output } from '../../istio/security/ServiceAccountMatch';
import type { SmeshHeaderMatch as _istio_security_SmeshHeaderMatch, SmeshHeaderMatch__Output as _istio_security_SmeshHeaderMatch__Output } from '../../istio/security/SmeshHeaderMatch';

export interface Match {
  'namespaces'?: (_istio_security_StringMatch)[];
  'notNamespaces'?: (_istio_security_StringMatch)[];
  /**
   * Principals without the "spiffe://" prefix: "<trust-domain>/ns/<ns>/sa/<sa>".
   */
  'principals'?: (_istio_security_StringMatch)[];
  'notPrincipals'?: (_istio_security_StringMatch)[];
  'sourceIps'?: (_istio_security_Address)[];
  'notSourceIps'?: (_istio_security_Address)[];
  'destinationIps'?: (_istio_security_Address)[];
  'notDestinationIps'?: (_istio_security_Address)[];
  'destinationPorts'?: (number)[];
  'notDestinationPorts'?: (number)[];
  'serviceAccounts'?: (_istio_security_ServiceAccountMatch)[];
  'notServiceAccounts'?: (_istio_security_ServiceAccountMatch)[];
  /**
   * ---- smesh L7 extension (see the file comment): HTTP request attributes, evaluated only by
   * smesh agents and only for requests on HTTP ports. Istio decoders skip these fields. ----
   * Request method ("GET"), case-sensitive.
   */
  'smeshMethods'?: (_istio_security_StringMatch)[];
  'smeshNotMethods'?: (_istio_security_StringMatch)[];
  /**
   * URL path without query or fragment.
   */
  'smeshPaths'?: (_istio_security_StringMatch)[];
  'smeshNotPaths'?: (_istio_security_StringMatch)[];
  /**
   * Host / :authority, case-insensitive, a ":port" suffix ignored.
   */
  'smeshHosts'?: (_istio_security_StringMatch)[];
  'smeshNotHosts'?: (_istio_security_StringMatch)[];
  /**
   * `when: request.headers[name]` conditions, all of which must hold.
   */
  'smeshHeaders'?: (_istio_security_SmeshHeaderMatch)[];
  /**
   * remoteIpBlocks / remote.ip.
   */
  'smeshRemoteIps'?: (_istio_security_Address)[];
  'smeshNotRemoteIps'?: (_istio_security_Address)[];
  /**
   * requestPrincipals / request.auth.principal (JWT).
   */
  'smeshRequestPrincipals'?: (_istio_security_StringMatch)[];
  'smeshNotRequestPrincipals'?: (_istio_security_StringMatch)[];
}

export interface Match__Output {
  'namespaces': (_istio_security_StringMatch__Output)[];
  'notNamespaces': (_istio_security_StringMatch__Output)[];
  /**
   * Principals without the "spiffe://" prefix: "<trust-domain>/ns/<ns>/sa/<sa>".
   */
  'principals': (_istio_security_StringMatch__Output)[];
  'notPrincipals': (_istio_security_StringMatch__Output)[];
  'sourceIps': (_istio_security_Address__Output)[];
  'notSourceIps': (_istio_security_Address__Output)[];
  'destinationIps': (_istio_security_Address__Output)[];
  'notDestinationIps': (_istio_security_Address__Output)[];
  'destinationPorts': (number)[];
  'notDestinationPorts': (number)[];
  'serviceAccounts': (_istio_security_ServiceAccountMatch__Output)[];
  'notServiceAccounts': (_istio_security_ServiceAccountMatch__Output)[];
  /**
   * ---- smesh L7 extension (see the file comment): HTTP request attributes, evaluated only by
   * smesh agents and only for requests on HTTP ports. Istio decoders skip these fields. ----
   * Request method ("GET"), case-sensitive.
   */
  'smeshMethods': (_istio_security_StringMatch__Output)[];
  'smeshNotMethods': (_istio_security_StringMatch__Output)[];
  /**
   * URL path without query or fragment.
   */
  'smeshPaths': (_istio_security_StringMatch__Output)[];
  'smeshNotPaths': (_istio_security_StringMatch__Output)[];
  /**
   * Host / :authority, case-insensitive, a ":port" suffix ignored.
   */
  'smeshHosts': (_istio_security_StringMatch__Output)[];
  'smeshNotHosts': (_istio_security_StringMatch__Output)[];
  /**
   * `when: request.headers[name]` conditions, all of which must hold.
   */
  'smeshHeaders': (_istio_security_SmeshHeaderMatch__Output)[];
  /**
   * remoteIpBlocks / remote.ip.
   */
  'smeshRemoteIps': (_istio_security_Address__Output)[];
  'smeshNotRemoteIps': (_istio_security_Address__Output)[];
  /**
   * requestPrincipals / request.auth.principal (JWT).
   */
  'smeshRequestPrincipals': (_istio_security_StringMatch__Output)[];
  'smeshNotRequestPrincipals': (_istio_security_StringMatch__Output)[];
}
