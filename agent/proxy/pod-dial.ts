// The inbound's one dialer to a local pod: a plain TCP connect for a client (HBONE stream or captured socket) that may go away meanwhile, bounded by a connect timeout, reported exactly once.
import * as net from 'node:net';
import type { IpPort } from './types';

export interface PodDialOptions {
  /** Source address of the connection (the node's capture address, which the kernel's STRICT check trusts). */
  readonly localAddress?: string;
  readonly timeoutMs: number;
  /** Sockets still connecting, for the owner's shutdown; the dial adds and removes its own. */
  readonly pending: Set<net.Socket>;
}

export interface PodDialOutcome {
  /** Connected while the client is still there: the caller relays. */
  connected(upstream: net.Socket): void;
  /** Not connected (refused, unreachable, timed out) while the client is still there: the caller answers it. */
  failed(): void;
}

/**
 * Connects to `dest` for `client`. If the client closes first the attempt is dropped silently (not a failure to count:
 * a reset client is not an unreachable pod); otherwise exactly one of `connected` / `failed` is called.
 */
export function dialPod(dest: IpPort, client: { once(event: 'close', l: () => void): unknown; off(event: 'close', l: () => void): unknown; readonly destroyed: boolean }, opts: PodDialOptions, outcome: PodDialOutcome): void {
  const upstream = net.connect({ host: dest.ip, port: dest.port, allowHalfOpen: true, noDelay: true, localAddress: opts.localAddress });
  opts.pending.add(upstream);
  const timer = setTimeout(() => upstream.destroy(new Error('connect timeout')), opts.timeoutMs);
  timer.unref();
  const abandon = (): void => {
    opts.pending.delete(upstream);
    upstream.destroy();
  };
  client.once('close', abandon);
  // Before connect, 'close' below reports the failure; after connect the caller's relay owns errors.
  upstream.on('error', () => undefined);
  upstream.once('close', () => {
    clearTimeout(timer);
    if (!opts.pending.delete(upstream)) return;
    client.off('close', abandon);
    outcome.failed();
  });
  upstream.once('connect', () => {
    clearTimeout(timer);
    opts.pending.delete(upstream);
    client.off('close', abandon);
    if (client.destroyed) {
      upstream.destroy();
      return;
    }
    outcome.connected(upstream);
  });
}
