// Outbound capture (port 15001): classify each redirected connection with a pure decision, then relay it locally or over HBONE.
import { routeToEndpoint, type HboneAddressing } from './endpoint-route';
import * as net from 'node:net';
import { endpointAddress } from '../../core/model/addresses';
import { SmeshError } from '../../core/errors';
import { boundAddress, listenOrFail } from '../../core/telemetry/listen';
import type { PickResult } from '../lb/picker';
import type { RandomSource } from '../lb/sampling';
import { ConnectionBalancer, l4ConnectionPoolSettings } from './balancer';
import type { StateView } from '../state/store';
import type { ConnectionPoolSettings, Service, ServicePort, Workload } from '../../core/model/types';
import { silentLogger, type Logger } from '../../core/telemetry/logger';
import { DEFAULT_CLUSTER, type ConnectionStats, type MeshMetrics, type RefusalReason, type TcpConnectionInfo } from '../telemetry/metrics';
import { baggageHeader, sourceBaggage } from '../telemetry/baggage';
import type { HboneOpenRequest } from './hbone-client';
import type { HboneStreamQos } from '../native/hbone-types';
import { LegacyMtlsConnector, LegacyMtlsError, sidecarSni } from './legacy-mtls';
import { dial, sourceAddressFor, type SourceAddressFor } from './dial';
import { relay, type ByteCounters, type Relay, type RelayLimits } from './relay';
import type { ConnectionRegistry } from './connection-tracker';
import { canSplice, spliceRelay } from './splice-relay';
import { spliceApi } from '../native/splice';
import { allowAll, formatAuthority, normalizeIp, serviceInfo, type Authorizer, type HostPort, type HttpTunnelServer, type IdentityProvider, type IpPort } from './types';
import type { Duplex } from 'node:stream';
import { type AcceptQueue, defaultAcceptClass } from '../qos/accept-queue';
import type { ConnectionFacts, TrafficShaper } from '../qos/shaping';

export const DEFAULT_HBONE_PORT = 15008;

/** What the decision reads from state. */
export type OutboundStateView = Pick<StateView, 'trustDomain' | 'resolve' | 'node'>;

export interface OutboundInputs {
  /** SO_ORIGINAL_DST of the accepted socket; null when unknown. */
  readonly originalDestination: IpPort | null;
  /** The capture listener's own address (loop guard). */
  readonly capture: IpPort;
  /** Workload owning the connection's source IP. */
  readonly source: Workload | undefined;
  readonly localNode: string;
  readonly hbonePort: number;
  /**
   * `pod` (default, ztunnel's wire): dial `<destination pod IP>:hbonePort` and expect the destination workload's
   * certificate; `node`: dial the destination node's agent and expect the node certificate (smesh's earlier wire).
   */
  readonly hboneAddressing?: HboneAddressing;
  readonly state: OutboundStateView;
  /** The DestinationRule connectionPool for connections to a service port (production: the port's, else the service's). */
  readonly connectionPool?: (service: Service, port: ServicePort) => ConnectionPoolSettings | undefined;
  /**
   * Endpoint choice for a service (production: ConnectionBalancer, the DestinationRule's
   * loadBalancer or round robin; anything synchronous in tests).
   */
  readonly pick: (serviceKey: string, endpoints: readonly Workload[], ctx: OutboundPickContext) => PickResult<Workload>;
}

/** What the pick may look at besides the endpoints. */
export interface OutboundPickContext {
  readonly service: Service;
  readonly port: ServicePort;
  readonly source: Workload;
}

interface Target {
  readonly destination: Workload;
  readonly service?: Service;
  /** The service port dialled, when `service` is set. */
  readonly servicePort?: number;
  /** Its DestinationRule connectionPool (port-level, else service-level), if any. */
  readonly pool?: ConnectionPoolSettings;
}

export type { HboneAddressing };

export type OutboundDecision =
  /** Destination pod on this node: plain TCP to it, no TLS. */
  | ({ readonly kind: 'local'; readonly ip: string; readonly port: number } & Target)
  /** Destination opted out of the mesh: plain TCP to it wherever it is. */
  | ({ readonly kind: 'passthrough'; readonly ip: string; readonly port: number } & Target)
  /**
   * Destination pod on another node: HBONE to `nodeAddr`, whose certificate must be `nodeId` — the pod's address and
   * workload identity (pod-addressed, ztunnel's), or that node's agent and node identity (node-addressed).
   */
  | ({ readonly kind: 'hbone'; readonly nodeAddr: HostPort; readonly nodeId: string; readonly authority: string } & Target)
  /** Destination runs an Istio sidecar (tunnel LEGACY_ISTIO_MTLS), wherever it is: the sidecar's mutual TLS to `ip:port`, whose certificate must be `serverId`. */
  | ({ readonly kind: 'legacy_mtls'; readonly ip: string; readonly port: number; readonly serverId: string } & Target)
  | { readonly kind: 'refuse'; readonly reason: RefusalReason; readonly detail: string };

