// Inbound plaintext (from outside the mesh) captured into the node proxy: AuthorizationPolicy with an empty principal, then relayed to the pod or parsed per request on HTTP ports.
import * as net from 'node:net';
import { type AcceptQueue, defaultAcceptClass } from '../qos/accept-queue';
import type { ConnectionFacts, TrafficShaper } from '../qos/shaping';
import type { StateView } from '../state/store';
import type { Workload } from '../../core/model/types';
import { silentLogger, type Logger } from '../../core/telemetry/logger';
import type { MeshMetrics, TcpConnectionInfo } from '../telemetry/metrics';
import { dialPod, sourceAddressFor, type SourceAddressFor } from './dial';
import { relay, type Relay, type RelayLimits } from './relay';
import type { ConnectionRegistry } from './connection-tracker';
import { formatAuthority, normalizeIp, serviceInfo, type Authorizer, type HttpTunnelServer, type IpPort } from './types';

export interface PlaintextInboundOptions {
  readonly state: StateView;
  readonly nodeName: string;
  readonly authorize: Authorizer;
  /** 'http' | 'grpc' for a local workload port proxied per request, undefined for TCP. */
  readonly httpProtocolOf: (workload: Workload | undefined, port: number) => 'http' | 'grpc' | undefined;
  /** Parses and authorizes every request of an HTTP port (the HBONE inbound's InboundHttp). */
  readonly httpTunnels?: HttpTunnelServer;
  /** Source address of the connection to the pod (the capture address, which the kernel lets through). */
  readonly upstreamSourceIp?: string;
  /**
   * Source address of the connection to an IPv6 pod (--capture-ip6, on the node's lo, marked a trusted source in the
   * kernel). Without one, IPv6 plaintext is refused: dialled from any other node address it would be captured again.
   */
  readonly upstreamSourceIp6?: string;
  readonly connectTimeoutMs?: number;
  /** Open TCP relays are decided again when policies change (closed when now denied). */
  readonly connections?: ConnectionRegistry;
  readonly metrics?: MeshMetrics;
  readonly logger?: Logger;
  /** The node's accept queue: a connection's decision and dial wait their turn by class and fair share. */
  readonly acceptQueue?: AcceptQueue;
  /** bytes/s limits (TrafficShaping inbound rules of the destination) of the relay, which runs in JavaScript. */
  readonly relayLimits?: (facts: readonly ConnectionFacts[]) => RelayLimits | undefined;
  /** The accept class of a connection (TrafficShaper.acceptClass); default: the source as its own flow, normal, weight 100. */
  readonly acceptClass?: TrafficShaper['acceptClass'];
}

/**
 * Istio's semantics for plaintext into a meshed pod (sidecar and ztunnel alike): the connection is
 * authorized with no principal and no namespace — ipBlocks/remoteIpBlocks by the client's address,
 * ports by the pod port — and on HTTP ports every request is authorized with its L7 attributes.
 * Telemetry: reporter destination, connection_security_policy "none".
 */
export class PlaintextInbound {
  private readonly log: Logger;
  private readonly relays = new Set<Relay>();
  private readonly pending = new Set<net.Socket>();
  private closing = false;

  /** Source address of connections to the pod, by its address's family. */
  private readonly sourceFor: SourceAddressFor;

  constructor(private readonly opts: PlaintextInboundOptions) {
    this.sourceFor = sourceAddressFor(opts.upstreamSourceIp, opts.upstreamSourceIp6);
    this.log = opts.logger ?? silentLogger();
  }

  /** Takes one accepted plaintext connection; its local address is the pod address and port the client dialled. */
  handle(client: net.Socket): void {
    client.on('error', (err) => this.log.debug({ err: err.message }, 'plaintext inbound client error'));
    const destIp = normalizeIp(client.localAddress ?? '') ?? client.localAddress;
    const sourceIp = normalizeIp(client.remoteAddress ?? '') ?? client.remoteAddress;
    const port = client.localPort;
    if (!destIp || !port || this.closing) {
      client.resetAndDestroy();
      return;
    }
    const dest: IpPort = { ip: destIp, port };
    const workload = this.opts.state.workloadByIp(destIp);
    if (!workload || workload.node !== this.opts.nodeName) {
      this.opts.metrics?.refused.inc({ direction: 'inbound', reason: 'not_local_workload' });
      this.log.info({ dest, sourceIp }, 'plaintext inbound refused: destination is not a local workload');
      client.resetAndDestroy();
      return;
    }
    const queue = this.opts.acceptQueue;
    if (!queue) return this.admit(client, dest, sourceIp, workload);
    const source = sourceIp ? this.opts.state.workloadByIp(sourceIp) : undefined;
    queue.submit(
      this.opts.acceptClass?.('inbound', source, sourceIp, workload) ?? defaultAcceptClass(source, sourceIp),
      () => this.admit(client, dest, sourceIp, workload),
      (_reason, detail) => {
        this.opts.metrics?.refused.inc({ direction: 'inbound', reason: 'overloaded' });
        this.log.info({ dest, sourceIp }, `plaintext inbound refused: ${detail}`);
        client.resetAndDestroy();
      },
      () => client.destroyed || this.closing,
    );
  }

