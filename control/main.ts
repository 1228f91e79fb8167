// Composition root of `smesh control`: source → registry → delta ADS + CA over one TLS gRPC server (tokens and --ca-dir reloaded without a restart); the CLI and the in-process API standalone agents use.
import * as grpc from '@grpc/grpc-js';
import { X509Certificate } from 'node:crypto';
import { networkInterfaces, hostname } from 'node:os';
import * as path from 'node:path';
import { parseDurationMs } from './config/schema';
import { SmeshError } from '../core/errors';
import type { MeshSnapshot } from '../core/model/types';
import { isLogLevel, LogHub, silentLogger, type Logger } from '../core/telemetry/logger';
import { loadMeshProtos } from '../proto';
import { ControlAdminServer, DEFAULT_CONTROL_METRICS_LISTEN } from './admin';
import { TokenAuthenticator, TokenFileWatcher } from './auth';
import { CaDirWatcher, createCaService, MeshCa } from './ca-service';
import { ControlMetrics } from './metrics';
import { Registry } from './registry';
import { FileSource } from './sources/files';
import type { MeshSource } from './sources/types';
import { controlPlaneIdentifier, createAdsService, type StreamInfo } from './xds-server';
import { packageVersion } from '../core/version';

export const DEFAULT_CONTROL_LISTEN = '0.0.0.0:15012';

export interface ControlPlaneOptions {
  /** Where the mesh comes from: `new FileSource({dir})`, `new KubernetesSource({...})`, or any MeshSource. */
  readonly source: MeshSource;
  /**
   * Directory with root-cert.pem + root-key.pem (created when absent) and optional rotation anchors. It is
   * watched: a next-root-cert.pem is published to agents, a promoted root signs new certificates (the serving
   * certificate is re-issued from it), a removed previous-root-cert.pem stops being published — no restart.
   */
  readonly caDir?: string;
  /** Poll period of --ca-dir (besides fs.watch). Default 1000 ms. */
  readonly caReloadIntervalMs?: number;
  /** Quiet time after a --ca-dir change before it is read. Default 500 ms. */
  readonly caReloadDebounceMs?: number;
  /** Or an already loaded CA (tests, embedding). One of caDir / ca is required. */
  readonly ca?: MeshCa;
  /**
   * Bearer token → node name, or a TokenAuthenticator, or the path of a YAML/JSON tokens file. A file
   * is watched: added tokens work and revoked ones are refused (new streams, CSRs) without a restart.
   */
  readonly tokens: Readonly<Record<string, string>> | ReadonlyMap<string, string> | TokenAuthenticator | string;
  /** Poll period of the tokens file (besides fs.watch). Default 1000 ms. */
  readonly tokenReloadIntervalMs?: number;
  /** host:port; port 0 picks a free port (see the returned `port`). Default 0.0.0.0:15012. */
  readonly listen?: string;
  /** Longest leaf lifetime the CA grants. Default 24 h. */
  readonly certTtlSeconds?: number;
  /** Extra DNS names / IPs for the serving certificate (besides localhost, loopback and local addresses). */
  readonly serverNames?: readonly string[];
  /** This instance in control_plane.identifier (the "ID" of istiod's shape). Default: the host name (the pod name in Kubernetes). */
  readonly instanceId?: string;
  readonly logger?: Logger;
  readonly metrics?: ControlMetrics;
}

export interface ControlPlane {
  readonly port: number;
  /** The address actually bound (host:port). */
  readonly address: string;
  readonly registry: Registry;
  readonly ca: MeshCa;
  readonly metrics: ControlMetrics;
  /** PEM of the roots agents must trust to connect (--ca-cert); ca.trustAnchors joined (follows --ca-dir reloads). */
  readonly trustBundlePem: string;
  streams(): StreamInfo[];
  /**
   * Issues a new serving certificate (new key) and serves it to new TLS connections; established
   * connections keep theirs. Runs by itself at half the certificate's remaining lifetime.
   */
  rotateServingCertificate(): Promise<void>;
  close(): Promise<void>;
}

function splitHostPort(listen: string, flag = '--listen'): { host: string; port: number } {
  const m = /^\[?([^\]]*?)\]?:(\d+)$/.exec(listen);
  if (!m) throw new SmeshError('SMESH_ERR_CONFIG', `${flag}: expected host:port, got ${JSON.stringify(listen)}`);
  const port = Number(m[2]);
  if (port > 65535) throw new SmeshError('SMESH_ERR_CONFIG', `${flag}: port ${port} is out of range`);
  return { host: m[1] || '0.0.0.0', port };
}

