// Inbound plaintext capture per local pod: a listening socket the agent opens inside the pod's network namespace, the sk_lookup link that hands it plaintext connections, and their lifecycle as pods come and go.
import { closeSync, statSync } from 'node:fs';
import * as net from 'node:net';
import type { MeshSnapshot, Workload } from '../../core/model/types';
import { workloadAddresses } from '../../core/model/addresses';
import { formatAuthority } from '../proxy/types';
import { podsToEnroll } from './reconciler';

/** The kernel operations the capture needs (the native Datapath facade plus netnsListener; a fake in unit tests). */
export interface CaptureKernel {
  /** A listening TCP socket made inside the namespace (127.0.0.1, or [::1] IPv6-only for family 6); the caller owns the fd. */
  netnsListener(netnsPath: string, family?: 4 | 6): Promise<number>;
  /** Attaches the sk_lookup program to the namespace, pinned (a pinned link of that namespace is reused). */
  attachInboundCapture(netnsPath: string): { fd: number; pin: string };
  /** Unpins and closes a capture link: the namespace's plaintext is no longer captured. */
  releaseInboundCapture(pin: string, fd?: number): void;
  /** Every capture link pin, including those of namespaces no longer served (left by an earlier agent). */
  inboundCapturePins(): string[];
  setCaptureListener(ip: string, fd: number, kind?: 'plaintext' | 'hbone'): void;
  removeCaptureListener(ip: string, kind?: 'plaintext' | 'hbone'): void;
  /** The pod address is captured: while no listener is registered (agent restarting), its plaintext is held back. */
  holdPlaintext(ip: string): void;
  releasePlaintext(ip: string): void;
  heldPlaintext(): string[];
}

export interface CaptureLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

/** What the capture knows of one pod namespace it serves. */
interface CapturedNetns {
  readonly path: string;
  readonly ino: number;
  /** The IPv4 capture listener (127.0.0.1 in the namespace). */
  readonly server: net.Server;
  /** The IPv6 one ([::1], IPv6 only), opened with the namespace's first IPv6 pod address: the kernel hands a connection only to a socket of its family. */
  server6?: net.Server;
  readonly linkFd: number;
  readonly pin: string;
  /** Pod addresses registered in the kernel's listener map for this namespace. */
  readonly ips: Set<string>;
  /** The workload's pod-addressed HBONE server (`<pod IP>:15008`), once its certificate exists. */
  /** Pod-addressed HBONE servers by pod address (`<pod IP>:15008`, one per address of a dual-stack pod), once the certificate exists. */
  readonly hbone: Map<string, { readonly server: net.Server; readonly identity: string }>;
  readonly pods: Set<string>;
}

export interface CaptureStatus {
  readonly netns: string;
  readonly pods: string[];
  readonly addresses: string[];
}

/** Local pods whose plaintext should be captured: enrolled (meshed, on this node, netns known), IPv4 or IPv6. */
export function podsToCapture(s: MeshSnapshot, nodeName: string): Workload[] {
  return podsToEnroll(s, nodeName).filter((w) => net.isIP(w.ip) !== 0);
}

function familyOf(ip: string): 4 | 6 {
  return net.isIPv6(ip) ? 6 : 4;
}

function serverFd(server: net.Server | undefined): number | undefined {
  return (server as unknown as { _handle?: { fd?: number } } | undefined)?._handle?.fd;
}

function inodeOf(path: string): number | undefined {
  try {
    return statSync(path).ino;
  } catch {
    return undefined;
  }
}

/**
 * Keeps one capture listener + sk_lookup link per local pod namespace. `sync` is serialized: the last
 * snapshot wins. A namespace recreated at the same path (pod restart) gets a new inode and is rebuilt.
 */
export class InpodCapture {
  private readonly byPath = new Map<string, CapturedNetns>();
  private running: Promise<void> = Promise.resolve();
  private closed = false;
  /** Set by handOver(): the kernel entries belong to the agent that follows; nothing here writes them any more. */
  private handedOver = false;

  constructor(
    private readonly kernel: CaptureKernel,
    /**
     * Called with every accepted plaintext connection (local address = the pod address and port dialled); undefined =
     * no plaintext capture (--no-plaintext-capture), the namespace link then serves pod-addressed HBONE only.
     */
    private readonly onConnection: ((socket: net.Socket) => void) | undefined,
    private readonly log: CaptureLogger,
    /**
     * The HBONE server of a local workload, not listening yet (InboundProxy.podServer); absent = no pod-addressed
     * HBONE. May throw while the workload's certificate is not issued: retried on the next sync.
     */
    private readonly hboneServer?: (workload: Workload, ip: string) => net.Server,
  ) {}

