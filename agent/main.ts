// The agent's composition root: config → state → identities → kernel datapath → proxies → telemetry, and their lifecycle.
import { readFileSync } from 'node:fs';
import { availableParallelism, networkInterfaces } from 'node:os';
import { AdminServers } from './admin/servers';
import { cgroup2Mounts, checkCgroupRoot } from './config/cgroup';
import { AUTO_DATAPLANE, type AgentOptions } from './config/options';
import { Reconciler, WorkloadIds } from './datapath/reconciler';
import { InpodCapture, podsToCapture } from './datapath/inpod-capture';
import { BandwidthPacer } from './datapath/bandwidth';
import { Gauge } from '../core/telemetry/prom';
import { NetnsDiscovery } from './discovery/netns-discovery';
import { SmeshError } from '../core/errors';
import { RemoteCa } from './identity/remote-ca';
import { heapGuard } from './runtime/v8-heap';
import { startAgentMemoryReclaim, type ReclaimStatus } from './runtime/reclaim';
import { packageVersion } from '../core/version';
import { IdentityManager } from './identity/manager';
import { controlSpiffeId, nodeSpiffeId, unionTrustDomainAliases } from '../core/identity/spiffe';
import type { Datapath } from './native/datapath';
import { HboneClient } from './proxy/hbone-client';
import type { HboneByteLimit, HboneEngine } from './native/hbone-types';
import { EngineIdentities, NativeHboneClient } from './proxy/native-hbone';
import { InboundProxy } from './proxy/inbound-proxy';
import { InboundHttp } from './http/inbound-http';
import { HttpOutbound } from './http/outbound-http';
import { EngineHttpOutbound } from './http/engine-outbound';
import { EngineInboundHttp } from './http/engine-inbound';
import { http1Engine } from './native/http1';
import { portProtocol } from '../core/model/protocol';
import { createAuthorizer } from './policy/authorizer';
import { LegacyMtlsConnector } from './proxy/legacy-mtls';
import { OutboundProxy } from './proxy/outbound';
import { ConnectionTracker, policyInputsChanged } from './proxy/connection-tracker';
import { PlaintextInbound } from './proxy/plaintext-inbound';
import { serviceInfo } from './proxy/types';
import { StateStore, emptySnapshot, type StateView } from './state/store';
import type { MeshSnapshot, Workload } from '../core/model/types';
import { LogHub, isLogLevel } from '../core/telemetry/logger';
import { KernelDenialReporter } from './telemetry/kernel-denials';
import { DEFAULT_CLUSTER, MeshMetrics } from './telemetry/metrics';
import { JsByteBuckets, relayLimits } from './qos/byte-limit';
import { AcceptQueue } from './qos/accept-queue';
import { type ConnectionFacts, TrafficShaper } from './qos/shaping';
import { adoptListeners } from '../core/telemetry/listen';
import { ControlPlaneChannel } from './xds/channel';
import { XdsClient } from './xds/client';

/**
 * The HTTP protocol of a local workload's port as its services declare it (a service port whose
 * targetPort is `port`): 'grpc' for gRPC, 'http' for HTTP/1.1 and HTTP/2, undefined for TCP.
 */
function inboundHttpProtocol(state: StateView, workload: Workload | undefined, port: number): 'http' | 'grpc' | undefined {
  if (!workload) return undefined;
  const policies = state.snapshot().trafficPolicies;
  for (const svc of state.servicesOf(workload)) {
    for (const p of svc.ports) {
      if (p.targetPort !== port) continue;
      const proto = portProtocol(p, policies?.get(svc.key));
      if (proto !== 'tcp') return proto === 'grpc' ? 'grpc' : 'http';
    }
  }
  return undefined;
}

/**
 * The addresses of the agent's own (host) network namespace, loopback and the capture address left
 * out (the kernel trusts those anyway): kubelet probes reach pods from one of them.
 */
function hostAddresses(captureIp: string): string[] {
  const out: string[] = [];
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) {
      if (a.internal || a.address === captureIp) continue;
      if (a.family === 'IPv6' && a.address.toLowerCase().startsWith('fe80:')) continue;
      out.push(a.address);
    }
  }
  return out;
}

/** How often enrollment is re-checked against the kernel even without a config change (pods restarted, netns recreated). */
const RECONCILE_INTERVAL_MS = 10_000;

export interface RunningAgent {
  readonly state: StateStore;
  stop(): Promise<void>;
}

/** Identities this node must hold: its own, and every local meshed workload's. */
function localIdentities(s: MeshSnapshot, nodeName: string): string[] {
  const ids = new Set<string>([nodeSpiffeId(s.trustDomain, nodeName)]);
  for (const w of s.workloads.values()) if (w.node === nodeName && w.meshed) ids.add(w.identity);
  return [...ids];
}

