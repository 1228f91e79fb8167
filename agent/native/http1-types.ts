// The contract between TypeScript and the addon's native HTTP/1.1 engine (native/http1*.cc): the engine parses and moves HTTP/1.1 requests and responses, TypeScript decides each request from its head.
//
// Ids: every client connection handed to serve() is a session; every request parsed on it has an engine-wide numeric
// id (same counter). Requests of a session are executed strictly in order (pipelining: at most maxPipelined parsed and
// unfinished); bodies never enter JavaScript. Byte counts are body bytes (not heads, not chunk framing).

/** Engine settings; `configure` applies them only before the first use (workers start lazily). */
export interface Http1EngineOptions {
  /** Worker threads, each with its own epoll, client sessions and upstream pools (default 1, 1..16). */
  readonly workers?: number;
  /** Request line + header fields + CRLFs; larger heads get 431 and the connection closes (default 65 536). */
  readonly maxHeadBytes?: number;
  /** Header fields per request; more get 431 (default 100). */
  readonly maxHeaders?: number;
  /** Request line length; longer gets 400 (default 8 192). */
  readonly maxRequestLine?: number;
  /** Parsed, unfinished requests per client connection; the engine stops reading past it (default 16). */
  readonly maxPipelined?: number;
  /** Bytes buffered per direction and connection before the engine stops reading that side (default 262 144). */
  readonly maxBufferBytes?: number;
  /** A denied or locally answered request's body is read and dropped up to this many bytes, so the connection stays usable; past it the connection closes (default 1 MiB). */
  readonly maxSkipBodyBytes?: number;
  /** Upstream TCP connect deadline (default 5 000 ms; a decision may override it). */
  readonly connectTimeoutMs?: number;
  /** Request fully sent → response head deadline (default 60 000 ms; a decision may override it). */
  readonly responseTimeoutMs?: number;
  /** A request with no decide() (or an upstream failure with no reply()) by then is answered 503 (504 after a timeout) by the engine (default 10 000 ms). */
  readonly decisionTimeoutMs?: number;
  /** First byte of a request head → its end; slower heads get 408 and the connection closes (default 10 000 ms). */
  readonly headerTimeoutMs?: number;
  /** A client connection with nothing in flight is closed after this (default 300 000 ms). */
  readonly clientIdleTimeoutMs?: number;
  /** A pooled upstream connection unused for this long is closed (default 60 000 ms). */
  readonly upstreamIdleTimeoutMs?: number;
  /** Idle upstream connections kept per target ip:port (default 64). */
  readonly maxIdlePerTarget?: number;
}

export type Http1BodyFraming = { readonly kind: 'none' } | { readonly kind: 'length'; readonly length: number } | { readonly kind: 'chunked' };

/** A parsed request head, waiting for decide(). */
export interface Http1Request {
  readonly id: number;
  readonly session: number;
  readonly method: string;
  /** The request target as received (origin-form path and query, absolute-form URL, authority-form for CONNECT, or `*`); not normalized. */
  readonly target: string;
  /** Authority of an absolute-form target, else the Host header ('' for an HTTP/1.0 request without Host). */
  readonly authority: string;
  readonly version: '1.0' | '1.1';
  /** Every header field in order, lower-case names, values trimmed. */
  readonly headers: readonly (readonly [string, string])[];
  readonly body: Http1BodyFraming;
  /**
   * Connection: upgrade with Upgrade, or CONNECT, or the HTTP/2 prior-knowledge preface (method `PRI`, target `*`, no
   * headers): answer with decide(kind 'takeover') (or deny); the engine reads nothing after it.
   */
  readonly upgrade: boolean;
  readonly expectContinue: boolean;
  /** False for Connection: close and HTTP/1.0 (the engine closes the connection after this request). */
  readonly keepAlive: boolean;
  /** The client socket's addresses ('' and 0 for a socketpair); further facts (original destination, identity) stay with the caller, keyed by session. */
  readonly localAddress: string;
  readonly localPort: number;
  readonly remoteAddress: string;
  readonly remotePort: number;
}

