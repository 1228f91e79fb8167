// `smesh top`: connections, requests and bytes per workload pair on this node, from the agent's Istio metrics
// (admin /stats/prometheus); refreshed with per-second rates on a terminal, one sample with --once.
import { adminGet, type AdminTarget } from './admin-client';
import { formatBytes, formatData, formatTable, type OutputFormat } from './output';
import { parsePrometheusText, type Sample } from './prom-text';

export interface PairStats {
  /** Which side counted it: `source` (the client's node) or `destination` (the server's node). */
  readonly reporter: string;
  readonly source: string;
  readonly destination: string;
  opened: number;
  closed: number;
  /** opened − closed: connections open now. */
  active: number;
  requests: number;
  /** Client → server bytes (TCP received by the proxy, HTTP request bodies). */
  bytesFromSource: number;
  /** Server → client bytes (TCP sent, HTTP response bodies). */
  bytesToSource: number;
}

export interface PairRates {
  readonly connectionsPerSecond: number;
  readonly requestsPerSecond: number;
  readonly bytesPerSecond: number;
}

const workload = (ns: string | undefined, name: string | undefined) => (name && name !== 'unknown' ? `${ns && ns !== 'unknown' ? `${ns}/` : ''}${name}` : 'unknown');

/** Pure: per (reporter, source workload, destination workload) sums of Istio's TCP and HTTP metrics. */
export function aggregatePairs(samples: readonly Sample[]): PairStats[] {
  const pairs = new Map<string, PairStats>();
  const pair = (l: Readonly<Record<string, string>>): PairStats => {
    const reporter = l.reporter ?? '?';
    const source = workload(l.source_workload_namespace, l.source_workload);
    const destination = workload(l.destination_workload_namespace, l.destination_workload);
    const key = `${reporter}\u0000${source}\u0000${destination}`;
    let p = pairs.get(key);
    if (!p) pairs.set(key, (p = { reporter, source, destination, opened: 0, closed: 0, active: 0, requests: 0, bytesFromSource: 0, bytesToSource: 0 }));
    return p;
  };
  for (const s of samples) {
    switch (s.name) {
      case 'istio_tcp_connections_opened_total':
        pair(s.labels).opened += s.value;
        break;
      case 'istio_tcp_connections_closed_total':
        pair(s.labels).closed += s.value;
        break;
      case 'istio_tcp_received_bytes_total':
      case 'istio_request_bytes_sum':
        pair(s.labels).bytesFromSource += s.value;
        break;
      case 'istio_tcp_sent_bytes_total':
      case 'istio_response_bytes_sum':
        pair(s.labels).bytesToSource += s.value;
        break;
      case 'istio_requests_total':
        pair(s.labels).requests += s.value;
        break;
    }
  }
  const out = [...pairs.values()];
  for (const p of out) p.active = Math.max(0, p.opened - p.closed);
  return out.sort((a, b) => b.bytesFromSource + b.bytesToSource - (a.bytesFromSource + a.bytesToSource) || a.source.localeCompare(b.source) || a.destination.localeCompare(b.destination));
}

const keyOf = (p: PairStats) => `${p.reporter}\u0000${p.source}\u0000${p.destination}`;

/** Per-second rates between two samples `seconds` apart (a pair new in `now` counts from zero). */
export function ratesBetween(before: readonly PairStats[], now: readonly PairStats[], seconds: number): Map<string, PairRates> {
  const prev = new Map(before.map((p) => [keyOf(p), p]));
  const out = new Map<string, PairRates>();
  for (const p of now) {
    const b = prev.get(keyOf(p));
    const d = (f: (x: PairStats) => number) => Math.max(0, f(p) - (b ? f(b) : 0)) / seconds;
    out.set(keyOf(p), { connectionsPerSecond: d((x) => x.opened), requestsPerSecond: d((x) => x.requests), bytesPerSecond: d((x) => x.bytesFromSource + x.bytesToSource) });
  }
  return out;
}

export function formatTop(pairs: readonly PairStats[], rates?: Map<string, PairRates>): string {
  const header = ['REPORTER', 'SOURCE', 'DESTINATION', 'ACTIVE', 'OPENED', 'REQUESTS', 'BYTES OUT', 'BYTES BACK'];
  if (rates) header.push('CONN/S', 'REQ/S', 'BYTES/S');
  const rows = pairs.map((p) => {
    const row = [p.reporter, p.source, p.destination, String(p.active), String(p.opened), String(p.requests), formatBytes(p.bytesFromSource), formatBytes(p.bytesToSource)];
    if (rates) {
      const r = rates.get(keyOf(p));
      row.push((r?.connectionsPerSecond ?? 0).toFixed(1), (r?.requestsPerSecond ?? 0).toFixed(1), formatBytes(r?.bytesPerSecond ?? 0));
    }
    return row;
  });
  return rows.length ? formatTable(header, rows) : 'no traffic counted on this node yet\n';
}

async function sample(admin: AdminTarget): Promise<PairStats[]> {
  return aggregatePairs(parsePrometheusText(await adminGet(admin, '/stats/prometheus')));
}

export interface TopOptions {
  readonly admin: AdminTarget;
  readonly output: OutputFormat;
  readonly once: boolean;
  readonly intervalSeconds: number;
  readonly write: (s: string) => void;
  /** Clear the screen between refreshes (stdout is a terminal). */
  readonly tty: boolean;
  /** Resolves when the command should stop (Ctrl-C). */
  readonly stopped: Promise<void>;
}

export async function runTop(o: TopOptions): Promise<number> {
  let prev = await sample(o.admin);
  if (o.once || o.output !== 'table') {
    o.write(o.output === 'table' ? formatTop(prev) : formatData(prev, o.output));
    return 0;
  }
  o.write(formatTop(prev));
  let prevAt = process.hrtime.bigint();
  let stop = false;
  void o.stopped.then(() => (stop = true));
  while (!stop) {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([new Promise<void>((r) => (timer = setTimeout(r, o.intervalSeconds * 1000))), o.stopped]);
    clearTimeout(timer);
    if (stop) break;
    const now = await sample(o.admin);
    const at = process.hrtime.bigint();
    const rates = ratesBetween(prev, now, Number(at - prevAt) / 1e9);
    o.write(`${o.tty ? '\x1b[H\x1b[2J' : '\n'}${new Date().toISOString()}  every ${o.intervalSeconds}s, Ctrl-C to stop\n${formatTop(now, rates)}`);
    prev = now;
    prevAt = at;
  }
  return 0;
}
