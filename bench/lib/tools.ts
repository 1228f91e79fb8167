// Bench load generators run inside a pod (iperf3 bulk, sockperf TCP ping-pong, wrk HTTP) and the parsers of their output.
import type { Topology, PodInfo } from '../../test/helpers/topology';
import { waitExit, tail } from '../../test/helpers/proc';

export type TestName = 'bw1' | 'bw4' | 'lat' | 'rps' | 'cps' | 'hrps' | 'hlat' | 'hcps';
/** The HTTP-port tests (issue 13 item 4): HTTP proxies per request (the mesh's `http` port, nginx/HAProxy in HTTP mode). */
export const HTTP_TESTS: readonly TestName[] = ['hrps', 'hlat', 'hcps'];
export const ALL_TESTS: TestName[] = ['bw1', 'bw4', 'lat', 'rps', 'cps', ...HTTP_TESTS];

/** One measurement's numbers; `error` set when the tool failed (its numbers are then absent). */
export interface Measured {
  /** Main value: Gbit/s (bw), req/s (rps), conn/s (cps), p50 µs (lat). */
  value?: number;
  p50Us?: number;
  p99Us?: number;
  avgUs?: number;
  /** Under the load (wrk --latency: per request, from the request's write to its response). */
  reqP50Us?: number;
  reqP99Us?: number;
  /** TCP retransmits (iperf3), socket errors + non-2xx (wrk), dropped messages (sockperf). */
  errors: number;
  errorDetail?: string;
  requests?: number;
  error?: string;
}

export interface Target {
  host: string;
  iperfPort: number;
  httpPort: number;
  pingPort: number;
}

