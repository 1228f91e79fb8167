// The connection tracker: which open connections a policy change closes (table), and real same-node and HBONE L4 connections reset, counted and logged after a new DENY.
import * as net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { convertAuthorizationPolicy } from '../../../../control/config/authorization';
import type { LocalCa } from '../../../../core/identity/local-ca';
import type { IdentityManager } from '../../../../agent/identity/manager';
import { nodeSpiffeId } from '../../../../core/identity/spiffe';
import { createAuthorizer } from '../../../../agent/policy/authorizer';
import type { AuthorizationPolicy } from '../../../../core/policy/types';
import { ConnectionTracker, policyInputsChanged, type TrackedConnection } from '../../../../agent/proxy/connection-tracker';
import { HboneClient } from '../../../../agent/proxy/hbone-client';
import { InboundProxy } from '../../../../agent/proxy/inbound-proxy';
import { OutboundProxy } from '../../../../agent/proxy/outbound';
import type { IpPort } from '../../../../agent/proxy/types';
import { StateStore } from '../../../../agent/state/store';
import type { MeshSnapshot, Workload } from '../../../../core/model/types';
import { MeshMetrics } from '../../../../agent/telemetry/metrics';
import { echoServer, freePort, identities, listen, meshCa, TD, waitFor, wl } from '../../fixtures/proxy';

function policy(name: string, spec: unknown): AuthorizationPolicy {
  const r = convertAuthorizationPolicy(name, 'default', spec);
  if (!r.policy) throw new Error(JSON.stringify(r.problems));
  return r.policy;
}

const CLIENT = wl('client-1', '127.0.0.1', 'node1');
const OTHER = wl('other-1', '127.0.0.4', 'node1');
const WEB = wl('web-1', '127.0.0.2', 'node2');
const DENY_CLIENT = policy('deny-client', { selector: { matchLabels: { app: 'web' } }, action: 'DENY', rules: [{ from: [{ source: { principals: ['cluster.local/ns/default/sa/client'] } }] }] });
const DENY_ADMIN = policy('deny-admin', { selector: { matchLabels: { app: 'web' } }, action: 'DENY', rules: [{ to: [{ operation: { paths: ['/admin'] } }] }] });
const ALLOW_GET = policy('allow-get', { selector: { matchLabels: { app: 'web' } }, action: 'ALLOW', rules: [{ to: [{ operation: { methods: ['GET'] } }] }] });
const ALLOW_OTHER = policy('allow-other', { selector: { matchLabels: { app: 'web' } }, action: 'ALLOW', rules: [{ from: [{ source: { principals: ['cluster.local/ns/default/sa/other'] } }] }] });

