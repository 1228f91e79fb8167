// Malformed HTTP from either side of the HTTP outbound: invalid HTTP/2 frames get a GOAWAY or reset on that connection only, a broken upstream (HTTP/2 or HTTP/1.1) gets its clients a 502; all counted, concurrent good clients unaffected.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as http from 'node:http';
import * as http2 from 'node:http2';
import * as net from 'node:net';
import { H2FrameScanner, type H2ErrorFrame } from '../../../../agent/http/h2-watch';
import { HttpOutbound } from '../../../../agent/http/outbound-http';
import { HTTP2_PREFACE } from '../../../../core/model/protocol';
import { StateStore } from '../../../../agent/state/store';
import type { Service, Workload } from '../../../../core/model/types';
import { MeshMetrics } from '../../../../agent/telemetry/metrics';

function wl(name: string, ip: string): Workload {
  return {
    uid: `default/${name}`,
    name,
    namespace: 'default',
    serviceAccount: `${name}-sa`,
    node: 'n1',
    ip,
    labels: { app: name },
    workloadName: name,
    identity: `spiffe://cluster.local/ns/default/sa/${name}-sa`,
    meshed: true,
  };
}

function frame(type: number, flags: number, streamId: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const h = Buffer.alloc(9);
  h.writeUIntBE(payload.length, 0, 3);
  h[3] = type;
  h[4] = flags;
  h.writeUInt32BE(streamId, 5);
  return Buffer.concat([h, payload]);
}
const SETTINGS = (ack = false) => frame(4, ack ? 1 : 0, 0);
/** HEADERS, END_HEADERS (+ END_STREAM): `:status: 200` (static index 8) plus the given raw HPACK bytes. */
const HEADERS = (streamId: number, hpack: Buffer, endStream = true) => frame(1, 4 | (endStream ? 1 : 0), streamId, Buffer.concat([Buffer.from([0x88]), hpack]));

type BadMode = 'garbage' | 'bad-hpack' | 'bad-header-name';

/** A raw "HTTP/2 server" that breaks the protocol in the given way once the client's first request arrives. */
async function badUpstream(ip: string, port: number, mode: () => BadMode): Promise<net.Server> {
  const server = net.createServer((s) => {
    s.on('error', () => undefined);
    let got = Buffer.alloc(0);
    let answered = false;
    s.on('data', (d: Buffer) => {
      got = Buffer.concat([got, d]);
      if (answered || got.length < HTTP2_PREFACE.length) return;
      const m = mode();
      if (m === 'garbage') {
        answered = true;
        s.write('HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n');
        return;
      }
      // Look for the client's HEADERS on a stream (type 1) after the preface.
      let off = HTTP2_PREFACE.length;
      while (off + 9 <= got.length) {
        const len = got.readUIntBE(off, 3);
        const type = got[off + 3]!;
        const sid = got.readUInt32BE(off + 5) & 0x7fffffff;
        if (type === 1 && sid > 0) {
          answered = true;
          const hpack = m === 'bad-hpack' ? Buffer.from([0xff, 0xff, 0xff, 0xff]) : Buffer.concat([Buffer.from([0x00, 5]), Buffer.from('X-Bad'), Buffer.from([1]), Buffer.from('v')]);
          s.write(Buffer.concat([SETTINGS(), SETTINGS(true), HEADERS(sid, hpack)]));
          return;
        }
        off += 9 + len;
      }
    });
  });
  await new Promise<void>((r) => server.listen(port, ip, () => r()));
  return server;
}

async function protocolErrors(metrics: MeshMetrics): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const v of (await metrics.httpProtocolErrors.get()).values) out[`${v.labels.side}/${v.labels.reason}`] = v.value;
  return out;
}

function h2get(session: http2.ClientHttp2Session, path: string, headers: http2.OutgoingHttpHeaders = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = session.request({ ':path': path, ...headers });
    let status = 0;
    let body = '';
    req.on('response', (h) => (status = Number(h[':status'])));
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('end', () => resolve({ status, body }));
    req.on('error', reject);
    req.end();
  });
}

