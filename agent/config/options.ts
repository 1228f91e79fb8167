// Agent command-line options and environment: the only place that reads process.env.
import { isIP } from 'node:net';
import { SmeshError } from '../../core/errors';
import { parseTrustDomainAliases } from '../../core/identity/spiffe';
import { DEFAULT_TRUST_DOMAIN } from '../../core/identity/defaults';

export interface AgentOptions {
  readonly standalone: boolean;
  readonly configDir: string;
  readonly nodeName: string;
  /** Address other agents dial for HBONE; defaults to the Node resource's InternalIP. */
  readonly nodeIp?: string;
  readonly cgroupRoot: string;
  readonly bpffsDir: string;
  readonly captureIp: string;
  /**
   * IPv6 address on the node's lo from which the proxy connects to IPv6 pods (a trusted source, as the capture address
   * is for IPv4). Without it, captured IPv6 plaintext is refused.
   */
  readonly captureIp6?: string;
  readonly outboundPort: number;
  readonly inboundPort: number;
  readonly metricsPort: number;
  readonly readyPort: number;
  readonly adminPort: number;
  readonly logLevel: string;
  /** Run without eBPF (proxy only; traffic must be sent to the capture address explicitly). */
  readonly noBpf: boolean;
  /** Do not look for local pods' network namespaces below --cgroup-root (only the control plane's netns is used). */
  readonly noNetnsDiscovery: boolean;
  /** STRICT also drops plaintext from the node's own host addresses (by default it lets kubelet probes through). */
  readonly noProbeExemption: boolean;
  /** Let plaintext from outside the mesh reach PERMISSIVE pods uncaptured (no AuthorizationPolicy on it; the pre-capture behaviour). */
  readonly noPlaintextCapture: boolean;
  /** No "connection complete" / "request complete" info line per finished connection and request. */
  readonly noAccessLog: boolean;
  /** Also one access line per HTTP request (default: connections only). */
  readonly accessLogRequests: boolean;
  /** Directory of the mesh root CA; defaults to `<config>/ca`. */
  readonly caDir: string;
  readonly certTtlSeconds?: number;
  /** `host:port` of `smesh control` (not standalone). */
  readonly controlPlane?: string;
  /** Bearer token file for the control plane (re-read on every call, so it can be rotated). */
  readonly tokenFile?: string;
  /** PEM file of the mesh root(s) the control plane's certificate chains to. */
  readonly caCertFile?: string;
  /** Trust domain the control plane's certificate names (spiffe://<td>/smesh/control). */
  readonly trustDomain: string;
  /**
   * Other trust domains whose identities the mesh accepts as its own on HBONE (Istio's MeshConfig trustDomainAliases),
   * e.g. the old one during a trust-domain migration. Peers and servers of any other trust domain are refused.
   */
  readonly trustDomainAliases: readonly string[];
  /** `pod` (default, ztunnel's wire): HBONE to `<destination pod IP>:15008`, workload certificates; `node`: to the destination node's agent. */
  readonly hboneAddressing: 'pod' | 'node';
  /**
   * Who moves HBONE bytes: `native` (the addon's engine: TLS 1.3 + HTTP/2 on its own threads) or `js` (node:tls +
   * node:http2 on the agent's thread; the fallback and the baseline). `auto`: native when the addon has the engine.
   */
  readonly dataplane: 'auto' | 'native' | 'js';
  /** Worker threads of the native engine (default: one per core). */
  readonly workers?: number;
  /**
   * `--fair-share on|off` (default on): new connections wait in the accept queue (agent/qos/accept-queue.ts) and the
   * native engine's workers serve ready connections, both latency before normal before bulk and shared between
   * source workloads by their TrafficShaping weights (deficit round robin over thread time / bytes);
   * off = FIFO in the order the kernel reports them. bytes/s limits apply either way.
   */
  readonly fairShare: boolean;
  /** `--relay-turn-kib N`: bytes (KiB) a native engine worker relays per loop turn before it polls again (default 256). */
  readonly relayTurnKib?: number;
  /** `--worker-nice N`: nice value of the native engine's relay threads (-20..19; below 0 needs CAP_SYS_NICE). */
  readonly workerNice?: number;
  /**
   * Opt-in: outbound HTTP/1.1 requests on HTTP service ports are parsed and moved by the addon's native HTTP/1.1 engine
   * and decided in TypeScript (agent/http/engine-outbound.ts); default off (node:http serves every request).
   */
  readonly httpEngine: boolean;
  /** How long to wait for the first complete xDS state before giving up. */
  readonly syncTimeoutMs: number;
  /** SIGTERM: how long open connections may keep flowing after the listeners stop accepting (default 30 s). */
  readonly drainSeconds: number;
  /**
   * Listening sockets inherited from `smesh supervise` (systemd-style LISTEN_FDS / LISTEN_FDNAMES, fds from 3): adopted
   * instead of bound, so they outlive this process. Empty when the agent runs on its own.
   */
  readonly inheritedListeners: readonly InheritedListener[];
  /** Started by `smesh supervise` (an IPC channel to it is open: ready / draining are reported there). */
  readonly supervised: boolean;
}

