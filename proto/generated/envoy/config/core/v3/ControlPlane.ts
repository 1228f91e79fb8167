// Original file: proto/envoy/config/core/v3/base.proto


/**
 * Which control plane instance produced a response (debugging only).
 */
export interface ControlPlane {
  'identifier'?: (string);
}

/**
 * Which control plane instance produced a response (debugging only).
 */
export interface ControlPlane__Output {
  'identifier': (string);
}
