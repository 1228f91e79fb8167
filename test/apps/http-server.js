#!/usr/bin/env node
// Pod app for e2e tests: HTTP server answering every request with JSON {pod, method, url, peer}.
'use strict';
const http = require('http');

function parseArgs(argv) {
  const opts = { port: 8080, host: '0.0.0.0', pod: '' };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--port') opts.port = Number(argv[++i]);
    else if (a === '--host') opts.host = argv[++i];
    else if (a === '--pod') opts.pod = argv[++i];
    else throw new Error(`http-server: unknown argument ${a}`);
  }
  return opts;
}

const opts = parseArgs(process.argv.slice(2));
const server = http.createServer((req, res) => {
  req.resume();
  req.on('end', () => {
    const body = JSON.stringify({
      pod: opts.pod,
      method: req.method,
      url: req.url,
      peer: `${req.socket.remoteAddress}:${req.socket.remotePort}`,
    });
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  });
});
server.on('error', (err) => {
  process.stdout.write(JSON.stringify({ error: String(err && err.message) }) + '\n');
  process.exit(1);
});
server.listen(opts.port, opts.host, () => {
  process.stdout.write(JSON.stringify({ listening: server.address().port, app: 'http', pod: opts.pod }) + '\n');
});
process.on('SIGTERM', () => process.exit(0));