function refuse(reason: RefusalReason, detail: string): OutboundDecision {
  return { kind: 'refuse', reason, detail };
}

/** Pure: where a redirected connection goes. Table-tested; no I/O, no clock. */
export function decideOutbound(i: OutboundInputs): OutboundDecision {
  const dst = i.originalDestination;
  if (!dst) return refuse('no_original_destination', 'original destination unknown (was the connection redirected by smesh?)');
  if (dst.ip === i.capture.ip || (dst.port === i.capture.port && (dst.ip === '127.0.0.1' || dst.ip === '::1'))) {
    return refuse('loop', `original destination ${formatAuthority(dst.ip, dst.port)} is the capture listener itself`);
  }
  const src = i.source;
  if (!src) return refuse('unknown_source', 'source address is not a known workload');
  if (src.node !== i.localNode) return refuse('source_not_local', `source workload ${src.uid} runs on node ${src.node}, not ${i.localNode}`);
  if (!src.meshed) return refuse('unknown_source', `source workload ${src.uid} is not meshed`);

  const resolved = i.state.resolve(dst.ip, dst.port);
  let target: Target;
  let port: number;
  switch (resolved.kind) {
    case 'unknown':
      return refuse('unknown_destination', `${formatAuthority(dst.ip, dst.port)} is neither a service port nor a mesh workload`);
    case 'service': {
      const svc = resolved.service;
      if (resolved.endpoints.length === 0) return refuse('no_endpoint', `service ${svc.key} has no endpoints`);
      const picked = i.pick(svc.key, resolved.endpoints, { service: svc, port: resolved.port, source: src });
      if (picked.kind !== 'complete') return refuse('no_endpoint', `service ${svc.key}: ${picked.reason}`);
      const pool = i.connectionPool?.(svc, resolved.port);
      target = { destination: picked.endpoint, service: svc, servicePort: resolved.port.port, ...(pool ? { pool } : {}) };
      port = resolved.port.targetPort > 0 ? resolved.port.targetPort : resolved.port.port;
      break;
    }
    case 'workload':
      target = { destination: resolved.workload };
      port = resolved.port;
      break;
  }
  const route = routeToEndpoint(
    target.destination,
    port,
    { localNode: i.localNode, hbonePort: i.hbonePort, hboneAddressing: i.hboneAddressing, trustDomain: i.state.trustDomain, node: (n) => i.state.node(n) },
    endpointAddress(target.destination, dst.ip),
  );
  switch (route.kind) {
    case 'unknown_node':
      return refuse('unknown_node', route.detail);
    case 'hbone':
      return { kind: 'hbone', nodeAddr: route.nodeAddr, nodeId: route.nodeId, authority: route.authority, ...target };
    case 'legacy_mtls':
      return { kind: 'legacy_mtls', ip: route.ip, port: route.port, serverId: route.serverId, ...target };
    default:
      return { kind: route.kind, ip: route.ip, port: route.port, ...target };
  }
}

/** What the outbound needs from the HBONE client. */
export interface HboneConnector {
  open(req: HboneOpenRequest): Promise<Duplex>;
  /** Native engine (NativeHboneClient): opens a stream by id, hands a plain TCP socket to it, or drops it unused. */
  openStream?(req: HboneOpenRequest): Promise<number>;
  relay?(stream: number, sock: net.Socket, counters?: ByteCounters, qos?: HboneStreamQos): Relay;
  abandon?(stream: number): void;
}

