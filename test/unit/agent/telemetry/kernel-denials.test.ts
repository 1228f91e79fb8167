// KernelDenialReporter: kernel per-connection denial totals become Istio TCP metrics with response_flags DENY, once per connection, across scrapes and LRU evictions.
import { describe, it, expect } from 'vitest';
import { MeshMetrics } from '../../../../agent/telemetry/metrics';
import { KernelDenialReporter, type KernelDenialSource } from '../../../../agent/telemetry/kernel-denials';
import { wl } from '../../fixtures/proxy';

function setup() {
  const caller = wl('caller-1', '198.18.1.10', 'node1');
  const server = wl('server-1', '198.18.2.10', 'node2');
  const denies: Array<{ workloadId: number; ip: string; port: number; count: number }> = [];
  const drops: Array<{ sourceIp: string; ip: string; port: number; count: number }> = [];
  const source: KernelDenialSource = { connectDenyCounts: () => denies, strictDropCounts: () => drops };
  const metrics = new MeshMetrics();
  const logged: object[] = [];
  metrics.accessLog = { info: (o) => logged.push(o) };
  const reporter = new KernelDenialReporter(metrics, source, {
    workloadById: (id) => (id === 7 ? caller : undefined),
    workloadByIp: (ip) => [caller, server].find((w) => w.ip === ip),
    serviceByIp: (ip) => (ip === '198.19.0.1' ? { name: 'server', namespace: 'default', host: 'server.default.svc.cluster.local' } : undefined),
  });
  metrics.onScrape(() => reporter.flush());
  const opened = async (match: Record<string, string>) =>
    (await metrics.tcpOpened.get()).values.filter((v) => Object.entries(match).every(([k, x]) => v.labels[k as keyof typeof v.labels] === x)).reduce((n, v) => n + v.value, 0);
  return { metrics, denies, drops, opened, logged };
}

describe('KernelDenialReporter', () => {
  it('adds only what the kernel counted since the last scrape, labelled by source workload and destination', async () => {
    const t = setup();
    t.denies.push({ workloadId: 7, ip: '198.19.0.1', port: 80, count: 3 });
    await t.metrics.text();
    expect(await t.opened({ reporter: 'source', source_workload: 'caller', destination_service_name: 'server', response_flags: 'DENY' })).toBe(3);
    t.denies[0]!.count = 5;
    await t.metrics.text();
    await t.metrics.text(); // nothing new
    expect(await t.opened({ reporter: 'source', response_flags: 'DENY' })).toBe(5);
    const denied = (await t.metrics.connectDenials.get()).values;
    expect(denied).toEqual([expect.objectContaining({ labels: { source_workload: 'caller', source_workload_namespace: 'default' }, value: 5 })]);
    // One access line per batch, not per connection.
    expect(t.logged).toHaveLength(2);
    expect(t.logged[1]).toMatchObject({ connections: 2, response_flags: 'DENY', 'src.workload': 'caller' });
  });

  it('STRICT drops are reported by the destination, with the source workload when its address is known', async () => {
    const t = setup();
    t.drops.push({ sourceIp: '198.18.1.10', ip: '198.18.2.10', port: 9000, count: 1 }, { sourceIp: '203.0.113.5', ip: '198.18.2.10', port: 9000, count: 2 });
    await t.metrics.text();
    expect(await t.opened({ reporter: 'destination', source_workload: 'caller', destination_workload: 'server', response_flags: 'DENY', connection_security_policy: 'none' })).toBe(1);
    expect(await t.opened({ reporter: 'destination', source_workload: 'unknown', destination_workload: 'server', response_flags: 'DENY' })).toBe(2);
  });

  it('a key evicted from the kernel LRU and created again counts from its new total', async () => {
    const t = setup();
    t.drops.push({ sourceIp: '198.18.1.10', ip: '198.18.2.10', port: 9000, count: 4 });
    await t.metrics.text();
    t.drops.length = 0; // evicted
    await t.metrics.text();
    t.drops.push({ sourceIp: '198.18.1.10', ip: '198.18.2.10', port: 9000, count: 1 });
    await t.metrics.text();
    expect(await t.opened({ reporter: 'destination', response_flags: 'DENY' })).toBe(5);
  });
});