const ANSI = /\x1b\[[0-9;]*m/g;

export function parseIperf(stdout: string): Measured {
  let j: any;
  try {
    j = JSON.parse(stdout);
  } catch {
    return { errors: 0, error: `iperf3 printed no JSON: ${tail(stdout, 5)}` };
  }
  const bps = j?.end?.sum_received?.bits_per_second;
  if (typeof bps !== 'number' || j.error) return { errors: 0, error: `iperf3: ${j?.error ?? 'no end.sum_received'}` };
  const retr = Number(j?.end?.sum_sent?.retransmits ?? 0);
  return { value: bps / 1e9, errors: 0, errorDetail: retr ? `${retr} TCP retransmits` : undefined };
}

export function parseSockperf(out: string): Measured {
  const s = out.replace(ANSI, '');
  const pct = (p: string) => {
    const m = new RegExp(`percentile ${p.replace('.', '\\.')} =\\s+([\\d.]+)`).exec(s);
    return m ? Number(m[1]) : undefined;
  };
  const p50 = pct('50.000');
  const p99 = pct('99.000');
  const avg = /avg-rtt=([\d.]+)/.exec(s);
  const dropped = /# dropped messages = (\d+)/.exec(s);
  const obs = /Total (\d+) observations/.exec(s);
  if (p50 === undefined || p99 === undefined) return { errors: 0, error: `sockperf printed no percentiles: ${tail(s, 8)}` };
  const errors = dropped ? Number(dropped[1]) : 0;
  return {
    value: p50,
    p50Us: p50,
    p99Us: p99,
    avgUs: avg ? Number(avg[1]) : undefined,
    requests: obs ? Number(obs[1]) : undefined,
    errors,
    errorDetail: errors ? `${errors} dropped messages` : undefined,
  };
}

/** wrk's duration text ("635.00us", "1.03ms", "2.01s") in µs. */
function wrkDurationUs(text: string): number | undefined {
  const m = /^([\d.]+)(us|ms|s|m)$/.exec(text);
  if (!m) return undefined;
  const scale = { us: 1, ms: 1e3, s: 1e6, m: 60e6 }[m[2] as 'us' | 'ms' | 's' | 'm'];
  return Number(m[1]) * scale;
}

/** wrk --latency's "Latency Distribution" percentile (50, 99), µs. */
function wrkPercentileUs(out: string, pct: number): number | undefined {
  const m = new RegExp(`^\\s*${pct}%\\s+(\\S+)\\s*$`, 'm').exec(out);
  return m ? wrkDurationUs(m[1]!) : undefined;
}

export function parseWrk(out: string): Measured {
  const rps = /Requests\/sec:\s+([\d.]+)/.exec(out);
  if (!rps) return { errors: 0, error: `wrk printed no Requests/sec: ${tail(out, 8)}` };
  const reqs = /(\d+) requests in/.exec(out);
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(out);
  const parts: string[] = [];
  let errors = 0;
  if (sock) {
    const [c, r, w, t] = sock.slice(1).map(Number) as [number, number, number, number];
    errors += c + r + w + t;
    parts.push(`socket errors connect ${c} read ${r} write ${w} timeout ${t}`);
  }
  if (non2xx) {
    errors += Number(non2xx[1]);
    parts.push(`${non2xx[1]} non-2xx`);
  }
  const p50 = wrkPercentileUs(out, 50);
  const p99 = wrkPercentileUs(out, 99);
  return {
    value: Number(rps[1]),
    requests: reqs ? Number(reqs[1]) : undefined,
    ...(p50 !== undefined ? { reqP50Us: p50 } : {}),
    ...(p99 !== undefined ? { reqP99Us: p99 } : {}),
    errors,
    errorDetail: errors ? parts.join(', ') : undefined,
  };
}

/** Runs one load generator in `pod` for `durS` seconds against `t`, bounded to durS + 20 s. */
export async function runTest(topo: Topology, pod: PodInfo, test: TestName, t: Target, durS: number): Promise<Measured> {
  const dur = String(durS);
  let cmd: string;
  let args: string[];
  let parse: (out: string) => Measured;
  switch (test) {
    case 'bw1':
    case 'bw4':
      cmd = 'iperf3';
      args = ['-c', t.host, '-p', String(t.iperfPort), '-t', dur, '-P', test === 'bw1' ? '1' : '4', '-J', '--connect-timeout', '3000'];
      parse = parseIperf;
      break;
    case 'lat':
      cmd = 'sockperf';
      args = ['ping-pong', '--tcp', '-i', t.host, '-p', String(t.pingPort), '-m', '64', '-t', dur, '--full-rtt'];
      parse = parseSockperf;
      break;
    case 'rps':
    case 'cps':
      cmd = 'wrk';
      args = ['-t2', '-c64', `-d${dur}s`, '--timeout', '5s', ...(test === 'cps' ? ['-H', 'Connection: close'] : []), `http://${t.host}:${t.httpPort}/`];
      parse = parseWrk;
      break;
    // The HTTP-port tests: the same loads with per-request latency percentiles, and one keep-alive connection back to
    // back for the latency a request adds (the HTTP counterpart of lat).
    case 'hrps':
    case 'hcps':
      cmd = 'wrk';
      args = ['-t2', '-c64', `-d${dur}s`, '--timeout', '5s', '--latency', ...(test === 'hcps' ? ['-H', 'Connection: close'] : []), `http://${t.host}:${t.httpPort}/`];
      parse = parseWrk;
      break;
    case 'hlat':
      cmd = 'wrk';
      args = ['-t1', '-c1', `-d${dur}s`, '--timeout', '5s', '--latency', `http://${t.host}:${t.httpPort}/`];
      parse = (out) => {
        const m = parseWrk(out);
        // The main value of a latency test is its p50 (as lat's).
        return m.error ? m : { ...m, value: m.reqP50Us, p50Us: m.reqP50Us, p99Us: m.reqP99Us };
      };
      break;
  }
  const r = await waitExit(topo.spawnInPod(pod, cmd, args), (durS + 20) * 1000);
  if (r.timedOut) return { errors: 0, error: `${cmd} timed out after ${durS + 20} s: ${tail(r.stdout + r.stderr, 6)}` };
  const m = parse(test === 'lat' ? r.stdout + r.stderr : r.stdout);
  if (!m.error && r.code !== 0) m.error = `${cmd} exited ${r.code}: ${tail(r.stderr, 4)}`;
  return m;
}