function serverSans(host: string, extra: readonly string[]): { dnsNames: string[]; ips: string[] } {
  const dnsNames = ['localhost', 'smesh-control', 'smesh-control.smesh-system', 'smesh-control.smesh-system.svc', hostname()];
  const ips = ['127.0.0.1', '::1'];
  if (host === '0.0.0.0' || host === '::') {
    for (const addrs of Object.values(networkInterfaces())) for (const a of addrs ?? []) ips.push(a.address.replace(/%.*$/, ''));
  } else {
    ips.push(host);
  }
  for (const e of extra) (/^[\d.]+$|:/.test(e) ? ips : dnsNames).push(e);
  return { dnsNames, ips };
}

/**
 * The gRPC server's serving certificate as a grpc-js certificate provider, so it can be replaced
 * without rebinding: grpc-js calls setSecureContext on its TLS servers for every update (new
 * handshakes use it; open connections are untouched). Listeners get the current value on the next
 * microtask, after grpc-js has registered the server that asked.
 */
class ServingCertificateProvider implements grpc.experimental.CertificateProvider {
  private identity: grpc.experimental.IdentityCertificateUpdate;
  private ca: grpc.experimental.CaCertificateUpdate;
  private readonly identityListeners = new Set<grpc.experimental.IdentityCertificateUpdateListener>();
  private readonly caListeners = new Set<grpc.experimental.CaCertificateUpdateListener>();

  constructor(certPem: string, keyPem: string, trustPem: string) {
    this.identity = { certificate: Buffer.from(certPem), privateKey: Buffer.from(keyPem) };
    this.ca = { caCertificate: Buffer.from(trustPem) };
  }

  update(certPem: string, keyPem: string, trustPem: string): void {
    this.identity = { certificate: Buffer.from(certPem), privateKey: Buffer.from(keyPem) };
    this.ca = { caCertificate: Buffer.from(trustPem) };
    for (const l of this.caListeners) l(this.ca);
    for (const l of this.identityListeners) l(this.identity);
  }

  /** New trust anchors only (client certificates are verified against them); the serving certificate stays. */
  updateTrust(trustPem: string): void {
    this.ca = { caCertificate: Buffer.from(trustPem) };
    for (const l of this.caListeners) l(this.ca);
  }

  addCaCertificateListener(l: grpc.experimental.CaCertificateUpdateListener): void {
    this.caListeners.add(l);
    queueMicrotask(() => this.caListeners.has(l) && l(this.ca));
  }
  removeCaCertificateListener(l: grpc.experimental.CaCertificateUpdateListener): void {
    this.caListeners.delete(l);
  }
  addIdentityCertificateListener(l: grpc.experimental.IdentityCertificateUpdateListener): void {
    this.identityListeners.add(l);
    queueMicrotask(() => this.identityListeners.has(l) && l(this.identity));
  }
  removeIdentityCertificateListener(l: grpc.experimental.IdentityCertificateUpdateListener): void {
    this.identityListeners.delete(l);
  }
}

