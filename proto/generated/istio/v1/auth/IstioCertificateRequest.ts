// Original file: proto/istio/ca/ca.proto

import type { Struct as _google_protobuf_Struct, Struct__Output as _google_protobuf_Struct__Output } from '../../../google/protobuf/Struct';
import type { Long } from '@grpc/proto-loader';

export interface IstioCertificateRequest {
  /**
   * PEM-encoded PKCS#10 request. The CA takes the public key from it; it may override the rest.
   */
  'csr'?: (string);
  /**
   * Requested lifetime in seconds; the CA may shorten it.
   */
  'validityDuration'?: (number | string | Long);
  /**
   * Optional caller facts as key/values (upstream documents WorkloadName, WorkloadIP, ClusterID;
   * a node agent may also name here the pod identity it is asking for).
   */
  'metadata'?: (_google_protobuf_Struct | null);
}

export interface IstioCertificateRequest__Output {
  /**
   * PEM-encoded PKCS#10 request. The CA takes the public key from it; it may override the rest.
   */
  'csr': (string);
  /**
   * Requested lifetime in seconds; the CA may shorten it.
   */
  'validityDuration': (number);
  /**
   * Optional caller facts as key/values (upstream documents WorkloadName, WorkloadIP, ClusterID;
   * a node agent may also name here the pod identity it is asking for).
   */
  'metadata': (_google_protobuf_Struct__Output | null);
}
