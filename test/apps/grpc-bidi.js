#!/usr/bin/env node
// Pod app for the gRPC message-count e2e test: a bidirectional-streaming Chat server (answers with `reply` messages once the client half-closes) and a client that sends N messages and prints one JSON line.
'use strict';
const grpc = require('@grpc/grpc-js');

const json = { serialize: (o) => Buffer.from(JSON.stringify(o)), deserialize: (b) => JSON.parse(b.toString()) };
const SERVICE = {
  Chat: { path: '/smesh.test.Chat/Chat', requestStream: true, responseStream: true, requestSerialize: json.serialize, requestDeserialize: json.deserialize, responseSerialize: json.serialize, responseDeserialize: json.deserialize },
};

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(name);
  return i === -1 ? dflt : args[i + 1];
};

if (args[0] === 'server') {
  const server = new grpc.Server();
  server.addService(SERVICE, {
    Chat: (call) => {
      let got = 0;
      let reply = 1;
      call.on('data', (m) => {
        got++;
        if (typeof m.reply === 'number') reply = m.reply;
      });
      call.on('end', () => {
        for (let i = 0; i < reply; i++) call.write({ i, got });
        call.end();
      });
    },
  });
  server.bindAsync(`${opt('--host', '0.0.0.0')}:${opt('--port', '9090')}`, grpc.ServerCredentials.createInsecure(), (err, port) => {
    if (err) {
      process.stdout.write(JSON.stringify({ error: err.message }) + '\n');
      process.exit(1);
    }
    process.stdout.write(JSON.stringify({ listening: port, app: 'grpc-bidi' }) + '\n');
  });
  process.on('SIGTERM', () => process.exit(0));
} else if (args[0] === 'client') {
  const Client = grpc.makeGenericClientConstructor(SERVICE, 'Chat');
  const client = new Client(opt('--target', ''), grpc.credentials.createInsecure());
  const send = Number(opt('--send', '3'));
  const reply = Number(opt('--reply', '2'));
  const result = { sent: send, received: [], error: null };
  const call = client.Chat({ deadline: new Date(Date.now() + 10_000) });
  call.on('data', (m) => result.received.push(m));
  call.on('error', (err) => {
    result.error = { code: err.code, details: err.details };
  });
  call.on('status', () => {
    client.close();
    process.stdout.write(JSON.stringify(result) + '\n', () => process.exit(0));
  });
  for (let i = 0; i < send; i++) call.write({ i, reply });
  call.end();
} else {
  throw new Error('usage: grpc-bidi.js server [--host H] --port P | client --target HOST:PORT [--send N] [--reply M]');
}
