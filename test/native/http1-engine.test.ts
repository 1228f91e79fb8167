// Native HTTP/1.1 engine (native/http1*.cc) on real loopback sockets: keep-alive requests through the engine to node:http upstreams, per-request decisions, local replies, pooling, pipelining, request-smuggling shapes, header floods, a seeded fuzz run, no fd left behind.
// Sanitizer build: `make test-native-asan` (SMESH_NATIVE_ADDON → the ASan+UBSan addon, libasan preloaded).
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { http1Engine } from '../../agent/native/http1';
import type { Http1Decision, Http1Engine, Http1Request, Http1Result, Http1SessionClosed, Http1UpstreamFailure, Http1UpstreamPair } from '../../agent/native/http1-types';
import { useAddonPath } from '../../agent/native/raw';
import { pollUntil } from '../helpers/logs';
import { seeded } from '../helpers/prng';

if (process.env.SMESH_NATIVE_ADDON) useAddonPath(process.env.SMESH_NATIVE_ADDON);

const MB = 1024 * 1024;
const engine: Http1Engine | undefined = http1Engine();
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

/** An upstream node:http server answering JSON facts about what it received (body sha256, headers, its socket's remote port). */
class Upstream {
  readonly server: http.Server;
  connections = 0;
  readonly sockets = new Set<net.Socket>();
  port = 0;
  constructor(readonly name: string) {
    this.server = http.createServer((req, res) => {
      const h = crypto.createHash('sha256');
      let bytes = 0;
      req.on('data', (c: Buffer) => {
        h.update(c);
        bytes += c.length;
      });
      req.on('end', () => {
        const body = JSON.stringify({ server: name, method: req.method, url: req.url, headers: req.headers, sha: h.digest('hex'), bytes, remotePort: req.socket.remotePort });
        if (req.url?.startsWith('/big')) {
          const size = Number(new URL(req.url, 'http://x').searchParams.get('size') ?? '0');
          res.writeHead(200, { 'content-type': 'application/octet-stream', 'x-sha': crypto.createHash('sha256').update(bigBody(size)).digest('hex') });
          res.end(bigBody(size));
          return;
        }
        res.writeHead(200, { 'content-type': 'application/json', 'x-upstream': name });
        res.end(body);
      });
    });
    this.server.keepAliveTimeout = 30_000;
    this.server.on('connection', (s: net.Socket) => {
      this.connections++;
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
  }
  async listen(): Promise<void> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.port = (this.server.address() as net.AddressInfo).port;
  }
  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise((r) => this.server.close(r));
  }
}

const bigCache = new Map<number, Buffer>();
function bigBody(size: number): Buffer {
  let b = bigCache.get(size);
  if (!b) {
    b = Buffer.alloc(size);
    const block = crypto.createHash('sha512').update(String(size)).digest();
    for (let i = 0; i < size; i += block.length) block.copy(b, i);
    bigCache.set(size, b);
  }
  return b;
}

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

function request(port: number, agent: http.Agent, opts: { method?: string; path: string; headers?: http.OutgoingHttpHeaders; body?: Buffer; chunked?: boolean }): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, agent, method: opts.method ?? 'GET', path: opts.path, headers: { host: 'svc.test', ...(opts.headers ?? {}) } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    if (opts.body) {
      if (!opts.chunked) req.setHeader('content-length', opts.body.length);
      // Written in pieces, so chunked requests carry many chunks.
      for (let off = 0; off < opts.body.length; off += 256 * 1024) req.write(opts.body.subarray(off, off + 256 * 1024));
    }
    req.end();
  });
}

/** Writes raw bytes on a fresh connection, half-closes when asked, and returns everything received until the engine closes. */
function rawExchange(port: number, bytes: Buffer | string, opts: { end?: boolean; timeoutMs?: number } = {}): Promise<{ text: string; closed: boolean; error?: string }> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port, allowHalfOpen: true });
    const chunks: Buffer[] = [];
    let error: string | undefined;
    const timer = setTimeout(() => {
      s.destroy();
      resolve({ text: Buffer.concat(chunks).toString('latin1'), closed: false, error });
    }, opts.timeoutMs ?? 5_000);
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('error', (e: NodeJS.ErrnoException) => (error = e.code ?? e.message));
    s.on('close', () => {
      clearTimeout(timer);
      resolve({ text: Buffer.concat(chunks).toString('latin1'), closed: true, error });
    });
    s.on('end', () => s.end());
    s.write(bytes);
    if (opts.end) s.end();
  });
}

