#!/usr/bin/env node
// Pod app for e2e tests: holds one kept-alive HTTP/1.1 or one TCP connection open and runs commands the test sends over a Unix socket (one JSON line in, one out).
'use strict';
const net = require('net');
const http = require('http');
const fs = require('fs');

const USAGE = `usage: held-client.js --control PATH (--url BASE | --host H --port P)
  --url BASE   one keep-alive HTTP/1.1 connection (maxSockets 1); command {"op":"http","method":"GET","path":"/x"}
  --host/--port one TCP connection, opened at once; commands {"op":"echo","data":"x"} and {"op":"state"}
answers: http {status, body, localPort, reused} or {error}; echo {ok, data, localPort} or {error, closed}; state {closed, error}`;

const opts = {};
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
  const a = argv[i];
  const v = argv[++i];
  if (v === undefined) throw new Error(USAGE);
  if (a === '--control') opts.control = v;
  else if (a === '--url') opts.url = v;
  else if (a === '--host') opts.host = v;
  else if (a === '--port') opts.port = Number(v);
  else if (a === '--timeout') opts.timeout = Number(v);
  else throw new Error(`unknown argument ${a}\n${USAGE}`);
}
if (!opts.control || (!opts.url && !opts.host)) throw new Error(USAGE);
const timeoutMs = opts.timeout || 10000;

const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
const seen = new WeakSet();

function httpRequest(cmd) {
  return new Promise((resolve) => {
    const started = Date.now();
    const req = http.request(`${opts.url}${cmd.path || '/'}`, { method: cmd.method || 'GET', agent }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode, body, localPort: req.socket && req.socket.localPort, reused: req.reusedSocket, ms: Date.now() - started }));
      res.on('error', (e) => resolve({ error: e.code || e.message, ms: Date.now() - started }));
    });
    req.on('socket', (s) => seen.add(s));
    req.setTimeout(timeoutMs, () => req.destroy(Object.assign(new Error('timeout'), { code: 'TIMEOUT' })));
    req.on('error', (e) => resolve({ error: e.code || e.message, reused: req.reusedSocket, ms: Date.now() - started }));
    req.end(cmd.body);
  });
}

let sock;
let closed = false;
let sockError = null;
let buffered = '';
let waiter = null;
function openTcp() {
  sock = net.connect({ host: opts.host, port: opts.port });
  sock.setEncoding('utf8');
  sock.on('data', (d) => {
    buffered += d;
    if (waiter) waiter();
  });
  sock.on('error', (e) => (sockError = e.code || e.message));
  sock.on('close', () => {
    closed = true;
    if (waiter) waiter();
  });
}

function echo(cmd) {
  return new Promise((resolve) => {
    if (closed) return resolve({ closed: true, error: sockError });
    buffered = '';
    const data = cmd.data || 'ping';
    const timer = setTimeout(() => done({ error: 'timeout', closed }), timeoutMs);
    const done = (r) => {
      clearTimeout(timer);
      waiter = null;
      resolve(r);
    };
    waiter = () => {
      if (buffered.length >= data.length) done({ ok: buffered === data, data: buffered, localPort: sock.localPort });
      else if (closed) done({ closed: true, error: sockError });
    };
    sock.write(data);
  });
}

async function run(cmd) {
  switch (cmd.op) {
    case 'http':
      return httpRequest(cmd);
    case 'echo':
      return echo(cmd);
    case 'state':
      return { closed, error: sockError, localPort: sock && sock.localPort };
    default:
      return { error: `unknown op ${cmd.op}` };
  }
}

try {
  fs.unlinkSync(opts.control);
} catch {
  /* not there */
}
const control = net.createServer((c) => {
  let line = '';
  c.setEncoding('utf8');
  c.on('data', (d) => {
    line += d;
    const nl = line.indexOf('\n');
    if (nl < 0) return;
    const text = line.slice(0, nl);
    line = line.slice(nl + 1);
    let cmd;
    try {
      cmd = JSON.parse(text);
    } catch {
      c.end(JSON.stringify({ error: 'bad command' }) + '\n');
      return;
    }
    run(cmd).then((r) => c.end(JSON.stringify(r) + '\n'));
  });
  c.on('error', () => undefined);
});
control.listen(opts.control, () => {
  if (opts.host) openTcp();
  const ready = () => process.stdout.write(JSON.stringify({ ready: true }) + '\n');
  if (sock) sock.once('connect', ready);
  else ready();
});
process.on('SIGTERM', () => {
  control.close();
  process.exit(0);
});
