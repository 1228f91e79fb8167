// Prometheus metrics on a private registry: Istio's standard TCP metrics (names and labels) plus smesh_* operational ones.
import { Counter, Gauge, Histogram, Registry } from '../../core/telemetry/prom';
import { performance } from 'node:perf_hooks';
import type { Workload } from '../../core/model/types';
import { CLUSTER_ID } from '../../core/xds/contract';

/** Istio's TCP metric labels, in the set ztunnel reports. */
export const ISTIO_TCP_LABELS = [
  'reporter',
  'source_workload',
  'source_canonical_service',
  'source_canonical_revision',
  'source_workload_namespace',
  'source_principal',
  'source_app',
  'source_version',
  'source_cluster',
  'destination_service',
  'destination_service_namespace',
  'destination_service_name',
  'destination_workload',
  'destination_canonical_service',
  'destination_canonical_revision',
  'destination_workload_namespace',
  'destination_principal',
  'destination_app',
  'destination_version',
  'destination_cluster',
  'request_protocol',
  'response_flags',
  'connection_security_policy',
] as const;
export type IstioTcpLabel = (typeof ISTIO_TCP_LABELS)[number];
export type IstioTcpLabels = Record<IstioTcpLabel, string>;

/** Istio's HTTP request labels: the TCP set plus response code and gRPC status (values bounded: codes, not free text). */
export const ISTIO_HTTP_LABELS = [...ISTIO_TCP_LABELS, 'response_code', 'grpc_response_status'] as const;
export type IstioHttpLabel = (typeof ISTIO_HTTP_LABELS)[number];
export type IstioHttpLabels = Record<IstioHttpLabel, string>;

/** Istio's request/response size buckets (bytes): powers of ten up to 10 MB. */
export const ISTIO_SIZE_BUCKETS_BYTES = [1, 10, 100, 1000, 10000, 100000, 1000000, 10000000];

/** Istio's request-duration buckets (ms). */
export const ISTIO_DURATION_BUCKETS_MS = [0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000];

const UNKNOWN = 'unknown';
/** The cluster label of this mesh's workloads: the local cluster's id, as in workload uids (core/xds/contract.ts). */
export const DEFAULT_CLUSTER = CLUSTER_ID;

export type RefusalReason =
  | 'no_original_destination'
  | 'loop'
  | 'unknown_source'
  | 'source_not_local'
  | 'unknown_destination'
  | 'no_endpoint'
  | 'unknown_node'
  | 'no_certificate'
  | 'denied'
  | 'upstream_connect_failed'
  | 'hbone_error'
  | 'bad_request'
  | 'not_local_workload'
  | 'unauthenticated'
  | 'shutting_down'
  /** A DestinationRule connectionPool.tcp.maxConnections reached for the service port (Envoy: upstream_cx_overflow). */
  | 'circuit_breaker'
  /** The HBONE peer's certificate names a trust domain that is neither the mesh's nor an alias. */
  | 'foreign_trust_domain'
  /** Over a TrafficShaping connectionRate or maxConnections (agent/qos/shaping.ts). */
  | 'rate_limited'
  /** The accept queue (agent/qos/accept-queue.ts): the source's queue was full, or the connection waited past the limit. */
  | 'overloaded';

/**
 * Why an HBONE connection was refused before it could carry a stream (smesh_hbone_handshake_failures_total):
 * not_tls (no TLS ClientHello), no_client_cert, bad_chain (not signed by a mesh root, expired, …), tls (any other
 * TLS failure, e.g. not TLS 1.3), timeout, aborted (the peer closed mid-handshake), no_alpn_h2, protocol (no valid HTTP/2 preface/SETTINGS), no_spiffe_id
 * (no single spiffe:// URI SAN), foreign_trust_domain, wrong_identity (outbound: not the expected server identity).
 */
export type HboneHandshakeFailure = 'not_tls' | 'no_client_cert' | 'bad_chain' | 'tls' | 'timeout' | 'aborted' | 'no_alpn_h2' | 'protocol' | 'no_spiffe_id' | 'foreign_trust_domain' | 'wrong_identity';

