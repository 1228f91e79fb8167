// TrafficShaping end to end on the two-node namespaced topology: connection rate, maxConnections (Reject and Queue), HTTP requests/s (outbound and inbound rules, same node and across nodes), bytes/s in the native engine trip, are counted and recover; invalid resources refused by field; /config_dump.
import { describe, it, expect, beforeAll, beforeEach, afterAll } from 'vitest';
import * as fs from 'node:fs';
import * as path from 'node:path';
import YAML from 'yaml';
import { createTopology, privilegeProblem, AGENT_CLI, AGENT_PORTS, APPS_DIR, NODE_BIN, type Topology, type AgentHandle, type ServiceSpec } from '../helpers/topology';
import { expectedDataplane, startAgentsInOrder, startHeldClient, stopAgentsKeepingLogs, stopHeldClients } from '../helpers/e2e-agents';
import { lastJsonLine, tail, waitExit, type CapturedProcess } from '../helpers/proc';
import { pollUntil } from '../helpers/logs';
import { parseMetrics, sum } from '../helpers/metrics';

const problem = privilegeProblem();
const ECHO_PORT = 9000;
const SINK_PORT = 9001;
/** bytesPerSecond upload of the bw-client → sink rule: 2 Mbit/s = 250 000 bytes/s. */
const BW_UPLOAD_BYTES = 250_000;
const WEB_TARGET = 8080;
const VIP = { echo: '198.19.14.10', webLocal: '198.19.14.11', webRemote: '198.19.14.12', inLocal: '198.19.14.13', inRemote: '198.19.14.14', sink: '198.19.14.15', sinkLocal: '198.19.14.16' } as const;
const ns = 'default';
const svcHost = (name: string) => `${name}.${ns}.svc.cluster.local`;
/** Every bucket refills this often: short, so recovery is quick; trips are asserted on the first over-limit unit. */
const FILL = '2s';

const shaping = (name: string, app: string, spec: Record<string, unknown>) => ({
  apiVersion: 'smesh.io/v1alpha1',
  kind: 'TrafficShaping',
  metadata: { name, namespace: ns },
  spec: { selector: { matchLabels: { app } }, ...spec },
});

const SHAPINGS = [
  shaping('conn-rate', 'rate-client', { outbound: [{ name: 'echo-cps', service: 'echo', connectionRate: { maxTokens: 3, tokensPerFill: 3, fillInterval: FILL } }] }),
  shaping('conn-cap', 'cap-client', { outbound: [{ name: 'two', service: 'echo', maxConnections: 2 }] }),
  shaping('conn-queue', 'queue-client', { outbound: [{ name: 'one', service: 'echo', maxConnections: 1, overLimit: { action: 'Queue', maxWait: '3s' } }] }),
  shaping('http-out', 'http-client', {
    outbound: [
      { name: 'local-rps', service: 'web-local', requestRate: { maxTokens: 3, tokensPerFill: 3, fillInterval: FILL } },
      { name: 'remote-rps', service: 'web-remote', requestRate: { maxTokens: 3, tokensPerFill: 3, fillInterval: FILL } },
    ],
  }),
  shaping('in-local', 'in-local', { inbound: [{ name: 'rps', service: 'in-local', requestRate: { maxTokens: 3, tokensPerFill: 3, fillInterval: FILL } }] }),
  shaping('in-remote', 'in-remote', { inbound: [{ name: 'rps', service: 'in-remote', requestRate: { maxTokens: 3, tokensPerFill: 3, fillInterval: FILL } }] }),
  shaping('classes', 'http-client', { outbound: [{ name: 'interactive', priority: 'latency', match: [{ headers: { 'x-class': { exact: 'interactive' } } }] }] }),
  shaping('bw', 'bw-client', {
    priority: 'bulk',
    weight: 50,
    outbound: [
      { name: 'up', service: 'sink', bytesPerSecond: { upload: '2M' } },
      { name: 'up-local', service: 'sink-local', bytesPerSecond: { upload: '2M' } },
    ],
  }),
];

interface ConnsResult {
  outcomes: string[];
  results: Array<{ outcome: string; connected: boolean; code?: string }>;
}
interface HttpOne {
  status?: number;
  error?: string;
  retryAfter?: string;
  policy?: string;
  ratelimit?: string;
  body?: string;
}
interface HttpResult {
  statuses: Record<string, number>;
  results: HttpOne[];
}

