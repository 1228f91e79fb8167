#!/usr/bin/env node
// Pod app for the TrafficShaping e2e tests: bursts of new echo connections or HTTP requests; prints one JSON line with every outcome.
'use strict';
const net = require('net');
const http = require('http');

const USAGE = `usage: shaping-client.js MODE [options]
  conns      --host H --port P --count N             N echo connections one after another: ok | reset | refused | timeout | other
  http       --url URL --count N [--new-conn] [--header NAME:VALUE]...
                                                     N GETs one after another: status and the rate-limit headers of each
common: --timeout MS per connection or request (default 5000)`;

const opts = { mode: process.argv[2], count: 1, timeout: 5000, newConn: false, headers: {} };
const argv = process.argv.slice(3);
for (let i = 0; i < argv.length; i++) {
  const next = () => argv[++i];
  switch (argv[i]) {
    case '--host': opts.host = next(); break;
    case '--port': opts.port = Number(next()); break;
    case '--count': opts.count = Number(next()); break;
    case '--url': opts.url = next(); break;
    case '--timeout': opts.timeout = Number(next()); break;
    case '--new-conn': opts.newConn = true; break;
    case '--header': { const h = next(); const i = h.indexOf(':'); opts.headers[h.slice(0, i).trim()] = h.slice(i + 1).trim(); break; }
    default: process.stderr.write(`${USAGE}\n`); process.exit(2);
  }
}
if (!(opts.count >= 1 && opts.count <= 500)) {
  process.stderr.write(`${USAGE}\n(count 1-500)\n`);
  process.exit(2);
}

/** One echo connection: connect, write a line, half-close, read the echo to EOF. */
function echoOnce(tag) {
  return new Promise((resolve) => {
    const line = `shaping ${tag} ${process.pid}\n`;
    let got = '';
    let connected = false;
    const sock = net.connect({ host: opts.host, port: opts.port, allowHalfOpen: true });
    const timer = setTimeout(() => finish('timeout'), opts.timeout);
    function finish(outcome, code) {
      clearTimeout(timer);
      sock.destroy();
      resolve({ outcome, connected, ...(code ? { code } : {}) });
    }
    sock.setEncoding('utf8');
    sock.on('connect', () => {
      connected = true;
      sock.end(line);
    });
    sock.on('data', (d) => (got += d));
    sock.on('end', () => finish(got === line ? 'ok' : got === '' ? 'reset' : 'other'));
    sock.on('error', (e) => finish(e.code === 'ECONNRESET' || e.code === 'EPIPE' ? 'reset' : e.code === 'ECONNREFUSED' ? 'refused' : 'other', e.code));
  });
}

const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });

function getOnce() {
  return new Promise((resolve) => {
    const req = http.get(opts.url, { agent: opts.newConn ? false : agent, timeout: opts.timeout, headers: opts.headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (body += d));
      res.on('end', () => {
        const h = res.headers;
        resolve({ status: res.statusCode, retryAfter: h['retry-after'], policy: h['ratelimit-policy'], ratelimit: h.ratelimit, body: body.slice(0, 200) });
      });
      res.on('error', (e) => resolve({ error: e.code || e.message }));
    });
    req.on('timeout', () => req.destroy(Object.assign(new Error('timeout'), { code: 'TIMEOUT' })));
    req.on('error', (e) => resolve({ error: e.code || e.message }));
  });
}

async function main() {
  if (opts.mode === 'conns') {
    const results = [];
    for (let i = 0; i < opts.count; i++) results.push(await echoOnce(i));
    return { outcomes: results.map((r) => r.outcome), results };
  }
  if (opts.mode === 'http') {
    const results = [];
    for (let i = 0; i < opts.count; i++) results.push(await getOnce());
    const statuses = {};
    for (const r of results) statuses[r.status ?? r.error] = (statuses[r.status ?? r.error] || 0) + 1;
    return { statuses, results };
  }
  process.stderr.write(`${USAGE}\n`);
  process.exit(2);
}

main().then(
  (r) => process.stdout.write(`${JSON.stringify({ mode: opts.mode, ...r })}\n`, () => process.exit(0)),
  (e) => process.stdout.write(`${JSON.stringify({ mode: opts.mode, error: String(e && e.stack) })}\n`, () => process.exit(1)),
);