export interface OutboundProxyOptions {
  readonly state: StateView;
  readonly identities: IdentityProvider;
  readonly hbone: HboneConnector;
  /** SO_ORIGINAL_DST of an accepted socket (production: originalDestination(socketFd(sock)) from agent/native). */
  readonly originalDestination: (sock: net.Socket) => IpPort | null;
  readonly listen: HostPort;
  /**
   * The IPv6 capture listener (`[--capture-ip6]:<outbound port>`): where the kernel redirects enrolled pods' IPv6
   * connections to meshed destinations. Absent: IPv6 connections are not redirected (the kernel lets them pass).
   */
  readonly listen6?: HostPort;
  readonly nodeName: string;
  /** Port of the remote agents' HBONE listeners (default 15008). */
  readonly hbonePort?: number;
  /** Pod-addressed (default) or node-addressed HBONE (see OutboundInputs.hboneAddressing). */
  readonly hboneAddressing?: HboneAddressing;
  /** Policy for same-node connections (which never cross an inbound). Default allow. */
  readonly authorize?: Authorizer;
  readonly metrics?: MeshMetrics;
  readonly logger?: Logger;
  readonly connectTimeoutMs?: number;
  /** Source address of same-node connections to local pods (the capture address; see InboundProxyOptions). */
  readonly localSourceIp?: string;
  /** The same for IPv6 local pods (--capture-ip6); absent: the kernel picks the source. */
  readonly localSourceIp6?: string;
  /** Per-request handler for HTTP service ports (agent/http); absent = every port per connection. */
  readonly http?: OutboundHttpHandler;
  /** Uniform [0, 1) for the L4 load balancer's draws (tests); default Math.random. */
  readonly random?: RandomSource;
  /** Same-node plaintext connections are relayed in the kernel (addon splice relay) when the addon has it; false = always the JS relay. Default true. */
  readonly spliceRelay?: boolean;
  /** Same-node connections (authorized here) are registered so that a policy change re-decides them (connection-tracker.ts). */
  readonly connections?: ConnectionRegistry;
  /**
   * A same-node connection to a pod's HTTP port dialled by its address (no service, so not the per-request outbound
   * path): parsed and authorized per request by `httpTunnels` as the destination's inbound would (`httpProtocolOf`
   * names the port's protocol), instead of failing request-level rules closed on the whole connection.
   */
  readonly httpTunnels?: HttpTunnelServer;
  readonly httpProtocolOf?: (workload: Workload | undefined, port: number) => 'http' | 'grpc' | undefined;
  /** Trust domains accepted besides the mesh's from Istio sidecars (legacy mTLS destinations), as MeshConfig trustDomainAliases. */
  readonly trustDomainAliases?: readonly string[] | (() => readonly string[]);
  /** The Istio sidecar mTLS originator, shared with the HTTP path (default: one of its own from identities and aliases). */
  readonly legacyMtls?: LegacyMtlsConnector;
  /** TrafficShaping outbound rules (agent/qos/shaping.ts): connections over a rate or concurrency limit are reset or queued. */
  readonly shaping?: TrafficShaper;
  /**
   * bytes/s limits (TrafficShaping) for relays outside the native engine: same-node connections (the source's outbound
   * rules and the destination's inbound rules together; such a connection is relayed in JavaScript, not spliced) and
   * tunnels under the JS data plane.
   */
  readonly relayLimits?: (facts: readonly ConnectionFacts[]) => RelayLimits | undefined;
  /** The node's accept queue (agent/qos/accept-queue.ts): each new connection's work waits its turn by class and fair share. */
  readonly acceptQueue?: AcceptQueue;
}

/** What the outbound needs from the HTTP layer (agent/http/outbound-http.ts HttpOutbound). */
export interface OutboundHttpHandler {
  accepts(service: Service, port: ServicePort): boolean;
  /** Takes the socket and serves it per request. */
  handle(sock: net.Socket, ctx: { source: Workload; sourceIp?: string; service: Service; port: ServicePort }): void;
  close?(): void;
}

/** The outbound capture listener. */
export class OutboundProxy {
  private server?: net.Server;
  private server6?: net.Server;
  private readonly clients = new Set<net.Socket>();
  private readonly relays = new Set<Relay>();
  private readonly balancer: ConnectionBalancer;
  /** Open L4 connections per `<service key>|<service port>` (maxConnections). */
  private readonly openPerServicePort = new Map<string, number>();
  private readonly log: Logger;
  private readonly authorize: Authorizer;
  private readonly legacyMtls: LegacyMtlsConnector;
  private closing = false;

  /** Source address of same-node connections to local pods, by the pod address's family. */
  private readonly sourceFor: SourceAddressFor;

  constructor(private readonly opts: OutboundProxyOptions) {
    this.sourceFor = sourceAddressFor(opts.localSourceIp, opts.localSourceIp6);
    this.log = opts.logger ?? silentLogger();
    this.authorize = opts.authorize ?? allowAll;
    this.balancer = new ConnectionBalancer({ policies: () => opts.state.snapshot().trafficPolicies, random: opts.random });
    this.legacyMtls = opts.legacyMtls ?? new LegacyMtlsConnector({ identities: opts.identities, trustDomainAliases: opts.trustDomainAliases, clusterId: DEFAULT_CLUSTER });
  }

