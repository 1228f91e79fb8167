// The contract between TypeScript and the addon's native HBONE engine (native/hbone*.cc): TypeScript decides, the engine moves TLS 1.3 + HTTP/2 CONNECT bytes on its own threads.
//
// Ids: every CONNECT stream (outbound open or inbound request) has one engine-wide numeric id; inbound TLS
// connections have session ids from the same counter. Bytes are counted per stream from the engine's point of view:
// `sent` = bytes read from the attached fd and sent into the tunnel, `received` = bytes received from the tunnel and
// written to the fd.

/** Engine settings; `configure` applies them only before the first use (workers start lazily). */
export interface HboneEngineOptions {
  /** Worker threads, each with its own epoll, TLS and HTTP/2 sessions (default: one per core, 1..16). */
  readonly workers?: number;
  /** HTTP/2 stream receive window (default 4 MiB, as ztunnel). */
  readonly streamWindow?: number;
  /** HTTP/2 connection receive window (default 16 MiB). */
  readonly connectionWindow?: number;
  /** SETTINGS_MAX_CONCURRENT_STREAMS announced by inbound sessions; outbound opens another session past it (default 100). */
  readonly maxConcurrentStreams?: number;
  /** Outbound sessions carrying no stream for this long are closed (default 300 000 ms). */
  readonly idleTimeoutMs?: number;
  /** TCP connect + TLS + HTTP/2 handshake deadline, both directions; also the CONNECT response deadline outbound (default 10 000 ms). */
  readonly connectTimeoutMs?: number;
  /** Streams a peer may reset before their response, per session and 10 s, before GOAWAY ENHANCE_YOUR_CALM (default 100). */
  readonly maxEarlyResets?: number;
  /** A session that read nothing for this long gets a PING; unanswered by the next period it is closed (default 2 000 ms). */
  readonly livenessCheckMs?: number;
  /**
   * Relay scheduling inside each worker (default true): ready streams are served latency before normal before bulk,
   * and within a class by deficit round robin between source workloads (`HboneStreamQos.flow`) in proportion to their
   * weights. false: FIFO in the order epoll reports readiness (bytes/s limits still apply).
   */
  readonly fairShare?: boolean;
  /** Bytes a worker relays per loop turn before it polls again (16 KiB–16 MiB, default 256 KiB): a newly ready stream waits at most this. */
  readonly turnBytes?: number;
  /** Nice value of the worker threads, -20..19 (default: the process's); below the process's needs CAP_SYS_NICE. */
  readonly workerNice?: number;
}

/** A bytes/s limit shared by every stream naming the same `key` (and rate), on whichever worker. */
export interface HboneByteLimit {
  readonly key: string;
  readonly bytesPerSecond: number;
}

/** QoS attributes of an attached stream (TrafficShaping resolved by the agent). */
export interface HboneStreamQos {
  /** Source workload key the fair share is kept for (streams of one workload share its credit). */
  readonly flow: string;
  readonly priority?: 'latency' | 'normal' | 'bulk';
  /** 1-1000, default 100. */
  readonly weight?: number;
  /** DSCP 0-63 set on the attached socket (IP_TOS / IPV6_TCLASS). */
  readonly dscp?: number;
  /** Limit(s) on `sent` (fd → tunnel): over any of them the engine stops reading the socket until it refills; every one is charged. */
  readonly send?: HboneByteLimit | readonly HboneByteLimit[];
  /** Limit(s) on `received` (tunnel → fd): over any, the bytes wait in the engine and the stream's window is not returned. */
  readonly receive?: HboneByteLimit | readonly HboneByteLimit[];
}

/** What the engine's QoS holds now (admin /config_dump, metrics). */
export interface HboneQosState {
  readonly fairShare: boolean;
  readonly buckets: readonly {
    readonly key: string;
    readonly bytesPerSecond: number;
    readonly burst: number;
    /** Bytes that may move now. */
    readonly available: number;
    /** Bytes moved through the bucket in total. */
    readonly granted: number;
    /** Times a side paused on it. */
    readonly throttles: number;
    /** Bytes that moved only after a pause. */
    readonly delayedBytes: number;
    /** Engine clock from the bucket's creation to its last grant (ns). */
    readonly activeNs: number;
    /** Streams holding it now. */
    readonly holders: number;
  }[];
  readonly flows: readonly { readonly flow: string; readonly priority: 'latency' | 'normal' | 'bulk'; readonly weight: number; readonly sent: number; readonly received: number }[];
}

