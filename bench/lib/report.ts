// Bench statistics and report: medians over rounds, mesh/direct ratios, Markdown tables for stdout and bench/results/.
import type { Measured, TestName } from './tools';
import type { CpuWindow } from './procstat';

export interface Sample {
  round: number;
  path: string;
  test: TestName;
  m: Measured;
  cpu: CpuWindow;
  /** Peak VmRSS (KiB) of each agent during this measurement. */
  rssPeakKiB: Record<string, number>;
  wallS: number;
}

export interface Pair {
  /** Path measured through the mesh and its direct baseline, e.g. mesh vs direct. */
  mesh: string;
  direct: string;
  title: string;
  /** The tests the pair is compared on (default: all). */
  tests?: readonly TestName[];
}

export interface Metric {
  key: string;
  label: string;
  test: TestName;
  pick: (m: Measured) => number | undefined;
  /** true: bigger is better (throughput); false: smaller is better (latency). */
  higherBetter: boolean;
  digits: number;
}

export const METRICS: Metric[] = [
  { key: 'bw1', label: 'bulk, 1 stream (Gbit/s)', test: 'bw1', pick: (m) => m.value, higherBetter: true, digits: 2 },
  { key: 'bw4', label: 'bulk, 4 streams (Gbit/s)', test: 'bw4', pick: (m) => m.value, higherBetter: true, digits: 2 },
  { key: 'p50', label: 'latency p50, 1 conn, 64 B ping-pong (µs)', test: 'lat', pick: (m) => m.p50Us, higherBetter: false, digits: 1 },
  { key: 'p99', label: 'latency p99, 1 conn, 64 B ping-pong (µs)', test: 'lat', pick: (m) => m.p99Us, higherBetter: false, digits: 1 },
  { key: 'rps', label: 'HTTP requests/s, 64 keep-alive conns', test: 'rps', pick: (m) => m.value, higherBetter: true, digits: 0 },
  { key: 'cps', label: 'new connections/s, 64 conns (Connection: close)', test: 'cps', pick: (m) => m.value, higherBetter: true, digits: 0 },
  // HTTP port (proxied per request): hrps/hcps as rps/cps with wrk --latency, hlat one keep-alive connection back to back.
  { key: 'hrps', label: 'HTTP port: requests/s, 64 keep-alive conns', test: 'hrps', pick: (m) => m.value, higherBetter: true, digits: 0 },
  { key: 'hrps_p50', label: 'HTTP port: request p50 under 64 keep-alive conns (µs)', test: 'hrps', pick: (m) => m.reqP50Us, higherBetter: false, digits: 0 },
  { key: 'hrps_p99', label: 'HTTP port: request p99 under 64 keep-alive conns (µs)', test: 'hrps', pick: (m) => m.reqP99Us, higherBetter: false, digits: 0 },
  { key: 'hlat_p50', label: 'HTTP port: request p50, 1 keep-alive conn (µs)', test: 'hlat', pick: (m) => m.p50Us, higherBetter: false, digits: 1 },
  { key: 'hlat_p99', label: 'HTTP port: request p99, 1 keep-alive conn (µs)', test: 'hlat', pick: (m) => m.p99Us, higherBetter: false, digits: 1 },
  { key: 'hcps', label: 'HTTP port: new connections/s, 64 conns (Connection: close)', test: 'hcps', pick: (m) => m.value, higherBetter: true, digits: 0 },
];

export function median(xs: number[]): number | undefined {
  if (xs.length === 0) return undefined;
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid] : (s[mid - 1]! + s[mid]!) / 2;
}

export interface Stat {
  median?: number;
  min?: number;
  max?: number;
  n: number;
  failed: number;
}

export function stat(samples: Sample[], path: string, metric: Metric): Stat {
  const mine = samples.filter((s) => s.path === path && s.test === metric.test);
  const xs = mine.map((s) => (s.m.error ? undefined : metric.pick(s.m))).filter((x): x is number => typeof x === 'number' && Number.isFinite(x));
  return { median: median(xs), min: xs.length ? Math.min(...xs) : undefined, max: xs.length ? Math.max(...xs) : undefined, n: xs.length, failed: mine.length - xs.length };
}

function fmt(x: number | undefined, digits: number): string {
  if (x === undefined) return 'n/a';
  return x.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits }).replace(/,/g, ' ');
}