describe('HttpOutbound: invalid HTTP/2 from either side', () => {
  let good: http2.Http2Server;
  let bad: net.Server;
  let badMode: BadMode = 'garbage';
  let front: net.Server;
  let handler: HttpOutbound;
  let metrics: MeshMetrics;
  let goodService: Service;
  let badService: Service;
  const clients: http2.ClientHttp2Session[] = [];

  beforeAll(async () => {
    good = http2.createServer();
    good.on('stream', (st, h) => {
      st.on('error', () => undefined);
      st.resume();
      st.respond({ ':status': 200 });
      st.end(`ok ${h[':path']}`);
    });
    await new Promise<void>((r) => good.listen(0, '127.0.0.2', () => r()));
    const port = (good.address() as net.AddressInfo).port;
    bad = await badUpstream('127.0.0.3', port, () => badMode);
    const src = wl('client', '127.0.0.1');
    const wg = wl('good', '127.0.0.2');
    const wb = wl('bad', '127.0.0.3');
    goodService = { key: 'default/good', name: 'good', namespace: 'default', vips: ['10.96.0.10'], ports: [{ name: 'http2', port: 80, targetPort: port }], selector: {}, endpointUids: [wg.uid] };
    badService = { key: 'default/bad', name: 'bad', namespace: 'default', vips: ['10.96.0.11'], ports: [{ name: 'http2', port: 80, targetPort: port }], selector: {}, endpointUids: [wb.uid] };
    const state = new StateStore({
      trustDomain: 'cluster.local',
      nodes: new Map([['n1', { name: 'n1', address: '127.0.0.1' }]]),
      workloads: new Map([src, wg, wb].map((w) => [w.uid, w])),
      services: new Map([goodService, badService].map((s) => [s.key, s])),
      namespaces: new Map([['default', {}]]),
    });
    metrics = new MeshMetrics();
    handler = new HttpOutbound({ state, hbone: { open: () => Promise.reject(new Error('no hbone')) }, nodeName: 'n1', hbonePort: 15008, metrics });
    // The local address a client dialled picks the service (a stand-in for the VIP): 127.0.0.5 is the bad one.
    front = net.createServer((sock) => {
      handler.handle(sock, { source: src, sourceIp: '127.0.0.1', service: sock.localAddress === '127.0.0.5' ? badService : goodService, port: goodService.ports[0]! });
    });
    await new Promise<void>((r) => front.listen(0, '0.0.0.0', () => r()));
  });

  afterAll(async () => {
    for (const c of clients) c.destroy();
    handler?.close();
    await new Promise<void>((r) => front.close(() => r()));
    await new Promise<void>((r) => bad.close(() => r()));
    good.close();
  });

  const frontPort = () => (front.address() as net.AddressInfo).port;
  const connect = (ip = '127.0.0.1') => {
    const c = http2.connect(`http://${ip}:${frontPort()}`);
    c.on('error', () => undefined);
    clients.push(c);
    return c;
  };

  /** Sends the preface, an empty SETTINGS, then `bad`; returns the frames the proxy sent and whether it closed the connection. */
  function rawClient(bad: Buffer, waitMs = 3000): Promise<{ frames: Array<{ type: number; code?: number }>; closedByProxy: boolean }> {
    return new Promise((resolve) => {
      const chunks: Buffer[] = [];
      let closedByProxy = false;
      const s = net.connect(frontPort(), '127.0.0.1', () => s.write(Buffer.concat([HTTP2_PREFACE, SETTINGS(), bad])));
      s.on('data', (d: Buffer) => chunks.push(d));
      s.on('end', () => {
        closedByProxy = true;
        s.end();
      });
      s.on('error', () => undefined);
      const timer = setTimeout(() => s.destroy(), waitMs);
      s.on('close', () => {
        clearTimeout(timer);
        const got = Buffer.concat(chunks);
        const frames: Array<{ type: number; code?: number }> = [];
        for (let off = 0; off + 9 <= got.length; off += 9 + got.readUIntBE(off, 3)) {
          const type = got[off + 3]!;
          frames.push(type === 7 ? { type, code: got.readUInt32BE(off + 13) } : type === 3 ? { type, code: got.readUInt32BE(off + 9) } : { type });
        }
        resolve({ frames, closedByProxy });
      });
    });
  }

  it('invalid frames from a client: GOAWAY with the right code, connection closed, counted by reason; a concurrent client sees every request succeed', async () => {
    const goodClient = connect();
    let stop = false;
    const statuses: number[] = [];
    const load = (async () => {
      for (let i = 0; i < 200 && !stop; i++) statuses.push((await h2get(goodClient, `/g${i}`)).status);
    })();
    const cases: Array<{ name: string; bytes: Buffer; code: number; reason: string }> = [
      // SETTINGS whose length is not a multiple of 6.
      { name: 'settings size', bytes: frame(4, 0, 0, Buffer.alloc(5)), code: 6, reason: 'h2_goaway_frame_size_error' },
      // DATA on stream 0.
      { name: 'data on stream 0', bytes: frame(0, 0, 0, Buffer.from('abc')), code: 1, reason: 'h2_goaway_protocol_error' },
      // HEADERS whose header block does not decode.
      { name: 'bad hpack', bytes: frame(1, 5, 1, Buffer.from([0xff, 0xff, 0xff, 0xff])), code: 9, reason: 'h2_goaway_compression_error' },
    ];
    for (const c of cases) {
      const r = await rawClient(c.bytes);
      expect(r.frames.find((f) => f.type === 7)?.code, c.name).toBe(c.code);
      expect(r.closedByProxy, `${c.name}: the proxy closes the connection after its GOAWAY`).toBe(true);
    }
    // A malformed stream (upper-case header name) is a stream error: that stream is reset, the connection lives.
    const hp = Buffer.concat([Buffer.from([0x82, 0x84, 0x86]), Buffer.from([0x01, 1]), Buffer.from('x'), Buffer.from([0x00, 5]), Buffer.from('X-Bad'), Buffer.from([1]), Buffer.from('v')]);
    const r = await rawClient(frame(1, 5, 1, hp), 400);
    expect(r.frames.find((f) => f.type === 3)?.code, 'RST_STREAM PROTOCOL_ERROR').toBe(1);
    expect(
      r.frames.some((f) => f.type === 7 && f.code !== 0),
      'no error GOAWAY for a stream error',
    ).toBe(false);
    stop = true;
    await load;
    expect(statuses.length).toBeGreaterThan(0);
    expect(statuses.every((s) => s === 200)).toBe(true);
    expect((await h2get(goodClient, '/after')).body).toBe('ok /after');
    const errs = await protocolErrors(metrics);
    for (const c of cases) expect(errs[`client/${c.reason}`], c.reason).toBe(1);
    expect(errs['client/h2_reset_protocol_error']).toBe(1);
    expect(Object.keys(errs).filter((k) => k.startsWith('upstream/'))).toEqual([]);
  });

  it('an upstream that breaks HTTP/2: the client gets 502 (or a reset stream), counted on the upstream side; other services unaffected', async () => {
    const before = await protocolErrors(metrics);
    const badClient = connect('127.0.0.5');
    const goodClient = connect();
    for (const [mode, reason] of [
      // Node's session fails on the HTTP/1.1 bytes and closes with INTERNAL_ERROR.
      ['garbage', 'h2_goaway_internal_error'],
      ['bad-hpack', 'h2_goaway_compression_error'],
      ['bad-header-name', 'h2_reset_protocol_error'],
    ] as const) {
      badMode = mode;
      const t0 = Date.now();
      const [r, ok] = await Promise.all([h2get(badClient, `/${mode}`), h2get(goodClient, `/${mode}`)]);
      expect(r.status, mode).toBe(502);
      expect(Date.now() - t0, `${mode}: answered promptly, not after an idle timeout`).toBeLessThan(2500);
      expect(ok).toEqual({ status: 200, body: `ok /${mode}` });
      const errs = await protocolErrors(metrics);
      expect((errs[`upstream/${reason}`] ?? 0) - (before[`upstream/${reason}`] ?? 0), reason).toBe(1);
    }
    const errs = await protocolErrors(metrics);
    for (const k of Object.keys(errs)) if (k.startsWith('client/')) expect(errs[k], k).toBe(before[k]);
    const text = await metrics.text();
    expect(text).toMatch(/istio_requests_total\{[^}]*destination_workload="bad"[^}]*response_code="502"[^}]*\} 3/);
  });
});

