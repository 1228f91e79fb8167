// Istio sidecar mutual TLS (TunnelProtocol LEGACY_ISTIO_MTLS): TLS to <pod IP>:<port> as a sidecar client would open it — source certificate, ALPN, TCP metadata exchange — accepted only with the destination workload's SPIFFE id.
import * as tls from 'node:tls';
import { Writer } from 'protobufjs';
import { SmeshError } from '../../core/errors';
import { spiffeIdFromSubjectAltName, TrustDomains, trustDomainOf } from '../../core/identity/spiffe';
import type { Workload } from '../../core/model/types';
import { CLUSTER_ID } from '../../core/xds/contract';
import { dial } from './dial';
import { formatAuthority, type HostPort, type IdentityProvider } from './types';

/**
 * What an Istio sidecar's outbound offers to an in-mesh (ISTIO_MUTUAL) upstream with TCP metadata exchange on (istiod
 * util.ALPNInMeshWithMxc). The sidecar's inbound picks its mTLS TCP filter chain by these names and answers
 * `istio-peer-exchange` (its server list is istio-peer-exchange, h2, http/1.1), which commits both ends to the metadata
 * exchange below before any application byte.
 */
export const ISTIO_SIDECAR_ALPN: readonly string[] = ['istio-peer-exchange', 'istio'];
export const METADATA_EXCHANGE_ALPN = 'istio-peer-exchange';
/** istio/proxy metadata_exchange: every exchange header starts with this, big-endian, then a big-endian length. */
export const METADATA_EXCHANGE_MAGIC = 0x3d230467;
/** Keys of the exchanged google.protobuf.Struct (istio/proxy ExchangeMetadataHeader / ExchangeMetadataHeaderId). */
export const PEER_METADATA_KEY = 'x-envoy-peer-metadata';
export const PEER_METADATA_ID_KEY = 'x-envoy-peer-metadata-id';
const STRUCT_TYPE_URL = 'type.googleapis.com/google.protobuf.Struct';
/** A peer header larger than this is not Istio's (node metadata is a few hundred bytes): the connection is refused. */
const MAX_PEER_METADATA_BYTES = 64 * 1024;

/** Why an origination failed (the `reason` field of its log line). */
export type LegacyMtlsFailure = 'connect' | 'timeout' | 'tls' | 'bad_chain' | 'no_spiffe_id' | 'wrong_identity' | 'foreign_trust_domain' | 'metadata_exchange';

export class LegacyMtlsError extends SmeshError {
  constructor(
    readonly reason: LegacyMtlsFailure,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(reason === 'connect' || reason === 'timeout' ? 'SMESH_ERR_CONNECT' : 'SMESH_ERR_TLS', message, options);
  }
}

export interface LegacyMtlsRequest {
  /** The source workload: its certificate is presented and its metadata exchanged. */
  readonly source: Workload;
  /** `<destination pod IP>:<target port>`: the sidecar listens on the workload's own ports. */
  readonly address: HostPort;
  /** The URI SAN the sidecar's certificate must carry (the destination workload's identity). */
  readonly expectedServerId: string;
  /** SNI as a sidecar sends it for a service (`outbound_.<port>_._.<host>`); absent: none. */
  readonly sni?: string;
  /** Deadline for TCP, TLS and the metadata exchange together. */
  readonly timeoutMs: number;
}

export interface LegacyMtlsOptions {
  readonly identities: IdentityProvider;
  /** Trust domains accepted besides the expected identity's (MeshConfig trustDomainAliases): a list, or asked per connection. */
  readonly trustDomainAliases?: readonly string[] | (() => readonly string[]);
  /** Cluster id in the exchanged metadata (CLUSTER_ID). */
  readonly clusterId?: string;
}

/** SNI an Istio sidecar sends to a service's endpoint (istiod BuildDNSSrvSubsetKey, no subset). */
export function sidecarSni(servicePort: number, serviceHost: string): string {
  return `outbound_.${servicePort}_._.${serviceHost}`;
}

// ---- metadata exchange (istio/proxy source/extensions/filters/network/metadata_exchange) ----

/** A google.protobuf.Value of this subset: a string or a Struct. */
type StructValue = string | { readonly [key: string]: StructValue };

function writeValue(w: Writer, v: StructValue): void {
  if (typeof v === 'string') w.uint32((3 << 3) | 2).string(v);
  else {
    w.uint32((5 << 3) | 2).fork();
    writeStructFields(w, v);
    w.ldelim();
  }
}

