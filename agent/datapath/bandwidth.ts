// Keeps per-pod bandwidth pacing in the kernel equal to the local pods' kubernetes.io/{egress,ingress}-bandwidth limits: map entries, tc attach/detach, leftovers of an earlier agent.
import { statSync } from 'node:fs';
import type { MeshSnapshot } from '../../core/model/types';

export type BandwidthDirection = 'egress' | 'ingress';
export type BandwidthMode = 'edt' | 'tbf';

/** The part of the native datapath (agent/native/datapath.ts) pacing needs. */
export interface BandwidthOps {
  bandwidths(): Array<{ ip: string; direction: BandwidthDirection; bitsPerSecond: number; dropped: number }>;
  setBandwidth(ip: string, direction: BandwidthDirection, bitsPerSecond: number): void;
  removeBandwidth(ip: string, direction: BandwidthDirection): void;
  attachBandwidth(direction: BandwidthDirection, netnsPath: string, ifindex: number, bitsPerSecond: number): BandwidthMode;
  podDevices(netnsPath: string, ip: string): { ifindex: number; ifname: string; peerIfindex: number; peerIfname: string };
  detachBandwidth(netnsPath: string, ifindex: number): void;
}

/** One pod address and direction the state asks to pace. */
export interface WantedLimit {
  readonly ip: string;
  readonly direction: BandwidthDirection;
  readonly bitsPerSecond: number;
  readonly pod: string;
  readonly netns: string;
}

/** What this agent attached (its own record; the kernel map holds only the rates). */
export interface AttachedLimit {
  readonly ip: string;
  readonly direction: BandwidthDirection;
  readonly bitsPerSecond: number;
  readonly mode: BandwidthMode;
  readonly netns: string;
  /** Inode of the namespace it was attached in: a recreated namespace behind the same path needs a new attach. */
  readonly netnsIno: number;
  readonly pod: string;
}

export type BandwidthAction =
  | { readonly op: 'set'; readonly limit: WantedLimit }
  | { readonly op: 'attach'; readonly limit: WantedLimit }
  | { readonly op: 'detach'; readonly ip: string; readonly direction: BandwidthDirection; readonly netns: string }
  | { readonly op: 'remove'; readonly ip: string; readonly direction: BandwidthDirection };

export function limitKey(ip: string, direction: BandwidthDirection): string {
  return `${ip}|${direction}`;
}

/** Local meshed pods with a known namespace and a limit, one entry per direction. */
export function wantedLimits(s: MeshSnapshot, nodeName: string): Map<string, WantedLimit> {
  const out = new Map<string, WantedLimit>();
  for (const w of s.workloads.values()) {
    if (w.node !== nodeName || !w.meshed || !w.netns) continue;
    if (w.egressBandwidthBps) out.set(limitKey(w.ip, 'egress'), { ip: w.ip, direction: 'egress', bitsPerSecond: w.egressBandwidthBps, pod: w.uid, netns: w.netns });
    if (w.ingressBandwidthBps) out.set(limitKey(w.ip, 'ingress'), { ip: w.ip, direction: 'ingress', bitsPerSecond: w.ingressBandwidthBps, pod: w.uid, netns: w.netns });
  }
  return out;
}

/**
 * The decisions of one sync, pure. `kernel`: rates in the map (this or an earlier agent's); `attached`: what this agent
 * attached; `netnsIno`: the current inode of each wanted pod's namespace (absent: unreadable); `localNetns`: pod address →
 * namespace of local pods still known (to take the pacing off a pod that lost its annotation, also after a restart).
 * Wanted: the map entry is written when it differs; the device is attached when this agent has not attached it, the
 * namespace was recreated, or a tbf qdisc (which holds the rate itself) has another rate. Not wanted: the device is
 * detached where it can be found, then the entry removed.
 */