/** A listening socket the agent adopts by fd instead of binding `host:port`. */
export interface InheritedListener {
  readonly name: ListenerName;
  readonly fd: number;
  readonly host: string;
  readonly port: number;
}

/** The sockets `smesh supervise` holds for its agents, by the name LISTEN_FDNAMES gives each. */
/** `outbound6`: the IPv6 outbound capture listener, only with --capture-ip6. */
export const LISTENER_NAMES = ['outbound', 'outbound6', 'inbound', 'metrics', 'ready', 'admin'] as const;
export type ListenerName = (typeof LISTENER_NAMES)[number];

/**
 * Where the agent listens for each held socket (one source for the supervisor that binds and the agent that adopts);
 * a name without an address (`outbound6` without --capture-ip6) is not held.
 */
export function listenerAddresses(
  opts: Pick<AgentOptions, 'captureIp' | 'captureIp6' | 'outboundPort' | 'inboundPort' | 'metricsPort' | 'readyPort' | 'adminPort'>,
): Partial<Record<ListenerName, { host: string; port: number }>> {
  return {
    outbound: { host: opts.captureIp, port: opts.outboundPort },
    ...(opts.captureIp6 ? { outbound6: { host: opts.captureIp6, port: opts.outboundPort } } : {}),
    inbound: { host: '0.0.0.0', port: opts.inboundPort },
    metrics: { host: '0.0.0.0', port: opts.metricsPort },
    ready: { host: '0.0.0.0', port: opts.readyPort },
    admin: { host: '127.0.0.1', port: opts.adminPort },
  };
}

/** The first fd systemd-style socket activation passes (after stdin, stdout, stderr). */
export const LISTEN_FDS_START = 3;

/**
 * The environment `smesh supervise` gives each agent it starts: this process's, plus LISTEN_FDS / LISTEN_FDNAMES for
 * the sockets it passes at fds 3.. (no LISTEN_PID: the agent is the only reader) and SMESH_SUPERVISED=1.
 */
export function supervisedAgentEnv(names: readonly ListenerName[], env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = { ...env, LISTEN_FDS: String(names.length), LISTEN_FDNAMES: names.join(':'), SMESH_SUPERVISED: '1' };
  delete out.LISTEN_PID;
  return out;
}

/**
 * LISTEN_FDS=N and LISTEN_FDNAMES=a:b:… as `smesh supervise` (or systemd) sets them: fd 3+i is named names[i]. Names
 * other than LISTENER_NAMES are an error (a supervisor of another version passing what this agent cannot adopt).
 */
function inheritedListeners(env: NodeJS.ProcessEnv, addresses: Partial<Record<ListenerName, { host: string; port: number }>>): InheritedListener[] {
  const count = env.LISTEN_FDS;
  if (count === undefined || count === '') return [];
  if (!/^\d+$/.test(count)) fail(`$LISTEN_FDS: expected a number of inherited sockets, got ${JSON.stringify(count)}`);
  const names = (env.LISTEN_FDNAMES ?? '').split(':');
  if (names.length !== Number(count)) fail(`$LISTEN_FDNAMES ${JSON.stringify(env.LISTEN_FDNAMES ?? '')}: expected ${count} names separated by ':'`);
  const out: InheritedListener[] = [];
  for (const [i, name] of names.entries()) {
    if (!(LISTENER_NAMES as readonly string[]).includes(name)) fail(`$LISTEN_FDNAMES: unknown socket name ${JSON.stringify(name)} (expected ${LISTENER_NAMES.join(', ')})`);
    const n = name as ListenerName;
    if (out.some((l) => l.name === n)) fail(`$LISTEN_FDNAMES: socket name ${n} given twice`);
    const a = addresses[n];
    if (!a) fail(`$LISTEN_FDNAMES: socket ${n} passed, but this agent has no address for it (outbound6 needs --capture-ip6)`);
    out.push({ name: n, fd: LISTEN_FDS_START + i, ...a });
  }
  return out;
}

