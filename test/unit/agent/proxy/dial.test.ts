// The agent's one dialer (agent/proxy/dial.ts) against real loopback sockets: connected, refused, timed out (a listener whose accept queue is full, and an injected clock), aborted by the client, closed by its owner's shutdown — each reported exactly once, the pending set left empty.
import { spawn, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import * as net from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { dial, dialConnected, dialPod, DialError, type DialClock, type DialOutcome } from '../../../../agent/proxy/dial';
import { freePort, listen } from '../../fixtures/proxy';

/** A listener with backlog 0 that never accepts: once one connection sits in its accept queue the kernel drops further SYNs. */
const NEVER_ACCEPTS_PY = String.raw`
import socket, sys
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(0)
print(s.getsockname()[1], flush=True)
sys.stdin.read()
`;

/** Records every outcome call; `settled` resolves at the first one. */
function recorder(): DialOutcome & { calls: Array<{ kind: 'connected'; socket: net.Socket } | { kind: 'failed'; error: DialError }>; settled: Promise<void> } {
  let done!: () => void;
  const settled = new Promise<void>((r) => (done = r));
  const calls: Array<{ kind: 'connected'; socket: net.Socket } | { kind: 'failed'; error: DialError }> = [];
  return {
    calls,
    settled,
    connected(socket) {
      calls.push({ kind: 'connected', socket });
      done();
    },
    failed(error) {
      calls.push({ kind: 'failed', error });
      done();
    },
  };
}

/** A clock whose timers fire only when the test says so. */
function manualClock(): DialClock & { armed: Map<number, { fire: () => void; ms: number }>; fireAll(): void } {
  const armed = new Map<number, { fire: () => void; ms: number }>();
  let next = 1;
  return {
    armed,
    setTimeout(fire, ms) {
      const id = next++;
      armed.set(id, { fire, ms });
      return id;
    },
    clearTimeout(handle) {
      armed.delete(handle as number);
    },
    fireAll() {
      for (const [id, t] of [...armed]) {
        armed.delete(id);
        t.fire();
      }
    },
  };
}

/** A requesting client that the test closes by hand (what an HBONE stream or a captured socket is to the dialer). */
class FakeClient extends EventEmitter {
  destroyed = false;
  close(): void {
    this.destroyed = true;
    this.emit('close');
  }
}

/** Resolves once 'close' has been emitted (`closed` turns true a tick before the event). */
const closed = (s: net.Socket): Promise<void> =>
  (s as unknown as { _readableState: { closeEmitted: boolean } })._readableState.closeEmitted ? Promise.resolve() : new Promise((r) => s.once('close', () => r()));

describe('dial', () => {
  const server = net.createServer({ allowHalfOpen: true });
  const accepted: net.Socket[] = [];
  let port = 0;
  let refusedPort = 0;
  let neverAccepts: ChildProcess;
  let blackholePort = 0;
  const fillers: net.Socket[] = [];
  const opened: net.Socket[] = [];

  beforeAll(async () => {
    server.on('connection', (s) => {
      s.on('error', () => undefined);
      accepted.push(s);
    });
    port = await listen(server, '127.0.0.1');
    refusedPort = await freePort();
    neverAccepts = spawn('python3', ['-c', NEVER_ACCEPTS_PY], { stdio: ['pipe', 'pipe', 'inherit'] });
    blackholePort = await new Promise<number>((resolve, reject) => {
      neverAccepts.stdout!.once('data', (b: Buffer) => resolve(Number(b.toString().trim())));
      neverAccepts.once('exit', (code) => reject(new Error(`never-accepting listener exited (${code})`)));
    });
    // One established connection fills the accept queue of a backlog-0 listener.
    const filler = net.connect({ host: '127.0.0.1', port: blackholePort });
    filler.on('error', () => undefined);
    fillers.push(filler);
    await new Promise<void>((resolve, reject) => {
      filler.once('connect', () => resolve());
      filler.once('error', reject);
    });
  });

  afterEach(() => {
    for (const s of opened.splice(0)) s.destroy();
  });

  afterAll(async () => {
    for (const s of fillers) s.destroy();
    for (const s of accepted) s.destroy();
    neverAccepts?.stdin?.end();
    neverAccepts?.kill('SIGKILL');
    await new Promise<void>((r) => server.close(() => r()));
  });

  it('connects from the given source address with the given socket options and leaves the pending set', async () => {
    const pending = new Set<net.Socket>();
    const out = recorder();
    const client = new FakeClient();
    const sock = dial({ ip: '127.0.0.1', port }, { localAddress: '127.0.0.2', noDelay: true, allowHalfOpen: true, timeoutMs: 10_000, client, pending }, out);
    opened.push(sock);
    expect(pending.has(sock)).toBe(true);
    await out.settled;
    expect(out.calls.map((c) => c.kind)).toEqual(['connected']);
    expect(out.calls[0]!.kind === 'connected' && out.calls[0]!.socket).toBe(sock);
    expect(sock.localAddress).toBe('127.0.0.2');
    expect(sock.allowHalfOpen).toBe(true);
    expect(pending.size).toBe(0);
    expect(client.listenerCount('close')).toBe(0);
    // Later events are the caller's: a client closing, the socket erroring and closing report nothing more.
    const sockClosed = new Promise((r) => sock.once('close', r));
    client.close();
    sock.destroy(new Error('caller reset'));
    await sockClosed;
    expect(out.calls).toHaveLength(1);
  });

  it('refused: a typed failure with the system code, exactly once', async () => {
    const pending = new Set<net.Socket>();
    const out = recorder();
    const sock = dial({ ip: '127.0.0.1', port: refusedPort }, { timeoutMs: 10_000, pending }, out);
    await out.settled;
    await closed(sock);
    expect(out.calls).toHaveLength(1);
    const call = out.calls[0]!;
    expect(call.kind).toBe('failed');
    const err = (call as { error: DialError }).error;
    expect(err).toBeInstanceOf(DialError);
    expect(err.code).toBe('SMESH_ERR_CONNECT');
    expect(err.reason).toBe('refused');
    expect(err.osCode).toBe('ECONNREFUSED');
    expect(err.message).toContain(`127.0.0.1:${refusedPort}`);
    expect(sock.destroyed).toBe(true);
    expect(pending.size).toBe(0);
  });

  it('the never-accepting listener really hangs a connect (precondition of the timeout tests)', async () => {
    const probe = net.connect({ host: '127.0.0.1', port: blackholePort });
    opened.push(probe);
    probe.on('error', () => undefined);
    // The dial's own timeout proves the point without a wall-clock wait of the test's own.
    const err = await dialConnected({ ip: '127.0.0.1', port: blackholePort }, { timeoutMs: 300 }).then(
      (s) => (s.destroy(), undefined),
      (e: DialError) => e,
    );
    expect(err?.reason).toBe('timeout');
    expect(probe.connecting).toBe(true);
  });

  it('timeout (real timer): no connection within timeoutMs fails with reason timeout and a message naming the destination', async () => {
    const pending = new Set<net.Socket>();
    const out = recorder();
    const sock = dial({ ip: '127.0.0.1', port: blackholePort }, { timeoutMs: 200, pending }, out);
    await out.settled;
    await closed(sock);
    expect(out.calls).toHaveLength(1);
    const err = (out.calls[0] as { error: DialError }).error;
    expect(err.reason).toBe('timeout');
    expect(err.message).toBe(`connect timeout to 127.0.0.1:${blackholePort}`);
    expect(pending.size).toBe(0);
  });

  it('timeout (injected clock): the timer is armed with timeoutMs, firing it fails the dial, a connect clears it', async () => {
    const clock = manualClock();
    const out = recorder();
    const sock = dial({ ip: '127.0.0.1', port: blackholePort }, { timeoutMs: 4321, clock }, out);
    expect([...clock.armed.values()].map((t) => t.ms)).toEqual([4321]);
    expect(out.calls).toHaveLength(0);
    clock.fireAll();
    await out.settled;
    await closed(sock);
    expect(out.calls.map((c) => c.kind === 'failed' && c.error.reason)).toEqual(['timeout']);

    const clock2 = manualClock();
    const out2 = recorder();
    opened.push(dial({ ip: '127.0.0.1', port }, { timeoutMs: 4321, clock: clock2 }, out2));
    await out2.settled;
    expect(out2.calls.map((c) => c.kind)).toEqual(['connected']);
    expect(clock2.armed.size).toBe(0);
  });

  it('no timeoutMs: no timer is armed (the kernel bounds the attempt)', async () => {
    const clock = manualClock();
    const out = recorder();
    opened.push(dial({ ip: '127.0.0.1', port }, { clock }, out));
    expect(clock.armed.size).toBe(0);
    await out.settled;
    expect(out.calls.map((c) => c.kind)).toEqual(['connected']);
  });

  it('client gone while connecting: the attempt is destroyed and reported once as aborted', async () => {
    const pending = new Set<net.Socket>();
    const out = recorder();
    const client = new FakeClient();
    const sock = dial({ ip: '127.0.0.1', port: blackholePort }, { timeoutMs: 10_000, client, pending }, out);
    client.close();
    await out.settled;
    await closed(sock);
    expect(out.calls.map((c) => c.kind === 'failed' && c.error.reason)).toEqual(['aborted']);
    expect(pending.size).toBe(0);
  });

  it('a real client socket closing aborts the dial', async () => {
    const a = net.connect({ host: '127.0.0.1', port });
    opened.push(a);
    await new Promise((r) => a.once('connect', r));
    const out = recorder();
    const sock = dial({ ip: '127.0.0.1', port: blackholePort }, { client: a }, out);
    a.destroy();
    await out.settled;
    await closed(sock);
    expect(out.calls.map((c) => c.kind === 'failed' && c.error.reason)).toEqual(['aborted']);
  });

  it('client already destroyed when the connect completes: the new connection is closed and reported as aborted', async () => {
    const out = recorder();
    // Destroyed without a close event reaching the dialer (it went away in the same tick).
    const client = { destroyed: true, once: () => undefined, off: () => undefined };
    const before = accepted.length;
    const sock = dial({ ip: '127.0.0.1', port }, { client }, out);
    await out.settled;
    await closed(sock);
    expect(out.calls.map((c) => c.kind === 'failed' && c.error.reason)).toEqual(['aborted']);
    // The server saw the connection come and end.
    await new Promise<void>((r) => (accepted.length > before ? r() : server.once('connection', () => r())));
    const theirs = accepted[before]!;
    theirs.resume();
    await new Promise<void>((r) => (theirs.readableEnded ? r() : theirs.once('end', () => r())));
  });

  it("owner shutdown (destroying the pending set) reports 'closed' once", async () => {
    const pending = new Set<net.Socket>();
    const out = recorder();
    const sock = dial({ ip: '127.0.0.1', port: blackholePort }, { timeoutMs: 10_000, pending }, out);
    for (const s of pending) s.destroy();
    await out.settled;
    await closed(sock);
    expect(out.calls.map((c) => c.kind === 'failed' && c.error.reason)).toEqual(['closed']);
    expect(pending.size).toBe(0);
  });

  it('exactly once when causes race: timer, client close and an error in one tick give one outcome, the first cause', async () => {
    const clock = manualClock();
    const client = new FakeClient();
    const out = recorder();
    const sock = dial({ ip: '127.0.0.1', port: refusedPort }, { timeoutMs: 1000, clock, client }, out);
    clock.fireAll();
    client.close();
    sock.destroy(new Error('late error'));
    await out.settled;
    await closed(sock);
    expect(out.calls.map((c) => c.kind === 'failed' && c.error.reason)).toEqual(['timeout']);
  });

  it('dialConnected resolves with the socket and rejects with a DialError', async () => {
    const s = await dialConnected({ ip: '127.0.0.1', port }, { timeoutMs: 10_000 });
    opened.push(s);
    expect(s.remotePort).toBe(port);
    await expect(dialConnected({ ip: '127.0.0.1', port: refusedPort })).rejects.toMatchObject({ code: 'SMESH_ERR_CONNECT', reason: 'refused' });
  });

  describe('dialPod (the inbound to a local pod)', () => {
    it('connects half-open; a refused pod is failed(), a client gone first is silent', async () => {
      const pending = new Set<net.Socket>();
      const ok = recorder();
      dialPod({ ip: '127.0.0.1', port }, new FakeClient(), { timeoutMs: 10_000, pending }, ok);
      await ok.settled;
      const up = (ok.calls[0] as { socket: net.Socket }).socket;
      opened.push(up);
      expect(up.allowHalfOpen).toBe(true);

      const refused = recorder();
      dialPod({ ip: '127.0.0.1', port: refusedPort }, new FakeClient(), { timeoutMs: 10_000, pending }, refused);
      await refused.settled;
      expect(refused.calls.map((c) => c.kind === 'failed' && c.error.reason)).toEqual(['refused']);

      // Client gone: the attempt ends (its socket leaves the pending set) and neither callback runs.
      const gone = recorder();
      const client = new FakeClient();
      dialPod({ ip: '127.0.0.1', port: blackholePort }, client, { timeoutMs: 10_000, pending }, gone);
      const attemptClosed = new Promise((r) => [...pending][0]!.once('close', r));
      client.close();
      await attemptClosed;
      expect(gone.calls).toHaveLength(0);
      expect(pending.size).toBe(0);

      // Shutdown of the owner still answers the client.
      const shut = recorder();
      dialPod({ ip: '127.0.0.1', port: blackholePort }, new FakeClient(), { timeoutMs: 10_000, pending }, shut);
      for (const s of pending) s.destroy();
      await shut.settled;
      expect(shut.calls.map((c) => c.kind === 'failed' && c.error.reason)).toEqual(['closed']);
    });
  });
});
