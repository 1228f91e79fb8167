// The agent's composition root: config → state → identities → kernel datapath → proxies → telemetry, and their lifecycle.
import { watch, type FSWatcher, readFileSync } from 'node:fs';
import { AdminServers } from './admin/servers';
import { cgroup2Mounts, checkCgroupRoot } from './config/cgroup';
import type { AgentOptions } from './config/options';
import { ConfigError, loadConfigDir } from './config/resources';
import { Reconciler, WorkloadIds } from './datapath/reconciler';
import { SmeshError } from './errors';
import { loadOrCreateRootCa } from './identity/ca';
import { IdentityManager } from './identity/manager';
import { nodeSpiffeId } from './identity/spiffe';
import type { Datapath } from './native/datapath';
import { HboneClient } from './proxy/hbone-client';
import { InboundProxy } from './proxy/hbone-server';
import { OutboundProxy } from './proxy/outbound';
import { StateStore } from './state/store';
import type { MeshSnapshot } from './state/types';
import { LogHub, isLogLevel } from './telemetry/logger';
import { MeshMetrics } from './telemetry/metrics';

/** How often enrollment is re-checked against the kernel even without a config change (pods restarted, netns recreated). */
const RECONCILE_INTERVAL_MS = 10_000;
/** Coalesces bursts of file events from one editor save into one reload. */
const CONFIG_RELOAD_DEBOUNCE_MS = 200;

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
    const line = readFileSync('/proc/self/cgroup', 'utf8').split('\n').find((l) => l.startsWith('0::'));
    return line?.slice(3);
  } catch {
    return undefined;
  }
}

