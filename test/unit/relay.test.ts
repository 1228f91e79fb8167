// The TCP⇄TCP relay: byte counts, half-close in both directions, reset propagation.
import * as net from 'net';
import { afterEach, describe, expect, it } from 'vitest';
import { relay, type Relay } from '../../agent/proxy/relay';
import { listen, readAll } from './proxy-fixtures';

/** client ⇄ [accepted | relay | upstream] ⇄ server, all on 127.0.0.1. */
async function chain(): Promise<{ client: net.Socket; server: net.Socket; r: Relay; counters: { received: number; sent: number }; close: () => Promise<void> }> {
  let serverSide!: net.Socket;
  const gotServer = new Promise<void>((res) => {
    backend.once('connection', (s: net.Socket) => {
      serverSide = s;
      s.on('error', () => undefined);
      res();
    });
  });
  const counters = { received: 0, sent: 0 };
  let r!: Relay;
  const relayed = new Promise<void>((res) => {
    front.once('connection', (accepted: net.Socket) => {
      const up = net.connect({ host: '127.0.0.1', port: backendPort, allowHalfOpen: true });
      up.once('connect', () => {
        r = relay(accepted, up, counters);
        res();
      });
    });
  });
  const client = net.connect({ host: '127.0.0.1', port: frontPort, allowHalfOpen: true });
  client.on('error', () => undefined);
  await Promise.all([relayed, gotServer]);
  return { client, server: serverSide, r, counters, close: async () => undefined };
}

let front: net.Server;
let backend: net.Server;
let frontPort: number;
let backendPort: number;

describe('relay (TCP ⇄ TCP)', () => {
  afterEach(async () => {
    await Promise.all([front, backend].map((s) => new Promise<void>((r) => s.close(() => r()))));
  });
  const setup = async () => {
    front = net.createServer({ allowHalfOpen: true });
    backend = net.createServer({ allowHalfOpen: true });
    frontPort = await listen(front);
    backendPort = await listen(backend);
  };

  it('forwards FIN each way separately and reports byte counts', async () => {
    await setup();
    const { client, server, r, counters } = await chain();
    const serverGot = readAll(server);
    client.end('request!');
    expect((await serverGot).toString()).toBe('request!');
    const clientGot = readAll(client);
    server.end('the response');
    expect((await clientGot).toString()).toBe('the response');
    const res = await r.done;
    expect(res).toMatchObject({ aToB: 8, bToA: 12, outcome: 'closed' });
    expect(counters).toEqual({ received: 8, sent: 12 });
  });

  it('turns a reset on one side into a reset on the other', async () => {
    await setup();
    const { client, server, r } = await chain();
    server.resume();
    const serverSaw = new Promise<string | undefined>((res) => server.once('error', (e: NodeJS.ErrnoException) => res(e.code)));
    client.resetAndDestroy();
    expect(await serverSaw).toBe('ECONNRESET');
    expect((await r.done).outcome).toBe('reset_a');
  });
});