describe('ConnectionTracker verdicts', () => {
  const cases: Array<[string, AuthorizationPolicy[], Partial<TrackedConnection>, string | undefined]> = [
    ['no policy: raw stays', [], { mode: 'raw' }, undefined],
    ['DENY on the source: raw closed', [DENY_CLIENT], { mode: 'raw' }, 'policy_denied'],
    ['DENY on the source: inspected tunnel closed too', [DENY_CLIENT], { mode: 'inspected' }, 'policy_denied'],
    ['ALLOW for another principal only: closed', [ALLOW_OTHER], { mode: 'raw' }, 'policy_denied'],
    ['DENY /admin, raw on an inspectable HTTP port: closed to be inspected', [DENY_ADMIN], { mode: 'raw', inspectable: () => true }, 'l7_inspection'],
    ['DENY /admin, inspected tunnel: stays (requests are decided one by one)', [DENY_ADMIN], { mode: 'inspected' }, undefined],
    ['DENY /admin on an L4 port (not inspectable): fails closed as at open', [DENY_ADMIN], { mode: 'raw' }, 'policy_denied'],
    ['ALLOW GET on an L4 port: fails closed (an L7 ALLOW never matches)', [ALLOW_GET], { mode: 'raw' }, 'policy_denied'],
    ['ALLOW GET, raw on an inspectable HTTP port: closed to be inspected', [ALLOW_GET], { mode: 'raw', inspectable: () => true }, 'l7_inspection'],
  ];
  for (const [name, policies, c, expected] of cases) {
    it(name, () => {
      const authorize = createAuthorizer({ state: { snapshot: () => ({ authorizationPolicies: policies }) } });
      const metrics = new MeshMetrics();
      const tracker = new ConnectionTracker({ decide: authorize.decide, closed: metrics.policyConnectionsClosed });
      let closed = 0;
      const conn: TrackedConnection = {
        direction: 'inbound',
        facts: { sourceIdentity: CLIENT.identity, sourceIp: CLIENT.ip, destination: { ip: WEB.ip, port: 8080 }, destinationWorkload: WEB },
        mode: 'raw',
        close: () => closed++,
        ...c,
      };
      tracker.register(conn);
      expect(tracker.verdict(conn)?.reason).toBe(expected);
      const r = tracker.reevaluate();
      expect(r).toEqual({ checked: 1, closed: expected ? 1 : 0 });
      expect(closed).toBe(expected ? 1 : 0);
      expect(tracker.size).toBe(expected ? 0 : 1);
      // A closed connection is gone from the tracker: the next change does not count it again.
      expect(tracker.reevaluate().closed).toBe(0);
    });
  }

  it('a connection whose close throws is still counted and the others are still decided', () => {
    const authorize = createAuthorizer({ state: { snapshot: () => ({ authorizationPolicies: [DENY_CLIENT] }) } });
    const tracker = new ConnectionTracker({ decide: authorize.decide });
    const facts = { sourceIdentity: CLIENT.identity, destination: { ip: WEB.ip, port: 80 }, destinationWorkload: WEB };
    let second = false;
    tracker.register({
      direction: 'inbound',
      facts,
      mode: 'raw',
      close: () => {
        throw new Error('boom');
      },
    });
    tracker.register({ direction: 'inbound', facts, mode: 'raw', close: () => (second = true) });
    expect(tracker.reevaluate()).toEqual({ checked: 2, closed: 2 });
    expect(second).toBe(true);
  });

  it('policyInputsChanged: by identity of the policy-relevant parts only', () => {
    const a = { authorizationPolicies: [], workloads: new Map(), services: new Map(), trafficPolicies: undefined };
    expect(policyInputsChanged(undefined, a)).toBe(true);
    expect(policyInputsChanged(a, { ...a })).toBe(false);
    expect(policyInputsChanged(a, { ...a, authorizationPolicies: [] })).toBe(true);
    expect(policyInputsChanged(a, { ...a, workloads: new Map() })).toBe(true);
  });
});

