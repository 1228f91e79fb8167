// Where traffic to one chosen endpoint goes — same node, plain passthrough, an Istio sidecar's mTLS, or HBONE (pod- or node-addressed): the one pure decision the L4 outbound and the per-request HTTP path share.
import { nodeSpiffeId } from '../../core/identity/spiffe';
import type { MeshNode, Workload } from '../../core/model/types';
import { formatAuthority, type HostPort } from './types';

export type HboneAddressing = 'pod' | 'node';

export type EndpointRoute =
  /** Destination pod on this node: plain TCP to it, no TLS (policy is decided by this proxy). */
  | { readonly kind: 'local'; readonly ip: string; readonly port: number }
  /** Destination opted out of the mesh: plain TCP to it wherever it is. */
  | { readonly kind: 'passthrough'; readonly ip: string; readonly port: number }
  /** Destination runs an Istio sidecar (LEGACY_ISTIO_MTLS), wherever it is: the sidecar's mutual TLS to `ip:port`, whose certificate must be `serverId`. */
  | { readonly kind: 'legacy_mtls'; readonly ip: string; readonly port: number; readonly serverId: string }
  /**
   * Destination pod on another node: HBONE to `nodeAddr`, whose certificate must be `nodeId` — the pod's address and
   * workload identity (pod-addressed, ztunnel's), or that node's agent and node identity (node-addressed).
   */
  | { readonly kind: 'hbone'; readonly ip: string; readonly port: number; readonly nodeAddr: HostPort; readonly nodeId: string; readonly authority: string }
  /** Node-addressed HBONE to a node whose address is unknown. */
  | { readonly kind: 'unknown_node'; readonly detail: string };

export interface EndpointRouteInputs {
  readonly localNode: string;
  readonly hbonePort: number;
  /** `pod` (default, ztunnel's wire) or `node`. */
  readonly hboneAddressing?: HboneAddressing;
  readonly trustDomain: string;
  readonly node: (name: string) => MeshNode | undefined;
}

/**
 * Pure: how to reach workload `w` on `port` (the target port) from this node, at address `ip` (one of `w`'s: a
 * dual-stack pod is reached by the family the client dialled, see endpointAddress(); default its first).
 */
export function routeToEndpoint(w: Workload, port: number, i: EndpointRouteInputs, ip: string = w.ip): EndpointRoute {
  if (w.tunnel === 'legacy_istio_mtls') return { kind: 'legacy_mtls', ip, port, serverId: w.identity };
  if (!w.meshed) return { kind: 'passthrough', ip, port };
  if (w.node === i.localNode) return { kind: 'local', ip, port };
  const authority = formatAuthority(ip, port);
  if ((i.hboneAddressing ?? 'pod') === 'pod') return { kind: 'hbone', ip, port, nodeAddr: { host: ip, port: i.hbonePort }, nodeId: w.identity, authority };
  const node = i.node(w.node);
  if (!node) return { kind: 'unknown_node', detail: `workload ${w.uid} is on node ${w.node}, whose address is unknown` };
  return { kind: 'hbone', ip, port, nodeAddr: { host: node.address, port: i.hbonePort }, nodeId: nodeSpiffeId(i.trustDomain, node.name), authority };
}