interface FlagSpec {
  readonly key: keyof AgentOptions;
  readonly kind: 'string' | 'port' | 'bool' | 'ip' | 'int';
  readonly env?: string;
}

const FLAGS: Record<string, FlagSpec> = {
  '--standalone': { key: 'standalone', kind: 'bool' },
  '--config': { key: 'configDir', kind: 'string', env: 'SMESH_CONFIG' },
  '--node': { key: 'nodeName', kind: 'string', env: 'NODE_NAME' },
  '--node-ip': { key: 'nodeIp', kind: 'ip', env: 'NODE_IP' },
  '--cgroup-root': { key: 'cgroupRoot', kind: 'string', env: 'SMESH_CGROUP_ROOT' },
  '--bpffs': { key: 'bpffsDir', kind: 'string', env: 'SMESH_BPFFS' },
  '--capture-ip': { key: 'captureIp', kind: 'ip', env: 'SMESH_CAPTURE_IP' },
  '--capture-ip6': { key: 'captureIp6', kind: 'ip', env: 'SMESH_CAPTURE_IP6' },
  '--outbound-port': { key: 'outboundPort', kind: 'port' },
  '--inbound-port': { key: 'inboundPort', kind: 'port' },
  '--metrics-port': { key: 'metricsPort', kind: 'port' },
  '--ready-port': { key: 'readyPort', kind: 'port' },
  '--admin-port': { key: 'adminPort', kind: 'port' },
  '--log-level': { key: 'logLevel', kind: 'string', env: 'SMESH_LOG_LEVEL' },
  '--no-bpf': { key: 'noBpf', kind: 'bool' },
  '--no-netns-discovery': { key: 'noNetnsDiscovery', kind: 'bool' },
  '--no-probe-exemption': { key: 'noProbeExemption', kind: 'bool' },
  '--no-plaintext-capture': { key: 'noPlaintextCapture', kind: 'bool' },
  '--no-access-log': { key: 'noAccessLog', kind: 'bool' },
  '--access-log-requests': { key: 'accessLogRequests', kind: 'bool' },
  '--ca-dir': { key: 'caDir', kind: 'string', env: 'SMESH_CA_DIR' },
  '--cert-ttl-seconds': { key: 'certTtlSeconds', kind: 'int' },
  '--control-plane': { key: 'controlPlane', kind: 'string', env: 'SMESH_CONTROL_PLANE' },
  '--token-file': { key: 'tokenFile', kind: 'string', env: 'SMESH_TOKEN_FILE' },
  '--ca-cert': { key: 'caCertFile', kind: 'string', env: 'SMESH_CA_CERT' },
  '--trust-domain': { key: 'trustDomain', kind: 'string', env: 'SMESH_TRUST_DOMAIN' },
  '--trust-domain-aliases': { key: 'trustDomainAliases', kind: 'string', env: 'SMESH_TRUST_DOMAIN_ALIASES' },
  '--hbone-addressing': { key: 'hboneAddressing', kind: 'string', env: 'SMESH_HBONE_ADDRESSING' },
  '--sync-timeout-seconds': { key: 'syncTimeoutMs', kind: 'int' },
  '--dataplane': { key: 'dataplane', kind: 'string', env: 'SMESH_DATAPLANE' },
  '--workers': { key: 'workers', kind: 'int', env: 'SMESH_WORKERS' },
  '--fair-share': { key: 'fairShare', kind: 'string', env: 'SMESH_FAIR_SHARE' },
  '--relay-turn-kib': { key: 'relayTurnKib', kind: 'int', env: 'SMESH_RELAY_TURN_KIB' },
  '--worker-nice': { key: 'workerNice', kind: 'string', env: 'SMESH_WORKER_NICE' },
  '--http-engine': { key: 'httpEngine', kind: 'bool', env: 'SMESH_HTTP_ENGINE' },
  '--drain-seconds': { key: 'drainSeconds', kind: 'int', env: 'SMESH_DRAIN_SECONDS' },
};