/** Longest single setTimeout (about 24.8 days); longer waits are chained. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** Starts the control plane in this process: source, registry, CA and the TLS gRPC server (ADS + CA). */
export async function startControlPlane(opts: ControlPlaneOptions): Promise<ControlPlane> {
  const logger = opts.logger ?? silentLogger();
  const metrics = opts.metrics ?? new ControlMetrics();
  const auth = opts.tokens instanceof TokenAuthenticator ? opts.tokens : typeof opts.tokens === 'string' ? TokenAuthenticator.fromFile(opts.tokens) : new TokenAuthenticator(opts.tokens);
  const { host, port } = splitHostPort(opts.listen ?? DEFAULT_CONTROL_LISTEN);
  const registry = new Registry();
  const sourceLog = logger.child({ scope: 'source', source: opts.source.kind });

  // Until the CA is loaded, changes are only remembered; the registry starts from the latest one.
  let ca: MeshCa | undefined;
  let latest: MeshSnapshot;
  const initial: MeshSnapshot = await opts.source.start({
    onSnapshot: (s) => {
      metrics.sourceUpdates.inc({ source: opts.source.kind });
      latest = s;
      if (!ca) return;
      if (s.trustDomain !== ca.trustDomain) {
        sourceLog.error({ trustDomain: s.trustDomain, caTrustDomain: ca.trustDomain }, 'trust domain changed at run time; restart smesh control to re-key (the CA keeps issuing for the old one)');
      }
      const diff = registry.update(s);
      if (diff.size > 0) sourceLog.info({ generation: registry.generation, changes: summarize(diff) }, 'serving new configuration');
    },
    onError: () => metrics.sourceErrors.inc({ source: opts.source.kind }),
  });
  latest ??= initial;

  const tokenWatcher =
    typeof opts.tokens === 'string'
      ? new TokenFileWatcher(opts.tokens, auth, { intervalMs: opts.tokenReloadIntervalMs, logger: logger.child({ scope: 'auth' }), onError: () => metrics.tokenReloadErrors.inc() }).start()
      : undefined;
  let server: grpc.Server | undefined;
  let renewTimer: NodeJS.Timeout | undefined;
  let caWatcher: CaDirWatcher | undefined;
  try {
    let loaded: MeshCa;
    if (opts.ca) loaded = opts.ca;
    else if (opts.caDir) loaded = await MeshCa.load(opts.caDir, initial.trustDomain);
    else throw new SmeshError('SMESH_ERR_CONFIG', 'startControlPlane: caDir or ca is required');
    if (loaded.trustDomain !== initial.trustDomain) {
      throw new SmeshError('SMESH_ERR_CONFIG', `the CA is for trust domain ${loaded.trustDomain} but the configuration says ${initial.trustDomain}`);
    }
    registry.setTrustAnchors(loaded.trustAnchors);
    registry.update(latest);
    ca = loaded;

    const protos = loadMeshProtos();
    const controlPlane = controlPlaneIdentifier(opts.instanceId ?? hostname(), packageVersion());
    const ads = createAdsService({ registry, auth, metrics, logger: logger.child({ scope: 'xds' }), controlPlaneIdentifier: controlPlane });
    const caHandlers = createCaService({ ca: loaded, auth, metrics, logger: logger.child({ scope: 'ca' }), snapshot: () => registry.snapshot, certTtlSeconds: opts.certTtlSeconds });
    server = new grpc.Server({ 'grpc.keepalive_time_ms': 30_000, 'grpc.keepalive_timeout_ms': 10_000, 'grpc.keepalive_permit_without_calls': 1 });
    server.addService(protos.adsService, ads.handlers);
    server.addService(protos.certificateService, caHandlers);
    const sans = serverSans(host, opts.serverNames ?? []);
    const serving = await loaded.issueServerCertificate(sans);
    const provider = new ServingCertificateProvider(serving.certPem, serving.keyPem, loaded.trustAnchors.join(''));
    // The same provider for both roles: grpc-js 1.14 passes this function's arguments to the
    // constructor in swapped order, so either reading works. Client certificates are requested but
    // not required (agents authenticate with bearer tokens); a missing one is fine.
    const creds = grpc.experimental.createCertificateProviderServerCredentials(provider, provider, false);
    let closed = false;
    const scheduleRenewal = (certPem: string): void => {
      const notAfter = new Date(new X509Certificate(certPem).validTo).getTime();
      const dueAt = Date.now() + Math.max(60_000, (notAfter - Date.now()) / 2);
      const arm = (): void => {
        if (closed) return;
        const left = dueAt - Date.now();
        if (left > 0) {
          renewTimer = setTimeout(arm, Math.min(left, MAX_TIMER_MS));
          renewTimer.unref();
          return;
        }
        rotate().catch((err: Error) => {
          logger.error({ error: err.message }, 'cannot renew the serving certificate; retrying in a minute');
          renewTimer = setTimeout(arm, 60_000);
          renewTimer.unref();
        });
      };
      if (renewTimer) clearTimeout(renewTimer);
      arm();
    };
    const rotate = async (): Promise<void> => {
      const next = await loaded.issueServerCertificate(sans);
      provider.update(next.certPem, next.keyPem, loaded.trustAnchors.join(''));
      logger.info({ notAfter: new X509Certificate(next.certPem).validTo, signingRoot: loaded.rootFingerprint }, 'serving certificate renewed');
      scheduleRenewal(next.certPem);
    };
    scheduleRenewal(serving.certPem);
    metrics.caTrustAnchors.set(loaded.trustAnchors.length);
    if (opts.caDir && !opts.ca) {
      caWatcher = new CaDirWatcher(opts.caDir, loaded, {
        intervalMs: opts.caReloadIntervalMs,
        debounceMs: opts.caReloadDebounceMs,
        logger: logger.child({ scope: 'ca' }),
        metrics,
        onReload: async (change) => {
          registry.setTrustAnchors(loaded.trustAnchors);
          if (!change.rootChanged) {
            provider.updateTrust(loaded.trustAnchors.join(''));
            return;
          }
          // A promoted root: the serving certificate comes from it now (new connections; open ones keep theirs).
          const retry = (err: Error): void => {
            logger.error({ error: err.message }, 'cannot re-issue the serving certificate from the new root; retrying in a minute');
            if (renewTimer) clearTimeout(renewTimer);
            if (closed) return;
            renewTimer = setTimeout(() => void rotate().catch(retry), 60_000);
            renewTimer.unref();
          };
          await rotate().catch(retry);
        },
      }).start();
    }
    const bindHost = host.includes(':') ? `[${host}]` : host;
    const srv = server;
    const boundPort = await new Promise<number>((resolve, reject) =>
      srv.bindAsync(`${bindHost}:${port}`, creds, (err, p) => (err ? reject(new SmeshError('SMESH_ERR_BIND', `cannot listen on ${host}:${port}: ${err.message}`, { cause: err })) : resolve(p))),
    );
    logger.info({ address: `${host}:${boundPort}`, trustDomain: loaded.trustDomain, anchors: loaded.trustAnchors.length, source: opts.source.kind }, 'smesh control serving');

    let closing: Promise<void> | undefined;
    return {
      port: boundPort,
      address: `${host}:${boundPort}`,
      registry,
      ca: loaded,
      metrics,
      get trustBundlePem() {
        return loaded.trustAnchors.join('');
      },
      streams: ads.streams,
      rotateServingCertificate: rotate,
      close: () =>
        (closing ??= (async () => {
          closed = true;
          if (renewTimer) clearTimeout(renewTimer);
          caWatcher?.close();
          tokenWatcher?.close();
          await opts.source.close();
          ads.closeAll();
          await new Promise<void>((resolve) => {
            const t = setTimeout(() => {
              srv.forceShutdown();
              resolve();
            }, 2000);
            srv.tryShutdown(() => {
              clearTimeout(t);
              resolve();
            });
          });
        })()),
    };
  } catch (err) {
    if (renewTimer) clearTimeout(renewTimer);
    caWatcher?.close();
    tokenWatcher?.close();
    server?.forceShutdown();
    await opts.source.close();
    throw err;
  }
}

