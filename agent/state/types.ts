// Mesh state types: what the agent knows about nodes, workloads and services, in the stage each value is in.
import type { AuthorizationPolicy } from '../policy/types';

/** A Kubernetes-style node: where workloads run and where its agent listens for HBONE. */
export interface MeshNode {
  readonly name: string;
  /** Address other agents dial for HBONE (port 15008). */
  readonly address: string;
}

/** One pod (or VM workload) known to the mesh. */
export interface Workload {
  /** `<namespace>/<name>`, unique. */
  readonly uid: string;
  readonly name: string;
  readonly namespace: string;
  readonly serviceAccount: string;
  /** Node the workload is scheduled on. */
  readonly node: string;
  /** Pod IP (IPv4 or IPv6 text form). */
  readonly ip: string;
  readonly labels: Readonly<Record<string, string>>;
  /** Path of the pod's network namespace (e.g. /run/netns/NAME), when known. */
  readonly netns?: string;
  /** Canonical workload name for telemetry: label `app.kubernetes.io/name`, else `app`, else the pod name. */
  readonly workloadName: string;
  /** SPIFFE identity: spiffe://<td>/ns/<namespace>/sa/<serviceAccount>. */
  readonly identity: string;
  /** False when the pod opted out (label or namespace label smesh.io/dataplane-mode=none). */
  readonly meshed: boolean;
  /**
   * `<ns>/<name>` of the selector-scoped AuthorizationPolicies selecting this workload, as the control
   * plane resolved them (xDS Workload.authorization_policies). Absent: resolve from `labels`.
   */
  readonly authorizationPolicies?: readonly string[];
}

export interface ServicePort {
  readonly name?: string;
  readonly port: number;
  readonly targetPort: number;
  readonly appProtocol?: string;
}

/** A Kubernetes-style service: a VIP, ports and a label selector. */
export interface Service {
  /** `<namespace>/<name>`. */
  readonly key: string;
  readonly name: string;
  readonly namespace: string;
  /** Cluster IPs (VIPs). */
  readonly vips: readonly string[];
  readonly ports: readonly ServicePort[];
  readonly selector: Readonly<Record<string, string>>;
  /**
   * Endpoint workload uids when the source names them explicitly (xDS: Workload.services); when absent,
   * endpoints are the workloads of the service's namespace matching `selector`.
   */
  readonly endpointUids?: readonly string[];
}

/** Everything the agent's state holds at one instant; immutable once published. */
export interface MeshSnapshot {
  readonly trustDomain: string;
  readonly nodes: ReadonlyMap<string, MeshNode>;
  readonly workloads: ReadonlyMap<string, Workload>;
  readonly services: ReadonlyMap<string, Service>;
  /** Namespace name → labels. */
  readonly namespaces: ReadonlyMap<string, Readonly<Record<string, string>>>;
  /** Validated AuthorizationPolicies, sorted by `<ns>/<name>` (absent = none). */
  readonly authorizationPolicies?: readonly AuthorizationPolicy[];
  /** MeshConfig rootNamespace (policies there apply mesh-wide); absent = "istio-system". */
  readonly rootNamespace?: string;
}
