// Retries of requests with bodies: chunked HTTP/1.1 and HTTP/2 bodies up to MAX_RETRY_BODY are replayed to another endpoint intact; bigger bodies stream once and are not retried.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import * as http from 'node:http';
import * as http2 from 'node:http2';
import * as net from 'node:net';
import { HttpOutbound, MAX_RETRY_BODY } from '../../../../agent/http/outbound-http';
import { StateStore } from '../../../../agent/state/store';
import type { MeshSnapshot, RetrySettings, Service, Workload } from '../../../../core/model/types';

type Mode = 'ok' | 'fail' | 'reset';

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

interface Pod {
  readonly name: string;
  mode: Mode;
  /** Bodies this pod received in full. */
  readonly bodies: number[];
}

/** HTTP/1.1 pod: reads the whole body, then answers per mode (200 with the body's length and a checksum, 503, or a reset). */
function h1pod(pod: Pod): http.Server {
  return http.createServer((req, res) => {
    let n = 0;
    let sum = 0;
    req.on('data', (c: Buffer) => {
      n += c.length;
      for (const b of c) sum = (sum + b) % 65521;
    });
    req.on('end', () => {
      pod.bodies.push(n);
      if (pod.mode === 'reset') return void req.socket.destroy();
      if (pod.mode === 'fail') return void res.writeHead(503).end('unavailable');
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ pod: pod.name, n, sum }));
    });
  });
}

function h2pod(pod: Pod): http2.Http2Server {
  const server = http2.createServer();
  server.on('stream', (st) => {
    st.on('error', () => undefined);
    let n = 0;
    let sum = 0;
    st.on('data', (c: Buffer) => {
      n += c.length;
      for (const b of c) sum = (sum + b) % 65521;
    });
    st.on('end', () => {
      pod.bodies.push(n);
      if (pod.mode === 'reset') return void st.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
      if (pod.mode === 'fail') {
        st.respond({ ':status': 503 });
        return void st.end('unavailable');
      }
      st.respond({ ':status': 200, 'content-type': 'application/json' });
      st.end(JSON.stringify({ pod: pod.name, n, sum }));
    });
  });
  return server;
}

function body(size: number, seed: number): Buffer {
  const b = Buffer.alloc(size);
  for (let i = 0; i < size; i++) b[i] = (i * 31 + seed) & 0xff;
  return b;
}

function checksum(b: Buffer): number {
  let sum = 0;
  for (const x of b) sum = (sum + x) % 65521;
  return sum;
}