/** Struct.fields (map<string, Value> = 1), keys sorted as a deterministic serializer writes them. */
function writeStructFields(w: Writer, s: { readonly [key: string]: StructValue }): void {
  for (const key of Object.keys(s).sort()) {
    w.uint32((1 << 3) | 2).fork();
    w.uint32((1 << 3) | 2).string(key);
    w.uint32((2 << 3) | 2).fork();
    writeValue(w, s[key]!);
    w.ldelim();
    w.ldelim();
  }
}

/** The node metadata a sidecar would send for `source` (the fields istio/proxy reads into its peer node info). */
export function peerMetadata(source: Workload, clusterId: string): { readonly [key: string]: StructValue } {
  const labels: Record<string, string> = { ...source.labels };
  labels['service.istio.io/canonical-name'] ??= source.workloadName;
  return {
    NAME: source.name,
    NAMESPACE: source.namespace,
    WORKLOAD_NAME: source.workloadName,
    CLUSTER_ID: clusterId,
    SERVICE_ACCOUNT: source.serviceAccount,
    LABELS: labels,
  };
}

/** magic, length, google.protobuf.Any{Struct{x-envoy-peer-metadata: <node>, x-envoy-peer-metadata-id: <id>}}. */
export function encodeMetadataExchange(source: Workload, clusterId: string): Buffer {
  const struct = Writer.create();
  writeStructFields(struct, {
    [PEER_METADATA_KEY]: peerMetadata(source, clusterId),
    [PEER_METADATA_ID_KEY]: `sidecar~${source.ip}~${source.name}.${source.namespace}~${source.namespace}.svc.cluster.local`,
  });
  const any = Writer.create();
  any.uint32((1 << 3) | 2).string(STRUCT_TYPE_URL);
  any.uint32((2 << 3) | 2).bytes(struct.finish());
  const body = any.finish();
  const out = Buffer.allocUnsafe(8 + body.length);
  out.writeUInt32BE(METADATA_EXCHANGE_MAGIC, 0);
  out.writeUInt32BE(body.length, 4);
  out.set(body, 8);
  return out;
}

/** Exactly `n` bytes from a paused socket (null: it ended first). */
function readExactly(sock: tls.TLSSocket, n: number): Promise<Buffer | null> {
  return new Promise((resolve, reject) => {
    const done = (err: Error | null, value: Buffer | null) => {
      sock.off('readable', tryRead);
      sock.off('end', onEnd);
      sock.off('close', onEnd);
      sock.off('error', onError);
      if (err) reject(err);
      else resolve(value);
    };
    const tryRead = () => {
      const b = sock.read(n) as Buffer | null;
      if (b !== null) done(null, b);
    };
    const onEnd = () => {
      const rest = sock.read() as Buffer | null;
      if (rest) sock.unshift(rest);
      done(null, null);
    };
    const onError = (err: Error) => done(err, null);
    sock.on('readable', tryRead);
    sock.once('end', onEnd);
    sock.once('close', onEnd);
    sock.once('error', onError);
    tryRead();
  });
}

/**
 * The sidecar's side of the exchange: its header comes first on the connection (written when our header reaches it);
 * it is read and dropped so the application sees only the server's own bytes. Anything else is left in place (a peer
 * that negotiated the ALPN without the filter: istio/proxy falls back the same way).
 */
async function stripPeerHeader(sock: tls.TLSSocket, where: string): Promise<void> {
  const head = await readExactly(sock, 8);
  if (head === null) return;
  if (head.readUInt32BE(0) !== METADATA_EXCHANGE_MAGIC) {
    sock.unshift(head);
    return;
  }
  const len = head.readUInt32BE(4);
  if (len > MAX_PEER_METADATA_BYTES) throw new LegacyMtlsError('metadata_exchange', `sidecar at ${where} sent a ${len}-byte metadata exchange header (more than ${MAX_PEER_METADATA_BYTES})`);
  if (len === 0) return;
  const body = await readExactly(sock, len);
  if (body === null) throw new LegacyMtlsError('metadata_exchange', `sidecar at ${where} closed the connection inside its metadata exchange header`);
}

// ---- origination ----

function tlsFailure(err: NodeJS.ErrnoException): LegacyMtlsFailure {
  const code = err.code ?? '';
  if (/CERT|SELF_SIGNED|UNABLE_TO|ISSUER/.test(code)) return 'bad_chain';
  return 'tls';
}

/** Opens sidecar mTLS connections; one TCP + TLS connection per proxied connection, as a sidecar's TCP proxy does. */
export class LegacyMtlsConnector {
  constructor(private readonly opts: LegacyMtlsOptions) {}

