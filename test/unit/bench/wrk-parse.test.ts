// bench/lib/tools.ts: wrk's output as the HTTP-port rows read it — requests/s, errors, and the per-request p50/p99 of --latency in µs whatever unit wrk printed.
import { describe, expect, it } from 'vitest';
import { parseWrk } from '../../../bench/lib/tools';

const withLatency = `Running 4s test @ http://198.19.0.10:80/
  2 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     9.31ms    8.02ms  98.65ms   90.12%
    Req/Sec     2.15k   301.22     2.80k    71.25%
  Latency Distribution
     50%  635.00us
     75%    8.10ms
     90%   15.20ms
     99%    1.20s
  17072 requests in 4.00s, 1.55MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 4
Requests/sec:   4268.12
Transfer/sec:    396.32KB
`;

describe('parseWrk (bench HTTP-port rows)', () => {
  it('reads requests/s, the request count, errors and the --latency percentiles in µs (us, ms and s)', () => {
    const m = parseWrk(withLatency);
    expect(m.value).toBeCloseTo(4268.12);
    expect(m.requests).toBe(17072);
    expect(m.reqP50Us).toBeCloseTo(635);
    expect(m.reqP99Us).toBeCloseTo(1.2e6);
    expect(m.errors).toBe(7);
    expect(m.errorDetail).toContain('4 non-2xx');
  });

  it('has no percentiles without --latency (the Thread Stats line is not one), and fails clearly without Requests/sec', () => {
    const plain = withLatency.replace(/ {2}Latency Distribution\n(.*\n){4}/, '');
    const m = parseWrk(plain);
    expect(m.value).toBeCloseTo(4268.12);
    expect(m.reqP50Us).toBeUndefined();
    expect(m.reqP99Us).toBeUndefined();
    expect(parseWrk('unable to connect to 198.19.0.10:80 Connection refused\n').error).toMatch(/no Requests\/sec/);
  });
});