function fmtStat(s: Stat, digits: number): string {
  if (s.median === undefined) return `n/a${s.failed ? ` (${s.failed} failed)` : ''}`;
  const range = s.n > 1 ? ` [${fmt(s.min, digits)}–${fmt(s.max, digits)}]` : '';
  return `${fmt(s.median, digits)}${range}${s.failed ? ` (${s.failed} failed)` : ''}`;
}

export function ratio(mesh: Stat, direct: Stat): number | undefined {
  if (mesh.median === undefined || direct.median === undefined || direct.median === 0) return undefined;
  return mesh.median / direct.median;
}

export interface Summary {
  rows: Array<{ metric: string; label: string; higherBetter: boolean; pairs: Array<{ mesh: string; direct: string; meshStat: Stat; directStat: Stat; ratio?: number }> }>;
}

export function summarize(samples: Sample[], pairs: Pair[], paths: string[]): Summary {
  return {
    rows: METRICS.filter((mt) => samples.some((s) => s.test === mt.test)).map((mt) => ({
      metric: mt.key,
      label: mt.label,
      higherBetter: mt.higherBetter,
      pairs: pairs
        .filter((p) => paths.includes(p.mesh) && paths.includes(p.direct) && (!p.tests || p.tests.includes(mt.test)))
        .map((p) => {
          const meshStat = stat(samples, p.mesh, mt);
          const directStat = stat(samples, p.direct, mt);
          return { mesh: p.mesh, direct: p.direct, meshStat, directStat, ratio: ratio(meshStat, directStat) };
        }),
    })),
  };
}

/** The main table: for each pair, direct | mesh | mesh/direct, medians [min–max] over the rounds. */
export function mainTable(samples: Sample[], pairs: Pair[], paths: string[]): string {
  const used = pairs.filter((p) => paths.includes(p.mesh) && paths.includes(p.direct));
  const head = ['measure', ...used.flatMap((p) => [p.direct, p.mesh, `${p.mesh}/${p.direct}`])];
  const lines = [`| ${head.join(' | ')} |`, `|${head.map((_, i) => (i === 0 ? '---' : '---:')).join('|')}|`];
  for (const mt of METRICS) {
    if (!samples.some((s) => s.test === mt.test)) continue;
    const cells = [mt.label];
    for (const p of used) {
      if (p.tests && !p.tests.includes(mt.test)) {
        cells.push('—', '—', '—');
        continue;
      }
      const d = stat(samples, p.direct, mt);
      const m = stat(samples, p.mesh, mt);
      const r = ratio(m, d);
      cells.push(fmtStat(d, mt.digits), fmtStat(m, mt.digits), r === undefined ? 'n/a' : `**${r.toFixed(2)}**`);
    }
    lines.push(`| ${cells.join(' | ')} |`);
  }
  return lines.join('\n');
}

/** Per test and path: median CPU (% of one core) of the machine, both agents, the load generator's pod and the server pod. */
export function cpuTable(samples: Sample[], paths: string[], groupNames: string[]): string {
  const head = ['test', 'path', 'machine', ...groupNames, 'ksoftirqd', 'other (outside the bench)', 'steal', 'errors (sum over rounds)'];
  const lines = [`| ${head.join(' | ')} |`, `|${head.map((_, i) => (i < 2 ? '---' : '---:')).join('|')}|`];
  const tests = [...new Set(samples.map((s) => s.test))];
  for (const t of tests) {
    for (const p of paths) {
      const mine = samples.filter((s) => s.test === t && s.path === p);
      if (mine.length === 0) continue;
      const med = (f: (s: Sample) => number) => fmt(median(mine.map(f)), 0);
      const errs = mine.reduce((a, s) => a + (s.m.errors ?? 0), 0);
      const failed = mine.filter((s) => s.m.error).length;
      const errText = `${errs}${failed ? `, ${failed} runs failed` : ''}`;
      lines.push(
        `| ${t} | ${p} | ${med((s) => s.cpu.machine)} | ${groupNames.map((g) => med((s) => s.cpu.groups[g] ?? 0)).join(' | ')} | ${med((s) => s.cpu.ksoftirqd ?? 0)} | ${med((s) => s.cpu.other)} | ${med((s) => s.cpu.steal)} | ${errText} |`,
      );
    }
  }
  return lines.join('\n');
}

export function mib(kib: number | undefined): string {
  return kib === undefined ? 'n/a' : (kib / 1024).toFixed(1);
}
