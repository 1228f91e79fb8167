// The independent HBONE peer (hbone_peer.py, ztunnel's wire) checked against itself on loopback, so an interop failure is smesh's, not the peer's.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { makeCa, issueLeaf, type LeafFiles } from '../helpers/certs';
import { spawnCaptured, waitExit, lastJsonLine, jsonRecords, tail, type CapturedProcess } from '../helpers/proc';

/** Debian's interpreter: python3-h2 is a Debian package, not installed for other Pythons on PATH. */
const PEER_PYTHON = '/usr/bin/python3';
const PEER_SCRIPT = path.join(__dirname, 'hbone_peer.py');
const APPS = path.resolve(__dirname, '../apps');
const TD = 'cluster.local';

function h2Problem(): string | null {
  try {
    execFileSync(PEER_PYTHON, ['-c', 'import h2.connection, ssl'], { stdio: 'pipe', timeout: 10_000 });
    return null;
  } catch {
    return `${PEER_PYTHON} cannot import h2 (install python3-h2: scripts/install-deps.sh)`;
  }
}
const problem = h2Problem();

const id = (sa: string) => `spiffe://${TD}/ns/interop/sa/${sa}`;

describe.skipIf(problem !== null)(`independent HBONE peer self-test${problem ? ` (skipped: ${problem})` : ''}`, () => {
  let dir = '';
  let client: LeafFiles;
  let server: LeafFiles;
  let rogueClient: LeafFiles;
  let stranger: LeafFiles;
  const procs: CapturedProcess[] = [];
  let hbone: CapturedProcess;
  let hbonePort = 0;
  let echoPort = 0;
  let httpPort = 0;

  async function start(cmd: string, args: string[]): Promise<{ proc: CapturedProcess; port: number }> {
    const proc = spawnCaptured(cmd, args);
    procs.push(proc);
    const line = await proc.waitForLine(/"listening"/, 10_000);
    return { proc, port: Number((JSON.parse(line) as { listening: number }).listening) };
  }

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'smesh-test-hbone-peer-'));
    const ca = makeCa(path.join(dir, 'ca'), 'smesh-test interop root');
    client = issueLeaf(path.join(dir, 'leaves'), ca, id('client'), 'client');
    server = issueLeaf(path.join(dir, 'leaves'), ca, id('server'), 'server');
    stranger = issueLeaf(path.join(dir, 'leaves'), ca, id('stranger'), 'stranger');
    const rogue = makeCa(path.join(dir, 'rogue'), 'smesh-test rogue root');
    rogueClient = issueLeaf(path.join(dir, 'rogue-leaves'), rogue, id('client'), 'client');
    echoPort = (await start(process.execPath, [path.join(APPS, 'echo-server.js'), '--host', '127.0.0.1', '--port', '0'])).port;
    httpPort = (await start(process.execPath, [path.join(APPS, 'http-server.js'), '--host', '127.0.0.1', '--port', '0', '--pod', 'loopback'])).port;
    const s = await start(PEER_PYTHON, [
      PEER_SCRIPT,
      'server',
      '--listen',
      '127.0.0.1:0',
      '--cert',
      server.cert,
      '--key',
      server.key,
      '--ca',
      server.ca,
      '--trust-domain',
      TD,
      '--allow',
      id('client'),
    ]);
    hbone = s.proc;
    hbonePort = s.port;
  }, 60_000);

  afterAll(async () => {
    for (const p of procs) p.kill('SIGKILL');
    await Promise.all(procs.map((p) => p.exited));
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  async function runPeerClient(args: string[], leaf: LeafFiles = client): Promise<Record<string, any>> {
    const proc = spawnCaptured(PEER_PYTHON, [
      PEER_SCRIPT,
      'client',
      '--host',
      '127.0.0.1',
      '--port',
      String(hbonePort),
      '--cert',
      leaf.cert,
      '--key',
      leaf.key,
      '--ca',
      leaf.ca,
      '--timeout',
      '15',
      ...args,
    ]);
    procs.push(proc);
    const r = await waitExit(proc, 20_000);
    if (r.timedOut) throw new Error(`peer client timed out: ${tail(proc.outputText())}`);
    return lastJsonLine(r.stdout);
  }

  /** The server's line for the stream whose first client bytes contain `marker`. */
  async function streamLine(marker: string): Promise<Record<string, any>> {
    await hbone.waitForLine(new RegExp(`"event": "stream".*${marker}`), 10_000);
    return jsonRecords(hbone.stdoutText()).find((r) => r.event === 'stream' && String(r.head).includes(marker))!;
  }

  it('TCP: TLS 1.3 + h2 without SNI, each side verifies the other SPIFFE id; bytes echo and END_STREAM maps to half-close both ways', async () => {
    const r = await runPeerClient(['--expect-id', id('server'), '--authority', `127.0.0.1:${echoPort}`, '--send', 'tcp-marker-1']);
    expect(r).toMatchObject({ ok: true, status: 200, received: 'tcp-marker-1', end: 'fin', tls: 'TLSv1.3', alpn: 'h2', serverId: id('server') });
    const s = await streamLine('tcp-marker-1');
    expect(s).toMatchObject({
      clientId: id('client'),
      method: 'CONNECT',
      authority: `127.0.0.1:${echoPort}`,
      status: 200,
      clientEnd: 'fin',
      upstreamEnd: 'fin',
      bytesFromClient: 12,
      bytesToClient: 12,
    });
    const conn = jsonRecords(hbone.stdoutText()).find((c) => c.event === 'connection' && c.peer === s.peer)!;
    expect(conn).toMatchObject({ sni: null, tls: 'TLSv1.3', alpn: 'h2', clientId: id('client'), refused: null });
  });

  it('HTTP/1.1 through the tunnel, several CONNECT streams on one connection', async () => {
    const r = await runPeerClient(['--expect-id', id('server'), '--authority', `127.0.0.1:${httpPort}`, '--http-get', '/self-test', '--streams', '3']);
    expect(r.ok).toBe(true);
    expect(r.streams.map((s: any) => [s.status, s.end, s.http?.status, s.http?.body?.url])).toEqual(Array(3).fill([200, 'fin', 200, '/self-test']));
  });

  it('flow control: 12 MiB each way on each of 2 streams (above the 4 MiB stream window) arrives intact', async () => {
    const r = await runPeerClient(['--expect-id', id('server'), '--authority', `127.0.0.1:${echoPort}`, '--send-bytes', String(12 << 20), '--streams', '2']);
    expect(r.ok).toBe(true);
    for (const s of r.streams) expect([s.receivedBytes, s.receivedSha256]).toEqual([r.sentBytes, r.sentSha256]);
  });

  it('answers 503 for an unreachable destination, 400 for a request that is not CONNECT, 401 for an identity it does not allow', async () => {
    // Port 1 (tcpmux) on loopback: nothing listens there.
    const unreachable = await runPeerClient(['--expect-id', id('server'), '--authority', '127.0.0.1:1', '--send', 'x']);
    expect([unreachable.ok, unreachable.status, unreachable.end]).toEqual([false, 503, 'fin']);
    const notConnect = await runPeerClient(['--expect-id', id('server'), '--authority', `127.0.0.1:${echoPort}`, '--method', 'GET']);
    expect([notConnect.ok, notConnect.status]).toEqual([false, 400]);
    const denied = await runPeerClient(['--expect-id', id('server'), '--authority', `127.0.0.1:${echoPort}`, '--send', 'x'], stranger);
    expect([denied.ok, denied.status]).toEqual([false, 401]);
  });

  it('the client refuses a server that is not the expected workload (before any stream)', async () => {
    const before = jsonRecords(hbone.stdoutText()).filter((r) => r.event === 'stream').length;
    const r = await runPeerClient(['--expect-id', id('someone-else'), '--authority', `127.0.0.1:${echoPort}`, '--send', 'never']);
    expect(r).toMatchObject({ ok: false, serverId: id('server') });
    expect(String(r.error)).toMatch(/wrong server identity/);
    expect(r.status).toBeUndefined();
    expect(jsonRecords(hbone.stdoutText()).filter((x) => x.event === 'stream').length).toBe(before);
  });

  it('the server refuses a client certificate from another root; the client refuses a server chained to another root', async () => {
    const r = await runPeerClient(['--expect-id', id('server'), '--authority', `127.0.0.1:${echoPort}`, '--send', 'x'], rogueClient);
    expect(r.ok).toBe(false);
    expect(r.status).toBeUndefined();
    await hbone.waitForLine(/"event": "handshake_failed"/, 10_000);
    // The rogue root as the client's trust anchor: the server's chain does not verify.
    const r2 = await runPeerClient(['--expect-id', id('server'), '--authority', `127.0.0.1:${echoPort}`, '--send', 'x'], { ...client, ca: rogueClient.ca });
    expect(r2.ok).toBe(false);
    expect(String(r2.error)).toMatch(/^tls: .*certificate verify failed/);
  });
});
