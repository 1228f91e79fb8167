// Idle-time memory reclaim: once a load burst is over and the agent is quiet, a full GC and glibc malloc_trim give the burst's memory back to the OS.
import * as v8 from 'node:v8';
import * as vm from 'node:vm';
import { SmeshError } from '../../core/errors';
import { silentLogger, type Logger } from '../../core/telemetry/logger';
import type { MeshMetrics } from '../telemetry/metrics';
import { Counter } from '../../core/telemetry/prom';

/**
 * Why: V8 runs a full GC only when allocation asks for one, so after a burst (10,000 connections) an idle agent keeps
 * the dead objects of the burst, and the heap pages they hold, until later load allocates enough; the native engines'
 * worker threads free their buffers into glibc arenas that keep the pages mapped. Neither comes back by itself while
 * the agent is idle, which is exactly when it could. So: every interval the reclaimer reads counters the agent keeps
 * anyway (connections opened, requests, bytes); after `quietIntervals` quiet intervals in a row, if RSS is more than
 * the threshold (`thresholdBytes` or `thresholdFraction` of the reference, whichever is smaller) above its reference (the lowest RSS seen since start, or what the last reclaim left), it runs one
 * full GC and malloc_trim(0) — at most once per `minGapMs`, never while traffic flows.
 */
export interface ReclaimSettings {
  /** How often activity and RSS are read (ms). */
  readonly intervalMs: number;
  /** Quiet intervals in a row before a reclaim (the first quiet one may still be the tail of the burst). */
  readonly quietIntervals: number;
  /** An interval is quiet with at most this many new connections + requests per second… */
  readonly quietEventsPerSecond: number;
  /** …and at most this many bytes relayed per second. */
  readonly quietBytesPerSecond: number;
  /** RSS must exceed its reference by more than this (bytes)… */
  readonly thresholdBytes: number;
  /** …or by more than this fraction of the reference, if that is less (a 75 MiB agent: 7.5 MiB, inside the 20 % goal). */
  readonly thresholdFraction: number;
  /** At most one reclaim per this many ms. */
  readonly minGapMs: number;
}

export const DEFAULT_RECLAIM_SETTINGS: ReclaimSettings = Object.freeze({
  intervalMs: 5_000,
  quietIntervals: 2,
  quietEventsPerSecond: 5,
  quietBytesPerSecond: 256 * 1024,
  thresholdBytes: 16 * 1048576,
  thresholdFraction: 0.1,
  minGapMs: 30_000,
});

/** Cumulative activity counters (they only grow); the reclaimer looks at their change per interval. */
export interface ActivityReading {
  /** Connections opened + HTTP requests. */
  readonly events: number;
  /** Bytes relayed, both directions. */
  readonly bytes: number;
}

export type ReclaimDecision = { readonly action: 'reclaim' } | { readonly action: 'wait'; readonly reason: 'busy' | 'settling' | 'below_threshold' | 'rate_limited' };

export interface ReclaimPolicyInput {
  /** Quiet intervals in a row, the current one included (0: this interval had load). */
  readonly quietStreak: number;
  readonly rssBytes: number;
  /** What RSS is compared with: the lowest seen since start, or what the last reclaim left if that is higher. */
  readonly referenceBytes: number;
  readonly nowMs: number;
  readonly lastReclaimMs: number | undefined;
}

/** How far above its reference RSS may be before a quiet agent reclaims (bytes). */
export function reclaimThreshold(referenceBytes: number, settings: ReclaimSettings = DEFAULT_RECLAIM_SETTINGS): number {
  return Math.min(settings.thresholdBytes, settings.thresholdFraction * referenceBytes);
}

/** The policy alone, pure: reclaim when quiet long enough, above the threshold and not reclaimed too recently. */
export function decideReclaim(input: ReclaimPolicyInput, settings: ReclaimSettings = DEFAULT_RECLAIM_SETTINGS): ReclaimDecision {
  if (input.quietStreak === 0) return { action: 'wait', reason: 'busy' };
  if (input.quietStreak < settings.quietIntervals) return { action: 'wait', reason: 'settling' };
  if (input.rssBytes - input.referenceBytes <= reclaimThreshold(input.referenceBytes, settings)) return { action: 'wait', reason: 'below_threshold' };
  if (input.lastReclaimMs !== undefined && input.nowMs - input.lastReclaimMs < settings.minGapMs) return { action: 'wait', reason: 'rate_limited' };
  return { action: 'reclaim' };
}

/** One reclaim, as /memory shows it (bytes, ms). */
export interface ReclaimRecord {
  readonly at: string;
  readonly rssBefore: number;
  readonly rssAfter: number;
  readonly heapUsedBefore: number;
  readonly heapUsedAfter: number;
  /** malloc_trim released something (undefined: no addon binding). */
  readonly trimmed: boolean | undefined;
  readonly durationMs: number;
}

export interface ReclaimStatus {
  readonly enabled: boolean;
  readonly disabledBy?: string;
  readonly settings: ReclaimSettings;
  readonly baselineRss?: number;
  readonly referenceRss?: number;
  readonly reclaims: number;
  readonly last?: ReclaimRecord;
  readonly lastDecision?: ReclaimDecision;
}

