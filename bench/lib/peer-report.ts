// Bench report against the peers (nginx, HAProxy mTLS tunnels): one table of medians with smesh/peer ratios, proxy CPU per unit of work, and the issue-12 goals as pass/miss lines.
import { SmeshError } from '../../core/errors';
import { METRICS, median, stat, type Metric, type Sample } from './report';

/** cpu.groups keys holding each path's proxy processes (smesh: the agents; a peer: its two proxies). */
export const PROXY_GROUPS = ['node1 proxy', 'node2 proxy'] as const;
/** Sample.rssPeakKiB key: peak of the summed RSS of a path's proxy processes (both nodes) during the measurement. */
export const PROXY_RSS = 'proxies';

interface Row {
  label: string;
  /** Value of a path (median over rounds), undefined when not measured or failed. */
  value: (path: string) => number | undefined;
  higherBetter: boolean;
  digits: number;
}

function metric(key: string): Metric {
  const m = METRICS.find((x) => x.key === key);
  if (!m) throw new SmeshError('SMESH_ERR_CONFIG', `bench report: no metric '${key}' in METRICS`);
  return m;
}

const med = (samples: Sample[], path: string, key: string) => stat(samples, path, metric(key)).median;

/** Cores used by a path's proxies during one sample. */
function proxyCores(s: Sample): number {
  return PROXY_GROUPS.reduce((a, g) => a + (s.cpu.groups[g] ?? 0), 0) / 100;
}

/**
 * Median over rounds of the proxies' CPU time per unit of work in one measurement: `scale` × cores ÷ measured rate
 * (bulk: cores ÷ Gbit/s = CPU-seconds per Gbit; requests: 10^6 × cores ÷ req/s = CPU-ms per 1000 requests).
 */
function cpuPerUnit(samples: Sample[], path: string, test: string, scale: number): number | undefined {
  const xs = samples.filter((s) => s.path === path && s.test === test && !s.m.error && (s.m.value ?? 0) > 0).map((s) => (scale * proxyCores(s)) / s.m.value!);
  return median(xs);
}

/** A path's p50 (metric `key`) minus direct's, µs. */
function addedOverDirect(samples: Sample[], path: string, direct: string, key: string): number | undefined {
  const a = med(samples, path, key);
  const d = med(samples, direct, key);
  return a === undefined || d === undefined ? undefined : a - d;
}

/** Latency p50 metrics that get an "added over direct" row under them. */
const ADDED_OVER_DIRECT: Readonly<Record<string, string>> = { p50: 'latency p50 added over direct (µs)', hlat_p50: 'HTTP port: request p50 added over direct, 1 keep-alive conn (µs)' };

function rows(samples: Sample[], direct: string, tests?: readonly string[]): Row[] {
  const has = (test: string) => (!tests || tests.includes(test)) && samples.some((s) => s.test === test);
  const out: Row[] = [];
  for (const m of METRICS) {
    if (!has(m.test)) continue;
    out.push({ label: m.label, value: (p) => med(samples, p, m.key), higherBetter: m.higherBetter, digits: m.digits });
    const added = ADDED_OVER_DIRECT[m.key];
    if (added) out.push({ label: added, value: (p) => addedOverDirect(samples, p, direct, m.key), higherBetter: false, digits: 1 });
  }
  const eff: Array<[string, string, number, string]> = [
    ['bw1', 'proxy CPU-seconds per Gbit, 1 stream', 1, 'bw1'],
    ['bw4', 'proxy CPU-seconds per Gbit, 4 streams', 1, 'bw4'],
    ['rps', 'proxy CPU-ms per 1000 requests (keep-alive)', 1e6, 'rps'],
    ['cps', 'proxy CPU-ms per 1000 new connections', 1e6, 'cps'],
    ['hrps', 'HTTP port: proxy CPU-ms per 1000 requests (keep-alive)', 1e6, 'hrps'],
    ['hcps', 'HTTP port: proxy CPU-ms per 1000 new connections', 1e6, 'hcps'],
  ];
  for (const [test, label, scale] of eff) {
    if (!has(test)) continue;
    out.push({ label, value: (p) => cpuPerUnit(samples, p, test, scale), higherBetter: false, digits: scale === 1 ? 3 : 1 });
  }
  out.push({
    label: 'proxy RSS, both nodes, peak over all tests (MiB)',
    value: (p) => {
      const xs = samples.filter((s) => s.path === p).map((s) => s.rssPeakKiB[PROXY_RSS] ?? 0);
      const peak = Math.max(0, ...xs);
      return peak > 0 ? peak / 1024 : undefined;
    },
    higherBetter: false,
    digits: 1,
  });
  return out;
}

function fmt(x: number | undefined, digits: number): string {
  if (x === undefined || !Number.isFinite(x)) return 'n/a';
  return x.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits }).replace(/,/g, ' ');
}