/**
 * Why the proxy closed an established HBONE session (smesh_hbone_session_errors_total): protocol_error (HTTP/2 frames
 * node:http2 refused), rapid_reset (too many streams reset before their response, GOAWAY ENHANCE_YOUR_CALM),
 * unresponsive (neither read progress nor a PING answer: a session HTTP/2 had already shut after a GOAWAY, or a
 * vanished peer).
 */
export type HboneSessionError = 'protocol_error' | 'rapid_reset' | 'unresponsive';

/** Body sizes of one request and its response, and gRPC message counts (length-prefixed frames) each way. */
export interface RequestSizes {
  readonly requestBytes: number;
  readonly responseBytes: number;
  readonly requestMessages?: number;
  readonly responseMessages?: number;
}

/** The kernel's inbound counters (native Datapath.inboundCounters). */
export interface InboundKernelCounters {
  readonly strictDropped: number;
  readonly plaintextAccepted: number;
  readonly plaintextCaptured?: number;
  readonly plaintextUncaptured?: number;
}

/** Inputs that label one TCP connection; anything unknown becomes "unknown". */
export interface TcpConnectionInfo {
  readonly reporter: 'source' | 'destination';
  readonly source?: Workload;
  readonly sourcePrincipal?: string;
  readonly destination?: Workload;
  readonly destinationPrincipal?: string;
  /** `name.namespace.svc.<domain>` style host, plus name/namespace. */
  readonly service?: { readonly name: string; readonly namespace: string; readonly host: string };
  readonly mtls: boolean;
  readonly cluster?: string;
  /** Istio/ztunnel response flags of the connection: DENY (authorization), CONNECT (upstream connect failure); default "-". */
  readonly responseFlags?: string;
  /** For the access log only (never a metric label): the client's and the server's `ip[:port]` as this proxy saw them. */
  readonly sourceAddress?: string;
  readonly destinationAddress?: string;
}

/** Where finished connections and requests are written, one info line each (pino child 'access'). */
export interface AccessLogSink {
  info(obj: object, msg: string): void;
}

/** Who the access line is about, in ztunnel's "connection complete" field names; each field keeps one type (strings, numbers). */
function accessFields(labels: IstioTcpLabels, info: TcpConnectionInfo | undefined): Record<string, string | number> {
  const out: Record<string, string | number> = { direction: labels.reporter === 'source' ? 'outbound' : 'inbound' };
  const put = (k: string, v: string | undefined): void => {
    if (v !== undefined && v !== UNKNOWN && v !== '') out[k] = v;
  };
  put('src.addr', info?.sourceAddress);
  put('src.workload', labels.source_workload);
  put('src.namespace', labels.source_workload_namespace);
  put('src.identity', labels.source_principal);
  put('dst.addr', info?.destinationAddress);
  put('dst.service', labels.destination_service);
  put('dst.workload', labels.destination_workload);
  put('dst.namespace', labels.destination_workload_namespace);
  put('dst.identity', labels.destination_principal);
  out['security'] = labels.connection_security_policy;
  out['response_flags'] = labels.response_flags;
  return out;
}

function canonicalService(w: Workload): string {
  return w.labels['service.istio.io/canonical-name'] ?? w.labels['app.kubernetes.io/name'] ?? w.labels['app'] ?? w.workloadName;
}
function canonicalRevision(w: Workload): string {
  return w.labels['service.istio.io/canonical-revision'] ?? w.labels['app.kubernetes.io/version'] ?? w.labels['version'] ?? 'latest';
}

export function istioTcpLabels(info: TcpConnectionInfo): IstioTcpLabels {
  const s = info.source;
  const d = info.destination;
  const cluster = info.cluster ?? DEFAULT_CLUSTER;
  return {
    reporter: info.reporter,
    source_workload: s?.workloadName ?? UNKNOWN,
    source_canonical_service: s ? canonicalService(s) : UNKNOWN,
    source_canonical_revision: s ? canonicalRevision(s) : UNKNOWN,
    source_workload_namespace: s?.namespace ?? UNKNOWN,
    source_principal: info.sourcePrincipal ?? s?.identity ?? UNKNOWN,
    source_app: s ? (s.labels['app'] ?? canonicalService(s)) : UNKNOWN,
    source_version: s ? canonicalRevision(s) : UNKNOWN,
    source_cluster: s ? cluster : UNKNOWN,
    destination_service: info.service?.host ?? d?.ip ?? UNKNOWN,
    destination_service_namespace: info.service?.namespace ?? d?.namespace ?? UNKNOWN,
    destination_service_name: info.service?.name ?? UNKNOWN,
    destination_workload: d?.workloadName ?? UNKNOWN,
    destination_canonical_service: d ? canonicalService(d) : UNKNOWN,
    destination_canonical_revision: d ? canonicalRevision(d) : UNKNOWN,
    destination_workload_namespace: d?.namespace ?? UNKNOWN,
    destination_principal: info.destinationPrincipal ?? d?.identity ?? UNKNOWN,
    destination_app: d ? (d.labels['app'] ?? canonicalService(d)) : UNKNOWN,
    destination_version: d ? canonicalRevision(d) : UNKNOWN,
    destination_cluster: d ? cluster : UNKNOWN,
    request_protocol: 'tcp',
    response_flags: info.responseFlags ?? '-',
    connection_security_policy: info.mtls ? 'mutual_tls' : 'none',
  };
}