function summarize(diff: ReadonlyMap<string, { added: readonly string[]; changed: readonly string[]; removed: readonly string[] }>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [t, d] of diff) out[t.slice(t.lastIndexOf('/') + 1)] = `+${d.added.length} ~${d.changed.length} -${d.removed.length}`;
  return out;
}

const USAGE = `usage: smesh control (--config DIR | --kubernetes [--kubeconfig FILE] [--trust-domain TD])
                     --ca-dir DIR --tokens FILE [--listen 0.0.0.0:15012] [--cert-ttl 24h]
                     [--metrics-listen 0.0.0.0:15014] [--server-name NAME]... [--log-level info]
  --metrics-listen H:P   Prometheus /metrics and /healthz/ready (plain HTTP; default 0.0.0.0:15014)`;

export interface ControlCliOptions {
  readonly config?: string;
  readonly kubernetes: boolean;
  readonly kubeconfig?: string;
  readonly trustDomain?: string;
  readonly caDir: string;
  readonly tokens: string;
  readonly listen: string;
  readonly metricsListen: string;
  readonly certTtlSeconds: number;
  readonly serverNames: string[];
  readonly logLevel: string;
}

/** Parses `smesh control` flags (argv without the "control" word); throws SMESH_ERR_CONFIG naming the flag. */
export function parseControlArgs(argv: readonly string[]): ControlCliOptions {
  const out: { -readonly [K in keyof ControlCliOptions]?: ControlCliOptions[K] } = {
    kubernetes: false,
    listen: DEFAULT_CONTROL_LISTEN,
    metricsListen: DEFAULT_CONTROL_METRICS_LISTEN,
    certTtlSeconds: 24 * 3600,
    serverNames: [],
    logLevel: 'info',
  };
  const need = (i: number, flag: string): string => {
    const v = argv[i + 1];
    if (v === undefined || v.startsWith('--')) throw new SmeshError('SMESH_ERR_CONFIG', `${flag} needs a value\n${USAGE}`);
    return v;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const eq = a.indexOf('=');
    const flag = a.startsWith('--') && eq > 0 ? a.slice(0, eq) : a;
    const inline = a.startsWith('--') && eq > 0 ? a.slice(eq + 1) : undefined;
    const value = (): string => (inline !== undefined ? inline : need(i++, flag));
    switch (flag) {
      case '--config':
        out.config = value();
        break;
      case '--kubernetes':
        out.kubernetes = true;
        break;
      case '--kubeconfig':
        out.kubeconfig = value();
        break;
      case '--trust-domain':
        out.trustDomain = value();
        break;
      case '--ca-dir':
        out.caDir = value();
        break;
      case '--tokens':
        out.tokens = value();
        break;
      case '--listen':
        out.listen = value();
        break;
      case '--metrics-listen':
        out.metricsListen = value();
        break;
      case '--server-name':
        out.serverNames!.push(value());
        break;
      case '--log-level':
        out.logLevel = value();
        break;
      case '--cert-ttl': {
        const v = value();
        const seconds = /^(\d+(\.\d+)?(ms|s|m|h))+$/.test(v) ? Math.floor(parseDurationMs(v) / 1000) : 0;
        if (seconds <= 0) throw new SmeshError('SMESH_ERR_CONFIG', `--cert-ttl: expected a duration such as 24h, 90m or 3600s, got ${JSON.stringify(v)}`);
        out.certTtlSeconds = seconds;
        break;
      }
      case '--help':
      case '-h':
        throw new SmeshError('SMESH_ERR_CONFIG', USAGE);
      default:
        throw new SmeshError('SMESH_ERR_CONFIG', `unknown flag ${JSON.stringify(a)}\n${USAGE}`);
    }
  }
  if (!!out.config === out.kubernetes) throw new SmeshError('SMESH_ERR_CONFIG', `exactly one of --config DIR or --kubernetes is required\n${USAGE}`);
  if (!out.caDir) throw new SmeshError('SMESH_ERR_CONFIG', `--ca-dir is required\n${USAGE}`);
  if (!out.tokens) throw new SmeshError('SMESH_ERR_CONFIG', `--tokens is required\n${USAGE}`);
  if (out.trustDomain && !out.kubernetes) throw new SmeshError('SMESH_ERR_CONFIG', '--trust-domain applies to --kubernetes only; with --config the MeshConfig resource sets it');
  if (!isLogLevel(out.logLevel!)) throw new SmeshError('SMESH_ERR_CONFIG', `--log-level: expected fatal, error, warn, info, debug, trace or silent, got ${JSON.stringify(out.logLevel)}`);
  splitHostPort(out.listen!);
  splitHostPort(out.metricsListen!, '--metrics-listen');
  return out as ControlCliOptions;
}

