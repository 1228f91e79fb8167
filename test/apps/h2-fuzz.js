#!/usr/bin/env node
// Fuzz client for e2e tests: N TLS sessions with a valid certificate that send malformed HTTP/2 (garbage, bad frames, rapid resets, vanishing peers) to an HBONE port; prints one JSON line {sessions, stuck, goaway}.
'use strict';
const fs = require('fs');
const tls = require('tls');

const opts = { host: '', port: 15008, sessions: 150, concurrency: 16, seed: 1, authority: '', perSessionMs: 15000 };
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
  const a = argv[i];
  const next = () => argv[++i];
  if (a === '--host') opts.host = next();
  else if (a === '--port') opts.port = Number(next());
  else if (a === '--cert') opts.cert = fs.readFileSync(next());
  else if (a === '--key') opts.key = fs.readFileSync(next());
  else if (a === '--ca') opts.ca = fs.readFileSync(next());
  else if (a === '--authority') opts.authority = next();
  else if (a === '--sessions') opts.sessions = Number(next());
  else if (a === '--concurrency') opts.concurrency = Number(next());
  else if (a === '--seed') opts.seed = Number(next());
  else throw new Error(`h2-fuzz: unknown argument ${a}`);
}

let seed = opts.seed >>> 0;
function random() {
  seed = (seed + 0x6d2b79f5) >>> 0;
  let t = seed;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const junk = (n) => Buffer.from(Array.from({ length: n }, () => Math.floor(random() * 256)));

function frame(type, flags, streamId, payload = Buffer.alloc(0)) {
  const h = Buffer.alloc(9);
  h.writeUIntBE(payload.length, 0, 3);
  h[3] = type;
  h[4] = flags;
  h.writeUInt32BE(streamId, 5);
  return Buffer.concat([h, payload]);
}
const u32 = (n) => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  return b;
};
const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
const settings = (pairs = []) => frame(4, 0, 0, Buffer.concat(pairs.map(([id, v]) => Buffer.concat([Buffer.from([id >> 8, id & 0xff]), u32(v)]))));
function connect(streamId) {
  const a = Buffer.from(opts.authority);
  const m = Buffer.from('CONNECT');
  return frame(1, 4, streamId, Buffer.concat([Buffer.from([0x02, m.length]), m, Buffer.from([0x01, a.length]), a]));
}

const goaway = {};
/** One session: resolves once the socket is closed (by the server, or by us), or after perSessionMs (then "stuck"). */
function session(kind) {
  return new Promise((resolve) => {
    const s = tls.connect({ host: opts.host, port: opts.port, cert: opts.cert, key: opts.key, ca: opts.ca, ALPNProtocols: ['h2'], minVersion: 'TLSv1.3', servername: '', checkServerIdentity: () => undefined, allowHalfOpen: true });
    let got = Buffer.alloc(0);
    let stuck = false;
    const guard = setTimeout(() => {
      stuck = true;
      s.destroy();
    }, opts.perSessionMs);
    s.on('error', () => undefined);
    s.on('data', (d) => {
      got = Buffer.concat([got, d]);
      for (let off = 0; off + 9 <= got.length; off += 9 + got.readUIntBE(off, 3)) {
        if (got[off + 3] === 1 && (got.readUInt32BE(off + 5) & 0x7fffffff) === 1) s.emit('answered');
      }
    });
    s.on('end', () => s.destroy()); // the server closed: done
    s.on('close', () => {
      clearTimeout(guard);
      for (let off = 0; off + 17 <= got.length; off += 9 + got.readUIntBE(off, 3)) {
        if (got[off + 3] === 7) goaway[got.readUInt32BE(off + 13)] = (goaway[got.readUInt32BE(off + 13)] || 0) + 1;
      }
      resolve(stuck);
    });
    const answered = () => new Promise((r) => s.once('answered', r));
    s.once('secureConnect', async () => {
      const send = (...p) => s.write(Buffer.concat(p));
      switch (kind) {
        case 0: send(PREFACE, settings(), junk(64 + Math.floor(random() * 512))); break;
        case 1: send(junk(200)); break;
        case 2: send(PREFACE, settings(), frame(4, 0, 0, Buffer.alloc(7))); s.end(); break;
        case 3: send(PREFACE, settings(), frame(0, 0, 0, junk(10))); break;
        case 4: send(PREFACE, settings(), frame(1, 4, 1, junk(8))); s.destroy(); break;
        case 5: send(PREFACE, settings(), frame(9, 4, 1, junk(4))); break;
        case 6: send(PREFACE, settings(), frame(8, 0, 0, u32(0x7fffffff))); break;
        case 7: send(PREFACE, settings([[4, 2 ** 31]])); s.end(); break;
        case 8: {
          send(PREFACE, settings());
          for (let i = 0; i < 150 && !s.destroyed; i += 10) {
            const parts = [];
            for (let id = 1 + 2 * i; id < 1 + 2 * (i + 10); id += 2) parts.push(connect(id), frame(3, 0, id, u32(8)));
            send(...parts);
            await new Promise((r) => setImmediate(r));
          }
          break;
        }
        case 9:
          send(PREFACE, settings(), connect(1));
          await answered();
          send(frame(0, 0, 1, Buffer.from('hi')), frame(1, 4, 3, junk(6)));
          s.end();
          break;
        case 10:
          send(PREFACE, settings(), connect(1), frame(0, 0, 1, Buffer.from('half')));
          await answered();
          s.destroy();
          break;
        default:
          send(PREFACE, settings(), connect(1));
          await answered();
          send(frame(Math.floor(random() * 10), Math.floor(random() * 256), Math.floor(random() * 4), junk(Math.floor(random() * 40))), junk(30));
          if (random() < 0.5) s.end();
      }
    });
  });
}

async function main() {
  let next = 0;
  let stuck = 0;
  const worker = async () => {
    while (next < opts.sessions) {
      const i = next++;
      if (await session(i % 12)) stuck++;
    }
  };
  await Promise.all(Array.from({ length: opts.concurrency }, worker));
  process.stdout.write(JSON.stringify({ sessions: opts.sessions, stuck, goaway }) + '\n');
}
main().catch((err) => {
  process.stdout.write(JSON.stringify({ error: String(err && err.stack || err) }) + '\n');
  process.exitCode = 1;
});
