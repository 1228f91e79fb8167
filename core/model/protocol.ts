// Protocol detection per service port: which ports the outbound proxies per request (HTTP/1.1, HTTP/2, gRPC) and which per connection.
import type { Service, ServicePort, ServiceTrafficPolicy } from './types';

export type PortProtocol = 'http' | 'http2' | 'grpc' | 'tcp';

const APP_PROTOCOLS: Readonly<Record<string, PortProtocol>> = {
  http: 'http',
  'kubernetes.io/h2c': 'http2',
  h2c: 'http2',
  http2: 'http2',
  grpc: 'grpc',
  'grpc-web': 'http',
};

/** Istio port naming: `<protocol>[-<suffix>]`. */
const NAME_PREFIXES: ReadonlyArray<readonly [string, PortProtocol]> = [
  ['http2', 'http2'],
  ['grpc-web', 'http'],
  ['grpc', 'grpc'],
  ['http', 'http'],
];

function fromName(name: string | undefined): PortProtocol | undefined {
  if (!name) return undefined;
  const n = name.toLowerCase();
  for (const [prefix, proto] of NAME_PREFIXES) if (n === prefix || n.startsWith(`${prefix}-`)) return proto;
  return undefined;
}

const WIRE_APP_PROTOCOL: Readonly<Record<Exclude<PortProtocol, 'tcp'>, string>> = { http: 'http', http2: 'http2', grpc: 'grpc' };

/** Istio's AppProtocol (istio.workload.Port.app_protocol, field 3), by enum name. */
export type IstioAppProtocol = 'UNKNOWN' | 'HTTP11' | 'HTTP2' | 'GRPC' | 'TCP' | 'TLS';

/** Kubernetes' standard appProtocol values; istiod recognises them in appProtocol only, case-sensitively. */
const KUBERNETES_APP_PROTOCOLS: Readonly<Record<string, IstioAppProtocol>> = { 'kubernetes.io/h2c': 'HTTP2', 'kubernetes.io/ws': 'HTTP11', 'kubernetes.io/wss': 'TLS' };
/** Istio protocol names (case-insensitive) that have an AppProtocol value. */
const ISTIO_PROTOCOLS: Readonly<Record<string, IstioAppProtocol>> = { http: 'HTTP11', http2: 'HTTP2', grpc: 'GRPC', https: 'TLS', tls: 'TLS', tcp: 'TCP' };
/** Istio protocol names without an AppProtocol value: UNKNOWN, and they also keep a well-known port from counting as TCP. */
const ISTIO_PROTOCOLS_WITHOUT_VALUE: ReadonlySet<string> = new Set(['udp', 'http_proxy', 'mongo', 'redis', 'mysql']);
/** SMTP, DNS, MySQL, MongoDB: TCP when nothing Istio knows declares the port. */
const WELL_KNOWN_TCP_PORTS: ReadonlySet<number> = new Set([25, 53, 3306, 27017]);

/**
 * The AppProtocol istiod sends for a Kubernetes Service port (its ambient index: the port's protocol
 * from appProtocol, else the name, each as `<protocol>[-<suffix>]`, then mapped onto the enum).
 * appProtocol, when set, replaces the name entirely; kubernetes.io/h2c|ws|wss are HTTP2, HTTP11, TLS.
 * grpc-web, udp, mongo, redis, mysql, http_proxy and undeclared names are UNKNOWN, except that an
 * undeclared port 25, 53, 3306 or 27017 is TCP. https and tls are TLS.
 */
export function istioAppProtocol(port: Pick<ServicePort, 'name' | 'appProtocol' | 'port'>): IstioAppProtocol {
  let name = port.name ?? '';
  if (port.appProtocol) {
    name = port.appProtocol;
    const standard = KUBERNETES_APP_PROTOCOLS[name];
    if (standard) return standard;
  }
  const lower = name.toLowerCase();
  if (lower.startsWith('grpc-web')) return 'UNKNOWN';
  const dash = lower.indexOf('-');
  const protocol = dash >= 0 ? lower.slice(0, dash) : lower;
  const known = ISTIO_PROTOCOLS[protocol];
  if (known) return known;
  return !ISTIO_PROTOCOLS_WITHOUT_VALUE.has(protocol) && WELL_KNOWN_TCP_PORTS.has(port.port) ? 'TCP' : 'UNKNOWN';
}

