// Original file: proto/istio/security/authorization.proto

import type { StringMatch as _istio_security_StringMatch, StringMatch__Output as _istio_security_StringMatch__Output } from '../../istio/security/StringMatch';
import type { Address as _istio_security_Address, Address__Output as _istio_security_Address__Output } from '../../istio/security/Address';
import type { ServiceAccountMatch as _istio_security_ServiceAccountMatch, ServiceAccountMatch__Output as _istio_security_ServiceAccountMatch__Output } from '../../istio/security/ServiceAccountMatch';

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
}
