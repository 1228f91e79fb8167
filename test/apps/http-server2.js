#!/usr/bin/env node
// Pod app for e2e traffic tests: HTTP server answering JSON {pod, method, url, peer}, optionally failing (--fail STATUS) or slow (--delay MS).
'use strict';
const http = require('http');

function parseArgs(argv) {
  const opts = { port: 8080, host: '0.0.0.0', pod: '', fail: 0, delay: 0 };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--port') opts.port = Number(argv[++i]);
    else if (a === '--host') opts.host = argv[++i];
    else if (a === '--pod') opts.pod = argv[++i];
    else if (a === '--fail') opts.fail = Number(argv[++i]);
    else if (a === '--delay') opts.delay = Number(argv[++i]);
    else throw new Error(`http-server2: unknown argument ${a}`);
  }
  return opts;
}

const opts = parseArgs(process.argv.slice(2));
let inFlight = 0;
let maxInFlight = 0;
const server = http.createServer((req, res) => {
  inFlight++;
  maxInFlight = Math.max(maxInFlight, inFlight);
  req.resume();
  req.on('end', () => {
    const body = JSON.stringify({ pod: opts.pod, method: req.method, url: req.url, peer: `${req.socket.remoteAddress}:${req.socket.remotePort}`, maxInFlight });
    const send = () => {
      inFlight--;
      res.writeHead(opts.fail || 200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    };
    if (opts.delay > 0) setTimeout(send, opts.delay);
    else send();
  });
});
server.on('error', (err) => {
  process.stdout.write(JSON.stringify({ error: String(err && err.message) }) + '\n');
  process.exit(1);
});
server.listen(opts.port, opts.host, () => {
  process.stdout.write(JSON.stringify({ listening: server.address().port, app: 'http2', pod: opts.pod }) + '\n');
});
process.on('SIGTERM', () => process.exit(0));