describe('ConnectionTracker with real L4 connections (same node and over HBONE)', () => {
  let ca: LocalCa;
  let cleanupCa: () => Promise<void>;
  let ids1: IdentityManager;
  let ids2: IdentityManager;
  let echoRemote: ReturnType<typeof echoServer>;
  let echoLocal: ReturnType<typeof echoServer>;
  let inbound: InboundProxy;
  let outbound: OutboundProxy;
  let hbone: HboneClient;
  const state = new StateStore();
  const metrics1 = new MeshMetrics();
  const metrics2 = new MeshMetrics();
  const origDst = new Map<number, IpPort>();
  let publish: (policies: AuthorizationPolicy[]) => void;
  const logged: Array<Record<string, unknown>> = [];

  beforeAll(async () => {
    ({ ca, cleanup: cleanupCa } = await meshCa());
    echoRemote = echoServer();
    const remotePort = await listen(echoRemote.server, '127.0.0.2');
    echoLocal = echoServer();
    const localPort = await listen(echoLocal.server, '127.0.0.3');
    ids2 = await identities(ca, nodeSpiffeId(TD, 'node2'));
    ids1 = await identities(ca, nodeSpiffeId(TD, 'node1'), [CLIENT.identity, OTHER.identity]);
    const localWeb: Workload = { ...wl('web-2', '127.0.0.3', 'node1'), labels: { app: 'web' } };
    publish = (policies) => {
      const snap: MeshSnapshot = {
        trustDomain: TD,
        nodes: new Map([
          ['node1', { name: 'node1', address: '127.0.0.1' }],
          ['node2', { name: 'node2', address: '127.0.0.1' }],
        ]),
        workloads: new Map([CLIENT, OTHER, WEB, localWeb].map((w) => [w.uid, w])),
        services: new Map([
          [
            'default/web',
            { key: 'default/web', name: 'web', namespace: 'default', vips: ['198.19.0.10'], ports: [{ port: 80, targetPort: remotePort }], selector: { app: 'web' }, endpointUids: [WEB.uid] },
          ],
          [
            'default/local',
            { key: 'default/local', name: 'local', namespace: 'default', vips: ['198.19.0.11'], ports: [{ port: 80, targetPort: localPort }], selector: { app: 'web' }, endpointUids: [localWeb.uid] },
          ],
        ]),
        namespaces: new Map([['default', {}]]),
        authorizationPolicies: policies,
      };
      state.replace(snap);
    };
    publish([]);
    const logger = { info: (o: object) => logged.push(o as Record<string, unknown>), debug: () => undefined, error: () => undefined } as never;
    const authorize = createAuthorizer({ state });
    const tracker1 = new ConnectionTracker({ decide: authorize.decide, closed: metrics1.policyConnectionsClosed, logger });
    const tracker2 = new ConnectionTracker({ decide: authorize.decide, closed: metrics2.policyConnectionsClosed, logger });
    state.onChange((next, prev) => {
      if (!policyInputsChanged(prev, next)) return;
      tracker1.reevaluate();
      tracker2.reevaluate();
    });
    inbound = new InboundProxy({ identities: ids2, nodeId: ids2.nodeId, listen: { host: '127.0.0.1', port: 0 }, state, nodeName: 'node2', authorize, connections: tracker2, metrics: metrics2 });
    await inbound.start();
    hbone = new HboneClient({ identities: ids1 });
    outbound = new OutboundProxy({
      // The in-process inbound stands in for the remote node's agent (pod-addressed HBONE needs the in-pod capture: test/e2e/pod-hbone).
      hboneAddressing: 'node',
      state,
      identities: ids1,
      hbone,
      metrics: metrics1,
      nodeName: 'node1',
      hbonePort: inbound.address().port,
      listen: { host: '127.0.0.1', port: 0 },
      authorize,
      connections: tracker1,
      spliceRelay: false,
      originalDestination: (sock) => origDst.get(sock.remotePort!) ?? null,
    });
    await outbound.start();
  });

  afterAll(async () => {
    await outbound?.close();
    hbone?.close();
    await inbound?.close();
    await echoRemote?.close();
    await echoLocal?.close();
    ids1?.close();
    ids2?.close();
    await cleanupCa?.();
  });

  /** An open connection through the outbound from `from`'s address, echo checked. */
  async function open(from: string, dst: IpPort): Promise<{ sock: net.Socket; closed: () => boolean; echo: (s: string) => Promise<string> }> {
    const localPort = await freePort();
    origDst.set(localPort, dst);
    const sock = net.connect({ host: '127.0.0.1', port: outbound.address().port, localAddress: from, localPort });
    let isClosed = false;
    sock.on('error', () => undefined);
    sock.once('close', () => (isClosed = true));
    await new Promise<void>((r) => sock.once('connect', () => r()));
    let got = '';
    sock.on('data', (d: Buffer) => (got += d.toString()));
    const echo = async (s: string) => {
      got = '';
      sock.write(s);
      await waitFor(() => got.length >= s.length || isClosed);
      return got;
    };
    expect(await echo('hi')).toBe('hi');
    return { sock, closed: () => isClosed, echo };
  }

  it('a new DENY resets the open connections it covers (same node at the outbound, across nodes at the inbound), counted and logged; others keep flowing', async () => {
    const local = await open('127.0.0.1', { ip: '198.19.0.11', port: 80 });
    const remote = await open('127.0.0.1', { ip: '198.19.0.10', port: 80 });
    const otherLocal = await open('127.0.0.4', { ip: '198.19.0.11', port: 80 });
    publish([DENY_CLIENT]);
    await waitFor(() => local.closed() && remote.closed());
    expect(otherLocal.closed()).toBe(false);
    expect(await otherLocal.echo('still')).toBe('still');
    expect(await metrics1.text()).toMatch(/smesh_policy_connections_closed_total\{direction="outbound",reason="policy_denied"\} 1/);
    expect(await metrics2.text()).toMatch(/smesh_policy_connections_closed_total\{direction="inbound",reason="policy_denied"\} 1/);
    expect(logged.filter((l) => l.reason === 'policy_denied' && l.policy === 'default/deny-client')).toHaveLength(2);
    otherLocal.sock.destroy();
    publish([]);
  });
});
