// Bench peers: two-hop mTLS tunnels built from nginx (stream) and HAProxy (TCP mode) on the bench topology — a proxy in node1's netns that a pod dials in plaintext, TLS 1.3 mutual auth (ECDSA P-256, certificates made here with openssl) to a proxy in node2's netns, which connects to the server pod — and the same two hops as HTTP reverse proxies (nginx http, HAProxy HTTP mode) with keep-alive upstreams.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import { SmeshError } from '../../core/errors';
import type { Topology, NodeInfo, PodInfo } from '../../test/helpers/topology';
import { sleep, tail, waitExit, type CapturedProcess } from '../../test/helpers/proc';
import type { Target } from './tools';

const TEMPLATE_DIR = path.resolve(__dirname, '../peers');
const STREAM_MODULE = '/usr/lib/nginx/modules/ngx_stream_module.so';
/** DNS name in the node2 proxy's certificate: nginx can only verify a DNS or IP name, not a SPIFFE URI SAN. */
const SERVER_NAME = 'remote-server.default.svc.cluster.local';
const TRUST_DOMAIN = 'cluster.local';

export type PeerKind = 'nginx' | 'haproxy';

export interface PeerDef {
  /** Path name in the bench: nginx-1w, nginx-Nw, haproxy-1t, haproxy-Nt; nginx-http, haproxy-http. */
  name: string;
  kind: PeerKind;
  /** tcp: a TLS tunnel per client connection (iperf, http, ping ports); http: HTTP reverse proxies per request, the http port only. */
  mode: 'tcp' | 'http';
  /** nginx worker_processes / HAProxy nbthread, in each of the two proxies. */
  workers: number | 'auto';
  /** Ports: node1 proxy listens on base+1/+2/+3 (iperf, http, ping), node2 proxy on base+11/+12/+13. */
  base: number;
  describe: string;
}

/** The four peers: one worker (thread) per proxy, and one per core. */
export function peerDefs(): PeerDef[] {
  const cores = os.cpus().length;
  const tunnel = "outsider (node1, not enrolled) → node1 br0 address → PROXY in node1's netns → TLS 1.3 mTLS (ECDSA P-256) → PROXY in node2's netns → remote-server pod";
  const proxied =
    "outsider → node1 br0 address → PROXY in node1's netns → keep-alive upstream connections, TLS 1.3 mTLS (ECDSA P-256) → PROXY in node2's netns → keep-alive upstream connections → remote-server pod; per request";
  return [
    { name: 'nginx-1w', kind: 'nginx', mode: 'tcp', workers: 1, base: 20100, describe: tunnel.replace(/PROXY/g, 'nginx stream (worker_processes 1)') },
    { name: 'nginx-Nw', kind: 'nginx', mode: 'tcp', workers: 'auto', base: 20200, describe: tunnel.replace(/PROXY/g, `nginx stream (worker_processes auto = ${cores})`) },
    { name: 'haproxy-1t', kind: 'haproxy', mode: 'tcp', workers: 1, base: 20300, describe: tunnel.replace(/PROXY/g, 'HAProxy TCP mode (nbthread 1)') },
    { name: 'haproxy-Nt', kind: 'haproxy', mode: 'tcp', workers: cores, base: 20400, describe: tunnel.replace(/PROXY/g, `HAProxy TCP mode (nbthread ${cores})`) },
    {
      name: 'nginx-http',
      kind: 'nginx',
      mode: 'http',
      workers: 'auto',
      base: 20500,
      describe: proxied.replace(/PROXY/g, `nginx HTTP reverse proxy (worker_processes auto = ${cores}, proxy_http_version 1.1, upstream keepalive)`),
    },
    {
      name: 'haproxy-http',
      kind: 'haproxy',
      mode: 'http',
      workers: cores,
      base: 20600,
      describe: proxied.replace(/PROXY/g, `HAProxy HTTP mode (nbthread ${cores}, http-reuse always)`),
    },
  ];
}

