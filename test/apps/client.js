#!/usr/bin/env node
// Pod app for e2e tests: one-shot TCP/HTTP/TLS/HBONE client that prints exactly one JSON line describing what happened.
'use strict';
const net = require('net');
const tls = require('tls');
const http = require('http');
const http2 = require('http2');
const crypto = require('crypto');
const fs = require('fs');

const USAGE = `usage: client.js MODE [options]
  tcp       --host H --port P [--send STR [--repeat N]] [--expect STR]   write, half-close, read to EOF
  peer      --host H --port P [--no-read]                    getpeername() + first line from the server
  http      --url URL                                        GET, body parsed as JSON when possible
  bulk      --host H --port P --bytes N [--seed S]           N pseudo-random bytes, half-close, read the sink's reply
  garbage   --host H --port P [--bytes N | --data STR]       junk bytes, wait for the server to close
  tls-abort --host H --port P                                send a real ClientHello, drop after the server answers
  hbone     --host H --port P --authority IP:PORT [--cert F --key F --ca F] [--send STR]
common: --timeout MS (default 20000)`;

function parseArgs(argv) {
  const opts = { mode: argv[0], timeout: 20000, seed: 1, read: true };
  for (let i = 1; i < argv.length; i++) {
    const a = argv[i];
    const next = () => {
      if (i + 1 >= argv.length) throw new Error(`missing value for ${a}`);
      return argv[++i];
    };
    switch (a) {
      case '--host': opts.host = next(); break;
      case '--port': opts.port = Number(next()); break;
      case '--send': opts.send = next(); break;
      case '--expect': opts.expect = next(); break;
      case '--repeat': opts.repeat = Number(next()); break;
      case '--url': opts.url = next(); break;
      case '--method': opts.method = next(); break;
      case '--bytes': opts.bytes = Number(next()); break;
      case '--seed': opts.seed = Number(next()); break;
      case '--data': opts.data = next(); break;
      case '--authority': opts.authority = next(); break;
      case '--cert': opts.cert = next(); break;
      case '--key': opts.key = next(); break;
      case '--ca': opts.ca = next(); break;
      case '--timeout': opts.timeout = Number(next()); break;
      case '--no-read': opts.read = false; break;
      default: throw new Error(`unknown argument ${a}`);
    }
  }
  return opts;
}

const started = process.hrtime.bigint();
const elapsedMs = () => Number(process.hrtime.bigint() - started) / 1e6;
let printed = false;

function finish(result) {
  if (printed) return;
  printed = true;
  const line = JSON.stringify({ mode: opts.mode, ms: Math.round(elapsedMs()), ...result });
  process.stdout.write(line + '\n', () => process.exit(0));
}

function errInfo(err) {
  if (!err) return undefined;
  return { message: String(err.message || err), code: err.code };
}

function addrOf(sock, which) {
  const address = which === 'peer' ? sock.remoteAddress : sock.localAddress;
  const port = which === 'peer' ? sock.remotePort : sock.localPort;
  return address === undefined ? null : { address, port };
}

/** xorshift128 stream: deterministic pseudo-random bytes, fast enough for tens of MB. */
function makePrng(seed) {
  let x = (seed >>> 0) || 1, y = 362436069, z = 521288629, w = 88675123;
  return function fill(buf) {
    const words = new Uint32Array(buf.buffer, buf.byteOffset, buf.length >>> 2);
    for (let i = 0; i < words.length; i++) {
      const t = x ^ (x << 11);
      x = y; y = z; z = w;
      w = (w ^ (w >>> 19) ^ (t ^ (t >>> 8))) >>> 0;
      words[i] = w;
    }
    for (let i = words.length << 2; i < buf.length; i++) buf[i] = (i * 31 + seed) & 0xff;
  };
}

function readAll(sock, onDone, limit = 64 << 20) {
  const chunks = [];
  let total = 0;
  sock.on('data', (c) => {
    total += c.length;
    if (total <= limit) chunks.push(c);
  });
  sock.on('end', () => onDone(Buffer.concat(chunks), total));
}

