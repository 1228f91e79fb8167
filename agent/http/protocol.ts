// Protocol detection per service port: which ports the outbound proxies per request (HTTP/1.1, HTTP/2, gRPC) and which per connection.
import type { Service, ServicePort, ServiceTrafficPolicy } from '../state/types';

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
 * appProtocol wins over the port name (Kubernetes' precedence, as Istio). Over xDS the name does
 * not travel but smesh_app_protocol carries declaredAppProtocol() into appProtocol. A port that
 * declares nothing but has HTTP routes in the service's traffic policy (a VirtualService `http`
 * section) is HTTP too: Istio applies http routes only to HTTP ports, so declaring them is
 * declaring the port HTTP.
 */
export function portProtocol(port: ServicePort, policy?: ServiceTrafficPolicy): PortProtocol {
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
export const HOP_BY_HOP: ReadonlySet<string> = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te', 'trailer', 'proxy-authenticate', 'proxy-authorization', 'http2-settings']);

/** HTTP/2 connection preface (RFC 9113 §3.4); h2c with prior knowledge and gRPC start with it. */
export const HTTP2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

/** 'h2' when `head` starts the HTTP/2 preface, 'h1' when it cannot, 'more' when too short to tell. */
export function sniffHttpVersion(head: Buffer): 'h2' | 'h1' | 'more' {
  const n = Math.min(head.length, HTTP2_PREFACE.length);
  if (head.subarray(0, n).equals(HTTP2_PREFACE.subarray(0, n))) return n === HTTP2_PREFACE.length ? 'h2' : 'more';
  return 'h1';
}