/** The tools the peers need on the machine (bench/install.sh installs them). */
export function missingPeerTools(): string[] {
  const missing = ['nginx', 'haproxy', 'openssl'].filter((t) => {
    try {
      execFileSync('sh', ['-c', `command -v ${t}`], { stdio: 'pipe' });
      return false;
    } catch {
      return true;
    }
  });
  if (!missing.includes('nginx') && !nginxHasStream()) missing.push('libnginx-mod-stream');
  return missing;
}

function nginxHasStream(): boolean {
  if (fs.existsSync(STREAM_MODULE)) return true;
  try {
    return /--with-stream(\s|$)/.test(execFileSync('sh', ['-c', 'nginx -V 2>&1']).toString()); // built in, not dynamic
  } catch {
    return false;
  }
}

export function peerVersions(): string {
  const v = (cmd: string, re: RegExp) => {
    try {
      return (re.exec(execFileSync('sh', ['-c', `${cmd} 2>&1`]).toString()) ?? ['', '?'])[1];
    } catch {
      return '?';
    }
  };
  return `nginx ${v('nginx -v', /nginx\/(\S+)/)}, HAProxy ${v('haproxy -v', /version (\S+)/)}, ${v('openssl version', /^(OpenSSL \S+)/)}`;
}

function openssl(dir: string, args: string[]): void {
  try {
    execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  } catch (e) {
    const err = e as { stderr?: Buffer };
    throw new SmeshError('SMESH_ERR_TLS', `bench peers: openssl ${args[0]} failed: ${err.stderr?.toString().trim() ?? String(e)}`);
  }
}

/**
 * A CA and two leaf certificates (ECDSA P-256, SHA-256, 1 day) in `dir`: client (node1 proxy) and server (node2
 * proxy), SPIFFE URI SANs as a mesh's, plus a DNS SAN on the server for nginx's name check. Keys stay in `dir` (0600).
 */