  sync(pods: readonly Workload[]): Promise<void> {
    const next = this.running.then(() => this.apply(pods));
    this.running = next.catch(() => undefined);
    return next;
  }

  status(): CaptureStatus[] {
    return [...this.byPath.values()].map((c) => ({ netns: c.path, pods: [...c.pods], addresses: [...c.ips] }));
  }

  /**
   * Draining (another agent runs or is starting): no later sync touches the kernel entries again, so a sync that
   * arrives during the drain (e.g. after a certificate renewal) cannot put this agent's listeners back over the ones the
   * next agent registered. Our listeners keep accepting what the kernel already queued on them; close() ends them, and
   * closing a socket removes only map entries that still reference it, never the next agent's.
   */
  handOver(): void {
    this.handedOver = true;
  }

  /**
   * Stops serving: listeners close, but the pinned links stay, so until the next agent listens the kernel drops
   * plaintext SYNs to these pods (clients retransmit) instead of letting them reach the apps unchecked.
   */
  async close(): Promise<void> {
    this.closed = true;
    await this.running;
    for (const c of [...this.byPath.values()]) {
      this.byPath.delete(c.path);
      try {
        closeSync(c.linkFd);
      } catch {
        // already closed
      }
      c.server.close();
      c.server6?.close();
      for (const h of c.hbone.values()) h.server.close();
      c.hbone.clear();
    }
  }

  private async apply(pods: readonly Workload[]): Promise<void> {
    if (this.closed || this.handedOver) return;
    const wanted = new Map<string, Workload[]>();
    for (const w of pods) {
      const list = wanted.get(w.netns!) ?? [];
      list.push(w);
      wanted.set(w.netns!, list);
    }
    for (const c of [...this.byPath.values()]) {
      const ino = inodeOf(c.path);
      if (!wanted.has(c.path) || ino !== c.ino) await this.release(c);
    }
    // Pins an earlier agent left for namespaces no pod of ours lives in any more (pods deleted meanwhile).
    const live = new Set([...this.byPath.values()].map((c) => c.pin));
    const wantedPins = new Set<string>();
    for (const path of wanted.keys()) {
      const ino = inodeOf(path);
      if (ino !== undefined) wantedPins.add(`inpod-${ino}`);
    }
    for (const pin of this.kernel.inboundCapturePins()) {
      const name = pin.slice(pin.lastIndexOf('/') + 1);
      if (live.has(pin) || wantedPins.has(name)) continue;
      try {
        this.kernel.releaseInboundCapture(pin);
        this.log.info({ pin }, 'stale inbound plaintext capture link removed');
      } catch (err) {
        this.log.warn({ pin, err: (err as Error).message }, 'cannot remove a stale inbound plaintext capture link');
      }
    }
    for (const [path, list] of wanted) {
      let c = this.byPath.get(path);
      if (!c) {
        const ino = inodeOf(path);
        if (ino === undefined) continue; // namespace gone; the reconciler reports it
        try {
          c = await this.open(path, ino);
        } catch (err) {
          this.log.warn(
            { netns: path, pods: list.map((w) => w.uid), err: (err as Error).message },
            'inbound plaintext capture not set up for this pod namespace (plaintext is not authorized there until it is); will retry on the next reconcile',
          );
          continue;
        }
        this.byPath.set(path, c);
      }
      const ips = new Set(list.flatMap((w) => workloadAddresses(w)));
      for (const ip of ips) {
        if (c.ips.has(ip) || !this.onConnection) continue;
        let fd: number | undefined;
        try {
          fd = serverFd(familyOf(ip) === 6 ? await this.server6(c) : c.server);
        } catch (err) {
          this.log.warn(
            { netns: path, ip, err: (err as Error).message },
            'cannot open the IPv6 plaintext capture listener in this pod namespace (IPv6 plaintext to it is held back until it is); will retry on the next reconcile',
          );
          continue;
        }
        if (fd === undefined) continue;
        try {
          this.kernel.setCaptureListener(ip, fd);
          this.kernel.holdPlaintext(ip);
          c.ips.add(ip);
        } catch (err) {
          this.log.warn({ netns: path, ip, err: (err as Error).message }, 'cannot register the plaintext capture listener for a pod address');
        }
      }
      for (const ip of [...c.ips]) {
        if (ips.has(ip)) continue;
        this.forgetIp(ip);
        c.ips.delete(ip);
      }
      c.pods.clear();
      for (const w of list) c.pods.add(w.uid);
      if (this.hboneServer) await this.syncHbone(c, list[0]!);
    }
    // Addresses an earlier agent held that no local pod has now.
    const wantedIps = new Set(pods.flatMap((w) => workloadAddresses(w)));
    for (const ip of this.kernel.heldPlaintext()) {
      if (wantedIps.has(ip)) continue;
      try {
        this.kernel.releasePlaintext(ip);
      } catch (err) {
        this.log.warn({ ip, err: (err as Error).message }, 'cannot release a stale plaintext hold');
      }
    }
  }