/** An outbound CONNECT to open on a pooled session (per sourceId, host:port, acceptServerIds[0]). */
export interface HboneOpenRequest {
  /** SPIFFE id whose certificate (setIdentity) the client presents. */
  readonly sourceId: string;
  /** Destination HBONE address (pod IP or node address, port 15008). */
  readonly host: string;
  readonly port: number;
  /** URI SANs the server certificate may carry (the expected id and its trust-domain alias spellings); anything else fails the open with kind 'identity'. */
  readonly acceptServerIds: readonly string[];
  /** CONNECT :authority, "ip:port" or "[v6]:port". */
  readonly authority: string;
  /** Extra request headers (lower-case names): forwarded, baggage, traceparent. */
  readonly headers?: readonly (readonly [string, string])[];
  /** DSCP 0-63 for the HBONE session's socket; sessions are pooled per DSCP value. */
  readonly dscp?: number;
}

/** Why an outbound open failed. `status`: the server answered the CONNECT with a non-200 status. */
export type HboneOpenFailure =
  | { readonly kind: 'status'; readonly status: number; readonly message: string }
  | { readonly kind: 'tls' | 'connect' | 'timeout' | 'protocol' | 'no_certificate' | 'closed'; readonly message: string }
  /** The server's certificate chains to the anchors but names another identity (`peerId` undefined: no SPIFFE URI SAN). */
  | { readonly kind: 'identity'; readonly message: string; readonly peerId?: string };

export type HboneOpenResult = { readonly ok: true; readonly stream: number } | ({ readonly ok: false } & HboneOpenFailure);

/** A CONNECT request received on an inbound session, waiting for respond() or attach()/attachPair(). */
export interface HboneStreamRequest {
  readonly stream: number;
  readonly session: number;
  /** The client certificate's SPIFFE URI SAN (the chain is already verified against the trust anchors); undefined when it has none. */
  readonly peerId?: string;
  readonly authority: string;
  /** Request headers other than pseudo-headers, lower-case names, in order. */
  readonly headers: readonly (readonly [string, string])[];
  /** The session's TCP addresses ("ip:port"; IPv6 unbracketed ip). */
  readonly localAddress: string;
  readonly localPort: number;
  readonly remoteAddress: string;
  readonly remotePort: number;
}

/** How a stream's relay ended. */
export interface HboneStreamResult {
  readonly sent: number;
  readonly received: number;
  /**
   * eof: both directions finished (FIN ⇄ END_STREAM); reset: the peer reset the stream (RST_STREAM) or the fd was
   * reset; error: a socket/TLS/HTTP/2 error ended it (its session died); aborted: abort() or engine stop.
   */
  readonly outcome: 'eof' | 'reset' | 'error' | 'aborted';
  /** Which side ended it for reset/error. A reset or error of the fd is sent as RST_STREAM CONNECT_ERROR (RFC 9113 §8.5, as the JS relay); abort() sends CANCEL. */
  readonly side?: 'tunnel' | 'fd';
  /** RST_STREAM / GOAWAY error code when the tunnel side reset. */
  readonly h2Code?: number;
  readonly errno?: number;
}

/** Session-level events the agent counts and logs (rate-limited). */
export type HboneSessionEvent =
  | {
      readonly type: 'handshake_failed';
      readonly direction: 'inbound' | 'outbound';
      /** Mirrors the agent's HboneHandshakeFailure reasons. */
      readonly reason: 'bad_certificate' | 'no_certificate' | 'not_tls' | 'tls_error' | 'timeout' | 'no_alpn_h2';
      readonly remote: string;
      readonly detail: string;
    }
  | {
      readonly type: 'session_closed';
      readonly direction: 'inbound' | 'outbound';
      readonly session: number;
      /** 'normal' for an orderly close or idle timeout; else what ended it. */
      readonly reason: 'normal' | 'idle' | 'protocol_error' | 'rapid_reset' | 'unresponsive' | 'peer_closed' | 'io_error' | 'rotated';
      readonly remote: string;
      readonly detail?: string;
    };