export async function runAgent(opts: AgentOptions): Promise<RunningAgent> {
  if (!isLogLevel(opts.logLevel)) throw new SmeshError('SMESH_ERR_CONFIG', `--log-level ${opts.logLevel}: expected one of fatal, error, warn, info, debug, trace, silent`);
  const logs = new LogHub({ level: opts.logLevel, base: { node: opts.nodeName } });
  const log = logs.child('agent');

  // Config first: the agent never starts on half a config.
  const initial = loadConfigDir(opts.configDir);
  const state = new StateStore(initial);
  const node = state.node(opts.nodeName);
  const nodeIp = opts.nodeIp ?? node?.address;
  if (!nodeIp) {
    throw new SmeshError('SMESH_ERR_CONFIG', `node ${opts.nodeName}: no address; add a Node resource named ${opts.nodeName} with an InternalIP to ${opts.configDir}, or pass --node-ip`);
  }
  const trustDomain = initial.trustDomain;
  const nodeId = nodeSpiffeId(trustDomain, opts.nodeName);
  log.info({ config: opts.configDir, nodeIp, trustDomain, workloads: initial.workloads.size, services: initial.services.size }, 'configuration loaded');

  const metrics = new MeshMetrics();
  const cleanups: Array<() => Promise<void> | void> = [];
  let stopping: Promise<void> | undefined;
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
    let datapath: Datapath | undefined;
    const ids = new WorkloadIds();
    const admin = new AdminServers({
      metrics,
      metricsListen: { host: '0.0.0.0', port: opts.metricsPort },
      readyListen: { host: '0.0.0.0', port: opts.readyPort },
      adminListen: { host: '127.0.0.1', port: opts.adminPort },
      requiredComponents: opts.noBpf ? ['listeners', 'certificates'] : ['bpf', 'listeners', 'certificates'],
      logging: logs,
      logger: logs.child('admin'),
      onQuit: () => void stop().then(() => process.exit(0)),
      configDump: () => {
        const s = state.snapshot();
        return {
          node: { name: opts.nodeName, address: nodeIp, identity: nodeId },
          trustDomain: s.trustDomain,
          workloads: [...s.workloads.values()],
          services: [...s.services.values()],
          nodes: [...s.nodes.values()],
          certificates: identities.list(),
          datapath: datapath
            ? { attach: datapath.attachInfo, enrolledPods: datapath.enrolledPods().map((p) => ({ cookie: p.cookie.toString(), workload: ids.uidOf(p.workloadId) ?? p.workloadId })), meshedDestinations: datapath.meshedDestinations() }
            : { disabled: true },
        };
      },
    });
    // Identities before listeners: the inbound presents the node certificate from its first handshake.
    const ca = await loadOrCreateRootCa(opts.caDir, trustDomain);
    const identities = new IdentityManager({ source: ca, nodeId, logger: logs.child('identity') });
    cleanups.push(() => identities.close());
    metrics.setCertificateProvider(() => identities.list());
    await admin.start();
    cleanups.push(() => admin.close());
    await identities.ensure(localIdentities(initial, opts.nodeName));
    admin.markReady('certificates');

    let reconciler: Reconciler | undefined;
    if (!opts.noBpf) {
      const cgroupRoot = checkCgroupRoot(opts.cgroupRoot);
      const native = await import('./native/datapath');
      datapath = await native.openDatapath({ bpffsDir: opts.bpffsDir, cgroupPath: cgroupRoot, captureIp4: opts.captureIp, capturePort: opts.outboundPort });
      const dp = datapath;
      cleanups.push(() => dp.close()); // pinned links stay: redirection survives an agent restart
      log.info({ cgroupRoot, bpffs: opts.bpffsDir, reused: dp.attachInfo.reused, links: dp.attachInfo.links.length }, dp.attachInfo.reused ? 'reused pinned BPF links, programs swapped in place' : 'BPF programs attached and pinned');
      const mine = ownCgroup();
      const mount = cgroup2Mounts().find((m) => cgroupRoot.startsWith(m + '/'));
      const rootRel = mount ? cgroupRoot.slice(mount.length) : undefined;
      if (mine !== undefined && rootRel !== undefined && mine !== rootRel && !mine.startsWith(rootRel + '/')) {
        log.info({ ownCgroup: mine, cgroupRoot }, 'agent runs outside --cgroup-root: original destinations come from the pinned map instead of getsockopt');
      }
      reconciler = new Reconciler(dp, native.netnsCookie, opts.nodeName, ids, logs.child('datapath'));
      const report = await reconciler.reconcile(initial);
      log.info({ enrolled: report.enrolled, destinations: report.destinations, failures: report.failures.length }, 'pods enrolled');
      admin.markReady('bpf');
      const rec = reconciler;
      const timer = setInterval(() => {
        rec.reconcile(state.snapshot()).catch((err) => log.error({ err }, 'periodic reconcile failed'));
      }, RECONCILE_INTERVAL_MS);
      timer.unref();
      cleanups.push(() => clearInterval(timer));
    }

    const nativeOrigDst = opts.noBpf ? undefined : await import('./native/datapath');
    const hbone = new HboneClient({ identities, metrics, logger: logs.child('hbone-client') });
    cleanups.push(() => hbone.close());
    const outbound = new OutboundProxy({
      state,
      identities,
      hbone,
      nodeName: opts.nodeName,
      hbonePort: opts.inboundPort,
      listen: { host: opts.captureIp, port: opts.outboundPort },
      originalDestination: (sock) => (nativeOrigDst ? nativeOrigDst.originalDestination(nativeOrigDst.socketFd(sock), opts.bpffsDir) : null),
      metrics,
      logger: logs.child('outbound'),
    });
    const inbound = new InboundProxy({
      identities,
      nodeId,
      nodeName: opts.nodeName,
      state,
      listen: { host: '0.0.0.0', port: opts.inboundPort },
      metrics,
      logger: logs.child('inbound'),
    });
    await outbound.start();
    cleanups.push(() => outbound.close());
    await inbound.start();
    cleanups.push(() => inbound.close());
    admin.markReady('listeners');

    // Config changes: a valid new config replaces the state as one batch; an invalid one is reported and ignored.
    state.onChange((next) => {
      identities.ensure(localIdentities(next, opts.nodeName)).catch((err) => log.error({ err }, 'issuing certificates for new workloads failed'));
      identities.retain(localIdentities(next, opts.nodeName));
      reconciler?.reconcile(next).catch((err) => log.error({ err }, 'reconcile after config change failed'));
    });
    let debounce: NodeJS.Timeout | undefined;
    const reload = (): void => {
      try {
        const next = loadConfigDir(opts.configDir);
        if (next.trustDomain !== trustDomain) {
          log.error({ from: trustDomain, to: next.trustDomain }, 'config change ignored: the trust domain cannot change while the agent runs; restart the agent');
          return;
        }
        state.replace(next);
        log.info({ workloads: next.workloads.size, services: next.services.size }, 'configuration reloaded');
      } catch (err) {
        log.error({ problems: err instanceof ConfigError ? err.problems : undefined, err: err instanceof ConfigError ? undefined : err }, 'config change rejected; keeping the previous configuration');
      }
    };
    let watcher: FSWatcher | undefined;
    try {
      watcher = watch(opts.configDir, () => {
        clearTimeout(debounce);
        debounce = setTimeout(reload, CONFIG_RELOAD_DEBOUNCE_MS);
      });
      cleanups.push(() => {
        clearTimeout(debounce);
        watcher?.close();
      });
    } catch (err) {
      log.warn({ err }, 'cannot watch the config directory; changes need an agent restart');
    }

    for (const sig of ['SIGTERM', 'SIGINT'] as const) {
      process.once(sig, () => {
        log.info({ signal: sig }, 'signal received');
        void stop().then(() => process.exit(0));
      });
    }
    log.info({ outbound: `${opts.captureIp}:${opts.outboundPort}`, inbound: `0.0.0.0:${opts.inboundPort}`, metrics: opts.metricsPort, ready: opts.readyPort, admin: `127.0.0.1:${opts.adminPort}` }, 'agent ready');
    return { state, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
