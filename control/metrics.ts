// Prometheus metrics of `smesh control` (xDS streams, pushes, NACKs, revoked streams, CA issuance, refusals and reloads, source errors) on a private registry.
import { Counter, Gauge, Registry } from '../core/telemetry/prom';

export type CaRefusalReason = 'not_on_node' | 'foreign_trust_domain' | 'not_a_mesh_identity' | 'unknown_identity';

export class ControlMetrics {
  readonly registry = new Registry();
  readonly xdsStreams: Gauge<'node'>;
  readonly xdsPushes: Counter<'type_url'>;
  readonly xdsNacks: Counter<'type_url'>;
  readonly xdsUnauthenticated: Counter;
  readonly xdsRevoked: Counter<'node'>;
  readonly tokenReloadErrors: Counter;
  readonly caReloads: Counter;
  readonly caReloadErrors: Counter<'file'>;
  readonly caTrustAnchors: Gauge;
  readonly caIssued: Counter<'kind'>;
  readonly caRefused: Counter<'reason'>;
  readonly caInvalid: Counter;
  readonly sourceErrors: Counter<'source'>;
  readonly sourceUpdates: Counter<'source'>;

  constructor() {
    const registers = [this.registry];
    this.xdsStreams = new Gauge({ name: 'smesh_xds_streams', help: 'Open delta ADS streams by node', labelNames: ['node'], registers });
    this.xdsPushes = new Counter({ name: 'smesh_xds_pushes_total', help: 'DeltaDiscoveryResponses sent, by type', labelNames: ['type_url'], registers });
    this.xdsNacks = new Counter({ name: 'smesh_xds_nacks_total', help: 'Responses rejected by agents (error_detail set), by type', labelNames: ['type_url'], registers });
    this.xdsUnauthenticated = new Counter({ name: 'smesh_control_unauthenticated_total', help: 'RPCs refused for a missing or unknown bearer token', registers });
    this.xdsRevoked = new Counter({
      name: 'smesh_xds_streams_revoked_total',
      help: 'Open delta ADS streams closed (UNAUTHENTICATED) because their bearer token was revoked, by node',
      labelNames: ['node'],
      registers,
    });
    this.tokenReloadErrors = new Counter({
      name: 'smesh_control_token_reload_errors_total',
      help: 'Changes of the --tokens file rejected (unreadable or invalid; the previous tokens stay in force)',
      registers,
    });
    this.caReloads = new Counter({ name: 'smesh_ca_reloads_total', help: 'Changes of --ca-dir applied without a restart (signing root or published trust anchors)', registers });
    this.caReloadErrors = new Counter({ name: 'smesh_ca_reload_errors_total', help: 'Changes of --ca-dir rejected (the previous roots stay in use), by file', labelNames: ['file'], registers });
    this.caTrustAnchors = new Gauge({ name: 'smesh_ca_trust_anchors', help: 'Trust anchors published to agents (2 or 3 during a root rotation)', registers });
    this.caIssued = new Counter({ name: 'smesh_ca_issued_total', help: 'Certificates issued, by identity kind', labelNames: ['kind'], registers });
    this.caRefused = new Counter({ name: 'smesh_ca_refused_total', help: 'Certificate requests refused (PERMISSION_DENIED), by reason', labelNames: ['reason'], registers });
    this.caInvalid = new Counter({ name: 'smesh_ca_invalid_requests_total', help: 'Certificate requests with an unusable CSR (INVALID_ARGUMENT)', registers });
    this.sourceErrors = new Counter({ name: 'smesh_control_source_errors_total', help: 'Rejected configuration changes or source failures', labelNames: ['source'], registers });
    this.sourceUpdates = new Counter({ name: 'smesh_control_source_updates_total', help: 'Snapshots accepted from the source', labelNames: ['source'], registers });
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }
}
