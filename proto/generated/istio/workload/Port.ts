// Original file: proto/istio/workload/workload.proto

import type { AppProtocol as _istio_workload_AppProtocol, AppProtocol__Output as _istio_workload_AppProtocol__Output } from '../../istio/workload/AppProtocol';

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
   * The port's application protocol as istiod derives it from the Kubernetes Service port
   * (appProtocol, else the port-name prefix; see core/model/protocol.ts istioAppProtocol). istiod
   * fills it on Service.ports only, not on Workload.services port lists.
   */
  'appProtocol'?: (_istio_workload_AppProtocol);
  /**
   * smesh extension (istiod never sends it, ztunnel skips it): the port's application protocol as
   * Kubernetes' appProtocol spells it ("http", "http2", "grpc", "kubernetes.io/h2c", "h2c", ...), or
   * derived from an Istio port-name prefix (http-*, http2-*, grpc-*, grpc-web-*). smesh agents read
   * it only when app_protocol is UNKNOWN: it covers what the enum has no value for (bare "h2c",
   * grpc-web) and agents that predate app_protocol. Empty: undeclared (the agent then detects HTTP
   * only from the service's HTTP routes). Numbered far from Istio's so an upstream field cannot clash.
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
   * The port's application protocol as istiod derives it from the Kubernetes Service port
   * (appProtocol, else the port-name prefix; see core/model/protocol.ts istioAppProtocol). istiod
   * fills it on Service.ports only, not on Workload.services port lists.
   */
  'appProtocol': (_istio_workload_AppProtocol__Output);
  /**
   * smesh extension (istiod never sends it, ztunnel skips it): the port's application protocol as
   * Kubernetes' appProtocol spells it ("http", "http2", "grpc", "kubernetes.io/h2c", "h2c", ...), or
   * derived from an Istio port-name prefix (http-*, http2-*, grpc-*, grpc-web-*). smesh agents read
   * it only when app_protocol is UNKNOWN: it covers what the enum has no value for (bare "h2c",
   * grpc-web) and agents that predate app_protocol. Empty: undeclared (the agent then detects HTTP
   * only from the service's HTTP routes). Numbered far from Istio's so an upstream field cannot clash.
   */
  'smeshAppProtocol': (string);
}
