// Pod-addressed (ztunnel's wire, the default) against node-addressed HBONE, cross node: bench/run.ts invoked alternately with each addressing, medians and pod/node ratios over all of them.
// Rerun: `npx tsx bench/hbone-addressing.ts` (env: PAIRS=3, BENCH_DUR=3, BENCH_ROUNDS=2, BENCH_TESTS as bench/run.ts).
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

interface Sample {
  path: string;
  test: string;
  m: { value?: number; p50Us?: number; p99Us?: number; error?: string };
  cpu: { other: number };
}

const PAIRS = Number(process.env.PAIRS ?? '3');
const REPO = path.resolve(__dirname, '..');
const ADDRESSINGS = ['pod', 'node'] as const;
type Addressing = (typeof ADDRESSINGS)[number];

function runOnce(addressing: Addressing, i: number): Sample[] {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), `smesh-bench-${addressing}-${i}-`));
  try {
    execFileSync('npx', ['tsx', path.join(REPO, 'bench/run.ts')], {
      cwd: REPO,
      stdio: ['ignore', 'inherit', 'inherit'],
      env: { ...process.env, BENCH_PATHS: 'mesh', BENCH_HBONE_ADDRESSING: addressing, BENCH_OUT: out, BENCH_DUR: process.env.BENCH_DUR ?? '3', BENCH_ROUNDS: process.env.BENCH_ROUNDS ?? '2' },
    });
    const file = fs.readdirSync(out).find((f) => f.endsWith('.json'));
    if (!file) throw new Error(`bench/run.ts wrote no results into ${out}`);
    return (JSON.parse(fs.readFileSync(path.join(out, file), 'utf8')) as { samples: Sample[] }).samples;
  } finally {
    fs.rmSync(out, { recursive: true, force: true });
  }
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

const all: Record<Addressing, Sample[]> = { pod: [], node: [] };
for (let i = 0; i < PAIRS; i++) {
  // Alternate which goes first, so drift over the run does not favour one side.
  const order = i % 2 === 0 ? ADDRESSINGS : ([...ADDRESSINGS].reverse() as Addressing[]);
  for (const a of order) all[a].push(...runOnce(a, i));
}

const metrics: Array<{ name: string; test: string; pick: (s: Sample) => number | undefined; higherIsBetter: boolean }> = [
  { name: 'bulk, 1 stream (Gbit/s)', test: 'bw1', pick: (s) => s.m.value, higherIsBetter: true },
  { name: 'bulk, 4 streams (Gbit/s)', test: 'bw4', pick: (s) => s.m.value, higherIsBetter: true },
  { name: 'latency p50 (µs)', test: 'lat', pick: (s) => s.m.p50Us, higherIsBetter: false },
  { name: 'latency p99 (µs)', test: 'lat', pick: (s) => s.m.p99Us, higherIsBetter: false },
  { name: 'HTTP requests/s', test: 'rps', pick: (s) => s.m.value, higherIsBetter: true },
  { name: 'new connections/s', test: 'cps', pick: (s) => s.m.value, higherIsBetter: true },
];
const contaminated = [...all.pod, ...all.node].filter((s) => s.cpu.other > 25).length;
const lines = [`| measure | pod-addressed | node-addressed | pod/node |`, `|---|---:|---:|---:|`];
for (const m of metrics) {
  const vals = (a: Addressing) =>
    all[a]
      .filter((s) => s.test === m.test && !s.m.error)
      .map(m.pick)
      .filter((v): v is number => v !== undefined);
  const p = vals('pod');
  const n = vals('node');
  if (p.length === 0 || n.length === 0) continue;
  const ratio = median(p) / median(n);
  lines.push(`| ${m.name} | ${median(p).toFixed(2)} (n=${p.length}) | ${median(n).toFixed(2)} (n=${n.length}) | **${ratio.toFixed(2)}**${m.higherIsBetter ? '' : ' (lower is better)'} |`);
}
console.log(`\nHBONE addressing, ${PAIRS} alternating pairs of bench/run.ts (BENCH_PATHS=mesh); measurements with >25% of a core used outside the bench: ${contaminated}\n`);
console.log(lines.join('\n'));
