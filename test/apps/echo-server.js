#!/usr/bin/env node
// Pod app for e2e tests: TCP echo server; with --peer it first tells the client who it sees as the peer.
'use strict';
const net = require('net');

function parseArgs(argv) {
  const opts = { port: 9000, host: '0.0.0.0', peer: false, name: '' };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--port') opts.port = Number(argv[++i]);
    else if (a === '--host') opts.host = argv[++i];
    else if (a === '--peer') opts.peer = true;
    else if (a === '--name') opts.name = argv[++i];
    else throw new Error(`echo-server: unknown argument ${a}`);
  }
  return opts;
}

const opts = parseArgs(process.argv.slice(2));
const server = net.createServer({ allowHalfOpen: true }, (sock) => {
  sock.on('error', () => sock.destroy());
  if (opts.peer) sock.write(`peer ${sock.remoteAddress}:${sock.remotePort}\n`);
  sock.pipe(sock);
});
server.on('error', (err) => {
  process.stdout.write(JSON.stringify({ error: String(err && err.message) }) + '\n');
  process.exit(1);
});
server.listen(opts.port, opts.host, () => {
  process.stdout.write(JSON.stringify({ listening: server.address().port, app: 'echo', peer: opts.peer, name: opts.name }) + '\n');
});
process.on('SIGTERM', () => process.exit(0));
