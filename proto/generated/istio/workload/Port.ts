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
}
