// HBONE sessions that misbehave at the HTTP/2 frame level (peers holding a valid certificate): the GOAWAY code on the wire, and every session and pod-side connection released after a fuzz burst.
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LocalCa } from '../../../../core/identity/local-ca';
import type { IdentityManager, UsableCert } from '../../../../agent/identity/manager';
import { nodeSpiffeId, workloadSpiffeId } from '../../../../core/identity/spiffe';
import { HboneClient } from '../../../../agent/proxy/hbone-client';
import { InboundProxy } from '../../../../agent/proxy/inbound-proxy';
import { MeshMetrics } from '../../../../agent/telemetry/metrics';
import { waitUntil } from '../../../helpers/logs';
import { parseMetrics, sum } from '../../../helpers/metrics';
import { seeded } from '../../../helpers/prng';
import { echoServer, identities, listen, meshCa, readAll, TD } from '../../fixtures/proxy';

const NODE = nodeSpiffeId(TD, 'node2');
const CLIENT = workloadSpiffeId(TD, 'default', 'client');

// HTTP/2 wire format (RFC 9113 §4.1, §6), enough to misbehave on purpose.
const FRAME = { DATA: 0, HEADERS: 1, RST_STREAM: 3, SETTINGS: 4, PING: 6, GOAWAY: 7, WINDOW_UPDATE: 8, CONTINUATION: 9 } as const;
const FLAG = { END_STREAM: 1, END_HEADERS: 4 } as const;
const CODE = { PROTOCOL_ERROR: 1, FLOW_CONTROL_ERROR: 3, FRAME_SIZE_ERROR: 6, CANCEL: 8, COMPRESSION_ERROR: 9, ENHANCE_YOUR_CALM: 11 } as const;
const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

function frame(type: number, flags: number, streamId: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const h = Buffer.alloc(9);
  h.writeUIntBE(payload.length, 0, 3);
  h[3] = type;
  h[4] = flags;
  h.writeUInt32BE(streamId, 5);
  return Buffer.concat([h, payload]);
}
function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  return b;
}
function settings(pairs: Array<[number, number]> = []): Buffer {
  return frame(FRAME.SETTINGS, 0, 0, Buffer.concat(pairs.map(([id, v]) => Buffer.concat([Buffer.from([id >> 8, id & 0xff]), u32(v)]))));
}
/** HPACK literal fields without indexing, names from the static table (:authority = 1, :method = 2). */
function connectHeaders(streamId: number, authority: string, flags: number = FLAG.END_HEADERS): Buffer {
  const a = Buffer.from(authority);
  const m = Buffer.from('CONNECT');
  return frame(FRAME.HEADERS, flags, streamId, Buffer.concat([Buffer.from([0x02, m.length]), m, Buffer.from([0x01, a.length]), a]));
}

interface Frame {
  readonly type: number;
  readonly flags: number;
  readonly streamId: number;
  readonly payload: Buffer;
}
function parseFrames(bytes: Buffer): Frame[] {
  const out: Frame[] = [];
  for (let off = 0; off + 9 <= bytes.length; ) {
    const len = bytes.readUIntBE(off, 3);
    if (off + 9 + len > bytes.length) break;
    out.push({ type: bytes[off + 3]!, flags: bytes[off + 4]!, streamId: bytes.readUInt32BE(off + 5) & 0x7fffffff, payload: bytes.subarray(off + 9, off + 9 + len) });
    off += 9 + len;
  }
  return out;
}

/** A TLS client holding a valid mesh certificate that speaks HTTP/2 frame by frame. */
class WireClient {
  readonly socket: tls.TLSSocket;
  private readonly chunks: Buffer[] = [];
  /** The server sent FIN (or the connection closed). */
  readonly serverDone: Promise<void>;
  readonly closed: Promise<void>;
  readonly ready: Promise<void>;

