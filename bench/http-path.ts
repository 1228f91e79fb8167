// Per-request HTTP path cost on loopback: wrk → direct / JS L4 relay / a minimal node:http proxy / HttpOutbound (same-node HTTP/1.1 path) → bench/httpd.c; rps ratios in one run, optional CPU profile.
//
// Rerun: npx tsx bench/http-path.ts   (needs gcc and wrk: bash bench/install.sh)
// Settings: HTTP_BENCH_DUR (s, default 4), HTTP_BENCH_ROUNDS (default 3), HTTP_BENCH_CONNS (default 64),
// HTTP_BENCH_PROF=<file.cpuprofile> profiles this process (the proxies) during the HttpOutbound runs.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as inspector from 'node:inspector';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { HttpOutbound } from '../agent/http/outbound-http';
import { relay } from '../agent/proxy/relay';
import { StateStore } from '../agent/state/store';
import type { Service, Workload } from '../core/model/types';
import { MeshMetrics } from '../agent/telemetry/metrics';

const DUR = Number(process.env.HTTP_BENCH_DUR ?? 4);
const ROUNDS = Number(process.env.HTTP_BENCH_ROUNDS ?? 3);
const CONNS = Number(process.env.HTTP_BENCH_CONNS ?? 64);
const PROF = process.env.HTTP_BENCH_PROF;

function wl(name: string, ip: string): Workload {
  return {
    uid: `default/${name}`,
    name,
    namespace: 'default',
    serviceAccount: name,
    node: 'n1',
    ip,
    labels: { app: name },
    workloadName: name,
    identity: `spiffe://cluster.local/ns/default/sa/${name}`,
    meshed: true,
  } as Workload;
}

function listen(server: net.Server): Promise<number> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as net.AddressInfo).port)));
}

/** Runs wrk in a child process (this process serves the proxies meanwhile) and parses its report. */
function runWrk(port: number, conns: number, durS: number): Promise<{ rps: number; latencyAvg: string; errors: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn('wrk', ['-t2', `-c${conns}`, `-d${durS}s`, `http://127.0.0.1:${port}/`]);
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.on('error', reject);
    child.on('exit', () => {
      const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(out);
      const socketErrors = /Socket errors: (.*)/.exec(out);
      resolve({
        rps: Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? 0),
        latencyAvg: /Latency\s+(\S+)/.exec(out)?.[1] ?? '?',
        errors: (non2xx ? Number(non2xx[1]) : 0) + (socketErrors ? 1 : 0),
      });
    });
  });
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