/**
 * One connection counted by both reporters (same node: this proxy is the source and the destination side):
 * the relay adds bytes once, both sets of counters move.
 */
export class MirroredTcpStats {
  constructor(
    private readonly primary: TcpConnectionStats,
    private readonly mirror: TcpConnectionStats,
  ) {}

  get received(): number {
    return this.primary.received;
  }

  set received(v: number) {
    this.mirror.received += v - this.primary.received;
    this.primary.received = v;
  }

  get sent(): number {
    return this.primary.sent;
  }

  set sent(v: number) {
    this.mirror.sent += v - this.primary.sent;
    this.primary.sent = v;
  }

  close(): void {
    this.primary.close();
    this.mirror.close();
  }
}

/** What a relay updates and closes: one reporter's counters, or both reporters' for a same-node connection. */
export type ConnectionStats = TcpConnectionStats | MirroredTcpStats;

/**
 * One tracked TCP connection. The relay updates `received`/`sent` (plain numbers, no metric call
 * per chunk); deltas reach the counters on every scrape (`MeshMetrics.flush`) and on `close`.
 * Istio semantics: received = bytes from the client toward the server (request direction),
 * sent = bytes from the server back to the client (response direction).
 */
export class TcpConnectionStats {
  received = 0;
  sent = 0;
  private flushedReceived = 0;
  private flushedSent = 0;
  private closed = false;

  private readonly openedAt = performance.now();

  constructor(
    private readonly owner: MeshMetrics,
    readonly labels: IstioTcpLabels,
    private readonly info?: TcpConnectionInfo,
  ) {}

  /** Pushes pending byte deltas into the counters. */
  flush(): void {
    const r = this.received - this.flushedReceived;
    const s = this.sent - this.flushedSent;
    if (r > 0) this.owner.tcpReceivedBytes.inc(this.labels, r);
    if (s > 0) this.owner.tcpSentBytes.inc(this.labels, s);
    this.flushedReceived = this.received;
    this.flushedSent = this.sent;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.flush();
    this.owner.tcpClosed.inc(this.labels);
    this.owner.forget(this);
    this.owner.accessLog?.info(
      { ...accessFields(this.labels, this.info), bytes_recv: this.received, bytes_sent: this.sent, duration_ms: Math.round(performance.now() - this.openedAt) },
      'connection complete',
    );
  }
}

export interface CertificateExpiry {
  readonly spiffeId: string;
  readonly notAfter: Date;
}

