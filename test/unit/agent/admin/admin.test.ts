// Admin, readiness and metrics servers on ephemeral ports; bind errors; log level changes and key redaction.
import * as http from 'node:http';
import * as net from 'node:net';
import { Writable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { AdminServers } from '../../../../agent/admin/servers';
import { LogHub } from '../../../../core/telemetry/logger';
import { MeshMetrics } from '../../../../agent/telemetry/metrics';
import { listen } from '../../fixtures/proxy';

function request(port: number, path: string, method = 'GET'): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, method, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

function memoryLog(): { hub: LogHub; lines: () => Array<Record<string, unknown>> } {
  const chunks: string[] = [];
  const dest = new Writable({
    write(chunk: Buffer, _enc, cb) {
      chunks.push(chunk.toString());
      cb();
    },
  });
  const hub = new LogHub({ level: 'info', destination: dest });
  return {
    hub,
    lines: () =>
      chunks
        .join('')
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as Record<string, unknown>),
  };
}

describe('AdminServers', () => {
  let servers: AdminServers | undefined;
  afterEach(async () => {
    await servers?.close();
    servers = undefined;
  });

  it('serves readiness (503 until every component is ready), metrics, config_dump, memory, logging, quitquitquit', async () => {
    const { hub } = memoryLog();
    const metrics = new MeshMetrics();
    let quit = 0;
    servers = new AdminServers({
      metrics,
      metricsListen: { host: '127.0.0.1', port: 0 },
      readyListen: { host: '127.0.0.1', port: 0 },
      adminListen: { host: '127.0.0.1', port: 0 },
      configDump: () => ({ workloads: new Map([['default/web-1', { ip: '198.18.1.10' }]]), cookie: 5n }),
      logging: hub,
      onQuit: () => quit++,
    });
    await servers.start();
    const a = servers.addresses();
    let r = await request(a.ready!.port, '/healthz/ready');
    expect(r.status).toBe(503);
    expect(r.body).toContain('bpf, listeners, certificates');
    servers.markReady('bpf');
    servers.markReady('listeners');
    expect((await request(a.ready!.port, '/healthz/ready')).status).toBe(503);
    servers.markReady('certificates');
    expect((await request(a.ready!.port, '/healthz/ready')).status).toBe(200);

    metrics.refused.inc({ direction: 'outbound', reason: 'loop' });
    r = await request(a.metrics!.port, '/metrics');
    expect(r.status).toBe(200);
    expect(r.body).toContain('smesh_refused_connections_total{direction="outbound",reason="loop"} 1');
    expect(r.body).toContain('# TYPE istio_tcp_connections_opened_total counter');

    r = await request(a.admin!.port, '/config_dump');
    expect(JSON.parse(r.body)).toEqual({ workloads: { 'default/web-1': { ip: '198.18.1.10' } }, cookie: '5' });

    r = await request(a.admin!.port, '/memory');
    const mem = JSON.parse(r.body);
    expect(mem.rss).toBeGreaterThan(mem.heapUsed);
    expect(mem.heapSpaces.new_space.size).toBeGreaterThan(0);
    expect(mem.heapSpaces.old_space.used).toBeGreaterThan(0);

    r = await request(a.admin!.port, '/logging?level=debug', 'POST');
    expect(r.status).toBe(200);
    expect(hub.level).toBe('debug');
    expect((await request(a.admin!.port, '/logging?level=loud', 'POST')).status).toBe(400);

    expect((await request(a.admin!.port, '/quitquitquit')).status).toBe(405);
    expect((await request(a.admin!.port, '/quitquitquit', 'POST')).status).toBe(200);
    await new Promise((res) => setImmediate(res));
    expect(quit).toBe(1);
  });

  it('fails loudly with SMESH_ERR_BIND naming the port when a port is taken', async () => {
    const blocker = net.createServer();
    const port = await listen(blocker);
    try {
      servers = new AdminServers({
        metrics: new MeshMetrics(),
        metricsListen: { host: '127.0.0.1', port: 0 },
        readyListen: { host: '127.0.0.1', port },
        adminListen: { host: '127.0.0.1', port: 0 },
        configDump: () => ({}),
        logging: { level: 'info', setLevel: () => undefined },
        onQuit: () => undefined,
      });
      await expect(servers.start()).rejects.toMatchObject({ code: 'SMESH_ERR_BIND', message: expect.stringContaining(`127.0.0.1:${port}`) });
      expect(Object.keys(servers.addresses())).toEqual([]); // the metrics server bound first was closed again
    } finally {
      await new Promise<void>((r) => blocker.close(() => r()));
    }
  });
});

describe('LogHub', () => {
  it('changes the level of existing component loggers and redacts key material', () => {
    const { hub, lines } = memoryLog();
    const child = hub.child('identity');
    child.debug('hidden');
    hub.setLevel('debug');
    child.debug({ cert: { keyPem: '-----BEGIN PRIVATE KEY-----x', certPem: 'c' }, privateKey: 'k' }, 'visible');
    hub.flush();
    const out = lines();
    expect(out.map((l) => l.msg)).toEqual(['visible']);
    expect(out[0]!.component).toBe('identity');
    expect(JSON.stringify(out[0])).not.toContain('PRIVATE KEY');
    expect((out[0]!.cert as Record<string, unknown>).keyPem).toBe('[redacted]');
    expect(out[0]!.privateKey).toBe('[redacted]');
    expect(() => hub.setLevel('verbose')).toThrow(/not one of/);
  });
});