async function main(): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'smesh-bench-http-'));
  let httpd: ChildProcess | undefined;
  const cleanups: Array<() => void> = [];
  try {
    const bin = path.join(dir, 'httpd');
    execFileSync('gcc', ['-O2', '-o', bin, path.join(__dirname, 'httpd.c')]);
    const upstreamPort = await new Promise<number>((resolve) => {
      const s = net.createServer();
      s.listen(0, '127.0.0.1', () => {
        const p = (s.address() as net.AddressInfo).port;
        s.close(() => resolve(p));
      });
    });
    httpd = spawn(bin, ['127.0.0.1', String(upstreamPort), '1'], { stdio: 'ignore' });
    for (let i = 0; i < 50; i++) {
      const ok = await new Promise<boolean>((r) =>
        net
          .connect(upstreamPort, '127.0.0.1')
          .on('connect', function (this: net.Socket) {
            this.destroy();
            r(true);
          })
          .on('error', () => r(false)),
      );
      if (ok) break;
      await new Promise((r) => setTimeout(r, 100));
    }

    // JS L4 relay (what a plain TCP port costs through the agent).
    const l4 = net.createServer({ allowHalfOpen: true, noDelay: true }, (sock) => {
      const up = net.connect({ host: '127.0.0.1', port: upstreamPort, allowHalfOpen: true, noDelay: true });
      relay(sock, up);
    });
    const l4Port = await listen(l4);
    cleanups.push(() => l4.close());

    // The floor for a proxy built on node:http: server + keep-alive client, headers passed as they are, no logic.
    const minAgent = new http.Agent({ keepAlive: true, maxSockets: Infinity });
    const minimal = http.createServer((req, res) => {
      const up = http.request({ host: '127.0.0.1', port: upstreamPort, method: req.method, path: req.url, headers: req.headers, agent: minAgent }, (ur) => {
        res.writeHead(ur.statusCode ?? 502, ur.headers);
        ur.pipe(res);
      });
      up.on('error', () => res.destroy());
      req.pipe(up);
    });
    const minimalPort = await listen(minimal);
    cleanups.push(
      () => minimal.close(),
      () => minAgent.destroy(),
    );

    // The per-request HTTP/1.1 path (HttpOutbound, same node: no HBONE).
    const client = wl('client', '127.0.0.1');
    const server = wl('server', '127.0.0.1');
    const service: Service = {
      key: 'default/web',
      name: 'web',
      namespace: 'default',
      vips: ['10.96.0.1'],
      ports: [{ name: 'http', port: 80, targetPort: upstreamPort }],
      selector: {},
      endpointUids: [server.uid],
    } as Service;
    const state = new StateStore();
    state.replace({
      trustDomain: 'cluster.local',
      nodes: new Map([['n1', { name: 'n1', address: '127.0.0.1' }]]),
      workloads: new Map([client, server].map((w) => [w.uid, w])),
      services: new Map([[service.key, service]]),
      namespaces: new Map([['default', {}]]),
    } as never);
    const handler = new HttpOutbound({ state, hbone: { open: () => Promise.reject(new Error('no HBONE in this bench')) }, nodeName: 'n1', hbonePort: 15008, metrics: new MeshMetrics() } as never);
    const front = net.createServer({ noDelay: true }, (sock) => handler.handle(sock, { source: client, sourceIp: '127.0.0.1', service, port: service.ports[0]! }));
    const httpPort = await listen(front);
    cleanups.push(
      () => front.close(),
      () => handler.close(),
    );

    const paths: Array<[string, number]> = [
      ['direct', upstreamPort],
      ['tcp-relay', l4Port],
      ['node-http-min', minimalPort],
      ['http-path', httpPort],
    ];
    for (const [, p] of paths) await runWrk(p, 4, 1); // warm-up: V8, pools
    const results = new Map<string, number[]>(paths.map(([n]) => [n, []]));
    let session: inspector.Session | undefined;
    if (PROF) {
      session = new inspector.Session();
      session.connect();
      session.post('Profiler.enable');
    }
    for (let r = 0; r < ROUNDS; r++) {
      for (let i = 0; i < paths.length; i++) {
        const [name, port] = paths[(i + r) % paths.length]!;
        if (PROF && name === 'http-path') session!.post('Profiler.start');
        const res = await runWrk(port, CONNS, DUR);
        if (PROF && name === 'http-path') {
          await new Promise<void>((resolve) =>
            session!.post('Profiler.stop', (err, p) => {
              if (!err && p) fs.writeFileSync(PROF.replace(/(\.cpuprofile)?$/, `-r${r}.cpuprofile`), JSON.stringify(p.profile));
              resolve();
            }),
          );
        }
        results.get(name)!.push(res.rps);
        console.log(`round ${r + 1} ${name.padEnd(10)} ${res.rps.toFixed(0).padStart(7)} req/s  avg latency ${res.latencyAvg}${res.errors ? `  non-2xx ${res.errors}` : ''}`);
      }
    }
    const d = median(results.get('direct')!);
    console.log(`\n| path | req/s (median of ${ROUNDS}) | ratio to direct |\n|---|---:|---:|`);
    for (const [name] of paths) {
      const m = median(results.get(name)!);
      console.log(`| ${name} | ${m.toFixed(0)} | ${(m / d).toFixed(2)} |`);
    }
    console.log(
      `\nwrk -t2 -c${CONNS} -d${DUR}s, ${os.cpus().length} CPUs, load average ${os
        .loadavg()
        .map((x) => x.toFixed(1))
        .join(' ')} (rerun on a quiet machine before quoting)`,
    );
  } finally {
    for (const c of cleanups) c();
    httpd?.kill();
    fs.rmSync(dir, { recursive: true, force: true });
  }
  process.exit(0);
}

void main();