/** The cgroup v2 path of this process (the `0::` line), for the getsockopt placement check. */
function ownCgroup(): string | undefined {
  try {
    const line = readFileSync('/proc/self/cgroup', 'utf8')
      .split('\n')
      .find((l) => l.startsWith('0::'));
    return line?.slice(3);
  } catch {
    return undefined;
  }
}

/** Loads and attaches the BPF programs on the cgroup root (their maps are filled from the mesh state in step 4). */
async function openKernelDatapath(opts: AgentOptions): Promise<{ cgroupRoot: string; native: typeof import('./native/datapath'); datapath: Datapath }> {
  const cgroupRoot = checkCgroupRoot(opts.cgroupRoot);
  const native = await import('./native/datapath');
  const datapath = await native.openDatapath({
    bpffsDir: opts.bpffsDir,
    cgroupPath: cgroupRoot,
    captureIp4: opts.captureIp,
    ...(opts.captureIp6 ? { captureIp6: opts.captureIp6 } : {}),
    capturePort: opts.outboundPort,
    captureNetns: '/proc/self/ns/net',
  });
  return { cgroupRoot, native, datapath };
}

/** The datapath's bandwidth map and attach calls, bound (the pacer calls them unbound). */
function bandwidthOps(dp: Datapath): Pick<import('./datapath/bandwidth').BandwidthOps, 'bandwidths' | 'setBandwidth' | 'removeBandwidth' | 'attachBandwidth'> {
  return {
    bandwidths: () => dp.bandwidths(),
    setBandwidth: (ip, direction, bps) => dp.setBandwidth(ip, direction, bps),
    removeBandwidth: (ip, direction) => dp.removeBandwidth(ip, direction),
    attachBandwidth: (direction, netns, ifindex, bps) => dp.attachBandwidth(direction, netns, ifindex, bps),
  };
}

/** Where the agent's control plane is: started in-process (standalone) or remote. */
export interface ControlPlaneEndpoint {
  readonly address: string;
  readonly anchorsPem: string;
  readonly token: () => string;
  readonly controlPlaneId?: string;
}

/**
 * Starts a control plane for `--standalone` and says where it is. The agent never imports the control plane: the
 * `smesh` command (cli/) composes the two and passes this in; cleanups registered run when the agent stops.
 */
export type EmbeddedControlPlane = (opts: AgentOptions, logs: LogHub, cleanups: Array<() => Promise<void> | void>) => Promise<ControlPlaneEndpoint>;

function remoteControlPlane(opts: AgentOptions): ControlPlaneEndpoint {
  const read = (file: string, what: string): string => {
    try {
      return readFileSync(file, 'utf8').trim();
    } catch (err) {
      throw new SmeshError('SMESH_ERR_CONFIG', `${what} ${file}: ${(err as Error).message}`, { cause: err });
    }
  };
  const anchorsPem = read(opts.caCertFile!, '--ca-cert');
  read(opts.tokenFile!, '--token-file');
  return { address: opts.controlPlane!, anchorsPem, token: () => read(opts.tokenFile!, '--token-file'), controlPlaneId: controlSpiffeId(opts.trustDomain) };
}