export const AGENT_USAGE = `usage: smesh agent --standalone --config DIR --node NAME --cgroup-root PATH [options]
       smesh agent --control-plane HOST:15012 --token-file F --ca-cert F --node NAME --cgroup-root PATH [options]
  --standalone            run the control plane and CA in-process over --config
  --config DIR            directory of mesh YAML (Pods, Services, Nodes, MeshConfig)   [$SMESH_CONFIG]
  --control-plane ADDR    host:port of smesh control                                  [$SMESH_CONTROL_PLANE]
  --token-file FILE       bearer token that names this node to the control plane      [$SMESH_TOKEN_FILE]
  --ca-cert FILE          mesh root certificate(s), PEM, to verify the control plane  [$SMESH_CA_CERT]
  --trust-domain TD       trust domain of the control plane's identity (default cluster.local)
  --trust-domain-aliases TD,...  other trust domains accepted as the mesh's on HBONE (MeshConfig
                          trustDomainAliases); certificates of any other trust domain get 401  [$SMESH_TRUST_DOMAIN_ALIASES]
  --sync-timeout-seconds N  wait this long for the first complete state (default 30)
  --node NAME             this node's name, as in Pod spec.nodeName                    [$NODE_NAME]
  --node-ip IP            address for HBONE (default: the Node's InternalIP)           [$NODE_IP]
  --cgroup-root PATH      cgroup v2 directory the programs attach to (the pods' root)  [$SMESH_CGROUP_ROOT]
  --bpffs DIR             where links and maps are pinned (default /sys/fs/bpf/smesh)  [$SMESH_BPFFS]
  --capture-ip IP         node capture address on lo (default 169.254.7.1)
  --capture-ip6 IP        IPv6 address on lo the proxy connects to IPv6 pods from (none: IPv6 plaintext
                          into meshed pods is captured and refused)                    [$SMESH_CAPTURE_IP6]
  --outbound-port N       outbound capture port (default 15001)
  --inbound-port N        HBONE port (default 15008)
  --metrics-port N        Prometheus port (default 15020)
  --ready-port N          readiness port (default 15021)
  --admin-port N          admin port on 127.0.0.1 (default 15000)
  --ca-dir DIR            mesh root CA directory (default <config>/ca)
  --cert-ttl-seconds N    workload certificate lifetime (default 86400)
  --log-level LEVEL       trace|debug|info|warn|error (default info)
  --no-bpf                proxy only, no kernel redirect
  --no-netns-discovery    take pods' network namespaces only from the control plane (default: also find them
                          from the processes below --cgroup-root, matched by pod IP)
  --hbone-addressing pod|node  pod (default): HBONE to <destination pod IP>:15008 presenting and expecting workload
                          certificates, as ztunnel does; node: to the destination node's agent (node certificates)  [$SMESH_HBONE_ADDRESSING]
  --dataplane auto|native|js  who moves HBONE bytes: native = the addon's engine (TLS + HTTP/2 on its own
                          threads), js = node:tls + node:http2 on the agent's thread; auto (default) = native
                          when the addon has it                                        [$SMESH_DATAPLANE]
  --workers N             native engine worker threads (default: one per core)        [$SMESH_WORKERS]
  --fair-share on|off     scheduling of new connections (the accept queue) and of the native engine's relays:
                          on (default) = latency before normal before bulk, and thread time / bytes shared
                          between source workloads by TrafficShaping weight (deficit round robin);
                          off = first come first served                                [$SMESH_FAIR_SHARE]
  --relay-turn-kib N      KiB a native engine worker relays per loop turn before it polls again (16-16384,
                          default 256): how long a newly ready stream can wait behind busy ones [$SMESH_RELAY_TURN_KIB]
  --worker-nice N         nice value of the native engine's relay threads (-20..19, default: the agent's;
                          below the agent's needs CAP_SYS_NICE)                       [$SMESH_WORKER_NICE]
  --http-engine           opt-in: outbound HTTP/1.1 on HTTP service ports through the addon's native HTTP/1.1
                          engine, decided per request in TypeScript (default: node:http)  [$SMESH_HTTP_ENGINE=1]
  --drain-seconds N       on SIGTERM, stop accepting and let open connections finish for up to N seconds,
                          then close the rest (default 30; 0: close at once)             [$SMESH_DRAIN_SECONDS]
  --no-plaintext-capture  let plaintext from outside the mesh reach PERMISSIVE pods unchecked (no AuthorizationPolicy on it)
  --no-access-log         no "connection complete" access lines (component access)
  --access-log-requests   also one access line per HTTP request (default: per connection only)
  --no-probe-exemption    STRICT also drops plaintext from this node's own host addresses (default: let it
                          through, so kubelet health probes keep working)`;

