// `smesh status`, `smesh config KIND` and `smesh top` (dist/cli/main.js) against a real AdminServers on an ephemeral
// port, fed a fixed config dump and real metrics; plus the pure pieces (status warnings, Prometheus text, pair rates).
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import YAML from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AdminServers } from '../../../agent/admin/servers';
import { MeshMetrics } from '../../../agent/telemetry/metrics';
import { buildStatus } from '../../../cli/status';
import { aggregatePairs, ratesBetween } from '../../../cli/top';
import { parsePrometheusText } from '../../../cli/prom-text';
import { parseOperatorFlags } from '../../../cli/output';

const CLI = path.resolve(__dirname, '../../../dist/cli/main.js');
const HOUR = 3600_000;

function run(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { timeout: 20_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? Number((err as NodeJS.ErrnoException & { code?: unknown }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

const now = Date.now();
const iso = (ms: number) => new Date(ms).toISOString();
const DUMP = {
  node: { name: 'node1', address: '198.18.0.1', identity: 'spiffe://cluster.local/smesh/node/node1' },
  trustDomain: 'cluster.local',
  xds: { address: '10.0.0.5:15012', connected: true, connectedSince: iso(now - HOUR), synced: true, types: [{ typeUrl: 't', resources: 3, nacks: 0, rejected: [] }] },
  workloads: [
    {
      uid: 'Kubernetes//Pod/team-a/caller',
      name: 'caller',
      namespace: 'team-a',
      serviceAccount: 'caller-sa',
      node: 'node1',
      ip: '198.18.1.10',
      identity: 'spiffe://cluster.local/ns/team-a/sa/caller-sa',
      meshed: true,
    },
    { uid: 'Kubernetes//Pod/shop/web', name: 'web', namespace: 'shop', serviceAccount: 'web-sa', node: 'node2', ip: '198.18.2.10', identity: 'spiffe://cluster.local/ns/shop/sa/web-sa', meshed: true },
  ],
  services: [{ key: 'shop/web', name: 'web', namespace: 'shop', vips: ['198.19.11.10'], ports: [{ port: 80, targetPort: 8080, appProtocol: 'http' }], endpointUids: ['Kubernetes//Pod/shop/web'] }],
  policies: [{ name: 'allow-caller', namespace: 'shop', action: 'ALLOW', scope: 'workloadSelector', selector: { app: 'web' }, rules: [{}] }],
  certificates: [
    { spiffeId: 'spiffe://cluster.local/ns/team-a/sa/caller-sa', serial: 'AB', notBefore: iso(now - HOUR), notAfter: iso(now + 23 * HOUR), issuer: { subject: 'O=cluster.local, CN=smesh root CA' } },
    { spiffeId: 'spiffe://cluster.local/smesh/node/node1', serial: 'CD', notBefore: iso(now - HOUR), notAfter: iso(now + 20 * HOUR), issuer: { subject: 'O=cluster.local, CN=smesh root CA' } },
  ],
  trustAnchors: [{ subject: 'O=cluster.local, CN=smesh root CA', notAfter: iso(now + 3650 * 24 * HOUR) }],
  datapath: {
    attach: { reused: false, links: ['/sys/fs/bpf/smesh/links/connect4', '/sys/fs/bpf/smesh/links/sockops'] },
    enrolledPods: [{ cookie: '7921', workload: 'Kubernetes//Pod/team-a/caller' }],
  },
  netnsDiscovery: { discovered: {}, unresolved: [] },
};

describe('operator commands against an admin server', () => {
  let servers: AdminServers;
  let admin = '';
  const metrics = new MeshMetrics();

  beforeAll(async () => {
    if (!fs.existsSync(CLI)) throw new Error(`${CLI} missing: build first (npx tsc -p tsconfig.json)`);
    servers = new AdminServers({
      metrics,
      metricsListen: { host: '127.0.0.1', port: 0 },
      readyListen: { host: '127.0.0.1', port: 0 },
      adminListen: { host: '127.0.0.1', port: 0 },
      configDump: () => DUMP,
      logging: { level: 'info', setLevel: () => undefined },
      onQuit: () => undefined,
    });
    await servers.start();
    admin = `127.0.0.1:${servers.addresses().admin!.port}`;
    const pair = { reporter: 'source', source_workload: 'caller', source_workload_namespace: 'team-a', destination_workload: 'web', destination_workload_namespace: 'shop' };
    metrics.tcpOpened.inc(pair, 5);
    metrics.tcpClosed.inc(pair, 3);
    metrics.tcpReceivedBytes.inc(pair, 4096);
    metrics.tcpSentBytes.inc(pair, 1 << 20);
    metrics.requests.inc({ ...pair, response_code: '200' }, 7);
  });

  afterAll(async () => {
    await servers?.close();
  });

  it('status: not ready → exit 1 with a warning naming the missing components; ready → exit 0, table and JSON', async () => {
    servers.markReady('bpf');
    let r = await run(['status', '--admin', admin, '-o', 'json']);
    expect(r.code).toBe(1);
    const waiting = JSON.parse(r.stdout);
    expect(waiting.ready).toBe(false);
    expect(waiting.warnings).toEqual(['not ready: waiting for listeners, certificates']);

    servers.markReady('listeners');
    servers.markReady('certificates');
    r = await run(['status', '--admin', admin, '-o', 'json']);
    expect(r.code, r.stderr).toBe(0);
    const s = JSON.parse(r.stdout);
    expect(s).toMatchObject({
      node: { name: 'node1', address: '198.18.0.1', pid: process.pid },
      ready: true,
      components: { bpf: true, listeners: true, certificates: true },
      controlPlane: { address: '10.0.0.5:15012', connected: true, synced: true, nacks: 0 },
      bpf: { enabled: true, links: ['/sys/fs/bpf/smesh/links/connect4', '/sys/fs/bpf/smesh/links/sockops'] },
      enrolledPods: [{ workload: 'team-a/caller', netnsCookie: '7921' }],
      warnings: [],
    });
    expect(s.certificates.map((c: { identity: string }) => c.identity)).toEqual(DUMP.certificates.map((c) => c.spiffeId));

    r = await run(['status', '--admin', admin]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^Ready: +yes \(bpf ok, listeners ok, certificates ok\)$/m);
    expect(r.stdout).toMatch(/^BPF: +2 link\(s\): connect4, sockops$/m);
    expect(r.stdout).toMatch(/^Enrolled pods: +1: team-a\/caller$/m);
    expect(r.stdout).toMatch(/^Certificates: +2, first expiry in 19h59m \(spiffe:\/\/cluster.local\/smesh\/node\/node1\)$/m);
    expect(r.stdout).toMatch(/^Warnings: +none$/m);
  });

  it('config workloads|services|policies|certificates: tables, and the agent objects as JSON and YAML', async () => {
    let r = await run(['config', 'workloads', '--admin', admin]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.split('\n')[0]).toMatch(/^NAMESPACE +NAME +NODE +IP +PROTOCOL +IDENTITY$/);
    expect(r.stdout).toMatch(/^shop +web +node2 +198\.18\.2\.10 +HBONE +spiffe:\/\/cluster\.local\/ns\/shop\/sa\/web-sa$/m);
    r = await run(['config', 'workloads', '--admin', admin, '-o', 'json']);
    expect(JSON.parse(r.stdout)).toEqual(DUMP.workloads);
    r = await run(['config', 'services', '--admin', admin, '-o=yaml']);
    expect(YAML.parse(r.stdout)).toEqual(DUMP.services);
    r = await run(['config', 'services', '--admin', admin]);
    expect(r.stdout).toMatch(/^shop +web +198\.19\.11\.10 +80→8080\/http +1$/m);
    r = await run(['config', 'policies', '--admin', admin]);
    expect(r.stdout).toMatch(/^shop +allow-caller +ALLOW +app=web +1$/m);
    r = await run(['config', 'certificates', '--admin', admin, '-o', 'json']);
    expect(JSON.parse(r.stdout)).toEqual(DUMP.certificates);
    r = await run(['config', 'certificates', '--admin', admin]);
    expect(r.stdout).toMatch(/^spiffe:\/\/cluster\.local\/smesh\/node\/node1 +CD +\S+ +19h59m +O=cluster\.local, CN=smesh root CA$/m);
  });

  it('top --once: one row per workload pair from the metrics, JSON for scripts', async () => {
    let r = await run(['top', '--once', '--admin', admin, '-o', 'json']);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual([
      { reporter: 'source', source: 'team-a/caller', destination: 'shop/web', opened: 5, closed: 3, active: 2, requests: 7, bytesFromSource: 4096, bytesToSource: 1 << 20 },
    ]);
    r = await run(['top', '--once', '--admin', admin]);
    expect(r.stdout).toMatch(/^REPORTER +SOURCE +DESTINATION +ACTIVE +OPENED +REQUESTS +BYTES OUT +BYTES BACK$/m);
    expect(r.stdout).toMatch(/^source +team-a\/caller +shop\/web +2 +5 +7 +4\.0Ki +1\.0Mi$/m);
  });

  it('errors: unknown kind and flag exit 2; an unreachable agent exits 1 naming the address and what to check', async () => {
    let r = await run(['config', 'pods', '--admin', admin]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('unknown kind "pods": expected one of workloads, services, policies, certificates');
    r = await run(['status', '--admin', admin, '-o', 'xml']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('-o xml: expected table, json or yaml');
    const closed = await new Promise<number>((resolve) => {
      const s = require('node:net')
        .createServer()
        .listen(0, '127.0.0.1', () => {
          const port = s.address().port;
          s.close(() => resolve(port));
        });
    });
    r = await run(['status', '--admin', `127.0.0.1:${closed}`]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`agent admin 127.0.0.1:${closed}/ready: connect ECONNREFUSED`);
    expect(r.stderr).toContain('is the agent running on this node?');
  });
});

describe('operator command pieces', () => {
  it('status warns about the control plane, rejected resources, expiring certificates and anchors, unresolved pods', () => {
    const t = Date.parse('2030-01-01T00:00:00Z');
    const s = buildStatus(
      { ready: true, components: { bpf: true } },
      {
        xds: { address: 'cp:15012', connected: false, nextRetryMs: 800, types: [{ nacks: 2, rejected: [{}] }] },
        certificates: [
          { spiffeId: 'spiffe://td/ns/a/sa/b', notAfter: '2030-01-01T00:30:00Z' },
          { spiffeId: 'spiffe://td/ns/a/sa/c', notAfter: '2029-12-31T23:00:00Z' },
        ],
        trustAnchors: [{ subject: 'CN=root', notAfter: '2030-01-11T00:00:00Z' }],
        datapath: { disabled: true },
        netnsDiscovery: { unresolved: [{}] },
      },
      t,
    );
    expect(s.warnings).toEqual([
      'control plane cp:15012 not connected (retry in 800 ms): serving the last known state',
      '1 xDS resource(s) rejected (NACKed): see smesh config -o json / the agent log',
      'BPF datapath disabled: no connection is redirected on this node',
      '1 local pod(s) without a network namespace yet: not enrolled',
      'certificate spiffe://td/ns/a/sa/b expires in 30m0s: renewal failing? (the CA or control plane may be unreachable)',
      'certificate spiffe://td/ns/a/sa/c expired: renewal failing? (the CA or control plane may be unreachable)',
      'trust anchor CN=root expires in 10d0h: rotate the mesh root',
    ]);
    expect(s.controlPlane).toMatchObject({ connected: false, nacks: 2, rejected: 1 });
  });

  it('parses Prometheus text: escaped label values, +Inf, comments; skips malformed lines', () => {
    const samples = parsePrometheusText('# HELP x y\n# TYPE x counter\nx{a="q\\"uote",b="back\\\\slash",c="new\\nline"} 3\nh_bucket{le="+Inf"} +Inf\nbroken{a=1} 2\nplain 4.5\n');
    expect(samples).toEqual([
      { name: 'x', labels: { a: 'q"uote', b: 'back\\slash', c: 'new\nline' }, value: 3 },
      { name: 'h_bucket', labels: { le: '+Inf' }, value: Infinity },
      { name: 'plain', labels: {}, value: 4.5 },
    ]);
  });

  it('top sums TCP and HTTP metrics per reporter and pair, and rates between two samples', () => {
    const l = (reporter: string, src: string, dst: string) => ({ reporter, source_workload: src, source_workload_namespace: 'ns', destination_workload: dst, destination_workload_namespace: 'ns' });
    const first = aggregatePairs([
      { name: 'istio_tcp_connections_opened_total', labels: l('source', 'a', 'b'), value: 10 },
      { name: 'istio_request_bytes_sum', labels: { ...l('destination', 'a', 'b'), response_code: '200' }, value: 100 },
      { name: 'istio_request_bytes_sum', labels: { ...l('destination', 'a', 'b'), response_code: '503' }, value: 50 },
      { name: 'istio_response_bytes_sum', labels: l('destination', 'a', 'b'), value: 1000 },
    ]);
    expect(first.map((p) => [p.reporter, p.source, p.destination, p.opened, p.bytesFromSource, p.bytesToSource])).toEqual([
      ['destination', 'ns/a', 'ns/b', 0, 150, 1000],
      ['source', 'ns/a', 'ns/b', 10, 0, 0],
    ]);
    const second = aggregatePairs([
      { name: 'istio_tcp_connections_opened_total', labels: l('source', 'a', 'b'), value: 30 },
      { name: 'istio_tcp_connections_opened_total', labels: l('source', 'a', 'c'), value: 4 },
    ]);
    const rates = ratesBetween(first, second, 2);
    expect(rates.get('source\u0000ns/a\u0000ns/b')?.connectionsPerSecond).toBe(10);
    expect(rates.get('source\u0000ns/a\u0000ns/c')?.connectionsPerSecond).toBe(2);
  });

  it('flags: --admin forms, --interval bounds', () => {
    expect(parseOperatorFlags('top', ['--admin', '[::1]:15000', '--interval', '1']).admin).toEqual({ host: '::1', port: 15000 });
    expect(() => parseOperatorFlags('top', ['--interval', '0'])).toThrow(/--interval 0: expected seconds/);
    expect(() => parseOperatorFlags('status', ['--admin', 'nohost'])).toThrow(/expected HOST:PORT/);
  });
});
