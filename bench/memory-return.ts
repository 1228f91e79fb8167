// Memory given back (issue 15 item 4): two agents on the namespaced topology, idle RSS, a burst of new connections + bulk through the mesh, then RSS every second — with and without the idle-time reclaim, same run.
//
// Rerun (root, after `make build`; ~5 minutes; run it on a quiet machine — bench/README.md "Memory given back"):
//   sudo npx tsx bench/memory-return.ts
// Settings (environment): BENCH_BURST_S (10) seconds of `wrk -t2 -c64 -H 'Connection: close'` to the remote Service's
// TCP port, with `iperf3 -P 2` bulk for the first half; BENCH_AFTER_S (90) seconds sampled after the burst;
// BENCH_MODES ("no-reclaim reclaim") which agents to run, in order; BENCH_OUT (bench/results).
// The agents run through the launcher, bin/smesh (V8 heap tuning as in production); `SMESH_NO_RECLAIM=1` in the
// environment of the "no-reclaim" agents turns the reclaim off (agent/runtime/reclaim.ts). SMESH_E2E_AGENT_CLI
// overrides the entry point as for the e2e tests.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { sleep, tail, waitExit } from '../test/helpers/proc';
import { parseMetrics, sum } from '../test/helpers/metrics';
import { cpuWindow, memKiB, RssSampler } from './lib/procstat';
import { parseWrk } from './lib/tools';

const REPO = path.resolve(__dirname, '..');
// Before the harness is loaded: it reads the entry point once.
process.env.SMESH_E2E_AGENT_CLI ??= path.join(REPO, 'bin/smesh');

const env = (k: string, d: string) => process.env[k] ?? d;
const BURST_S = Number(env('BENCH_BURST_S', '10'));
const AFTER_S = Number(env('BENCH_AFTER_S', '90'));
const MODES = env('BENCH_MODES', 'no-reclaim reclaim')
  .split(/[\s,]+/)
  .filter(Boolean);
const OUT_DIR = env('BENCH_OUT', path.join(REPO, 'bench/results'));
/** The goal: RSS back within this fraction above idle… */
const WITHIN = 0.2;
/** …within this many seconds of the burst's end. */
const GOAL_S = 60;
/** CPU (% of one core) used outside the bench above which a phase is flagged (as in bench/run.ts). */
const FOREIGN_CPU_LIMIT = 25;
const VIP = '198.19.0.10';
const PORT = { http: 8081, iperf: 5201 } as const;

function say(text = ''): void {
  process.stdout.write(text + '\n');
}

const mib = (kib: number | undefined) => (kib === undefined ? '—' : (kib / 1024).toFixed(1));

interface Phase {
  mode: string;
  idleKiB: Record<string, number>;
  peakKiB: Record<string, number>;
  /** After the burst: seconds since its end → KiB, per node. */
  after: Record<string, Array<[number, number]>>;
  /** First second after the burst at which RSS ≤ (1 + WITHIN) × idle, per node (undefined: never within AFTER_S). */
  withinS: Record<string, number | undefined>;
  connections: number;
  wrkErrors: number;
  bulkGbit: number | undefined;
  reclaims: Record<string, number>;
  memory: Record<string, unknown>;
  outsideCpu: number;
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('bench/memory-return.ts needs root (namespaces, cgroups, BPF)');
  if (!(BURST_S >= 2 && BURST_S <= 60) || !(AFTER_S >= 10 && AFTER_S <= 300)) throw new Error('BENCH_BURST_S must be 2..60 and BENCH_AFTER_S 10..300');
  for (const m of MODES) if (m !== 'reclaim' && m !== 'no-reclaim') throw new Error(`BENCH_MODES: '${m}' is neither reclaim nor no-reclaim`);
  const { createTopology, AGENT_CLI } = await import('../test/helpers/topology');
  if (!fs.existsSync(AGENT_CLI)) throw new Error(`${AGENT_CLI} is missing: run make build`);
  const commit = execFileSync('git', ['-C', REPO, 'rev-parse', '--short', 'HEAD']).toString().trim();
  const dirty = execFileSync('git', ['-C', REPO, 'status', '--porcelain', '--untracked-files=no']).toString().trim() ? ' (uncommitted changes in the tree)' : '';
  say(`memory-return: modes ${MODES.join(', ')}; burst ${BURST_S} s, ${AFTER_S} s after; agent ${path.relative(REPO, AGENT_CLI)}; commit ${commit}${dirty}`);

