// Keeps the kernel maps equal to the mesh state: enrolled pods (by netns cookie), meshed destinations, inbound STRICT modes and connect-time denies.
import { statSync } from 'node:fs';
import { MeshSnapshot, Workload } from '../state/types';
import { denyKey, desiredConnectDenies, desiredInboundModes, inboundKey, type InboundMode } from './policy-maps';

/** The part of the native datapath facade the reconciler writes. */
export interface DatapathMaps {
  enrollPod(netnsCookie: bigint, workloadId: number): void;
  unenrollPod(netnsCookie: bigint): void;
  enrolledPods(): Array<{ cookie: bigint; workloadId: number }>;
  addMeshedDestination(ip: string, port: number): void;
  removeMeshedDestination(ip: string, port: number): void;
  meshedDestinations(): Array<{ ip: string; port: number }>;
  // Policy maps (absent on a datapath without them: policy is then enforced by the proxies only).
  addConnectDeny?(workloadId: number, ip: string, port: number): void;
  removeConnectDeny?(workloadId: number, ip: string, port: number): void;
  connectDenies?(): Array<{ workloadId: number; ip: string; port: number }>;
  setInboundMode?(ip: string, port: number, mode: InboundMode): void;
  removeInboundMode?(ip: string, port: number): void;
  inboundModes?(): Array<{ ip: string; port: number; mode: InboundMode }>;
}

export type NetnsCookieFn = (netnsPath: string) => Promise<bigint>;

export interface ReconcileReport {
  readonly enrolled: number;
  readonly added: number;
  readonly removed: number;
  readonly destinations: number;
  /** Entries in the inbound-mode map (STRICT or PERMISSIVE) and how many are STRICT. */
  readonly inboundModes?: number;
  readonly strict?: number;
  /** Connect-time deny entries. */
  readonly connectDenies?: number;
  /** Pods that could not be enrolled, with the reason (e.g. their netns is gone). */
  readonly failures: ReadonlyArray<{ readonly pod: string; readonly reason: string }>;
}

export interface ReconcilerLogger {
  warn(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
}

/** Stable small integers for workloads, as stored in the kernel's pod map. */
export class WorkloadIds {
  private readonly ids = new Map<string, number>();
  private readonly uids = new Map<number, string>();
  private next = 1;

  idOf(uid: string): number {
    let id = this.ids.get(uid);
    if (id === undefined) {
      id = this.next++;
      this.ids.set(uid, id);
      this.uids.set(id, uid);
    }
    return id;
  }

  uidOf(id: number): string | undefined {
    return this.uids.get(id);
  }
}

function destKey(ip: string, port: number): string {
  return `${ip}|${port}`;
}

/** Every destination the kernel should redirect: service VIP ports and meshed workload addresses (all ports). */
export function desiredDestinations(s: MeshSnapshot): Map<string, { ip: string; port: number }> {
  const out = new Map<string, { ip: string; port: number }>();
  for (const svc of s.services.values()) {
    for (const vip of svc.vips) for (const p of svc.ports) out.set(destKey(vip, p.port), { ip: vip, port: p.port });
  }
  for (const w of s.workloads.values()) if (w.meshed) out.set(destKey(w.ip, 0), { ip: w.ip, port: 0 });
  return out;
}

/** Local pods that should be enrolled: on this node, meshed, with a known network namespace. */
export function podsToEnroll(s: MeshSnapshot, nodeName: string): Workload[] {
  return [...s.workloads.values()].filter((w) => w.node === nodeName && w.meshed && w.netns);
}

export class Reconciler {
  /** netns path → { inode, cookie }: a recreated namespace has a new inode and so a new cookie. */
  private readonly cookieCache = new Map<string, { ino: number; cookie: bigint }>();
  private running: Promise<ReconcileReport> | undefined;
  private pending: MeshSnapshot | undefined;
  /**
   * What the kernel's destination map holds (`ip|port` keys): read from the map once, then kept up to date by
   * our own writes, so a reconcile diffs in memory instead of dumping ~60k entries each time. This agent is the
   * map's only writer.
   */
  private destView: Set<string> | undefined;

  constructor(
    private readonly maps: DatapathMaps,
    private readonly netnsCookie: NetnsCookieFn,
    private readonly nodeName: string,
    private readonly ids: WorkloadIds,
    private readonly log: ReconcilerLogger,
  ) {}

