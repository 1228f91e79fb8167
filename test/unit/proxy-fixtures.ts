// Shared fixtures for proxy unit tests: a temp mesh CA, identities, and TCP servers on 127.0.0.1 that clean up after themselves.
import { mkdtemp, rm } from 'node:fs/promises';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadOrCreateRootCa, type LocalCa } from '../../core/identity/local-ca';
import { IdentityManager } from '../../agent/identity/manager';
import type { Workload } from '../../core/model/types';

export const TD = 'cluster.local';

export async function tempDir(prefix = 'smesh-test-'): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), prefix));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

export async function meshCa(): Promise<{ ca: LocalCa; dir: string; cleanup: () => Promise<void> }> {
  const t = await tempDir();
  const dir = path.join(t.dir, 'ca');
  const ca = await loadOrCreateRootCa(dir, TD);
  return { ca, dir, cleanup: t.cleanup };
}

export async function identities(ca: LocalCa, nodeId: string, ids: string[] = []): Promise<IdentityManager> {
  const m = new IdentityManager({ source: ca, nodeId });
  await m.ensure(ids);
  return m;
}

export function listen(server: net.Server, host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, () => resolve((server.address() as net.AddressInfo).port));
  });
}

/** Echo server: echoes bytes; on the client's FIN writes "bye" and ends (tests half-close). */
export function echoServer(): { server: net.Server; sockets: Set<net.Socket>; close: () => Promise<void> } {
  const sockets = new Set<net.Socket>();
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    sockets.add(s);
    s.on('error', () => undefined);
    s.on('close', () => sockets.delete(s));
    s.on('data', (d) => s.write(d));
    s.on('end', () => s.end('bye'));
  });
  return {
    server,
    sockets,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

/** A port on 127.0.0.1 with nothing listening (bound then released). */
export async function freePort(): Promise<number> {
  const s = net.createServer();
  const port = await listen(s);
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

export function readAll(stream: NodeJS.ReadableStream): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', () => resolve(Buffer.concat(chunks)));
    stream.on('error', reject);
  });
}

export function waitFor(cond: () => boolean, timeoutMs = 5000): Promise<void> {
  const start = Date.now();
  return new Promise((resolve, reject) => {
    const tick = () => {
      if (cond()) return resolve();
      if (Date.now() - start > timeoutMs) return reject(new Error('timed out waiting for condition'));
      setTimeout(tick, 10);
    };
    tick();
  });
}

/** A meshed workload `<app>-<n>` in namespace default whose app label and service account are `<app>`. */
export function wl(name: string, ip: string, node: string): Workload {
  const app = name.split('-')[0]!;
  return { uid: `default/${name}`, name, namespace: 'default', serviceAccount: app, node, ip, labels: { app }, workloadName: app, identity: `spiffe://${TD}/ns/default/sa/${app}`, meshed: true };
}