export async function runAgent(opts: AgentOptions, embeddedControlPlane?: EmbeddedControlPlane): Promise<RunningAgent> {
  if (!isLogLevel(opts.logLevel)) throw new SmeshError('SMESH_ERR_CONFIG', `--log-level ${opts.logLevel}: expected one of fatal, error, warn, info, debug, trace, silent`);
  const logs = new LogHub({ level: opts.logLevel, base: { node: opts.nodeName } });
  const log = logs.child('agent');
  const metrics = new MeshMetrics();
  if (!opts.noAccessLog) metrics.accessLog = logs.access();
  metrics.accessLogRequests = opts.accessLogRequests;
  const state = new StateStore(emptySnapshot());
  // Trust-domain aliases in force: the flag's and the MeshConfig's, read per decision so a MeshConfig change applies
  // to new HBONE sessions and policy decisions without a restart (recomputed only when the MeshConfig's list changes).
  let meshAliases: readonly string[] | undefined;
  let aliasesInForce = opts.trustDomainAliases;
  const trustDomainAliases = (): readonly string[] => {
    const fromMesh = state.snapshot().trustDomainAliases;
    if (fromMesh !== meshAliases) {
      meshAliases = fromMesh;
      aliasesInForce = unionTrustDomainAliases(opts.trustDomainAliases, fromMesh);
    }
    return aliasesInForce;
  };
  const cleanups: Array<() => Promise<void> | void> = [];
  let stopping: Promise<void> | undefined;
  /** SIGTERM: listeners closed, open connections finishing; the kernel maps are left to the agent that follows. */
  let draining = false;
  /** The in-pod capture's hand-over (its kernel entries then belong to the agent that follows); set once it runs. */
  let handOverCapture: (() => void) | undefined;
  if (opts.inheritedListeners.length > 0) {
    adoptListeners(opts.inheritedListeners);
    log.info({ listeners: opts.inheritedListeners.map((l) => `${l.name}=fd${l.fd}`).join(',') }, 'adopting listening sockets held by the supervisor');
  }
  // The supervisor's IPC channel carries ready/draining reports only; it must not keep a stopping agent alive.
  if (opts.supervised) process.channel?.unref();
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      log.info('agent stopping');
      for (const c of cleanups.reverse()) {
        try {
          await c();
        } catch (err) {
          log.warn({ err }, 'cleanup step failed');
        }
      }
      logs.flush();
    })();
    return stopping;
  };

  try {
    // 1. Mesh state over xDS (the embedded control plane fails here, loudly, on an invalid config directory).
    if (opts.standalone && !embeddedControlPlane) throw new SmeshError('SMESH_ERR_CONFIG', '--standalone needs the embedded control plane: start the agent through the smesh command');
    const endpoint = opts.standalone ? await embeddedControlPlane!(opts, logs, cleanups) : remoteControlPlane(opts);
    let remoteCa: RemoteCa | undefined;
    const channel = new ControlPlaneChannel({
      address: endpoint.address,
      trustAnchorsPem: () => remoteCa?.trustBundlePem() ?? endpoint.anchorsPem,
      token: endpoint.token,
      controlPlaneId: endpoint.controlPlaneId,
    });
    cleanups.push(() => channel.close());
    const ca = new RemoteCa({ channel, trustAnchorsPem: endpoint.anchorsPem, ttlSeconds: opts.certTtlSeconds, logger: logs.child('ca-client') });
    remoteCa = ca;
    const xds = new XdsClient({ channel, nodeName: opts.nodeName, version: packageVersion(), backoff: { initialMs: 100, maxMs: 5_000 }, logger: logs.child('xds') });
    cleanups.push(() => xds.close());
    xds.onUpdate(({ snapshot, warnings }) => {
      for (const w of warnings) log.warn({ warning: w }, 'xDS resource accepted with a warning');
      state.replace(snapshot);
    });
    xds.onTrustAnchors((pems) => {
      try {
        ca.setTrustAnchors(pems);
        log.info({ anchors: pems.length }, 'trust anchors updated');
      } catch (err) {
        log.error({ err }, 'trust anchors from the control plane rejected; keeping the current ones');
      }
    });
    xds.onEvent((e) => metrics.recordXdsEvent(e));
    // Between xDS responses: the young generation stops at its cap (runtime/v8-heap.ts; no-op without the launcher).
    const heap = heapGuard();
    xds.onEvent(() => heap.check());
    xds.start();
    // The BPF programs load while the mesh state arrives (neither needs the other); step 4 fills their maps.
    const opening = opts.noBpf ? undefined : openKernelDatapath(opts);
    opening?.then(
      ({ cgroupRoot, datapath: dp }) => {
        if (stopping) return dp.close(); // the agent failed before this finished (e.g. no mesh state)
        cleanups.push(() => dp.close()); // pinned links stay: redirection survives an agent restart
        log.info(
          { cgroupRoot, bpffs: opts.bpffsDir, reused: dp.attachInfo.reused, links: dp.attachInfo.links.length },
          dp.attachInfo.reused ? 'reused pinned BPF links, programs swapped in place' : 'BPF programs attached and pinned',
        );
      },
      () => undefined, // awaited in step 4: a failure stops the agent there
    );
    if (!(await xds.waitForSync(opts.syncTimeoutMs))) {
      throw new SmeshError(
        'SMESH_ERR_CONFIG',
        `no complete mesh state from the control plane at ${endpoint.address} within ${opts.syncTimeoutMs / 1000}s (check the address, the token and that port 15012 is reachable)`,
      );
    }
    const initial = state.snapshot();
    const trustDomain = initial.trustDomain;
    const nodeIp = opts.nodeIp ?? state.node(opts.nodeName)?.address;
    if (!nodeIp) {
      throw new SmeshError('SMESH_ERR_CONFIG', `node ${opts.nodeName}: no address; add a Node resource named ${opts.nodeName} with an InternalIP, or pass --node-ip`);
    }
    const nodeId = nodeSpiffeId(trustDomain, opts.nodeName);
    log.info({ controlPlane: endpoint.address, standalone: opts.standalone, nodeIp, trustDomain, workloads: initial.workloads.size, services: initial.services.size }, 'mesh state received');

    // 2. Operational servers, readiness false until every component is up.
    let datapath: Datapath | undefined;
    let discovery: NetnsDiscovery | undefined;
    let plaintextCapture: InpodCapture | undefined;
    let pacer: BandwidthPacer | undefined;
    const ids = new WorkloadIds();
    // TrafficShaping rate limits: one set of buckets for the outbound, the inbound and both HTTP paths.
    const shaping = new TrafficShaper({ state, rateLimited: metrics.rateLimited, rateLimitedBytes: metrics.rateLimitedBytes });
    // New connections' work on this thread (decision, policy, dial) by class and fair share between source workloads.
    const acceptQueue = new AcceptQueue({
      fairShare: opts.fairShare !== false,
      onError: (err, c) => log.error({ err: (err as Error).message, flow: c.flow }, 'handling a new connection failed'),
    });
    const identities = new IdentityManager({ source: ca, nodeId, logger: logs.child('identity') });
    cleanups.push(() => identities.close());
    metrics.setCertificateProvider(() => identities.list());
    let memoryReclaim: { status(): ReclaimStatus } | undefined;
    const admin = new AdminServers({
      metrics,
      metricsListen: { host: '0.0.0.0', port: opts.metricsPort },
      readyListen: { host: '0.0.0.0', port: opts.readyPort },
      adminListen: { host: '127.0.0.1', port: opts.adminPort },
      requiredComponents: opts.noBpf ? ['listeners', 'certificates'] : ['bpf', 'listeners', 'certificates'],
      logging: logs,
      logger: logs.child('admin'),
      onQuit: () => void stop().then(() => process.exit(0)),
      memoryReclaim: () => memoryReclaim?.status(),
      configDump: () => {
        const s = state.snapshot();
        return {
          node: { name: opts.nodeName, address: nodeIp, identity: nodeId },
          trustDomain: s.trustDomain,
          trustDomainAliases: trustDomainAliases(), // in force: the flag's and the MeshConfig's
          xds: xds.status(),
          workloads: [...s.workloads.values()],
          services: [...s.services.values()],
          policies: s.authorizationPolicies ?? [],
          nodes: [...s.nodes.values()],
          // Which root signed each certificate and which roots this node trusts (root rotations).
          ...identities.describe(),
          datapath: datapath
            ? {
                attach: datapath.attachInfo,
                enrolledPods: datapath.enrolledPods().map((p) => ({ cookie: p.cookie.toString(), workload: ids.uidOf(p.workloadId) ?? p.workloadId })),
                meshedDestinations: datapath.meshedDestinations(),
              }
            : { disabled: true },
          netnsDiscovery: discovery ? discovery.status() : { disabled: true },
          plaintextCapture: plaintextCapture ? plaintextCapture.status() : { disabled: true },
          bandwidth: pacer ? pacer.status() : { disabled: true },
          trafficShaping: { ...(shaping.dump() as Record<string, unknown>), jsRelayBuckets: jsBuckets.dump() },
          acceptQueue: acceptQueue.dump(),
        };
      },
    });
    await admin.start();
    cleanups.push(() => admin.close());

    // 3. Certificates for this node and its workloads, signed by the mesh CA from our CSRs. Issued while step 4 loads
    // the BPF programs and fills the maps: neither needs the other, and each mostly waits (control plane, kernel).
    const certificates = identities.ensure(localIdentities(initial, opts.nodeName)).then(() => admin.markReady('certificates'));
    certificates.catch(() => undefined); // awaited after step 4: a failure stops the agent there

    // 4. Kernel datapath: the programs loaded during step 1; the maps follow the state from here on.
    let reconciler: Reconciler | undefined;
    /** Kernel maps follow the state; local pods' netns found on the node fill what the control plane left out. */
    let enroll: ((s: MeshSnapshot) => Promise<unknown>) | undefined;
    /** After each reconcile (set in step 5, once the proxies exist): the inbound plaintext capture follows the pods. */
    let afterEnroll: ((s: MeshSnapshot) => Promise<void>) | undefined;
    /** After certificates for new workloads arrive: their pod-addressed HBONE servers can start. */
    let afterCertificates: (() => void) | undefined;
    if (opening) {
      const { cgroupRoot, native, datapath: dp } = await opening;
      datapath = dp;
      const mine = ownCgroup();
      const mount = cgroup2Mounts().find((m) => cgroupRoot.startsWith(m + '/'));
      const rootRel = mount ? cgroupRoot.slice(mount.length) : undefined;
      if (mine !== undefined && rootRel !== undefined && mine !== rootRel && !mine.startsWith(rootRel + '/')) {
        log.info({ ownCgroup: mine, cgroupRoot }, 'agent runs outside --cgroup-root: original destinations come from the pinned map instead of getsockopt');
      }
      metrics.setInboundCounterProvider(() => {
        try {
          return dp.inboundCounters();
        } catch {
          return undefined; // closed during shutdown
        }
      });
      // Connections the kernel denies (connect-time deny, STRICT drops) reach Istio's TCP metrics once per connection.
      const kernelDenials = new KernelDenialReporter(metrics, dp, {
        workloadById: (id) => {
          const uid = ids.uidOf(id);
          return uid === undefined ? undefined : state.snapshot().workloads.get(uid);
        },
        workloadByIp: (ip) => state.workloadByIp(ip),
        serviceByIp: (ip, port) => {
          const r = state.resolve(ip, port);
          return r.kind === 'service' ? serviceInfo(r.service, state.trustDomain) : undefined;
        },
      });
      metrics.onScrape(() => kernelDenials.flush());
      // The IPv6 source the proxy dials IPv6 pods from is trusted as the IPv4 capture address is (never captured, passes STRICT).
      const ownSources = opts.captureIp6 ? [opts.captureIp6] : [];
      reconciler = new Reconciler(
        dp,
        native.netnsCookie,
        opts.nodeName,
        ids,
        logs.child('datapath'),
        () => [...ownSources, ...(opts.noProbeExemption ? [] : hostAddresses(opts.captureIp))],
        trustDomainAliases,
      );
      const rec = reconciler;
      if (!opts.noNetnsDiscovery) discovery = new NetnsDiscovery({ cgroupRoot, nodeName: opts.nodeName, logger: logs.child('netns-discovery') });
      const found = discovery;
      // Pod bandwidth annotations: paced in the kernel on every reconcile; an earlier agent's leftovers are taken off.
      const pacedGauge = new Gauge({
        name: 'smesh_bandwidth_limits',
        help: 'Local pods whose bandwidth is paced in the kernel (kubernetes.io/egress-bandwidth, ingress-bandwidth), by direction',
        labelNames: ['direction'],
        registers: [metrics.registry],
      });
      const bw = (pacer = new BandwidthPacer(
        { ...bandwidthOps(dp), podDevices: (ns, ip) => native.podDevices(ns, ip), detachBandwidth: native.detachBandwidth },
        opts.nodeName,
        logs.child('bandwidth'),
        (p) => {
          pacedGauge.set({ direction: 'egress' }, p.egress);
          pacedGauge.set({ direction: 'ingress' }, p.ingress);
        },
      ));
      enroll = async (s) => {
        if (draining) return undefined; // a draining agent leaves the maps and in-pod listeners to its successor
        const e = found ? await found.enrich(s) : s;
        const r = await rec.reconcile(e);
        await bw.sync(e);
        await afterEnroll?.(e);
        return r;
      };
      const enriched = found ? await found.enrich(initial) : initial;
      const report = await rec.reconcile(enriched);
      await bw.sync(enriched);
      log.info({ enrolled: report.enrolled, destinations: report.destinations, strict: report.strict, connectDenies: report.connectDenies, failures: report.failures.length }, 'pods enrolled');
      admin.markReady('bpf');
      const timer = setInterval(() => {
        enroll!(state.snapshot()).catch((err) => log.error({ err }, 'periodic reconcile failed'));
      }, RECONCILE_INTERVAL_MS);
      timer.unref();
      cleanups.push(() => clearInterval(timer));
    }
    await certificates;

    // 5. Proxies; one authorizer (AuthorizationPolicy from the state) for the inbound and the same-node path.
    const authorize = createAuthorizer({ state, denials: metrics.policyDenials, accessLog: logs.access(), trustDomainAliases });
    // Open L4 connections (inbound HBONE streams, same-node outbound) are decided again when the policies change;
    // those now denied are reset (requests on HTTP ports are decided one by one anyway).
    const connections = new ConnectionTracker({ decide: authorize.decide, closed: metrics.policyConnectionsClosed, logger: logs.access() });
    state.onChange((next, prev) => {
      if (policyInputsChanged(prev, next)) connections.reevaluate();
    });
    const nativeOrigDst = opts.noBpf ? undefined : await import('./native/datapath');
    // Who moves HBONE bytes: the addon's engine (TLS + HTTP/2 on its own threads) or node:tls + node:http2 here.
    const engine = await selectDataplane(opts, log);
    // The engine's bytes/s buckets and fair-share flows: counted in smesh_rate_limited_*, shown in /config_dump.
    if (engine) cleanups.push(shaping.attachEngine(() => engine.qosState()));
    const engineIdentities = engine ? new EngineIdentities(engine, identities) : undefined;
    // bytes/s limits of relays in JavaScript (same-node, JS data plane, captured plaintext): the engine's buckets
    // when it runs (a rule's limit holds across both paths), else buckets kept here.
    const jsBuckets = new JsByteBuckets();
    const engineCharge = engine?.chargeLimits ? (limits: readonly HboneByteLimit[], bytes: number) => engine.chargeLimits!(limits, bytes) : undefined;
    const relayLimitsFor = (facts: readonly ConnectionFacts[]) => relayLimits(shaping.byteLimits(facts), { engine: engineCharge, js: jsBuckets });
    const hbone = engine
      ? new NativeHboneClient({ engine, identities: engineIdentities!, metrics, logger: logs.child('hbone-client'), trustDomainAliases })
      : new HboneClient({ identities, metrics, logger: logs.child('hbone-client'), trustDomainAliases });
    cleanups.push(() => hbone.close());
    metrics.dataplane.set({ dataplane: engine ? 'native' : 'js' }, 1);
    if (engine) {
      metrics.onScrape(() => {
        const st = engine.stats();
        metrics.hboneSessions.set({ direction: 'inbound' }, st.sessions.inbound);
        metrics.hboneSessions.set({ direction: 'outbound' }, st.sessions.outbound);
        metrics.hboneActiveStreams.set({ direction: 'outbound' }, st.streams.outbound);
      });
    }
    // Service ports with HTTP routes (or declared HTTP) are proxied per request: routing, retries, circuit breaking.
    // One originator of Istio sidecars' mutual TLS (LEGACY_ISTIO_MTLS endpoints) for the L4 and the HTTP paths.
    const legacyMtls = new LegacyMtlsConnector({ identities, trustDomainAliases, clusterId: DEFAULT_CLUSTER });
    const httpOutbound = new HttpOutbound({
      state,
      hbone,
      legacyMtls,
      nodeName: opts.nodeName,
      hbonePort: opts.inboundPort,
      hboneAddressing: opts.hboneAddressing,
      localSourceIp: opts.noBpf ? undefined : opts.captureIp,
      localSourceIp6: opts.noBpf ? undefined : opts.captureIp6,
      authorize,
      connections,
      metrics,
      logger: logs.child('http'),
      shaping,
      requestQueue: acceptQueue,
    });
    // Opt-in (--http-engine): eligible HTTP/1.1 connections are served by the addon's HTTP/1.1 engine, decided per request by httpOutbound.
    const h1 = opts.httpEngine ? http1Engine() : undefined;
    if (opts.httpEngine && !h1) log.warn({}, '--http-engine: the addon has no HTTP/1.1 engine (not built?); HTTP ports stay on node:http');
    const httpHandler = h1
      ? new EngineHttpOutbound({
          http: httpOutbound,
          engine: h1,
          state,
          // With the native data plane the bridge attaches its loopback sockets to HBONE engine streams (no byte through JS).
          tunnels: { hbone: (req) => hbone.open(req), legacyMtls: (req) => legacyMtls.connect(req), ...(hbone instanceof NativeHboneClient ? { native: hbone } : {}) },
          streamQos: (f) => shaping.streamQos(f),
          metrics,
          logger: logs.child('http-engine'),
        })
      : httpOutbound;
    // Parses and authorizes requests as a destination does: HBONE tunnels to HTTP ports, captured plaintext, and
    // same-node connections to a pod's HTTP port dialled by address.
    const inboundHttp = new InboundHttp({
      authorize,
      connections,
      upstreamSourceIp: opts.noBpf ? undefined : opts.captureIp,
      upstreamSourceIp6: opts.noBpf ? undefined : opts.captureIp6,
      metrics,
      logger: logs.child('inbound'),
      shaping,
    });
    // With --http-engine, HTTP/1.1 tunnels and sockets are served by the engine with inboundHttp's per-request decision.
    const httpTunnels = h1 ? new EngineInboundHttp({ http: inboundHttp, engine: h1, metrics, logger: logs.child('http-engine-inbound') }) : inboundHttp;
    const outbound = new OutboundProxy({
      state,
      identities,
      trustDomainAliases,
      legacyMtls,
      hbone,
      nodeName: opts.nodeName,
      hbonePort: opts.inboundPort,
      hboneAddressing: opts.hboneAddressing,
      authorize,
      http: httpHandler,
      httpTunnels,
      httpProtocolOf: (workload, port) => inboundHttpProtocol(state, workload, port),
      connections,
      listen: { host: opts.captureIp, port: opts.outboundPort },
      // With --capture-ip6 the kernel also redirects enrolled pods' IPv6 connections, to this listener.
      ...(opts.captureIp6 && !opts.noBpf ? { listen6: { host: opts.captureIp6, port: opts.outboundPort }, localSourceIp6: opts.captureIp6 } : {}),
      localSourceIp: opts.noBpf ? undefined : opts.captureIp,
      originalDestination: (sock) => (nativeOrigDst ? nativeOrigDst.originalDestination(nativeOrigDst.socketFd(sock), opts.bpffsDir) : null),
      metrics,
      logger: logs.child('outbound'),
      shaping,
      acceptQueue,
      relayLimits: relayLimitsFor,
    });
    const inbound = new InboundProxy({
      identities,
      nodeId,
      trustDomainAliases,
      nodeName: opts.nodeName,
      state,
      listen: { host: '0.0.0.0', port: opts.inboundPort },
      upstreamSourceIp: opts.noBpf ? undefined : opts.captureIp,
      upstreamSourceIp6: opts.noBpf ? undefined : opts.captureIp6,
      authorize,
      httpProtocolOf: (workload, port) => inboundHttpProtocol(state, workload, port),
      // Tunnels to HTTP ports with request-level rules: parsed, every request authorized (L7 at the destination).
      httpTunnels,
      connections,
      metrics,
      logger: logs.child('inbound'),
      engine,
      engineIdentities,
      shaping,
      relayLimits: relayLimitsFor,
    });
    await outbound.start();
    cleanups.push(() => outbound.close());
    // Redirected connections are spread over the capture tuples; the kernel hands them all to this one listener.
    datapath?.setOutboundListener(outbound.listenerFd());
    await inbound.start();
    cleanups.push(() => inbound.close());
    // In each local pod's network namespace (sk_lookup, pinned link): plaintext from outside the mesh into PERMISSIVE
    // pods is captured and authorized with an empty principal, as Istio does (STRICT stays a kernel drop), and
    // `<pod IP>:15008` is served with the workload's own certificate (ztunnel's pod-addressed HBONE).
    if (datapath) {
      const dp = datapath;
      const plaintext = opts.noPlaintextCapture
        ? undefined
        : new PlaintextInbound({
            state,
            nodeName: opts.nodeName,
            authorize,
            httpProtocolOf: (workload, port) => inboundHttpProtocol(state, workload, port),
            httpTunnels,
            upstreamSourceIp: opts.captureIp,
            upstreamSourceIp6: opts.captureIp6,
            connections,
            metrics,
            logger: logs.child('inbound-plaintext'),
            acceptQueue,
            acceptClass: (direction, source, sourceIp, destination) => shaping.acceptClass(direction, source, sourceIp, destination),
            relayLimits: relayLimitsFor,
          });
      if (!plaintext) for (const ip of dp.heldPlaintext()) dp.releasePlaintext(ip); // an earlier agent's holds would drop it
      const { netnsListener } = await import('./native/datapath');
      const capture = new InpodCapture(
        {
          netnsListener,
          attachInboundCapture: (p) => dp.attachInboundCapture(p),
          releaseInboundCapture: (pin, fd) => dp.releaseInboundCapture(pin, fd),
          inboundCapturePins: () => dp.inboundCapturePins(),
          setCaptureListener: (ip, fd, kind) => dp.setCaptureListener(ip, fd, kind),
          removeCaptureListener: (ip, kind) => dp.removeCaptureListener(ip, kind),
          holdPlaintext: (ip) => dp.holdPlaintext(ip),
          releasePlaintext: (ip) => dp.releasePlaintext(ip),
          heldPlaintext: () => dp.heldPlaintext(),
        },
        plaintext ? (socket) => plaintext.handle(socket) : undefined,
        logs.child('datapath'),
        (workload, ip) => inbound.podServer(workload, ip),
      );
      handOverCapture = () => capture.handOver();
      cleanups.push(async () => {
        plaintext?.close();
        await capture.close();
      });
      let lastEnriched: MeshSnapshot | undefined;
      afterEnroll = (e) => {
        lastEnriched = e;
        return capture.sync(podsToCapture(e, opts.nodeName));
      };
      // A workload certificate issued after its pod appeared: its pod-addressed HBONE server can start now.
      afterCertificates = () => {
        if (lastEnriched) capture.sync(podsToCapture(lastEnriched, opts.nodeName)).catch((err) => log.warn({ err }, 'in-pod listeners: sync after new certificates failed'));
      };
      await enroll!(state.snapshot());
      plaintextCapture = capture;
    }
    admin.markReady('listeners');

    // 6. Later state changes: one batch each from the xDS client; certificates and kernel maps follow.
    state.onChange((next) => {
      if (next.trustDomain !== trustDomain) log.error({ from: trustDomain, to: next.trustDomain }, 'the trust domain changed; identities keep the old one until the agent restarts');
      const wanted = localIdentities(next, opts.nodeName);
      identities.ensure(wanted).then(
        () => afterCertificates?.(),
        (err) => log.error({ err }, 'issuing certificates for new workloads failed'),
      );
      identities.retain(wanted);
      enroll?.(next).catch((err) => log.error({ err }, 'reconcile after a state change failed'));
    });

    // SIGINT stops at once; SIGTERM drains (a second SIGTERM stops at once).
    const stopNow = (signal: string) => {
      log.info({ signal }, 'signal received');
      void stop().then(() => process.exit(0));
    };
    process.once('SIGINT', () => stopNow('SIGINT'));
    process.once('SIGTERM', () => {
      process.once('SIGTERM', () => stopNow('SIGTERM'));
      draining = true;
      // From here the in-pod listeners and maps belong to the successor: a late sync (a renewed certificate) must not
      // put this agent's listeners back over the new agent's.
      handOverCapture?.();
      if (opts.supervised) process.send?.({ smesh: 'draining', pid: process.pid });
      outbound.stopAccepting();
      inbound.stopAccepting();
      const open = () => outbound.openConnections() + inbound.openConnections() + connections.size + (engine ? engine.stats().streams.outbound : 0);
      log.info({ signal: 'SIGTERM', open: open(), drainSeconds: opts.drainSeconds }, 'draining: listeners closed, open connections finish');
      const deadline = performance.now() + opts.drainSeconds * 1000;
      const check = setInterval(() => {
        const left = open();
        if (left > 0 && performance.now() < deadline) return;
        clearInterval(check);
        log.info({ open: left }, left > 0 ? 'drain deadline passed: closing the remaining connections' : 'drained: no open connection left');
        void stop().then(() => process.exit(0));
      }, 100);
    });
    // After a load burst, the memory it took goes back to the OS once the agent is quiet (runtime/reclaim.ts).
    const reclaim = await startAgentMemoryReclaim({ metrics, logger: logs.child('memory') });
    cleanups.push(() => reclaim.stop());
    memoryReclaim = reclaim;
    log.info(
      { outbound: `${opts.captureIp}:${opts.outboundPort}`, inbound: `0.0.0.0:${opts.inboundPort}`, metrics: opts.metricsPort, ready: opts.readyPort, admin: `127.0.0.1:${opts.adminPort}` },
      'agent ready',
    );
    if (opts.supervised) process.send?.({ smesh: 'ready', pid: process.pid });
    return { state, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

/**
 * The native HBONE engine when `--dataplane` asks for it (auto: when the addon has it), configured with `--workers`;
 * undefined for the JS data plane. `native` without a usable engine is an error, not a silent fallback.
 */
/**
 * Worker threads of the native HBONE engine: `--workers`, else one per core the agent may use (the addon's own default
 * was one thread). Measured on the noisy-neighbour bench (2 cores): with two workers a quiet pod next to a flooding
 * one kept 0.41–0.44× of its requests/s and a 0.7–0.9 ms p50, with one 0.18× and 6 ms.
 */
export function engineWorkers(flag: number | undefined, cores = availableParallelism()): number {
  return flag ?? Math.max(1, Math.min(64, cores));
}

async function selectDataplane(opts: AgentOptions, log: { info(o: object, m: string): void; warn(o: object, m: string): void }): Promise<HboneEngine | undefined> {
  if (opts.dataplane === 'js' || (opts.dataplane === 'auto' && AUTO_DATAPLANE === 'js')) {
    log.info({ dataplane: 'js' }, `HBONE data plane: node:tls + node:http2 (--dataplane ${opts.dataplane})`);
    return undefined;
  }
  const { hboneEngine } = await import('./native/hbone');
  let engine: HboneEngine | undefined;
  try {
    engine = hboneEngine();
    if (engine)
      engine.configure({
        workers: engineWorkers(opts.workers),
        fairShare: opts.fairShare,
        ...(opts.relayTurnKib !== undefined ? { turnBytes: opts.relayTurnKib * 1024 } : {}),
        ...(opts.workerNice !== undefined ? { workerNice: opts.workerNice } : {}),
      });
  } catch (err) {
    if (opts.dataplane === 'native') throw new SmeshError('SMESH_ERR_NATIVE', `--dataplane native: the addon's HBONE engine cannot start: ${(err as Error).message}`);
    log.warn({ err: (err as Error).message }, 'native HBONE engine unusable; using the JS data plane');
    return undefined;
  }
  if (!engine) {
    if (opts.dataplane === 'native') throw new SmeshError('SMESH_ERR_NATIVE', '--dataplane native: the addon has no HBONE engine (build it with `make native`)');
    log.warn({}, 'the addon has no HBONE engine; using the JS data plane');
    return undefined;
  }
  log.info({ dataplane: 'native', workers: engineWorkers(opts.workers), fairShare: opts.fairShare }, 'HBONE data plane: native engine');
  return engine;
}