describe.skipIf(problem !== null)(`TrafficShaping e2e: rate and connection limits${problem ? ` (skipped: ${problem})` : ''}`, () => {
  let topo: Topology;
  const agents: AgentHandle[] = [];
  const held: CapturedProcess[] = [];
  let setupError: Error | null = null;
  beforeEach(() => {
    if (setupError) throw setupError;
  });

  const diag = () => agents.map((a) => `--- agent ${a.node.name} ---\n${tail(a.logs(), 25)}`).join('\n');

  async function shapingClient<T>(pod: string, args: string[], timeoutMs = 30_000): Promise<T> {
    const proc = topo.spawnInPod(pod, NODE_BIN, [path.join(APPS_DIR, 'shaping-client.js'), ...args]);
    const r = await waitExit(proc, timeoutMs);
    if (r.timedOut) throw new Error(`shaping-client ${args.join(' ')} in ${pod} timed out\n${tail(proc.outputText())}\n${diag()}`);
    return lastJsonLine<T>(r.stdout);
  }
  const echoArgs = ['--host', VIP.echo, '--port', '80'];

  async function rateLimited(agent: AgentHandle, labels: Record<string, string>): Promise<number> {
    return sum(parseMetrics(await agent.metrics()), 'smesh_rate_limited_total', labels);
  }

  /** Waits until every bucket of `rule` (on whichever agent keeps it) holds a token again, as /config_dump shows them. */
  async function bucketsRefilled(rule: string): Promise<void> {
    const tokens = async () => {
      const all: number[] = [];
      for (const a of agents) all.push(...((await configDump(a)).trafficShaping.buckets as Array<{ rule: string; tokens: number }>).filter((b) => b.rule === rule).map((b) => b.tokens));
      return all;
    };
    const seen = await pollUntil(tokens, (l) => l.length > 0 && l.every((n) => n >= 1), 8000);
    expect(seen.length > 0 && seen.every((n) => n >= 1), `tokens of ${rule}: ${JSON.stringify(seen)}\n${diag()}`).toBe(true);
  }

  async function configDump(agent: AgentHandle): Promise<Record<string, any>> {
    const r = await topo.httpGetInNode(agent.node, `http://127.0.0.1:${AGENT_PORTS.admin}/config_dump`, 5000);
    if (r.status !== 200) throw new Error(`config_dump on ${agent.node.name}: ${r.status} ${r.body.slice(0, 200)}`);
    return JSON.parse(r.body) as Record<string, any>;
  }

  beforeAll(async () => {
    try {
      if (!fs.existsSync(AGENT_CLI)) throw new Error(`${AGENT_CLI} not found: build first (npx tsc -p tsconfig.json)`);
      topo = await createTopology({
        nodes: ['node1', 'node2'],
        pods: [
          { name: 'rate-client', node: 'node1' },
          { name: 'cap-client', node: 'node1' },
          { name: 'queue-client', node: 'node1' },
          { name: 'http-client', node: 'node1' },
          { name: 'plain-client', node: 'node1' },
          { name: 'echo', node: 'node2' },
          { name: 'web-local', node: 'node1' },
          { name: 'web-remote', node: 'node2' },
          { name: 'in-local', node: 'node1' },
          { name: 'in-remote', node: 'node2' },
          { name: 'bw-client', node: 'node1' },
          { name: 'sink', node: 'node2' },
          { name: 'sink-local', node: 'node1' },
        ],
      });
      await Promise.all([
        topo.startApp('echo', 'echo-server', ['--port', String(ECHO_PORT)]),
        topo.startApp('sink', 'sink-server', ['--port', String(SINK_PORT)]),
        topo.startApp('sink-local', 'sink-server', ['--port', String(SINK_PORT)]),
        ...['web-local', 'web-remote', 'in-local', 'in-remote'].map((pod) => topo.startApp(pod, 'http-server', ['--port', String(WEB_TARGET), '--pod', pod])),
      ]);
      const http = (name: keyof typeof VIP, app: string): ServiceSpec => ({ name: app, vip: VIP[name], ports: [{ name: 'http', port: 80, targetPort: WEB_TARGET }], selector: { app } });
      const services: ServiceSpec[] = [
        { name: 'echo', vip: VIP.echo, ports: [{ name: 'tcp', port: 80, targetPort: ECHO_PORT }], selector: { app: 'echo' } },
        { name: 'sink', vip: VIP.sink, ports: [{ name: 'tcp', port: 80, targetPort: SINK_PORT }], selector: { app: 'sink' } },
        { name: 'sink-local', vip: VIP.sinkLocal, ports: [{ name: 'tcp', port: 80, targetPort: SINK_PORT }], selector: { app: 'sink-local' } },
        http('webLocal', 'web-local'),
        http('webRemote', 'web-remote'),
        http('inLocal', 'in-local'),
        http('inRemote', 'in-remote'),
      ];
      const cfgDir = topo.makeTempDir('config');
      topo.writeConfig(cfgDir, { services, extraDocs: SHAPINGS });
      await startAgentsInOrder(topo, ['node1', 'node2'], cfgDir, agents);
    } catch (e) {
      setupError = e as Error;
    }
  }, 180_000);

  afterAll(async () => {
    await stopHeldClients(held).catch(() => undefined);
    await stopAgentsKeepingLogs(agents, 'traffic-shaping');
    await topo?.cleanup();
  }, 60_000);

  it('connectionRate: connections beyond the bucket are reset and counted (connection_rate), and pass again once it refills', async () => {
    const labels = { direction: 'outbound', source_workload: 'rate-client', destination_service: svcHost('echo'), reason: 'connection_rate' };
    const before = await rateLimited(agents[0]!, labels);
    const r = await shapingClient<ConnsResult>('rate-client', ['conns', ...echoArgs, '--count', '6']);
    // The bucket (3 tokens, 3 more every 2 s) starts full: the first three pass, the fourth comes well inside the first fill.
    expect(r.outcomes.slice(0, 4), `${JSON.stringify(r)}\n${diag()}`).toEqual(['ok', 'ok', 'ok', 'reset']);
    const resets = r.outcomes.filter((o) => o === 'reset').length;
    expect(
      r.outcomes.filter((o) => o !== 'ok' && o !== 'reset'),
      JSON.stringify(r),
    ).toEqual([]);
    expect(await rateLimited(agents[0]!, labels)).toBe(before + resets);
    expect(sum(parseMetrics(await agents[0]!.metrics()), 'smesh_refused_connections_total', { reason: 'rate_limited' })).toBeGreaterThanOrEqual(resets);
    await bucketsRefilled('default/conn-rate/echo-cps');
    const again = await shapingClient<ConnsResult>('rate-client', ['conns', ...echoArgs, '--count', '1']);
    expect(again.outcomes, `${JSON.stringify(again)}\n${diag()}`).toEqual(['ok']);
  }, 60_000);

  it('maxConnections (Reject): with two connections held open the third is reset and counted (max_connections); once one closes a new one passes', async () => {
    const labels = { direction: 'outbound', source_workload: 'cap-client', destination_service: svcHost('echo'), reason: 'max_connections' };
    const before = await rateLimited(agents[0]!, labels);
    const ctl = topo.makeTempDir('cap-ctl');
    const first = await startHeldClient(topo, 'cap-client', ctl, 'h1', echoArgs, held);
    const second = await startHeldClient(topo, 'cap-client', ctl, 'h2', echoArgs, held);
    expect(await first({ op: 'echo', data: 'one' }), diag()).toMatchObject({ ok: true });
    expect(await second({ op: 'echo', data: 'two' }), diag()).toMatchObject({ ok: true });
    const third = await shapingClient<ConnsResult>('cap-client', ['conns', ...echoArgs, '--count', '1']);
    expect(third.outcomes, `${JSON.stringify(third)}\n${diag()}`).toEqual(['reset']);
    expect(await rateLimited(agents[0]!, labels)).toBe(before + 1);
    const dump = await configDump(agents[0]!);
    expect(dump.trafficShaping.connections, JSON.stringify(dump.trafficShaping)).toContainEqual(expect.objectContaining({ rule: 'default/conn-cap/two', open: 2 }));
    // One held connection ends: its slot frees when the proxy sees the close (wait for that state), then a new one passes.
    const h1 = held.shift()!;
    h1.kill('SIGTERM');
    await waitExit(h1, 5000);
    const open = await pollUntil(
      async () => ((await configDump(agents[0]!)).trafficShaping.connections as Array<{ rule: string; open: number }>).find((c) => c.rule === 'default/conn-cap/two')?.open,
      (n) => n === 1,
      5000,
    );
    expect(open, `open connections of default/conn-cap/two\n${diag()}`).toBe(1);
    const after = await shapingClient<ConnsResult>('cap-client', ['conns', ...echoArgs, '--count', '1']);
    expect(after.outcomes, `${JSON.stringify(after)}\n${diag()}`).toEqual(['ok']);
    expect(await second({ op: 'echo', data: 'still' })).toMatchObject({ ok: true });
    await stopHeldClients(held);
  }, 60_000);

  it('maxConnections (Queue, maxWait 3s): the second connection waits and is admitted when the first closes (queued); unreleased, it is reset after maxWait', async () => {
    const base = { direction: 'outbound', source_workload: 'queue-client', destination_service: svcHost('echo') };
    const queuedBefore = await rateLimited(agents[0]!, { ...base, reason: 'queued' });
    const ctl = topo.makeTempDir('queue-ctl');
    const holder = await startHeldClient(topo, 'queue-client', ctl, 'q1', echoArgs, held);
    expect(await holder({ op: 'echo', data: 'one' }), diag()).toMatchObject({ ok: true });
    const waiting = shapingClient<ConnsResult>('queue-client', ['conns', ...echoArgs, '--count', '1', '--timeout', '10000']);
    // The proxy holds the second connection: wait for it in the queue (state, not time), then free the slot.
    const queued = await pollUntil(
      async () => (await configDump(agents[0]!)).trafficShaping.queued as number,
      (n) => n === 1,
      5000,
    );
    expect(queued, `queued connections in /config_dump\n${diag()}`).toBe(1);
    const h = held.shift()!;
    h.kill('SIGTERM');
    await waitExit(h, 5000);
    const r = await waiting;
    expect(r.outcomes, `${JSON.stringify(r)}\n${diag()}`).toEqual(['ok']);
    expect(await rateLimited(agents[0]!, { ...base, reason: 'queued' })).toBe(queuedBefore + 1);

    const limitedBefore = await rateLimited(agents[0]!, { ...base, reason: 'max_connections' });
    const holder2 = await startHeldClient(topo, 'queue-client', ctl, 'q2', echoArgs, held);
    expect(await holder2({ op: 'echo', data: 'two' }), diag()).toMatchObject({ ok: true });
    const t0 = Date.now();
    const timedOut = await shapingClient<ConnsResult>('queue-client', ['conns', ...echoArgs, '--count', '1', '--timeout', '10000']);
    expect(timedOut.outcomes, `${JSON.stringify(timedOut)}\n${diag()}`).toEqual(['reset']);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(2900);
    expect(await rateLimited(agents[0]!, { ...base, reason: 'max_connections' })).toBe(limitedBefore + 1);
    await stopHeldClients(held);
  }, 60_000);

  /** Sends 5 requests at once-after-another to `url` from `pod`: 3 pass, the 4th gets 429 with the headers of `policy`; then it recovers. */
  async function tripsAndRecovers(pod: string, url: string, policy: string): Promise<HttpResult> {
    const r = await shapingClient<HttpResult>(pod, ['http', '--url', url, '--count', '5']);
    expect(
      r.results.slice(0, 4).map((x) => x.status ?? x.error),
      `${JSON.stringify(r)}\n${diag()}`,
    ).toEqual([200, 200, 200, 429]);
    const limited = r.results[3]!;
    expect(Number(limited.retryAfter)).toBeGreaterThanOrEqual(1);
    expect(Number(limited.retryAfter)).toBeLessThanOrEqual(2);
    expect(limited.policy).toBe(`"${policy}";q=3;w=2`);
    expect(limited.ratelimit).toMatch(new RegExp(`^"${policy.replace(/\//g, '\\/')}";r=0;t=[12]$`));
    await bucketsRefilled(policy);
    const again = await shapingClient<HttpResult>(pod, ['http', '--url', url, '--count', '1']);
    expect(
      again.results.map((x) => x.status ?? x.error),
      `${JSON.stringify(again)}\n${diag()}`,
    ).toEqual([200]);
    return r;
  }

  for (const [where, key, svc] of [
    ['same node', 'webLocal', 'web-local'],
    ['across nodes', 'webRemote', 'web-remote'],
  ] as const) {
    it(`requestRate, outbound rule (${where}): 429 with retry-after and RateLimit headers, counted (request_rate, RL), then 200 again`, async () => {
      const labels = { direction: 'outbound', source_workload: 'http-client', destination_service: svcHost(svc), reason: 'request_rate' };
      const before = await rateLimited(agents[0]!, labels);
      const rule = svc === 'web-local' ? 'local-rps' : 'remote-rps';
      const r = await tripsAndRecovers('http-client', `http://${VIP[key]}/shaped`, `default/http-out/${rule}`);
      const limited = r.results.filter((x) => x.status === 429).length;
      const m = parseMetrics(await agents[0]!.metrics());
      expect(sum(m, 'smesh_rate_limited_total', labels)).toBeGreaterThanOrEqual(before + limited);
      expect(
        sum(m, 'istio_requests_total', { reporter: 'source', source_workload: 'http-client', destination_service: svcHost(svc), response_code: '429', response_flags: 'RL' }),
      ).toBeGreaterThanOrEqual(limited);
    }, 60_000);
  }

  for (const [where, key, svc, nodeIdx] of [
    ['same node', 'inLocal', 'in-local', 0],
    ['across nodes', 'inRemote', 'in-remote', 1],
  ] as const) {
    it(`requestRate, inbound rule on the destination service (${where}): 429 with RateLimit headers, counted at the destination (request_rate), then 200 again`, async () => {
      const labels = { direction: 'inbound', source_workload: 'plain-client', destination_service: svcHost(svc), reason: 'request_rate' };
      const dest = agents[nodeIdx]!;
      const before = await rateLimited(dest, labels);
      const r = await tripsAndRecovers('plain-client', `http://${VIP[key]}/shaped`, `default/${svc}/rps`);
      const limited = r.results.filter((x) => x.status === 429).length;
      expect(await rateLimited(dest, labels), diag()).toBeGreaterThanOrEqual(before + limited);
    }, 60_000);
  }

  it.skipIf(expectedDataplane() !== 'js')(
    'bytesPerSecond (JS data plane, across nodes): the JS relay paces the upload with the same rule, every byte charged, the bucket throttled',
    async () => {
      const bytes = 1_000_000;
      const r = await topo.runClient('bw-client', ['bulk', '--host', VIP.sink, '--port', '80', '--bytes', String(bytes), '--seed', '17'], 60_000);
      expect(r, diag()).toMatchObject({ ok: true, sentBytes: bytes });
      const dump = (await configDump(agents[0]!)).trafficShaping;
      const b = ((dump.jsRelayBuckets ?? []) as Array<Record<string, any>>).find((x) => String(x.key).startsWith('default/bw/up|'));
      expect(b, JSON.stringify(dump)).toMatchObject({ granted: bytes, bytesPerSecond: BW_UPLOAD_BYTES });
      expect(b!.throttles).toBeGreaterThan(0);
    },
    90_000,
  );

  it.skipIf(expectedDataplane() !== 'native')(
    'bytesPerSecond (native engine, across nodes): the upload trips, holds the rate by the engine clock, delivers every byte, is counted, and the bucket refills',
    async () => {
      const bytes = 1_000_000;
      const r = await topo.runClient('bw-client', ['bulk', '--host', VIP.sink, '--port', '80', '--bytes', String(bytes), '--seed', '14'], 60_000);
      expect(r, diag()).toMatchObject({ ok: true, sentBytes: bytes });
      const relayBucket = async () =>
        ((await configDump(agents[0]!)).trafficShaping.relay?.buckets ?? []).find((b: { rule?: string }) => b.rule === 'default/bw/up') as Record<string, any> | undefined;
      const b = await relayBucket();
      expect(b, JSON.stringify((await configDump(agents[0]!)).trafficShaping.relay)).toMatchObject({
        way: 'upload',
        source_workload: 'bw-client',
        destination_service: svcHost('sink'),
        bytesPerSecond: BW_UPLOAD_BYTES,
        granted: bytes,
      });
      expect(b!.throttles).toBeGreaterThan(0);
      // The engine's counts: at most the burst plus what the rate earned until the last grant, so the transfer took at
      // least (bytes − burst) / rate of the engine's clock.
      expect(b!.granted).toBeLessThanOrEqual(b!.burst + (BW_UPLOAD_BYTES * b!.activeNs) / 1e9 + 1);
      expect(b!.activeNs / 1e9).toBeGreaterThanOrEqual((bytes - b!.burst) / BW_UPLOAD_BYTES - 0.001);
      const flows = (await configDump(agents[0]!)).trafficShaping.relay.flows as Array<{ flow: string; priority: string; weight: number; sent: number }>;
      expect(
        flows.find((f) => f.flow.endsWith('bw-client')),
        JSON.stringify(flows),
      ).toMatchObject({ priority: 'bulk', weight: 50, sent: bytes });
      const labels = { direction: 'outbound', source_workload: 'bw-client', destination_service: svcHost('sink') };
      const counted = await pollUntil(
        async () => ({
          pauses: await rateLimited(agents[0]!, { ...labels, reason: 'bytes_per_second' }),
          delayed: sum(parseMetrics(await agents[0]!.metrics()), 'smesh_rate_limited_bytes_total', { ...labels, reason: 'bytes_per_second_upload' }),
        }),
        (c) => c.pauses > 0 && c.delayed > 0,
        5000,
      );
      expect(counted.pauses).toBeGreaterThan(0);
      expect(counted.delayed).toBeGreaterThan(0);
      const refilled = await pollUntil(relayBucket, (x) => x !== undefined && x.available === x.burst, 5000);
      expect(refilled!.available, JSON.stringify(refilled)).toBe(refilled!.burst);
    },
    90_000,
  );

  it('bytesPerSecond on a same-node connection (relayed in JavaScript, not spliced): the upload is paced by the same bucket scheme, every byte charged, the bucket throttled', async () => {
    const bytes = 1_000_000;
    const r = await topo.runClient('bw-client', ['bulk', '--host', VIP.sinkLocal, '--port', '80', '--bytes', String(bytes), '--seed', '16'], 60_000);
    expect(r, diag()).toMatchObject({ ok: true, sentBytes: bytes });
    const dump = (await configDump(agents[0]!)).trafficShaping;
    // Native data plane: the engine's bucket (shared with its streams); JS data plane: the agent's own.
    const engineBucket = ((dump.relay?.buckets ?? []) as Array<Record<string, any>>).find((b) => b.rule === 'default/bw/up-local');
    const jsBucket = ((dump.jsRelayBuckets ?? []) as Array<Record<string, any>>).find((b) => String(b.key).startsWith('default/bw/up-local|'));
    const b = engineBucket ?? jsBucket;
    expect(b, JSON.stringify(dump)).toBeDefined();
    expect(b!.granted).toBe(bytes);
    expect(b!.throttles).toBeGreaterThan(0);
    if (expectedDataplane() === 'native') expect(engineBucket, 'the engine bucket is used when the engine runs').toBeDefined();
  }, 90_000);

  it("the accept queue serves a new connection in its source workload's class (TrafficShaping priority bulk, weight 50) and shows it in /config_dump", async () => {
    const served = async () =>
      ((await configDump(agents[0]!)).acceptQueue.flows as Array<{ flow: string; priority: string; weight: number; served: number }>).find((f) => f.flow.endsWith('bw-client'));
    const before = (await served())?.served ?? 0;
    const r = await topo.runClient('bw-client', ['bulk', '--host', VIP.sink, '--port', '80', '--bytes', '1000', '--seed', '15'], 30_000);
    expect(r, diag()).toMatchObject({ ok: true, sentBytes: 1000 });
    const dump = (await configDump(agents[0]!)).acceptQueue;
    expect(dump, JSON.stringify(dump)).toMatchObject({ fairShare: true, waiting: 0 });
    expect(await served(), JSON.stringify(dump.flows)).toMatchObject({ priority: 'bulk', weight: 50, served: before + 1 });
  });

  it('an HTTP request is handled in the class its header selects (TrafficShaping match + priority): counted under the latency flow, others under normal', async () => {
    type Flow = { flow: string; priority: string; served: number };
    const flows = async () => ((await configDump(agents[0]!)).acceptQueue.flows as Flow[]).filter((f) => f.flow.endsWith('http-client'));
    const served = (fs: Flow[], priority: string) => fs.find((f) => f.priority === priority)?.served ?? 0;
    const before = await flows();
    const a = await shapingClient<HttpResult>('http-client', ['http', '--url', `http://${VIP.webLocal}/classified`, '--count', '2', '--header', 'x-class: interactive']);
    const b = await shapingClient<HttpResult>('http-client', ['http', '--url', `http://${VIP.webLocal}/plain`, '--count', '1']);
    expect(
      [...a.results, ...b.results].map((x) => x.status ?? x.error),
      diag(),
    ).toEqual([200, 200, 200]);
    const after = await flows();
    expect(served(after, 'latency') - served(before, 'latency'), JSON.stringify(after)).toBe(2);
    // The plain request and the connection itself (accepted in the workload's resource-level class: normal).
    expect(served(after, 'normal') - served(before, 'normal'), JSON.stringify(after)).toBeGreaterThanOrEqual(1);
  });

  it('/config_dump shows the rules in force per workload and their buckets', async () => {
    const dump = (await configDump(agents[0]!)).trafficShaping;
    const rules = (dump.workloads as Array<{ workloadUid: string; outbound: Array<{ name: string }>; inbound: Array<{ name: string }> }>).flatMap((w) =>
      [...w.outbound, ...w.inbound].map((x) => x.name),
    );
    for (const r of [
      'default/conn-rate/echo-cps',
      'default/conn-cap/two',
      'default/conn-queue/one',
      'default/http-out/local-rps',
      'default/http-out/remote-rps',
      'default/in-local/rps',
      'default/in-remote/rps',
    ])
      expect(rules, JSON.stringify(dump.workloads)).toContain(r);
    expect(dump.buckets, JSON.stringify(dump.buckets)).toContainEqual(
      expect.objectContaining({ rule: 'default/conn-rate/echo-cps', kind: 'connectionRate', maxTokens: 3, tokensPerFill: 3, fillIntervalMs: 2000 }),
    );
    expect(dump.buckets).toContainEqual(expect.objectContaining({ rule: 'default/http-out/local-rps', kind: 'requestRate' }));
  });

  it('an invalid TrafficShaping is refused by file, resource and field (smesh check)', async () => {
    const dir = topo.makeTempDir('bad-config');
    topo.writeConfig(dir, {
      services: [{ name: 'echo', vip: VIP.echo, ports: [{ name: 'tcp', port: 80, targetPort: ECHO_PORT }], selector: { app: 'echo' } }],
      extraFiles: {
        'shaping.yaml': [
          shaping('bad', 'rate-client', { outbound: [{ name: 'fast', connectionRate: { maxTokens: 5, fillInterval: '10ms' } }], inbound: [{ maxConnections: 0 }] }),
          shaping('nowhere', 'rate-client', { outbound: [{ name: 'to-missing', service: 'missing', maxConnections: 1 }] }),
          shaping('typo', 'rate-client', { outbound: [{ name: 'x', maxConection: 1 }] }),
          shaping('qos-class', 'rate-client', { priority: 'urgent' }),
          shaping('qos', 'rate-client', {
            weight: 0,
            dscp: 64,
            outbound: [
              { name: 'bw', bytesPerSecond: { upload: '10Mbit', download: '500' } },
              { name: 'p', port: 80, weight: 2000 },
            ],
          }),
        ]
          .map((d) => YAML.stringify(d))
          .join('---\n'),
      },
    });
    const check = await waitExit(topo.spawnInPod('plain-client', NODE_BIN, [AGENT_CLI, 'check', dir]), 20_000);
    expect(check.code, check.stderr).toBe(1);
    const file = path.join(dir, 'shaping.yaml');
    expect(check.stderr).toContain(`${file}:1: TrafficShaping default/bad: field spec.outbound[0].connectionRate.fillInterval:`);
    expect(check.stderr).toContain(`TrafficShaping default/bad: field spec.inbound[0].maxConnections:`);
    expect(check.stderr).toContain(`TrafficShaping default/nowhere: field spec.outbound[0].service:`);
    expect(check.stderr).toContain(`TrafficShaping default/typo: field spec.outbound[0].maxConection:`);
    expect(check.stderr).toContain(`TrafficShaping default/qos-class: field spec.priority:`);
    for (const field of ['spec.weight', 'spec.dscp', 'spec.outbound[0].bytesPerSecond.upload', 'spec.outbound[0].bytesPerSecond.download', 'spec.outbound[1].port', 'spec.outbound[1].weight']) {
      expect(check.stderr).toContain(`TrafficShaping default/qos: field ${field}:`);
    }
  }, 60_000);
});
