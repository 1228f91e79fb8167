#!/usr/bin/env node
// Pod app for e2e traffic tests: a tiny gRPC server (unary Echo, server-streaming Count, Fail) or a client that calls it and prints one JSON line.
'use strict';
const grpc = require('@grpc/grpc-js');

const json = { serialize: (o) => Buffer.from(JSON.stringify(o)), deserialize: (b) => JSON.parse(b.toString()) };
const method = (name, responseStream) => ({
  path: `/smesh.test.Echo/${name}`,
  requestStream: false,
  responseStream,
  requestSerialize: json.serialize,
  requestDeserialize: json.deserialize,
  responseSerialize: json.serialize,
  responseDeserialize: json.deserialize,
});
const SERVICE = { Echo: method('Echo', false), Count: method('Count', true), Fail: method('Fail', false) };

function parseArgs(argv) {
  const opts = { mode: argv[0], port: 9090, pod: '', target: '', calls: 10, stream: 5 };
  for (let i = 1; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--port') opts.port = Number(argv[++i]);
    else if (a === '--pod') opts.pod = argv[++i];
    else if (a === '--target') opts.target = argv[++i];
    else if (a === '--calls') opts.calls = Number(argv[++i]);
    else if (a === '--stream') opts.stream = Number(argv[++i]);
    else throw new Error(`grpc-app: unknown argument ${a}`);
  }
  return opts;
}

const opts = parseArgs(process.argv.slice(2));

if (opts.mode === 'server') {
  const server = new grpc.Server();
  server.addService(SERVICE, {
    Echo: (call, cb) => cb(null, { pod: opts.pod, msg: call.request.msg }),
    Count: (call) => {
      for (let i = 0; i < call.request.n; i++) call.write({ pod: opts.pod, i });
      call.end();
    },
    Fail: (_call, cb) => cb({ code: grpc.status.NOT_FOUND, details: 'nothing here' }),
  });
  server.bindAsync(`0.0.0.0:${opts.port}`, grpc.ServerCredentials.createInsecure(), (err, port) => {
    if (err) {
      process.stdout.write(JSON.stringify({ error: err.message }) + '\n');
      process.exit(1);
    }
    process.stdout.write(JSON.stringify({ listening: port, app: 'grpc', pod: opts.pod }) + '\n');
  });
  process.on('SIGTERM', () => process.exit(0));
} else if (opts.mode === 'client') {
  const Client = grpc.makeGenericClientConstructor(SERVICE, 'Echo');
  const client = new Client(opts.target, grpc.credentials.createInsecure());
  const deadline = () => new Date(Date.now() + 10_000);
  const result = { unary: { ok: 0, errors: [] }, stream: { messages: 0, error: null }, fail: null, pods: {} };
  (async () => {
    for (let i = 0; i < opts.calls; i++) {
      await new Promise((resolve) => client.Echo({ msg: `m${i}` }, { deadline: deadline() }, (err, res) => {
        if (err) result.unary.errors.push({ code: err.code, details: err.details });
        else if (res.msg === `m${i}`) {
          result.unary.ok++;
          result.pods[res.pod] = (result.pods[res.pod] || 0) + 1;
        }
        resolve();
      }));
    }
    await new Promise((resolve) => {
      const call = client.Count({ n: opts.stream }, { deadline: deadline() });
      call.on('data', () => result.stream.messages++);
      call.on('error', (err) => {
        result.stream.error = { code: err.code, details: err.details };
        resolve();
      });
      call.on('end', resolve);
    });
    await new Promise((resolve) => client.Fail({}, { deadline: deadline() }, (err) => {
      result.fail = err ? { code: err.code, details: err.details } : null;
      resolve();
    }));
    client.close();
    process.stdout.write(JSON.stringify(result) + '\n', () => process.exit(0));
  })();
} else {
  throw new Error('usage: grpc-app.js server --port P --pod NAME | client --target HOST:PORT [--calls N] [--stream N]');
}