  address(): net.AddressInfo {
    const a = this.server?.address();
    if (!a || typeof a === 'string') throw new SmeshError('SMESH_ERR_BIND', 'outbound listener is not listening');
    return a;
  }

  /** The listening socket's fd (-1 before start): the kernel hands connections to every capture tuple to it. */
  listenerFd(): number {
    const handle = (this.server as unknown as { _handle?: { fd?: number } } | undefined)?._handle;
    return typeof handle?.fd === 'number' ? handle.fd : -1;
  }

  async start(): Promise<void> {
    const server = net.createServer({ allowHalfOpen: true, noDelay: true }, (sock) => this.onConnection(sock));
    this.server = server;
    await listenOrFail(server, this.opts.listen.host, this.opts.listen.port, 'outbound capture listener', 'is the capture address configured on lo? is another agent running?', this.log);
    this.log.info({ address: boundAddress(server) }, 'outbound capture listening');
    const l6 = this.opts.listen6;
    if (l6) {
      const server6 = net.createServer({ allowHalfOpen: true, noDelay: true }, (sock) => this.onConnection(sock, { ip: normalizeIp(l6.host) ?? l6.host, port: l6.port }));
      this.server6 = server6;
      await listenOrFail(server6, l6.host, l6.port, 'IPv6 outbound capture listener', 'is the IPv6 capture address (--capture-ip6) configured on lo?', this.log);
      this.log.info({ address: boundAddress(server6) }, 'IPv6 outbound capture listening');
    }
  }

  /**
   * Drain, step 1: no new connections (this process's listening fd is closed; an inherited socket keeps listening in
   * the supervisor for the next agent); connections already accepted keep relaying until close().
   */
  stopAccepting(): void {
    if (this.server?.listening) this.server.close();
    if (this.server6?.listening) this.server6.close();
  }

  /** Connections still open (accepted sockets and running relays, spliced ones included): what a drain waits for. */
  openConnections(): number {
    return this.clients.size + this.relays.size;
  }

  async close(): Promise<void> {
    this.closing = true;
    const server = this.server;
    if (!server) return;
    const closed = new Promise<void>((r) => server.close(() => r()));
    const server6 = this.server6;
    const closed6 = server6 ? new Promise<void>((r) => server6.close(() => r())) : undefined;
    for (const r of this.relays) r.reset();
    for (const c of this.clients) c.destroy();
    this.opts.http?.close?.();
    await closed;
    await closed6;
  }

  private capture(): IpPort {
    const a = this.server?.address();
    if (a && typeof a !== 'string') return { ip: normalizeIp(a.address) ?? a.address, port: a.port };
    return { ip: this.opts.listen.host, port: this.opts.listen.port };
  }

  /** Same node, HTTP port, pod address dialled: every request decided and reported as at the destination's inbound. */
  private serveLocalHttp(sock: net.Socket, d: Extract<OutboundDecision, { kind: 'local' }>, source: Workload, sourceIp: string | undefined, protocol: 'http' | 'grpc'): void {
    const info = this.directTelemetry(source, d);
    const destination: TcpConnectionInfo = { ...info, reporter: 'destination', sourcePrincipal: source.identity };
    const stats = this.opts.metrics?.openTcpBothReporters(info, destination);
    const dest = { ip: d.ip, port: d.port };
    const untrack = this.opts.connections?.register({
      direction: 'outbound',
      facts: { sourceIdentity: source.identity, sourceIp, destination: dest, destinationWorkload: d.destination },
      mode: 'inspected',
      close: () => sock.resetAndDestroy(),
    });
    void this.opts
      .httpTunnels!.serve(sock, { peer: source.identity, sourceIp, destination: dest, workload: d.destination, protocol, telemetry: this.opts.metrics ? destination : undefined }, stats)
      .then(() => {
        untrack?.();
        stats?.close();
      });
  }

  private directTelemetry(source: Workload, d: Extract<OutboundDecision, { kind: 'local' | 'passthrough' }>): TcpConnectionInfo {
    return {
      reporter: 'source',
      source,
      destination: d.destination,
      service: serviceInfo(d.service, this.opts.state.trustDomain),
      mtls: false,
      sourceAddress: source.ip,
      destinationAddress: formatAuthority(d.ip, d.port),
    };
  }

