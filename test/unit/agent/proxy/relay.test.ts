// The TCP⇄TCP relay: byte counts, half-close in both directions, reset propagation.
import { createHash, randomBytes } from 'node:crypto';
import * as net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { relay, type Relay } from '../../../../agent/proxy/relay';
import { listen, readAll } from '../../fixtures/proxy';

/** client ⇄ [accepted | relay | upstream] ⇄ server, all on 127.0.0.1. */
async function chain(): Promise<{ client: net.Socket; server: net.Socket; upstream: net.Socket; r: Relay; counters: { received: number; sent: number }; close: () => Promise<void> }> {
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
  let upstream!: net.Socket;
  const relayed = new Promise<void>((res) => {
    front.once('connection', (accepted: net.Socket) => {
      const up = net.connect({ host: '127.0.0.1', port: backendPort, allowHalfOpen: true });
      upstream = up;
      up.once('connect', () => {
        r = relay(accepted, up, counters);
        res();
      });
    });
  });
  const client = net.connect({ host: '127.0.0.1', port: frontPort, allowHalfOpen: true });
  client.on('error', () => undefined);
  await Promise.all([relayed, gotServer]);
  return { client, server: serverSide, upstream, r, counters, close: async () => undefined };
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

  it('stops reading a source whose destination does not take data (bounded buffer), then delivers every byte in order', async () => {
    await setup();
    const { client, server, upstream, r } = await chain();
    server.pause(); // the destination reads nothing: kernel buffers fill, then the relay must stop the source
    const total = 48 * 1024 * 1024;
    const block = randomBytes(256 * 1024);
    const sentHash = createHash('sha256');
    let written = 0;
    const pump = () => {
      while (written < total) {
        sentHash.update(block);
        written += block.length;
        if (!client.write(block)) return void client.once('drain', pump);
      }
      client.end();
    };
    pump();
    // Wait until the chain is stalled: nothing relayed for 300 ms.
    let last = -1;
    for (let i = 0; i < 40 && r.aToB !== last; i++) {
      last = r.aToB;
      await new Promise((res) => setTimeout(res, 300));
    }
    expect(r.aToB).toBe(last);
    expect(r.aToB).toBeLessThan(total); // the source was paused: the relay did not swallow the whole upload
    expect(upstream.writableLength).toBeLessThanOrEqual(256 * 1024 + 64 * 1024); // what the relay holds in memory
    const gotHash = createHash('sha256');
    let got = 0;
    server.on('data', (d: Buffer) => {
      gotHash.update(d);
      got += d.length;
    });
    const ended = new Promise<void>((res) => server.once('end', () => res()));
    server.resume();
    await ended;
    expect(got).toBe(total);
    expect(gotHash.digest('hex')).toBe(sentHash.digest('hex'));
    server.end();
    expect((await r.done).outcome).toBe('closed');
  }, 30_000);
});
