// One authenticated gRPC channel to `smesh control`: TLS verified against the mesh trust anchors, bearer token on every call, shared by ADS and the CA client.
import * as grpc from '@grpc/grpc-js';
import { isIP } from 'node:net';
import { checkServerIdentity, type PeerCertificate } from 'node:tls';
import { loadMeshProtos, type MeshProtos } from '../../proto';
import type { AggregatedDiscoveryServiceClient } from '../../proto/generated/envoy/service/discovery/v3/AggregatedDiscoveryService';
import type { IstioCertificateServiceClient } from '../../proto/generated/istio/v1/auth/IstioCertificateService';
import { decodeDeltaResponse } from './wire';

export interface ControlPlaneChannelOptions {
  /** `host:port` of `smesh control` (default port 15012). */
  readonly address: string;
  /**
   * PEM roots the control plane's certificate must chain to. Read again whenever a new channel is
   * made, so pass a function (e.g. `() => remoteCa.trustBundlePem()`) to follow root rotation.
   */
  readonly trustAnchorsPem: string | (() => string);
  /**
   * Bearer token sent as `authorization: Bearer <token>` on every call; a function is called per
   * call (so a rotated --token-file is picked up) and may be async.
   */
  readonly token: string | (() => string | Promise<string>);
  /**
   * SPIFFE id the control plane's certificate may carry as URI SAN (spiffe://<td>/smesh/control).
   * A certificate with this URI SAN is accepted whatever host name was dialled; otherwise the
   * usual DNS/IP SAN check against the dialled host applies.
   */
  readonly controlPlaneId?: string;
  /** Extra grpc-js channel options (keepalive, …). */
  readonly channelOptions?: grpc.ChannelOptions;
  readonly protos?: MeshProtos;
}

const DEFAULT_CHANNEL_OPTIONS: grpc.ChannelOptions = {
  // Notice a dead control plane within ~40 s even when no push is due.
  'grpc.keepalive_time_ms': 30_000,
  'grpc.keepalive_timeout_ms': 10_000,
  'grpc.keepalive_permit_without_calls': 1,
  'grpc.initial_reconnect_backoff_ms': 100,
  'grpc.max_reconnect_backoff_ms': 1_000, // the xDS client's own backoff paces retries; the channel only re-dials
  // Large meshes: a full Address push can exceed the 4 MiB default.
  'grpc.max_receive_message_length': 64 * 1024 * 1024,
  // HTTP/2 receive window (stream and connection): with the 64 KiB default the control plane can send only a quarter
  // of a 2,000-resource response ahead, then waits for WINDOW_UPDATEs that the agent sends only between the chunks it
  // is busy applying. 1 MiB keeps a few responses in flight during a full sync (bench/scale.ts).
  'grpc-node.flow_control_window': 1024 * 1024,
};

function uriSans(cert: PeerCertificate): string[] {
  const san = cert.subjectaltname ?? '';
  return san
    .split(', ')
    .filter((s) => s.startsWith('URI:'))
    .map((s) => s.slice(4));
}

/** The channel and its two typed clients; remade when the trust anchors change. */
export class ControlPlaneChannel {
  readonly address: string;
  private readonly protos: MeshProtos;
  private current?: { anchors: string; ads: AggregatedDiscoveryServiceClient; ca: IstioCertificateServiceClient };
  private closed = false;

  constructor(private readonly opts: ControlPlaneChannelOptions) {
    this.address = opts.address;
    this.protos = opts.protos ?? loadMeshProtos();
  }

  /** The delta ADS client on the current channel. */
  adsClient(): AggregatedDiscoveryServiceClient {
    return this.clients().ads;
  }

  /** The CreateCertificate client, on the same channel as ADS. */
  caClient(): IstioCertificateServiceClient {
    return this.clients().ca;
  }

  /** Closes the channel; calls in flight fail with CANCELLED/UNAVAILABLE. */
  close(): void {
    this.closed = true;
    this.current?.ads.close();
    this.current = undefined;
  }