function modeTcp() {
  const sock = net.connect({ host: opts.host, port: opts.port, allowHalfOpen: true });
  let connected = false;
  let peer = null, local = null;
  sock.on('connect', () => {
    connected = true;
    peer = addrOf(sock, 'peer');
    local = addrOf(sock, 'local');
    sock.end(payload);
  });
  const payload = Buffer.from((opts.send || '').repeat(opts.repeat || 1), 'utf8');
  const sentSha256 = crypto.createHash('sha256').update(payload).digest('hex');
  readAll(sock, (buf, total) => {
    const received = buf.toString('utf8');
    const ok = opts.expect === undefined ? true : received === opts.expect;
    const receivedSha256 = crypto.createHash('sha256').update(buf).digest('hex');
    finish({ ok, connected, peer, local, sentBytes: payload.length, sentSha256, received: received.slice(0, 4096), receivedBytes: total, receivedSha256 });
  });
  sock.on('error', (err) => finish({ ok: false, connected, peer, local, error: errInfo(err) }));
}

function modePeer() {
  const sock = net.connect({ host: opts.host, port: opts.port });
  let buf = '';
  let peer = null, local = null;
  sock.on('connect', () => {
    peer = addrOf(sock, 'peer');
    local = addrOf(sock, 'local');
    if (!opts.read) {
      sock.destroy();
      finish({ ok: true, peer, local });
    }
  });
  sock.on('data', (c) => {
    buf += c.toString('utf8');
    const nl = buf.indexOf('\n');
    if (nl >= 0) {
      const line = buf.slice(0, nl);
      const m = /^peer (.*):(\d+)$/.exec(line);
      sock.destroy();
      finish({ ok: true, peer, local, line, serverSawPeer: m ? { address: m[1], port: Number(m[2]) } : null });
    }
  });
  sock.on('end', () => finish({ ok: false, peer, local, error: { message: 'closed before a line was received' }, partial: buf }));
  sock.on('error', (err) => finish({ ok: false, peer, local, error: errInfo(err) }));
}

function modeHttp() {
  const req = http.request(opts.url, { method: opts.method || 'GET', agent: false, timeout: opts.timeout }, (res) => {
    const peer = addrOf(res.socket, 'peer');
    const chunks = [];
    res.on('data', (c) => chunks.push(c));
    res.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      let body = text;
      try { body = JSON.parse(text); } catch { /* keep text */ }
      finish({ ok: res.statusCode === 200, status: res.statusCode, peer, body });
    });
    res.on('error', (err) => finish({ ok: false, status: res.statusCode, error: errInfo(err) }));
  });
  req.on('error', (err) => finish({ ok: false, error: errInfo(err) }));
  req.end();
}

function modeBulk() {
  const total = opts.bytes;
  if (!Number.isFinite(total) || total < 0) throw new Error('bulk needs --bytes N');
  const fill = makePrng(opts.seed);
  const hash = crypto.createHash('sha256');
  const sock = net.connect({ host: opts.host, port: opts.port, allowHalfOpen: true });
  const chunk = Buffer.alloc(64 * 1024);
  let sent = 0;
  let peer = null;
  let writeDoneMs = null;
  const pump = () => {
    while (sent < total) {
      const n = Math.min(chunk.length, total - sent);
      fill(chunk);
      const piece = Buffer.from(chunk.subarray(0, n));
      hash.update(piece);
      sent += n;
      if (!sock.write(piece)) {
        sock.once('drain', pump);
        return;
      }
    }
    writeDoneMs = Math.round(elapsedMs());
    sock.end();
  };
  sock.on('connect', () => {
    peer = addrOf(sock, 'peer');
    pump();
  });
  readAll(sock, (buf) => {
    const text = buf.toString('utf8').trim();
    let reply = null;
    try { reply = JSON.parse(text); } catch { /* reported below */ }
    const sha256 = hash.digest('hex');
    const match = !!reply && reply.sha256 === sha256 && reply.bytes === total;
    const secs = elapsedMs() / 1000;
    finish({ ok: match, sentBytes: sent, sha256, reply, replyText: reply ? undefined : text.slice(0, 512), match, peer, writeDoneMs, mbps: Math.round((total * 8) / 1e6 / secs) });
  });
  sock.on('error', (err) => finish({ ok: false, sentBytes: sent, peer, error: errInfo(err) }));
}

