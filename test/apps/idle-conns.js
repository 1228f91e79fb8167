#!/usr/bin/env node
// Pod app for fault e2e tests: opens --count echo connections in batches (each proven end to end by one echoed line), holds them idle, and closes them all on SIGUSR2; one JSON line after opening, one after closing.
'use strict';
const net = require('net');

const USAGE = `usage: idle-conns.js --host H --port P --count N [--batch B] [--timeout MS]
  opens N connections, B at a time; each writes one line and waits for its echo, then stays idle
  prints {"opened":…,"failed":…} once all are open (or failed); SIGUSR2 closes them (FIN) and prints {"closed":…}`;

const opts = { count: 0, batch: 500, timeout: 15000 };
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
  const v = argv[++i];
  switch (argv[i - 1]) {
    case '--host': opts.host = v; break;
    case '--port': opts.port = Number(v); break;
    case '--count': opts.count = Number(v); break;
    case '--batch': opts.batch = Number(v); break;
    case '--timeout': opts.timeout = Number(v); break;
    default: process.stderr.write(`${USAGE}\n`); process.exit(2);
  }
}
if (!opts.host || !(opts.port > 0) || !(opts.count > 0) || !(opts.batch > 0)) {
  process.stderr.write(`${USAGE}\n`);
  process.exit(2);
}

const out = (o) => process.stdout.write(`${JSON.stringify(o)}\n`);
const open = new Set();
const errors = {};
const start = Date.now();
let lostWhileIdle = 0;

/** One connection: a line out, its echo back; resolves true when it is established end to end. */
function one(i) {
  return new Promise((resolve) => {
    const line = `idle-${i}\n`;
    const sock = net.connect({ host: opts.host, port: opts.port });
    let got = '';
    let settled = false;
    const settle = (ok, code) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (!ok) {
        errors[code] = (errors[code] || 0) + 1;
        sock.destroy();
      }
      resolve(ok);
    };
    const timer = setTimeout(() => settle(false, 'ETIMEOUT'), opts.timeout);
    sock.setEncoding('utf8');
    sock.on('connect', () => sock.write(line));
    sock.on('data', (d) => {
      got += d;
      if (got === line) {
        open.add(sock);
        settle(true);
      } else if (got.length >= line.length) settle(false, 'EMISMATCH');
    });
    sock.on('error', (e) => settle(false, e.code || e.message));
    sock.on('close', () => {
      if (open.delete(sock) && !closing) lostWhileIdle++;
      settle(false, 'ECLOSED');
    });
  });
}

let closing = false;
async function main() {
  let failed = 0;
  for (let from = 0; from < opts.count; from += opts.batch) {
    const n = Math.min(opts.batch, opts.count - from);
    const results = await Promise.all(Array.from({ length: n }, (_, k) => one(from + k)));
    failed += results.filter((ok) => !ok).length;
  }
  out({ opened: open.size, failed, errors, ms: Date.now() - start });
}

process.on('SIGUSR2', () => {
  if (closing) return;
  closing = true;
  const t0 = Date.now();
  const held = open.size;
  const all = [...open].map((s) => new Promise((resolve) => {
    s.once('close', resolve);
    s.end();
  }));
  const timer = setTimeout(() => {
    out({ closed: held - open.size, left: open.size, lostWhileIdle, ms: Date.now() - t0, timeout: true });
    process.exit(1);
  }, opts.timeout);
  Promise.all(all).then(() => {
    clearTimeout(timer);
    out({ closed: held, left: 0, lostWhileIdle, ms: Date.now() - t0 });
    process.exit(0);
  });
});

main().catch((e) => {
  out({ error: String((e && e.stack) || e) });
  process.exit(1);
});
