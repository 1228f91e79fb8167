// Binds a server loudly: a bind failure becomes SMESH_ERR_BIND naming what, where and what to check; later errors are logged.
import type * as net from 'net';
import { SmeshError } from '../errors';
import type { Logger } from './logger';

export function listenOrFail(server: net.Server, host: string, port: number, what: string, hint: string, log: Logger): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException) =>
      reject(new SmeshError('SMESH_ERR_BIND', `cannot bind ${what} on ${host}:${port}: ${err.code ?? err.message} (${hint})`, { cause: err }));
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      server.on('error', (err) => log.error({ err: err.message }, `${what} error`));
      resolve();
    });
  });
}

/** A bound server's address as one string for logs ("ip:port", "[v6]:port", or a pipe path): log fields keep one type. */
export function boundAddress(server: Pick<net.Server, 'address'>): string {
  const a = server.address();
  if (a === null) return 'unbound';
  if (typeof a === 'string') return a;
  return a.family === 'IPv6' || a.address.includes(':') ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`;
}
