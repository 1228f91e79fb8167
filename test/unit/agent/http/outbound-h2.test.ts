// The HTTP outbound handler for HTTP/2 prior knowledge and gRPC (unary, server streaming, error status) against real servers on 127.0.0.x.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as grpc from '@grpc/grpc-js';
import * as http2 from 'node:http2';
import * as net from 'node:net';
import { HttpOutbound } from '../../../../agent/http/outbound-http';
import { StateStore } from '../../../../agent/state/store';
import type { Service, Workload } from '../../../../core/model/types';
import { MeshMetrics } from '../../../../agent/telemetry/metrics';

const json = { serialize: (o: unknown) => Buffer.from(JSON.stringify(o)), deserialize: (b: Buffer) => JSON.parse(b.toString()) };
const method = (name: string, responseStream: boolean) => ({
  path: `/smesh.test.Echo/${name}`,
  requestStream: false,
  responseStream,
  requestSerialize: json.serialize,
  requestDeserialize: json.deserialize,
  responseSerialize: json.serialize,
  responseDeserialize: json.deserialize,
});
const SERVICE = { Echo: method('Echo', false), Count: method('Count', true), Fail: method('Fail', false) };

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

async function grpcServer(pod: string, ip: string, port: number): Promise<{ server: grpc.Server; port: number }> {
  const server = new grpc.Server();
  server.addService(SERVICE as unknown as grpc.ServiceDefinition, {
    Echo: (call: grpc.ServerUnaryCall<{ msg: string }, unknown>, cb: grpc.sendUnaryData<unknown>) => cb(null, { pod, msg: call.request.msg }),
    Count: (call: grpc.ServerWritableStream<{ n: number }, unknown>) => {
      for (let i = 0; i < call.request.n; i++) call.write({ pod, i });
      call.end();
    },
    Fail: (_call: unknown, cb: grpc.sendUnaryData<unknown>) => cb({ code: grpc.status.NOT_FOUND, details: 'nothing here' }),
  });
  const bound = await new Promise<number>((resolve, reject) => server.bindAsync(`${ip}:${port}`, grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
  return { server, port: bound };
}

describe('HttpOutbound (HTTP/2 and gRPC)', () => {
  const servers: grpc.Server[] = [];
  let front: net.Server;
  let handler: HttpOutbound;
  let metrics: MeshMetrics;
  let client: grpc.Client & Record<string, (...args: unknown[]) => unknown>;

  beforeAll(async () => {
    const a = await grpcServer('a', '127.0.0.2', 0);
    const b = await grpcServer('b', '127.0.0.3', a.port);
    servers.push(a.server, b.server);
    const src = wl('client', '127.0.0.1');
    const wa = wl('a', '127.0.0.2');
    const wb = wl('b', '127.0.0.3');
    // No port name (as over xDS): an HTTP route is what makes the port HTTP; the client's preface makes it HTTP/2.
    const service: Service = { key: 'default/grpc', name: 'grpc', namespace: 'default', vips: ['10.96.0.2'], ports: [{ port: 80, targetPort: a.port }], selector: {}, endpointUids: [wa.uid, wb.uid] };
    const state = new StateStore({
      trustDomain: 'cluster.local',
      nodes: new Map([['n1', { name: 'n1', address: '127.0.0.1' }]]),
      workloads: new Map([src, wa, wb].map((w) => [w.uid, w])),
      services: new Map([[service.key, service]]),
      namespaces: new Map([['default', {}]]),
      trafficPolicies: new Map([[service.key, { serviceKey: service.key, subsets: [], portSettings: [], routes: [{ matches: [], destinations: [] }], loadBalancer: { algorithm: 'ROUND_ROBIN' } }]]),
    });
    metrics = new MeshMetrics();
    handler = new HttpOutbound({
      state,
      hbone: { open: () => Promise.reject(new Error('no hbone')) },
      nodeName: 'n1',
      hbonePort: 15008,
      metrics,
      // Policy stand-in for same-node requests: a header rule that must see every value of a repeated header, joined with ','.
      authorize: (input) => ([input.http?.headers['x-deny']].flat().join(',') === 'a,b' ? { allow: false, reason: 'x-deny a,b' } : { allow: true }),
    });
    front = net.createServer((sock) => handler.handle(sock, { source: src, sourceIp: '127.0.0.1', service, port: service.ports[0]! }));
    await new Promise<void>((r) => front.listen(0, '127.0.0.1', () => r()));
    const Client = grpc.makeGenericClientConstructor(SERVICE as unknown as grpc.ServiceDefinition, 'Echo');
    client = new Client(`127.0.0.1:${(front.address() as net.AddressInfo).port}`, grpc.credentials.createInsecure()) as typeof client;
  });

  afterAll(async () => {
    client?.close();
    handler?.close();
    await new Promise<void>((r) => front.close(() => r()));
    for (const s of servers) s.forceShutdown();
  });

  it('unary calls pass per request, balanced across endpoints, with grpc metrics', async () => {
    const pods: string[] = [];
    for (let i = 0; i < 6; i++) {
      const res = await new Promise<{ pod: string; msg: string }>((resolve, reject) =>
        client.Echo({ msg: `m${i}` }, (err: Error | null, r: { pod: string; msg: string }) => (err ? reject(err) : resolve(r))),
      );
      expect(res.msg).toBe(`m${i}`);
      pods.push(res.pod);
    }
    expect(new Set(pods)).toEqual(new Set(['a', 'b']));
    await new Promise((r) => setTimeout(r, 20));
    const all = (await metrics.requests.get()).values.filter((v) => v.labels.request_protocol === 'grpc' && v.labels.response_code === '200' && v.labels.grpc_response_status === '0');
    const values = all.filter((v) => v.labels.reporter === 'source');
    expect(values.reduce((n, v) => n + v.value, 0)).toBe(6);
    expect(new Set(values.map((v) => v.labels.destination_workload))).toEqual(new Set(['a', 'b']));
    // Same node: the proxy also reports each call as the destination (no inbound sees it).
    expect(all.filter((v) => v.labels.reporter === 'destination').reduce((n, v) => n + v.value, 0)).toBe(6);
  });

  it('server streaming delivers every message and the OK status', async () => {
    const got: number[] = [];
    await new Promise<void>((resolve, reject) => {
      const call = client.Count({ n: 50 }) as grpc.ClientReadableStream<{ i: number }>;
      call.on('data', (m: { i: number }) => got.push(m.i));
      call.on('error', reject);
      call.on('end', () => resolve());
    });
    expect(got).toEqual(Array.from({ length: 50 }, (_, i) => i));
  });

  it('a gRPC error status reaches the client and the grpc_response_status label', async () => {
    const err = await new Promise<grpc.ServiceError>((resolve) => client.Fail({}, (e: grpc.ServiceError) => resolve(e)));
    expect(err.code).toBe(grpc.status.NOT_FOUND);
    expect(err.details).toBe('nothing here');
    expect(await metrics.text()).toMatch(/istio_requests_total\{[^}]*grpc_response_status="5"\} 1/);
  });

  it('invalid HTTP/2 frames get a GOAWAY on that connection only; other calls are unaffected', async () => {
    const port = (front.address() as net.AddressInfo).port;
    const got = await new Promise<Buffer>((resolve) => {
      const chunks: Buffer[] = [];
      const s = net.connect(port, '127.0.0.1', () => {
        // Preface, then a SETTINGS frame whose length is not a multiple of 6 (FRAME_SIZE_ERROR).
        s.write(Buffer.concat([Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), Buffer.from([0, 0, 5, 4, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5])]));
      });
      s.on('data', (d: Buffer) => chunks.push(d));
      s.on('error', () => resolve(Buffer.concat(chunks)));
      s.on('close', () => resolve(Buffer.concat(chunks)));
      setTimeout(() => s.destroy(), 300).unref();
    });
    const types: number[] = [];
    for (let off = 0; off + 9 <= got.length; off += 9 + got.readUIntBE(off, 3)) types.push(got[off + 3]!);
    expect(types, 'frame types the proxy sent').toContain(7); // GOAWAY
    const res = await new Promise<{ msg: string }>((resolve, reject) => client.Echo({ msg: 'after' }, (err: Error | null, r: { msg: string }) => (err ? reject(err) : resolve(r))));
    expect(res.msg).toBe('after');
  });

  it('plain HTTP/2 (h2c prior knowledge) requests pass too', async () => {
    const port = (front.address() as net.AddressInfo).port;
    const session = http2.connect(`http://127.0.0.1:${port}`);
    const status = await new Promise<number>((resolve, reject) => {
      const req = session.request({ ':method': 'POST', ':path': '/smesh.test.Echo/Echo', 'content-type': 'application/grpc', te: 'trailers' });
      req.on('response', (h) => resolve(Number(h[':status'])));
      req.on('error', reject);
      const msg = json.serialize({ msg: 'raw' });
      const frame = Buffer.alloc(5 + msg.length);
      frame.writeUInt32BE(msg.length, 1);
      msg.copy(frame, 5);
      req.end(frame);
      req.resume();
    });
    session.close();
    expect(status).toBe(200);
  });

  it('the upstream receives the normalized :path (Istio BASE); %00 is refused with 400', async () => {
    const port = (front.address() as net.AddressInfo).port;
    const session = http2.connect(`http://127.0.0.1:${port}`);
    const call = (path: string) =>
      new Promise<string>((resolve, reject) => {
        const req = session.request({ ':method': 'POST', ':path': path, 'content-type': 'application/grpc', te: 'trailers' });
        let status = 0;
        req.on('response', (h) => (status = Number(h[':status'])));
        req.on('trailers', (t) => resolve(`${status} grpc-status=${String(t['grpc-status'])}`));
        req.on('end', () => resolve(`${status}`));
        req.on('error', reject);
        const msg = json.serialize({ msg: 'n' });
        const frame = Buffer.alloc(5 + msg.length);
        frame.writeUInt32BE(msg.length, 1);
        msg.copy(frame, 5);
        req.end(frame);
        req.resume();
      });
    try {
      // Unknown to the gRPC server as sent (it answers UNIMPLEMENTED, 12); found once normalized.
      expect(await call('/smesh.test.Echo/%45cho')).toBe('200 grpc-status=0');
      expect(await call('/other/../smesh.test.Echo/./Echo')).toBe('200 grpc-status=0');
      expect(await call('/smesh.test.Echo/Echo%00')).toBe('400');
      const lower = await new Promise<number>((resolve, reject) => {
        const req = session.request({ ':method': 'post', ':path': '/smesh.test.Echo/Echo', 'content-type': 'application/grpc' });
        req.on('response', (h) => resolve(Number(h[':status'])));
        req.on('error', reject);
        req.end();
        req.resume();
      });
      expect(lower).toBe(400);
      const status = (xDeny: string | string[]) =>
        new Promise<number>((resolve, reject) => {
          const req = session.request({ ':method': 'POST', ':path': '/smesh.test.Echo/Echo', 'content-type': 'application/grpc', te: 'trailers', 'x-deny': xDeny });
          req.on('response', (h) => resolve(Number(h[':status'])));
          req.on('error', reject);
          const msg = json.serialize({ msg: 'h' });
          const frame = Buffer.alloc(5 + msg.length);
          frame.writeUInt32BE(msg.length, 1);
          msg.copy(frame, 5);
          req.end(frame);
          req.resume();
        });
      // Node's merged header object would say "a, b"; the policy sees the raw values joined as Envoy joins them.
      expect(await status(['a', 'b'])).toBe(403);
      expect(await status('a')).toBe(200);
    } finally {
      session.close();
    }
  });
});