/** All agent metrics, on a registry of their own (never prom-client's global one). */
export class MeshMetrics {
  readonly registry = new Registry();
  readonly tcpOpened: Counter<IstioTcpLabel>;
  readonly tcpClosed: Counter<IstioTcpLabel>;
  readonly tcpSentBytes: Counter<IstioTcpLabel>;
  readonly tcpReceivedBytes: Counter<IstioTcpLabel>;
  readonly redirected: Counter<'direction'>;
  readonly refused: Counter<'direction' | 'reason'>;
  readonly hboneStreams: Counter<'direction' | 'result'>;
  readonly hboneActiveStreams: Gauge<'direction'>;
  readonly hboneSessions: Gauge<'direction'>;
  /** 1 for the data plane moving HBONE bytes: native (the addon's engine) or js. */
  readonly dataplane: Gauge<'dataplane'>;
  /** Outbound HBONE connects tried again (reason refused: the destination's agent restarting). */
  readonly hboneConnectRetries: Counter<'reason'>;
  readonly certificateExpiry: Gauge<'identity'>;
  readonly xdsConnected: Gauge;
  readonly xdsResponses: Counter<'type' | 'result'>;
  readonly xdsDisconnects: Counter;
  /** Authorization denials: reason deny_policy (a DENY matched) | no_allow_match; policy `<ns>/<name>` or "none". */
  readonly policyDenials: Counter<'reason' | 'policy'>;
  /** Open connections closed after a policy change: reason policy_denied | l7_inspection (raw tunnel on a port that gained request-level rules). */
  readonly policyConnectionsClosed: Counter<'direction' | 'reason'>;
  readonly requests: Counter<IstioHttpLabel>;
  readonly requestDuration: Histogram<IstioHttpLabel>;
  readonly requestBytes: Histogram<IstioHttpLabel>;
  readonly responseBytes: Histogram<IstioHttpLabel>;
  /** gRPC messages per direction (Istio's istio_request_messages_total / istio_response_messages_total). */
  readonly requestMessages: Counter<IstioHttpLabel>;
  readonly responseMessages: Counter<IstioHttpLabel>;
  /** Requests failed fast by a circuit breaker: reason max_pending_requests (over maxConnections and the pending queue) | max_requests | max_retries | retry_budget. */
  readonly circuitBreakerTrips: Counter<'destination_service' | 'reason'>;
  /** Connections and requests limited by a TrafficShaping rule (agent/qos/shaping.ts): reason connection_rate | max_connections | request_rate | queued (admitted after a wait). */
  readonly rateLimited: Counter<'direction' | 'source_workload' | 'destination_service' | 'reason'>;
  readonly rateLimitedBytes: Counter<'direction' | 'source_workload' | 'destination_service' | 'reason'>;
  readonly outlierEjections: Counter<'destination_service'>;
  /** Malformed HTTP from a client or an upstream, by side and kind. */
  readonly httpProtocolErrors: Counter<'direction' | 'side' | 'reason'>;
  /** HBONE connections refused at the TLS / HTTP/2 handshake or for their certificate's identity, by reason (HboneHandshakeFailure). */
  readonly hboneHandshakeFailures: Counter<'direction' | 'reason'>;
  /** Established HBONE sessions the proxy closed for misbehaviour, by reason (HboneSessionError). */
  readonly hboneSessionErrors: Counter<'direction' | 'reason'>;
  private readonly live = new Set<TcpConnectionStats>();
  private readonly scrapeHooks: Array<() => void> = [];
  /** Connections refused in the kernel at connect() (connect-time deny), by source workload. */
  readonly connectDenials: Counter<'source_workload' | 'source_workload_namespace'>;
  /** One info line per finished connection and request (ztunnel's "connection complete"); unset = no access log. */
  accessLog?: AccessLogSink;
  /**
   * Also one line per HTTP request (Envoy's access log; off by default, as in Istio, where it costs about 40 % of
   * the HTTP path's requests/s in bench/run.ts): connections are logged either way, as ztunnel does.
   */
  accessLogRequests = false;
  private certificateProvider: () => readonly CertificateExpiry[] = () => [];
  private inboundCounterProvider: () => InboundKernelCounters | undefined = () => undefined;