describeNative('native HTTP/1.1 engine', () => {
  const e = engine!;
  const a = new Upstream('A');
  const b = new Upstream('B');
  let front: net.Server;
  let frontPort = 0;
  let refusedPort = 0;
  let route: (req: Http1Request) => Http1Decision | undefined;
  let onFailure: (f: Http1UpstreamFailure) => void;
  let onPair: (p: Http1UpstreamPair) => void;
  const pairs: Http1UpstreamPair[] = [];
  const requests: Http1Request[] = [];
  const results: Http1Result[] = [];
  const closed: Http1SessionClosed[] = [];
  const failures: Http1UpstreamFailure[] = [];
  const agents: http.Agent[] = [];

  function keepAliveAgent(): http.Agent {
    const ag = new http.Agent({ keepAlive: true, maxSockets: 1 });
    agents.push(ag);
    return ag;
  }
  const toA = (): Http1Decision => ({ kind: 'forward', host: '127.0.0.1', port: a.port });

  beforeAll(async () => {
    e.configure({ workers: 2, decisionTimeoutMs: 5_000, headerTimeoutMs: 3_000, connectTimeoutMs: 2_000, maxSkipBodyBytes: 64 * 1024 });
    e.setHandlers({
      onRequest: (req) => {
        requests.push(req);
        const d = route(req);
        if (d) e.decide(req.id, d);
      },
      onUpstreamFailure: (f) => {
        failures.push(f);
        onFailure(f);
      },
      onResult: (r) => results.push(r),
      onSessionClosed: (c) => closed.push(c),
      onUpstreamPair: (p) => {
        pairs.push(p);
        onPair(p);
      },
    });
    await a.listen();
    await b.listen();
    const probe = net.createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    refusedPort = (probe.address() as net.AddressInfo).port;
    await new Promise((r) => probe.close(r));
    front = net.createServer({ pauseOnConnect: true }, (s) => {
      try {
        e.serve(fdOf(s));
      } finally {
        s.destroy();
      }
    });
    await new Promise<void>((r) => front.listen(0, '127.0.0.1', r));
    frontPort = (front.address() as net.AddressInfo).port;
  });

  beforeEach(() => {
    route = toA;
    onFailure = (f) => e.reply(f.id, 503, [['content-type', 'text/plain']], `upstream ${f.reason}\n`);
    onPair = (p) => fs.closeSync(p.fd);
    pairs.length = 0;
    requests.length = 0;
    results.length = 0;
    failures.length = 0;
  });

  afterAll(async () => {
    for (const ag of agents) ag.destroy();
    e.closeAll();
    await new Promise((r) => front?.close(r));
    await a.close();
    await b.close();
  });

  it('carries keep-alive GETs and 5 MB POSTs (content-length and chunked) to a node:http upstream, body sha256 intact both ways', async () => {
    const ag = keepAliveAgent();
    const get1 = await request(frontPort, ag, { path: '/hello?x=1', headers: { 'x-test': 'one' } });
    expect(get1.status).toBe(200);
    const j1 = JSON.parse(get1.body.toString()) as { server: string; url: string; headers: Record<string, string>; remotePort: number };
    expect(j1).toMatchObject({ server: 'A', url: '/hello?x=1' });
    expect(j1.headers['x-test']).toBe('one');
    expect(j1.headers.host).toBe('svc.test');
    const body = crypto.randomBytes(5 * MB);
    const sha = crypto.createHash('sha256').update(body).digest('hex');
    for (const chunked of [false, true]) {
      const r = await request(frontPort, ag, { method: 'POST', path: '/upload', body, chunked });
      expect(r.status).toBe(200);
      const j = JSON.parse(r.body.toString()) as { sha: string; bytes: number; headers: Record<string, string> };
      expect(j.bytes).toBe(5 * MB);
      expect(j.sha).toBe(sha);
      if (chunked) expect(j.headers['transfer-encoding']).toBe('chunked');
      else expect(j.headers['content-length']).toBe(String(5 * MB));
    }
    const big = await request(frontPort, ag, { path: `/big?size=${5 * MB}` });
    expect(big.body.length).toBe(5 * MB);
    expect(crypto.createHash('sha256').update(big.body).digest('hex')).toBe(big.headers['x-sha']);
    // One client connection for all four requests (keep-alive through the engine).
    expect(new Set(requests.map((r) => r.session)).size).toBe(1);
    const posted = requests.filter((r) => r.method === 'POST');
    expect(posted.map((r) => r.body.kind)).toEqual(['length', 'chunked']);
    const done = await pollUntil(
      () => results.length,
      (n) => n >= 4,
      5_000,
      20,
    );
    expect(done).toBe(4);
    const postResults = results.filter((r) => posted.some((p) => p.id === r.id));
    expect(postResults.map((r) => r.requestBytes)).toEqual([5 * MB, 5 * MB]);
    expect(results.find((r) => r.responseBytes === 5 * MB)).toBeDefined();
    expect(results.every((r) => r.outcome === 'forwarded' && r.status === 200 && r.durationUs > 0)).toBe(true);
  });

  it('pair decisions: a new upstream connection is a socketpair whose other end JavaScript carries (here: to upstream A), pooled per key; closing it before a response fails the request as a reset', async () => {
    expect(e.upstreamPairs).toBe(true);
    // JavaScript's end goes to A's node:http server as one more connection: what the bridge does with an HBONE stream.
    onPair = (p) => a.server.emit('connection', new net.Socket({ fd: p.fd, readable: true, writable: true }));
    route = () => ({ kind: 'forward', pair: 'to-a', path: '/via-pair' });
    const ag = keepAliveAgent();
    for (let i = 0; i < 3; i++) {
      const r = await request(frontPort, ag, { path: `/x${i}` });
      expect(r.status).toBe(200);
      expect(JSON.parse(r.body.toString())).toMatchObject({ server: 'A', url: '/via-pair' });
    }
    // Three requests, one pooled upstream connection: one pair handed out.
    expect(pairs.map((p) => p.key)).toEqual(['to-a']);
    expect(pairs[0]!.id).toBe(requests[0]!.id);
    // A connection JavaScript cannot carry: closed at once, the request fails before any response byte.
    onPair = (p) => fs.closeSync(p.fd);
    route = () => ({ kind: 'forward', pair: 'nowhere' });
    const failed = await request(frontPort, keepAliveAgent(), { path: '/y' });
    expect(failed.status).toBe(503);
    expect(failures.map((f) => [f.reason, f.target, f.reused])).toEqual([['reset', 'pair:nowhere', false]]);
    // An empty pair key is refused by name.
    expect(() => e.decide(requests[0]!.id, { kind: 'forward', pair: '' })).toThrow(/decision.pair must be a key/);
  });

  it('routes per request to two upstreams with header changes and a path rewrite', async () => {
    route = (req) =>
      req.target.startsWith('/b/') ? { kind: 'forward', host: '127.0.0.1', port: b.port, path: req.target.slice(2), setHeaders: [['x-routed', 'b']], removeHeaders: ['x-secret'] } : toA();
    const ag = keepAliveAgent();
    const ra = await request(frontPort, ag, { path: '/a/1', headers: { 'x-secret': 's' } });
    const rb = await request(frontPort, ag, { path: '/b/2', headers: { 'x-secret': 's', 'x-routed': 'client' } });
    const ja = JSON.parse(ra.body.toString()) as { server: string; url: string; headers: Record<string, string> };
    const jb = JSON.parse(rb.body.toString()) as { server: string; url: string; headers: Record<string, string> };
    expect(ja).toMatchObject({ server: 'A', url: '/a/1' });
    expect(ja.headers['x-secret']).toBe('s');
    expect(jb).toMatchObject({ server: 'B', url: '/2' });
    expect(jb.headers['x-secret']).toBeUndefined();
    expect(jb.headers['x-routed']).toBe('b');
    expect(rb.headers['x-upstream']).toBe('B');
  });

  it('denies with 403 and a body, dropping the request body, and keeps the connection usable', async () => {
    route = (req) => (req.target === '/forbidden' ? { kind: 'deny', status: 403, headers: [['x-denied-by', 'policy']], body: 'RBAC: access denied\n' } : toA());
    const ag = keepAliveAgent();
    const denied = await request(frontPort, ag, { method: 'POST', path: '/forbidden', body: crypto.randomBytes(20_000) });
    expect(denied.status).toBe(403);
    expect(denied.headers['x-denied-by']).toBe('policy');
    expect(denied.body.toString()).toBe('RBAC: access denied\n');
    const ok = await request(frontPort, ag, { path: '/after' });
    expect(ok.status).toBe(200);
    expect(new Set(requests.map((r) => r.session)).size).toBe(1);
    await pollUntil(
      () => results.length,
      (n) => n >= 2,
      5_000,
      20,
    );
    expect(results[0]).toMatchObject({ outcome: 'denied', status: 403, responseBytes: 20 });
  });

  it('reports an unreachable upstream as connect_failed and lets TypeScript reply 503 on a connection that stays usable', async () => {
    route = (req) => (req.target === '/down' ? { kind: 'forward', host: '127.0.0.1', port: refusedPort } : toA());
    const ag = keepAliveAgent();
    const r = await request(frontPort, ag, { method: 'POST', path: '/down', body: Buffer.from('payload') });
    expect(r.status).toBe(503);
    expect(r.body.toString()).toBe('upstream connect_failed\n');
    expect(failures).toHaveLength(1);
    expect(failures[0]).toMatchObject({ reason: 'connect_failed', target: `127.0.0.1:${refusedPort}`, reused: false });
    expect(failures[0]!.detail).toContain('refused');
    const ok = await request(frontPort, ag, { path: '/up' });
    expect(ok.status).toBe(200);
    await pollUntil(
      () => results.length,
      (n) => n >= 2,
      5_000,
      20,
    );
    expect(results[0]).toMatchObject({ outcome: 'replied', status: 503, failure: 'connect_failed' });
  });

  it('pools upstream connections per target and honors maxRequestsPerConnection', async () => {
    const ag = keepAliveAgent();
    const c = new Upstream('C');
    await c.listen();
    try {
      route = () => ({ kind: 'forward', host: '127.0.0.1', port: c.port });
      const ports: number[] = [];
      for (let i = 0; i < 3; i++) ports.push((JSON.parse((await request(frontPort, ag, { path: `/pool/${i}` })).body.toString()) as { remotePort: number }).remotePort);
      expect(new Set(ports).size).toBe(1);
      expect(c.connections).toBe(1);
      await pollUntil(
        () => results.length,
        (n) => n >= 3,
        5_000,
        20,
      );
      expect(results.map((r) => r.reused)).toEqual([false, true, true]);

      route = () => ({ kind: 'forward', host: '127.0.0.1', port: c.port, maxRequestsPerConnection: 2 });
      const before = c.connections;
      for (let i = 0; i < 4; i++) await request(frontPort, ag, { path: `/limited/${i}` });
      // The pooled connection had 3 requests already (closed on its next use), then 2 + 2.
      expect(c.connections - before).toBe(2);
    } finally {
      await c.close();
    }
  });

  it('answers pipelined requests in order even when decided in reverse order', async () => {
    const pending: Http1Request[] = [];
    route = (req) => {
      pending.push(req);
      if (pending.length === 3) for (const p of [...pending].reverse()) e.decide(p.id, toA());
      return undefined;
    };
    const pipeline = ['/p1', '/p2', '/p3'].map((p, i) => `GET ${p} HTTP/1.1\r\nHost: svc.test\r\n${i === 2 ? 'Connection: close\r\n' : ''}\r\n`).join('');
    const r = await rawExchange(frontPort, pipeline);
    expect(r.closed).toBe(true);
    const urls = [...r.text.matchAll(/"url":"([^"]+)"/g)].map((m) => m[1]);
    expect(urls).toEqual(['/p1', '/p2', '/p3']);
    expect(r.text.match(/HTTP\/1\.1 200/g)).toHaveLength(3);
  });

  it('answers Expect: 100-continue before the body flows', async () => {
    const ag = keepAliveAgent();
    const body = crypto.randomBytes(100_000);
    const reply = await new Promise<Reply>((resolve, reject) => {
      const req = http.request(
        { host: '127.0.0.1', port: frontPort, agent: ag, method: 'PUT', path: '/expect', headers: { host: 'svc.test', expect: '100-continue', 'content-length': body.length } },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
        },
      );
      req.on('error', reject);
      req.on('continue', () => req.end(body));
    });
    expect(reply.status).toBe(200);
    const j = JSON.parse(reply.body.toString()) as { sha: string; headers: Record<string, string> };
    expect(j.sha).toBe(crypto.createHash('sha256').update(body).digest('hex'));
    expect(j.headers.expect).toBeUndefined();
  });

  it('hands an Upgrade request back to TypeScript as a raw socket (takeover) with the head and what followed', async () => {
    let taken: Promise<Awaited<ReturnType<Http1Engine['takeover']>>> | undefined;
    route = (req) => {
      if (req.upgrade) taken = e.takeover(req.id);
      return req.upgrade ? undefined : toA();
    };
    const client = net.connect({ host: '127.0.0.1', port: frontPort });
    const received: Buffer[] = [];
    client.on('data', (c: Buffer) => received.push(c));
    const head = 'GET /ws HTTP/1.1\r\nHost: svc.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n';
    client.write(head + 'early-bytes');
    await pollUntil(
      () => taken,
      (t) => t !== undefined,
      5_000,
      20,
    );
    const t = await withTimeout(taken!, 5_000, 'takeover');
    expect(t).toBeDefined();
    expect(t!.pending.toString()).toBe(head + 'early-bytes');
    const sock = new net.Socket({ fd: t!.fd, readable: true, writable: true });
    sock.write('HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\ntunnel-ok');
    const got = await pollUntil(
      () => Buffer.concat(received).toString(),
      (s) => s.includes('tunnel-ok'),
      5_000,
      20,
    );
    expect(got.startsWith('HTTP/1.1 101')).toBe(true);
    sock.destroy();
    client.destroy();
    const c = await pollUntil(
      () => closed.find((x) => x.session === requests.find((r) => r.upgrade)?.session),
      (x) => x !== undefined,
      5_000,
      20,
    );
    expect(c?.reason).toBe('takeover');
  });

  it('re-frames a close-delimited upstream response as chunked, and reports a silent upstream as timeout for a 504 reply', async () => {
    const raw = net.createServer((sock) => {
      sock.once('data', (d: Buffer) => {
        if (d.toString().startsWith('GET /silent')) return; // never answers
        sock.end('HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\nuntil-close-body');
      });
      sock.on('error', () => undefined);
    });
    await new Promise<void>((r) => raw.listen(0, '127.0.0.1', r));
    const port = (raw.address() as net.AddressInfo).port;
    try {
      route = () => ({ kind: 'forward', host: '127.0.0.1', port, responseTimeoutMs: 300 });
      onFailure = (f) => e.reply(f.id, f.reason === 'timeout' ? 504 : 503, [], `upstream ${f.reason}\n`);
      const ag = keepAliveAgent();
      const r = await request(frontPort, ag, { path: '/close-delimited' });
      expect(r.status).toBe(200);
      expect(r.headers['transfer-encoding']).toBe('chunked');
      expect(r.body.toString()).toBe('until-close-body');
      const t = await request(frontPort, ag, { path: '/silent' });
      expect(t.status).toBe(504);
      expect(failures.map((f) => f.reason)).toEqual(['timeout']);
      // Both on one client connection.
      expect(new Set(requests.map((q) => q.session)).size).toBe(1);
    } finally {
      await new Promise((r) => raw.close(r));
    }
  });

  const SMUGGLING: Array<[string, string]> = [
    ['Content-Length with Transfer-Encoding', 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n'],
    ['duplicate equal Content-Length', 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello'],
    ['different Content-Length', 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!'],
    ['Content-Length list', 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\nhello'],
    ['signed Content-Length', 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\nhello'],
    ['Transfer-Encoding not ending in chunked', 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n'],
    ['Transfer-Encoding identity', 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n\r\n'],
    ['Transfer-Encoding twice', 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n'],
    ['Transfer-Encoding in HTTP/1.0', 'POST / HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n'],
    ['obs-fold', 'GET / HTTP/1.1\r\nHost: a\r\nX-Folded: one\r\n two\r\n\r\n'],
    ['bare LF', 'GET / HTTP/1.1\nHost: a\n\n'],
    ['bare CR', 'GET / HTTP/1.1\rHost: a\r\n\r\n'],
    ['bare LF inside the headers', 'GET / HTTP/1.1\r\nHost: a\nX: y\r\n\r\n'],
    ['chunk size over 2^63', 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n8000000000000000\r\nxx\r\n0\r\n\r\n'],
    ['chunk size of 17 hex digits', 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n00000000000000001\r\nx\r\n0\r\n\r\n'],
    ['non-hex chunk size', 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n'],
    ['chunk data without CRLF', 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n'],
    ['NUL in a header value', 'GET / HTTP/1.1\r\nHost: a\r\nX-Nul: a\u0000b\r\n\r\n'],
    ['control character in a header value', 'GET / HTTP/1.1\r\nHost: a\r\nX-Ctl: a\u0001b\r\n\r\n'],
    ['space in a header name', 'GET / HTTP/1.1\r\nHost: a\r\nBad Name: x\r\n\r\n'],
    ['whitespace before the colon', 'GET / HTTP/1.1\r\nHost : a\r\n\r\n'],
    ['invalid token character in a name', 'GET / HTTP/1.1\r\nHost: a\r\nX(y): z\r\n\r\n'],
    ['absurd request line', `GET /${'a'.repeat(20_000)} HTTP/1.1\r\nHost: a\r\n\r\n`],
    ['two spaces in the request line', 'GET  / HTTP/1.1\r\nHost: a\r\n\r\n'],
    ['missing Host in HTTP/1.1', 'GET / HTTP/1.1\r\nX: y\r\n\r\n'],
    ['two Host headers', 'GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n'],
  ];

  it.each(SMUGGLING)('rejects %s with 400 and closes the connection', async (_name, bytes) => {
    const r = await rawExchange(frontPort, Buffer.from(bytes, 'latin1'));
    expect(r.text.startsWith('HTTP/1.1 400 ')).toBe(true);
    expect(r.text).toContain('connection: close');
    expect(r.closed).toBe(true);
    // Nothing but heads that parsed cleanly reached TypeScript, and nothing followed the 400.
    expect(r.text.match(/HTTP\/1\.1 \d{3} /g)).toHaveLength(1);
  });

  it('hands the HTTP/2 prior-knowledge preface back as an upgrade request (PRI *) with the whole preface pending', async () => {
    let taken: Promise<Awaited<ReturnType<Http1Engine['takeover']>>> | undefined;
    route = (req) => {
      if (req.upgrade) taken = e.takeover(req.id);
      return req.upgrade ? undefined : toA();
    };
    const client = net.connect({ host: '127.0.0.1', port: frontPort });
    const preface = 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n';
    const settings = Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0]);
    client.write(Buffer.concat([Buffer.from(preface, 'latin1'), settings]));
    await pollUntil(
      () => taken,
      (t) => t !== undefined,
      5_000,
      20,
    );
    const t = await withTimeout(taken!, 5_000, 'takeover');
    const req = requests.find((r) => r.upgrade);
    expect(req).toMatchObject({ method: 'PRI', target: '*', upgrade: true });
    expect(req!.headers).toHaveLength(0);
    expect(t!.pending.equals(Buffer.concat([Buffer.from(preface, 'latin1'), settings]))).toBe(true);
    fs.closeSync(t!.fd);
    client.destroy();
    // Any other HTTP/2.0 request line is still 505.
    const other = await rawExchange(frontPort, 'GET / HTTP/2.0\r\nHost: a\r\n\r\n');
    expect(other.text.startsWith('HTTP/1.1 505 ')).toBe(true);
  });

  it("connects from a decision's source address, pooled per source; per-session handlers and head limit; closeSession resets one session", async () => {
    // Source address: the upstream sees it, and a connection from another source is not reused for it.
    route = (req) => ({ kind: 'forward', host: '127.0.0.1', port: a.port, ...(req.target === '/src2' ? { sourceAddress: '127.0.0.2' } : {}) });
    const seen: string[] = [];
    const onConn = (sock: net.Socket) => seen.push(sock.remoteAddress ?? '');
    a.server.on('connection', onConn);
    try {
      const ag = keepAliveAgent();
      for (const path of ['/src1', '/src2', '/src2']) expect((await request(frontPort, ag, { path })).status).toBe(200);
      expect(seen.filter((x) => x === '127.0.0.2')).toHaveLength(1);
    } finally {
      a.server.off('connection', onConn);
    }
    expect(() => e.decide(1, { kind: 'forward', host: '127.0.0.1', port: a.port, sourceAddress: '::1' })).toThrow(/same family/);
    // A session served with its own handlers: the default ones see nothing of it; its head limit is its own.
    const own: Http1Request[] = [];
    const ownClosed: Http1SessionClosed[] = [];
    const server = net.createServer({ pauseOnConnect: true }, (sock) => {
      try {
        e.serve(fdOf(sock), {
          maxHeadBytes: 2048,
          handlers: { onRequest: (req) => (own.push(req), e.decide(req.id, { kind: 'deny', status: 403, body: 'own\n' })), onSessionClosed: (c) => ownClosed.push(c) },
        });
      } finally {
        sock.destroy();
      }
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const port = (server.address() as net.AddressInfo).port;
      const r = await rawExchange(port, 'GET /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n');
      expect(r.text).toMatch(/^HTTP\/1\.1 403 [^]*\r\n\r\nown\n$/);
      expect(own).toHaveLength(1);
      expect(requests.some((q) => q.id === own[0]!.id)).toBe(false);
      const big = await rawExchange(port, `GET / HTTP/1.1\r\nHost: a\r\nX-Big: ${'v'.repeat(3000)}\r\n\r\n`);
      expect(big.text.startsWith('HTTP/1.1 431 ')).toBe(true);
      // closeSession: a kept-alive connection is reset; the close reports the socket's byte counts.
      const before = ownClosed.length;
      const hold = net.connect({ host: '127.0.0.1', port });
      const ended = new Promise<string>((resolve) => {
        hold.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? 'error'));
        hold.on('close', () => resolve('closed'));
      });
      const heldBefore = own.length;
      const serveHeld = new Promise<void>((resolve) => {
        const timer = setInterval(() => {
          if (own.length > heldBefore) {
            clearInterval(timer);
            resolve();
          }
        }, 10);
      });
      hold.write('GET /1 HTTP/1.1\r\nHost: a\r\n\r\n');
      await withTimeout(serveHeld, 5_000, 'request of the held session');
      const session = own[own.length - 1]!.session;
      e.closeSession(session);
      expect(await withTimeout(ended, 5_000, 'reset of the closed session')).toMatch(/ECONNRESET|closed/);
      const c = await pollUntil(
        () => ownClosed.slice(before).find((x) => x.session === session),
        (x) => x !== undefined,
        5_000,
        20,
      );
      expect(c?.reason).toBe('closed');
      expect(c?.bytesReceived).toBe('GET /1 HTTP/1.1\r\nHost: a\r\n\r\n'.length);
      expect(c?.bytesSent).toBeGreaterThan('HTTP/1.1 403 \r\n\r\nown\n'.length);
    } finally {
      await new Promise((r) => server.close(r));
    }
  });

  it('answers a header flood and an oversized head with 431 and closes', async () => {
    const many = `GET / HTTP/1.1\r\nHost: a\r\n${Array.from({ length: 150 }, (_, i) => `X-H${i}: v\r\n`).join('')}\r\n`;
    const r1 = await rawExchange(frontPort, many);
    expect(r1.text.startsWith('HTTP/1.1 431 ')).toBe(true);
    expect(r1.closed).toBe(true);
    const huge = `GET / HTTP/1.1\r\nHost: a\r\nX-Big: ${'v'.repeat(70_000)}\r\n\r\n`;
    const r2 = await rawExchange(frontPort, huge);
    expect(r2.text.startsWith('HTTP/1.1 431 ')).toBe(true);
    expect(r2.closed).toBe(true);
    expect(requests).toHaveLength(0);
  });

  it('survives seeded random and mutated requests with no crash and no fd left behind', async () => {
    const ag = keepAliveAgent();
    await request(frontPort, ag, { path: '/warm' });
    for (const open of agents) open.destroy();
    expect(
      await pollUntil(
        () => e.stats().sessions,
        (n) => n === 0,
        5_000,
        20,
      ),
    ).toBe(0);
    // Each pooled upstream connection holds two fds of this process (the engine's and the upstream server's socket).
    const ownFds = () => fdCount() - 2 * e.stats().upstreams.open;
    const baseline = ownFds();
    const rnd = seeded(0x5eed1);
    const int = (n: number) => Math.floor(rnd() * n);
    const seeds = [
      'GET /a HTTP/1.1\r\nHost: svc\r\n\r\n',
      'POST /b HTTP/1.1\r\nHost: svc\r\nContent-Length: 5\r\n\r\nhello',
      'POST /c HTTP/1.1\r\nHost: svc\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n0\r\nX-Trailer: t\r\n\r\n',
      'GET /d HTTP/1.0\r\n\r\n',
      'GET /e HTTP/1.1\r\nHost: svc\r\nConnection: close\r\n\r\nGET /f HTTP/1.1\r\nHost: svc\r\n\r\n',
      'OPTIONS * HTTP/1.1\r\nHost: svc\r\n\r\n',
      'GET http://svc:80/g HTTP/1.1\r\nHost: other\r\n\r\n',
    ];
    const alphabet = '\r\n\0\t :;,0123456789abcdefABCDEF/-_HTTP\x7f\xff';
    const cases: Buffer[] = [];
    for (let i = 0; i < 150; i++) {
      let s = seeds[int(seeds.length)]!;
      const mutations = 1 + int(4);
      for (let m = 0; m < mutations; m++) {
        const at = int(s.length + 1);
        switch (int(6)) {
          case 0:
            s = s.slice(0, at) + alphabet[int(alphabet.length)] + s.slice(at);
            break;
          case 1:
            s = s.slice(0, at) + s.slice(at + 1 + int(3));
            break;
          case 2:
            s = s.slice(0, at) + alphabet[int(alphabet.length)] + s.slice(at + 1);
            break;
          case 3:
            s = s.slice(0, at);
            break;
          case 4:
            s = s + s.slice(int(s.length));
            break;
          default:
            s = s.slice(0, at) + Array.from({ length: 1 + int(40) }, () => String.fromCharCode(int(256))).join('') + s.slice(at);
        }
      }
      cases.push(Buffer.from(s, 'latin1'));
    }
    for (let i = 0; i < 30; i++) cases.push(crypto.createHash('sha512').update(`garbage${i}`).digest());
    // Routes: forward, deny, or leave to the decision timeout never (always decided).
    route = (req) => (req.id % 3 === 0 ? { kind: 'deny', status: 404, body: 'no' } : toA());
    for (let i = 0; i < cases.length; i += 10) {
      const outs = await Promise.all(cases.slice(i, i + 10).map((c, j) => rawExchange(frontPort, c, { end: (i + j) % 5 !== 0, timeoutMs: 1_000 })));
      if (process.env.FUZZ_DEBUG)
        outs.forEach((o, j) => {
          if (!o.closed) console.log('OPEN', (i + j) % 5 !== 0, JSON.stringify(cases[i + j]!.toString('latin1')), JSON.stringify(o.text.slice(0, 80)));
        });
    }
    const after = await pollUntil(
      () => ({ sessions: e.stats().sessions, inflight: e.stats().requestsInFlight, fds: ownFds() }),
      (v) => v.sessions === 0 && v.inflight === 0 && v.fds <= baseline,
      15_000,
      50,
    );
    expect(after).toEqual({ sessions: 0, inflight: 0, fds: after.fds });
    expect(after.fds).toBeLessThanOrEqual(baseline);
    // The engine still serves.
    route = toA;
    const ag2 = keepAliveAgent();
    const ok = await request(frontPort, ag2, { path: '/after-fuzz' });
    expect(ok.status).toBe(200);
    ag2.destroy();
  }, 120_000);
});