  /** A same-node connection denied or not connected: counted with its response flags under both reporters (no inbound sees it). */
  private recordFailed(source: Workload, d: Extract<OutboundDecision, { kind: 'local' | 'passthrough' }>, flags: 'DENY' | 'CONNECT'): void {
    const m = this.opts.metrics;
    if (!m) return;
    const info = this.directTelemetry(source, d);
    m.recordFailedTcp(info, flags);
    if (d.kind === 'local') m.recordFailedTcp({ ...info, reporter: 'destination', sourcePrincipal: source.identity }, flags);
  }

  private refuse(sock: net.Socket, reason: RefusalReason, detail: string, fields: Record<string, unknown>): void {
    this.opts.metrics?.refused.inc({ direction: 'outbound', reason });
    this.log.info({ reason, ...fields }, `outbound connection refused: ${detail}`);
    try {
      sock.resetAndDestroy();
    } catch {
      sock.destroy();
    }
  }

  /** `capture`: the listener's own address when it is not the IPv4 one (loop guard). */
  private onConnection(sock: net.Socket, capture?: IpPort): void {
    sock.on('error', () => undefined); // the relay reports errors once connected
    this.clients.add(sock);
    sock.once('close', () => this.clients.delete(sock));
    this.opts.metrics?.redirected.inc({ direction: 'outbound' });
    const sourceIp = normalizeIp(sock.remoteAddress);
    if (this.closing) {
      this.refuse(sock, 'shutting_down', 'agent is shutting down', { sourceIp });
      return;
    }
    const queue = this.opts.acceptQueue;
    if (!queue) return this.decideConnection(sock, sourceIp, capture);
    const source = sourceIp ? this.opts.state.workloadByIp(sourceIp) : undefined;
    queue.submit(
      this.opts.shaping?.acceptClass('outbound', source, sourceIp) ?? defaultAcceptClass(source, sourceIp),
      () => this.decideConnection(sock, sourceIp, capture),
      (_reason, detail) => this.refuse(sock, 'overloaded', detail, { sourceIp, source: source?.uid }),
      () => sock.destroyed || this.closing,
    );
  }

  /** A connection's turn in the accept queue: where it goes, TrafficShaping's admission, then dispatch. */
  private decideConnection(sock: net.Socket, sourceIp: string | undefined, capture: IpPort | undefined): void {
    let originalDestination: IpPort | null;
    try {
      originalDestination = this.opts.originalDestination(sock);
    } catch (err) {
      this.log.debug({ err: (err as Error).message }, 'original destination lookup failed');
      originalDestination = null;
    }
    if (originalDestination) originalDestination = { ip: normalizeIp(originalDestination.ip) ?? originalDestination.ip, port: originalDestination.port };
    const source = sourceIp ? this.opts.state.workloadByIp(sourceIp) : undefined;
    const decision = decideOutbound({
      originalDestination,
      capture: capture ?? this.capture(),
      source,
      localNode: this.opts.nodeName,
      hbonePort: this.opts.hbonePort ?? DEFAULT_HBONE_PORT,
      hboneAddressing: this.opts.hboneAddressing,
      state: this.opts.state,
      pick: (_key, endpoints, ctx) => this.balancer.pick(ctx.service, ctx.port, endpoints, sourceIp ?? ctx.source.ip),
      connectionPool: (service, port) => l4ConnectionPoolSettings(this.opts.state.snapshot().trafficPolicies?.get(service.key), port.port),
    });
    const fields = { sourceIp, source: source?.uid, dst: originalDestination };
    const shaper = this.opts.shaping;
    if (shaper && source && decision.kind !== 'refuse') {
      const facts: ConnectionFacts = { direction: 'outbound', source, service: decision.service, servicePort: decision.servicePort };
      const v = shaper.admitConnection(facts);
      if (v.kind === 'admit') sock.once('close', v.release);
      else if (v.queueMs === undefined) return this.refuse(sock, 'rate_limited', v.detail, fields);
      else {
        void shaper
          .waitConnection(facts, v.queueMs, () => sock.destroyed || this.closing)
          .then((w) => {
            if (w.kind === 'admit' && !sock.destroyed && !this.closing) {
              sock.once('close', w.release);
              this.dispatch(sock, decision, source, sourceIp, originalDestination, fields);
            } else if (w.kind === 'admit') w.release();
            else this.refuse(sock, 'rate_limited', w.detail, fields);
          });
        return;
      }
    }
    this.dispatch(sock, decision, source, sourceIp, originalDestination, fields);
  }

