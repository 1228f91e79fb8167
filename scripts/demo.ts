// `make demo`: a two-node mesh in network namespaces on the embedded default, traffic through it, a report, then Ctrl-C cleanup.
import * as fs from 'node:fs';
import { startSweeper } from '../test/helpers/sweeper';
import { createTopology, privilegeProblem, AGENT_CLI, AGENT_PORTS, type Topology, type AgentHandle, type ServiceSpec } from '../test/helpers/topology';
import { parseMetrics } from '../test/helpers/metrics';

const VIP = { web: '198.19.0.10', cache: '198.19.0.11' } as const;

function say(text = ''): void {
  process.stdout.write(text + '\n');
}

async function main(): Promise<void> {
  const problem = privilegeProblem();
  if (problem) throw new Error(`make demo needs root: ${problem}`);
  if (!fs.existsSync(AGENT_CLI)) throw new Error(`${AGENT_CLI} is missing: run make build`);

  say('smesh demo: building a two-node topology in network namespaces (addresses from 198.18.0.0/15)…');
  const runId = `demo${process.pid}`;
  // Ctrl-C can reach tsx's launcher and this process together; the launcher may kill this one mid-cleanup (the
  // teardown is synchronous), which left the namespaces behind: a detached sweeper removes whatever is left.
  startSweeper(runId);
  const topo: Topology = await createTopology({
    runId,
    nodes: ['node1', 'node2'],
    pods: [
      { name: 'frontend', node: 'node1', namespace: 'default', serviceAccount: 'frontend' },
      { name: 'cache', node: 'node1', namespace: 'default', serviceAccount: 'cache' },
      { name: 'web', node: 'node2', namespace: 'default', serviceAccount: 'web' },
      { name: 'legacy', node: 'node1', enrolled: false },
    ],
  });
  const agents: AgentHandle[] = [];
  let stopping = false;
  const shutdown = async (code: number): Promise<never> => {
    if (!stopping) {
      stopping = true;
      say('\nstopping agents and removing the topology…');
      for (const a of agents) await a.stop(5000).catch(() => undefined);
      await topo.cleanup();
      say('clean.');
    }
    process.exit(code);
  };
  process.on('SIGINT', () => void shutdown(0));
  process.on('SIGTERM', () => void shutdown(0));

  try {
    await Promise.all([
      topo.startApp('web', 'http-server', ['--port', '8080', '--pod', 'web']),
      topo.startApp('web', 'sink-server', ['--port', '9001']),
      topo.startApp('cache', 'echo-server', ['--port', '6379', '--peer']),
    ]);
    const services: ServiceSpec[] = [
      {
        name: 'web',
        vip: VIP.web,
        ports: [
          { name: 'http', port: 80, targetPort: 8080 },
          { name: 'upload', port: 9001, targetPort: 9001 },
        ],
        selector: { app: 'web' },
      },
      { name: 'cache', vip: VIP.cache, ports: [{ name: 'tcp-cache', port: 6379, targetPort: 6379 }], selector: { app: 'cache' } },
    ];
    const cfgDir = topo.makeTempDir('config');
    topo.writeConfig(cfgDir, { services });
    say(`mesh config (embedded default, standalone control plane and CA): ${cfgDir}`);
    for (const node of topo.nodes) {
      const a = topo.startAgent(node, cfgDir);
      agents.push(a);
      await a.waitReady(60_000);
      say(`  agent on ${node.name} ready: HBONE ${node.ip}:${AGENT_PORTS.inbound}, capture 169.254.7.1:${AGENT_PORTS.outbound}, BPF on ${node.cgroupRoot}`);
    }

    say('\ntraffic from pod "frontend" (node1, unmodified app, no sidecar):');
    const http = await topo.runClient('frontend', ['http', '--url', `http://${VIP.web}/index.html`]);
    say(
      `  GET http://${VIP.web}/index.html → ${http.ok ? `answered by pod ${http.body?.pod} (node2), the app saw its peer as ${http.peer?.address}:${http.peer?.port}` : `failed: ${JSON.stringify(http)}`}`,
    );
    const bulk = await topo.runClient('frontend', ['bulk', '--host', VIP.web, '--port', '9001', '--bytes', String(20 * 1024 * 1024)], 60_000);
    say(
      `  upload 20 MiB to ${VIP.web}:9001 → ${bulk.error ? `failed: ${JSON.stringify(bulk.error)}` : `server received ${bulk.reply?.bytes ?? '?'} bytes, sha256 ${bulk.match ? 'matches' : 'DIFFERS'} (${bulk.mbps} Mbit/s)`}`,
    );
    const cache = await topo.runClient('frontend', ['peer', '--host', VIP.cache, '--port', '6379']);
    say(
      `  connect ${VIP.cache}:6379 (same node) → the app saw its peer as ${cache.peer?.address}:${cache.peer?.port}; the cache pod saw the connection come from ${cache.serverSawPeer?.address ?? JSON.stringify(cache)} (the node proxy)`,
    );
    const legacy = await topo.runClient('legacy', ['peer', '--host', topo.pod('cache').ip, '--port', '6379']);
    say(`  pod "legacy" is not enrolled: its connection to ${topo.pod('cache').ip}:6379 went direct; cache saw ${legacy.serverSawPeer?.address ?? JSON.stringify(legacy)} (its own address)`);

    say("\nwho called whom (from the node agents' Prometheus metrics):");
    for (const a of agents) {
      const samples = parseMetrics(await a.metrics());
      for (const s of samples.filter((x) => x.name === 'istio_tcp_connections_opened_total')) {
        const l = s.labels;
        const sent = samples.find((x) => x.name === 'istio_tcp_received_bytes_total' && JSON.stringify(x.labels) === JSON.stringify(l))?.value ?? 0;
        say(
          `  [${a.node.name} ${l.reporter}] ${l.source_principal || l.source_workload} → ${l.destination_principal || l.destination_workload} (${l.destination_service || '-'}): ${s.value} connection(s), ${sent} bytes client→server, ${l.connection_security_policy}`,
        );
      }
      for (const s of samples.filter((x) => x.name === 'istio_requests_total')) {
        const l = s.labels;
        say(`  [${a.node.name} ${l.reporter}] HTTP ${l.source_workload} → ${l.destination_service}: ${s.value} request(s) answered ${l.response_code}`);
      }
    }
    say('\nexplore while it runs:');
    say(`  ip netns exec ${topo.node('node1').netns} curl -s ${topo.node('node1').ip}:${AGENT_PORTS.metrics}/metrics | grep istio_tcp`);
    say(`  ip netns exec ${topo.node('node1').netns} curl -s 127.0.0.1:${AGENT_PORTS.admin}/config_dump`);
    say(`  bpftool cgroup show ${topo.node('node1').cgroupRoot}`);
    say('\nthe mesh stays up; press Ctrl-C to stop and clean up.');
    if (process.env.SMESH_DEMO_EXIT === '1') await shutdown(0);
    await new Promise(() => undefined);
  } catch (err) {
    process.stderr.write(`demo failed: ${(err as Error).stack ?? err}\n`);
    for (const a of agents) process.stderr.write(`--- agent ${a.node.name} ---\n${a.logs().split('\n').slice(-20).join('\n')}\n`);
    await shutdown(1);
  }
}

void main();