function modeGarbage() {
  let payload;
  if (opts.data !== undefined) payload = Buffer.from(opts.data.replace(/\\r/g, '\r').replace(/\\n/g, '\n'), 'utf8');
  else {
    payload = Buffer.alloc(opts.bytes || 4096);
    makePrng(opts.seed)(payload);
  }
  const sock = net.connect({ host: opts.host, port: opts.port, allowHalfOpen: false });
  let connected = false;
  let received = 0;
  const head = [];
  sock.on('connect', () => {
    connected = true;
    sock.write(payload);
  });
  sock.on('data', (c) => {
    if (received < 64) head.push(c.subarray(0, 64 - received));
    received += c.length;
  });
  const report = (how, err) => finish({
    ok: true, connected, closedBy: how, receivedBytes: received,
    receivedHead: Buffer.concat(head).toString('latin1'), error: errInfo(err),
  });
  sock.on('close', () => report('server'));
  sock.on('error', (err) => report('error', err));
}

function modeTlsAbort() {
  // Capture a genuine ClientHello by handshaking against a throwaway local listener.
  const capture = net.createServer((s) => {
    s.once('data', (hello) => {
      s.destroy();
      capture.close();
      send(hello);
    });
  });
  capture.listen(0, '127.0.0.1', () => {
    const t = tls.connect({ host: '127.0.0.1', port: capture.address().port, rejectUnauthorized: false, ALPNProtocols: ['h2'] });
    t.on('error', () => {});
  });
  function send(hello) {
    const sock = net.connect({ host: opts.host, port: opts.port });
    let connected = false;
    sock.on('connect', () => {
      connected = true;
      sock.write(hello);
      setTimeout(() => { sock.destroy(); finish({ ok: true, connected, gotServerBytes: false }); }, 2000);
    });
    sock.once('data', (c) => {
      sock.destroy();
      finish({ ok: true, connected, gotServerBytes: true, firstByte: c[0] });
    });
    sock.on('error', (err) => finish({ ok: true, connected, error: errInfo(err) }));
  }
}

function modeHbone() {
  const tlsOpts = {
    host: opts.host,
    port: opts.port,
    ALPNProtocols: ['h2'],
    rejectUnauthorized: !!opts.ca,
    // The server presents a SPIFFE URI SAN, not a host name: only the chain is checked here.
    checkServerIdentity: () => undefined,
  };
  if (opts.cert) tlsOpts.cert = fs.readFileSync(opts.cert);
  if (opts.key) tlsOpts.key = fs.readFileSync(opts.key);
  if (opts.ca) tlsOpts.ca = fs.readFileSync(opts.ca);
  let alpn = null;
  let secure = false;
  let serverSan = null;
  const session = http2.connect(`https://${opts.host}:${opts.port}`, {
    createConnection: () => {
      const s = tls.connect(tlsOpts);
      s.on('secureConnect', () => {
        secure = true;
        alpn = s.alpnProtocol;
        const san = (s.getPeerCertificate() || {}).subjectaltname || '';
        serverSan = (san.match(/URI:([^,\s]+)/) || [])[1] || null;
      });
      return s;
    },
  });
  session.on('error', (err) => finish({ ok: false, secure, alpn, error: errInfo(err) }));
  const req = session.request({ ':method': 'CONNECT', ':authority': opts.authority }, { endStream: false });
  req.on('response', (headers) => {
    const status = Number(headers[':status']);
    if (status !== 200 || opts.send === undefined) {
      req.close();
      session.close();
      finish({ ok: status === 200, secure, alpn, status, serverSan });
      return;
    }
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      session.close();
      finish({ ok: true, secure, alpn, status, serverSan, received: Buffer.concat(chunks).toString('utf8').slice(0, 4096) });
    });
    req.end(opts.send);
  });
  req.on('error', (err) => finish({ ok: false, secure, alpn, error: errInfo(err) }));
  req.on('close', () => finish({ ok: false, secure, alpn, error: { message: `stream closed (rst code ${req.rstCode})` } }));
}

let opts;
try {
  opts = parseArgs(process.argv.slice(2));
} catch (err) {
  process.stderr.write(`${err.message}\n${USAGE}\n`);
  process.exit(64);
}
setTimeout(() => finish({ ok: false, error: { message: `timeout after ${opts.timeout} ms`, code: 'ETIMEOUT' } }), opts.timeout);
const modes = { tcp: modeTcp, peer: modePeer, http: modeHttp, bulk: modeBulk, garbage: modeGarbage, 'tls-abort': modeTlsAbort, hbone: modeHbone };
const run = modes[opts.mode];
if (!run) {
  process.stderr.write(`unknown mode ${opts.mode}\n${USAGE}\n`);
  process.exit(64);
}
try {
  run();
} catch (err) {
  finish({ ok: false, error: errInfo(err) });
}