  /** A decided connection (admitted by TrafficShaping): per request on HTTP service ports, else admitted by the circuit breaker and relayed. */
  private dispatch(
    sock: net.Socket,
    decision: OutboundDecision,
    source: Workload | undefined,
    sourceIp: string | undefined,
    originalDestination: IpPort | null,
    fields: Record<string, unknown>,
  ): void {
    const http = this.opts.http;
    if (http && originalDestination && (decision.kind === 'local' || decision.kind === 'hbone') && decision.service) {
      const r = this.opts.state.resolve(originalDestination.ip, originalDestination.port);
      if (r.kind === 'service' && http.accepts(r.service, r.port)) {
        http.handle(sock, { source: source!, sourceIp, service: r.service, port: r.port });
        return;
      }
    }
    // Open connections per endpoint feed least-request: counted from the pick until the client socket closes (relay end or refusal).
    if (decision.kind !== 'refuse' && decision.service) {
      if (!this.admit(sock, decision, fields)) return;
      sock.once('close', this.balancer.open(decision.destination));
    }
    this.proceed(sock, decision, source, sourceIp, fields);
  }

  private proceed(sock: net.Socket, decision: OutboundDecision, source: Workload | undefined, sourceIp: string | undefined, fields: Record<string, unknown>): void {
    switch (decision.kind) {
      case 'refuse':
        this.refuse(sock, decision.reason, decision.detail, fields);
        return;
      case 'local':
      case 'passthrough': {
        if (decision.kind === 'local') {
          const httpProtocol = this.opts.httpTunnels ? this.opts.httpProtocolOf?.(decision.destination, decision.port) : undefined;
          const verdict = this.authorize({
            sourceIdentity: source!.identity,
            sourceIp,
            destination: { ip: decision.ip, port: decision.port },
            destinationWorkload: decision.destination,
            ...(httpProtocol ? { deferL7: true } : {}),
          });
          if (!verdict.allow) {
            this.recordFailed(source!, decision, 'DENY');
            this.refuse(sock, 'denied', `denied by policy: ${verdict.reason}`, fields);
            return;
          }
          if (httpProtocol) {
            this.serveLocalHttp(sock, decision, source!, sourceIp, httpProtocol);
            return;
          }
        }
        this.connectDirect(sock, decision, source!, fields);
        return;
      }
      case 'hbone':
        this.connectHbone(sock, decision, source!, sourceIp, fields);
        return;
      case 'legacy_mtls':
        this.connectLegacyMtls(sock, decision, source!, sourceIp, fields);
        return;
    }
  }

  /** To an Istio sidecar: its mutual TLS (agent/proxy/legacy-mtls.ts), reported as mTLS by this source; the sidecar reports the destination side. */
  private connectLegacyMtls(sock: net.Socket, d: Extract<OutboundDecision, { kind: 'legacy_mtls' }>, source: Workload, sourceIp: string | undefined, fields: Record<string, unknown>): void {
    const service = serviceInfo(d.service, this.opts.state.trustDomain);
    const info: TcpConnectionInfo = {
      reporter: 'source',
      source,
      destination: d.destination,
      destinationPrincipal: d.serverId,
      service,
      mtls: true,
      sourceAddress: sourceIp,
      destinationAddress: formatAuthority(d.ip, d.port),
    };
    const sni = service && d.servicePort !== undefined ? sidecarSni(d.servicePort, service.host) : undefined;
    const timeoutMs = d.pool?.connectTimeoutMs ?? this.opts.connectTimeoutMs ?? 10_000;
    this.legacyMtls.connect({ source, address: { host: d.ip, port: d.port }, expectedServerId: d.serverId, timeoutMs, ...(sni ? { sni } : {}) }).then(
      (upstream) => {
        if (sock.destroyed) {
          upstream.destroy();
          return;
        }
        upstream.on('error', () => undefined);
        this.startRelay(sock, upstream, this.opts.metrics?.openTcp(info), { ...fields, sidecar: info.destinationAddress });
      },
      (err: unknown) => {
        if (sock.destroyed) return;
        this.opts.metrics?.recordFailedTcp(info, 'CONNECT');
        const reason = err instanceof LegacyMtlsError ? err.reason : undefined;
        const refusal = reason === 'foreign_trust_domain' ? 'foreign_trust_domain' : (err as SmeshError).code === 'SMESH_ERR_IDENTITY' ? 'no_certificate' : 'upstream_connect_failed';
        this.refuse(sock, refusal, (err as Error).message, { ...fields, ...(reason ? { legacyMtls: reason } : {}) });
      },
    );
  }

