// Pure matching of this node's workloads to discovered network namespaces by pod IP, and the snapshot the reconciler then sees.
import type { MeshSnapshot, Workload } from '../../core/model/types';
import { addressKey } from './proc-net';
import type { DiscoveredNetns } from './scan';

/** Local meshed workloads whose network namespace the control plane did not give (those it gives win). */
export function workloadsWithoutNetns(s: MeshSnapshot, nodeName: string): Workload[] {
  const out: Workload[] = [];
  for (const w of s.workloads.values()) if (w.node === nodeName && w.meshed && !w.netns) out.push(w);
  return out;
}

export interface NetnsMatch {
  /** uid → the namespace holding the workload's IP. */
  readonly resolved: ReadonlyMap<string, DiscoveredNetns>;
  /** No discovered namespace has the workload's IP (pod not started yet, gone, or its processes are invisible to us). */
  readonly missing: readonly Workload[];
  /** Several namespaces hold the IP: none is chosen, since enrolling the wrong one would redirect another pod's traffic. */
  readonly ambiguous: ReadonlyArray<{ readonly workload: Workload; readonly candidates: readonly DiscoveredNetns[] }>;
}

export function matchByIp(workloads: readonly Workload[], namespaces: readonly DiscoveredNetns[]): NetnsMatch {
  const byAddress = new Map<string, DiscoveredNetns[]>();
  for (const ns of namespaces) {
    for (const a of ns.addresses) {
      const key = addressKey(a);
      if (key === undefined) continue;
      const list = byAddress.get(key) ?? [];
      if (!list.some((x) => x.ino === ns.ino)) list.push(ns);
      byAddress.set(key, list);
    }
  }
  const resolved = new Map<string, DiscoveredNetns>();
  const missing: Workload[] = [];
  const ambiguous: Array<{ workload: Workload; candidates: DiscoveredNetns[] }> = [];
  for (const w of workloads) {
    const key = addressKey(w.ip);
    const found = key === undefined ? undefined : byAddress.get(key);
    if (!found || found.length === 0) missing.push(w);
    else if (found.length > 1) ambiguous.push({ workload: w, candidates: found });
    else resolved.set(w.uid, found[0]!);
  }
  return { resolved, missing, ambiguous };
}

/** `s` with the given workloads' netns filled in (a new snapshot; `s` itself is never changed). */
export function withNetns(s: MeshSnapshot, paths: ReadonlyMap<string, string>): MeshSnapshot {
  if (paths.size === 0) return s;
  const workloads = new Map(s.workloads);
  for (const [uid, netns] of paths) {
    const w = workloads.get(uid);
    if (w && !w.netns) workloads.set(uid, { ...w, netns });
  }
  return { ...s, workloads };
}
