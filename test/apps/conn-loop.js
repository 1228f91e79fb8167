#!/usr/bin/env node
// Pod app for restart/drain e2e tests: new echo connections at a fixed rate for a bounded time (each checked byte for byte, failures classified: refused, reset, timeout) and optionally one long-lived echo stream (sha256 both ways); one JSON line at the end, progress lines meanwhile.
'use strict';
const net = require('net');
const crypto = require('crypto');

const USAGE = `usage: conn-loop.js --host H --port P [--rate N/s] [--seconds S] [--long-seconds S] [--timeout MS]
  new connections: --rate per second for --seconds, each writes a unique line, half-closes and reads the echo
  --long-seconds S: also one connection kept open for S seconds, writing 16 KiB every 20 ms, echo compared by sha256`;

const opts = { rate: 50, seconds: 5, longSeconds: 0, timeout: 15000 };
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
  const next = () => argv[++i];
  switch (argv[i]) {
    case '--host': opts.host = next(); break;
    case '--port': opts.port = Number(next()); break;
    case '--rate': opts.rate = Number(next()); break;
    case '--seconds': opts.seconds = Number(next()); break;
    case '--long-seconds': opts.longSeconds = Number(next()); break;
    case '--timeout': opts.timeout = Number(next()); break;
    default: process.stderr.write(`${USAGE}\n`); process.exit(2);
  }
}
if (!opts.host || !opts.port || !(opts.rate > 0) || !(opts.seconds > 0) || opts.rate * opts.seconds > 5000) {
  process.stderr.write(`${USAGE}\n(at most 5000 connections)\n`);
  process.exit(2);
}

const counts = { started: 0, ok: 0, refused: 0, reset: 0, timeout: 0, mismatch: 0, other: 0 };
const errors = [];
const start = Date.now();

/** One connection: unique payload, half-close, read to EOF, compare. Resolves with its outcome. */
function one(i) {
  return new Promise((resolve) => {
    const payload = `conn-${i}-${crypto.randomBytes(12).toString('hex')}\n`;
    const sock = net.connect({ host: opts.host, port: opts.port });
    const chunks = [];
    let done = false;
    const finish = (outcome, detail) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      counts[outcome]++;
      if (outcome !== 'ok' && errors.length < 20) errors.push({ i, outcome, detail, atMs: Date.now() - start });
      sock.destroy();
      resolve();
    };
    const timer = setTimeout(() => finish('timeout', 'no echo in time'), opts.timeout);
    sock.on('connect', () => sock.end(payload));
    sock.on('data', (d) => chunks.push(d));
    sock.on('end', () => finish(Buffer.concat(chunks).toString() === payload ? 'ok' : 'mismatch', Buffer.concat(chunks).toString().slice(0, 80)));
    sock.on('error', (e) => finish(e.code === 'ECONNREFUSED' ? 'refused' : e.code === 'ECONNRESET' || e.code === 'EPIPE' ? 'reset' : 'other', e.code || e.message));
  });
}

/** The long-lived stream: writes for longSeconds, then half-closes; sha256 of what was sent and what came back. */
function longStream() {
  return new Promise((resolve) => {
    const sent = crypto.createHash('sha256');
    const recv = crypto.createHash('sha256');
    let sentBytes = 0;
    let recvBytes = 0;
    let timer;
    let result;
    const sock = net.connect({ host: opts.host, port: opts.port });
    const end = (outcome, detail) => {
      if (result) return;
      clearInterval(timer);
      result = { outcome, detail, sentBytes, receivedBytes: recvBytes, sentSha256: sent.digest('hex'), receivedSha256: recv.digest('hex'), ms: Date.now() - start };
      sock.destroy();
      resolve(result);
    };
    sock.on('connect', () => {
      const until = Date.now() + opts.longSeconds * 1000;
      timer = setInterval(() => {
        if (Date.now() >= until) {
          clearInterval(timer);
          sock.end();
          return;
        }
        const chunk = crypto.randomBytes(16 * 1024);
        sent.update(chunk);
        sentBytes += chunk.length;
        sock.write(chunk);
      }, 20);
    });
    sock.on('data', (d) => {
      recv.update(d);
      recvBytes += d.length;
    });
    sock.on('end', () => end('ended'));
    sock.on('error', (e) => end('error', e.code || e.message));
    setTimeout(() => end('timeout'), opts.longSeconds * 1000 + opts.timeout).unref();
  });
}

async function main() {
  const long = opts.longSeconds > 0 ? longStream() : Promise.resolve(undefined);
  const pending = [];
  const total = Math.round(opts.rate * opts.seconds);
  const interval = 1000 / opts.rate;
  for (let i = 0; i < total; i++) {
    // Paced against the start time, not the previous tick, so a slow tick does not lower the rate.
    const due = start + i * interval;
    const wait = due - Date.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    counts.started++;
    pending.push(one(i));
    if (i % opts.rate === 0) process.stdout.write(`${JSON.stringify({ progress: { ...counts }, atMs: Date.now() - start })}\n`);
  }
  await Promise.all(pending);
  const longResult = await long;
  process.stdout.write(`${JSON.stringify({ result: counts, errors, long: longResult, ms: Date.now() - start })}\n`);
}
main().catch((e) => {
  process.stdout.write(`${JSON.stringify({ error: String(e && e.stack || e) })}\n`);
  process.exit(1);
});
