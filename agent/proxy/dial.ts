// The agent's one plain-TCP dialer: every connect to a pod, a passthrough destination or a sidecar goes through dial(), which bounds it by a connect timeout, drops it when the requesting client goes away, keeps it in its owner's shutdown set while it connects and reports exactly one outcome.
import * as net from 'node:net';
import { SmeshError } from '../../core/errors';
import type { IpPort } from './types';

/** Why a dial did not connect. */
export type DialFailure =
  /** The destination answered with a reset (ECONNREFUSED): nothing listens on the port, or a kernel deny. */
  | 'refused'
  /** Any other error before the connection was up (EHOSTUNREACH, ENETUNREACH, EADDRNOTAVAIL, a reset, …). */
  | 'unreachable'
  /** No connection within the connect timeout (ours, or the kernel's SYN retries: ETIMEDOUT). */
  | 'timeout'
  /** The requesting client went away first; nothing to answer, and not a failure of the destination. */
  | 'aborted'
  /** The socket was destroyed by its owner before it connected (shutdown destroys the pending set). */
  | 'closed';

/** A dial that did not connect. `message` is the system error's own ("connect ECONNREFUSED 10.0.0.1:80") or names the timeout. */
export class DialError extends SmeshError {
  constructor(
    readonly reason: DialFailure,
    message: string,
    /** The system error code (ECONNREFUSED, EHOSTUNREACH, …) when the kernel reported one. */
    readonly osCode?: string,
    options?: { cause?: unknown },
  ) {
    super('SMESH_ERR_CONNECT', message, options);
    this.name = 'DialError';
  }
}

/** The requesting side of a dial: when it closes before the dial connected, the dial is dropped ('aborted'). */
export interface DialClient {
  once(event: 'close', listener: () => void): unknown;
  off(event: 'close', listener: () => void): unknown;
  readonly destroyed: boolean;
}

/** The sockets of an owner that are still connecting; its shutdown destroys them (the dial then reports 'closed'). */
export interface PendingSockets {
  add(socket: net.Socket): unknown;
  delete(socket: net.Socket): boolean;
}