  constructor(port: number, cert: UsableCert, ca: string) {
    this.socket = tls.connect({
      host: '127.0.0.1',
      port,
      key: cert.keyPem,
      cert: cert.chainPem,
      ca,
      ALPNProtocols: ['h2'],
      minVersion: 'TLSv1.3',
      servername: '',
      checkServerIdentity: () => undefined,
      allowHalfOpen: true, // a net.connect option tls.connect passes on (missing from its ConnectionOptions type)
    } as tls.ConnectionOptions);
    this.socket.on('error', () => undefined);
    this.socket.on('data', (d: Buffer) => this.chunks.push(d));
    this.ready = new Promise((resolve, reject) => {
      this.socket.once('secureConnect', () => resolve());
      this.socket.once('close', () => reject(new Error('closed before the TLS handshake completed')));
    });
    this.ready.catch(() => undefined);
    this.serverDone = new Promise((resolve) => {
      this.socket.once('end', resolve);
      this.socket.once('close', resolve);
    });
    this.closed = new Promise((resolve) => this.socket.once('close', () => resolve()));
  }

  send(...parts: Buffer[]): void {
    this.socket.write(Buffer.concat(parts));
  }

  frames(): Frame[] {
    return parseFrames(Buffer.concat(this.chunks));
  }

  /** Resolves with the first frame that matches, or rejects once the server closed without one. */
  async waitFor(what: string, pred: (f: Frame) => boolean): Promise<Frame> {
    for (;;) {
      const hit = this.frames().find(pred);
      if (hit) return hit;
      const more = await Promise.race([new Promise<boolean>((r) => this.socket.once('data', () => r(true))), this.serverDone.then(() => false)]);
      if (!more) {
        const last = this.frames().find(pred);
        if (last) return last;
        throw new Error(`server closed without ${what}; frames: ${JSON.stringify(this.frames().map((f) => [f.type, f.streamId]))}`);
      }
    }
  }

  /** Waits for the server to close (bounded: a session the server keeps open fails the test, not its timeout). */
  async serverCloses(ms = 5000): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`the server kept the session open for ${ms} ms; frames: ${JSON.stringify(this.frames().map((f) => [f.type, f.streamId]))}`)), ms);
    });
    try {
      await Promise.race([this.serverDone, late]);
    } finally {
      clearTimeout(timer);
    }
  }

  goawayCode(): number | undefined {
    const g = this.frames().find((f) => f.type === FRAME.GOAWAY);
    return g ? g.payload.readUInt32BE(4) : undefined;
  }
}

function openFds(): number {
  return fs.readdirSync('/proc/self/fd').length;
}

