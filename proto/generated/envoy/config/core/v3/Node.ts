// Original file: proto/envoy/config/core/v3/base.proto

import type { Struct as _google_protobuf_Struct, Struct__Output as _google_protobuf_Struct__Output } from '../../../../google/protobuf/Struct';
import type { Locality as _envoy_config_core_v3_Locality, Locality__Output as _envoy_config_core_v3_Locality__Output } from '../../../../envoy/config/core/v3/Locality';

/**
 * The xDS client introducing itself to the control plane on the first request of a stream.
 */
export interface Node {
  /**
   * Opaque identity of the client. Istio's convention for ztunnel-style clients is
   * "<type>~<ip>~<pod>.<namespace>~<namespace>.svc.<domain>"; smesh sends the node name.
   */
  'id'?: (string);
  /**
   * The cluster (in Envoy's sense) the client belongs to.
   */
  'cluster'?: (string);
  /**
   * Free-form key/values the control plane may use (Istio puts NODE_NAME, CLUSTER_ID, … here).
   */
  'metadata'?: (_google_protobuf_Struct | null);
  'locality'?: (_envoy_config_core_v3_Locality | null);
  /**
   * What the client is, e.g. "smesh".
   */
  'userAgentName'?: (string);
  /**
   * Upstream this sits in a oneof with a structured build version (8) that smesh does not use;
   * a plain field with the same number and type is wire-identical.
   */
  'userAgentVersion'?: (string);
  /**
   * Features the client understands, reverse-DNS names.
   */
  'clientFeatures'?: (string)[];
}

/**
 * The xDS client introducing itself to the control plane on the first request of a stream.
 */
export interface Node__Output {
  /**
   * Opaque identity of the client. Istio's convention for ztunnel-style clients is
   * "<type>~<ip>~<pod>.<namespace>~<namespace>.svc.<domain>"; smesh sends the node name.
   */
  'id': (string);
  /**
   * The cluster (in Envoy's sense) the client belongs to.
   */
  'cluster': (string);
  /**
   * Free-form key/values the control plane may use (Istio puts NODE_NAME, CLUSTER_ID, … here).
   */
  'metadata': (_google_protobuf_Struct__Output | null);
  'locality': (_envoy_config_core_v3_Locality__Output | null);
  /**
   * What the client is, e.g. "smesh".
   */
  'userAgentName': (string);
  /**
   * Upstream this sits in a oneof with a structured build version (8) that smesh does not use;
   * a plain field with the same number and type is wire-identical.
   */
  'userAgentVersion': (string);
  /**
   * Features the client understands, reverse-DNS names.
   */
  'clientFeatures': (string)[];
}
