// The HBONE `baggage` header (W3C baggage list): the source workload in ztunnel's keys, plus the service the client dialled, so both reporters name the same destination_service.
import type { Workload } from '../../core/model/types';

/**
 * Keys ztunnel writes and reads (source workload: cluster, namespace, workload by kind, canonical
 * service and revision), and smesh's own `smesh.destination_service` (the host of the Service the
 * client dialled; unknown keys are ignored by ztunnel, so the header stays interoperable).
 */
export const BAGGAGE_DESTINATION_SERVICE = 'smesh.destination_service';

export interface Baggage {
  readonly cluster?: string;
  readonly namespace?: string;
  readonly workloadName?: string;
  readonly serviceName?: string;
  readonly serviceVersion?: string;
  /** `<name>.<namespace>.svc.<domain>` of the dialled Service. */
  readonly destinationService?: string;
}

/** Characters a baggage value may carry unescaped here: anything else drops the entry rather than corrupt the list. */
const SAFE_VALUE = /^[A-Za-z0-9._\-/:]+$/;

export function baggageHeader(b: Baggage): string {
  const entries: Array<[string, string | undefined]> = [
    ['k8s.cluster.name', b.cluster],
    ['k8s.namespace.name', b.namespace],
    ['k8s.deployment.name', b.workloadName],
    ['service.name', b.serviceName],
    ['service.version', b.serviceVersion],
    [BAGGAGE_DESTINATION_SERVICE, b.destinationService],
  ];
  return entries
    .filter((e): e is [string, string] => e[1] !== undefined && e[1] !== '' && SAFE_VALUE.test(e[1]))
    .map(([k, v]) => `${k}=${v}`)
    .join(',');
}

/** The baggage of a source workload calling `destinationService` (either may be unknown). */
export function sourceBaggage(source: Workload | undefined, destinationService: string | undefined, cluster?: string): Baggage {
  return {
    cluster: source ? cluster : undefined,
    namespace: source?.namespace,
    workloadName: source?.workloadName,
    serviceName: source ? (source.labels['service.istio.io/canonical-name'] ?? source.labels['app'] ?? source.workloadName) : undefined,
    serviceVersion: source ? (source.labels['service.istio.io/canonical-revision'] ?? source.labels['version']) : undefined,
    destinationService,
  };
}

/** Parses one or more `baggage` header values; unknown keys, properties (`;…`) and empty values are ignored. */
export function parseBaggage(header: string | string[] | undefined): Baggage {
  const out: { -readonly [K in keyof Baggage]?: string } = {};
  if (header === undefined) return out;
  for (const line of Array.isArray(header) ? header : [header]) {
    for (const member of line.split(',')) {
      const eq = member.indexOf('=');
      if (eq <= 0) continue;
      const key = member.slice(0, eq).trim();
      const value = member
        .slice(eq + 1)
        .split(';')[0]!
        .trim();
      if (value === '') continue;
      switch (key) {
        case 'k8s.cluster.name':
          out.cluster = value;
          break;
        case 'k8s.namespace.name':
          out.namespace = value;
          break;
        case 'k8s.deployment.name':
        case 'k8s.pod.name':
        case 'k8s.job.name':
        case 'k8s.cronjob.name':
          out.workloadName = value;
          break;
        case 'service.name':
          out.serviceName = value;
          break;
        case 'service.version':
          out.serviceVersion = value;
          break;
        case BAGGAGE_DESTINATION_SERVICE:
          out.destinationService = value;
          break;
        default:
          break;
      }
    }
  }
  return out;
}
