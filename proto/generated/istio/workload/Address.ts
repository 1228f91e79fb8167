// Original file: proto/istio/workload/workload.proto

import type { Workload as _istio_workload_Workload, Workload__Output as _istio_workload_Workload__Output } from '../../istio/workload/Workload';
import type { Service as _istio_workload_Service, Service__Output as _istio_workload_Service__Output } from '../../istio/workload/Service';

/**
 * The xDS resource: exactly one of a workload or a service. Delta names are the workload uid or
 * the service's "namespace/hostname"; "network/IP" strings are alias keys for on-demand lookup.
 */
export interface Address {
  'workload'?: (_istio_workload_Workload | null);
  'service'?: (_istio_workload_Service | null);
  'type'?: "workload"|"service";
}

/**
 * The xDS resource: exactly one of a workload or a service. Delta names are the workload uid or
 * the service's "namespace/hostname"; "network/IP" strings are alias keys for on-demand lookup.
 */
export interface Address__Output {
  'workload'?: (_istio_workload_Workload__Output | null);
  'service'?: (_istio_workload_Service__Output | null);
  'type'?: "workload"|"service";
}
