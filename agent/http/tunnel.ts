// Raw byte plumbing for HTTP/1.1 Upgrade (WebSocket): response heads written by hand on a detached socket, and the two-way splice after 101.
import type * as http from 'node:http';
import type { Duplex } from 'node:stream';

/** Hop-by-hop headers never forwarded on an upgrade (Connection and Upgrade themselves are, they are the point). */
const UPGRADE_DROP = new Set(['keep-alive', 'proxy-connection', 'proxy-authenticate', 'proxy-authorization', 'te', 'trailer', 'transfer-encoding']);

/** The client's upgrade request headers as they go upstream. */
export function upgradeRequestHeaders(req: http.IncomingMessage): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [k, v] of Object.entries(req.headers)) if (v !== undefined && !UPGRADE_DROP.has(k)) out[k] = v;
  return out;
}

/** `HTTP/1.1 <code> <reason>` and the upstream's raw headers (names as sent), minus `drop`. */
export function responseHead(res: http.IncomingMessage, drop: ReadonlySet<string> = new Set(), extra: readonly string[] = []): string {
  let head = `HTTP/1.1 ${res.statusCode ?? 502} ${res.statusMessage ?? ''}\r\n`;
  const raw = res.rawHeaders;
  for (let i = 0; i + 1 < raw.length; i += 2) if (!drop.has(raw[i]!.toLowerCase())) head += `${raw[i]}: ${raw[i + 1]}\r\n`;
  for (const line of extra) head += `${line}\r\n`;
  return `${head}\r\n`;
}

/** A complete close-delimited text response for a socket no HTTP server writes to any more. */
export function rawReply(status: number, reason: string, message: string, headers: Readonly<Record<string, string>> = {}): string {
  const body = `${message}\n`;
  let head = `HTTP/1.1 ${status} ${reason}\r\ncontent-type: text/plain\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n`;
  for (const [k, v] of Object.entries(headers)) head += `${k}: ${v}\r\n`;
  return `${head}\r\n${body}`;
}

/**
 * Splices `a` and `b` both ways. An end on one side half-closes the other (FIN passes through, the
 * opposite direction keeps flowing); an error or a close on one destroys the other. `done` runs once,
 * when both are closed.
 */
export function splice(a: Duplex, b: Duplex, done: () => void): void {
  for (const s of [a, b]) (s as Duplex & { allowHalfOpen: boolean }).allowHalfOpen = true;
  let closed = 0;
  const onClose = (self: Duplex, other: Duplex) => () => {
    // Closed before both of its directions ended cleanly (reset, error): the other side goes too.
    if (!(self.readableEnded && self.writableFinished)) other.destroy();
    if (++closed === 2) done();
  };
  a.once('close', onClose(a, b));
  b.once('close', onClose(b, a));
  a.on('error', () => b.destroy());
  b.on('error', () => a.destroy());
  // A side that got FIN and has sent its own is done: close it (a net.Socket with allowHalfOpen does not by itself).
  for (const s of [a, b]) s.once('end', () => (s.writableFinished ? s.destroy() : s.once('finish', () => s.destroy())));
  a.pipe(b);
  b.pipe(a);
}
