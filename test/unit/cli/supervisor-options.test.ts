// Unit: the supervisor ↔ agent contract — LISTEN_FDS/LISTEN_FDNAMES parsing into adopted listeners, the environment the supervisor passes, --drain-seconds, restart backoff; SO_REUSEPORT sockets a second supervisor can bind beside the first; tcp_migrate_req setting.
import { describe, it, expect } from 'vitest';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseAgentArgs, supervisedAgentEnv } from '../../../agent/config/options';
import { bindHeldSockets, enableRequestMigration, restartDelayMs } from '../../../cli/supervisor';

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

  it('holds the IPv6 outbound listener (outbound6) only with --capture-ip6; passing it to an agent without one is refused by name', () => {
    const bound: string[] = [];
    const fakeBind = (host: string, port: number) => (bound.push(`${host}:${port}`), 1000 + bound.length);
    expect(bindHeldSockets(parseAgentArgs(base, {}), fakeBind).map((h) => h.name)).toEqual(['outbound', 'inbound', 'metrics', 'ready', 'admin']);
    bound.length = 0;
    const v6 = parseAgentArgs([...base, '--capture-ip6', 'fd00:5345:ff::1'], {});
    expect(bindHeldSockets(v6, fakeBind).map((h) => h.name)).toEqual(['outbound', 'outbound6', 'inbound', 'metrics', 'ready', 'admin']);
    expect(bound[1]).toBe('fd00:5345:ff::1:15001');
    const adopted = parseAgentArgs([...base, '--capture-ip6', 'fd00:5345:ff::1'], { LISTEN_FDS: '2', LISTEN_FDNAMES: 'outbound:outbound6' });
    expect(adopted.inheritedListeners[1]).toEqual({ name: 'outbound6', fd: 4, host: 'fd00:5345:ff::1', port: 15001 });
    expect(() => parseAgentArgs(base, { LISTEN_FDS: '1', LISTEN_FDNAMES: 'outbound6' })).toThrow(/outbound6 passed, but this agent has no address for it \(outbound6 needs --capture-ip6\)/);
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

describe('supervisor sockets (SO_REUSEPORT) and tcp_migrate_req', () => {
  it("a second supervisor binds the first one's addresses while an agent listens there; a plain bind does not", async () => {
    // Free ports for the five sockets, then both "pods" bind them.
    const probe = await Promise.all(
      [0, 1, 2, 3, 4].map(
        () =>
          new Promise<number>((resolve) => {
            const s = net.createServer().listen(0, '127.0.0.1', () => {
              const p = (s.address() as net.AddressInfo).port;
              s.close(() => resolve(p));
            });
          }),
      ),
    );
    const opts = parseAgentArgs(
      [
        ...base,
        '--capture-ip',
        '127.0.0.1',
        '--outbound-port',
        String(probe[0]),
        '--inbound-port',
        String(probe[1]),
        '--metrics-port',
        String(probe[2]),
        '--ready-port',
        String(probe[3]),
        '--admin-port',
        String(probe[4]),
      ],
      {},
    );
    const first = bindHeldSockets(opts);
    const servers: net.Server[] = [];
    try {
      const agent = net.createServer((s) => s.end('old'));
      servers.push(agent);
      await new Promise<void>((r) => agent.listen({ fd: first.find((h) => h.name === 'outbound')!.fd }, r));
      const second = bindHeldSockets(opts);
      try {
        expect(second.map((h) => h.name)).toEqual(first.map((h) => h.name));
        const plain = net.createServer();
        servers.push(plain);
        const err = await new Promise<NodeJS.ErrnoException>((resolve) => plain.once('error', resolve).listen(probe[0], '127.0.0.1'));
        expect(err.code).toBe('EADDRINUSE');
      } finally {
        for (const h of second) h.close();
      }
    } finally {
      for (const s of servers) s.close();
      for (const h of first) h.close();
    }
  });

  it('names the socket, the address and what to check when the bind fails', () => {
    const opts = parseAgentArgs([...base, '--capture-ip', '127.0.0.1', '--outbound-port', '16001'], {});
    const busy = Object.assign(new Error('x'), { code: 'EADDRINUSE' });
    expect(() =>
      bindHeldSockets(opts, () => {
        throw busy;
      }),
    ).toThrow(/cannot bind the outbound socket 127\.0\.0\.1:16001: EADDRINUSE \(held without SO_REUSEPORT or by another uid/);
  });

  it('tcp_migrate_req: written when 0, left when 1, the next path tried when one fails, the failure reported', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'smesh-migrate-'));
    try {
      const zero = path.join(dir, 'zero');
      fs.writeFileSync(zero, '0\n');
      expect(enableRequestMigration([zero])).toEqual({ enabled: true, via: zero });
      expect(fs.readFileSync(zero, 'utf8').trim()).toBe('1');
      const readOnlyDir = path.join(dir, 'missing-dir', 'tcp_migrate_req');
      expect(enableRequestMigration([path.join(dir, 'nope'), zero])).toEqual({ enabled: false, error: expect.stringContaining('ENOENT') });
      const r = enableRequestMigration([dir, zero]); // a directory: EISDIR, then the next path
      expect(r).toEqual({ enabled: true, via: zero });
      expect(enableRequestMigration([readOnlyDir]).enabled).toBe(false);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
