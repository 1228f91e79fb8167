// Keeps the kernel maps equal to the mesh state: enrolled pods (by netns cookie), meshed destinations, inbound STRICT modes and connect-time denies.
import { statSync } from 'node:fs';
import type { MeshSnapshot, Service, Workload } from '../../core/model/types';
import { workloadAddresses } from '../../core/model/addresses';
import { denyKey, desiredConnectDenies, desiredInboundModes, inboundKey, type InboundMode } from './policy-maps';

/** The part of the native datapath facade the reconciler writes. */
export interface DatapathMaps {
  enrollPod(netnsCookie: bigint, workloadId: number): void;
  unenrollPod(netnsCookie: bigint): void;
  enrolledPods(): Array<{ cookie: bigint; workloadId: number }>;
  addMeshedDestination(ip: string, port: number): void;
  removeMeshedDestination(ip: string, port: number): void;
  meshedDestinations(): Array<{ ip: string; port: number }>;
  /** Batched forms (one map operation for many entries); absent: one call per entry. */
  addMeshedDestinations?(dests: ReadonlyArray<{ ip: string; port: number }>): void;
  removeMeshedDestinations?(dests: ReadonlyArray<{ ip: string; port: number }>): number;
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
  /** Node host addresses marked TRUSTED_SOURCE (probe sources STRICT lets through). */
  readonly trustedSources?: number;
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

/** `ip|port`; a port-0 (every port) entry is the IP itself, so 50k workload entries reuse their IP strings. */
function destKey(ip: string, port: number): string {
  return port === 0 ? ip : `${ip}|${port}`;
}

function parseDestKey(key: string): { ip: string; port: number } {
  const bar = key.lastIndexOf('|');
  return bar < 0 ? { ip: key, port: 0 } : { ip: key.slice(0, bar), port: Number(key.slice(bar + 1)) };
}

/** Every destination the kernel should redirect: service VIP ports and meshed workload addresses (all ports). */
export function desiredDestinations(s: MeshSnapshot): Map<string, { ip: string; port: number }> {
  const out = new Map<string, { ip: string; port: number }>();
  for (const svc of s.services.values()) {
    for (const vip of svc.vips) for (const p of svc.ports) out.set(destKey(vip, p.port), { ip: vip, port: p.port });
  }
  for (const w of s.workloads.values()) if (w.meshed) for (const ip of workloadAddresses(w)) out.set(destKey(ip, 0), { ip, port: 0 });
  return out;
}

/** Local pods that should be enrolled: on this node, meshed, with a known network namespace. */
export function podsToEnroll(s: MeshSnapshot, nodeName: string): Workload[] {
  return [...s.workloads.values()].filter((w) => w.node === nodeName && w.meshed && w.netns);
}

export class Reconciler {
  /** netns path → { inode, cookie }: a recreated namespace has a new inode and so a new cookie. */
  private readonly cookieCache = new Map<string, { ino: number; cookie: bigint }>();
  /** Workload uid → the cookie it was last enrolled with (kept through a transient read failure). */
  private lastCookie = new Map<string, bigint>();
  private running: Promise<ReconcileReport> | undefined;
  private pending: MeshSnapshot | undefined;
  /**
   * Destinations the state asks for (`ip|port` → how many services/workloads ask), as of `applied`: a reconcile
   * diffs the new snapshot against that one by object identity (the xDS state keeps unchanged objects), so a
   * push that changed one service costs a few map operations, not a pass over 60k entries.
   */
  private readonly desired = new Map<string, number>();
  private applied: MeshSnapshot | undefined;
  /** Compare the whole kernel map with `desired` on the next reconcile (first run, or after a failed write). */
  private resync = true;

  constructor(
    private readonly maps: DatapathMaps,
    private readonly netnsCookie: NetnsCookieFn,
    private readonly nodeName: string,
    private readonly ids: WorkloadIds,
    private readonly log: ReconcilerLogger,
    /** The node's host addresses whose plaintext STRICT lets through (kubelet probes); read at each reconcile. */
    private readonly trustedSources: () => readonly string[] = () => [],
    /** Trust-domain aliases: connect-time denies expand policy principals across them as the proxy does. */
    private readonly trustDomainAliases: () => readonly string[] = () => [],
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
    if (!next) return Promise.resolve({ enrolled: this.maps.enrolledPods().length, added: 0, removed: 0, destinations: this.desired.size, failures: [] });
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
    const paths = new Set<string>();
    const lastCookies = new Map<string, bigint>();
    for (const w of podsToEnroll(s, this.nodeName)) {
      paths.add(w.netns!);
      try {
        const cookie = await this.cookieOf(w.netns!);
        wanted.set(cookie, this.ids.idOf(w.uid));
        lastCookies.set(w.uid, cookie);
      } catch (err) {
        // A path that cannot be read right now (e.g. a discovered /proc/<pid>/ns/net whose process just exited)
        // keeps the pod's last known cookie until the next pass finds it again: no gap in redirection.
        const last = this.lastCookie.get(w.uid);
        if (last !== undefined) {
          wanted.set(last, this.ids.idOf(w.uid));
          lastCookies.set(w.uid, last);
        }
        failures.push({ pod: w.uid, reason: `network namespace ${w.netns}: ${(err as Error).message}` });
      }
    }
    this.lastCookie = lastCookies;
    for (const path of this.cookieCache.keys()) if (!paths.has(path)) this.cookieCache.delete(path);
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
    this.syncDestinations(s);
    const policy = this.applyPolicyMaps(s);
    for (const f of failures) this.log.warn(f, 'pod not enrolled: its network namespace could not be read; will retry on the next reconcile');
    if (added || removed) this.log.info({ added, removed, enrolled: wanted.size }, 'pod enrollment updated');
    return { enrolled: wanted.size, added, removed, destinations: this.desired.size, ...policy, failures };
  }

