// Noisy-neighbour bench (bench/noisy-neighbour.ts): wrk latency-distribution parsing, medians and ratios over rounds, the quiet-pod and limits tables with the issue-14 goals.
import { parseWrk, type Measured } from './tools';
import type { CpuWindow } from './procstat';

/** `alone`: the quiet pod by itself; `noisy`: with the noisy pod's connection flood and bulk running. */
export type Condition = 'alone' | 'noisy';
/** Agent setting of a measurement: `--fair-share on|off`, or `default` when the agent has no such flag. */
export type AgentMode = 'on' | 'off' | 'default';
/** A row group of the report: the quiet pod through the mesh with agents of one setting, or `direct` (the control: not through the mesh). */
export type RowGroup = AgentMode | 'direct';

/** Issue 14 item 5: with fair share on, the quiet pod's p99 within 1.5× and its req/s within 0.8× of its values alone. */
export const GOAL_P99_RATIO = 1.5;
export const GOAL_RPS_RATIO = 0.8;
/** Rate and bandwidth limits hold within ±10 % over the measurement. */
export const GOAL_LIMIT_TOLERANCE = 0.1;

/** A wrk run with `--latency`: requests/s plus the printed percentiles (µs). */
export interface QuietMeasured extends Measured {
  p50Us?: number;
  p75Us?: number;
  p90Us?: number;
  p99Us?: number;
}

const UNIT_US: Record<string, number> = { us: 1, ms: 1000, s: 1_000_000, m: 60_000_000 };

/** Parses wrk's output with `--latency`: Requests/sec, errors, and the 50/75/90/99 % lines of "Latency Distribution". */
export function parseWrkLatency(out: string): QuietMeasured {
  const m: QuietMeasured = parseWrk(out);
  if (m.error) return m;
  const dist = out.slice(out.indexOf('Latency Distribution'));
  if (!out.includes('Latency Distribution')) return { ...m, error: 'wrk printed no Latency Distribution (run it with --latency)' };
  const pct = (p: number): number | undefined => {
    const r = new RegExp(`^\\s*${p}%\\s+([\\d.]+)(us|ms|s|m)\\s*$`, 'm').exec(dist);
    return r ? Number(r[1]) * UNIT_US[r[2]!]! : undefined;
  };
  const out2: QuietMeasured = { ...m, p50Us: pct(50), p75Us: pct(75), p90Us: pct(90), p99Us: pct(99) };
  if (out2.p50Us === undefined || out2.p99Us === undefined) out2.error = 'wrk printed no 50%/99% latency lines';
  return out2;
}

/** What the noisy pod achieved while it ran next to the quiet pod. */
export interface NoisyMeasured {
  connPerS?: number;
  connErrors?: number;
  bulkGbit?: number;
  error?: string;
}

export interface QuietSample {
  round: number;
  /** Row group: the agents' setting for the mesh path, `direct` for the control path. */
  mode: RowGroup;
  /** The agents running during the measurement (for `direct` too: the noisy pod goes through them). */
  agents: AgentMode;
  condition: Condition;
  quiet: QuietMeasured;
  noisy?: NoisyMeasured;
  cpu: CpuWindow;
  wallS: number;
}

export function median(xs: number[]): number | undefined {
  if (xs.length === 0) return undefined;
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid] : (s[mid - 1]! + s[mid]!) / 2;
}

export interface Spread {
  median?: number;
  min?: number;
  max?: number;
  n: number;
}

export function spread(xs: Array<number | undefined>): Spread {
  const v = xs.filter((x): x is number => typeof x === 'number' && Number.isFinite(x));
  return { median: median(v), min: v.length ? Math.min(...v) : undefined, max: v.length ? Math.max(...v) : undefined, n: v.length };
}

const fmt = (x: number | undefined, digits: number) => (x === undefined ? '—' : x.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits }).replace(/,/g, ' '));
const fmtSpread = (s: Spread, digits: number) => (s.median === undefined ? '—' : s.n > 1 ? `${fmt(s.median, digits)} [${fmt(s.min, digits)}–${fmt(s.max, digits)}]` : fmt(s.median, digits));
const ratio = (a: number | undefined, b: number | undefined) => (a === undefined || b === undefined || b === 0 ? undefined : a / b);