describe('H2FrameScanner', () => {
  it('finds error GOAWAY and RST_STREAM frames across arbitrary chunk boundaries, after a skipped preface', () => {
    const bytes = Buffer.concat([
      HTTP2_PREFACE,
      SETTINGS(),
      frame(0, 0, 1, Buffer.alloc(40000, 7)),
      frame(3, 0, 3, Buffer.from([0, 0, 0, 8])),
      frame(3, 0, 5, Buffer.from([0, 0, 0, 1])),
      frame(7, 0, 0, Buffer.from([0, 0, 0, 0, 0, 0, 0, 0])),
      frame(7, 0, 0, Buffer.from([0, 0, 0, 9, 0, 0, 0, 9, 1, 2, 3])),
    ]);
    for (const step of [1, 2, 7, 9, 17, 1000, bytes.length]) {
      const got: H2ErrorFrame[] = [];
      const s = new H2FrameScanner((f) => got.push(f), HTTP2_PREFACE.length);
      for (let i = 0; i < bytes.length; i += step) s.feed(bytes.subarray(i, i + step));
      expect(got, `step ${step}`).toEqual([
        { kind: 'reset', code: 8, streamId: 3 },
        { kind: 'reset', code: 1, streamId: 5 },
        { kind: 'goaway', code: 9, streamId: 0 },
      ]);
    }
  });
});

