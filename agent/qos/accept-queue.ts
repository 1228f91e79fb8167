// The node proxy's accept queue: new connections wait here for their per-connection work on the JavaScript thread (decision, policy, dial) and are served latency before normal before bulk, and within a class by deficit round robin over the thread time each source workload's connections took, in proportion to their TrafficShaping weights; a turn is bounded so relays and decisions of open connections interleave with a connection flood.
import type { TrafficPriority } from '../../core/model/types';
import { type Clock, monotonicClock } from './rate-limit';

export type PriorityClass = TrafficPriority;

/** Who a new connection is accounted to: the fair-share flow (the source workload), its class and weight. */
export interface AcceptClass {
  readonly flow: string;
  readonly priority: PriorityClass;
  /** 1–1000, 100 is the default share. */
  readonly weight: number;
}

/** The class of a connection with no TrafficShaping QoS: its source workload (else address) as the flow, normal, weight 100. */
export function defaultAcceptClass(source: { readonly uid: string } | undefined, sourceIp: string | undefined): AcceptClass {
  return { flow: source?.uid ?? `ip:${sourceIp ?? 'unknown'}`, priority: 'normal', weight: 100 };
}

function flowKey(cls: AcceptClass): string {
  return `${cls.flow}#${cls.priority}`;
}

export type AcceptRefusal = 'queue_full' | 'queue_timeout';

export interface AcceptQueueOptions {
  /** Serve by class and deficit round robin (true, the default) or run every connection's work at once, in accept order. */
  readonly fairShare?: boolean;
  /** Thread time one turn may spend before it yields to I/O (default 4 ms). */
  readonly turnMs?: number;
  /** DRR quantum of a weight-100 flow, in ms of thread time (default 0.5). */
  readonly quantumMs?: number;
  /** A connection that waited longer than this is refused (default 2000 ms). */
  readonly maxWaitMs?: number;
  /** Connections one flow may have waiting (default 1024); more are refused at once. */
  readonly maxPerFlow?: number;
  readonly clock?: Clock;
  /** Schedules the next turn after pending I/O (default setImmediate). */
  readonly defer?: (fn: () => void) => void;
  /** Refusals, by reason. */
  readonly onRefused?: (reason: AcceptRefusal, cls: AcceptClass) => void;
  /** A connection's work threw (a bug): reported here, and the queue goes on with the next connection. */
  readonly onError?: (err: unknown, cls: AcceptClass) => void;
}

interface Entry {
  readonly at: number;
  readonly run: () => void;
  readonly refuse: (reason: AcceptRefusal, detail: string) => void;
  readonly gone: () => boolean;
}

interface Flow {
  readonly cls: AcceptClass;
  readonly entries: Entry[];
  head: number;
  deficit: number;
  served: number;
  refused: number;
  busyMs: number;
}

const CLASSES: readonly PriorityClass[] = ['latency', 'normal', 'bulk'];

export const DEFAULT_ACCEPT_TURN_MS = 4;
export const DEFAULT_ACCEPT_QUANTUM_MS = 0.5;
export const DEFAULT_ACCEPT_MAX_WAIT_MS = 2000;
export const DEFAULT_ACCEPT_MAX_PER_FLOW = 1024;
/** Idle flows kept for their counters. */
const MAX_FLOWS = 1024;

export class AcceptQueue {
  private readonly fairShare: boolean;
  private readonly turnMs: number;
  private readonly quantumMs: number;
  private readonly maxWaitMs: number;
  private readonly maxPerFlow: number;
  private readonly clock: Clock;
  private readonly defer: (fn: () => void) => void;
  private readonly flows = new Map<string, Flow>();
  /** Flows with waiting connections, per class, in round-robin order. */
  private readonly active: Record<PriorityClass, Flow[]> = { latency: [], normal: [], bulk: [] };
  private scheduled = false;
  private waiting = 0;
  private turns = 0;
  private yields = 0;

  constructor(opts: AcceptQueueOptions = {}) {
    this.fairShare = opts.fairShare ?? true;
    this.turnMs = opts.turnMs ?? DEFAULT_ACCEPT_TURN_MS;
    this.quantumMs = opts.quantumMs ?? DEFAULT_ACCEPT_QUANTUM_MS;
    this.maxWaitMs = opts.maxWaitMs ?? DEFAULT_ACCEPT_MAX_WAIT_MS;
    this.maxPerFlow = opts.maxPerFlow ?? DEFAULT_ACCEPT_MAX_PER_FLOW;
    this.clock = opts.clock ?? monotonicClock;
    this.defer = opts.defer ?? ((fn) => setImmediate(fn));
    this.onRefused = opts.onRefused;
    this.onError = opts.onError;
  }

  private readonly onRefused: AcceptQueueOptions['onRefused'];
  private readonly onError: AcceptQueueOptions['onError'];