  /** A connection's turn: its telemetry, the IPv6 source check, AuthorizationPolicy, then the relay or the HTTP path. */
  private admit(client: net.Socket, dest: IpPort, sourceIp: string | undefined, workload: Workload): void {
    const port = dest.port;
    const telemetry = this.telemetry(workload, sourceIp, port, client.remotePort);
    if (net.isIPv6(dest.ip) && this.opts.upstreamSourceIp6 === undefined) {
      this.opts.metrics?.recordFailedTcp(telemetry, 'CONNECT');
      this.opts.metrics?.refused.inc({ direction: 'inbound', reason: 'no_ipv6_source' });
      this.log.info({ dest, sourceIp }, 'plaintext inbound refused: IPv6 pod and no --capture-ip6 to connect to it from');
      client.resetAndDestroy();
      return;
    }
    const httpProtocol = this.opts.httpTunnels ? this.opts.httpProtocolOf(workload, port) : undefined;
    const verdict = this.opts.authorize({ sourceIdentity: '', sourceIp, destination: dest, destinationWorkload: workload, ...(httpProtocol ? { deferL7: true } : {}) });
    if (!verdict.allow) {
      // Counted in istio_tcp_connections_opened/closed with response_flags DENY, as ztunnel does, plus the policy denial counter.
      this.opts.metrics?.recordFailedTcp(telemetry, 'DENY');
      this.opts.metrics?.refused.inc({ direction: 'inbound', reason: 'denied' });
      client.resetAndDestroy();
      return;
    }
    if (httpProtocol && this.opts.httpTunnels) {
      const stats = this.opts.metrics?.openTcp(telemetry);
      const counts = stats ?? { received: 0, sent: 0 };
      void this.opts.httpTunnels
        .serve(client, { peer: '', sourceIp, destination: dest, workload, protocol: httpProtocol, telemetry: this.opts.metrics ? telemetry : undefined }, counts)
        .then((res) => {
          stats?.close();
          this.log.debug({ sourceIp, dest, version: res.version, requests: res.requests, denied: res.denied }, 'plaintext HTTP connection closed');
        });
      return;
    }
    this.relayTcp(client, dest, telemetry, sourceIp);
  }

  close(): void {
    this.closing = true;
    for (const r of this.relays) r.reset();
    for (const s of this.pending) s.destroy();
  }

  private telemetry(workload: Workload, sourceIp: string | undefined, port: number, sourcePort: number | undefined): TcpConnectionInfo {
    const services = this.opts.state.servicesOf(workload);
    const svc = services.find((s) => s.ports.some((p) => p.targetPort === port)) ?? services[0];
    const src = sourceIp ? this.opts.state.workloadByIp(sourceIp) : undefined;
    return {
      reporter: 'destination',
      source: src,
      destination: workload,
      service: serviceInfo(svc, this.opts.state.trustDomain),
      mtls: false,
      sourceAddress: sourceIp && sourcePort ? formatAuthority(sourceIp, sourcePort) : sourceIp,
      destinationAddress: formatAuthority(workload.ip, port),
    };
  }

  private relayTcp(client: net.Socket, dest: IpPort, telemetry: TcpConnectionInfo, sourceIp: string | undefined): void {
    const metrics = this.opts.metrics;
    client.pause();
    const localAddress = this.sourceFor(dest.ip);
    dialPod(
      dest,
      client,
      { localAddress, timeoutMs: this.opts.connectTimeoutMs ?? 10_000, pending: this.pending },
      {
        failed: () => {
          metrics?.refused.inc({ direction: 'inbound', reason: 'upstream_connect_failed' });
          metrics?.recordFailedTcp(telemetry, 'CONNECT');
          this.log.info({ dest, sourceIp: client.remoteAddress }, 'plaintext inbound: destination pod unreachable');
          client.resetAndDestroy();
        },
        connected: (upstream) => this.relayTo(client, upstream, dest, telemetry, sourceIp),
      },
    );
  }

  private relayTo(client: net.Socket, upstream: net.Socket, dest: IpPort, telemetry: TcpConnectionInfo, sourceIp: string | undefined): void {
    const stats = this.opts.metrics?.openTcp(telemetry);
    const limits = this.opts.relayLimits?.([{ direction: 'inbound', destination: telemetry.destination, port: dest.port, sourceIp }]);
    const r = relay(client, upstream, stats, limits);
    client.resume();
    this.relays.add(r);
    const untrack = this.opts.connections?.register({
      direction: 'inbound',
      facts: { sourceIdentity: '', sourceIp, destination: dest, destinationWorkload: telemetry.destination },
      mode: 'raw',
      close: () => r.reset(),
    });
    void r.done.then((res) => {
      untrack?.();
      this.relays.delete(r);
      stats?.close();
      this.log.debug({ dest, sourceIp: client.remoteAddress, received: res.aToB, sent: res.bToA, outcome: res.outcome }, 'plaintext inbound connection closed');
    });
  }
}