/**
 * The appProtocol an Istio AppProtocol stands for: what the agent keeps in ServicePort.appProtocol
 * for a port whose app_protocol is set (istioAppProtocol of it gives the enum value back).
 */
export const APP_PROTOCOL_OF_ISTIO: Readonly<Record<Exclude<IstioAppProtocol, 'UNKNOWN'>, string>> = { HTTP11: 'http', HTTP2: 'http2', GRPC: 'grpc', TCP: 'tcp', TLS: 'tls' };

const PORT_PROTOCOL_OF_ISTIO: Readonly<Record<IstioAppProtocol, PortProtocol | undefined>> = { UNKNOWN: undefined, HTTP11: 'http', HTTP2: 'http2', GRPC: 'grpc', TCP: 'tcp', TLS: 'tcp' };

/**
 * The app protocol the control plane publishes for a port (istio.workload.Port.smesh_app_protocol):
 * the port's appProtocol as written, else the one its Istio name prefix implies (`http-web` →
 * "http"), else undefined. Decoded back into ServicePort.appProtocol, it gives the agent the same
 * portProtocol() answer as the file source, which has the name too.
 */
export function declaredAppProtocol(port: Pick<ServicePort, 'name' | 'appProtocol'>): string | undefined {
  if (port.appProtocol) return port.appProtocol;
  const byName = fromName(port.name);
  return byName && byName !== 'tcp' ? WIRE_APP_PROTOCOL[byName] : undefined;
}

/**
 * What Istio declares first (istioAppProtocol: TLS and TCP are per connection), then smesh's wider
 * reading where Istio has no value (bare h2c, grpc-web). appProtocol wins over the port name
 * (Kubernetes' precedence, as Istio). Over xDS the name does not travel: appProtocol holds
 * app_protocol as APP_PROTOCOL_OF_ISTIO spells it, or smesh_app_protocol when that is UNKNOWN, so
 * the answer is the file source's. A port that declares nothing but has HTTP routes in the
 * service's traffic policy (a VirtualService `http` section) is HTTP too: Istio applies http routes
 * only to HTTP ports, so declaring them is declaring the port HTTP.
 */
export function portProtocol(port: ServicePort, policy?: ServiceTrafficPolicy): PortProtocol {
  const declaredByIstio = PORT_PROTOCOL_OF_ISTIO[istioAppProtocol(port)];
  if (declaredByIstio) return declaredByIstio;
  const ap = port.appProtocol?.toLowerCase();
  if (ap) {
    const p = APP_PROTOCOLS[ap];
    if (p) return p;
    return 'tcp';
  }
  const byName = fromName(port.name);
  if (byName) return byName;
  if (policy && policy.routes.some((r) => r.matches.length === 0 || r.matches.some((m) => m.port === undefined || m.port === port.port))) return 'http';
  return 'tcp';
}

export function isHttpPort(service: Service, port: ServicePort, policy?: ServiceTrafficPolicy): boolean {
  void service;
  return portProtocol(port, policy) !== 'tcp';
}

/** Connection-specific headers a proxy never forwards (RFC 9110 §7.6.1, RFC 9113 §8.2.2; HTTP2-Settings of the h2c upgrade). */
export const HOP_BY_HOP: ReadonlySet<string> = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'upgrade',
  'te',
  'trailer',
  'proxy-authenticate',
  'proxy-authorization',
  'http2-settings',
]);

/** HTTP/2 connection preface (RFC 9113 §3.4); h2c with prior knowledge and gRPC start with it. */
export const HTTP2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

/** 'h2' when `head` starts the HTTP/2 preface, 'h1' when it cannot, 'more' when too short to tell. */
export function sniffHttpVersion(head: Buffer): 'h2' | 'h1' | 'more' {
  const n = Math.min(head.length, HTTP2_PREFACE.length);
  if (head.subarray(0, n).equals(HTTP2_PREFACE.subarray(0, n))) return n === HTTP2_PREFACE.length ? 'h2' : 'more';
  return 'h1';
}
