// Native HBONE engine (native/hbone*.cc) on real loopback sockets with a test mesh CA: outbound against a node:http2 server, inbound against a node:http2 client, engine to engine, hostile peers, rotation, no fd left behind.
// Sanitizer build: `make native-asan`, then SMESH_NATIVE_ADDON=build/native-asan/Release/smesh_native.node with libasan preloaded (README, Tests).
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as http2 from 'node:http2';
import * as net from 'node:net';
import * as tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hboneEngine } from '../../agent/native/hbone';
import type { HboneEngine, HboneSessionEvent, HboneStreamRequest, HboneStreamResult } from '../../agent/native/hbone-types';
import { useAddonPath } from '../../agent/native/raw';
import type { LocalCa } from '../../core/identity/local-ca';
import { pollUntil } from '../helpers/logs';
import { freePort, meshCa, TD } from '../unit/fixtures/proxy';

if (process.env.SMESH_NATIVE_ADDON) useAddonPath(process.env.SMESH_NATIVE_ADDON);

const MB = 1024 * 1024;
const CLIENT_ID = `spiffe://${TD}/ns/default/sa/client`;
const SERVER_ID = `spiffe://${TD}/ns/default/sa/server`;
const OTHER_ID = `spiffe://${TD}/ns/default/sa/other`;
const CONNECT_TIMEOUT_MS = 3_000;
const LIVENESS_MS = 300;

/** Authorities the node:http2 peer server understands. */
const ECHO = '127.0.0.1:1001';
const REFUSE_503 = '127.0.0.1:1002';
const RESET_AFTER_DATA = '127.0.0.1:1003';
const SILENT = '127.0.0.1:1004';

const engine: HboneEngine | undefined = hboneEngine();
const describeNative = engine ? describe : describe.skip;

function fdOf(s: net.Socket): number {
  const fd = (s as unknown as { _handle?: { fd?: number } })._handle?.fd;
  if (typeof fd !== 'number' || fd < 0) throw new Error('socket has no fd');
  return fd;
}

function fdCount(): number {
  return fs.readdirSync('/proc/self/fd').length;
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([p, new Promise<T>((_, j) => (timer = setTimeout(() => j(new Error(`${what}: no result within ${ms} ms`)), ms)))]).finally(() => clearTimeout(timer));
}

/** Hash of what arrives until end/close. */
function hashIncoming(s: NodeJS.ReadableStream): Promise<{ sha: string; bytes: number; ended: boolean; tail: string; error?: string }> {
  const h = crypto.createHash('sha256');
  let bytes = 0;
  let ended = false;
  let tail = Buffer.alloc(0);
  let error: string | undefined;
  return new Promise((resolve) => {
    s.on('data', (c: Buffer) => {
      h.update(c);
      bytes += c.length;
      tail = Buffer.concat([tail, c]).subarray(-16);
    });
    s.on('error', (e: NodeJS.ErrnoException) => (error = e.code ?? e.message));
    s.on('end', () => {
      ended = true;
      resolve({ sha: h.digest('hex'), bytes, ended, tail: tail.toString('latin1'), error });
    });
    s.on('close', () => {
      if (!ended) resolve({ sha: '', bytes, ended, tail: tail.toString('latin1'), error });
    });
  });
}

function pattern(total: number, seed: number): Buffer[] {
  const block = crypto.createHash('sha512').update(String(seed)).digest();
  const chunk = Buffer.alloc(256 * 1024);
  for (let i = 0; i < chunk.length; i += block.length) block.copy(chunk, i);
  const out: Buffer[] = [];
  let round = 0;
  for (let sent = 0; sent < total; ) {
    const n = Math.min(chunk.length, total - sent);
    const piece = Buffer.from(chunk.subarray(0, n));
    piece.writeUInt32BE(round++ >>> 0, 0);
    out.push(piece);
    sent += n;
  }
  return out;
}

/** Writes `total` bytes with backpressure, then end(); resolves with their sha256. */
async function sendPattern(s: net.Socket | http2.Http2Stream, total: number, seed: number): Promise<string> {
  const h = crypto.createHash('sha256');
  for (const piece of pattern(total, seed)) {
    h.update(piece);
    if (!s.write(piece)) await new Promise((r) => s.once('drain', r));
  }
  s.end();
  return h.digest('hex');
}

function sha(buffers: Buffer[], extra = ''): string {
  const h = crypto.createHash('sha256');
  for (const b of buffers) h.update(b);
  h.update(extra);
  return h.digest('hex');
}