export function planBandwidth(
  wanted: ReadonlyMap<string, WantedLimit>,
  kernel: ReadonlyMap<string, number>,
  attached: ReadonlyMap<string, AttachedLimit>,
  netnsIno: ReadonlyMap<string, number>,
  localNetns: ReadonlyMap<string, string>,
): BandwidthAction[] {
  const actions: BandwidthAction[] = [];
  for (const [key, a] of attached) {
    if (wanted.has(key)) continue;
    // Attached by this agent: its namespace path is known even when the pod left the state (gone with it is fine).
    actions.push({ op: 'detach', ip: a.ip, direction: a.direction, netns: localNetns.get(a.ip) ?? a.netns });
  }
  for (const key of kernel.keys()) {
    if (wanted.has(key) || attached.has(key)) continue;
    // An earlier agent's entry: its device is found through the pod when the pod is still on this node.
    const [ip, direction] = key.split('|') as [string, BandwidthDirection];
    const netns = localNetns.get(ip);
    if (netns) actions.push({ op: 'detach', ip, direction, netns });
  }
  for (const key of new Set([...kernel.keys(), ...attached.keys()])) {
    if (wanted.has(key) || !kernel.has(key)) continue;
    const [ip, direction] = key.split('|') as [string, BandwidthDirection];
    actions.push({ op: 'remove', ip, direction });
  }
  for (const [key, w] of wanted) {
    if (kernel.get(key) !== w.bitsPerSecond) actions.push({ op: 'set', limit: w });
    const a = attached.get(key);
    const ino = netnsIno.get(w.netns);
    if (!a || a.netns !== w.netns || (ino !== undefined && a.netnsIno !== ino) || (a.mode === 'tbf' && a.bitsPerSecond !== w.bitsPerSecond)) {
      actions.push({ op: 'attach', limit: w });
    }
  }
  return actions;
}

export interface BandwidthLogger {
  warn(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
}

export interface BandwidthSyncReport {
  readonly paced: { readonly egress: number; readonly ingress: number };
  readonly actions: number;
  readonly failures: ReadonlyArray<{ readonly pod: string; readonly reason: string }>;
}

/** Pod bandwidth pacing on one node: `sync` after every reconcile, `detachAll` when the datapath is taken down. */
export class BandwidthPacer {
  private readonly attached = new Map<string, AttachedLimit>();
  private running: Promise<BandwidthSyncReport> | undefined;
  private pending: MeshSnapshot | undefined;

  constructor(
    private readonly ops: BandwidthOps,
    private readonly nodeName: string,
    private readonly log: BandwidthLogger,
    /** Called with the paced pods per direction after each sync (the smesh_bandwidth_limits gauge). */
    private readonly onPaced: (paced: { egress: number; ingress: number }) => void = () => undefined,
  ) {}

  /** Overlapping calls coalesce: the last snapshot wins. */
  sync(s: MeshSnapshot): Promise<BandwidthSyncReport> {
    if (this.running) {
      this.pending = s;
      return this.running.then(() => {
        const next = this.pending;
        this.pending = undefined;
        return next ? this.sync(next) : this.report(0, []);
      });
    }
    this.running = Promise.resolve()
      .then(() => this.apply(s))
      .finally(() => {
        this.running = undefined;
      });
    return this.running;
  }

  private report(actions: number, failures: Array<{ pod: string; reason: string }>): BandwidthSyncReport {
    const paced = { egress: 0, ingress: 0 };
    for (const a of this.attached.values()) paced[a.direction]++;
    this.onPaced(paced);
    return { paced, actions, failures };
  }

