// Original file: proto/istio/workload/workload.proto


export interface Port {
  /**
   * Frontend port (on the service address).
   */
  'servicePort'?: (number);
  /**
   * Backend port on the workload; 0 means "same as service_port".
   */
  'targetPort'?: (number);
  /**
   * smesh extension (Istio's Port has no protocol; istiod never sends it, ztunnel skips it): the
   * port's application protocol as Kubernetes' appProtocol spells it ("http", "http2", "grpc",
   * "kubernetes.io/h2c", ...), or derived from an Istio port-name prefix (http-*, http2-*, grpc-*).
   * Empty: undeclared (the agent then detects HTTP only from the service's HTTP routes).
   * Numbered far from Istio's so a future upstream field cannot clash.
   */
  'smeshAppProtocol'?: (string);
}

export interface Port__Output {
  /**
   * Frontend port (on the service address).
   */
  'servicePort': (number);
  /**
   * Backend port on the workload; 0 means "same as service_port".
   */
  'targetPort': (number);
  /**
   * smesh extension (Istio's Port has no protocol; istiod never sends it, ztunnel skips it): the
   * port's application protocol as Kubernetes' appProtocol spells it ("http", "http2", "grpc",
   * "kubernetes.io/h2c", ...), or derived from an Istio port-name prefix (http-*, http2-*, grpc-*).
   * Empty: undeclared (the agent then detects HTTP only from the service's HTTP routes).
   * Numbered far from Istio's so a future upstream field cannot clash.
   */
  'smeshAppProtocol': (string);
}