/** A TCP listener whose accepted sockets are handed out in order (the "proxy side" of a connection). */
class Acceptor {
  readonly server: net.Server;
  private readonly queue: net.Socket[] = [];
  private readonly waiting: Array<(s: net.Socket) => void> = [];
  readonly all = new Set<net.Socket>();
  constructor(opts: net.ServerOpts = {}) {
    this.server = net.createServer({ allowHalfOpen: true, noDelay: true, ...opts }, (s) => {
      this.all.add(s);
      s.on('error', () => undefined);
      const w = this.waiting.shift();
      if (w) w(s);
      else this.queue.push(s);
    });
  }
  async listen(): Promise<number> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    return (this.server.address() as net.AddressInfo).port;
  }
  next(): Promise<net.Socket> {
    const s = this.queue.shift();
    return s ? Promise.resolve(s) : new Promise((r) => this.waiting.push(r));
  }
  async close(): Promise<void> {
    for (const s of this.all) s.destroy();
    await new Promise((r) => this.server.close(r));
  }
}

/** app ⇄ proxySide: a connected loopback TCP pair; the engine gets proxySide's fd. */
async function tcpPair(acceptor: Acceptor, port: number): Promise<{ app: net.Socket; proxySide: net.Socket }> {
  const app = net.connect({ host: '127.0.0.1', port, allowHalfOpen: true, noDelay: true });
  app.on('error', () => undefined);
  acceptor.all.add(app);
  const proxySide = await acceptor.next();
  return { app, proxySide };
}

interface Cert {
  chainPem: string;
  keyPem: string;
}