/**
 * One table: direct, smesh and every peer (medians over rounds), then smesh/peer for each peer. Throughput: > 1 is
 * smesh faster; latency and CPU per unit: < 1 is smesh better.
 */
export function peerTable(samples: Sample[], smesh: string, direct: string, peers: string[], tests?: readonly string[]): string {
  const present = (p: string) => samples.some((s) => s.path === p);
  const ps = peers.filter(present);
  const cols = [direct, smesh, ...ps].filter(present);
  const head = ['measure', ...cols, ...ps.map((p) => `${smesh}/${p}`)];
  const lines = [`| ${head.join(' | ')} |`, `|${head.map((_, i) => (i === 0 ? '---' : '---:')).join('|')}|`];
  for (const r of rows(samples, direct, tests)) {
    const cells = [r.label, ...cols.map((p) => (p === direct && (r.label.includes('proxy ') || r.label.includes('added over direct')) ? '—' : fmt(r.value(p), r.digits)))];
    for (const p of ps) {
      const a = r.value(smesh);
      const b = r.value(p);
      cells.push(a === undefined || b === undefined || b === 0 ? 'n/a' : `**${(a / b).toFixed(2)}**`);
    }
    lines.push(`| ${cells.join(' | ')} |`);
  }
  return lines.join('\n');
}

export interface GoalInput {
  samples: Sample[];
  smesh: string;
  direct: string;
  smeshLocal: string;
  directLocal: string;
  peers: string[];
  /** Idle agent RSS before the measurements and peak under load, KiB, per node. */
  rssIdleKiB: Record<string, number>;
  rssPeakKiB: Record<string, number>;
  /** The agents ran `--standalone` (control plane in the same process). */
  standalone: boolean;
}

const MB = 1e6 / 1024; // KiB per MB (10^6 bytes)

/** Issue 12 item 5, one line each: `PASS`/`MISS`/`n/a`, the measured ratio and what it was compared with. */
export function goalLines(g: GoalInput): string[] {
  const { samples, smesh, direct } = g;
  const peers = g.peers.filter((p) => samples.some((s) => s.path === p));
  const lines: string[] = [];
  const verdict = (ok: boolean | undefined) => (ok === undefined ? 'n/a ' : ok ? 'PASS' : 'MISS');
  /** Best peer value for a metric: highest for throughput, lowest otherwise. */
  const best = (value: (p: string) => number | undefined, higherBetter: boolean): { peer: string; v: number } | undefined => {
    let b: { peer: string; v: number } | undefined;
    for (const p of peers) {
      const v = value(p);
      if (v === undefined) continue;
      if (!b || (higherBetter ? v > b.v : v < b.v)) b = { peer: p, v };
    }
    return b;
  };
  const vsPeer = (title: string, key: string, factor: number, unit: string, digits: number) => {
    const m = metric(key);
    const mine = med(samples, smesh, key);
    const b = best((p) => med(samples, p, key), m.higherBetter);
    if (mine === undefined || !b) {
      lines.push(`- n/a  ${title}: not measured`);
      return;
    }
    const r = mine / b.v;
    const ok = m.higherBetter ? r >= factor : r <= factor;
    const missing = peers.filter((p) => med(samples, p, key) === undefined);
    const gap = missing.length ? `; no result from ${missing.join(', ')}` : '';
    lines.push(`- ${verdict(ok)} ${title}: smesh ${fmt(mine, digits)} ${unit} = ${r.toFixed(2)}× the best peer, ${b.peer} ${fmt(b.v, digits)} (goal ${m.higherBetter ? '≥' : '≤'} ${factor}×${gap})`);
  };
  const vsDirect = (title: string, key: string, factor: number, unit: string, digits: number) => {
    const mine = med(samples, g.smeshLocal, key);
    const d = med(samples, g.directLocal, key);
    if (mine === undefined || d === undefined || d === 0) {
      lines.push(`- n/a  ${title}: not measured`);
      return;
    }
    const r = mine / d;
    lines.push(`- ${verdict(r >= factor)} ${title}: ${g.smeshLocal} ${fmt(mine, digits)} ${unit} = ${r.toFixed(2)}× ${g.directLocal} ${fmt(d, digits)} (goal ≥ ${factor}×)`);
  };
  vsPeer('cross-node bulk, 1 stream ≥ 1.5× the best peer', 'bw1', 1.5, 'Gbit/s', 2);
  vsPeer('cross-node bulk, 4 streams ≥ 1.5× the best peer', 'bw4', 1.5, 'Gbit/s', 2);
  vsPeer('requests/s on a TCP port ≥ 1.25× the best peer', 'rps', 1.25, 'req/s', 0);
  {
    const title = "p50 added over direct ≤ the best peer's";
    const d = med(samples, direct, 'p50');
    const added = (p: string) => {
      const v = med(samples, p, 'p50');
      return v === undefined || d === undefined ? undefined : v - d;
    };
    const mine = added(smesh);
    const b = best(added, false);
    if (mine === undefined || !b) lines.push(`- n/a  ${title}: not measured`);
    else lines.push(`- ${verdict(mine <= b.v)} ${title}: smesh +${fmt(mine, 1)} µs, best peer ${b.peer} +${fmt(b.v, 1)} µs (direct p50 ${fmt(d, 1)} µs)`);
  }
  vsPeer('new connections/s ≥ 5× the best peer', 'cps', 5, 'conn/s', 0);
  vsDirect('same-node bulk, 1 stream ≥ 0.8× direct-local', 'bw1', 0.8, 'Gbit/s', 2);
  vsDirect('same-node bulk, 4 streams ≥ 0.8× direct-local', 'bw4', 0.8, 'Gbit/s', 2);
  vsDirect('same-node new connections/s ≥ 0.5× direct-local', 'cps', 0.5, 'conn/s', 0);
  vsPeer("p99 ≤ the best peer's", 'p99', 1, 'µs', 1);
  const rss = (kib: Record<string, number>) => {
    const vs = Object.values(kib).filter((x) => x > 0);
    return vs.length ? Math.max(...vs) : undefined;
  };
  const idle = rss(g.rssIdleKiB);
  const peak = rss(g.rssPeakKiB);
  const mbText = (kib: number) => `${(kib / MB).toFixed(1)} MB (${(kib / 1024).toFixed(1)} MiB)`;
  if (idle === undefined) lines.push('- n/a  agent RSS idle ≤ 60 MB: not measured');
  else {
    const ok = idle <= 60 * MB;
    // With the control plane in the same process the number is an upper bound of the agent's own: a pass counts, a miss does not decide.
    const note = g.standalone ? ' — measured with `--standalone` (control plane in the agent process): an upper bound; a miss here does not decide the goal, which is for the agent alone' : '';
    lines.push(`- ${ok ? 'PASS' : g.standalone ? 'MISS?' : 'MISS'} agent RSS idle ≤ 60 MB (larger agent): ${mbText(idle)}${note}`);
  }
  if (peak === undefined) lines.push('- n/a  agent RSS under the bench ≤ 150 MB: not measured');
  else
    lines.push(`- ${verdict(peak <= 150 * MB)} agent RSS under the bench ≤ 150 MB (peak of either agent, sampled every 200 ms): ${mbText(peak)}${g.standalone ? ' (control plane in process)' : ''}`);
  return lines;
}