  /** Reconciles towards `s`; overlapping calls coalesce so the last snapshot always wins. */
  reconcile(s: MeshSnapshot): Promise<ReconcileReport> {
    if (this.running) {
      this.pending = s;
      return this.running.then(() => this.reconcileQueued());
    }
    this.running = this.apply(s).finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  private reconcileQueued(): Promise<ReconcileReport> {
    const next = this.pending;
    this.pending = undefined;
    if (!next) return Promise.resolve({ enrolled: this.maps.enrolledPods().length, added: 0, removed: 0, destinations: this.kernelDests().size, failures: [] });
    return this.reconcile(next);
  }

  private async cookieOf(path: string): Promise<bigint> {
    const ino = statSync(path).ino;
    const cached = this.cookieCache.get(path);
    if (cached && cached.ino === ino) return cached.cookie;
    const cookie = await this.netnsCookie(path);
    this.cookieCache.set(path, { ino, cookie });
    return cookie;
  }

  private async apply(s: MeshSnapshot): Promise<ReconcileReport> {
    const failures: Array<{ pod: string; reason: string }> = [];
    const wanted = new Map<bigint, number>();
    for (const w of podsToEnroll(s, this.nodeName)) {
      try {
        const cookie = await this.cookieOf(w.netns!);
        wanted.set(cookie, this.ids.idOf(w.uid));
      } catch (err) {
        failures.push({ pod: w.uid, reason: `network namespace ${w.netns}: ${(err as Error).message}` });
      }
    }
    let added = 0;
    let removed = 0;
    const current = new Map(this.maps.enrolledPods().map((p) => [p.cookie, p.workloadId]));
    for (const [cookie, id] of current) {
      if (wanted.get(cookie) !== id) {
        this.maps.unenrollPod(cookie);
        removed++;
      }
    }
    for (const [cookie, id] of wanted) {
      if (current.get(cookie) !== id) {
        this.maps.enrollPod(cookie, id);
        added++;
      }
    }
    const dests = desiredDestinations(s);
    const currentDests = this.kernelDests();
    for (const key of [...currentDests]) {
      if (!dests.has(key)) {
        const [ip, port] = key.split('|');
        this.maps.removeMeshedDestination(ip, Number(port));
        currentDests.delete(key);
      }
    }
    for (const [key, d] of dests) {
      if (currentDests.has(key)) continue;
      try {
        this.maps.addMeshedDestination(d.ip, d.port);
      } catch (err) {
        this.destView = undefined; // unsure what the kernel holds now: read it again next time
        throw err;
      }
      currentDests.add(key);
    }
    const policy = this.applyPolicyMaps(s);
    for (const f of failures) this.log.warn(f, 'pod not enrolled: its network namespace could not be read; will retry on the next reconcile');
    if (added || removed) this.log.info({ added, removed, enrolled: wanted.size }, 'pod enrollment updated');
    return { enrolled: wanted.size, added, removed, destinations: dests.size, ...policy, failures };
  }

  /** The in-memory view of the destination map (read from the kernel the first time). */
  private kernelDests(): Set<string> {
    if (!this.destView) this.destView = new Set(this.maps.meshedDestinations().map((d) => destKey(d.ip, d.port)));
    return this.destView;
  }

  /** Inbound modes first (they only ever protect), then connect denies; each map diffed against the kernel's. */
  private applyPolicyMaps(s: MeshSnapshot): { inboundModes?: number; strict?: number; connectDenies?: number } {
    const m = this.maps;
    const out: { inboundModes?: number; strict?: number; connectDenies?: number } = {};
    if (m.inboundModes && m.setInboundMode && m.removeInboundMode) {
      const wanted = desiredInboundModes(s, this.nodeName);
      const current = new Map(m.inboundModes().map((e) => [inboundKey(e), e]));
      for (const [key, e] of wanted) if (current.get(key)?.mode !== e.mode) m.setInboundMode(e.ip, e.port, e.mode);
      for (const [key, e] of current) if (!wanted.has(key)) m.removeInboundMode(e.ip, e.port);
      out.inboundModes = wanted.size;
      out.strict = [...wanted.values()].filter((e) => e.mode === 'STRICT').length;
    }
    if (m.connectDenies && m.addConnectDeny && m.removeConnectDeny) {
      const wanted = desiredConnectDenies(s, this.nodeName, (uid) => this.ids.idOf(uid));
      const current = new Map(m.connectDenies().map((e) => [denyKey(e), e]));
      for (const [key, e] of current) if (!wanted.has(key)) m.removeConnectDeny(e.workloadId, e.ip, e.port);
      for (const [key, e] of wanted) if (!current.has(key)) m.addConnectDeny(e.workloadId, e.ip, e.port);
      out.connectDenies = wanted.size;
    }
    return out;
  }
}