  constructor() {
    const registers = [this.registry];
    const labelNames = ISTIO_TCP_LABELS as unknown as IstioTcpLabel[];
    this.tcpOpened = new Counter({ name: 'istio_tcp_connections_opened_total', help: 'Total TCP connections opened', labelNames, registers });
    this.tcpClosed = new Counter({ name: 'istio_tcp_connections_closed_total', help: 'Total TCP connections closed', labelNames, registers });
    this.tcpSentBytes = new Counter({ name: 'istio_tcp_sent_bytes_total', help: 'Bytes sent in response (server to client) on TCP connections', labelNames, registers });
    this.tcpReceivedBytes = new Counter({ name: 'istio_tcp_received_bytes_total', help: 'Bytes received in request (client to server) on TCP connections', labelNames, registers });
    this.redirected = new Counter({ name: 'smesh_redirected_connections_total', help: 'Connections accepted by the proxy listeners', labelNames: ['direction'], registers });
    this.refused = new Counter({ name: 'smesh_refused_connections_total', help: 'Connections or streams refused by the proxy, by reason', labelNames: ['direction', 'reason'], registers });
    this.connectDenials = new Counter({
      name: 'smesh_connect_denied_total',
      help: 'Connections refused in the kernel at connect() by authorization policy (connect-time deny), one per connection attempt, by source workload',
      labelNames: ['source_workload', 'source_workload_namespace'],
      registers,
    });
    this.policyDenials = new Counter({
      name: 'smesh_policy_denials_total',
      help: 'Connections or requests denied by AuthorizationPolicy, by reason and policy',
      labelNames: ['reason', 'policy'],
      registers,
    });
    this.policyConnectionsClosed = new Counter({
      name: 'smesh_policy_connections_closed_total',
      help: 'Open connections closed because a changed AuthorizationPolicy denies them (policy_denied) or their port now needs per-request inspection (l7_inspection)',
      labelNames: ['direction', 'reason'],
      registers,
    });
    const httpLabels = ISTIO_HTTP_LABELS as unknown as IstioHttpLabel[];
    this.requests = new Counter({ name: 'istio_requests_total', help: 'Total HTTP/gRPC requests', labelNames: httpLabels, registers });
    this.requestDuration = new Histogram({
      name: 'istio_request_duration_milliseconds',
      help: 'HTTP/gRPC request duration in milliseconds',
      labelNames: httpLabels,
      buckets: ISTIO_DURATION_BUCKETS_MS,
      registers,
    });
    this.requestBytes = new Histogram({ name: 'istio_request_bytes', help: 'HTTP/gRPC request sizes in bytes (body)', labelNames: httpLabels, buckets: ISTIO_SIZE_BUCKETS_BYTES, registers });
    this.responseBytes = new Histogram({ name: 'istio_response_bytes', help: 'HTTP/gRPC response sizes in bytes (body)', labelNames: httpLabels, buckets: ISTIO_SIZE_BUCKETS_BYTES, registers });
    this.requestMessages = new Counter({ name: 'istio_request_messages_total', help: 'gRPC messages sent by clients', labelNames: httpLabels, registers });
    this.responseMessages = new Counter({ name: 'istio_response_messages_total', help: 'gRPC messages sent by servers', labelNames: httpLabels, registers });
    this.circuitBreakerTrips = new Counter({
      name: 'smesh_circuit_breaker_trips_total',
      help: 'Requests failed fast by a circuit-breaker threshold, by service and reason',
      labelNames: ['destination_service', 'reason'],
      registers,
    });
    this.rateLimited = new Counter({
      name: 'smesh_rate_limited_total',
      help: 'Connections and requests limited by a TrafficShaping rule, by direction, source workload, destination service and reason',
      labelNames: ['direction', 'source_workload', 'destination_service', 'reason'],
      registers,
    });
    this.rateLimitedBytes = new Counter({
      name: 'smesh_rate_limited_bytes_total',
      help: 'Bytes the native engine relayed only after waiting for a TrafficShaping bytesPerSecond bucket, by direction, source workload, destination service and reason (bytes_per_second_upload, bytes_per_second_download)',
      labelNames: ['direction', 'source_workload', 'destination_service', 'reason'],
      registers,
    });
    this.outlierEjections = new Counter({ name: 'smesh_outlier_ejections_total', help: 'Endpoints ejected by outlier detection, by service', labelNames: ['destination_service'], registers });
    this.httpProtocolErrors = new Counter({
      name: 'smesh_http_protocol_errors_total',
      help: 'Malformed HTTP seen by the proxy, by direction, side (client|upstream) and reason',
      labelNames: ['direction', 'side', 'reason'],
      registers,
    });
    this.hboneHandshakeFailures = new Counter({
      name: 'smesh_hbone_handshake_failures_total',
      help: 'HBONE connections refused at the handshake or for their certificate identity, by direction and reason',
      labelNames: ['direction', 'reason'],
      registers,
    });
    this.hboneSessionErrors = new Counter({
      name: 'smesh_hbone_session_errors_total',
      help: 'HBONE sessions closed by the proxy for an HTTP/2 protocol error, a reset flood or an unresponsive peer, by direction and reason',
      labelNames: ['direction', 'reason'],
      registers,
    });
    this.hboneStreams = new Counter({ name: 'smesh_hbone_streams_total', help: 'HBONE CONNECT streams by direction and result', labelNames: ['direction', 'result'], registers });
    this.hboneActiveStreams = new Gauge({ name: 'smesh_hbone_active_streams', help: 'HBONE streams currently open', labelNames: ['direction'], registers });
    this.hboneSessions = new Gauge({ name: 'smesh_hbone_sessions', help: 'HBONE HTTP/2 connections currently open', labelNames: ['direction'], registers });
    this.hboneConnectRetries = new Counter({
      name: 'smesh_hbone_connect_retries_total',
      help: 'Outbound HBONE connects tried again after the destination refused them (its agent restarting), by reason',
      labelNames: ['reason'],
      registers,
    });
    this.dataplane = new Gauge({
      name: 'smesh_dataplane_info',
      help: 'The data plane moving HBONE bytes (1): native = the addon engine, js = node:tls + node:http2',
      labelNames: ['dataplane'],
      registers,
    });
    const self = this;
    this.certificateExpiry = new Gauge({
      name: 'smesh_certificate_expiry_seconds',
      help: 'Seconds until each held certificate expires',
      labelNames: ['identity'],
      registers,
      collect() {
        this.reset();
        const now = Date.now();
        for (const c of self.certificateProvider()) this.set({ identity: c.spiffeId }, Math.round((c.notAfter.getTime() - now) / 1000));
      },
    });
    // Kernel counters (per-CPU map, summed at scrape): copied into counters when scraped.
    const kernelCounter = (name: string, help: string, pick: (c: InboundKernelCounters) => number): void => {
      new Counter({
        name,
        help,
        registers,
        collect() {
          const c = self.inboundCounterProvider();
          if (!c) return;
          this.reset();
          this.inc(pick(c));
        },
      });
    };
    kernelCounter('smesh_strict_dropped_total', 'Plaintext TCP SYNs to STRICT local pods dropped in the kernel (PeerAuthentication)', (c) => c.strictDropped);
    kernelCounter(
      'smesh_plaintext_inbound_total',
      'Plaintext TCP connections to PERMISSIVE local pods (SYNs seen in the kernel): captured into the proxy or passed to the app',
      (c) => c.plaintextAccepted,
    );
    kernelCounter(
      'smesh_plaintext_inbound_captured_total',
      'Plaintext TCP connections to PERMISSIVE local pods handed to the node proxy (in-pod sk_lookup) for AuthorizationPolicy',
      (c) => c.plaintextCaptured ?? 0,
    );
    kernelCounter(
      'smesh_plaintext_inbound_uncaptured_total',
      'Plaintext TCP connections to PERMISSIVE local pods that reached the app uncaptured (no capture listener for the pod yet, or the kernel refused it)',
      (c) => c.plaintextUncaptured ?? 0,
    );
    this.xdsConnected = new Gauge({ name: 'smesh_xds_connected', help: '1 while the xDS stream to the control plane is up', registers });
    this.xdsResponses = new Counter({ name: 'smesh_xds_responses_total', help: 'xDS responses by resource type and whether they were ACKed or NACKed', labelNames: ['type', 'result'], registers });
    this.xdsDisconnects = new Counter({ name: 'smesh_xds_disconnects_total', help: 'xDS streams lost (each is retried with backoff)', registers });
    for (const d of ['inbound', 'outbound']) {
      this.hboneActiveStreams.set({ direction: d }, 0);
      this.hboneSessions.set({ direction: d }, 0);
    }
  }