  const topo = await createTopology({
    runId: `bench${randomBytes(3).toString('hex')}`,
    nodes: ['node1', 'node2'],
    pods: [
      { name: 'client', node: 'node1' },
      { name: 'remote-server', node: 'node2' },
    ],
  });
  const phases: Phase[] = [];
  try {
    const httpd = path.join(topo.makeTempDir('build'), 'httpd');
    execFileSync('gcc', ['-O2', '-pthread', '-o', httpd, path.join(REPO, 'bench/httpd.c')], { stdio: 'pipe' });
    const server = topo.pod('remote-server');
    topo.spawnInPod(server, httpd, [server.ip, String(PORT.http), '1']);
    topo.spawnInPod(server, 'iperf3', ['-s', '-B', server.ip, '-p', String(PORT.iperf)]);
    const cfgDir = topo.makeTempDir('config');
    topo.writeConfig(cfgDir, {
      services: [
        {
          name: 'remote',
          vip: VIP,
          ports: [
            { name: 'tcp-web', port: PORT.http, targetPort: PORT.http },
            { name: 'iperf', port: PORT.iperf, targetPort: PORT.iperf },
          ],
          selector: { app: 'remote-server' },
        },
      ],
    });

    for (const mode of MODES) {
      say(`\n[${mode}] starting both agents${mode === 'no-reclaim' ? ' with SMESH_NO_RECLAIM=1' : ''}`);
      // spawn() copies the environment: set for these two starts only.
      if (mode === 'no-reclaim') process.env.SMESH_NO_RECLAIM = '1';
      const agents = [];
      try {
        for (const n of ['node1', 'node2']) {
          const a = topo.startAgent(n, cfgDir);
          agents.push(a);
          await a.waitReady(60_000);
        }
      } finally {
        delete process.env.SMESH_NO_RECLAIM;
      }
      const pids = Object.fromEntries(agents.map((a) => [a.node.name, a.pid]));
      for (const a of agents) {
        const comm = fs.readFileSync(`/proc/${a.pid}/comm`, 'utf8').trim();
        if (comm !== 'node') throw new Error(`agent pid ${a.pid} is '${comm}', not node`);
      }
      const hello = await topo.execInPod('client', 'curl', ['-sS', '-m', '5', `http://${VIP}:${PORT.http}/`], { timeoutMs: 10_000 });
      if (hello.stdout.trim() !== 'hello') throw new Error(`GET through the mesh failed: ${hello.stdout}${hello.stderr}\n${tail(agents[0]!.logs(), 20)}`);

      // Idle: settled agents, median of 5 one-second samples.
      await sleep(10_000);
      const idleSamples: Record<string, number[]> = { node1: [], node2: [] };
      for (let i = 0; i < 5; i++) {
        for (const [n, pid] of Object.entries(pids)) idleSamples[n]!.push(memKiB(pid)?.rss ?? 0);
        await sleep(1000);
      }
      const idleKiB = Object.fromEntries(Object.entries(idleSamples).map(([n, xs]) => [n, [...xs].sort((a, b) => a - b)[2]!]));
      say(`  idle RSS: node1 ${mib(idleKiB.node1)} MiB, node2 ${mib(idleKiB.node2)} MiB`);

      // Burst: new connections for BURST_S (every one a new mesh connection; the server closes), bulk for half of it.
      const sampler = new RssSampler(pids, 200);
      sampler.start();
      const cpu = cpuWindow({}, topo.runCgroup);
      const wrk = waitExit(topo.spawnInPod('client', 'wrk', ['-t2', '-c64', `-d${BURST_S}s`, '--timeout', '5s', '-H', 'Connection: close', `http://${VIP}:${PORT.http}/`]), (BURST_S + 20) * 1000);
      const bulkS = Math.max(1, Math.floor(BURST_S / 2));
      const iperf = waitExit(topo.spawnInPod('client', 'iperf3', ['-c', VIP, '-p', String(PORT.iperf), '-t', String(bulkS), '-P', '2', '-J', '--connect-timeout', '3000']), (bulkS + 20) * 1000);
      const [w, ip] = await Promise.all([wrk, iperf]);
      const burstEnd = Date.now();
      const wm = parseWrk(w.stdout);
      let bulkGbit: number | undefined;
      try {
        bulkGbit = (JSON.parse(ip.stdout) as { end: { sum_received: { bits_per_second: number } } }).end.sum_received.bits_per_second / 1e9;
      } catch {
        bulkGbit = undefined;
      }
      say(`  burst: ${wm.requests ?? '?'} connections (${Math.round(wm.value ?? 0)}/s, ${wm.errors} errors), bulk ${bulkGbit?.toFixed(2) ?? 'failed'} Gbit/s`);

      // After: one sample per second.
      const after: Record<string, Array<[number, number]>> = { node1: [], node2: [] };
      for (let s = 0; s <= AFTER_S; s++) {
        const wait = burstEnd + s * 1000 - Date.now();
        if (wait > 0) await sleep(wait);
        for (const [n, pid] of Object.entries(pids)) after[n]!.push([s, memKiB(pid)?.rss ?? 0]);
      }
      sampler.stop();
      const outsideCpu = cpu.end().other;
      const withinS = Object.fromEntries(Object.entries(after).map(([n, xs]) => [n, xs.find(([, kib]) => kib <= (1 + WITHIN) * idleKiB[n]!)?.[0]]));
      const reclaims: Record<string, number> = {};
      const memory: Record<string, unknown> = {};
      for (const a of agents) {
        reclaims[a.node.name] = sum(parseMetrics(await a.metrics()), 'smesh_memory_reclaims_total');
        const r = await topo.execInNode(a.node, 'curl', ['-sS', '-m', '5', 'http://127.0.0.1:15000/memory'], { timeoutMs: 10_000 });
        try {
          memory[a.node.name] = (JSON.parse(r.stdout) as { reclaim?: unknown }).reclaim;
        } catch {
          memory[a.node.name] = r.stdout.slice(0, 200);
        }
      }
      const phase: Phase = { mode, idleKiB, peakKiB: { ...sampler.peak }, after, withinS, connections: wm.requests ?? 0, wrkErrors: wm.errors, bulkGbit, reclaims, memory, outsideCpu };
      phases.push(phase);
      for (const n of ['node1', 'node2']) {
        const xs = after[n]!;
        const at = (s: number) => mib(xs.find(([t]) => t === s)?.[1]);
        say(
          `  ${n}: idle ${mib(idleKiB[n])}, peak ${mib(phase.peakKiB[n])}, +0 s ${at(0)}, +30 s ${at(30)}, +60 s ${at(60)}, +${AFTER_S} s ${at(AFTER_S)} MiB; within 20 % of idle ${withinS[n] === undefined ? `not within ${AFTER_S} s` : `after ${withinS[n]} s`}; reclaims ${reclaims[n]}`,
        );
      }
      say(`  CPU used outside the bench during the phase: ${outsideCpu.toFixed(0)}% of a core${outsideCpu > FOREIGN_CPU_LIMIT ? ' — NOT QUIET' : ''}`);
      for (const a of agents) await a.stop(10_000);
    }
  } finally {
    await topo.cleanup();
  }