/** `smesh control ...`: runs until SIGINT/SIGTERM; resolves with the exit code. */
export async function runControl(argv: readonly string[]): Promise<number> {
  const cli = parseControlArgs(argv);
  const hub = new LogHub({ level: cli.logLevel as never });
  const logger = hub.child('control');
  // The Kubernetes client library is loaded only when it is used (~65 MiB of RSS; standalone agents and file-based
  // control planes never need it).
  const source: MeshSource = cli.config
    ? new FileSource({ dir: path.resolve(cli.config), logger: hub.child('files') })
    : new (await import('./sources/kubernetes')).KubernetesSource({ kubeconfigFile: cli.kubeconfig, trustDomain: cli.trustDomain, logger: hub.child('kubernetes') });
  const metrics = new ControlMetrics();
  // Bound first: a taken metrics port fails the start before anything else is set up.
  let serving = false;
  const metricsAddr = splitHostPort(cli.metricsListen, '--metrics-listen');
  const admin = new ControlAdminServer({ metrics, host: metricsAddr.host, port: metricsAddr.port, ready: () => serving, logger: hub.child('control-admin') });
  await admin.start();
  let cp: ControlPlane;
  try {
    cp = await startControlPlane({
      source,
      caDir: path.resolve(cli.caDir),
      tokens: path.resolve(cli.tokens),
      listen: cli.listen,
      certTtlSeconds: cli.certTtlSeconds,
      serverNames: cli.serverNames,
      logger,
      metrics,
    });
  } catch (err) {
    await admin.close();
    throw err;
  }
  serving = true;
  await new Promise<void>((resolve) => {
    const stop = (signal: string): void => {
      logger.info({ signal }, 'shutting down');
      resolve();
    };
    process.once('SIGINT', () => stop('SIGINT'));
    process.once('SIGTERM', () => stop('SIGTERM'));
  });
  serving = false;
  await cp.close();
  await admin.close();
  hub.flush();
  return 0;
}