export interface HttpGoalInput {
  samples: Sample[];
  /** The mesh's HTTP-port path (mesh-http). */
  smesh: string;
  direct: string;
  /** The HTTP-mode peers (nginx-http, haproxy-http). */
  peers: string[];
}

/** Issue 13 item 5 (the HTTP port against nginx/HAProxy HTTP reverse proxies doing the same two-hop work), one line each. */
export function httpGoalLines(g: HttpGoalInput): string[] {
  const { samples, smesh, direct } = g;
  const peers = g.peers.filter((p) => samples.some((s) => s.path === p));
  const lines: string[] = [];
  const bestOf = (value: (p: string) => number | undefined, higherBetter: boolean): { peer: string; v: number } | undefined => {
    let b: { peer: string; v: number } | undefined;
    for (const p of peers) {
      const v = value(p);
      if (v !== undefined && (!b || (higherBetter ? v > b.v : v < b.v))) b = { peer: p, v };
    }
    return b;
  };
  const line = (title: string, mine: number | undefined, value: (p: string) => number | undefined, higherBetter: boolean, factor: number, unit: string, digits: number) => {
    const b = bestOf(value, higherBetter);
    if (mine === undefined || !b) {
      lines.push(`- n/a  ${title}: not measured`);
      return;
    }
    const ok = higherBetter ? mine >= factor * b.v : mine <= factor * b.v;
    const r = b.v === 0 ? 'n/a' : `${(mine / b.v).toFixed(2)}×`;
    lines.push(`- ${ok ? 'PASS' : 'MISS'} ${title}: smesh ${fmt(mine, digits)} ${unit} = ${r} the best peer, ${b.peer} ${fmt(b.v, digits)}`);
  };
  const rate = (p: string) => med(samples, p, 'hrps');
  line('HTTP-port requests/s ≥ 1.25× the best peer', rate(smesh), rate, true, 1.25, 'req/s', 0);
  const added = (p: string) => addedOverDirect(samples, p, direct, 'hlat_p50');
  line("HTTP-port p50 added per request (1 keep-alive conn) ≤ the best peer's", added(smesh), added, false, 1, 'µs', 1);
  const cpu = (p: string) => cpuPerUnit(samples, p, 'hrps', 1e6);
  line("HTTP-port proxy CPU per 1000 requests ≤ the best peer's", cpu(smesh), cpu, false, 1, 'CPU-ms', 1);
  return lines;
}