  /** Feeds the xDS client's events (agent/xds/client.ts XdsEvent) into the smesh_xds_* metrics. */
  recordXdsEvent(e: { readonly kind: string; readonly typeUrl?: string }): void {
    switch (e.kind) {
      case 'connected':
        this.xdsConnected.set(1);
        return;
      case 'disconnected':
        this.xdsConnected.set(0);
        this.xdsDisconnects.inc();
        return;
      case 'ack':
      case 'nack':
        this.xdsResponses.inc({ type: (e.typeUrl ?? '').slice((e.typeUrl ?? '').lastIndexOf('/') + 1), result: e.kind });
        return;
      default:
        return;
    }
  }

  /** Where certificate expiry comes from (IdentityManager.list). */
  setCertificateProvider(fn: () => readonly CertificateExpiry[]): void {
    this.certificateProvider = fn;
  }

  /** Where the kernel's inbound plaintext counters come from (Datapath.inboundCounters); undefined = none. */
  setInboundCounterProvider(fn: () => InboundKernelCounters | undefined): void {
    this.inboundCounterProvider = fn;
  }

  /** Counts a connection as opened and returns the handle the relay updates. */
  openTcp(info: TcpConnectionInfo): TcpConnectionStats {
    const stats = new TcpConnectionStats(this, istioTcpLabels(info), info);
    this.tcpOpened.inc(stats.labels);
    this.live.add(stats);
    return stats;
  }

