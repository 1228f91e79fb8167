#!/usr/bin/env node
// Client app for upgrade tests: sends a WebSocket-style Upgrade request, exchanges raw messages over the 101 tunnel, half-closes and waits for the server's last words; prints one JSON line {status, pod, echoed, last, error}.
'use strict';
const net = require('net');

function parseArgs(argv) {
  const opts = { host: '', port: 80, path: '/ws', messages: 5, timeoutMs: 10_000 };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--host') opts.host = argv[++i];
    else if (a === '--port') opts.port = Number(argv[++i]);
    else if (a === '--path') opts.path = argv[++i];
    else if (a === '--messages') opts.messages = Number(argv[++i]);
    else if (a === '--timeout-ms') opts.timeoutMs = Number(argv[++i]);
    else throw new Error(`upgrade-client: unknown argument ${a}`);
  }
  if (!opts.host) throw new Error('upgrade-client: --host is required');
  return opts;
}

const opts = parseArgs(process.argv.slice(2));
const result = { status: 0, pod: '', echoed: 0, last: '', error: null };
let buf = '';
let headDone = false;
let expected = '';
let sent = 0;
const sock = net.connect({ host: opts.host, port: opts.port, allowHalfOpen: true });
const timer = setTimeout(() => {
  result.error = 'timeout';
  sock.destroy();
}, opts.timeoutMs);

function sendNext() {
  if (sent === opts.messages) {
    sock.end();
    return;
  }
  const msg = `message ${sent} ${'x'.repeat(sent * 100)}|`;
  sent++;
  expected += msg;
  sock.write(msg);
}

sock.on('connect', () => {
  sock.write(`GET ${opts.path} HTTP/1.1\r\nhost: ${opts.host}\r\nconnection: Upgrade\r\nupgrade: websocket\r\nsec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`);
});
sock.on('data', (d) => {
  buf += d.toString('latin1');
  if (!headDone) {
    const end = buf.indexOf('\r\n\r\n');
    if (end < 0) return;
    const head = buf.slice(0, end);
    buf = buf.slice(end + 4);
    headDone = true;
    result.status = Number(head.split(' ')[1]);
    const pod = /\r\nx-pod: ([^\r]*)/i.exec(head);
    result.pod = pod ? pod[1] : '';
    if (result.status !== 101) return;
    sendNext();
  }
  if (result.status !== 101) return;
  while (sent <= opts.messages && buf.length >= expected.length && expected.length > 0 && result.echoed < sent) {
    if (!buf.startsWith(expected)) {
      result.error = `echo mismatch: ${JSON.stringify(buf.slice(0, 80))}`;
      sock.destroy();
      return;
    }
    result.echoed = sent;
    if (sent < opts.messages) sendNext();
    else {
      sendNext(); // half-close
      break;
    }
  }
});
sock.on('end', () => {
  if (result.status === 101) result.last = buf.slice(expected.length);
  else result.last = buf;
  sock.end();
});
sock.on('error', (err) => {
  result.error = err.message;
});
sock.on('close', () => {
  clearTimeout(timer);
  process.stdout.write(JSON.stringify(result) + '\n');
});