/** Timers of a dial; tests pass a clock they advance by hand. */
export interface DialClock {
  setTimeout(fire: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

/** Real timers, unref'd: a dial in progress never keeps the process alive. */
const realClock: DialClock = {
  setTimeout(fire, ms) {
    const t = setTimeout(fire, ms);
    t.unref();
    return t;
  },
  clearTimeout(handle) {
    clearTimeout(handle as NodeJS.Timeout);
  },
};

export interface DialOptions {
  /** Source address (the node's capture address for pods, which the kernel's STRICT / plaintext checks trust). */
  readonly localAddress?: string;
  readonly noDelay?: boolean;
  readonly allowHalfOpen?: boolean;
  /** Connect timeout; without one the kernel's SYN retries bound the attempt. */
  readonly timeoutMs?: number;
  /** The client the connection is for: its close before the connect aborts the dial. */
  readonly client?: DialClient;
  /** The owner's set of connecting sockets: the dial adds its socket and removes it at the outcome. */
  readonly pending?: PendingSockets;
  readonly clock?: DialClock;
}

export interface DialOutcome {
  /** Connected while the client (if any) is still there: the socket is the caller's now. */
  connected(socket: net.Socket): void;
  /** Not connected; `error.reason` says why. Called after the socket is destroyed. */
  failed(error: DialError): void;
}

function failureOf(err: NodeJS.ErrnoException): DialFailure {
  if (err.code === 'ECONNREFUSED') return 'refused';
  if (err.code === 'ETIMEDOUT') return 'timeout';
  return 'unreachable';
}

/**
 * Starts a TCP connection to `target` and returns its socket at once (callers that must hand a socket over synchronously,
 * such as an HTTP/2 createConnection, or write ahead of the connect, use it as it is). If `outcome` is given, exactly one of
 * its callbacks is called. The socket always has an 'error' listener of the dialer's: errors before the outcome are the
 * outcome's; after it they are the caller's (its own listeners, or the 'close' they lead to) and never unhandled.
 */
export function dial(target: IpPort, opts: DialOptions = {}, outcome?: DialOutcome): net.Socket {
  const { client, pending } = opts;
  const clock = opts.clock ?? realClock;
  const socket = net.connect({
    host: target.ip,
    port: target.port,
    ...(opts.localAddress !== undefined ? { localAddress: opts.localAddress } : {}),
    ...(opts.noDelay !== undefined ? { noDelay: opts.noDelay } : {}),
    ...(opts.allowHalfOpen !== undefined ? { allowHalfOpen: opts.allowHalfOpen } : {}),
  });
  pending?.add(socket);
  let settled = false;
  let failure: DialError | undefined;
  const settle = (): boolean => {
    if (settled) return false;
    settled = true;
    if (timer !== undefined) clock.clearTimeout(timer);
    pending?.delete(socket);
    client?.off('close', onClientGone);
    return true;
  };
  const fail = (err: DialError): void => {
    if (failure === undefined) failure = err;
    socket.destroy();
  };
  const timer = opts.timeoutMs !== undefined ? clock.setTimeout(() => fail(new DialError('timeout', `connect timeout to ${target.ip}:${target.port}`)), opts.timeoutMs) : undefined;
  const onClientGone = (): void => fail(new DialError('aborted', `connect to ${target.ip}:${target.port} abandoned: the client went away`));
  client?.once('close', onClientGone);
  socket.on('error', (err: NodeJS.ErrnoException) => {
    if (!settled && failure === undefined) failure = new DialError(failureOf(err), err.message, err.code, { cause: err });
  });
  socket.once('close', () => {
    if (!settle()) return;
    outcome?.failed(failure ?? new DialError('closed', `connect to ${target.ip}:${target.port} closed by its owner before it was up`));
  });
  socket.once('connect', () => {
    if (failure !== undefined) return; // destroyed in this very tick: 'close' reports it
    if (client?.destroyed) {
      fail(new DialError('aborted', `connect to ${target.ip}:${target.port} abandoned: the client went away`));
      return;
    }
    settle();
    outcome?.connected(socket);
  });
  return socket;
}

/** dial() as a promise: resolves with the connected socket, rejects with a DialError. */
export function dialConnected(target: IpPort, opts: DialOptions = {}): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    dial(target, opts, { connected: resolve, failed: reject });
  });
}

export interface PodDialOptions {
  /** Source address of the connection (the node's capture address, which the kernel's STRICT check trusts). */
  readonly localAddress?: string;
  readonly timeoutMs: number;
  /** Sockets still connecting, for the owner's shutdown; the dial adds and removes its own. */
  readonly pending: PendingSockets;
  readonly clock?: DialClock;
}

export interface PodDialOutcome {
  /** Connected while the client is still there: the caller relays. */
  connected(upstream: net.Socket): void;
  /** Not connected (refused, unreachable, timed out, shut down) while the client is still there: the caller answers it. */
  failed(error: DialError): void;
}

/**
 * The inbound's dial to a local pod for `client` (an HBONE stream or a captured socket), half-open, no Nagle. If the
 * client closes first the attempt is dropped silently (not a failure to count: a reset client is not an unreachable pod);
 * otherwise exactly one of `connected` / `failed` is called.
 */
export function dialPod(dest: IpPort, client: DialClient, opts: PodDialOptions, outcome: PodDialOutcome): void {
  dial(
    dest,
    { localAddress: opts.localAddress, allowHalfOpen: true, noDelay: true, timeoutMs: opts.timeoutMs, client, pending: opts.pending, ...(opts.clock ? { clock: opts.clock } : {}) },
    {
      connected: outcome.connected,
      failed: (err) => {
        if (err.reason !== 'aborted') outcome.failed(err);
      },
    },
  );
}

/** The local address to dial a destination from: the node's capture address of the destination's family (none: the kernel picks). */
export type SourceAddressFor = (destinationIp: string) => string | undefined;

/** A SourceAddressFor over the IPv4 and IPv6 capture addresses (either may be absent). */
export function sourceAddressFor(ip4: string | undefined, ip6: string | undefined): SourceAddressFor {
  return (destinationIp) => (net.isIPv6(destinationIp) ? ip6 : ip4);
}