  /**
   * `count` connections the kernel refused (they never reached a proxy): opened and closed at once with `responseFlags`,
   * and one access line for the batch (a flood of denials never becomes a flood of log lines).
   */
  recordKernelDenials(info: TcpConnectionInfo, responseFlags: string, count: number): void {
    const labels = istioTcpLabels({ ...info, responseFlags });
    this.tcpOpened.inc(labels, count);
    this.tcpClosed.inc(labels, count);
    this.accessLog?.info({ ...accessFields(labels, info), connections: count }, 'connections denied in the kernel');
  }

  /** Counts a same-node connection under both reporters (source and destination labels). */
  openTcpBothReporters(source: TcpConnectionInfo, destination: TcpConnectionInfo): MirroredTcpStats {
    return new MirroredTcpStats(this.openTcp(source), this.openTcp(destination));
  }

  /** A connection refused or failed before it carried bytes: opened and closed at once, with its response flags (DENY, CONNECT). */
  recordFailedTcp(info: TcpConnectionInfo, responseFlags: string): void {
    this.openTcp({ ...info, responseFlags }).close();
  }

  /**
   * Counts one finished HTTP request: istio_requests_total and istio_request_duration_milliseconds, plus
   * istio_request_bytes / istio_response_bytes and (gRPC) the message counts when the caller measured them.
   */
  recordRequest(
    info: TcpConnectionInfo,
    protocol: 'http' | 'grpc',
    responseCode: number,
    grpcStatus: string | undefined,
    durationMs: number,
    responseFlags = '-',
    sizes?: RequestSizes,
    request?: { readonly method: string; readonly path: string },
  ): void {
    const labels: IstioHttpLabels = {
      ...istioTcpLabels(info),
      request_protocol: protocol,
      response_flags: responseFlags,
      response_code: String(responseCode),
      grpc_response_status: grpcStatus ?? '',
    };
    this.requests.inc(labels);
    this.requestDuration.observe(labels, durationMs);
    if (this.accessLogRequests)
      this.accessLog?.info(
        {
          ...accessFields(labels, info),
          protocol,
          ...(request ? { method: request.method, path: request.path } : {}),
          response_code: responseCode,
          ...(grpcStatus !== undefined ? { grpc_status: grpcStatus } : {}),
          duration_ms: Math.round(durationMs),
          ...(sizes ? { bytes_recv: sizes.requestBytes, bytes_sent: sizes.responseBytes } : {}),
        },
        'request complete',
      );
    if (!sizes) return;
    this.requestBytes.observe(labels, sizes.requestBytes);
    this.responseBytes.observe(labels, sizes.responseBytes);
    if (protocol === 'grpc') {
      if (sizes.requestMessages) this.requestMessages.inc(labels, sizes.requestMessages);
      if (sizes.responseMessages) this.responseMessages.inc(labels, sizes.responseMessages);
    }
  }

  /** Moves byte counts of live connections into the counters (called before each scrape), then runs the scrape hooks. */
  flush(): void {
    for (const s of this.live) s.flush();
    for (const hook of this.scrapeHooks) {
      try {
        hook();
      } catch {
        // a hook whose source is gone (datapath closed at shutdown) reports nothing this time
      }
    }
  }

  /** Runs `hook` before every scrape (e.g. to copy kernel counters into metrics). */
  onScrape(hook: () => void): void {
    this.scrapeHooks.push(hook);
  }

  /** Prometheus text exposition, with live byte counts flushed first. */
  async text(): Promise<string> {
    this.flush();
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** @internal */
  forget(stats: TcpConnectionStats): void {
    this.live.delete(stats);
  }
}