describe('HBONE inbound: protocol errors release sessions and pod-side connections', () => {
  let ca: LocalCa;
  let cleanupCa: () => Promise<void>;
  let serverIds: IdentityManager;
  let clientIds: IdentityManager;
  let cert: UsableCert;
  let echo: ReturnType<typeof echoServer>;
  let echoPort: number;
  let inbound: InboundProxy;
  let port: number;
  let metrics: MeshMetrics;
  let authority: string;
  /** A pod that sends BLAST_BYTES as fast as the tunnel takes them. */
  let blaster: net.Server;
  let blasterPort: number;
  const BLAST_BYTES = 24 * 1024 * 1024;

  const count = async (name: string, labels: Record<string, string>) => sum(parseMetrics(await metrics.text()), name, labels);
  const liveSessions = () => (inbound as unknown as { sessions: Set<unknown> }).sessions.size;

  beforeAll(async () => {
    ({ ca, cleanup: cleanupCa } = await meshCa());
    serverIds = await identities(ca, NODE);
    clientIds = await identities(ca, nodeSpiffeId(TD, 'node1'), [CLIENT]);
    cert = clientIds.get(CLIENT)!;
    echo = echoServer();
    echoPort = await listen(echo.server);
    authority = `127.0.0.1:${echoPort}`;
    blaster = net.createServer((s) => {
      s.on('error', () => undefined);
      const chunk = Buffer.alloc(256 * 1024, 0x61);
      let left = BLAST_BYTES;
      const pump = () => {
        while (left > 0) {
          left -= chunk.length;
          if (!s.write(chunk)) return void s.once('drain', pump);
        }
        s.end();
      };
      pump();
    });
    blasterPort = await listen(blaster);
    metrics = new MeshMetrics();
    inbound = new InboundProxy({
      identities: serverIds,
      nodeId: NODE,
      listen: { host: '127.0.0.1', port: 0 },
      resolveLocal: (ip, p) => (ip === '127.0.0.1' && (p === echoPort || p === blasterPort) ? {} : undefined),
      metrics,
      // Shorter than the 2 s default so the test is quick (a shut session goes within 3 periods), long enough that a
      // healthy in-process session answers its PINGs while the burst keeps the event loop busy.
      livenessCheckMs: 250,
    });
    await inbound.start();
    port = inbound.address().port;
  });

  afterAll(async () => {
    await inbound?.close();
    await echo?.close();
    await new Promise<void>((r) => (blaster ? blaster.close(() => r()) : r()));
    clientIds?.close();
    serverIds?.close();
    await cleanupCa?.();
  });

  /** Opens a session whose stream 1 is a CONNECT to the echo server, answered 200 (a pod-side connection exists). */
  async function withOpenStream(): Promise<WireClient> {
    const c = new WireClient(port, cert, ca.trustBundlePem());
    await c.ready;
    c.send(PREFACE, settings(), connectHeaders(1, authority));
    await c.waitFor('the 200 on stream 1', (f) => f.type === FRAME.HEADERS && f.streamId === 1);
    return c;
  }

  const cases: Array<{ name: string; code: number; send: () => Buffer[] }> = [
    { name: 'bytes that are not an HTTP/2 preface', code: CODE.PROTOCOL_ERROR, send: () => [Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n')] },
    { name: 'a SETTINGS frame of 5 bytes', code: CODE.FRAME_SIZE_ERROR, send: () => [PREFACE, settings(), frame(FRAME.SETTINGS, 0, 0, Buffer.alloc(5))] },
    { name: 'DATA on stream 0', code: CODE.PROTOCOL_ERROR, send: () => [PREFACE, settings(), frame(FRAME.DATA, 0, 0, Buffer.from('abc'))] },
    {
      name: 'an undecodable header block',
      code: CODE.COMPRESSION_ERROR,
      send: () => [PREFACE, settings(), frame(FRAME.HEADERS, FLAG.END_HEADERS | FLAG.END_STREAM, 1, Buffer.from([0xff, 0xff, 0xff, 0xff]))],
    },
    { name: 'CONTINUATION without HEADERS', code: CODE.PROTOCOL_ERROR, send: () => [PREFACE, settings(), frame(FRAME.CONTINUATION, FLAG.END_HEADERS, 1, Buffer.from([0x82]))] },
    { name: 'SETTINGS_INITIAL_WINDOW_SIZE 2^31', code: CODE.FLOW_CONTROL_ERROR, send: () => [PREFACE, settings([[4, 2 ** 31]])] },
    { name: 'a connection window overflow', code: CODE.FLOW_CONTROL_ERROR, send: () => [PREFACE, settings(), frame(FRAME.WINDOW_UPDATE, 0, 0, u32(0x7fffffff))] },
  ];

  for (const c of cases) {
    it(`${c.name}: GOAWAY ${c.code}, then the session is closed`, async () => {
      const client = new WireClient(port, cert, ca.trustBundlePem());
      await client.ready;
      client.send(...c.send());
      const goaway = await client.waitFor('a GOAWAY', (f) => f.type === FRAME.GOAWAY);
      expect(goaway.payload.readUInt32BE(4)).toBe(c.code);
      // The peer keeps its side open and sends nothing more: the server must close on its own.
      await client.serverCloses();
      client.socket.destroy();
      await client.closed;
    });
  }

  it('a stream window overflow: RST_STREAM FLOW_CONTROL_ERROR on the stream, the session closed, the pod-side connection too', async () => {
    const client = await withOpenStream();
    expect(echo.sockets.size).toBeGreaterThan(0);
    client.send(frame(FRAME.WINDOW_UPDATE, 0, 1, u32(0x7fffffff)));
    const rst = await client.waitFor('RST_STREAM on stream 1', (f) => f.type === FRAME.RST_STREAM && f.streamId === 1);
    expect(rst.payload.readUInt32BE(0)).toBe(CODE.FLOW_CONTROL_ERROR);
    await client.serverCloses();
    client.socket.destroy();
    await waitUntil(() => echo.sockets.size === 0, 5000, 'pod-side connection closed');
  });

  it('rapid reset: GOAWAY ENHANCE_YOUR_CALM and the session closed, counted', async () => {
    const before = await count('smesh_hbone_session_errors_total', { direction: 'inbound', reason: 'rapid_reset' });
    const unreachableBefore = await count('smesh_refused_connections_total', { direction: 'inbound', reason: 'upstream_connect_failed' });
    const client = new WireClient(port, cert, ca.trustBundlePem());
    await client.ready;
    client.send(PREFACE, settings());
    // Written in small batches, as a real attacker's frames arrive; nghttp2's own limit (1000 in a burst) is not reached.
    for (let i = 0; i < 15 && !client.socket.destroyed; i++) {
      const parts: Buffer[] = [];
      for (let j = 0; j < 10; j++) {
        const id = 1 + 2 * (i * 10 + j);
        parts.push(connectHeaders(id, authority), frame(FRAME.RST_STREAM, 0, id, u32(CODE.CANCEL)));
      }
      client.send(...parts);
      await new Promise((r) => setImmediate(r));
    }
    const goaway = await client.waitFor('a GOAWAY', (f) => f.type === FRAME.GOAWAY);
    expect(goaway.payload.readUInt32BE(4)).toBe(CODE.ENHANCE_YOUR_CALM);
    await client.serverCloses();
    client.socket.destroy();
    expect(await count('smesh_hbone_session_errors_total', { direction: 'inbound', reason: 'rapid_reset' })).toBe(before + 1);
    // Streams the client reset while their pod connection was being opened are not "destination unreachable".
    expect(await count('smesh_refused_connections_total', { direction: 'inbound', reason: 'upstream_connect_failed' })).toBe(unreachableBefore);
  });

  it('a session HTTP/2 shut after a protocol error is closed, with its pod-side connection, although the peer half-closed (CLOSE-WAIT before)', async () => {
    const before = await count('smesh_hbone_session_errors_total', { direction: 'inbound', reason: 'unresponsive' });
    const client = await withOpenStream();
    client.send(frame(FRAME.HEADERS, FLAG.END_HEADERS, 3, Buffer.from([0xff, 0xff, 0xff, 0xff])));
    await client.waitFor('a GOAWAY', (f) => f.type === FRAME.GOAWAY);
    expect(client.goawayCode()).toBe(CODE.COMPRESSION_ERROR);
    client.socket.end(); // FIN: node:http2 no longer reads, so it never sees it by itself
    await client.closed;
    await waitUntil(() => echo.sockets.size === 0 && liveSessions() === 0, 5000, 'session and pod-side connection released');
    expect(await count('smesh_hbone_session_errors_total', { direction: 'inbound', reason: 'unresponsive' })).toBeGreaterThan(before);
  });

  it('a peer that goes silent mid-stream (no FIN, no RST, no PING answer) loses its session and pod-side connection', async () => {
    const before = await count('smesh_hbone_session_errors_total', { direction: 'inbound', reason: 'unresponsive' });
    const client = await withOpenStream();
    client.send(frame(FRAME.DATA, 0, 1, Buffer.from('ping')));
    await waitUntil(() => echo.sockets.size > 0, 5000, 'pod-side connection open');
    client.socket.pause(); // reads nothing from now on, as behind a partition
    await waitUntil(async () => (await count('smesh_hbone_session_errors_total', { direction: 'inbound', reason: 'unresponsive' })) > before, 5000, 'the silent session closed as unresponsive');
    await waitUntil(() => echo.sockets.size === 0 && liveSessions() === 0, 5000, `session (${liveSessions()}) and pod-side connection (${echo.sockets.size}) released`);
    client.socket.destroy();
    await client.closed;
  });

  it('a live peer reading slowly is kept across several checks although node:http2 reads nothing while its writes wait', async () => {
    // Its own inbound with a period shorter than the time a PING answer waits behind the socket buffers (megabytes on
    // loopback): the session survives because its send queue drains, not because PINGs are answered in time (with
    // reads alone as progress it is closed within a second).
    const slow = new InboundProxy({ identities: serverIds, nodeId: NODE, listen: { host: '127.0.0.1', port: 0 }, resolveLocal: () => ({}), metrics, livenessCheckMs: 500 });
    await slow.start();
    const before = await count('smesh_hbone_session_errors_total', { direction: 'inbound', reason: 'unresponsive' });
    const client = new WireClient(slow.address().port, cert, ca.trustBundlePem());
    try {
      await client.ready;
      client.socket.removeAllListeners('data'); // parse as the bytes come instead of keeping 24 MiB of frames
      let pending = Buffer.alloc(0);
      let dataBytes = 0;
      let answered = false;
      client.socket.on('data', (d: Buffer) => {
        pending = Buffer.concat([pending, d]);
        let off = 0;
        while (off + 9 <= pending.length) {
          const len = pending.readUIntBE(off, 3);
          if (off + 9 + len > pending.length) break;
          const type = pending[off + 3]!;
          const flags = pending[off + 4]!;
          const streamId = pending.readUInt32BE(off + 5) & 0x7fffffff;
          if (type === FRAME.DATA && streamId === 1) dataBytes += len;
          if (type === FRAME.HEADERS && streamId === 1) answered = true;
          if (type === FRAME.PING && (flags & 1) === 0) {
            client.send(frame(FRAME.PING, 1, 0, Buffer.from(pending.subarray(off + 9, off + 17)))); // as any HTTP/2 peer does
          }
          off += 9 + len;
        }
        pending = Buffer.from(pending.subarray(off));
        // A slow link: a little at a time.
        client.socket.pause();
        setTimeout(() => client.socket.resume(), 1);
      });
      let serverClosed = false;
      void client.serverDone.then(() => (serverClosed = true));
      // Windows wide open, so the server writes as fast as the socket takes bytes.
      client.send(PREFACE, settings([[4, 2 ** 31 - 1]]), frame(FRAME.WINDOW_UPDATE, 0, 0, u32(2 ** 31 - 1 - 65_535)), connectHeaders(1, `127.0.0.1:${blasterPort}`));
      await waitUntil(() => dataBytes >= BLAST_BYTES || serverClosed, 50_000, 'the blast received');
      expect(answered).toBe(true);
      expect({ serverClosed, dataBytes }).toEqual({ serverClosed: false, dataBytes: BLAST_BYTES });
      expect(await count('smesh_hbone_session_errors_total', { direction: 'inbound', reason: 'unresponsive' })).toBe(before);
    } finally {
      client.socket.destroy();
      await client.closed;
      await slow.close();
    }
  });

  it('a fuzz burst of 240 sessions: descriptors, sessions and pod-side connections return to baseline', async () => {
    // A healthy tunnel across the burst: it must survive (answers the liveness PINGs) and still carry bytes afterwards.
    const good = new HboneClient({ identities: clientIds });
    const healthy = await good.open({ sourceId: CLIENT, node: { host: '127.0.0.1', port }, expectedServerId: NODE, authority });
    healthy.write('before');
    expect((await new Promise<Buffer>((r) => healthy.once('data', r))).toString()).toBe('before');
    await waitUntil(() => liveSessions() === 1 && echo.sockets.size === 1, 5000, 'only the healthy session left before the burst');
    const baseFds = openFds();

    const random = seeded(10_8);
    const junk = (n: number) => Buffer.from(Array.from({ length: n }, () => Math.floor(random() * 256)));
    type Kind = (c: WireClient) => Promise<void>;
    const leave = async (c: WireClient, how: 'wait' | 'fin' | 'vanish') => {
      if (how === 'vanish') c.socket.destroy();
      else if (how === 'fin') c.socket.end();
      else await c.serverDone; // the peer keeps the connection open; the server must close it
      c.socket.destroy();
    };
    const kinds: Array<[string, Kind]> = [
      ['garbage after the preface', async (c) => (c.send(PREFACE, settings(), junk(64 + Math.floor(random() * 512))), leave(c, 'wait'))],
      ['random bytes instead of a preface', async (c) => (c.send(junk(200)), leave(c, 'wait'))],
      ['bad SETTINGS size, then FIN', async (c) => (c.send(PREFACE, settings(), frame(FRAME.SETTINGS, 0, 0, Buffer.alloc(7))), leave(c, 'fin'))],
      ['DATA on stream 0', async (c) => (c.send(PREFACE, settings(), frame(FRAME.DATA, 0, 0, junk(10))), leave(c, 'wait'))],
      ['bad HPACK, then vanish', async (c) => (c.send(PREFACE, settings(), frame(FRAME.HEADERS, FLAG.END_HEADERS, 1, junk(8))), leave(c, 'vanish'))],
      ['CONTINUATION alone', async (c) => (c.send(PREFACE, settings(), frame(FRAME.CONTINUATION, FLAG.END_HEADERS, 1, junk(4))), leave(c, 'wait'))],
      ['window overflow', async (c) => (c.send(PREFACE, settings(), frame(FRAME.WINDOW_UPDATE, 0, 0, u32(0x7fffffff))), leave(c, 'wait'))],
      ['INITIAL_WINDOW_SIZE 2^31', async (c) => (c.send(PREFACE, settings([[4, 2 ** 31]])), leave(c, 'fin'))],
      [
        'rapid reset',
        async (c) => {
          c.send(PREFACE, settings());
          for (let i = 0; i < 120 && !c.socket.destroyed; i += 10) {
            const parts: Buffer[] = [];
            for (let id = 1 + 2 * i; id < 1 + 2 * (i + 10); id += 2) parts.push(connectHeaders(id, authority), frame(FRAME.RST_STREAM, 0, id, u32(CODE.CANCEL)));
            c.send(...parts);
            await new Promise((r) => setImmediate(r));
          }
          await leave(c, 'wait');
        },
      ],
      [
        'open stream, bad HPACK, FIN',
        async (c) => {
          c.send(PREFACE, settings(), connectHeaders(1, authority));
          await c.waitFor('200', (f) => f.type === FRAME.HEADERS && f.streamId === 1);
          c.send(frame(FRAME.DATA, 0, 1, Buffer.from('hi')), frame(FRAME.HEADERS, FLAG.END_HEADERS, 3, junk(6)));
          await leave(c, 'fin');
        },
      ],
      [
        'open stream, then vanish mid-stream',
        async (c) => {
          c.send(PREFACE, settings(), connectHeaders(1, authority), frame(FRAME.DATA, 0, 1, Buffer.from('half')));
          await c.waitFor('200', (f) => f.type === FRAME.HEADERS && f.streamId === 1);
          await leave(c, 'vanish');
        },
      ],
      [
        'open stream, random frames',
        async (c) => {
          c.send(PREFACE, settings(), connectHeaders(1, authority));
          await c.waitFor('200', (f) => f.type === FRAME.HEADERS && f.streamId === 1);
          c.send(frame(Math.floor(random() * 10), Math.floor(random() * 256), Math.floor(random() * 4), junk(Math.floor(random() * 40))), junk(30));
          await leave(c, random() < 0.5 ? 'wait' : 'fin');
        },
      ],
    ];
    const SESSIONS = 240;
    const CONCURRENCY = 24;
    const stuck: string[] = [];
    let next = 0;
    const worker = async () => {
      while (next < SESSIONS) {
        const i = next++;
        const [name, run] = kinds[i % kinds.length]!;
        const c = new WireClient(port, cert, ca.trustBundlePem());
        // Bounded: a session the server never closes is destroyed here and reported, never waited on forever.
        const guard = setTimeout(() => {
          stuck.push(name);
          c.socket.destroy();
        }, 15_000);
        try {
          await c.ready;
          await run(c);
        } catch {
          c.socket.destroy();
        } finally {
          await c.closed;
          clearTimeout(guard);
        }
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));
    expect(stuck).toEqual([]);

    await waitUntil(
      () => liveSessions() === 1 && echo.sockets.size === 1 && openFds() <= baseFds,
      10_000,
      `sessions (${liveSessions()}), pod-side connections (${echo.sockets.size}) and descriptors (${openFds()} vs ${baseFds}) back to baseline`,
    );
    expect(await count('smesh_hbone_sessions', { direction: 'inbound' })).toBe(1);
    // The healthy tunnel is untouched.
    healthy.write('after');
    expect((await new Promise<Buffer>((r) => healthy.once('data', r))).toString()).toBe('after');
    healthy.end();
    expect((await readAll(healthy)).toString()).toBe('bye');
    good.close();
    await waitUntil(() => liveSessions() === 0 && echo.sockets.size === 0, 5000, 'healthy session closed');
  });
});

describe('HBONE outbound: a pooled session HTTP/2 shut after a protocol error is not reused', () => {
  it('the CONNECT that got no answer takes the session out of the pool; the next one opens a new session and gets 200', async () => {
    const { ca, cleanup } = await meshCa();
    const nodeCert = await ca.issue(NODE);
    const clientIds = await identities(ca, nodeSpiffeId(TD, 'node1'), [CLIENT]);
    // A raw HTTP/2 server: its first connection sends a malformed frame right after the client's preface (node:http2
    // answers with GOAWAY and stops reading), later ones answer every CONNECT on stream 1 with 200.
    const sockets = new Set<tls.TLSSocket>();
    let connections = 0;
    const server = tls.createServer(
      { key: nodeCert.keyPem, cert: nodeCert.chainPem, ca: ca.trustBundlePem(), requestCert: true, rejectUnauthorized: true, ALPNProtocols: ['h2'], minVersion: 'TLSv1.3' },
      (s) => {
        const nth = ++connections;
        sockets.add(s);
        s.on('error', () => undefined);
        s.on('close', () => sockets.delete(s));
        s.write(settings());
        let received = Buffer.alloc(0);
        let done = false;
        s.on('data', (d: Buffer) => {
          received = Buffer.concat([received, d]);
          if (done || received.length < PREFACE.length) return;
          const frames = parseFrames(received.subarray(PREFACE.length));
          if (nth === 1) {
            done = true;
            s.write(frame(FRAME.DATA, 0, 0, Buffer.from('bad')));
          } else if (frames.some((f) => f.type === FRAME.HEADERS && f.streamId === 1)) {
            done = true;
            s.write(Buffer.concat([frame(FRAME.SETTINGS, 1, 0), frame(FRAME.HEADERS, FLAG.END_HEADERS, 1, Buffer.from([0x88]))])); // :status 200 (static index 8)
          }
        });
      },
    );
    const port = await listen(server as unknown as import('net').Server);
    const clientMetrics = new MeshMetrics();
    const client = new HboneClient({ identities: clientIds, connectTimeoutMs: 500, metrics: clientMetrics });
    const open = () => client.open({ sourceId: CLIENT, node: { host: '127.0.0.1', port }, expectedServerId: NODE, authority: '127.0.0.1:9' });
    try {
      const first = await open().catch((e: unknown) => e);
      expect((first as Error).message).toContain('got no response');
      expect(client.sessionCount()).toBe(0);
      const second = await open();
      expect(connections).toBe(2);
      second.on('error', () => undefined);
      second.destroy();
      // The shut session is released, not left open: only the second connection remains on the server.
      await waitUntil(() => sockets.size <= 1, 5000, 'the first connection closed');
      expect(sum(parseMetrics(await clientMetrics.text()), 'smesh_hbone_session_errors_total', { direction: 'outbound', reason: 'unresponsive' })).toBe(1);
    } finally {
      client.close();
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
      clientIds.close();
      await cleanup();
    }
  });

  it('a live session whose CONNECT is slow keeps its other streams (it answers the PING), and is closed after the last', async () => {
    const { ca, cleanup } = await meshCa();
    const nodeCert = await ca.issue(NODE);
    const clientIds = await identities(ca, nodeSpiffeId(TD, 'node1'), [CLIENT]);
    // A raw HTTP/2 server that answers PINGs and the CONNECT on stream 1 (then echoes its DATA), never the others.
    let serverSocket: tls.TLSSocket | undefined;
    let pingsAnswered = 0;
    const server = tls.createServer(
      { key: nodeCert.keyPem, cert: nodeCert.chainPem, ca: ca.trustBundlePem(), requestCert: true, rejectUnauthorized: true, ALPNProtocols: ['h2'], minVersion: 'TLSv1.3' },
      (s) => {
        serverSocket = s;
        s.on('error', () => undefined);
        s.write(settings());
        let pending = Buffer.alloc(0);
        let prefaceSeen = false;
        s.on('data', (d: Buffer) => {
          pending = Buffer.concat([pending, d]);
          if (!prefaceSeen) {
            if (pending.length < PREFACE.length) return;
            prefaceSeen = true;
            pending = Buffer.from(pending.subarray(PREFACE.length));
          }
          const frames = parseFrames(pending);
          pending = Buffer.from(pending.subarray(frames.reduce((n, f) => n + 9 + f.payload.length, 0)));
          for (const f of frames) {
            if (f.type === FRAME.SETTINGS && (f.flags & 1) === 0) s.write(frame(FRAME.SETTINGS, 1, 0));
            if (f.type === FRAME.PING && (f.flags & 1) === 0) {
              pingsAnswered++;
              s.write(frame(FRAME.PING, 1, 0, f.payload));
            }
            if (f.type === FRAME.HEADERS && f.streamId === 1) s.write(frame(FRAME.HEADERS, FLAG.END_HEADERS, 1, Buffer.from([0x88])));
            if (f.type === FRAME.DATA && f.streamId === 1 && f.payload.length > 0) s.write(frame(FRAME.DATA, 0, 1, f.payload));
          }
        });
      },
    );
    const port = await listen(server as unknown as import('net').Server);
    const clientMetrics = new MeshMetrics();
    const client = new HboneClient({ identities: clientIds, connectTimeoutMs: 400, metrics: clientMetrics });
    const open = () => client.open({ sourceId: CLIENT, node: { host: '127.0.0.1', port }, expectedServerId: NODE, authority: '127.0.0.1:9' });
    try {
      const first = await open();
      first.on('error', () => undefined);
      const slow = await open().catch((e: unknown) => e);
      expect((slow as Error).message).toContain('got no response');
      expect(client.sessionCount()).toBe(0); // out of the pool
      await waitUntil(() => pingsAnswered > 0, 5000, 'the probe PING answered');
      // The echo travels behind the PING answer on the same connection: when it arrives the probe has been decided.
      first.write('still here');
      expect((await new Promise<Buffer>((r) => first.once('data', r))).toString()).toBe('still here');
      expect(first.destroyed).toBe(false);
      expect(sum(parseMetrics(await clientMetrics.text()), 'smesh_hbone_session_errors_total', { direction: 'outbound' })).toBe(0);
      // Its last stream ends: the session closes (it is out of the pool, not left open).
      first.close();
      await waitUntil(() => first.session?.closed !== false, 5000, 'the session closed after its last stream');
    } finally {
      client.close();
      serverSocket?.destroy();
      await new Promise<void>((r) => server.close(() => r()));
      clientIds.close();
      await cleanup();
    }
  });
});