export interface HboneEngineStats {
  readonly sessions: { readonly inbound: number; readonly outbound: number };
  readonly streams: { readonly inbound: number; readonly outbound: number };
  /** Bytes buffered in the engine (TLS out, stream buffers), all workers. */
  readonly bufferedBytes: number;
}

/** Handlers the agent installs once; called on the JS thread, in batches. */
export interface HboneEngineHandlers {
  /** An inbound CONNECT: answer with respond(), attach() or attachPair(); unanswered streams are reset after connectTimeoutMs. */
  onStream(req: HboneStreamRequest): void;
  onSessionEvent?(ev: HboneSessionEvent): void;
}

export interface HboneEngine {
  /** Before the first use only. */
  configure(options: HboneEngineOptions): void;
  setHandlers(handlers: HboneEngineHandlers): void;
  /** Adds or replaces a certificate (PEM chain, leaf first) and key for `id`. Outbound sessions of `id` opened before are retired (their streams finish; new opens use the new certificate); inbound sessions keep going. */
  setIdentity(id: string, chainPem: string, keyPem: string): void;
  removeIdentity(id: string): void;
  /** Replaces the trust anchors (PEM roots) used to verify peers by every new handshake. */
  setTrustAnchors(pem: string): void;

  /** Outbound: resolves once the server answered 200 (then attach the stream) or with why not. Never rejects. */
  open(req: HboneOpenRequest): Promise<HboneOpenResult>;

  /** Inbound: the engine takes over a just-accepted TCP socket (it dups `fd`; the caller destroys its own socket without reading) and terminates TLS presenting `certId`'s certificate. Returns the session id. */
  serve(fd: number, certId: string): number;
  /**
   * Inbound: answers a stream request with a non-200 status and ends the stream (HEADERS with END_STREAM; the engine
   * drops what the client still sends and resets the stream if the client has not ended it within connectTimeoutMs).
   */
  respond(stream: number, status: number): void;

  /**
   * Binds a stream to a connected socket (dup'd; the caller destroys its own at once without reading or writing it):
   * the engine relays until both directions end. Inbound streams are answered 200 first. `pending`: bytes the caller
   * already read from the socket, sent into the tunnel first.
   */
  attach(stream: number, fd: number, pending?: Buffer, qos?: HboneStreamQos): Promise<HboneStreamResult>;
  /**
   * Like attach, over a new socketpair whose other end is returned for the caller (wrap with `new net.Socket({ fd })`).
   * Throws SMESH_ERR_HBONE when the stream is unknown or already over (no socket to hand out). A reset on the tunnel side
   * closes the engine's end: over AF_UNIX the caller sees EOF, not ECONNRESET — the result's outcome says 'reset'.
   */
  attachPair(stream: number, qos?: HboneStreamQos): { readonly fd: number; readonly done: Promise<HboneStreamResult> };
  /** Resets a stream (RST_STREAM CANCEL, attached socket reset); false if unknown or over. */
  abort(stream: number): boolean;
  /**
   * Graceful shutdown (agent drain): inbound sessions get GOAWAY NO_ERROR with the last stream they started (peers
   * open new streams elsewhere; streams in flight finish, then the session closes); pooled outbound sessions take
   * no new stream and close after their last.
   */
  drain(): void;
  /** Closes every session whose peer identity is not accepted anymore etc.: resets all streams and sessions (agent shutdown). */
  closeAll(): void;

  /** Live byte counts of attached streams, by id. */
  counters(): Map<number, { readonly sent: number; readonly received: number }>;
  stats(): HboneEngineStats;
  qosState(): HboneQosState;
  /**
   * Charges `bytes` that a relay outside the engine moved to the engine's bucket(s) of `limits` (shared with its
   * streams); returns the ms to wait before that relay reads again (0: go on). Absent on an addon without it.
   */
  chargeLimits?(limits: readonly HboneByteLimit[], bytes: number): number;
}
