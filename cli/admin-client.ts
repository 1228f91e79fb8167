// Reads the local agent's admin port (127.0.0.1:15000) for the operator commands: GET with a timeout, errors that say what to check.
import * as http from 'node:http';
import { SmeshError } from '../core/errors';

export const DEFAULT_ADMIN = '127.0.0.1:15000';

export interface AdminTarget {
  readonly host: string;
  readonly port: number;
}

/** `HOST:PORT` (IPv6 as `[::1]:15000`) of the admin server. */
export function parseAdminAddress(text: string): AdminTarget {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(text);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port < 1 || port > 65535) throw new SmeshError('SMESH_ERR_CONFIG', `--admin ${JSON.stringify(text)}: expected HOST:PORT, e.g. ${DEFAULT_ADMIN}`);
  return { host: m[1] ?? m[2], port };
}

/** GET `path` from the admin server; non-200 and connection failures become SmeshError with the address in the message. */
export function adminGet(target: AdminTarget, path: string, timeoutMs = 5000): Promise<string> {
  const where = `${target.host.includes(':') ? `[${target.host}]` : target.host}:${target.port}`;
  return new Promise((resolve, reject) => {
    const req = http.get({ host: target.host, port: target.port, path, timeout: timeoutMs, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', (e) => reject(new SmeshError('SMESH_ERR_CONNECT', `agent admin ${where}${path}: ${e.message}`, { cause: e })));
      res.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        if (res.statusCode === 200) resolve(body);
        else reject(new SmeshError('SMESH_ERR_CONNECT', `agent admin ${where}${path} answered ${res.statusCode}: ${body.trim().slice(0, 200)}`));
      });
    });
    req.on('timeout', () => req.destroy(new Error(`no answer in ${timeoutMs} ms`)));
    req.on('error', (e: NodeJS.ErrnoException) => {
      const hint =
        e.code === 'ECONNREFUSED'
          ? " (is the agent running on this node? its admin server listens on 127.0.0.1 only: run smesh in the node's network namespace, e.g. kubectl exec into the agent pod)"
          : '';
      reject(new SmeshError('SMESH_ERR_CONNECT', `agent admin ${where}${path}: ${e.message}${hint}`, { cause: e }));
    });
  });
}

export async function adminJson<T>(target: AdminTarget, path: string, timeoutMs?: number): Promise<T> {
  const body = await adminGet(target, path, timeoutMs);
  try {
    return JSON.parse(body) as T;
  } catch (e) {
    throw new SmeshError('SMESH_ERR_CONNECT', `agent admin ${path}: not JSON (${(e as Error).message}); is ${target.host}:${target.port} a smesh agent?`, { cause: e });
  }
}