describe('HttpOutbound: an HTTP/1.1 upstream that answers garbage', () => {
  it('the client gets 502, counted as upstream bad_response; a good service on the same proxy is unaffected', async () => {
    const garbage = net.createServer((s) => {
      s.on('error', () => undefined);
      s.once('data', () => s.end('NOT HTTP AT ALL\r\n\r\n'));
    });
    await new Promise<void>((r) => garbage.listen(0, '127.0.0.3', () => r()));
    const good = http.createServer((req, res) => {
      req.resume();
      res.end('fine');
    });
    await new Promise<void>((r) => good.listen((garbage.address() as net.AddressInfo).port, '127.0.0.2', () => r()));
    const port = (garbage.address() as net.AddressInfo).port;
    const src = wl('client', '127.0.0.1');
    const wg = wl('good', '127.0.0.2');
    const wb = wl('bad', '127.0.0.3');
    const goodSvc: Service = {
      key: 'default/good',
      name: 'good',
      namespace: 'default',
      vips: ['10.96.0.12'],
      ports: [{ name: 'http', port: 80, targetPort: port }],
      selector: {},
      endpointUids: [wg.uid],
    };
    const badSvc: Service = {
      key: 'default/bad',
      name: 'bad',
      namespace: 'default',
      vips: ['10.96.0.13'],
      ports: [{ name: 'http', port: 80, targetPort: port }],
      selector: {},
      endpointUids: [wb.uid],
    };
    const state = new StateStore({
      trustDomain: 'cluster.local',
      nodes: new Map([['n1', { name: 'n1', address: '127.0.0.1' }]]),
      workloads: new Map([src, wg, wb].map((w) => [w.uid, w])),
      services: new Map([goodSvc, badSvc].map((s) => [s.key, s])),
      namespaces: new Map([['default', {}]]),
    });
    const metrics = new MeshMetrics();
    const handler = new HttpOutbound({ state, hbone: { open: () => Promise.reject(new Error('no hbone')) }, nodeName: 'n1', hbonePort: 15008, metrics });
    const front = net.createServer((sock) => handler.handle(sock, { source: src, sourceIp: '127.0.0.1', service: sock.localAddress === '127.0.0.5' ? badSvc : goodSvc, port: goodSvc.ports[0]! }));
    await new Promise<void>((r) => front.listen(0, '0.0.0.0', () => r()));
    const get = (ip: string) =>
      new Promise<{ status: number; body: string }>((resolve, reject) => {
        http
          .get({ host: ip, port: (front.address() as net.AddressInfo).port, path: '/', agent: false }, (res) => {
            let body = '';
            res.on('data', (d: Buffer) => (body += d.toString()));
            res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
          })
          .on('error', reject);
      });
    try {
      const [bad, ok] = await Promise.all([get('127.0.0.5'), get('127.0.0.1')]);
      expect(bad.status).toBe(502);
      expect(bad.body).toMatch(/upstream reset before response/);
      expect(ok).toEqual({ status: 200, body: 'fine' });
      expect((await protocolErrors(metrics))['upstream/bad_response']).toBe(1);
    } finally {
      handler.close();
      await new Promise<void>((r) => front.close(() => r()));
      good.closeAllConnections();
      await new Promise<void>((r) => good.close(() => r()));
      await new Promise<void>((r) => garbage.close(() => r()));
    }
  });
});