  // Report.
  const row = (p: Phase, n: string) => {
    const w = p.withinS[n];
    const goal = w !== undefined && w <= GOAL_S ? 'met' : 'missed';
    const last = p.after[n]!.at(-1)?.[1];
    return `| ${p.mode} | ${n} | ${mib(p.idleKiB[n])} | ${mib(p.peakKiB[n])} | ${mib(last)} | ${w === undefined ? `not within ${AFTER_S} s` : `${w} s`} | ${goal} | ${p.reclaims[n]} |`;
  };
  const busy = phases.filter((p) => p.outsideCpu > FOREIGN_CPU_LIMIT);
  const report = [
    `# memory return, ${new Date().toISOString()}`,
    '',
    `Burst: ${BURST_S} s of new connections (wrk -t2 -c64, Connection: close) client → ${VIP}:${PORT.http} through both agents, iperf3 -P 2 bulk for the first ${Math.max(1, Math.floor(BURST_S / 2))} s; RSS (VmRSS) sampled every second for ${AFTER_S} s after it. Goal: within ${WITHIN * 100} % of idle within ${GOAL_S} s.`,
    '',
    '| agents | node | idle (MiB) | peak (MiB) | after ' + AFTER_S + ' s (MiB) | back within 20 % of idle | goal | reclaims |',
    '|---|---|---:|---:|---:|---|---|---:|',
    ...phases.flatMap((p) => ['node1', 'node2'].map((n) => row(p, n))),
    '',
    ...phases.map(
      (p) =>
        `- ${p.mode}: ${p.connections} connections (${p.wrkErrors} errors), bulk ${p.bulkGbit?.toFixed(2) ?? 'failed'} Gbit/s, CPU outside the bench ${p.outsideCpu.toFixed(0)}% of a core${p.outsideCpu > FOREIGN_CPU_LIMIT ? ' (!)' : ''}`,
    ),
    '',
    busy.length
      ? `**${busy.length} of ${phases.length} phases ran on a busy machine (more than ${FOREIGN_CPU_LIMIT} % of a core used outside the bench): not a result, rerun on a quiet machine.**`
      : 'Machine quiet during every phase.',
    '',
    'Last reclaim per agent (admin /memory):',
    '```json',
    JSON.stringify(Object.fromEntries(phases.map((p) => [p.mode, p.memory])), null, 1),
    '```',
    '',
  ].join('\n');
  say('\n' + report);
  fs.mkdirSync(OUT_DIR, { recursive: true });
  const file = path.join(OUT_DIR, `memory-return-${new Date().toISOString().slice(0, 19).replace(/[:T]/g, '-')}.md`);
  fs.writeFileSync(file, report);
  fs.writeFileSync(file.replace(/\.md$/, '.json'), JSON.stringify(phases, null, 1));
  say(`recorded in ${path.relative(REPO, file)} (+ .json with every sample)`);
}

main().catch((err) => {
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
  process.exitCode = 1;
});