/** The quiet pod's numbers of one (mode, condition) over the rounds, failed measurements left out. */
export interface Cell {
  p50: Spread;
  p99: Spread;
  rps: Spread;
  noisyConn: Spread;
  noisyGbit: Spread;
  failed: number;
}

export function cell(samples: QuietSample[], mode: RowGroup, condition: Condition): Cell {
  const mine = samples.filter((s) => s.mode === mode && s.condition === condition);
  const ok = mine.filter((s) => !s.quiet.error);
  return {
    p50: spread(ok.map((s) => s.quiet.p50Us)),
    p99: spread(ok.map((s) => s.quiet.p99Us)),
    rps: spread(ok.map((s) => s.quiet.value)),
    noisyConn: spread(mine.map((s) => s.noisy?.connPerS)),
    noisyGbit: spread(mine.map((s) => s.noisy?.bulkGbit)),
    failed: mine.length - ok.length,
  };
}

export const MODE_LABEL: Record<RowGroup, string> = { on: 'fair share on', off: 'fair share off', default: 'agent default (no fair share)', direct: 'direct (control)' };

/** Ratios of the quiet pod with the noisy pod to the quiet pod alone, same agents. */
export interface QuietRatios {
  mode: RowGroup;
  p50: number | undefined;
  p99: number | undefined;
  rps: number | undefined;
}

export function ratios(samples: QuietSample[], mode: RowGroup): QuietRatios {
  const a = cell(samples, mode, 'alone');
  const b = cell(samples, mode, 'noisy');
  return { mode, p50: ratio(b.p50.median, a.p50.median), p99: ratio(b.p99.median, a.p99.median), rps: ratio(b.rps.median, a.rps.median) };
}

/** The quiet-pod table: one row per (mode, condition), ratios to alone with the same agents on the noisy rows. */
export function quietTable(samples: QuietSample[], modes: RowGroup[]): string {
  const rows = [
    '| row | agents | quiet pod | p50 (µs) | p99 (µs) | req/s | p99 / alone | req/s / alone | noisy pod: new conns/s | noisy pod: bulk (Gbit/s) |',
    '|---|---|---|---:|---:|---:|---:|---:|---:|---:|',
  ];
  const letter: Record<string, string> = {
    'on:alone': '(a)',
    'on:noisy': '(b)',
    'off:alone': '(a′)',
    'off:noisy': '(c)',
    'default:alone': '(a)',
    'default:noisy': '(n)',
    'direct:alone': '(d)',
    'direct:noisy': '(e)',
  };
  for (const mode of modes) {
    for (const condition of ['alone', 'noisy'] as const) {
      const c = cell(samples, mode, condition);
      const r = ratios(samples, mode);
      const failed = c.failed ? ` (${c.failed} failed)` : '';
      rows.push(
        `| ${letter[`${mode}:${condition}`]} | ${MODE_LABEL[mode]} | ${condition === 'alone' ? 'alone' : 'with the noisy pod'}${failed} | ${fmtSpread(c.p50, 1)} | ${fmtSpread(c.p99, 1)} | ${fmtSpread(c.rps, 0)} | ${condition === 'noisy' ? `**${fmt(r.p99, 2)}**` : ''} | ${condition === 'noisy' ? `**${fmt(r.rps, 2)}**` : ''} | ${condition === 'noisy' ? fmtSpread(c.noisyConn, 0) : ''} | ${condition === 'noisy' ? fmtSpread(c.noisyGbit, 2) : ''} |`,
      );
    }
  }
  return rows.join('\n');
}

