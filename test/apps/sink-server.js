#!/usr/bin/env node
// Pod app for e2e tests: reads a connection to EOF, then replies with the sha256 and byte count of what it got (half-close aware).
'use strict';
const net = require('net');
const crypto = require('crypto');

function parseArgs(argv) {
  const opts = { port: 9001, host: '0.0.0.0' };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--port') opts.port = Number(argv[++i]);
    else if (a === '--host') opts.host = argv[++i];
    else throw new Error(`sink-server: unknown argument ${a}`);
  }
  return opts;
}

const opts = parseArgs(process.argv.slice(2));
const server = net.createServer({ allowHalfOpen: true }, (sock) => {
  const hash = crypto.createHash('sha256');
  let bytes = 0;
  sock.on('data', (chunk) => {
    hash.update(chunk);
    bytes += chunk.length;
  });
  sock.on('end', () => {
    sock.end(JSON.stringify({ sha256: hash.digest('hex'), bytes, peer: `${sock.remoteAddress}:${sock.remotePort}` }) + '\n');
  });
  sock.on('error', () => sock.destroy());
});
server.on('error', (err) => {
  process.stdout.write(JSON.stringify({ error: String(err && err.message) }) + '\n');
  process.exit(1);
});
server.listen(opts.port, opts.host, () => {
  process.stdout.write(JSON.stringify({ listening: server.address().port, app: 'sink' }) + '\n');
});
process.on('SIGTERM', () => process.exit(0));