  private anchorsPem(): string {
    const a = this.opts.trustAnchorsPem;
    return typeof a === 'function' ? a() : a;
  }

  private clients(): { ads: AggregatedDiscoveryServiceClient; ca: IstioCertificateServiceClient } {
    if (this.closed) throw new Error(`control plane channel to ${this.address} is closed`);
    const anchors = this.anchorsPem();
    if (this.current && this.current.anchors === anchors) return this.current;
    // New anchors: calls already running keep the old channel until they end; new ones use the new.
    const old = this.current;
    const AdsClient = fastAdsClient(this.protos);
    const CaClient = this.protos.grpc.istio.v1.auth.IstioCertificateService;
    const options: grpc.ChannelOptions = { ...DEFAULT_CHANNEL_OPTIONS, ...this.opts.channelOptions };
    // TLS SNI must not be an IP (RFC 6066; Node warns). Send a fixed name instead; the identity
    // check below still verifies the dialled IP (or the control plane's SPIFFE id).
    if (isIP(this.host()) !== 0 && options['grpc.ssl_target_name_override'] === undefined) options['grpc.ssl_target_name_override'] = 'smesh-control';
    const ads = new AdsClient(this.address, this.credentials(anchors), options);
    const ca = new CaClient(this.address, grpc.credentials.createInsecure(), { channelOverride: ads.getChannel() });
    this.current = { anchors, ads, ca };
    if (old) setTimeout(() => old.ads.close(), 60_000).unref();
    return this.current;
  }

  /** Host part of `address` (brackets of an IPv6 literal removed). */
  private host(): string {
    const a = this.address.replace(/^dns:(\/\/\/)?/, '');
    if (a.startsWith('[')) return a.slice(1, a.indexOf(']'));
    const colon = a.lastIndexOf(':');
    return colon > 0 && a.indexOf(':') === colon ? a.slice(0, colon) : a;
  }

  private credentials(anchorsPem: string): grpc.ChannelCredentials {
    const expectedId = this.opts.controlPlaneId;
    const tls = grpc.credentials.createSsl(Buffer.from(anchorsPem), null, null, {
      checkServerIdentity: (host, cert) => {
        if (expectedId && uriSans(cert).includes(expectedId)) return undefined;
        return checkServerIdentity(host === 'smesh-control' ? this.host() : host, cert);
      },
    });
    const token = this.opts.token;
    const bearer = grpc.credentials.createFromMetadataGenerator((_params, callback) => {
      Promise.resolve(typeof token === 'function' ? token() : token).then(
        (t) => {
          const md = new grpc.Metadata();
          md.set('authorization', `Bearer ${t.trim()}`);
          callback(null, md);
        },
        (err: unknown) => callback(err instanceof Error ? err : new Error(String(err))),
      );
    });
    return grpc.credentials.combineChannelCredentials(tls, bearer);
  }
}

const fastAdsClients = new WeakMap<MeshProtos, typeof grpc.Client>();

/**
 * The ADS client constructor with DeltaDiscoveryResponse decoded by agent/xds/wire.ts instead of protobufjs
 * decode + toObject: the stream's data events carry a WireDeltaResponse (the fields XdsClient reads).
 */
function fastAdsClient(protos: MeshProtos): new (address: string, credentials: grpc.ChannelCredentials, options?: grpc.ChannelOptions) => AggregatedDiscoveryServiceClient {
  let ctor = fastAdsClients.get(protos);
  if (!ctor) {
    const generic = protos.grpc.envoy.service.discovery.v3.AggregatedDiscoveryService;
    const service = { ...generic.service, DeltaAggregatedResources: { ...generic.service.DeltaAggregatedResources, responseDeserialize: decodeDeltaResponse } };
    ctor = grpc.makeGenericClientConstructor(service as unknown as grpc.ServiceDefinition, 'AggregatedDiscoveryService');
    fastAdsClients.set(protos, ctor);
  }
  return ctor as unknown as new (
    address: string,
    credentials: grpc.ChannelCredentials,
    options?: grpc.ChannelOptions,
  ) => AggregatedDiscoveryServiceClient;
}
