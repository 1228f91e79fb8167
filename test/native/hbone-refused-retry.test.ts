// An outbound HBONE open to a destination that refuses the connection (its agent restarting) is tried again with backoff until the listener is back, on both data planes; with no retry budget it fails at once.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LocalCa } from '../../core/identity/local-ca';
import type { IdentityManager } from '../../agent/identity/manager';
import { nodeSpiffeId, workloadSpiffeId } from '../../core/identity/spiffe';
import { hboneEngine } from '../../agent/native/hbone';
import type { HboneEngine } from '../../agent/native/hbone-types';
import { HboneClient } from '../../agent/proxy/hbone-client';
import { InboundProxy } from '../../agent/proxy/inbound-proxy';
import { EngineIdentities, NativeHboneClient } from '../../agent/proxy/native-hbone';
import type { HboneOpenRequest } from '../../agent/proxy/hbone-client';
import { MeshMetrics } from '../../agent/telemetry/metrics';
import type { Duplex } from 'node:stream';
import { echoServer, freePort, identities, listen, meshCa, readAll, TD, waitFor } from '../unit/fixtures/proxy';

const NODE = nodeSpiffeId(TD, 'node2');
const CLIENT = workloadSpiffeId(TD, 'default', 'client');

interface Connector {
  open(req: HboneOpenRequest): Promise<Duplex>;
}

describe('HBONE open retries a refused connect (destination agent restarting)', () => {
  let ca: LocalCa;
  let cleanupCa: () => Promise<void>;
  let serverIds: IdentityManager;
  let clientIds: IdentityManager;
  let echo: ReturnType<typeof echoServer>;
  let echoPort: number;
  let engine: HboneEngine;
  const inbounds: InboundProxy[] = [];

  beforeAll(async () => {
    ({ ca, cleanup: cleanupCa } = await meshCa());
    serverIds = await identities(ca, NODE);
    clientIds = await identities(ca, nodeSpiffeId(TD, 'node1'), [CLIENT]);
    echo = echoServer();
    echoPort = await listen(echo.server);
    const e = hboneEngine();
    expect(e, 'the addon has no HBONE engine: make native').toBeDefined();
    engine = e!;
  });

  afterAll(async () => {
    for (const i of inbounds) await i.close();
    await echo?.close();
    clientIds?.close();
    serverIds?.close();
    await cleanupCa?.();
  });

  /** The destination's inbound, started on `port` (JS data plane: it serves either client). */
  async function startInbound(port: number): Promise<void> {
    const inbound = new InboundProxy({
      identities: serverIds,
      nodeId: NODE,
      listen: { host: '127.0.0.1', port },
      resolveLocal: (ip, p) => (ip === '127.0.0.1' && p === echoPort ? {} : undefined),
    });
    await inbound.start();
    inbounds.push(inbound);
  }

  const request = (port: number): HboneOpenRequest => ({ sourceId: CLIENT, node: { host: '127.0.0.1', port }, expectedServerId: NODE, authority: `127.0.0.1:${echoPort}` });

  const clients: Array<[string, (metrics: MeshMetrics, budgetMs?: number) => Connector]> = [
    ['js (node:http2)', (metrics, budgetMs) => new HboneClient({ identities: clientIds, metrics, refusedRetryBudgetMs: budgetMs })],
    ['native engine', (metrics, budgetMs) => new NativeHboneClient({ engine, identities: new EngineIdentities(engine, clientIds), metrics, refusedRetryBudgetMs: budgetMs })],
  ];

  it.each(clients)('%s: the open waits through refusals and succeeds once the listener is back; each retry counted', async (_name, make) => {
    const metrics = new MeshMetrics();
    const retries = async () => (await metrics.registry.getSingleMetric('smesh_hbone_connect_retries_total')!.get()).values.reduce((n, v) => n + v.value, 0);
    const client = make(metrics);
    const port = await freePort();
    const opening = client.open(request(port));
    // Refused at least once, then the destination comes back (as a restarted agent's listener does).
    let seen = 0;
    await waitFor(() => {
      void retries().then((n) => (seen = n));
      return seen >= 1;
    }, 5000);
    await startInbound(port);
    const stream = await opening;
    stream.end('over the retried session');
    expect((await readAll(stream)).toString()).toBe('over the retried sessionbye');
    expect(await retries()).toBeGreaterThanOrEqual(1);
  });

  it.each(clients)('%s: with no retry budget a refused connect fails at once (SMESH_ERR_CONNECT)', async (_name, make) => {
    const client = make(new MeshMetrics(), 0);
    const port = await freePort();
    await expect(client.open(request(port))).rejects.toMatchObject({ code: 'SMESH_ERR_CONNECT' });
  });
});
