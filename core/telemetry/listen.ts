// Binds a server loudly: a bind failure becomes SMESH_ERR_BIND naming what, where and what to check; later errors are logged. A socket inherited from `smesh supervise` for that address is adopted instead of bound.
import type * as net from 'node:net';
import { SmeshError } from '../errors';
import type { Logger } from './logger';

/** Inherited listening sockets by "host:port": adopted by the server that would bind that address. */
const inherited = new Map<string, number>();

/**
 * Registers listening sockets this process inherited (fds held by `smesh supervise`): listenOrFail adopts the fd for
 * the same host:port instead of binding. Closing such a server closes this process's copy only; the supervisor's copy
 * keeps the socket listening, so connections queue in its backlog until an agent accepts again.
 */
export function adoptListeners(list: ReadonlyArray<{ readonly host: string; readonly port: number; readonly fd: number }>): void {
  for (const l of list) inherited.set(`${l.host}:${l.port}`, l.fd);
}

/** The inherited fd for host:port, if any (for logs and tests). */
export function inheritedFd(host: string, port: number): number | undefined {
  return inherited.get(`${host}:${port}`);
}

export function listenOrFail(server: net.Server, host: string, port: number, what: string, hint: string, log: Logger): Promise<void> {
  const fd = inherited.get(`${host}:${port}`);
  return new Promise<void>((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException) =>
      reject(
        fd === undefined
          ? new SmeshError('SMESH_ERR_BIND', `cannot bind ${what} on ${host}:${port}: ${err.code ?? err.message} (${hint})`, { cause: err })
          : new SmeshError(
              'SMESH_ERR_BIND',
              `cannot listen on inherited fd ${fd} for ${what} ${host}:${port}: ${err.code ?? err.message} (is it a TCP socket bound there? check the supervisor's LISTEN_FDNAMES)`,
              { cause: err },
            ),
      );
    server.once('error', onError);
    const listening = () => {
      server.off('error', onError);
      if (fd !== undefined) {
        // The fd is named by the supervisor: check it is the socket we think, not one of another address.
        const a = server.address();
        if (a === null || typeof a === 'string' || a.port !== port || (host !== '0.0.0.0' && a.address !== host)) {
          const actual = boundAddress(server);
          server.close();
          reject(new SmeshError('SMESH_ERR_BIND', `inherited fd ${fd} for ${what} is bound to ${actual}, expected ${host}:${port} (check the supervisor's LISTEN_FDNAMES)`));
          return;
        }
      }
      server.on('error', (err) => log.error({ err: err.message }, `${what} error`));
      resolve();
    };
    if (fd === undefined) server.listen(port, host, listening);
    else server.listen({ fd }, listening);
  });
}

/** A bound server's address as one string for logs ("ip:port", "[v6]:port", or a pipe path): log fields keep one type. */
export function boundAddress(server: Pick<net.Server, 'address'>): string {
  const a = server.address();
  if (a === null) return 'unbound';
  if (typeof a === 'string') return a;
  return a.family === 'IPv6' || a.address.includes(':') ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`;
}
