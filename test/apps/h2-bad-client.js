#!/usr/bin/env node
// Client app for bad-input tests: sends the HTTP/2 preface, an empty SETTINGS and one invalid frame (--kind settings-size | data-stream0 | bad-hpack), then prints one JSON line {goaway, frames, closedByServer}.
'use strict';
const net = require('net');

const opts = { host: '', port: 80, kind: 'settings-size', timeoutMs: 5000 };
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
  const a = argv[i];
  if (a === '--host') opts.host = argv[++i];
  else if (a === '--port') opts.port = Number(argv[++i]);
  else if (a === '--kind') opts.kind = argv[++i];
  else if (a === '--timeout-ms') opts.timeoutMs = Number(argv[++i]);
  else throw new Error(`h2-bad-client: unknown argument ${a}`);
}

function frame(type, flags, streamId, payload) {
  const h = Buffer.alloc(9);
  h.writeUIntBE(payload.length, 0, 3);
  h[3] = type;
  h[4] = flags;
  h.writeUInt32BE(streamId, 5);
  return Buffer.concat([h, payload]);
}

const BAD = {
  'settings-size': frame(4, 0, 0, Buffer.alloc(5)),
  'data-stream0': frame(0, 0, 0, Buffer.from('abc')),
  'bad-hpack': frame(1, 5, 1, Buffer.from([0xff, 0xff, 0xff, 0xff])),
};
if (!BAD[opts.kind]) throw new Error(`h2-bad-client: unknown --kind ${opts.kind}`);

const chunks = [];
let closedByServer = false;
const sock = net.connect({ host: opts.host, port: opts.port, allowHalfOpen: true }, () => {
  sock.write(Buffer.concat([Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1'), frame(4, 0, 0, Buffer.alloc(0)), BAD[opts.kind]]));
});
const timer = setTimeout(() => sock.destroy(), opts.timeoutMs);
sock.on('data', (d) => chunks.push(d));
sock.on('end', () => {
  closedByServer = true;
  sock.end();
});
sock.on('error', () => undefined);
sock.on('close', () => {
  clearTimeout(timer);
  const got = Buffer.concat(chunks);
  const frames = [];
  let goaway = null;
  for (let off = 0; off + 9 <= got.length; off += 9 + got.readUIntBE(off, 3)) {
    const type = got[off + 3];
    frames.push(type);
    if (type === 7 && off + 17 <= got.length) goaway = got.readUInt32BE(off + 13);
  }
  process.stdout.write(JSON.stringify({ goaway, frames, closedByServer }) + '\n');
});