  /** Brings the destination map from `applied` to `s`: only entries of changed services/workloads are written. */
  private syncDestinations(s: MeshSnapshot): void {
    const prev = this.applied;
    if (prev === s && !this.resync) return;
    /** Keys whose desired presence may have flipped → whether they were desired before. */
    const touched = new Map<string, boolean>();
    const change = (key: string, delta: 1 | -1): void => {
      const n = this.desired.get(key) ?? 0;
      if (!touched.has(key)) touched.set(key, n > 0);
      if (n + delta > 0) this.desired.set(key, n + delta);
      else this.desired.delete(key);
    };
    const service = (svc: Service, delta: 1 | -1): void => {
      for (const vip of svc.vips) for (const p of svc.ports) change(destKey(vip, p.port), delta);
    };
    const workload = (w: Workload, delta: 1 | -1): void => {
      if (w.meshed) for (const ip of workloadAddresses(w)) change(destKey(ip, 0), delta);
    };
    /** First pass (nothing applied yet): every desired destination, listed while counting (no per-key diff). */
    let initial: Array<{ ip: string; port: number }> | undefined;
    if (prev === undefined) {
      initial = [];
      const desired = this.desired;
      const count = (key: string, ip: string, port: number): void => {
        const n = desired.get(key);
        if (n === undefined) {
          desired.set(key, 1);
          initial!.push({ ip, port });
        } else desired.set(key, n + 1);
      };
      for (const svc of s.services.values()) {
        for (const vip of svc.vips) for (const p of svc.ports) count(destKey(vip, p.port), vip, p.port);
      }
      for (const w of s.workloads.values()) if (w.meshed) for (const ip of workloadAddresses(w)) count(destKey(ip, 0), ip, 0);
      this.applied = s;
    } else if (prev !== s) {
      for (const [key, svc] of s.services) {
        const old = prev.services.get(key);
        if (old === svc) continue;
        if (old) service(old, -1);
        service(svc, 1);
      }
      for (const [key, old] of prev.services) if (!s.services.has(key)) service(old, -1);
      for (const [uid, w] of s.workloads) {
        const old = prev.workloads.get(uid);
        if (old === w) continue;
        if (old) workload(old, -1);
        workload(w, 1);
      }
      for (const [uid, old] of prev.workloads) if (!s.workloads.has(uid)) workload(old, -1);
      this.applied = s;
    }
    let add: Array<{ ip: string; port: number }> = [];
    const remove: Array<{ ip: string; port: number }> = [];
    if (this.resync) {
      // What the kernel holds now (another run may have left entries) against everything desired.
      const kernel = new Set(this.maps.meshedDestinations().map((d) => destKey(d.ip, d.port)));
      for (const key of kernel) if (!this.desired.has(key)) remove.push(parseDestKey(key));
      if (initial && kernel.size === 0) add = initial;
      else for (const key of this.desired.keys()) if (!kernel.has(key)) add.push(parseDestKey(key));
    } else {
      for (const [key, was] of touched) {
        const now = this.desired.has(key);
        if (now && !was) add.push(parseDestKey(key));
        else if (!now && was) remove.push(parseDestKey(key));
      }
    }
    this.resync = true; // until the writes below all succeed
    this.removeDestinations(remove);
    this.addDestinations(add);
    this.resync = false;
  }

  private addDestinations(list: Array<{ ip: string; port: number }>): void {
    if (list.length === 0) return;
    if (this.maps.addMeshedDestinations) this.maps.addMeshedDestinations(list);
    else for (const d of list) this.maps.addMeshedDestination(d.ip, d.port);
  }

  private removeDestinations(list: Array<{ ip: string; port: number }>): void {
    if (list.length === 0) return;
    if (this.maps.removeMeshedDestinations) this.maps.removeMeshedDestinations(list);
    else for (const d of list) this.maps.removeMeshedDestination(d.ip, d.port);
  }

  /** Inbound modes first (they only ever protect), then connect denies; each map diffed against the kernel's. */
  private applyPolicyMaps(s: MeshSnapshot): { inboundModes?: number; strict?: number; trustedSources?: number; connectDenies?: number } {
    const m = this.maps;
    const out: { inboundModes?: number; strict?: number; trustedSources?: number; connectDenies?: number } = {};
    if (m.inboundModes && m.setInboundMode && m.removeInboundMode) {
      const wanted = desiredInboundModes(s, this.nodeName, this.trustedSources());
      const current = new Map(m.inboundModes().map((e) => [inboundKey(e), e]));
      for (const [key, e] of wanted) if (current.get(key)?.mode !== e.mode) m.setInboundMode(e.ip, e.port, e.mode);
      for (const [key, e] of current) if (!wanted.has(key)) m.removeInboundMode(e.ip, e.port);
      out.inboundModes = wanted.size;
      out.strict = [...wanted.values()].filter((e) => e.mode === 'STRICT').length;
      out.trustedSources = [...wanted.values()].filter((e) => e.mode === 'TRUSTED_SOURCE').length;
    }
    if (m.connectDenies && m.addConnectDeny && m.removeConnectDeny) {
      const wanted = desiredConnectDenies(s, this.nodeName, (uid) => this.ids.idOf(uid), this.trustDomainAliases());
      const current = new Map(m.connectDenies().map((e) => [denyKey(e), e]));
      for (const [key, e] of current) if (!wanted.has(key)) m.removeConnectDeny(e.workloadId, e.ip, e.port);
      for (const [key, e] of wanted) if (!current.has(key)) m.addConnectDeny(e.workloadId, e.ip, e.port);
      out.connectDenies = wanted.size;
    }
    return out;
  }
}