  /** Connections waiting now. */
  get depth(): number {
    return this.waiting;
  }

  /**
   * Queues a new connection's work. `run` does it (its thread time is charged to the flow); `refuse` is called
   * instead when the flow's queue is full or the connection waited past the limit; `gone` connections (closed while
   * waiting) are dropped silently.
   */
  submit(cls: AcceptClass, run: () => void, refuse: (reason: AcceptRefusal, detail: string) => void, gone: () => boolean = () => false): void {
    if (!this.fairShare) {
      run();
      return;
    }
    // One DRR flow per workload and class (as in the engine): a workload's latency requests and its bulk ones each
    // compete in their own class.
    const key = flowKey(cls);
    let flow = this.flows.get(key);
    if (!flow) {
      flow = { cls, entries: [], head: 0, deficit: 0, served: 0, refused: 0, busyMs: 0 };
      this.flows.set(key, flow);
    } else if (flow.cls.weight !== cls.weight && flow.entries.length === flow.head) {
      // A weight change takes effect once the flow's queue is empty.
      flow = this.reclassify(flow, cls);
    }
    if (flow.entries.length - flow.head >= this.maxPerFlow) {
      flow.refused++;
      this.onRefused?.('queue_full', flow.cls);
      refuse('queue_full', `accept queue of ${cls.flow} is full (${this.maxPerFlow} connections waiting)`);
      return;
    }
    if (flow.entries.length === flow.head) this.active[flow.cls.priority].push(flow);
    flow.entries.push({ at: this.clock(), run, refuse, gone });
    this.waiting++;
    this.schedule();
  }

  private reclassify(flow: Flow, cls: AcceptClass): Flow {
    const next: Flow = { ...flow, cls, entries: [], head: 0, deficit: 0 };
    this.flows.set(flowKey(cls), next);
    return next;
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    this.defer(() => {
      this.scheduled = false;
      this.turn();
    });
  }

  /** One turn: serves waiting connections by class and DRR until the queue is empty or the turn's time is used. */
  turn(): void {
    this.turns++;
    const start = this.clock();
    while (this.waiting > 0) {
      if (this.clock() - start >= this.turnMs) {
        this.yields++;
        this.schedule();
        return;
      }
      const cls = CLASSES.find((c) => this.active[c].length > 0);
      if (!cls) return;
      const list = this.active[cls];
      const flow = list[0];
      if (flow.deficit <= 0) flow.deficit += (this.quantumMs * flow.cls.weight) / 100;
      // Serve the flow's head while it has credit (at least one connection per visit).
      while (flow.deficit > 0 && flow.head < flow.entries.length && this.clock() - start < this.turnMs) this.serveHead(flow);
      if (flow.head >= flow.entries.length) {
        flow.entries.length = 0;
        flow.head = 0;
        flow.deficit = 0;
        list.shift();
        // Idle flows keep their counters for /config_dump, up to a bound (a flood of new source addresses cannot grow it).
        if (this.flows.size > MAX_FLOWS) this.flows.delete(flowKey(flow.cls));
      } else if (flow.deficit <= 0) {
        list.push(list.shift()!);
      }
    }
  }

  private serveHead(flow: Flow): void {
    const e = flow.entries[flow.head];
    flow.entries[flow.head] = undefined as unknown as Entry;
    flow.head++;
    this.waiting--;
    if (e.gone()) return;
    const t0 = this.clock();
    if (t0 - e.at > this.maxWaitMs) {
      flow.refused++;
      this.onRefused?.('queue_timeout', flow.cls);
      e.refuse('queue_timeout', `waited ${Math.round(t0 - e.at)} ms in the accept queue (limit ${this.maxWaitMs} ms)`);
      return;
    }
    try {
      e.run();
    } catch (err) {
      this.onError?.(err, flow.cls);
    } finally {
      // At least 1 µs, so a clock that did not move still ends the flow's credit.
      const spent = Math.max(this.clock() - t0, 0.001);
      flow.deficit -= spent;
      flow.busyMs += spent;
      flow.served++;
    }
  }

  /** For /config_dump: the queue's settings and, per flow, its class, waiting connections and what it was served. */
  dump(): unknown {
    return {
      fairShare: this.fairShare,
      turnMs: this.turnMs,
      quantumMs: this.quantumMs,
      maxWaitMs: this.maxWaitMs,
      maxPerFlow: this.maxPerFlow,
      waiting: this.waiting,
      turns: this.turns,
      yields: this.yields,
      flows: [...this.flows.values()].map((f) => ({
        flow: f.cls.flow,
        priority: f.cls.priority,
        weight: f.cls.weight,
        waiting: f.entries.length - f.head,
        served: f.served,
        refused: f.refused,
        threadMs: Math.round(f.busyMs * 1000) / 1000,
      })),
    };
  }
}