export interface ReclaimDeps {
  /** Monotonic milliseconds. */
  readonly now: () => number;
  readonly rss: () => number;
  readonly heapUsed?: () => number;
  readonly activity: () => ActivityReading | Promise<ActivityReading>;
  readonly fullGc: () => void;
  /**
   * Resolves once what the GC released has reached malloc: V8 frees ArrayBuffer backing stores (every Buffer's memory)
   * after the collection, on another thread, so a trim right after gc() finds nothing to give back. Absent: no wait.
   */
  readonly settle?: () => Promise<void>;
  /** malloc_trim(0); absent when the addon has no such binding. */
  readonly trim?: () => boolean;
  readonly timers?: { setInterval(fn: () => void, ms: number): unknown; clearInterval(handle: unknown): void };
  readonly logger?: Logger;
  /** Counts reclaims (smesh_memory_reclaims_total). */
  readonly onReclaim?: (r: ReclaimRecord) => void;
  /** Wall-clock stamp for records (ISO). */
  readonly wallClock?: () => string;
}

const realTimers = {
  setInterval: (fn: () => void, ms: number): unknown => setInterval(fn, ms).unref(),
  clearInterval: (h: unknown): void => clearInterval(h as NodeJS.Timeout),
};

export class MemoryReclaimer {
  readonly settings: ReclaimSettings;
  private readonly log: Logger;
  private timer: unknown;
  private prev: ActivityReading | undefined;
  private prevAt = 0;
  private quietStreak = 0;
  private lowestRss: number | undefined;
  private afterLast: number | undefined;
  private lastReclaimMs: number | undefined;
  private last: ReclaimRecord | undefined;
  private lastDecision: ReclaimDecision | undefined;
  private count = 0;
  private checking = false;

  constructor(
    private readonly deps: ReclaimDeps,
    settings: Partial<ReclaimSettings> = {},
  ) {
    this.settings = Object.freeze({ ...DEFAULT_RECLAIM_SETTINGS, ...settings });
    for (const [k, v] of Object.entries(this.settings)) {
      if (!(typeof v === 'number' && Number.isFinite(v) && v >= 0)) throw new SmeshError('SMESH_ERR_CONFIG', `memory reclaim setting ${k}: ${String(v)} is not a finite number >= 0`);
    }
    if (this.settings.intervalMs <= 0) throw new SmeshError('SMESH_ERR_CONFIG', 'memory reclaim setting intervalMs must be > 0');
    this.log = deps.logger ?? silentLogger();
  }

  /** Takes the baseline (call once the agent is up) and checks every interval from here on. */
  async start(): Promise<void> {
    this.lowestRss = this.deps.rss();
    this.prev = await this.deps.activity();
    this.prevAt = this.deps.now();
    this.timer = (this.deps.timers ?? realTimers).setInterval(() => void this.check().catch((err) => this.log.warn({ err }, 'memory reclaim check failed')), this.settings.intervalMs);
  }

  stop(): void {
    if (this.timer !== undefined) (this.deps.timers ?? realTimers).clearInterval(this.timer);
    this.timer = undefined;
  }

  /** One interval: reads activity and RSS, decides, reclaims when the policy says so. */
  async check(): Promise<ReclaimDecision> {
    if (this.checking) return { action: 'wait', reason: 'busy' };
    this.checking = true;
    try {
      const now = this.deps.now();
      const act = await this.deps.activity();
      const seconds = Math.max((now - this.prevAt) / 1000, 1e-3);
      const prev = this.prev ?? act;
      const eventsPerSecond = Math.max(0, act.events - prev.events) / seconds;
      const bytesPerSecond = Math.max(0, act.bytes - prev.bytes) / seconds;
      this.prev = act;
      this.prevAt = now;
      const quiet = eventsPerSecond <= this.settings.quietEventsPerSecond && bytesPerSecond <= this.settings.quietBytesPerSecond;
      this.quietStreak = quiet ? this.quietStreak + 1 : 0;
      const rss = this.deps.rss();
      this.lowestRss = Math.min(this.lowestRss ?? rss, rss);
      const reference = Math.max(this.lowestRss, this.afterLast ?? 0);
      const decision = decideReclaim({ quietStreak: this.quietStreak, rssBytes: rss, referenceBytes: reference, nowMs: now, lastReclaimMs: this.lastReclaimMs }, this.settings);
      this.lastDecision = decision;
      if (decision.action === 'reclaim') await this.reclaim(rss, now);
      return decision;
    } finally {
      this.checking = false;
    }
  }