function fail(message: string): never {
  throw new SmeshError('SMESH_ERR_CONFIG', `${message}\n${AGENT_USAGE}`);
}

function convert(flag: string, spec: FlagSpec, raw: string): unknown {
  switch (spec.kind) {
    case 'port': {
      const n = Number(raw);
      if (!/^\d+$/.test(raw) || n < 1 || n > 65535) fail(`${flag}: expected a port number 1-65535, got ${JSON.stringify(raw)}`);
      return n;
    }
    case 'int': {
      if (!/^\d+$/.test(raw)) fail(`${flag}: expected a positive integer, got ${JSON.stringify(raw)}`);
      return Number(raw);
    }
    case 'ip':
      if (isIP(raw) === 0) fail(`${flag}: expected an IP address, got ${JSON.stringify(raw)}`);
      return raw;
    default:
      return raw;
  }
}

function hboneAddressing(raw: string): 'pod' | 'node' {
  if (raw === 'pod' || raw === 'node') return raw;
  return fail(`--hbone-addressing ${JSON.stringify(raw)}: expected pod (ztunnel's wire) or node`);
}

/** What `--dataplane auto` picks when the addon has the engine. */
export const AUTO_DATAPLANE: 'native' | 'js' = 'native';

function workerCount(n: number): number {
  if (n < 1 || n > 64) fail(`--workers ${n}: expected 1-64 native engine threads`);
  return n;
}

function workerNice(raw: string): number {
  const n = Number(raw);
  if (!/^-?\d+$/.test(raw) || n < -20 || n > 19) fail(`--worker-nice ${JSON.stringify(raw)}: expected a nice value -20..19`);
  return n;
}

function relayTurnKib(n: number): number {
  if (n < 16 || n > 16384) fail(`--relay-turn-kib ${n}: expected 16-16384 KiB per worker loop turn`);
  return n;
}

function fairShare(raw: string): boolean {
  if (raw === 'on') return true;
  if (raw === 'off') return false;
  return fail(`--fair-share ${JSON.stringify(raw)}: expected on (priority classes and weighted fair share between source workloads) or off (first come first served)`);
}

function dataplane(raw: string): 'auto' | 'native' | 'js' {
  if (raw === 'auto' || raw === 'native' || raw === 'js') return raw;
  return fail(`--dataplane ${JSON.stringify(raw)}: expected auto, native (the addon's HBONE engine) or js`);
}

function trustDomainAliases(raw: string): string[] {
  try {
    return parseTrustDomainAliases('--trust-domain-aliases', raw.split(','));
  } catch (err) {
    return fail((err as Error).message);
  }
}

