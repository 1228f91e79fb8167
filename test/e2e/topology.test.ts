// Harness self-test without the mesh: the namespaced topology routes pod↔pod and node↔pod directly and cleans up after itself.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import * as fs from 'node:fs';
import { createTopology, cleanupStale, privilegeProblem, PREFIX, CGROUP2_ROOT, BPFFS_ROOT, NETNS_DIR, CAPTURE_IP, type Topology } from '../helpers/topology';
import { spawnCaptured, waitExit } from '../helpers/proc';

const problem = privilegeProblem();

describe.skipIf(problem !== null)(`e2e harness topology${problem ? ` (skipped: ${problem})` : ''}`, () => {
  let topo: Topology;

  beforeAll(async () => {
    const t0 = Date.now();
    topo = await createTopology({
      nodes: ['node1', 'node2'],
      pods: [
        { name: 'a', node: 'node1' },
        { name: 'b', node: 'node1', enrolled: false },
        { name: 'c', node: 'node2' },
      ],
    });
    expect(Date.now() - t0).toBeLessThan(15_000);
    await topo.startApp('c', 'echo-server', ['--port', '9000', '--peer']);
    await topo.startApp('b', 'sink-server', ['--port', '9001']);
    await topo.startApp('c', 'http-server', ['--port', '8080', '--pod', 'c']);
  });

  afterAll(async () => {
    await topo?.cleanup();
  });

  it('lays out addresses, cgroups and bpffs dirs per CONTRACTS.md', () => {
    expect(topo.node('node1')).toMatchObject({ ip: '198.18.0.1', netns: `${PREFIX}-${topo.runId}-node1`, bpffsDir: `${BPFFS_ROOT}/${PREFIX}-${topo.runId}-node1` });
    expect(topo.node('node2').cgroupRoot).toBe(`${CGROUP2_ROOT}/${PREFIX}-${topo.runId}/node2`);
    expect(topo.node('node2').agentCgroup).toBe(`${CGROUP2_ROOT}/${PREFIX}-${topo.runId}/node2/smesh-agent`);
    expect(topo.pod('a').ip).toBe('198.18.1.10');
    expect(topo.pod('b').ip).toBe('198.18.1.11');
    expect(topo.pod('c').ip).toBe('198.18.2.10');
    for (const p of topo.pods) expect(fs.existsSync(p.cgroup)).toBe(true);
  });

  it('puts pod processes in the pod cgroup and netns', async () => {
    const a = topo.pod('a');
    const r = await topo.execInPod(a, 'sh', ['-c', 'cat /proc/self/cgroup; ip -br addr show dev eth0']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`0::${a.cgroup.slice(CGROUP2_ROOT.length)}`);
    expect(r.stdout).toContain(`${a.ip}/24`);
    const n = await topo.execInNode('node1', 'sh', ['-c', 'cat /proc/self/cgroup; ip -br addr show dev lo; sysctl -n net.ipv4.ip_forward']);
    expect(n.stdout).toContain(`0::${topo.node('node1').agentCgroup.slice(CGROUP2_ROOT.length)}`);
    expect(n.stdout).toContain(`${CAPTURE_IP}/32`);
    expect(n.stdout.trim().endsWith('1')).toBe(true);
  });

  it('routes a pod on node1 to a pod on node2 directly (echo, peer = source pod IP)', async () => {
    const tcp = await topo.runClient('a', ['tcp', '--host', topo.pod('c').ip, '--port', '9000', '--send', 'hello across nodes']);
    expect(tcp.ok, JSON.stringify(tcp)).toBe(true);
    expect(tcp.received).toBe(`peer ${topo.pod('a').ip}:${tcp.local.port}\nhello across nodes`);
    const peer = await topo.runClient('a', ['peer', '--host', topo.pod('c').ip, '--port', '9000']);
    expect(peer.peer).toEqual({ address: topo.pod('c').ip, port: 9000 });
    expect(peer.serverSawPeer.address).toBe(topo.pod('a').ip);
  });

  it('routes same-node pods and node → pod, and HTTP from the node netns', async () => {
    const bulk = await topo.runClient('a', ['bulk', '--host', topo.pod('b').ip, '--port', '9001', '--bytes', String(5 * 1024 * 1024)]);
    expect(bulk.ok, JSON.stringify(bulk)).toBe(true);
    expect(bulk.reply.bytes).toBe(5 * 1024 * 1024);
    const http = await topo.httpGetInNode('node1', `http://${topo.pod('c').ip}:8080/hi`);
    expect(http.status).toBe(200);
    expect(JSON.parse(http.body)).toMatchObject({ pod: 'c', method: 'GET', url: '/hi', peer: expect.stringMatching(/^198\.18\.0\.1:/) });
    const fromPod = await topo.runClient('c', ['http', '--url', `http://${topo.pod('c').ip}:8080/self`]);
    expect(fromPod.body.pod).toBe('c');
  });

  it('writes a config with enrolled pods only', () => {
    const dir = topo.makeTempDir('cfg');
    const file = topo.writeConfig(dir, { services: [{ name: 'svc', vip: '198.19.0.50', port: 80, targetPort: 8080, selector: { app: 'c' } }] });
    const text = fs.readFileSync(file, 'utf8');
    expect(text).toContain('kind: MeshConfig');
    expect(text).toContain(`smesh.io/netns: ${topo.pod('a').netnsPath}`);
    expect(text).not.toContain(topo.pod('b').netnsPath);
    expect(text).toContain('clusterIP: 198.19.0.50');
    expect(text).toContain('address: 198.18.0.2');
  });

  it('sweeps leftovers of a dead earlier run (processes killed first)', async () => {
    const stale = `${PREFIX}-e2e000000`;
    const cg = `${CGROUP2_ROOT}/${stale}/node1/pod`;
    fs.mkdirSync(cg, { recursive: true });
    fs.mkdirSync(`${BPFFS_ROOT}/${stale}-node1/links`, { recursive: true });
    await waitExit(spawnCaptured('ip', ['netns', 'add', `${stale}-node1`]), 5000);
    const sleeper = spawnCaptured('sh', ['-c', 'echo $$ > "$1/cgroup.procs" && exec sleep 60', 'sh', cg]);
    await new Promise((r) => setTimeout(r, 200));
    expect(fs.readFileSync(`${cg}/cgroup.procs`, 'utf8').trim()).not.toBe('');
    const report = cleanupStale();
    expect(report.cgroups).toContain(`${CGROUP2_ROOT}/${stale}`);
    expect(report.netns).toContain(`${stale}-node1`);
    expect(report.bpffs).toContain(`${BPFFS_ROOT}/${stale}-node1`);
    expect((await sleeper.exited).signal).toBe('SIGKILL');
    expect(fs.existsSync(`${CGROUP2_ROOT}/${stale}`)).toBe(false);
    expect(fs.existsSync(`${NETNS_DIR}/${stale}-node1`)).toBe(false);
    // The live run is never touched by the sweep.
    expect(topo.leftovers().length).toBeGreaterThan(0);
    expect(fs.existsSync(topo.node('node1').netnsPath)).toBe(true);
  });

  it('cleanup removes everything and is idempotent', async () => {
    const extra = await createTopology({ nodes: ['n1'], pods: [{ name: 'p', node: 'n1' }] });
    const echo = await extra.startApp('p', 'echo-server', ['--port', '9000']);
    expect(extra.leftovers().length).toBeGreaterThan(0);
    await extra.cleanup();
    await extra.cleanup();
    expect(extra.leftovers()).toEqual([]);
    expect((await echo.exited).signal).toBe('SIGKILL');
  });
});
