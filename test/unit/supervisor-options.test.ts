// Unit: the supervisor ↔ agent contract — LISTEN_FDS/LISTEN_FDNAMES parsing into adopted listeners, the environment the supervisor passes, --drain-seconds, restart backoff.
import { describe, it, expect } from 'vitest';
import { parseAgentArgs, supervisedAgentEnv } from '../../agent/config/options';
import { restartDelayMs } from '../../cli/supervisor';

const base = ['--standalone', '--config', '/tmp/x', '--node', 'n1', '--no-bpf'];

describe('supervised agent options', () => {
  it('adopts the sockets LISTEN_FDNAMES names, at fds 3.., with the addresses the flags give', () => {
    const o = parseAgentArgs([...base, '--capture-ip', '169.254.9.1', '--outbound-port', '16001'], { LISTEN_FDS: '2', LISTEN_FDNAMES: 'outbound:admin', SMESH_SUPERVISED: '1' });
    expect(o.inheritedListeners).toEqual([
      { name: 'outbound', fd: 3, host: '169.254.9.1', port: 16001 },
      { name: 'admin', fd: 4, host: '127.0.0.1', port: 15000 },
    ]);
    expect(o.supervised).toBe(true);
  });

  it('without LISTEN_FDS binds as before; drain defaults to 30 s', () => {
    const o = parseAgentArgs(base, {});
    expect(o.inheritedListeners).toEqual([]);
    expect(o.supervised).toBe(false);
    expect(o.drainSeconds).toBe(30);
    expect(parseAgentArgs([...base, '--drain-seconds', '5'], {}).drainSeconds).toBe(5);
  });

  it.each([
    [{ LISTEN_FDS: 'x' }, /LISTEN_FDS: expected a number/],
    [{ LISTEN_FDS: '2', LISTEN_FDNAMES: 'outbound' }, /expected 2 names/],
    [{ LISTEN_FDS: '1', LISTEN_FDNAMES: 'grpc' }, /unknown socket name "grpc"/],
    [{ LISTEN_FDS: '2', LISTEN_FDNAMES: 'inbound:inbound' }, /inbound given twice/],
  ])('rejects %j', (env, re) => {
    expect(() => parseAgentArgs(base, env)).toThrow(re);
  });

  it('the supervisor passes names, count and SMESH_SUPERVISED, never its own LISTEN_PID', () => {
    const env = supervisedAgentEnv(['outbound', 'inbound'], { PATH: '/bin', LISTEN_PID: '1' });
    expect(env).toEqual({ PATH: '/bin', LISTEN_FDS: '2', LISTEN_FDNAMES: 'outbound:inbound', SMESH_SUPERVISED: '1' });
  });

  it('restarts at once after a healthy run, then backs off 0.1 s doubling to 5 s', () => {
    expect([0, 1, 2, 3, 7, 20].map(restartDelayMs)).toEqual([0, 100, 200, 400, 5000, 5000]);
  });
});
