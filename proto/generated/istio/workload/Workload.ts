// Original file: proto/istio/workload/workload.proto

import type { TunnelProtocol as _istio_workload_TunnelProtocol, TunnelProtocol__Output as _istio_workload_TunnelProtocol__Output } from '../../istio/workload/TunnelProtocol';
import type { GatewayAddress as _istio_workload_GatewayAddress, GatewayAddress__Output as _istio_workload_GatewayAddress__Output } from '../../istio/workload/GatewayAddress';
import type { WorkloadType as _istio_workload_WorkloadType, WorkloadType__Output as _istio_workload_WorkloadType__Output } from '../../istio/workload/WorkloadType';
import type { WorkloadStatus as _istio_workload_WorkloadStatus, WorkloadStatus__Output as _istio_workload_WorkloadStatus__Output } from '../../istio/workload/WorkloadStatus';
import type { PortList as _istio_workload_PortList, PortList__Output as _istio_workload_PortList__Output } from '../../istio/workload/PortList';
import type { ApplicationTunnel as _istio_workload_ApplicationTunnel, ApplicationTunnel__Output as _istio_workload_ApplicationTunnel__Output } from '../../istio/workload/ApplicationTunnel';
import type { Locality as _istio_workload_Locality, Locality__Output as _istio_workload_Locality__Output } from '../../istio/workload/Locality';
import type { NetworkMode as _istio_workload_NetworkMode, NetworkMode__Output as _istio_workload_NetworkMode__Output } from '../../istio/workload/NetworkMode';
import type { Extension as _istio_workload_Extension, Extension__Output as _istio_workload_Extension__Output } from '../../istio/workload/Extension';
import type { UInt32Value as _google_protobuf_UInt32Value, UInt32Value__Output as _google_protobuf_UInt32Value__Output } from '../../google/protobuf/UInt32Value';

/**
 * One endpoint: a pod, a VM, or a hostname. Primary key uid.
 */
export interface Workload {
  'name'?: (string);
  'namespace'?: (string);
  /**
   * Raw IPv4 (4 bytes) or IPv6 (16 bytes) addresses, no port.
   */
  'addresses'?: (Buffer | Uint8Array | string)[];
  /**
   * Empty means the default network.
   */
  'network'?: (string);
  /**
   * How to reach the workload: plain TCP, HBONE, or a sidecar's mutual TLS.
   */
  'tunnelProtocol'?: (_istio_workload_TunnelProtocol);
  /**
   * Identity: spiffe://<trust_domain>/ns/<namespace>/sa/<service_account>.
   * Empty trust_domain means the mesh default; empty service_account means "default".
   */
  'trustDomain'?: (string);
  'serviceAccount'?: (string);
  /**
   * When set, inbound traffic must come through this waypoint.
   */
  'waypoint'?: (_istio_workload_GatewayAddress | null);
  /**
   * Kubernetes node name; the smesh agent serves workloads whose node is its own.
   */
  'node'?: (string);
  /**
   * Telemetry labels.
   */
  'canonicalName'?: (string);
  'canonicalRevision'?: (string);
  'workloadType'?: (_istio_workload_WorkloadType);
  'workloadName'?: (string);
  /**
   * The workload terminates the tunnel itself; do not wrap or unwrap for it.
   */
  'nativeTunnel'?: (boolean);
  /**
   * Names ("namespace/name") of selector-based istio.security.Authorization resources that
   * apply; namespace- and mesh-wide ones are found by scope.
   */
  'authorizationPolicies'?: (string)[];
  'status'?: (_istio_workload_WorkloadStatus);
  'clusterId'?: (string);
  /**
   * For workloads on another network: the east-west gateway to go through.
   */
  'networkGateway'?: (_istio_workload_GatewayAddress | null);
  /**
   * Globally unique, opaque; Kubernetes convention "cluster//Pod/namespace/name".
   */
  'uid'?: (string);
  /**
   * Set instead of (or, for headless pods, besides) addresses; resolved by the data plane.
   */
  'hostname'?: (string);
  /**
   * Services this workload backs: key "namespace/hostname", value the port mapping to use.
   */
  'services'?: ({[key: string]: _istio_workload_PortList});
  /**
   * The workload wants tunnel metadata delivered, e.g. as a PROXY protocol header.
   */
  'applicationTunnel'?: (_istio_workload_ApplicationTunnel | null);
  'locality'?: (_istio_workload_Locality | null);
  'networkMode'?: (_istio_workload_NetworkMode);
  'extensions'?: (_istio_workload_Extension)[];
  /**
   * Relative weight against the service's other endpoints; unset means 1.
   */
  'capacity'?: (_google_protobuf_UInt32Value | null);
}

/**
 * One endpoint: a pod, a VM, or a hostname. Primary key uid.
 */
export interface Workload__Output {
  'name': (string);
  'namespace': (string);
  /**
   * Raw IPv4 (4 bytes) or IPv6 (16 bytes) addresses, no port.
   */
  'addresses': (Buffer)[];
  /**
   * Empty means the default network.
   */
  'network': (string);
  /**
   * How to reach the workload: plain TCP, HBONE, or a sidecar's mutual TLS.
   */
  'tunnelProtocol': (_istio_workload_TunnelProtocol__Output);
  /**
   * Identity: spiffe://<trust_domain>/ns/<namespace>/sa/<service_account>.
   * Empty trust_domain means the mesh default; empty service_account means "default".
   */
  'trustDomain': (string);
  'serviceAccount': (string);
  /**
   * When set, inbound traffic must come through this waypoint.
   */
  'waypoint': (_istio_workload_GatewayAddress__Output | null);
  /**
   * Kubernetes node name; the smesh agent serves workloads whose node is its own.
   */
  'node': (string);
  /**
   * Telemetry labels.
   */
  'canonicalName': (string);
  'canonicalRevision': (string);
  'workloadType': (_istio_workload_WorkloadType__Output);
  'workloadName': (string);
  /**
   * The workload terminates the tunnel itself; do not wrap or unwrap for it.
   */
  'nativeTunnel': (boolean);
  /**
   * Names ("namespace/name") of selector-based istio.security.Authorization resources that
   * apply; namespace- and mesh-wide ones are found by scope.
   */
  'authorizationPolicies': (string)[];
  'status': (_istio_workload_WorkloadStatus__Output);
  'clusterId': (string);
  /**
   * For workloads on another network: the east-west gateway to go through.
   */
  'networkGateway': (_istio_workload_GatewayAddress__Output | null);
  /**
   * Globally unique, opaque; Kubernetes convention "cluster//Pod/namespace/name".
   */
  'uid': (string);
  /**
   * Set instead of (or, for headless pods, besides) addresses; resolved by the data plane.
   */
  'hostname': (string);
  /**
   * Services this workload backs: key "namespace/hostname", value the port mapping to use.
   */
  'services': ({[key: string]: _istio_workload_PortList__Output});
  /**
   * The workload wants tunnel metadata delivered, e.g. as a PROXY protocol header.
   */
  'applicationTunnel': (_istio_workload_ApplicationTunnel__Output | null);
  'locality': (_istio_workload_Locality__Output | null);
  'networkMode': (_istio_workload_NetworkMode__Output);
  'extensions': (_istio_workload_Extension__Output)[];
  /**
   * Relative weight against the service's other endpoints; unset means 1.
   */
  'capacity': (_google_protobuf_UInt32Value__Output | null);
}
