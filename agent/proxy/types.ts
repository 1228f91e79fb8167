// Narrow interfaces the proxies need from the rest of the agent (identities, authorization, addresses), so each can be faked in tests.
import type { Service, Workload } from '../../core/model/types';
import type { UsableCert, RotationListener } from '../identity/manager';
import type { Duplex } from 'node:stream';
import type { HttpAttributes } from '../../core/policy/types';
import type { TcpConnectionInfo } from '../telemetry/metrics';

/** What the proxies need from the identity manager. */
export interface IdentityProvider {
  get(spiffeId: string): UsableCert | undefined;
  certificate?(spiffeId: string): Promise<UsableCert>;
  trustBundlePem(): string;
  onRotate?(listener: RotationListener): void;
  onTrustBundleChange?(listener: (bundlePem: string) => void): void;
}

export interface HostPort {
  readonly host: string;
  readonly port: number;
}

export interface IpPort {
  readonly ip: string;
  readonly port: number;
}

export interface AuthorizeInput {
  /** Authenticated SPIFFE id of the caller (from its certificate, or the local source workload). */
  readonly sourceIdentity: string;
  readonly sourceIp?: string;
  readonly destination: IpPort;
  readonly destinationWorkload?: Workload;
  /** The request's attributes, when authorizing one HTTP request (the inbound of an HTTP port). */
  readonly http?: HttpAttributes;
  /** Connection check at an HTTP port whose requests are authorized afterwards: L7 attributes deferred, not failing closed. */
  readonly deferL7?: boolean;
}

/** `deferred`: allowed for the connection, but some request-level (L7) rule must still be checked per request. */
export type AuthorizeResult = { readonly allow: true; readonly deferred?: boolean } | { readonly allow: false; readonly reason: string };
export type Authorizer = (input: AuthorizeInput) => AuthorizeResult;

export const allowAll: Authorizer = () => ({ allow: true });

/** "ip:port", bracketing IPv6 (the HBONE :authority form). */
export function formatAuthority(ip: string, port: number): string {
  return ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`;
}

/** Strips the IPv4-mapped IPv6 prefix Node reports on dual-stack sockets. */
export function normalizeIp(ip: string | undefined): string | undefined {
  if (!ip) return undefined;
  return ip.startsWith('::ffff:') && ip.includes('.') ? ip.slice(7) : ip;
}

/** Telemetry view of a service: Kubernetes host `name.namespace.svc.<domain>` plus name and namespace. */
export function serviceInfo(svc: Service | undefined, trustDomain: string): { name: string; namespace: string; host: string } | undefined {
  // Kubernetes service hosts use the cluster domain; smesh's trust domain defaults to the same "cluster.local".
  return svc ? { name: svc.name, namespace: svc.namespace, host: `${svc.name}.${svc.namespace}.svc.${trustDomain}` } : undefined;
}

/** Who is calling what through one HBONE tunnel to an HTTP port (fixed for the tunnel). */
export interface TunnelContext {
  readonly peer: string;
  readonly sourceIp?: string;
  readonly destination: IpPort;
  readonly workload?: Workload;
  /** Request telemetry labels (reporter destination), when metrics are on. */
  readonly telemetry?: TcpConnectionInfo;
  readonly protocol: 'http' | 'grpc';
}

/** What a served tunnel ended with, for the caller's log line. */
export interface TunnelOutcome {
  readonly version: 'h1' | 'h2' | 'none';
  readonly requests: number;
  readonly denied: number;
}

/**
 * Serves HBONE tunnels whose requests are authorized one by one (agent/http/inbound-http.ts). The
 * inbound proxy is given one by the composition root: HTTP parsing sits above the proxy layer.
 */
export interface HttpTunnelServer {
  /** Serves one tunnel until it closes; `counts` is kept up to date with the tunnel's bytes as they pass. */
  serve(stream: Duplex, ctx: TunnelContext, counts?: { received: number; sent: number }): Promise<TunnelOutcome>;
  /** Closes every tunnel being served. */
  close(): void;
}
