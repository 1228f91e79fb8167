// Connections the kernel denied (connect-time deny at the source, STRICT drops at the destination) copied into Istio's TCP metrics with response_flags DENY, once per connection, at each scrape.
import type { Workload } from '../../core/model/types';
import type { MeshMetrics, TcpConnectionInfo } from './metrics';

/** The kernel's per-connection denial totals (native Datapath.connectDenyCounts / strictDropCounts). */
export interface KernelDenialSource {
  connectDenyCounts(): ReadonlyArray<{ workloadId: number; ip: string; port: number; count: number }>;
  strictDropCounts(): ReadonlyArray<{ sourceIp: string; ip: string; port: number; count: number }>;
}

/** How kernel keys become labels: workload ids and addresses resolved against the current mesh state. */
export interface KernelDenialResolver {
  workloadById(id: number): Workload | undefined;
  workloadByIp(ip: string): Workload | undefined;
  /** The service whose VIP is `ip` (a connect-time deny on a service port), for destination_service. */
  serviceByIp(ip: string, port: number): { name: string; namespace: string; host: string } | undefined;
}

/**
 * Turns kernel totals into metric increments: the delta of each key since the previous scrape (a key the
 * kernel's LRU map evicted and re-created starts again from its new total).
 */
export class KernelDenialReporter {
  private readonly last = new Map<string, number>();

  constructor(
    private readonly metrics: MeshMetrics,
    private readonly source: KernelDenialSource,
    private readonly resolve: KernelDenialResolver,
  ) {}

  /** Copies new denials into istio_tcp_connections_opened/closed_total (response_flags DENY) and smesh_connect_denied_total. */
  flush(): void {
    const seen = new Set<string>();
    for (const e of this.source.connectDenyCounts()) {
      const key = `c|${e.workloadId}|${e.ip}|${e.port}`;
      const delta = this.delta(key, e.count, seen);
      if (delta === 0) continue;
      const src = this.resolve.workloadById(e.workloadId);
      const dst = this.resolve.workloadByIp(e.ip);
      const info: TcpConnectionInfo = {
        reporter: 'source',
        source: src,
        destination: dst,
        service: this.resolve.serviceByIp(e.ip, e.port),
        mtls: false,
        destinationAddress: e.port ? `${e.ip}:${e.port}` : e.ip,
      };
      this.metrics.recordKernelDenials(info, 'DENY', delta);
      this.metrics.connectDenials.inc({ source_workload: src?.workloadName ?? 'unknown', source_workload_namespace: src?.namespace ?? 'unknown' }, delta);
    }
    for (const e of this.source.strictDropCounts()) {
      const key = `s|${e.sourceIp}|${e.ip}|${e.port}`;
      const delta = this.delta(key, e.count, seen);
      if (delta === 0) continue;
      const src = this.resolve.workloadByIp(e.sourceIp);
      const dst = this.resolve.workloadByIp(e.ip);
      const info: TcpConnectionInfo = { reporter: 'destination', source: src, destination: dst, mtls: false, sourceAddress: e.sourceIp, destinationAddress: `${e.ip}:${e.port}` };
      this.metrics.recordKernelDenials(info, 'DENY', delta);
    }
    for (const k of this.last.keys()) if (!seen.has(k)) this.last.delete(k);
  }

  private delta(key: string, total: number, seen: Set<string>): number {
    seen.add(key);
    const before = this.last.get(key) ?? 0;
    this.last.set(key, total);
    return total >= before ? total - before : total;
  }
}