export type Http1Header = readonly [string, string];

/**
 * What to do with a request.
 * - deny: the engine answers `status` (200..599) with `headers` and `body` (content-length set by the engine); the
 *   connection stays usable when the request body could be dropped (maxSkipBodyBytes), else it closes.
 * - forward: to `host:port` (numeric address) on a pooled upstream HTTP/1.1 connection — or, with `pair` instead of
 *   host/port/sourceAddress, on connections that JavaScript carries: a new one is a socketpair whose other end comes
 *   to onUpstreamPair (pooled per `pair` key; Http1Engine.upstreamPairs says whether the addon has it); the engine re-serializes the
 *   head without hop-by-hop fields (Connection and the fields it names, Keep-Alive, TE, Upgrade, Expect,
 *   Proxy-*), applies `removeHeaders` then `setHeaders` (replacing every field of that name), rewrites the target to
 *   `path` when given, and re-frames the body (content-length or chunked). Expect: 100-continue is answered by the
 *   engine when the body starts to flow.
 * - takeover: Upgrade / CONNECT requests only: once earlier responses are written, the client socket leaves the
 *   engine (see Http1Engine.takeover).
 */
export type Http1Decision =
  | { readonly kind: 'deny'; readonly status: number; readonly headers?: readonly Http1Header[]; readonly body?: Buffer | string }
  | ({
      readonly kind: 'forward';
      readonly setHeaders?: readonly Http1Header[];
      readonly removeHeaders?: readonly string[];
      readonly path?: string;
      /** An upstream connection that carried this many requests is closed instead of pooled (0 or absent: unlimited). */
      readonly maxRequestsPerConnection?: number;
      readonly connectTimeoutMs?: number;
      readonly responseTimeoutMs?: number;
    } & (
      | {
          readonly host: string;
          readonly port: number;
          /** Numeric address of host's family to connect from (default: the kernel's choice); upstream connections are pooled per source. */
          readonly sourceAddress?: string;
        }
      | {
          /** Pool key of upstream connections carried by JavaScript (see onUpstreamPair); connectTimeoutMs bounds nothing then but the engine's first write turn. */
          readonly pair: string;
        }
    ))
  | { readonly kind: 'takeover' };

/** A new upstream connection of a `pair` decision: `fd` is JavaScript's end of the socketpair (the handler owns it and must close it). */
export interface Http1UpstreamPair {
  /** The request the connection is made for. */
  readonly id: number;
  readonly session: number;
  readonly key: string;
  readonly fd: number;
}

/**
 * connect_failed: the TCP connect failed or timed out; reset: the upstream closed or reset the connection before the
 * response ended; timeout: no response head within the response timeout; protocol: a malformed or unexpected response.
 */
export type Http1UpstreamFailureReason = 'connect_failed' | 'reset' | 'timeout' | 'protocol';

/** A forwarded request whose upstream failed before any response byte reached the client: answer it with reply() (e.g. 503; a retry belongs in TypeScript before that). */
export interface Http1UpstreamFailure {
  readonly id: number;
  readonly session: number;
  readonly reason: Http1UpstreamFailureReason;
  readonly detail: string;
  /** "ip:port". */
  readonly target: string;
  /** The request went out on a pooled connection (a stale pooled connection without a request body is retried once by the engine before this is reported). */
  readonly reused: boolean;
}

/** How one request ended (reported once per request that onRequest saw). */
export interface Http1Result {
  readonly id: number;
  readonly session: number;
  /** Status sent to the client (0 when none was). */
  readonly status: number;
  /** Body bytes forwarded upstream / sent to the client. */
  readonly requestBytes: number;
  readonly responseBytes: number;
  /** Request head parsed → response written to the client buffer (or the request ended), µs. */
  readonly durationUs: number;
  /** forwarded: the upstream's response; denied: a deny decision; replied: reply() after an upstream failure; aborted: the connection ended first. */
  readonly outcome: 'forwarded' | 'denied' | 'replied' | 'aborted';
  readonly failure?: Http1UpstreamFailureReason | 'client_closed' | 'closed';
  readonly detail?: string;
  readonly target?: string;
  readonly reused: boolean;
}

