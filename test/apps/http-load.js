#!/usr/bin/env node
// Pod app for e2e traffic tests: N HTTP requests at a fixed concurrency over keep-alive; prints one JSON line with counts by status, pod and overload reason.
'use strict';
const http = require('http');

function parseArgs(argv) {
  const opts = { url: '', count: 1, concurrency: 1, headers: {}, timeout: 20000, keyHeader: '' };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--url') opts.url = argv[++i];
    else if (a === '--count') opts.count = Number(argv[++i]);
    else if (a === '--concurrency') opts.concurrency = Number(argv[++i]);
    else if (a === '--header') {
      const [k, ...v] = argv[++i].split(':');
      opts.headers[k.trim().toLowerCase()] = v.join(':').trim();
    } else if (a === '--timeout') opts.timeout = Number(argv[++i]);
    else throw new Error(`http-load: unknown argument ${a}`);
  }
  if (!opts.url) throw new Error('http-load: --url is required');
  return opts;
}

const opts = parseArgs(process.argv.slice(2));
const agent = new http.Agent({ keepAlive: true, maxSockets: opts.concurrency });
const result = { statuses: {}, pods: {}, overload: {}, errors: {}, durationsMs: [], count: 0 };
const started = Date.now();

function one() {
  return new Promise((resolve) => {
    const t0 = Date.now();
    const req = http.get(opts.url, { agent, headers: opts.headers, timeout: opts.timeout }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        result.statuses[res.statusCode] = (result.statuses[res.statusCode] || 0) + 1;
        const reason = res.headers['x-smesh-overload'];
        if (reason) result.overload[reason] = (result.overload[reason] || 0) + 1;
        try {
          const pod = JSON.parse(Buffer.concat(chunks).toString()).pod;
          if (pod) result.pods[pod] = (result.pods[pod] || 0) + 1;
        } catch {
          /* not JSON: a proxy-made reply */
        }
        result.durationsMs.push(Date.now() - t0);
        resolve();
      });
      res.on('error', (e) => {
        result.errors[e.code || e.message] = (result.errors[e.code || e.message] || 0) + 1;
        resolve();
      });
    });
    req.on('timeout', () => req.destroy(Object.assign(new Error('timeout'), { code: 'ETIMEOUT' })));
    req.on('error', (e) => {
      result.errors[e.code || e.message] = (result.errors[e.code || e.message] || 0) + 1;
      resolve();
    });
  });
}

async function worker(n) {
  for (let i = 0; i < n; i++) await one();
}

(async () => {
  const per = Math.floor(opts.count / opts.concurrency);
  const extra = opts.count % opts.concurrency;
  await Promise.all(Array.from({ length: opts.concurrency }, (_, i) => worker(per + (i < extra ? 1 : 0))));
  result.count = opts.count;
  result.ms = Date.now() - started;
  if (result.durationsMs.length > 50) result.durationsMs = result.durationsMs.slice(0, 50);
  process.stdout.write(JSON.stringify(result) + '\n', () => process.exit(0));
})();