  private async reclaim(rssBefore: number, now: number): Promise<void> {
    const heapUsed = this.deps.heapUsed ?? (() => process.memoryUsage().heapUsed);
    const heapUsedBefore = heapUsed();
    const t0 = performance.now();
    this.deps.fullGc();
    await this.deps.settle?.();
    let trimmed: boolean | undefined;
    try {
      trimmed = this.deps.trim?.();
    } catch (err) {
      this.log.warn({ err }, 'malloc_trim failed');
    }
    const rssAfter = this.deps.rss();
    const record: ReclaimRecord = {
      at: (this.deps.wallClock ?? (() => new Date().toISOString()))(),
      rssBefore,
      rssAfter,
      heapUsedBefore,
      heapUsedAfter: heapUsed(),
      trimmed,
      durationMs: Math.round((performance.now() - t0) * 10) / 10,
    };
    this.lastReclaimMs = now;
    this.afterLast = rssAfter;
    this.last = record;
    this.count++;
    this.deps.onReclaim?.(record);
    this.log.debug({ rssBefore, rssAfter, heapUsedBefore, heapUsedAfter: record.heapUsedAfter, trimmed, durationMs: record.durationMs }, 'quiet after load: memory given back (full GC, malloc_trim)');
  }

  status(): ReclaimStatus {
    return {
      enabled: true,
      settings: this.settings,
      baselineRss: this.lowestRss,
      referenceRss: this.lowestRss === undefined ? undefined : Math.max(this.lowestRss, this.afterLast ?? 0),
      reclaims: this.count,
      last: this.last,
      lastDecision: this.lastDecision,
    };
  }
}

let disabledBy: string | undefined;

/** Turns the reclaim off for this process (the launcher does it for SMESH_NO_RECLAIM=1: bench comparisons). */
export function disableMemoryReclaim(reason: string): void {
  disabledBy = reason;
}

/** Why the reclaim is off in this process, or undefined when it is on. */
export function memoryReclaimDisabledBy(): string | undefined {
  return disabledBy;
}

let exposedGc: (() => void) | undefined;

/** V8's full GC without `--expose-gc` on the command line: the flag set at runtime exposes `gc` to a new context only. */
/**
 * Waits (at most 1 s, polling every 20 ms) until the ArrayBuffer memory the last GC released has been freed: V8 frees
 * backing stores after the collection on a background thread, so malloc_trim right after gc() would find them still
 * allocated (measured: a trim at once gave back ~0 MiB of 160 MiB of dropped Buffers, after ~50 ms all of it).
 */
export async function arrayBuffersFreed(): Promise<void> {
  const deadline = performance.now() + 1000;
  let last = process.memoryUsage().arrayBuffers;
  while (performance.now() < deadline) {
    await new Promise((r) => setTimeout(r, 20));
    const now = process.memoryUsage().arrayBuffers;
    if (now >= last) return;
    last = now;
  }
}

export function fullGcFunction(): () => void {
  if (!exposedGc) {
    v8.setFlagsFromString('--expose-gc');
    const gc: unknown = vm.runInNewContext('gc');
    v8.setFlagsFromString('--no-expose-gc');
    if (typeof gc !== 'function') throw new SmeshError('SMESH_ERR_NATIVE', 'V8 did not expose gc() after --expose-gc was set at runtime');
    exposedGc = gc as () => void;
  }
  return exposedGc;
}

/** Cumulative events and bytes from the agent's own metrics. */
async function agentActivity(metrics: MeshMetrics): Promise<ActivityReading> {
  const total = async (c: { get(): Promise<{ values: Array<{ value: number }> }> }): Promise<number> => (await c.get()).values.reduce((s, v) => s + v.value, 0);
  const [opened, requests, sent, received] = await Promise.all([total(metrics.tcpOpened), total(metrics.requests), total(metrics.tcpSentBytes), total(metrics.tcpReceivedBytes)]);
  return { events: opened + requests, bytes: sent + received };
}

/** What the agent runs: a reclaimer over its metrics, the addon's malloc_trim when built, V8's full GC; started. */
export async function startAgentMemoryReclaim(opts: { metrics: MeshMetrics; logger?: Logger; settings?: Partial<ReclaimSettings> }): Promise<{ status(): ReclaimStatus; stop(): void }> {
  const off = memoryReclaimDisabledBy();
  if (off) {
    opts.logger?.info({ disabledBy: off }, 'idle-time memory reclaim disabled');
    return { status: () => ({ enabled: false, disabledBy: off, settings: { ...DEFAULT_RECLAIM_SETTINGS, ...opts.settings }, reclaims: 0 }), stop: () => undefined };
  }
  let trim: (() => boolean) | undefined;
  try {
    const raw = (await import('../native/raw')).loadRawNative();
    if (typeof raw.mallocTrim === 'function') trim = () => raw.mallocTrim();
  } catch {
    trim = undefined; // no addon (unit-test agents with --no-bpf): GC only
  }
  const reclaims = new Counter({ name: 'smesh_memory_reclaims_total', help: 'Idle-time memory reclaims (full GC + malloc_trim) after load', registers: [opts.metrics.registry] });
  const reclaimer = new MemoryReclaimer(
    {
      now: () => performance.now(),
      rss: () => process.memoryUsage.rss(),
      activity: () => agentActivity(opts.metrics),
      fullGc: fullGcFunction(),
      settle: arrayBuffersFreed,
      trim,
      logger: opts.logger,
      onReclaim: () => reclaims.inc(),
    },
    opts.settings,
  );
  await reclaimer.start();
  return reclaimer;
}