/** The client socket of a taken-over request: wrap it (`new net.Socket({ fd })`); `pending` holds the request head as received plus whatever followed it. */
export interface Http1Takeover {
  readonly fd: number;
  readonly pending: Buffer;
}

export interface Http1SessionClosed {
  readonly session: number;
  /**
   * eof: the client closed; connection_close: after a Connection: close / HTTP/1.0 exchange; bad_request,
   * header_too_large, header_timeout: the engine answered 400/431/408 and closed; reset: socket error; idle; takeover;
   * upstream_error: an upstream failed mid-response; client_closed: the client left mid-request; closed: closeAll().
   */
  readonly reason: string;
  readonly detail?: string;
  /** Requests parsed on the connection. */
  readonly requests: number;
  /** Bytes read from / written to the client socket (heads and chunk framing included; a takeover's pending bytes too). */
  readonly bytesReceived: number;
  readonly bytesSent: number;
}

export interface Http1EngineStats {
  readonly sessions: number;
  readonly requestsInFlight: number;
  readonly upstreams: { readonly open: number; readonly idle: number; readonly connects: number; readonly reuses: number };
  readonly requestsTotal: number;
  /** Requests answered 400/408/431/417/505 by the engine itself. */
  readonly badRequests: number;
  readonly bufferedBytes: number;
}

/** Handlers the agent installs once; called on the JS thread, in batches. */
export interface Http1EngineHandlers {
  /** Every parsed request: answer with decide() (unanswered requests get 503 after decisionTimeoutMs). */
  onRequest(req: Http1Request): void;
  /** Without it the facade replies 503 (504 after a timeout) itself. */
  onUpstreamFailure?(failure: Http1UpstreamFailure): void;
  onResult?(result: Http1Result): void;
  onSessionClosed?(ev: Http1SessionClosed): void;
  /** A `pair` decision needs a new upstream connection: carry `fd` (e.g. attach it to an HBONE stream), or close it (the request then fails as a reset). Without it the facade closes the fd. */
  onUpstreamPair?(pair: Http1UpstreamPair): void;
}

export interface Http1ServeOptions {
  readonly handlers?: Http1EngineHandlers;
  readonly maxHeadBytes?: number;
}

export interface Http1Engine {
  /** Before the first use only. */
  configure(options: Http1EngineOptions): void;
  setHandlers(handlers: Http1EngineHandlers): void;
  /** Whether forward decisions take `pair` (upstream connections carried by JavaScript); false for addons built before it. */
  readonly upstreamPairs: boolean;
  /**
   * The engine takes over a connected client socket (it dups `fd`; the caller destroys its own socket without reading:
   * accept with pauseOnConnect). Returns the session id. `options.handlers` receive the events of this session instead of
   * the ones of setHandlers (one engine serves several callers); `options.maxHeadBytes` overrides the engine's limit for
   * this session (capped at maxBufferBytes).
   */
  serve(fd: number, options?: Http1ServeOptions): number;
  /** False when the request is unknown or already over. Throws TypeError on a malformed decision (bad header name/value, non-numeric host, ...). */
  decide(request: number, decision: Http1Decision): boolean;
  /** Answers a request whose upstream failed (onUpstreamFailure); false when it is unknown or over. */
  reply(request: number, status: number, headers?: readonly Http1Header[], body?: Buffer | string): boolean;
  /** decide(kind 'takeover') and wait for the socket; undefined when the request ended first (connection closed, not an Upgrade/CONNECT request). */
  takeover(request: number): Promise<Http1Takeover | undefined>;
  /** Resets one client session (a policy change closed its connection); its in-flight requests end 'aborted', then onSessionClosed reports reason 'closed'. */
  closeSession(session: number): void;
  /** Closes every client session and upstream connection (agent shutdown). */
  closeAll(): void;
  stats(): Http1EngineStats;
}