  /** Same-node plaintext: the native splice relay when available and both sockets can be handed over, else the JS relay. */
  private relayPlain(sock: net.Socket, upstream: net.Socket, stats: ConnectionStats | undefined): Relay {
    const api = this.opts.spliceRelay === false ? undefined : spliceApi();
    if (api && canSplice(sock) && canSplice(upstream)) {
      try {
        return spliceRelay(api, sock, upstream, stats);
      } catch (err) {
        this.log.debug({ err: (err as Error).message }, 'splice relay refused the sockets; using the JS relay');
      }
    }
    return relay(sock, upstream, stats);
  }

  private startRelay(
    sock: net.Socket,
    upstream: Duplex,
    stats: ConnectionStats | undefined,
    fields: Record<string, unknown>,
    sameNodePlain = false,
    untrack?: () => void,
    limits?: RelayLimits,
  ): Relay {
    // A limited connection is relayed in JavaScript, which paces it; the kernel splice cannot.
    const r = sameNodePlain && upstream instanceof net.Socket && !limits ? this.relayPlain(sock, upstream, stats) : relay(sock, upstream, stats, limits);
    return this.trackRelay(r, stats, fields, untrack);
  }

  /** Keeps a running relay for shutdown and closes its telemetry when it ends. */
  private trackRelay(r: Relay, stats: ConnectionStats | undefined, fields: Record<string, unknown>, untrack?: () => void): Relay {
    this.relays.add(r);
    void r.done.then((res) => {
      untrack?.();
      this.relays.delete(r);
      stats?.close();
      this.log.debug({ ...fields, received: res.aToB, sent: res.bToA, outcome: res.outcome }, 'outbound connection closed');
    });
    return r;
  }

  /**
   * connectionPool.tcp.maxConnections of the service port, per node proxy (as Envoy per cluster): a connection over
   * the limit is refused at once — reset, counted as a circuit-breaker trip — instead of queued. Admitted connections
   * count until the client socket closes.
   */
  private admit(sock: net.Socket, d: Target, fields: Record<string, unknown>): boolean {
    const key = `${d.service!.key}|${d.servicePort ?? ''}`;
    const open = this.openPerServicePort.get(key) ?? 0;
    const max = d.pool?.maxConnections;
    if (max !== undefined && open >= max) {
      const host = serviceInfo(d.service, this.opts.state.trustDomain)!.host;
      this.opts.metrics?.circuitBreakerTrips.inc({ destination_service: host, reason: 'max_connections' });
      this.refuse(sock, 'circuit_breaker', `${host}:${d.servicePort}: connectionPool.tcp.maxConnections ${max} reached`, fields);
      return false;
    }
    this.openPerServicePort.set(key, open + 1);
    sock.once('close', () => {
      const n = (this.openPerServicePort.get(key) ?? 1) - 1;
      if (n > 0) this.openPerServicePort.set(key, n);
      else this.openPerServicePort.delete(key);
    });
    return true;
  }

  private connectDirect(sock: net.Socket, d: Extract<OutboundDecision, { kind: 'local' | 'passthrough' }>, source: Workload, fields: Record<string, unknown>): void {
    const timeoutMs = d.pool?.connectTimeoutMs ?? this.opts.connectTimeoutMs ?? 10_000;
    const localAddress = d.kind === 'local' ? this.sourceFor(d.ip) : undefined;
    dial(
      { ip: d.ip, port: d.port },
      { localAddress, allowHalfOpen: true, noDelay: true, timeoutMs, client: sock },
      {
        failed: (err) => {
          // A client that went away first is not a failure of the destination.
          if (err.reason === 'aborted' || sock.destroyed) return;
          this.recordFailed(source, d, 'CONNECT');
          this.refuse(sock, 'upstream_connect_failed', `cannot connect to ${formatAuthority(d.ip, d.port)}`, fields);
        },
        connected: (upstream) => this.relayDirect(sock, upstream, d, source, fields),
      },
    );
  }

  private relayDirect(sock: net.Socket, upstream: net.Socket, d: Extract<OutboundDecision, { kind: 'local' | 'passthrough' }>, source: Workload, fields: Record<string, unknown>): void {
    // Same node: no inbound sees this connection, so this proxy reports it as the destination too.
    const info = this.directTelemetry(source, d);
    const stats = d.kind === 'local' ? this.opts.metrics?.openTcpBothReporters(info, { ...info, reporter: 'destination', sourcePrincipal: source.identity }) : this.opts.metrics?.openTcp(info);
    // A same-node connection never crosses an inbound: this proxy authorized it, and re-decides it when policies change.
    let relayed: Relay | undefined;
    const untrack =
      d.kind === 'local'
        ? this.opts.connections?.register({
            direction: 'outbound',
            facts: { sourceIdentity: source.identity, sourceIp: fields.sourceIp as string | undefined, destination: { ip: d.ip, port: d.port }, destinationWorkload: d.destination },
            mode: 'raw',
            close: () => relayed?.reset(),
          })
        : undefined;
    // Same node: this proxy is the source's and the destination's, so both sides' bytes/s rules apply here.
    const limits =
      d.kind === 'local'
        ? this.opts.relayLimits?.([
            { direction: 'outbound', source, service: d.service, servicePort: d.servicePort },
            { direction: 'inbound', destination: d.destination, port: d.port, sourceIp: fields.sourceIp as string | undefined, sourceIdentity: source.identity },
          ])
        : undefined;
    relayed = this.startRelay(sock, upstream, stats, fields, d.kind === 'local', untrack, limits);
  }

