// Node-local netns discovery: before each reconcile, fills in the network namespace of local pods the control plane left without one.
import type { MeshSnapshot } from '../../core/model/types';
import { matchByIp, withNetns, workloadsWithoutNetns } from './match';
import { scanNetns, type NetnsScan, type ScanOptions } from './scan';

export interface DiscoveryLogger {
  debug(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

export interface NetnsDiscoveryOptions {
  readonly cgroupRoot: string;
  readonly nodeName: string;
  readonly logger: DiscoveryLogger;
  readonly procRoot?: string;
  /** The scan itself (tests may pass one over a prepared tree); default scanNetns. */
  readonly scan?: (opts: ScanOptions) => Promise<NetnsScan>;
}

/** What the last pass found, for /config_dump. */
export interface DiscoveryStatus {
  readonly lastScanAt?: string;
  readonly lastScanMs?: number;
  readonly cgroups?: number;
  readonly namespaces?: number;
  readonly hostNetwork?: number;
  /** uid → netns path used for enrollment. */
  readonly discovered: Readonly<Record<string, string>>;
  /** Local workloads without a namespace (missing or ambiguous). */
  readonly unresolved: readonly string[];
  readonly lastError?: string;
}

/**
 * Why a `/proc/<pid>/ns/net` path and not an open fd: holding a namespace fd would keep a deleted pod's namespace alive
 * (and its cookie enrolled) until we noticed. The path needs no cleanup; it is re-validated on every pass (the scan
 * checks the pid still lives in the same namespace inode), and the reconciler keys its cookie cache by path + inode.
 * Between two passes the process we read through may exit: the reconcile then reports that pod as failed and the next
 * pass (state change, or the periodic re-check) names another process of the same namespace.
 */
export class NetnsDiscovery {
  private readonly scan: (opts: ScanOptions) => Promise<NetnsScan>;
  /** netns inode → pid read through last time (kept while alive so paths stay stable). */
  private preferred = new Map<number, number>();
  /** uid → path currently used, to log only changes. */
  private current = new Map<string, string>();
  /** Workloads already warned about (missing / ambiguous); cleared once found, so a later loss warns again. */
  private readonly warned = new Set<string>();
  private lastError: string | undefined;
  private last: NetnsScan | undefined;
  private lastAt: Date | undefined;
  private unresolved: string[] = [];
  /** Passes run one at a time, in call order; a call arriving while one waits joins it with the newer snapshot. */
  private tail: Promise<unknown> = Promise.resolve();
  private queued: { snapshot: MeshSnapshot; result: Promise<MeshSnapshot> } | undefined;

  constructor(private readonly opts: NetnsDiscoveryOptions) {
    this.scan = opts.scan ?? scanNetns;
  }

  /**
   * `s` with the netns of local pods filled in from the node (never overriding one the control plane gave). Never
   * rejects: when the walk fails the snapshot comes back unchanged and the error is logged once.
   */
  enrich(s: MeshSnapshot): Promise<MeshSnapshot> {
    if (this.queued) {
      this.queued.snapshot = s;
      return this.queued.result;
    }
    const job = { snapshot: s, result: undefined as unknown as Promise<MeshSnapshot> };
    job.result = this.tail.then(() => {
      if (this.queued === job) this.queued = undefined;
      return this.pass(job.snapshot);
    });
    this.queued = job;
    this.tail = job.result.catch(() => undefined);
    return job.result;
  }

  status(): DiscoveryStatus {
    return {
      lastScanAt: this.lastAt?.toISOString(),
      lastScanMs: this.last && Math.round(this.last.durationMs * 10) / 10,
      cgroups: this.last?.cgroups,
      namespaces: this.last?.namespaces.length,
      hostNetwork: this.last?.hostNetwork,
      discovered: Object.fromEntries(this.current),
      unresolved: [...this.unresolved],
      lastError: this.lastError,
    };
  }

  private async pass(s: MeshSnapshot): Promise<MeshSnapshot> {
    const log = this.opts.logger;
    const wanted = workloadsWithoutNetns(s, this.opts.nodeName);
    const wantedUids = new Set(wanted.map((w) => w.uid));
    for (const uid of [...this.warned]) if (!wantedUids.has(uid)) this.warned.delete(uid);
    if (wanted.length === 0) {
      if (this.current.size > 0) this.current = new Map();
      this.unresolved = [];
      return s; // every local pod's namespace came from the control plane (or there are none): no walk needed
    }
    let scan: NetnsScan;
    try {
      scan = await this.scan({ cgroupRoot: this.opts.cgroupRoot, procRoot: this.opts.procRoot, preferredPids: this.preferred });
    } catch (err) {
      const message = `walking ${this.opts.cgroupRoot}: ${(err as Error).message}`;
      if (message !== this.lastError) log.warn({ err, cgroupRoot: this.opts.cgroupRoot }, 'netns discovery failed; pods without a netns from the control plane stay unenrolled until it works');
      this.lastError = message;
      return s;
    }
    this.lastError = undefined;
    this.last = scan;
    this.lastAt = new Date();
    this.preferred = new Map(scan.namespaces.map((n) => [n.ino, n.pid]));

    const match = matchByIp(wanted, scan.namespaces);
    const next = new Map<string, string>();
    for (const [uid, ns] of match.resolved) {
      next.set(uid, ns.path);
      this.warned.delete(uid);
      if (this.current.get(uid) !== ns.path) log.debug({ workload: uid, netns: ns.path, ino: ns.ino, cgroups: ns.cgroups, addresses: ns.addresses }, 'pod network namespace discovered');
    }
    for (const w of match.missing) {
      if (this.warned.has(w.uid)) continue;
      this.warned.add(w.uid);
      log.warn(
        { workload: w.uid, ip: w.ip, cgroupRoot: this.opts.cgroupRoot },
        'no network namespace found for a local pod (no process below --cgroup-root has its IP); it is not redirected until one appears',
      );
    }
    for (const { workload: w, candidates } of match.ambiguous) {
      if (this.warned.has(w.uid)) continue;
      this.warned.add(w.uid);
      log.warn(
        { workload: w.uid, ip: w.ip, namespaces: candidates.map((c) => ({ ino: c.ino, cgroups: c.cgroups })) },
        "several network namespaces hold a local pod's IP; it is not redirected until only one does",
      );
    }
    this.unresolved = [...match.missing.map((w) => w.uid), ...match.ambiguous.map((a) => a.workload.uid)].sort();
    log.debug(
      {
        cgroups: scan.cgroups,
        populated: scan.populated,
        namespaces: scan.namespaces.length,
        hostNetwork: scan.hostNetwork,
        resolved: next.size,
        unresolved: this.unresolved.length,
        ms: Math.round(scan.durationMs * 10) / 10,
      },
      'netns discovery pass',
    );
    this.current = next;
    return withNetns(s, next);
  }
}