describeNative('native HBONE engine (real loopback sockets, test CA; needs the addon: make build)', () => {
  const e = engine!;
  let ca: LocalCa;
  let cleanupCa: () => Promise<void>;
  let clientCert: Cert;
  let serverCert: Cert;
  let peer: http2.Http2SecureServer;
  let peerPort: number;
  const peerSessions: http2.ServerHttp2Session[] = [];
  const peerClientCerts: string[] = [];
  const streamRequests: HboneStreamRequest[] = [];
  const streamWaiters: Array<(r: HboneStreamRequest) => void> = [];
  const sessionEvents: HboneSessionEvent[] = [];
  const acceptor = new Acceptor();
  let acceptorPort: number;
  const echo = net.createServer({ allowHalfOpen: true }, (s) => {
    s.on('error', () => undefined);
    s.on('data', (d) => s.write(d));
    s.on('end', () => s.end('bye'));
  });
  let echoPort: number;
  /** The engine's inbound listener: accepted sockets go to serve() at once, unread. */
  const inboundCertId = SERVER_ID;
  const inbound = net.createServer({ pauseOnConnect: true }, (s) => {
    try {
      e.serve(fdOf(s), inboundCertId);
    } finally {
      s.destroy();
    }
  });
  let inboundPort: number;

  function nextStreamRequest(): Promise<HboneStreamRequest> {
    const r = streamRequests.shift();
    return r ? Promise.resolve(r) : new Promise((res) => streamWaiters.push(res));
  }

  beforeAll(async () => {
    const m = await meshCa();
    ca = m.ca;
    cleanupCa = m.cleanup;
    clientCert = (await ca.issue(CLIENT_ID)) as Cert;
    serverCert = (await ca.issue(SERVER_ID)) as Cert;

    e.configure({ workers: 2, connectTimeoutMs: CONNECT_TIMEOUT_MS, livenessCheckMs: LIVENESS_MS, maxEarlyResets: 20, idleTimeoutMs: 60_000 });
    e.setHandlers({
      onStream: (req) => {
        const w = streamWaiters.shift();
        if (w) w(req);
        else streamRequests.push(req);
      },
      onSessionEvent: (ev) => sessionEvents.push(ev),
    });
    e.setTrustAnchors(ca.trustBundlePem());
    e.setIdentity(CLIENT_ID, clientCert.chainPem, clientCert.keyPem);
    e.setIdentity(SERVER_ID, serverCert.chainPem, serverCert.keyPem);

    peer = http2.createSecureServer({
      key: serverCert.keyPem,
      cert: serverCert.chainPem,
      ca: ca.trustBundlePem(),
      requestCert: true,
      rejectUnauthorized: true,
      minVersion: 'TLSv1.3',
      maxVersion: 'TLSv1.3',
      ALPNProtocols: ['h2'],
      settings: { initialWindowSize: 4 * MB },
    });
    peer.on('session', (s) => {
      peerSessions.push(s);
      const sock = s.socket as tls.TLSSocket;
      const uri = sock.getPeerCertificate()?.subjectaltname ?? '';
      peerClientCerts.push(uri);
    });
    peer.on('stream', (stream, headers) => {
      stream.on('error', () => undefined);
      const authority = headers[':authority'];
      if (headers[':method'] !== 'CONNECT') {
        stream.respond({ ':status': 400 }, { endStream: true });
        return;
      }
      switch (authority) {
        case ECHO:
          stream.respond({ ':status': 200 });
          stream.on('data', (d: Buffer) => stream.write(d));
          stream.on('end', () => stream.end('bye'));
          return;
        case REFUSE_503:
          stream.respond({ ':status': 503 }, { endStream: true });
          return;
        case RESET_AFTER_DATA:
          stream.respond({ ':status': 200 });
          stream.once('data', () => stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR));
          return;
        case SILENT:
          return;
        default:
          stream.respond({ ':status': 404 }, { endStream: true });
      }
    });
    peerPort = await new Promise<number>((r) => peer.listen(0, '127.0.0.1', () => r((peer.address() as net.AddressInfo).port)));
    acceptorPort = await acceptor.listen();
    echoPort = await new Promise<number>((r) => echo.listen(0, '127.0.0.1', () => r((echo.address() as net.AddressInfo).port)));
    inboundPort = await new Promise<number>((r) => inbound.listen(0, '127.0.0.1', () => r((inbound.address() as net.AddressInfo).port)));
  });

  afterAll(async () => {
    e.closeAll();
    for (const s of peerSessions) s.destroy();
    await Promise.all([new Promise((r) => peer?.close(r)), acceptor.close(), new Promise((r) => echo.close(r)), new Promise((r) => inbound.close(r))]);
    await cleanupCa?.();
  });

  function openTo(authority: string, overrides: Partial<Parameters<HboneEngine['open']>[0]> = {}) {
    return e.open({ sourceId: CLIENT_ID, host: '127.0.0.1', port: peerPort, acceptServerIds: [SERVER_ID], authority, headers: [['baggage', 'k8s.service.name=test']], ...overrides });
  }

  describe('outbound against a node:http2 server (TLS 1.3, client certificate required)', () => {
    it('opens a CONNECT, relays 24 MB each way with sha256 integrity and half-close in both directions (attach on a TCP socket)', async () => {
      const res = await withTimeout(openTo(ECHO), 10_000, 'open');
      expect(res).toMatchObject({ ok: true });
      if (!res.ok) return;
      const { app, proxySide } = await tcpPair(acceptor, acceptorPort);
      const done = e.attach(res.stream, fdOf(proxySide));
      proxySide.destroy();
      const incoming = hashIncoming(app);
      const total = 24 * MB;
      const expected = sha(pattern(total, 7), 'bye');
      await sendPattern(app, total, 7);
      const got = await withTimeout(incoming, 60_000, 'echo');
      expect(got.bytes).toBe(total + 3);
      expect(got.ended).toBe(true);
      expect(got.sha).toBe(expected);
      const result = await withTimeout(done, 10_000, 'relay result');
      expect(result).toMatchObject({ outcome: 'eof', sent: total, received: total + 3 });
      app.destroy();
      expect(peerClientCerts.at(-1)).toContain(CLIENT_ID);
    });

    it('attachPair: the returned socketpair end works as a net.Socket with half-close', async () => {
      const res = await withTimeout(openTo(ECHO), 10_000, 'open');
      if (!res.ok) throw new Error(`open failed: ${res.message}`);
      const { fd, done } = e.attachPair(res.stream);
      const app = new net.Socket({ fd, readable: true, writable: true, allowHalfOpen: true });
      app.on('error', () => undefined);
      const incoming = hashIncoming(app);
      const total = 10 * MB;
      const expected = sha(pattern(total, 11), 'bye');
      await sendPattern(app, total, 11);
      const got = await withTimeout(incoming, 60_000, 'echo over socketpair');
      expect(got).toMatchObject({ bytes: total + 3, ended: true, sha: expected });
      expect(await withTimeout(done, 10_000, 'relay result')).toMatchObject({ outcome: 'eof', sent: total, received: total + 3 });
      app.destroy();
    });

    it('reuses one pooled TLS session for several streams', async () => {
      const before = peerSessions.length;
      const results = await Promise.all([openTo(ECHO), openTo(ECHO), openTo(ECHO)]);
      for (const r of results) expect(r.ok).toBe(true);
      // The sessions of earlier tests are still pooled: no new TLS connection was needed.
      expect(peerSessions.length).toBe(before);
      for (const r of results) if (r.ok) expect(e.abort(r.stream)).toBe(true);
      expect(e.stats().sessions.outbound).toBeGreaterThanOrEqual(1);
    });

    it('a non-200 answer resolves kind status', async () => {
      const res = await withTimeout(openTo(REFUSE_503), 10_000, 'open');
      expect(res).toMatchObject({ ok: false, kind: 'status', status: 503 });
    });

    it('a server presenting another identity fails with kind identity and its peerId', async () => {
      const res = await withTimeout(openTo(ECHO, { acceptServerIds: [OTHER_ID] }), 10_000, 'open');
      expect(res).toMatchObject({ ok: false, kind: 'identity', peerId: SERVER_ID });
    });

    it('an unreachable destination fails with kind connect', async () => {
      const port = await freePort();
      const res = await withTimeout(openTo(ECHO, { port }), 10_000, 'open');
      expect(res).toMatchObject({ ok: false, kind: 'connect' });
    });

    it('no certificate for the source identity fails with kind no_certificate', async () => {
      const res = await withTimeout(openTo(ECHO, { sourceId: `spiffe://${TD}/ns/default/sa/nobody` }), 10_000, 'open');
      expect(res).toMatchObject({ ok: false, kind: 'no_certificate' });
    });

    it('a server that never answers the CONNECT fails with kind timeout', async () => {
      const res = await withTimeout(openTo(SILENT), 10_000, 'open');
      expect(res).toMatchObject({ ok: false, kind: 'timeout' });
    });

    it('RST_STREAM from the server resets the attached socket (outcome reset, side tunnel, h2 code)', async () => {
      const res = await withTimeout(openTo(RESET_AFTER_DATA), 10_000, 'open');
      if (!res.ok) throw new Error(`open failed: ${res.message}`);
      const { app, proxySide } = await tcpPair(acceptor, acceptorPort);
      const done = e.attach(res.stream, fdOf(proxySide));
      proxySide.destroy();
      const closed = new Promise<string | undefined>((r) => {
        let code: string | undefined;
        app.on('error', (err: NodeJS.ErrnoException) => (code = err.code));
        app.on('close', () => r(code));
      });
      app.write('hello');
      const result = await withTimeout(done, 10_000, 'relay result');
      expect(result).toMatchObject({ outcome: 'reset', side: 'tunnel', h2Code: http2.constants.NGHTTP2_INTERNAL_ERROR });
      // node:http2's close() sends END_STREAM before the RST: the app has its FIN (half-open), the RST shows on write.
      app.write('more');
      expect(['ECONNRESET', 'EPIPE']).toContain(await withTimeout(closed, 10_000, 'app close'));
    });
  });

  /** A node:http2 client of the engine's inbound listener; `cert` undefined: no client certificate. */
  function h2Client(cert: Cert | undefined = clientCert): http2.ClientHttp2Session {
    const client = http2.connect(`https://127.0.0.1:${inboundPort}`, {
      createConnection: () =>
        tls.connect({
          host: '127.0.0.1',
          port: inboundPort,
          ...(cert ? { key: cert.keyPem, cert: cert.chainPem } : {}),
          ca: ca.trustBundlePem(),
          ALPNProtocols: ['h2'],
          servername: '',
          minVersion: 'TLSv1.3',
          checkServerIdentity: () => undefined,
        }),
    });
    client.on('error', () => undefined);
    return client;
  }

  function response(stream: http2.ClientHttp2Stream): Promise<number> {
    return new Promise((resolve, reject) => {
      stream.once('response', (h) => resolve(Number(h[':status'])));
      stream.once('error', (err) => reject(new Error(`${String(stream.sentHeaders?.[':method'])} ${String(stream.sentHeaders?.[':authority'])}: ${err.message}`)));
      stream.once('close', () => reject(new Error(`stream closed before a response (rst ${stream.rstCode})`)));
    });
  }

  /** Answers an inbound stream request by connecting to the TCP echo server and attaching the engine to it. */
  async function attachToEcho(req: HboneStreamRequest): Promise<{ done: Promise<HboneStreamResult> }> {
    const up = net.connect({ host: '127.0.0.1', port: echoPort });
    await new Promise<void>((r, j) => {
      up.once('connect', () => r());
      up.once('error', j);
    });
    const done = e.attach(req.stream, fdOf(up));
    up.destroy();
    return { done };
  }

  async function closeClient(client: http2.ClientHttp2Session): Promise<void> {
    if (client.destroyed) return;
    await new Promise<void>((r) => {
      client.once('close', () => r());
      client.destroy();
    });
  }

  describe('inbound from a node:http2 client (engine terminates TLS, JS decides)', () => {
    it('a CONNECT becomes a stream request with peer id, authority and headers; attached to a TCP echo server it relays 16 MB each way with half-close', async () => {
      const client = h2Client();
      try {
        const authority = `127.0.0.1:${echoPort}`;
        const stream = client.request({ ':method': 'CONNECT', ':authority': authority, baggage: 'k8s.service.name=echo', forwarded: 'for="10.0.0.1:1234"' });
        const status = response(stream);
        const req = await withTimeout(nextStreamRequest(), 10_000, 'stream request');
        expect(req).toMatchObject({ peerId: CLIENT_ID, authority, localAddress: '127.0.0.1', localPort: inboundPort, remoteAddress: '127.0.0.1' });
        expect(req.headers).toEqual([
          ['baggage', 'k8s.service.name=echo'],
          ['forwarded', 'for="10.0.0.1:1234"'],
        ]);
        const { done } = await attachToEcho(req);
        expect(await withTimeout(status, 10_000, 'response')).toBe(200);
        const incoming = hashIncoming(stream);
        const total = 16 * MB;
        const expected = sha(pattern(total, 3), 'bye');
        await sendPattern(stream, total, 3);
        expect(await withTimeout(incoming, 60_000, 'echo')).toMatchObject({ bytes: total + 3, ended: true, sha: expected });
        expect(await withTimeout(done, 10_000, 'relay result')).toMatchObject({ outcome: 'eof', sent: total + 3, received: total });
      } finally {
        await closeClient(client);
      }
    });

    it('respond(401) answers and ends the stream; a non-CONNECT gets 400 from the engine without a stream request', async () => {
      const client = h2Client();
      try {
        const denied = client.request({ ':method': 'CONNECT', ':authority': '127.0.0.1:9' });
        const status = response(denied);
        const req = await withTimeout(nextStreamRequest(), 10_000, 'stream request');
        e.respond(req.stream, 401);
        expect(await withTimeout(status, 10_000, 'response')).toBe(401);
        const get = client.request({ ':method': 'GET', ':path': '/' });
        get.resume();
        expect(await withTimeout(response(get), 10_000, 'GET response')).toBe(400);
        const badAuthority = client.request({ ':method': 'CONNECT', ':authority': 'example.com:80' });
        expect(await withTimeout(response(badAuthority), 10_000, 'bad authority response')).toBe(400);
        expect(streamRequests).toHaveLength(0);
        // The session still serves.
        const again = client.request({ ':method': 'CONNECT', ':authority': '127.0.0.1:9' });
        const againStatus = response(again);
        e.respond((await withTimeout(nextStreamRequest(), 10_000, 'stream request')).stream, 503);
        expect(await withTimeout(againStatus, 10_000, 'response')).toBe(503);
      } finally {
        await closeClient(client);
      }
    });

    it('attach after the client reset the stream resolves reset and resets the socket', async () => {
      const client = h2Client();
      try {
        const stream = client.request({ ':method': 'CONNECT', ':authority': `127.0.0.1:${echoPort}` });
        stream.on('error', () => undefined);
        const req = await withTimeout(nextStreamRequest(), 10_000, 'stream request');
        stream.close(http2.constants.NGHTTP2_CANCEL);
        await pollUntil(
          () => e.stats().streams.inbound,
          (n) => n === 0,
          5_000,
          20,
        );
        const result = await withTimeout((await attachToEcho(req)).done, 10_000, 'attach result');
        expect(result.outcome).toBe('reset');
      } finally {
        await closeClient(client);
      }
    });

    it('drain(): the peer gets GOAWAY NO_ERROR, its open stream finishes, a new stream is not served, then the session closes normally', async () => {
      const client = h2Client();
      try {
        const goaway = new Promise<number>((r) => client.once('goaway', (code: number) => r(code)));
        const stream = client.request({ ':method': 'CONNECT', ':authority': `127.0.0.1:${echoPort}` });
        const status = response(stream);
        const { done } = await attachToEcho(await withTimeout(nextStreamRequest(), 10_000, 'stream request'));
        expect(await withTimeout(status, 10_000, 'response')).toBe(200);
        sessionEvents.length = 0;
        e.drain();
        expect(await withTimeout(goaway, 5_000, 'GOAWAY')).toBe(http2.constants.NGHTTP2_NO_ERROR);
        // The stream opened before the GOAWAY still relays both ways to its end.
        const incoming = hashIncoming(stream);
        await sendPattern(stream, 64 * 1024, 5);
        expect(await withTimeout(incoming, 10_000, 'echo after GOAWAY')).toMatchObject({ bytes: 64 * 1024 + 3, ended: true, sha: sha(pattern(64 * 1024, 5), 'bye') });
        expect(await withTimeout(done, 10_000, 'relay result')).toMatchObject({ outcome: 'eof' });
        // node:http2 refuses new streams on a session that received GOAWAY; once idle the session ends without an error
        // (the engine closes it, or node:http2 hangs up first after the GOAWAY: 'normal' or 'peer_closed').
        expect(() => client.request({ ':method': 'CONNECT', ':authority': `127.0.0.1:${echoPort}` })).toThrow();
        const closed = await pollUntil(
          () => sessionEvents.filter((ev) => ev.type === 'session_closed' && ev.direction === 'inbound'),
          (l) => l.length >= 1,
          5_000,
          20,
        );
        expect(['normal', 'peer_closed']).toContain(closed[0]!.type === 'session_closed' ? closed[0]!.reason : '');
      } finally {
        await closeClient(client);
      }
    });
  });

  /** A TLS 1.3 + ALPN h2 connection to the engine's inbound that speaks raw HTTP/2 frames (for hostile peers). */
  async function rawTls(cert: Cert = clientCert): Promise<{ sock: tls.TLSSocket; received: Promise<Buffer> }> {
    const sock = tls.connect({
      host: '127.0.0.1',
      port: inboundPort,
      key: cert.keyPem,
      cert: cert.chainPem,
      ca: ca.trustBundlePem(),
      ALPNProtocols: ['h2'],
      servername: '',
      minVersion: 'TLSv1.3',
      checkServerIdentity: () => undefined,
    });
    sock.on('error', () => undefined);
    const chunks: Buffer[] = [];
    sock.on('data', (c: Buffer) => chunks.push(c));
    const received = new Promise<Buffer>((r) => sock.once('close', () => r(Buffer.concat(chunks))));
    await new Promise<void>((r, j) => {
      sock.once('secureConnect', () => r());
      sock.once('close', () => j(new Error('raw TLS client closed during the handshake')));
    });
    return { sock, received };
  }

  const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
  function frame(type: number, flags: number, streamId: number, payload: Buffer = Buffer.alloc(0)): Buffer {
    const h = Buffer.alloc(9);
    h.writeUIntBE(payload.length, 0, 3);
    h[3] = type;
    h[4] = flags;
    h.writeUInt32BE(streamId & 0x7fffffff, 5);
    return Buffer.concat([h, payload]);
  }
  const SETTINGS = (entries: Array<[number, number]> = []) => {
    const p = Buffer.alloc(entries.length * 6);
    entries.forEach(([id, v], i) => {
      p.writeUInt16BE(id, i * 6);
      p.writeUInt32BE(v >>> 0, i * 6 + 2);
    });
    return frame(4, 0, 0, p);
  };

  /** The error code of the first GOAWAY among the frames the server sent, if any. */
  function goawayCode(bytes: Buffer): number | undefined {
    for (let off = 0; off + 9 <= bytes.length; ) {
      const len = bytes.readUIntBE(off, 3);
      const type = bytes[off + 3];
      if (type === 7 && off + 9 + 8 <= bytes.length) return bytes.readUInt32BE(off + 9 + 4);
      off += 9 + len;
    }
    return undefined;
  }

  describe('hostile peers fail only their own connection (inbound)', () => {
    let baseline = 0;
    beforeAll(async () => {
      // The engine's threads (an epoll and an eventfd each) start with its first use: count after that.
      await openTo(ECHO, { sourceId: `spiffe://${TD}/ns/default/sa/nobody` });
      await pollUntil(
        () => e.stats().sessions.inbound,
        (n) => n === 0,
        5_000,
        20,
      );
      baseline = fdCount();
    });

    async function expectSessionsGone(): Promise<void> {
      const settled = await pollUntil(
        () => ({ sessions: e.stats().sessions.inbound, streams: e.stats().streams.inbound, fds: fdCount() }),
        (v) => v.sessions === 0 && v.streams === 0 && v.fds <= baseline,
        10_000,
        20,
      );
      expect(settled.sessions).toBe(0);
      expect(settled.streams).toBe(0);
      expect(settled.fds).toBeLessThanOrEqual(baseline);
    }

    it('a client without certificate, one with a certificate of another CA and plain garbage are refused as handshake failures; no fd is left', async () => {
      sessionEvents.length = 0;
      const tlsClient = (cert: Cert | undefined) => {
        const sock = tls.connect({
          host: '127.0.0.1',
          port: inboundPort,
          ...(cert ? { key: cert.keyPem, cert: cert.chainPem } : {}),
          ca: ca.trustBundlePem(),
          ALPNProtocols: ['h2'],
          servername: '',
          minVersion: 'TLSv1.3',
          checkServerIdentity: () => undefined,
        });
        sock.on('error', () => undefined);
        sock.resume();
        return withTimeout(new Promise((r) => sock.once('close', r)), 10_000, 'refused client closes');
      };
      await tlsClient(undefined);
      const { makeCa, issueLeaf } = await import('../helpers/certs');
      const dir = fs.mkdtempSync('/tmp/smesh-test-rogue-');
      try {
        const rogueCa = makeCa(dir);
        const leaf = issueLeaf(dir, rogueCa, CLIENT_ID);
        await tlsClient({ chainPem: fs.readFileSync(leaf.cert, 'utf8'), keyPem: fs.readFileSync(leaf.key, 'utf8') });
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
      const garbage = net.connect({ host: '127.0.0.1', port: inboundPort });
      garbage.on('error', () => undefined);
      garbage.end('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
      garbage.resume();
      await withTimeout(new Promise((r) => garbage.once('close', r)), 10_000, 'garbage client closes');
      const failures = await pollUntil(
        () => sessionEvents.filter((ev) => ev.type === 'handshake_failed').map((ev) => (ev.type === 'handshake_failed' ? ev.reason : '')),
        (r) => r.length >= 3,
        5_000,
        20,
      );
      expect(failures).toEqual(expect.arrayContaining(['no_certificate', 'bad_certificate', 'not_tls']));
      await expectSessionsGone();
    });

    it('protocol errors get GOAWAY with their code and the session closes: window overflow (FLOW_CONTROL_ERROR), CONTINUATION flood (ENHANCE_YOUR_CALM), a non-HTTP/2 preface (PROTOCOL_ERROR)', async () => {
      sessionEvents.length = 0;
      const overflow = await rawTls();
      const inc = Buffer.alloc(4);
      inc.writeUInt32BE(0x7fffffff, 0);
      overflow.sock.write(Buffer.concat([PREFACE, SETTINGS(), frame(8, 0, 0, inc)]));

      const continuation = await rawTls();
      const headers = [frame(1, 0, 1, Buffer.from([0x82]))]; // HEADERS without END_HEADERS: :method GET
      for (let i = 0; i < 200; i++) headers.push(frame(9, 0, 1, Buffer.from([0x90]))); // CONTINUATION: accept-encoding
      continuation.sock.write(Buffer.concat([PREFACE, SETTINGS(), ...headers]));

      const notH2 = await rawTls();
      notH2.sock.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');

      const [a, b, c] = await withTimeout(Promise.all([overflow.received, continuation.received, notH2.received]), 10_000, 'server closes');
      const codes = [a, b, c].map((bytes) => goawayCode(bytes));
      expect(codes).toEqual([http2.constants.NGHTTP2_FLOW_CONTROL_ERROR, http2.constants.NGHTTP2_ENHANCE_YOUR_CALM, http2.constants.NGHTTP2_PROTOCOL_ERROR]);
      const closed = await pollUntil(
        () => sessionEvents.filter((ev) => ev.type === 'session_closed'),
        (l) => l.length >= 3,
        5_000,
        20,
      );
      expect(closed.map((ev) => ev.reason)).toEqual(['protocol_error', 'protocol_error', 'protocol_error']);
      await expectSessionsGone();
    });

    it('rapid reset: more than maxEarlyResets streams reset before their response get GOAWAY ENHANCE_YOUR_CALM and the session closes', async () => {
      sessionEvents.length = 0;
      const client = h2Client();
      const goaway = new Promise<number>((r) => client.once('goaway', (code: number) => r(code)));
      for (let i = 0; i < 40; i++) {
        const s = client.request({ ':method': 'CONNECT', ':authority': `127.0.0.1:${echoPort}` });
        s.on('error', () => undefined);
        s.once('ready', () => s.close(http2.constants.NGHTTP2_CANCEL));
      }
      expect(await withTimeout(goaway, 10_000, 'GOAWAY')).toBe(http2.constants.NGHTTP2_ENHANCE_YOUR_CALM);
      const closed = await pollUntil(
        () => sessionEvents.find((ev) => ev.type === 'session_closed'),
        (ev) => ev !== undefined,
        5_000,
        20,
      );
      expect(closed).toMatchObject({ direction: 'inbound', reason: 'rapid_reset' });
      await closeClient(client);
      streamRequests.length = 0;
      await expectSessionsGone();
    });

    it('a peer that stops answering (no PING reply) is closed as unresponsive', async () => {
      sessionEvents.length = 0;
      const silent = await rawTls();
      silent.sock.write(Buffer.concat([PREFACE, SETTINGS()]));
      await withTimeout(silent.received, 10_000, 'server closes a silent peer');
      const closed = await pollUntil(
        () => sessionEvents.find((ev) => ev.type === 'session_closed'),
        (ev) => ev !== undefined,
        5_000,
        20,
      );
      expect(closed).toMatchObject({ reason: 'unresponsive' });
      await expectSessionsGone();
    });

    it('still serves a well-behaved client afterwards', async () => {
      const client = h2Client();
      try {
        const stream = client.request({ ':method': 'CONNECT', ':authority': `127.0.0.1:${echoPort}` });
        const status = response(stream);
        const { done } = await attachToEcho(await withTimeout(nextStreamRequest(), 10_000, 'stream request'));
        expect(await withTimeout(status, 10_000, 'response')).toBe(200);
        const incoming = hashIncoming(stream);
        stream.end('ping');
        expect(await withTimeout(incoming, 10_000, 'echo')).toMatchObject({ bytes: 7, tail: 'pingbye' });
        expect(await withTimeout(done, 10_000, 'result')).toMatchObject({ outcome: 'eof' });
      } finally {
        await closeClient(client);
      }
    });
  });

  describe('engine outbound to engine inbound', () => {
    it('4 parallel streams of 4 MB each way over pooled sessions, sha256 and half-close', async () => {
      const total = 4 * MB;
      const runs = [0, 1, 2, 3].map(async (i) => {
        const opened = openTo(`127.0.0.1:${echoPort}`, { port: inboundPort });
        const req = await withTimeout(nextStreamRequest(), 10_000, 'stream request');
        expect(req.peerId).toBe(CLIENT_ID);
        const inboundDone = attachToEcho(req);
        const res = await withTimeout(opened, 10_000, 'open');
        if (!res.ok) throw new Error(`open failed: ${res.message}`);
        const { fd, done } = e.attachPair(res.stream);
        const app = new net.Socket({ fd, readable: true, writable: true, allowHalfOpen: true });
        app.on('error', () => undefined);
        const incoming = hashIncoming(app);
        const expected = sha(pattern(total, 100 + i), 'bye');
        await sendPattern(app, total, 100 + i);
        expect(await withTimeout(incoming, 60_000, `echo ${i}`)).toMatchObject({ bytes: total + 3, ended: true, sha: expected });
        expect(await withTimeout(done, 10_000, 'outbound result')).toMatchObject({ outcome: 'eof', sent: total, received: total + 3 });
        expect(await withTimeout((await inboundDone).done, 10_000, 'inbound result')).toMatchObject({ outcome: 'eof', sent: total + 3, received: total });
        app.destroy();
      });
      await Promise.all(runs);
    });
  });

  describe('certificate rotation', () => {
    it('setIdentity with a new certificate: the next open uses a new session with it while an open stream keeps flowing', async () => {
      const fingerprints = () => peerSessions.map((s) => (s.socket as tls.TLSSocket | undefined)?.getPeerCertificate()?.fingerprint256);
      const first = await withTimeout(openTo(ECHO), 10_000, 'open');
      if (!first.ok) throw new Error(`open failed: ${first.message}`);
      const { fd, done } = e.attachPair(first.stream);
      const app = new net.Socket({ fd, readable: true, writable: true, allowHalfOpen: true });
      app.on('error', () => undefined);
      const incoming = hashIncoming(app);
      const pieces = pattern(2 * MB, 55);
      for (const p of pieces.slice(0, 4)) app.write(p);
      const oldPrint = new Set(fingerprints());
      const renewed = (await ca.issue(CLIENT_ID)) as Cert;
      e.setIdentity(CLIENT_ID, renewed.chainPem, renewed.keyPem);
      const sessionsBefore = peerSessions.length;
      const second = await withTimeout(openTo(ECHO), 10_000, 'open after rotation');
      expect(second.ok).toBe(true);
      expect(peerSessions.length).toBe(sessionsBefore + 1);
      const newPrint = (peerSessions.at(-1)!.socket as tls.TLSSocket).getPeerCertificate().fingerprint256;
      expect(oldPrint.has(newPrint)).toBe(false);
      if (second.ok) e.abort(second.stream);
      for (const p of pieces.slice(4)) if (!app.write(p)) await new Promise((r) => app.once('drain', r));
      app.end();
      expect(await withTimeout(incoming, 30_000, 'old stream echo')).toMatchObject({ bytes: 2 * MB + 3, sha: sha(pieces, 'bye') });
      expect(await withTimeout(done, 10_000, 'old stream result')).toMatchObject({ outcome: 'eof' });
      app.destroy();
    });
  });
});
