// V8 heap sizing for the node agent: lean old-generation growth and a young generation grown once to a bounded size, set at runtime by the launcher (bin/smesh).
import { PerformanceObserver } from 'node:perf_hooks';
import * as v8 from 'node:v8';

/**
 * Why: a full sync at 10k services / 50k endpoints allocates a few hundred MB of short-lived objects. With V8's
 * default young generation (semi-spaces growing to 16 MiB, 32 MiB committed) the sync is fast but the agent keeps that
 * memory for good (V8 does not shrink the new space of an idle process here); frozen at its initial 1 MiB semi-space
 * the agent stays lean but spends a large share of the sync in scavenges, each promoting whatever of the current xDS
 * chunk is still live. So the young generation may grow during the sync up to `maxSemiSpaceMiB` and no further, by
 * setting `--semi-space-growth-factor` (read by V8 at every GC, unlike `--max-semi-space-size`, which only counts
 * when the isolate is created): 1 (frozen), or the factor that reaches the cap in one growth.
 * bench/README.md ("Scale") has the measurements.
 */
export interface HeapTuning {
  /** Old generation grows this many percent over the live heap (V8's default: up to 4×). */
  readonly heapGrowingPercent: number;
  /** The young generation's semi-space stops growing at this size (MiB; a power of two). */
  readonly maxSemiSpaceMiB: number;
}

export const AGENT_HEAP_TUNING: HeapTuning = Object.freeze({ heapGrowingPercent: 20, maxSemiSpaceMiB: 4 });

/** Both semi-spaces of the young generation (V8 reports them together as new_space). */
function newSpaceBytes(): number {
  return v8.getHeapSpaceStatistics().find((s) => s.space_name === 'new_space')?.space_size ?? 0;
}

export interface HeapGuard {
  /**
   * Lets the young generation grow towards its cap (call when the heavy work starts: the agent's first xDS response)
   * and freezes it once the cap is reached; cheap, call it often (the agent calls it after each xDS response).
   */
  check(): void;
  /** What is in effect (startup log, tests). */
  state(): { armed: boolean; frozen: boolean; newSpaceMiB: number };
}

/** A guard that does nothing: agents not started through the launcher keep V8's defaults. */
export const NO_HEAP_GUARD: HeapGuard = Object.freeze({ check: () => undefined, state: () => ({ armed: false, frozen: false, newSpaceMiB: newSpaceBytes() / 1048576 }) });

let installed: HeapGuard | undefined;

/** The guard applyHeapTuning installed in this process, if any. */
export function heapGuard(): HeapGuard {
  return installed ?? NO_HEAP_GUARD;
}

/**
 * Applies `tuning` to this isolate; call before the agent allocates anything. The young generation stays at its
 * initial size (loading the agent's modules would otherwise grow it to the cap and beyond in one synchronous burst)
 * until the first check(); from then on its next growth goes straight to the cap, and it is frozen there from a GC
 * observer and from every check() (the observer alone runs too late: a busy turn can grow the space more than once).
 */
export function applyHeapTuning(tuning: HeapTuning = AGENT_HEAP_TUNING): HeapGuard {
  v8.setFlagsFromString(`--heap-growing-percent=${tuning.heapGrowingPercent} --semi-space-growth-factor=1`);
  const limit = 2 * tuning.maxSemiSpaceMiB * 1048576;
  let armed = false;
  let frozen = false;
  const check = (): void => {
    if (frozen) return;
    if (newSpaceBytes() >= limit) {
      frozen = true;
      v8.setFlagsFromString('--semi-space-growth-factor=1');
      observer.disconnect();
      return;
    }
    // One growth from here reaches the cap (V8 multiplies the semi-space by the factor): a second one would need
    // another cap's worth of survivors before the next check.
    const f = Math.max(2, Math.floor(limit / newSpaceBytes()));
    if (f !== factor) v8.setFlagsFromString(`--semi-space-growth-factor=${(factor = f)}`);
    if (!armed) {
      armed = true;
      observer.observe({ entryTypes: ['gc'] });
    }
  };
  let factor = 1;
  const observer = new PerformanceObserver(check);
  installed = { check, state: () => ({ armed, frozen, newSpaceMiB: newSpaceBytes() / 1048576 }) };
  return installed;
}