/** PASS/MISS lines for the issue's goals; the goals apply to fair share on, `off` is shown for contrast. */
export function goalLines(samples: QuietSample[], modes: RowGroup[], fairShareNote: string | null): string[] {
  const pf = (ok: boolean | undefined) => (ok === undefined ? 'n/a' : ok ? 'PASS' : 'FAIL');
  const line = (r: QuietRatios) => {
    const p99ok = r.p99 === undefined ? undefined : r.p99 <= GOAL_P99_RATIO;
    const rpsOk = r.rps === undefined ? undefined : r.rps >= GOAL_RPS_RATIO;
    return `p99 ${fmt(r.p99, 2)}× alone (goal ≤ ${GOAL_P99_RATIO}×): ${pf(p99ok)}; req/s ${fmt(r.rps, 2)}× alone (goal ≥ ${GOAL_RPS_RATIO}×): ${pf(rpsOk)}`;
  };
  const out: string[] = [];
  if (fairShareNote !== null) {
    out.push(`- fair share: not available (${fairShareNote}) — goals not evaluated`);
    if (modes.includes('default')) out.push(`- (n)/(a), with the noisy pod, agent default: ${line(ratios(samples, 'default'))} (for information)`);
  } else {
    if (modes.includes('on')) out.push(`- **(b)/(a), fair share on: ${line(ratios(samples, 'on'))}**`);
    if (modes.includes('off')) out.push(`- (c)/(a′), fair share off (for contrast, the goals are for fair share on): ${line(ratios(samples, 'off'))}`);
  }
  if (modes.includes('direct')) {
    const r = ratios(samples, 'direct');
    out.push(
      `- (e)/(d), control — the quiet pod not through the mesh, the noisy pod through it: p99 ${fmt(r.p99, 2)}×, req/s ${fmt(r.rps, 2)}× alone: what the shared machine (CPU, softirq, links) does to the quiet pod with no proxy on its path, which no proxy scheduling can remove on this testbed`,
    );
  }
  return out;
}

/** One rate or bandwidth limit measured over a fixed time. */
export interface LimitResult {
  name: string;
  /** What the limit is, in words (e.g. "connectionRate 20 per 100ms, burst 20"). */
  configured: string;
  unit: string;
  /** Configured rate in `unit`. */
  rate: number;
  /** What the limit lets through over the measurement, burst included, per second. */
  expected: number;
  achieved?: number;
  /** Units the limiter refused (connections reset, 429s), as the client or the agent counted them. */
  refused?: string;
  /** How many units the agent refused; 0 = the client never went over the limit, so the run says nothing about it. */
  refusedCount?: number;
  /** Why the limit was not measured. */
  skipped?: string;
  error?: string;
  cpu?: CpuWindow;
  durS: number;
}

export function limitTable(results: LimitResult[]): string {
  const rows = [
    '| limit | configured | expected over the run (burst included) | achieved | achieved / expected | goal ±10 % | pushed over it / shape | CPU outside the bench (% of a core) |',
    '|---|---|---:|---:|---:|---|---|---:|',
  ];
  for (const r of results) {
    if (r.skipped) {
      rows.push(`| ${r.name} | ${r.configured} | — | — | — | skipped: ${r.skipped} | — | — |`);
      continue;
    }
    const q = ratio(r.achieved, r.expected);
    const verdict = r.error
      ? `FAIL (${r.error})`
      : q === undefined
        ? 'n/a'
        : r.refusedCount === 0
          ? 'n/a: never pushed over the limit (the path carried less than it here)'
          : Math.abs(q - 1) <= GOAL_LIMIT_TOLERANCE
            ? 'PASS'
            : 'FAIL';
    const d = r.unit === 'Mbit/s' ? 1 : 0;
    rows.push(`| ${r.name} | ${r.configured} | ${fmt(r.expected, d)} ${r.unit} | ${fmt(r.achieved, d)} ${r.unit} | ${fmt(q, 3)} | ${verdict} | ${r.refused ?? '—'} | ${fmt(r.cpu?.other, 0)} |`);
  }
  return rows.join('\n');
}

/** CPU table: median per (mode, condition) of the machine, the agents, the pods and what ran outside the bench. */
export function cpuTable(samples: QuietSample[], modes: RowGroup[], groups: string[]): string {
  const rows = [`| agents | quiet pod | machine | ${groups.join(' | ')} | outside the bench |`, `|---|---|---:|${groups.map(() => '---:').join('|')}|---:|`];
  for (const mode of modes) {
    for (const condition of ['alone', 'noisy'] as const) {
      const mine = samples.filter((s) => s.mode === mode && s.condition === condition);
      const m = (f: (c: CpuWindow) => number | undefined) => fmt(median(mine.map((s) => f(s.cpu)).filter((x): x is number => typeof x === 'number')), 0);
      rows.push(`| ${MODE_LABEL[mode]} | ${condition} | ${m((c) => c.machine)} | ${groups.map((g) => m((c) => c.groups[g])).join(' | ')} | ${m((c) => c.other)} |`);
    }
  }
  return rows.join('\n');
}