export function parseAgentArgs(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): AgentOptions {
  const values: Record<string, unknown> = {};
  for (const spec of Object.values(FLAGS)) {
    if (spec.env && env[spec.env] !== undefined && env[spec.env] !== '') values[spec.key] = convert(`$${spec.env}`, spec, env[spec.env]!);
  }
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const [flag, inline] = arg.includes('=') ? [arg.slice(0, arg.indexOf('=')), arg.slice(arg.indexOf('=') + 1)] : [arg, undefined];
    const spec = FLAGS[flag];
    if (!spec) fail(`unknown option ${JSON.stringify(arg)}`);
    if (spec.kind === 'bool') {
      values[spec.key] = true;
      continue;
    }
    const raw = inline ?? argv[++i];
    if (raw === undefined) fail(`${flag} needs a value`);
    values[spec.key] = convert(flag, spec, raw);
  }
  if (!values.nodeName) fail('--node NAME is required');
  if (values.standalone) {
    if (!values.configDir) fail('--standalone needs --config DIR');
    if (values.controlPlane) fail('--standalone and --control-plane exclude each other');
  } else {
    if (!values.controlPlane) fail('give --standalone --config DIR, or --control-plane HOST:PORT');
    if (!values.tokenFile) fail('--control-plane needs --token-file FILE (the bootstrap token naming this node)');
    if (!values.caCertFile) fail('--control-plane needs --ca-cert FILE (the mesh root certificate)');
  }
  if (!values.noBpf && !values.cgroupRoot) fail('--cgroup-root PATH is required (the cgroup v2 directory holding the pods, e.g. kubepods); or run with --no-bpf');
  const configDir = (values.configDir as string | undefined) ?? '';
  const ports = {
    captureIp: (values.captureIp as string | undefined) ?? '169.254.7.1',
    outboundPort: (values.outboundPort as number | undefined) ?? 15001,
    inboundPort: (values.inboundPort as number | undefined) ?? 15008,
    metricsPort: (values.metricsPort as number | undefined) ?? 15020,
    readyPort: (values.readyPort as number | undefined) ?? 15021,
    adminPort: (values.adminPort as number | undefined) ?? 15000,
    captureIp6: captureIp6(values.captureIp6 as string | undefined),
  };
  return {
    standalone: values.standalone === true,
    configDir,
    nodeName: values.nodeName as string,
    nodeIp: values.nodeIp as string | undefined,
    cgroupRoot: (values.cgroupRoot as string | undefined) ?? '',
    bpffsDir: (values.bpffsDir as string | undefined) ?? '/sys/fs/bpf/smesh',
    ...ports,
    logLevel: (values.logLevel as string | undefined) ?? 'info',
    noBpf: values.noBpf === true,
    noNetnsDiscovery: values.noNetnsDiscovery === true,
    noProbeExemption: values.noProbeExemption === true,
    noPlaintextCapture: values.noPlaintextCapture === true,
    noAccessLog: values.noAccessLog === true,
    accessLogRequests: values.accessLogRequests === true,
    caDir: (values.caDir as string | undefined) ?? `${configDir.replace(/\/$/, '')}/ca`,
    certTtlSeconds: values.certTtlSeconds as number | undefined,
    controlPlane: values.controlPlane as string | undefined,
    tokenFile: values.tokenFile as string | undefined,
    caCertFile: values.caCertFile as string | undefined,
    trustDomain: (values.trustDomain as string | undefined) ?? DEFAULT_TRUST_DOMAIN,
    trustDomainAliases: trustDomainAliases((values.trustDomainAliases as string | undefined) ?? ''),
    hboneAddressing: hboneAddressing((values.hboneAddressing as string | undefined) ?? 'pod'),
    dataplane: dataplane((values.dataplane as string | undefined) ?? 'auto'),
    workers: values.workers === undefined ? undefined : workerCount(values.workers as number),
    fairShare: fairShare((values.fairShare as string | undefined) ?? 'on'),
    relayTurnKib: values.relayTurnKib === undefined ? undefined : relayTurnKib(values.relayTurnKib as number),
    workerNice: values.workerNice === undefined ? undefined : workerNice(values.workerNice as string),
    httpEngine: values.httpEngine === true || values.httpEngine === '1' || values.httpEngine === 'true',
    syncTimeoutMs: ((values.syncTimeoutMs as number | undefined) ?? 30) * 1000,
    drainSeconds: (values.drainSeconds as number | undefined) ?? 30,
    inheritedListeners: inheritedListeners(env, listenerAddresses(ports)),
    supervised: env.SMESH_SUPERVISED === '1',
  };
}

function captureIp6(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  if (isIP(value) !== 6) throw new SmeshError('SMESH_ERR_CONFIG', `--capture-ip6: expected an IPv6 address, got ${JSON.stringify(value)}`);
  return value;
}