  private apply(s: MeshSnapshot): BandwidthSyncReport {
    const wanted = wantedLimits(s, this.nodeName);
    const kernel = new Map(this.ops.bandwidths().map((e) => [limitKey(e.ip, e.direction), e.bitsPerSecond]));
    const inos = new Map<string, number>();
    for (const w of wanted.values()) {
      try {
        inos.set(w.netns, statSync(w.netns).ino);
      } catch {
        // unreadable now: the attach below reports it
      }
    }
    const localNetns = new Map<string, string>();
    for (const w of s.workloads.values()) if (w.node === this.nodeName && w.netns) localNetns.set(w.ip, w.netns);
    const actions = planBandwidth(wanted, kernel, this.attached, inos, localNetns);
    const failures: Array<{ pod: string; reason: string }> = [];
    for (const a of actions) {
      try {
        this.run(a, inos);
      } catch (err) {
        const pod = a.op === 'set' || a.op === 'attach' ? a.limit.pod : a.ip;
        failures.push({ pod, reason: `${a.op} ${a.op === 'set' || a.op === 'attach' ? a.limit.direction : a.direction} bandwidth: ${(err as Error).message}` });
      }
    }
    for (const f of failures) this.log.warn(f, 'pod bandwidth not applied; will retry on the next reconcile');
    const r = this.report(actions.length, failures);
    if (actions.length > failures.length) this.log.info({ egress: r.paced.egress, ingress: r.paced.ingress, actions: actions.length }, 'pod bandwidth limits updated');
    return r;
  }

  private run(a: BandwidthAction, inos: ReadonlyMap<string, number>): void {
    switch (a.op) {
      case 'set':
        this.ops.setBandwidth(a.limit.ip, a.limit.direction, a.limit.bitsPerSecond);
        return;
      case 'attach': {
        const w = a.limit;
        this.attached.delete(limitKey(w.ip, w.direction)); // until it succeeds
        const dev = this.ops.podDevices(w.netns, w.ip);
        let mode: BandwidthMode;
        if (w.direction === 'egress') mode = this.ops.attachBandwidth('egress', w.netns, dev.ifindex, w.bitsPerSecond);
        else {
          if (dev.peerIfindex === 0) throw new Error(`the host side of ${dev.ifname} (a veth peer) is not in the agent's network namespace`);
          mode = this.ops.attachBandwidth('ingress', '', dev.peerIfindex, w.bitsPerSecond);
        }
        this.attached.set(limitKey(w.ip, w.direction), { ip: w.ip, direction: w.direction, bitsPerSecond: w.bitsPerSecond, mode, netns: w.netns, netnsIno: inos.get(w.netns) ?? 0, pod: w.pod });
        return;
      }
      case 'detach': {
        this.attached.delete(limitKey(a.ip, a.direction));
        let dev: { ifindex: number; peerIfindex: number };
        try {
          dev = this.ops.podDevices(a.netns, a.ip);
        } catch {
          return; // the namespace or the pod's interface is gone, and the pacing went with it
        }
        if (a.direction === 'egress') this.ops.detachBandwidth(a.netns, dev.ifindex);
        else if (dev.peerIfindex !== 0) this.ops.detachBandwidth('', dev.peerIfindex);
        return;
      }
      case 'remove':
        this.ops.removeBandwidth(a.ip, a.direction);
        return;
    }
  }

  /** What is paced now, for /config_dump. */
  status(): Array<{ pod: string; ip: string; direction: BandwidthDirection; bitsPerSecond: number; mode: BandwidthMode; dropped?: number }> {
    let dropped = new Map<string, number>();
    try {
      dropped = new Map(this.ops.bandwidths().map((e) => [limitKey(e.ip, e.direction), e.dropped]));
    } catch {
      // closed during shutdown
    }
    return [...this.attached.entries()].map(([key, a]) => ({ pod: a.pod, ip: a.ip, direction: a.direction, bitsPerSecond: a.bitsPerSecond, mode: a.mode, dropped: dropped.get(key) }));
  }

  /** Takes every limit off (datapath destroy, uninstall): devices this agent attached, and every map entry. */
  async detachAll(): Promise<void> {
    await this.running?.catch(() => undefined);
    for (const a of [...this.attached.values()]) {
      try {
        this.run({ op: 'detach', ip: a.ip, direction: a.direction, netns: a.netns }, new Map());
      } catch (err) {
        this.log.warn({ pod: a.pod, direction: a.direction, err: (err as Error).message }, 'pod bandwidth: detach failed');
      }
    }
    this.attached.clear();
    for (const e of this.ops.bandwidths()) this.ops.removeBandwidth(e.ip, e.direction);
    this.onPaced({ egress: 0, ingress: 0 });
  }
}