export function makePeerCerts(dir: string): void {
  const ec = ['-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256'];
  openssl(dir, ['genpkey', ...ec, '-out', 'ca.key']);
  openssl(dir, [
    'req',
    '-x509',
    '-new',
    '-key',
    'ca.key',
    '-sha256',
    '-days',
    '1',
    '-subj',
    `/O=${TRUST_DOMAIN}/CN=bench peers root`,
    '-out',
    'ca.crt',
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
  ]);
  const leaves = { client: 'URI:spiffe://cluster.local/ns/default/sa/client-sa', server: `URI:spiffe://cluster.local/ns/default/sa/remote-server-sa,DNS:${SERVER_NAME}` };
  for (const [name, san] of Object.entries(leaves)) {
    openssl(dir, ['genpkey', ...ec, '-out', `${name}.key`]);
    openssl(dir, ['req', '-new', '-key', `${name}.key`, '-subj', `/O=${TRUST_DOMAIN}`, '-out', `${name}.csr`]);
    fs.writeFileSync(path.join(dir, `${name}.ext`), `basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=${san}\n`);
    openssl(dir, ['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '1', '-sha256', '-extfile', `${name}.ext`, '-out', `${name}.crt`]);
    // HAProxy wants certificate and key in one file.
    fs.writeFileSync(path.join(dir, `${name}.pem`), fs.readFileSync(path.join(dir, `${name}.crt`), 'utf8') + fs.readFileSync(path.join(dir, `${name}.key`), 'utf8'), { mode: 0o600 });
  }
  for (const f of fs.readdirSync(dir)) if (f.endsWith('.key')) fs.chmodSync(path.join(dir, f), 0o600);
}

/** Fills the {{NAME}} placeholders of a template in bench/peers/; every placeholder must be given. */
export function renderTemplate(file: string, vars: Record<string, string | number>): string {
  const text = fs.readFileSync(path.join(TEMPLATE_DIR, file), 'utf8');
  return text.replace(/\{\{([A-Z_0-9]+)\}\}/g, (_, k: string) => {
    if (!(k in vars)) throw new SmeshError('SMESH_ERR_CONFIG', `bench peers: template ${file} uses {{${k}}}, which was not given`);
    return String(vars[k]);
  });
}

export interface RunningPeer {
  def: PeerDef;
  /** What the load generator dials: node1's br0 address (the pods' gateway) and the node1 proxy's ports. */
  target: Target;
  /** cgroups of the node1 and node2 proxy processes (all workers and threads), for CPU accounting. */
  cgroups: { node1: string; node2: string };
  procs: CapturedProcess[];
  /** The node2 proxy's mTLS address (http tunnel), for the mTLS check. */
  mtls: { host: string; port: number };
}

export interface PeerPorts {
  iperf: number;
  http: number;
  ping: number;
}

async function waitListeningOnNode(topo: Topology, node: NodeInfo, cgroup: string, addr: string, ports: number[], proc: CapturedProcess, what: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    if (proc.exitInfo()) throw new SmeshError('SMESH_ERR_BIND', `bench peer ${what} exited at start: ${tail(proc.outputText(), 8)}`);
    const r = await waitExit(topo.spawnOnNode(node, 'ss', ['-Hltn'], { cgroup }), 5000);
    const open = ports.filter((p) => r.stdout.includes(`${addr}:${p} `));
    if (open.length === ports.length) return;
    await sleep(100);
  }
  throw new SmeshError('SMESH_ERR_BIND', `bench peer ${what}: not listening on ${addr}:${ports.join(',')} after 10 s: ${tail(proc.outputText(), 8)}`);
}

/**
 * Starts one peer: its two proxies, each in its own cgroup under the run's cgroup (outside smesh's cgroup roots: a node
 * running nginx or HAProxy instead of smesh runs no smesh BPF program) and in the node's network namespace.
 */
export async function startPeer(topo: Topology, def: PeerDef, server: PodInfo, appPorts: PeerPorts, workDir: string, certDir: string): Promise<RunningPeer> {
  const node1 = topo.node('node1');
  const node2 = topo.node('node2');
  const cgroups = { node1: path.join(topo.runCgroup, 'peers', def.name, 'node1'), node2: path.join(topo.runCgroup, 'peers', def.name, 'node2') };
  for (const cg of Object.values(cgroups)) fs.mkdirSync(cg, { recursive: true });
  const inPorts = { IN_IPERF: def.base + 1, IN_HTTP: def.base + 2, IN_PING: def.base + 3 };
  const tlsPorts = { iperf: def.base + 11, http: def.base + 12, ping: def.base + 13 };
  // HTTP-mode peers proxy the http port only.
  const listening = (ports: Record<string, number>) => (def.mode === 'http' ? [ports.IN_HTTP!] : Object.values(ports));
  const template = (node: string) => (def.mode === 'http' ? `${def.kind}-http-${node}` : `${def.kind}-${node}`);
  const sides = [
    {
      node: node1,
      cgroup: cgroups.node1,
      file: template('node1'),
      listen: node1.bridgeIp,
      listenPorts: inPorts,
      upstream: node2.ip,
      upstreamPorts: { OUT_IPERF: tlsPorts.iperf, OUT_HTTP: tlsPorts.http, OUT_PING: tlsPorts.ping },
    },
    {
      node: node2,
      cgroup: cgroups.node2,
      file: template('node2'),
      listen: node2.ip,
      listenPorts: { IN_IPERF: tlsPorts.iperf, IN_HTTP: tlsPorts.http, IN_PING: tlsPorts.ping },
      upstream: server.ip,
      upstreamPorts: { OUT_IPERF: appPorts.iperf, OUT_HTTP: appPorts.http, OUT_PING: appPorts.ping },
    },
  ];
  const procs: CapturedProcess[] = [];
  for (const s of sides) {
    const dir = path.join(workDir, def.name, s.node.name);
    fs.mkdirSync(dir, { recursive: true });
    const ext = def.kind === 'nginx' ? 'conf' : 'cfg';
    const conf = renderTemplate(`${s.file}.${ext}`, {
      DIR: dir,
      CERTS: certDir,
      WORKERS: def.workers,
      SERVER_NAME,
      LOAD_STREAM_MODULE: fs.existsSync(STREAM_MODULE) ? `load_module ${STREAM_MODULE};` : '',
      LISTEN: s.listen,
      UPSTREAM: s.upstream,
      ...s.listenPorts,
      ...s.upstreamPorts,
    });
    const confFile = path.join(dir, `${s.file}.${ext}`);
    fs.writeFileSync(confFile, conf);
    const proc =
      def.kind === 'nginx'
        ? topo.spawnOnNode(s.node, 'nginx', ['-p', dir, '-e', path.join(dir, 'error.log'), '-c', confFile], { cgroup: s.cgroup })
        : topo.spawnOnNode(s.node, 'haproxy', ['-db', '-f', confFile], { cgroup: s.cgroup });
    procs.push(proc);
    await waitListeningOnNode(topo, s.node, s.cgroup, s.listen, listening(s.listenPorts), proc, `${def.name} on ${s.node.name}`);
  }
  return {
    def,
    target: { host: node1.bridgeIp, iperfPort: inPorts.IN_IPERF, httpPort: inPorts.IN_HTTP, pingPort: inPorts.IN_PING },
    cgroups,
    procs,
    mtls: { host: node2.ip, port: tlsPorts.http },
  };
}

/** Stops a peer's proxies: SIGTERM (nginx's master stops its workers), then SIGKILL after 3 s. */
export async function stopPeer(p: RunningPeer): Promise<void> {
  await Promise.all(
    p.procs.map(async (proc) => {
      if (proc.exitInfo()) return;
      proc.kill('SIGTERM');
      const t = setTimeout(() => proc.kill('SIGKILL'), 3000);
      await proc.exited;
      clearTimeout(t);
    }),
  );
}

export interface MtlsCheck {
  /** An HTTP request through the node2 proxy's TLS port with the client certificate got the server's answer. */
  withClientCert: boolean;
  /** The same without a client certificate got nothing from the server. */
  withoutClientCertRefused: boolean;
  /** Negotiated protocol and cipher suite, as `openssl s_client -brief` prints them. */
  protocol: string;
  cipher: string;
}

/** Talks to the node2 proxy's TLS port from node1's namespace with openssl s_client: mutual auth enforced, TLS 1.3. */
export async function checkMtls(topo: Topology, p: RunningPeer, certDir: string): Promise<MtlsCheck> {
  const node1 = topo.node('node1');
  const base = ['s_client', '-connect', `${p.mtls.host}:${p.mtls.port}`, '-CAfile', path.join(certDir, 'ca.crt'), '-ign_eof', '-quiet'];
  const cert = ['-cert', path.join(certDir, 'client.crt'), '-key', path.join(certDir, 'client.key')];
  const request = 'GET / HTTP/1.0\r\n\r\n';
  const run = (args: string[], input: string) => waitExit(topo.spawnOnNode(node1, 'openssl', args, { cgroup: p.cgroups.node1, input }), 10_000);
  const [withCert, without, brief] = await Promise.all([
    run([...base, ...cert], request),
    run(base, request),
    run(['s_client', '-brief', '-connect', `${p.mtls.host}:${p.mtls.port}`, '-CAfile', path.join(certDir, 'ca.crt'), ...cert], ''),
  ]);
  const text = brief.stdout + brief.stderr;
  return {
    withClientCert: withCert.stdout.includes('hello'),
    withoutClientCertRefused: !without.stdout.includes('hello'),
    protocol: (/Protocol version: (\S+)/.exec(text) ?? ['', '?'])[1]!,
    cipher: (/Ciphersuite: (\S+)/.exec(text) ?? ['', '?'])[1]!,
  };
}
