// The parts of the agent's /config_dump and /ready that the operator commands read (a subset; every field optional, so
// an agent of another version degrades a column, never the command).

export interface DumpWorkload {
  readonly uid?: string;
  readonly name?: string;
  readonly namespace?: string;
  readonly serviceAccount?: string;
  readonly node?: string;
  readonly ip?: string;
  readonly identity?: string;
  readonly meshed?: boolean;
  readonly tunnel?: string;
  readonly workloadName?: string;
}

export interface DumpService {
  readonly key?: string;
  readonly name?: string;
  readonly namespace?: string;
  readonly vips?: readonly string[];
  readonly ports?: ReadonlyArray<{ port: number; targetPort?: number; appProtocol?: string }>;
  readonly endpointUids?: readonly string[];
}

export interface DumpPolicy {
  readonly name?: string;
  readonly namespace?: string;
  readonly action?: string;
  readonly scope?: string;
  readonly selector?: Readonly<Record<string, string>>;
  readonly rules?: readonly unknown[];
}

export interface DumpCertificate {
  readonly spiffeId?: string;
  readonly serial?: string;
  readonly notBefore?: string;
  readonly notAfter?: string;
  readonly issuer?: { readonly subject?: string; readonly sha256?: string };
}

export interface DumpAnchor {
  readonly subject?: string;
  readonly sha256?: string;
  readonly notAfter?: string;
}

export interface DumpXds {
  readonly address?: string;
  readonly connected?: boolean;
  readonly connectedSince?: string;
  readonly synced?: boolean;
  readonly lastDisconnect?: Readonly<Record<string, unknown>>;
  readonly nextRetryMs?: number;
  readonly types?: ReadonlyArray<{ typeUrl?: string; resources?: number; nacks?: number; rejected?: readonly unknown[] }>;
}

export interface ConfigDump {
  readonly node?: { readonly name?: string; readonly address?: string; readonly identity?: string };
  readonly trustDomain?: string;
  readonly xds?: DumpXds;
  readonly workloads?: readonly DumpWorkload[];
  readonly services?: readonly DumpService[];
  readonly policies?: readonly DumpPolicy[];
  readonly certificates?: readonly DumpCertificate[];
  readonly trustAnchors?: readonly DumpAnchor[];
  readonly datapath?: {
    readonly disabled?: boolean;
    readonly attach?: { readonly reused?: boolean; readonly links?: readonly string[] };
    readonly enrolledPods?: ReadonlyArray<{ cookie?: string; workload?: string }>;
  };
  readonly netnsDiscovery?: { readonly disabled?: boolean; readonly unresolved?: readonly unknown[] };
}

export interface ReadyReport {
  readonly ready: boolean;
  readonly components: Readonly<Record<string, boolean>>;
  readonly pid?: number;
  readonly uptimeSeconds?: number;
  readonly nodeVersion?: string;
}