describe('HttpOutbound: retries of requests with bodies', () => {
  const pods = { a: { name: 'a', mode: 'ok', bodies: [] } as Pod, b: { name: 'b', mode: 'ok', bodies: [] } as Pod };
  const servers: Array<http.Server | http2.Http2Server> = [];
  let h1svc: Service;
  let h2svc: Service;
  let state: StateStore;
  let handler: HttpOutbound;
  let front: net.Server;

  function setRetries(retries: RetrySettings): void {
    const policy = (key: string) => ({ serviceKey: key, subsets: [], portSettings: [], loadBalancer: { algorithm: 'ROUND_ROBIN' as const }, routes: [{ matches: [], destinations: [], retries }] });
    state.replace({ ...state.snapshot(), trafficPolicies: new Map([h1svc.key, h2svc.key].map((k) => [k, policy(k)])) } as MeshSnapshot);
  }

  beforeAll(async () => {
    const listen = async (srv: http.Server | http2.Http2Server, ip: string, port: number) => {
      servers.push(srv);
      await new Promise<void>((r) => srv.listen(port, ip, () => r()));
      return (srv.address() as net.AddressInfo).port;
    };
    const p1 = await listen(h1pod(pods.a), '127.0.0.2', 0);
    await listen(h1pod(pods.b), '127.0.0.3', p1);
    const p2 = await listen(h2pod(pods.a), '127.0.0.2', 0);
    await listen(h2pod(pods.b), '127.0.0.3', p2);
    const src = wl('client', '127.0.0.1');
    const wa = wl('a', '127.0.0.2');
    const wb = wl('b', '127.0.0.3');
    h1svc = { key: 'default/up1', name: 'up1', namespace: 'default', vips: ['10.96.0.41'], ports: [{ name: 'http', port: 80, targetPort: p1 }], selector: {}, endpointUids: [wa.uid, wb.uid] };
    h2svc = { key: 'default/up2', name: 'up2', namespace: 'default', vips: ['10.96.0.42'], ports: [{ name: 'http2', port: 80, targetPort: p2 }], selector: {}, endpointUids: [wa.uid, wb.uid] };
    state = new StateStore({
      trustDomain: 'cluster.local',
      nodes: new Map([['n1', { name: 'n1', address: '127.0.0.1' }]]),
      workloads: new Map([src, wa, wb].map((w) => [w.uid, w])),
      services: new Map([h1svc, h2svc].map((s) => [s.key, s])),
      namespaces: new Map([['default', {}]]),
    });
    handler = new HttpOutbound({ state, hbone: { open: () => Promise.reject(new Error('no hbone')) }, nodeName: 'n1', hbonePort: 15008 });
    front = net.createServer((sock) => {
      const svc = sock.localAddress === '127.0.0.6' ? h2svc : h1svc;
      handler.handle(sock, { source: src, sourceIp: '127.0.0.1', service: svc, port: svc.ports[0]! });
    });
    await new Promise<void>((r) => front.listen(0, '0.0.0.0', () => r()));
  });

  afterAll(async () => {
    h2client?.destroy();
    handler?.close();
    await new Promise<void>((r) => front.close(() => r()));
    for (const s of servers) {
      if (s instanceof http.Server) s.closeAllConnections();
      s.close();
    }
  });

  afterEach(() => {
    for (const p of Object.values(pods)) {
      p.mode = 'ok';
      p.bodies.length = 0;
    }
  });

  const port = () => (front.address() as net.AddressInfo).port;

  /** POST with a body written in pieces: chunked (no content-length) unless `withLength`. */
  function h1post(data: Buffer, withLength = false): Promise<{ status: number; json?: { pod: string; n: number; sum: number } }> {
    return new Promise((resolve, reject) => {
      const headers: Record<string, string> = { host: 'up1.default' };
      if (withLength) headers['content-length'] = String(data.length);
      const r = http.request({ host: '127.0.0.1', port: port(), method: 'POST', path: '/upload', headers, agent: false }, (res) => {
        let text = '';
        res.on('data', (d: Buffer) => (text += d.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, json: res.statusCode === 200 ? JSON.parse(text) : undefined }));
      });
      r.on('error', reject);
      for (let off = 0; off < data.length; off += 4096) r.write(data.subarray(off, off + 4096));
      r.end();
    });
  }

  let h2client: http2.ClientHttp2Session | undefined;
  function h2post(data: Buffer): Promise<{ status: number; json?: { pod: string; n: number; sum: number } }> {
    if (!h2client || h2client.closed || h2client.destroyed) {
      h2client = http2.connect(`http://127.0.0.6:${port()}`);
      h2client.on('error', () => undefined);
    }
    const session = h2client;
    return new Promise((resolve, reject) => {
      const q = session.request({ ':method': 'POST', ':path': '/upload' });
      let status = 0;
      let text = '';
      q.on('response', (h) => (status = Number(h[':status'])));
      q.on('data', (d: Buffer) => (text += d.toString()));
      q.on('end', () => resolve({ status, json: status === 200 ? JSON.parse(text) : undefined }));
      q.on('error', reject);
      for (let off = 0; off < data.length; off += 4096) q.write(data.subarray(off, off + 4096));
      q.end();
    });
  }

  for (const [proto, post] of [
    ['HTTP/1.1 chunked', (d: Buffer) => h1post(d)],
    ['HTTP/1.1 content-length', (d: Buffer) => h1post(d, true)],
    ['HTTP/2', (d: Buffer) => h2post(d)],
  ] as const) {
    it(`${proto}: a body within the retry buffer is replayed intact to the healthy endpoint (503 and reset)`, async () => {
      for (const mode of ['fail', 'reset'] as const) {
        pods.b.mode = mode;
        pods.a.bodies.length = 0;
        pods.b.bodies.length = 0;
        setRetries({ attempts: 2, retryOn: mode === 'fail' ? ['5xx'] : ['reset'] });
        for (let i = 0; i < 6; i++) {
          const data = body(20_000 + i * 1000, i);
          const r = await post(data);
          expect(r.status, `${mode} #${i}`).toBe(200);
          expect(r.json).toEqual({ pod: 'a', n: data.length, sum: checksum(data) });
        }
        expect(pods.b.bodies.length, `${mode}: the failing endpoint got requests (so retries happened)`).toBeGreaterThan(0);
        // The failing endpoint received the whole body each time too: every attempt carries all of it.
        expect(pods.b.bodies.every((n) => n >= 20_000)).toBe(true);
      }
    });

    it(`${proto}: a body larger than the retry buffer streams once and is not retried`, async () => {
      pods.b.mode = 'fail';
      setRetries({ attempts: 2, retryOn: ['5xx'] });
      const statuses: number[] = [];
      for (let i = 0; i < 4; i++) {
        const data = body(MAX_RETRY_BODY + 30_000, i);
        const r = await post(data);
        statuses.push(r.status);
        if (r.status === 200) expect(r.json).toEqual({ pod: 'a', n: data.length, sum: checksum(data) });
      }
      expect(statuses.filter((s) => s === 503).length).toBe(pods.b.bodies.length);
      expect(pods.b.bodies.length).toBeGreaterThan(0);
      expect(statuses.filter((s) => s === 200).length).toBe(pods.a.bodies.length);
    });
  }
});