  /** Resolves with the secured socket, ready for application bytes (none read yet), or rejects with a LegacyMtlsError. */
  async connect(req: LegacyMtlsRequest): Promise<tls.TLSSocket> {
    const ids = this.opts.identities;
    const sourceId = req.source.identity;
    const cert = ids.get(sourceId) ?? (ids.certificate ? await ids.certificate(sourceId) : undefined);
    if (!cert) throw new SmeshError('SMESH_ERR_IDENTITY', `no certificate for source identity ${sourceId}`);
    const expected = req.expectedServerId;
    const where = `${formatAuthority(req.address.host, req.address.port)} (${expected})`;
    const aliases = this.opts.trustDomainAliases;
    const trustDomains = new TrustDomains(trustDomainOf(expected) ?? '', (typeof aliases === 'function' ? aliases() : aliases) ?? []);
    let identityFailure: LegacyMtlsError | undefined;
    // The TCP leg through the agent's dialer; the deadline below bounds it together with the handshake.
    const tcp = dial({ ip: req.address.host, port: req.address.port }, { allowHalfOpen: true, noDelay: true });
    const sock = tls.connect({
      socket: tcp,
      key: cert.keyPem,
      cert: cert.chainPem,
      ca: ids.trustBundlePem(),
      ALPNProtocols: [...ISTIO_SIDECAR_ALPN],
      // Envoy sidecars accept TLS 1.2 and 1.3 (Istio's default minimum is 1.2); 1.3 is preferred by the handshake.
      minVersion: 'TLSv1.2',
      maxVersion: 'TLSv1.3',
      servername: req.sni ?? '', // '' sends no SNI
      rejectUnauthorized: true,
      checkServerIdentity: (_host, peer) => {
        const got = spiffeIdFromSubjectAltName(peer.subjectaltname);
        if (got !== undefined && trustDomains.matches(got, expected)) return undefined;
        const foreign = got !== undefined && !trustDomains.accepts(got);
        const reason: LegacyMtlsFailure = foreign ? 'foreign_trust_domain' : got === undefined ? 'no_spiffe_id' : 'wrong_identity';
        const why = foreign ? ` (trust domain ${trustDomainOf(got)} is neither the mesh's nor an alias)` : '';
        identityFailure = new LegacyMtlsError(reason, `sidecar at ${formatAuthority(req.address.host, req.address.port)} presented SPIFFE id ${got ?? 'none'}${why}, expected ${expected}`);
        return identityFailure;
      },
    });
    // Errors after the handshake are the relay's to report; before it, the handshake promise's.
    tcp.on('error', () => undefined);
    sock.on('error', () => undefined);
    // Not paused: a socket without a 'data' listener keeps what arrives until the relay attaches one.
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new LegacyMtlsError('timeout', `no mutual TLS connection to sidecar at ${where} within ${req.timeoutMs} ms; is the pod running and port ${req.address.port} reachable?`)),
        req.timeoutMs,
      );
      timer.unref();
    });
    let tcpConnected = false;
    tcp.once('connect', () => (tcpConnected = true));
    const handshake = new Promise<void>((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException) => {
        if (identityFailure) reject(identityFailure);
        else if (!tcpConnected)
          reject(new LegacyMtlsError('connect', `cannot connect to sidecar at ${where}: ${err.code ?? err.message}; is the pod running and port ${req.address.port} reachable?`, { cause: err }));
        else
          reject(
            new LegacyMtlsError(tlsFailure(err), `mutual TLS handshake with sidecar at ${where} failed: ${err.message}; does it trust the mesh root, and is it an Istio sidecar?`, { cause: err }),
          );
      };
      const onClose = () => onError(Object.assign(new Error('connection closed during the handshake'), { code: 'ECONNRESET' }));
      tcp.once('error', onError);
      sock.once('error', onError);
      sock.once('close', onClose);
      sock.once('secureConnect', () => {
        tcp.off('error', onError);
        sock.off('error', onError);
        sock.off('close', onClose);
        resolve();
      });
    });
    try {
      await Promise.race([handshake, deadline]);
      if (sock.alpnProtocol === METADATA_EXCHANGE_ALPN) {
        sock.write(encodeMetadataExchange(req.source, this.opts.clusterId ?? CLUSTER_ID));
        await Promise.race([stripPeerHeader(sock, where), deadline]);
      }
      return sock;
    } catch (err) {
      sock.destroy();
      tcp.destroy();
      throw err;
    } finally {
      clearTimeout(timer);
    }
  }
}