  private connectHbone(sock: net.Socket, d: Extract<OutboundDecision, { kind: 'hbone' }>, source: Workload, sourceIp: string | undefined, fields: Record<string, unknown>): void {
    if (!this.opts.identities.get(source.identity) && !this.opts.identities.certificate) {
      this.refuse(sock, 'no_certificate', `no certificate for source identity ${source.identity}`, fields);
      return;
    }
    const headers: Record<string, string> = {};
    if (sourceIp && sock.remotePort) headers['forwarded'] = `for="${formatAuthority(sourceIp, sock.remotePort)}"`;
    // The source workload and the service it dialled travel with the stream: both reporters name the same service.
    const baggage = baggageHeader(sourceBaggage(source, serviceInfo(d.service, this.opts.state.trustDomain)?.host, DEFAULT_CLUSTER));
    if (baggage) headers['baggage'] = baggage;
    // A DestinationRule connect timeout bounds the whole open (session, CONNECT, the remote agent's connect to the pod).
    const limitMs = d.pool?.connectTimeoutMs;
    let timedOut = false;
    const timer =
      limitMs === undefined
        ? undefined
        : setTimeout(() => {
            timedOut = true;
            if (!sock.destroyed)
              this.refuse(
                sock,
                'upstream_connect_failed',
                `connect timeout: no connection to ${d.authority} via ${formatAuthority(d.nodeAddr.host, d.nodeAddr.port)} within ${limitMs} ms (DestinationRule connectTimeout)`,
                { ...fields, peerNode: formatAuthority(d.nodeAddr.host, d.nodeAddr.port) },
              );
          }, limitMs);
    timer?.unref();
    // TrafficShaping relay QoS (fair-share flow, class, weight, DSCP, bytes/s) for the native engine.
    const qos = this.opts.shaping?.streamQos({ direction: 'outbound', source, service: d.service, servicePort: d.servicePort }) ?? { flow: source.uid };
    const req: HboneOpenRequest = { sourceId: source.identity, node: d.nodeAddr, expectedServerId: d.nodeId, authority: d.authority, headers, ...(qos.dscp !== undefined ? { dscp: qos.dscp } : {}) };
    // The native engine takes the app's socket itself (no byte through JavaScript); else the stream is a Duplex.
    const hbone = this.opts.hbone;
    const native = hbone.openStream && hbone.relay && canSplice(sock) ? hbone : undefined;
    const opening: Promise<Duplex | number> = native ? native.openStream!(req) : hbone.open(req);
    opening.then(
      (stream) => {
        clearTimeout(timer);
        if (sock.destroyed || timedOut) {
          if (typeof stream === 'number') hbone.abandon?.(stream);
          else stream.destroy();
          return;
        }
        const stats = this.opts.metrics?.openTcp({
          reporter: 'source',
          source,
          destination: d.destination,
          destinationPrincipal: d.destination.identity,
          service: serviceInfo(d.service, this.opts.state.trustDomain),
          mtls: true,
          sourceAddress: sourceIp,
          destinationAddress: d.authority,
        });
        const relayFields = { ...fields, peerNode: formatAuthority(d.nodeAddr.host, d.nodeAddr.port) };
        if (typeof stream === 'number') this.trackRelay(native!.relay!(stream, sock, stats, qos), stats, relayFields);
        else this.startRelay(sock, stream, stats, relayFields, false, undefined, this.opts.relayLimits?.([{ direction: 'outbound', source, service: d.service, servicePort: d.servicePort }]));
      },
      (err: unknown) => {
        clearTimeout(timer);
        if (sock.destroyed || timedOut) return;
        const e = err as SmeshError;
        this.refuse(sock, e.code === 'SMESH_ERR_HBONE' ? 'hbone_error' : 'upstream_connect_failed', e.message, { ...fields, code: e.code });
      },
    );
  }
}