  /** The namespace's IPv6 capture listener, opened on first use. */
  private async server6(c: CapturedNetns): Promise<net.Server> {
    if (!c.server6) c.server6 = await this.listen(c.path, 6);
    return c.server6;
  }

  private async listen(path: string, family: 4 | 6): Promise<net.Server> {
    const fd = await this.kernel.netnsListener(path, family);
    const server = net.createServer({ allowHalfOpen: true, noDelay: true }, (socket) => (this.onConnection ? this.onConnection(socket) : socket.resetAndDestroy()));
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen({ fd }, () => {
          server.off('error', reject);
          resolve();
        });
      });
    } catch (err) {
      server.close();
      try {
        closeSync(fd);
      } catch {
        // the server may already own and have closed it
      }
      throw err;
    }
    server.on('error', (err) => this.log.warn({ netns: path, family, err: err.message }, 'plaintext capture listener error'));
    return server;
  }

  private async open(path: string, ino: number): Promise<CapturedNetns> {
    const server = await this.listen(path, 4);
    let link: { fd: number; pin: string };
    try {
      link = this.kernel.attachInboundCapture(path);
    } catch (err) {
      server.close();
      throw err;
    }
    this.log.info({ netns: path, pin: link.pin }, 'inbound plaintext capture attached to pod namespace');
    return { path, ino, server, linkFd: link.fd, pin: link.pin, ips: new Set(), pods: new Set(), hbone: new Map() };
  }

  /** Serves `<pod IP>:15008` on every address of the workload with its own certificate, as ztunnel's inbound does. */
  private async syncHbone(c: CapturedNetns, w: Workload): Promise<void> {
    const wanted = new Set(workloadAddresses(w));
    for (const [ip, h] of [...c.hbone]) if (!wanted.has(ip) || h.identity !== w.identity) this.closeHbone(c, ip);
    for (const ip of wanted) {
      if (c.hbone.has(ip)) continue;
      let server: net.Server;
      try {
        server = this.hboneServer!(w, ip);
      } catch (err) {
        this.log.info({ netns: c.path, workload: w.uid, err: (err as Error).message }, 'pod-addressed HBONE not served yet for this workload; retrying on the next sync');
        return;
      }
      try {
        const fd = await this.kernel.netnsListener(c.path, familyOf(ip));
        await new Promise<void>((resolve, reject) => {
          server.once('error', reject);
          server.listen({ fd }, () => {
            server.off('error', reject);
            resolve();
          });
        });
        this.kernel.setCaptureListener(ip, fd, 'hbone');
      } catch (err) {
        server.close();
        this.log.warn({ netns: c.path, workload: w.uid, ip, err: (err as Error).message }, 'cannot serve pod-addressed HBONE for this workload address; retrying on the next sync');
        continue;
      }
      server.on('error', (err) => this.log.warn({ netns: c.path, err: err.message }, 'pod-addressed HBONE listener error'));
      c.hbone.set(ip, { server, identity: w.identity });
      this.log.info({ netns: c.path, workload: w.uid, address: formatAuthority(ip, 15008) }, 'pod-addressed HBONE served');
    }
  }

  private closeHbone(c: CapturedNetns, ip: string): void {
    const h = c.hbone.get(ip);
    if (!h) return;
    try {
      this.kernel.removeCaptureListener(ip, 'hbone');
    } catch (err) {
      this.log.warn({ ip, err: (err as Error).message }, 'cannot remove the pod-addressed HBONE listener entry');
    }
    h.server.close();
    c.hbone.delete(ip);
  }

  private forgetIp(ip: string): void {
    try {
      this.kernel.removeCaptureListener(ip);
      this.kernel.releasePlaintext(ip);
    } catch (err) {
      this.log.warn({ ip, err: (err as Error).message }, 'cannot remove a plaintext capture listener entry');
    }
  }

  private async release(c: CapturedNetns): Promise<void> {
    this.byPath.delete(c.path);
    for (const ip of [...c.hbone.keys()]) this.closeHbone(c, ip);
    for (const ip of c.ips) this.forgetIp(ip);
    try {
      this.kernel.releaseInboundCapture(c.pin, c.linkFd);
    } catch (err) {
      this.log.warn({ pin: c.pin, err: (err as Error).message }, 'cannot remove the inbound plaintext capture link');
    }
    // Connections already accepted keep running (close() would wait for them); only the listeners go.
    c.server.close();
    c.server6?.close();
    this.log.info({ netns: c.path }, 'inbound plaintext capture released');
  }
}
