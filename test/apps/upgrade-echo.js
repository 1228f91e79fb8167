#!/usr/bin/env node
// Pod app for upgrade tests: HTTP/1.1 server whose /ws* path accepts an Upgrade (101, WebSocket-style handshake) and echoes raw bytes, writing "bye <pod>\n" after the client's FIN; other paths answer JSON {pod, url}.
'use strict';
const crypto = require('crypto');
const http = require('http');

const WS_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

/** The server, not listening yet: require() it from tests, or run this file (--port, --host, --pod). */
function createServer(pod) {
  const server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ pod, url: req.url })));
  });
  server.on('upgrade', (req, socket, head) => {
    socket.on('error', () => undefined);
    if (!req.url.startsWith('/ws')) {
      const body = `no upgrade on ${req.url}\n`;
      socket.end(`HTTP/1.1 403 Forbidden\r\ncontent-type: text/plain\r\ncontent-length: ${body.length}\r\nconnection: close\r\n\r\n${body}`);
      return;
    }
    const key = String(req.headers['sec-websocket-key'] || '');
    const accept = crypto.createHash('sha1').update(key + WS_GUID).digest('base64');
    socket.allowHalfOpen = true;
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: ${req.headers.upgrade}\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\nX-Pod: ${pod}\r\n\r\n`);
    if (head.length > 0) socket.write(head);
    socket.on('data', (d) => socket.write(d));
    socket.on('end', () => socket.end(`bye ${pod}\n`));
  });
  return server;
}

module.exports = { createServer };

if (require.main === module) {
  const opts = { port: 8080, host: '0.0.0.0', pod: '' };
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--port') opts.port = Number(argv[++i]);
    else if (a === '--host') opts.host = argv[++i];
    else if (a === '--pod') opts.pod = argv[++i];
    else throw new Error(`upgrade-echo: unknown argument ${a}`);
  }
  const server = createServer(opts.pod);
  server.listen(opts.port, opts.host, () => process.stdout.write(JSON.stringify({ listening: server.address().port, app: 'upgrade-echo', pod: opts.pod }) + '\n'));
  process.on('SIGTERM', () => server.close(() => process.exit(0)));
}
