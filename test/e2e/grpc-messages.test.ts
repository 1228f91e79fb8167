// gRPC message counts end to end: a bidirectional-streaming call (3 request messages, 2 responses) through the mesh on a port named grpc, counted by both reporters across nodes and on one node.
import { describe, it, expect, beforeAll, beforeEach, afterAll } from 'vitest';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { startAgentsInOrder, stopAgentsKeepingLogs } from '../helpers/e2e-agents';
import { createTopology, privilegeProblem, AGENT_CLI, APPS_DIR, NODE_BIN, type Topology, type AgentHandle } from '../helpers/topology';
import { waitExit, lastJsonLine } from '../helpers/proc';
import { parseMetrics, sum, describeSeries } from '../helpers/metrics';
import { pollUntil } from '../helpers/logs';

const problem = privilegeProblem();
const VIP = '198.19.9.70';
const TARGET_PORT = 9090;
const APP = path.join(APPS_DIR, 'grpc-bidi.js');
const NAMES = ['istio_request_messages_total', 'istio_response_messages_total', 'istio_requests_total'];

describe.skipIf(problem !== null)(`gRPC message counts e2e${problem ? ` (skipped: ${problem})` : ''}`, () => {
  let topo: Topology | undefined;
  const agents: AgentHandle[] = [];
  let setupError: Error | null = null;

  beforeEach(() => {
    if (setupError) throw setupError;
  });

  beforeAll(async () => {
    try {
      if (!fs.existsSync(AGENT_CLI)) throw new Error(`${AGENT_CLI} not found: build first (npx tsc -p tsconfig.json)`);
      topo = await createTopology({
        nodes: ['node1', 'node2'],
        pods: [
          { name: 'remote-client', node: 'node1' },
          { name: 'local-client', node: 'node2' },
          { name: 'chat', node: 'node2' },
        ],
      });
      await topo.spawnInPod('chat', NODE_BIN, [APP, 'server', '--port', String(TARGET_PORT)]).waitForLine(/"listening"/, 10_000);
      const cfgDir = topo.makeTempDir('config');
      topo.writeConfig(cfgDir, { services: [{ name: 'chat', vip: VIP, ports: [{ name: 'grpc', port: 80, targetPort: TARGET_PORT }], selector: { app: 'chat' } }] });
      await startAgentsInOrder(topo, ['node1', 'node2'], cfgDir, agents);
    } catch (e) {
      setupError = e as Error;
    }
  }, 180_000);

  afterAll(async () => {
    await stopAgentsKeepingLogs(agents, 'grpc-messages');
    await topo?.cleanup();
  }, 60_000);

  async function chat(pod: string): Promise<void> {
    const proc = topo!.spawnInPod(pod, NODE_BIN, [APP, 'client', '--target', `${VIP}:80`, '--send', '3', '--reply', '2']);
    const r = await waitExit(proc, 20_000);
    const out = lastJsonLine<{ received: unknown[]; error: unknown }>(r.stdout);
    expect(out.error).toBeNull();
    expect(out.received).toHaveLength(2);
  }

  /** Message counts of one client's calls, per reporter, as the agent's /metrics shows them once the call is reported. */
  async function counts(agent: AgentHandle, client: string, reporter: 'source' | 'destination'): Promise<{ requests: number; req: number; res: number }> {
    const match = { reporter, source_workload: client, destination_workload: 'chat', destination_service: 'chat.default.svc.cluster.local', request_protocol: 'grpc' };
    const read = async () => {
      const samples = parseMetrics(await agent.metrics());
      return {
        requests: sum(samples, 'istio_requests_total', match),
        req: sum(samples, 'istio_request_messages_total', match),
        res: sum(samples, 'istio_response_messages_total', match),
        all: describeSeries(samples, NAMES),
      };
    };
    const seen = await pollUntil(read, (c) => c.requests >= 1, 10_000);
    return { requests: seen.requests, req: seen.req, res: seen.res };
  }

  it('across nodes: the source (client node) and the destination (server node) each count 3 request and 2 response messages', async () => {
    await chat('remote-client');
    expect(await counts(agents[0]!, 'remote-client', 'source')).toEqual({ requests: 1, req: 3, res: 2 });
    expect(await counts(agents[1]!, 'remote-client', 'destination')).toEqual({ requests: 1, req: 3, res: 2 });
  });

  it('on one node: the agent reports the call as source and as destination, 3 and 2 messages each', async () => {
    await chat('local-client');
    expect(await counts(agents[1]!, 'local-client', 'source')).toEqual({ requests: 1, req: 3, res: 2 });
    expect(await counts(agents[1]!, 'local-client', 'destination')).toEqual({ requests: 1, req: 3, res: 2 });
  });
});
