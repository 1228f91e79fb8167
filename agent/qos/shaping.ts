// TrafficShaping enforcement: token buckets and concurrency counts per rule and scope, asked by the outbound and inbound proxies per connection and per HTTP request.
import type { Counter } from 'prom-client';
import { matchHolds } from '../http/route';
import type { StateView } from '../state/store';
import type { HboneByteLimit, HboneQosState, HboneStreamQos } from '../native/hbone-types';
import type { MeshSnapshot, QosSettings, Service, ShapingRule, Workload } from '../../core/model/types';
import { monotonicClock, rateLimitHeaders, TokenBucket, type BucketState, type Clock } from './rate-limit';
import { type AcceptClass, defaultAcceptClass } from './accept-queue';

export type RateLimitDirection = 'outbound' | 'inbound';
export type RateLimitReason = 'connection_rate' | 'max_connections' | 'request_rate' | 'queued' | 'bytes_per_second';
export type RateLimitedCounter = Pick<Counter<'direction' | 'source_workload' | 'destination_service' | 'reason'>, 'inc'>;
/** Bytes that waited for a bytesPerSecond bucket; reason `bytes_per_second_upload` / `bytes_per_second_download`. */
export type RateLimitedBytesCounter = Pick<Counter<'direction' | 'source_workload' | 'destination_service' | 'reason'>, 'inc'>;

/** A connection let through: `release` when it closes (frees its max_connections slots; idempotent). */
export interface ConnectionAdmitted {
  readonly kind: 'admit';
  readonly release: () => void;
}

/** A connection over a limit: refused now, or (`queue`) after waiting up to `maxWaitMs` with `ConnectionShaper.wait`. */
export interface ConnectionLimited {
  readonly kind: 'limited';
  readonly reason: 'connection_rate' | 'max_connections';
  readonly rule: string;
  readonly detail: string;
  readonly queueMs?: number;
}

export type ConnectionVerdict = ConnectionAdmitted | ConnectionLimited;

/** An HTTP request over a requestRate: answer 429 with these headers. */
export interface RequestLimited {
  readonly status: 429;
  readonly rule: string;
  readonly headers: Record<string, string>;
  readonly body: string;
}

/** Who is connecting to what, as the proxy knows it. */
export interface ConnectionFacts {
  readonly direction: RateLimitDirection;
  /** Outbound: the source (its rules apply); inbound: the source when known (labels only). */
  readonly source?: Workload;
  /** Inbound: the source address, when `source` is not given (looked up for the metric's source_workload). */
  readonly sourceIp?: string;
  /** Inbound: the destination (its rules apply). */
  readonly destination?: Workload;
  /** Outbound: the service dialled; inbound: unused (derived from the rule's service and `port`). */
  readonly service?: Service;
  /** Outbound: the service port dialled (rules with `port`). */
  readonly servicePort?: number;
  /** Inbound: the peer's SPIFFE id (the fair-share flow when the source workload is not known by address). */
  readonly sourceIdentity?: string;
  /** Inbound: the destination (target) port. */
  readonly port?: number;
}

export interface RequestFacts extends ConnectionFacts {
  readonly method: string;
  readonly path: string;
  readonly headers: Readonly<Record<string, string | readonly string[] | undefined>>;
}

export interface TrafficShaperOptions {
  readonly state: Pick<StateView, 'snapshot' | 'trustDomain' | 'workloadByIp'>;
  readonly rateLimited?: RateLimitedCounter;
  readonly rateLimitedBytes?: RateLimitedBytesCounter;
  readonly now?: Clock;
}

/** The labels a bytes/s bucket of the engine is counted under. */
interface EngineBucketLabels {
  readonly direction: RateLimitDirection;
  readonly source_workload: string;
  readonly destination_service: string;
  readonly way: 'upload' | 'download';
  readonly rule: string;
  readonly scope: string;
}

const BITS_PER_BYTE = 8;
/** How often the engine's bucket counters are copied into the metrics. */
export const ENGINE_QOS_SYNC_MS = 1000;

/** One applicable rule and the scope its buckets are kept for. */
interface Applied {
  readonly rule: ShapingRule;
  readonly scope: string;
  readonly service?: Service;
}

interface Slot {
  open: number;
}

const NO_RULES: readonly ShapingRule[] = [];

export class TrafficShaper {
  private readonly now: Clock;
  private readonly buckets = new Map<string, TokenBucket>();
  private readonly slots = new Map<string, Slot>();
  /** Woken whenever a slot is released (queued connections re-check). */
  private readonly waiters = new Set<() => void>();
  private seen: MeshSnapshot['trafficShaping'];
  private engineQos: (() => HboneQosState) | undefined;
  /** Engine bucket key → the labels it is counted under (destination_service `any` for a rule without service). */
  private readonly engineBuckets = new Map<string, EngineBucketLabels>();
  private readonly engineSeen = new Map<string, { throttles: number; delayedBytes: number }>();

  constructor(private readonly opts: TrafficShaperOptions) {
    this.now = opts.now ?? monotonicClock;
  }

  private shaping(): MeshSnapshot['trafficShaping'] {
    const s = this.opts.state.snapshot().trafficShaping;
    if (s !== this.seen) {
      this.seen = s;
      this.prune(s);
    }
    return s;
  }

  /** Buckets of rules (or workloads) no longer in force go; the others keep their tokens. */
  private prune(s: MeshSnapshot['trafficShaping']): void {
    const live = new Set<string>();
    for (const w of s?.values() ?? []) for (const r of [...w.outbound, ...w.inbound]) live.add(r.name);
    for (const k of this.buckets.keys()) if (!live.has(k.slice(0, k.indexOf('|')))) this.buckets.delete(k);
    for (const [k, slot] of this.slots) if (slot.open === 0 && !live.has(k.slice(0, k.indexOf('|')))) this.slots.delete(k);
  }

  private serviceHost(s: Service | undefined): string {
    return s ? `${s.name}.${s.namespace}.svc.${this.opts.state.trustDomain}` : 'unknown';
  }

  /** Does a connection to `port` of a local pod belong to service `key` (one of its target ports)? */
  private inboundService(key: string, port: number | undefined): Service | undefined {
    const s = this.opts.state.snapshot().services.get(key);
    if (!s || port === undefined) return undefined;
    return s.ports.some((p) => (p.targetPort > 0 ? p.targetPort : p.port) === port) ? s : undefined;
  }

  private applicable(f: ConnectionFacts): Applied[] {
    const shaping = this.shaping();
    if (!shaping) return [];
    const out: Applied[] = [];
    if (f.direction === 'outbound') {
      if (!f.source) return out;
      for (const rule of shaping.get(f.source.uid)?.outbound ?? NO_RULES) {
        if (rule.service !== undefined && rule.service !== f.service?.key) continue;
        if (rule.port !== undefined && rule.port !== f.servicePort) continue;
        out.push({ rule, scope: f.source.uid, service: f.service });
      }
      return out;
    }
    if (!f.destination) return out;
    for (const rule of shaping.get(f.destination.uid)?.inbound ?? NO_RULES) {
      if (rule.service === undefined) {
        out.push({ rule, scope: f.destination.uid });
        continue;
      }
      const svc = this.inboundService(rule.service, f.port);
      if (!svc) continue;
      if (rule.port !== undefined && !svc.ports.some((p) => p.port === rule.port && (p.targetPort > 0 ? p.targetPort : p.port) === f.port)) continue;
      out.push({ rule, scope: `svc:${svc.key}`, service: svc });
    }
    return out;
  }

  private bucket(a: Applied, kind: 'conn' | 'req'): TokenBucket {
    const settings = kind === 'conn' ? a.rule.connectionRate! : a.rule.requestRate!;
    const key = `${a.rule.name}|${a.scope}|${kind}`;
    let b = this.buckets.get(key);
    if (!b || !b.sameAs(settings)) this.buckets.set(key, (b = new TokenBucket(settings, this.now)));
    return b;
  }

  private slot(a: Applied): Slot {
    const key = `${a.rule.name}|${a.scope}`;
    let s = this.slots.get(key);
    if (!s) this.slots.set(key, (s = { open: 0 }));
    return s;
  }

  private count(f: ConnectionFacts, service: Service | undefined, reason: RateLimitReason): void {
    const source = f.source ?? (f.sourceIp ? this.opts.state.workloadByIp(f.sourceIp) : undefined);
    this.opts.rateLimited?.inc({ direction: f.direction, source_workload: source?.workloadName ?? 'unknown', destination_service: this.serviceHost(service ?? f.service), reason });
  }

  /**
   * A new connection: admitted (every applicable rule had a token and a slot; they are taken) or limited by the
   * first rule that had none. Nothing is taken from any rule unless all admit. Limited verdicts are counted.
   */
  admitConnection(f: ConnectionFacts, countLimited = true): ConnectionVerdict {
    const applied = this.applicable(f).filter((a) => a.rule.connectionRate || a.rule.maxConnections !== undefined);
    if (applied.length === 0) return { kind: 'admit', release: () => undefined };
    for (const a of applied) {
      const queueMs = a.rule.overLimit.action === 'queue' ? a.rule.overLimit.maxWaitMs : undefined;
      if (a.rule.maxConnections !== undefined && this.slot(a).open >= a.rule.maxConnections) {
        if (countLimited && queueMs === undefined) this.count(f, a.service, 'max_connections');
        return {
          kind: 'limited',
          reason: 'max_connections',
          rule: a.rule.name,
          detail: `TrafficShaping rule ${a.rule.name}: maxConnections ${a.rule.maxConnections} reached`,
          ...(queueMs !== undefined ? { queueMs } : {}),
        };
      }
      if (a.rule.connectionRate && this.bucket(a, 'conn').msUntilToken() > 0) {
        if (countLimited && queueMs === undefined) this.count(f, a.service, 'connection_rate');
        const s = a.rule.connectionRate;
        return {
          kind: 'limited',
          reason: 'connection_rate',
          rule: a.rule.name,
          detail: `TrafficShaping rule ${a.rule.name}: connectionRate ${s.tokensPerFill}/${s.fillIntervalMs}ms (burst ${s.maxTokens}) exceeded`,
          ...(queueMs !== undefined ? { queueMs } : {}),
        };
      }
    }
    const taken: Slot[] = [];
    for (const a of applied) {
      if (a.rule.connectionRate) this.bucket(a, 'conn').tryTake();
      if (a.rule.maxConnections !== undefined) {
        const s = this.slot(a);
        s.open++;
        taken.push(s);
      }
    }
    let released = false;
    return {
      kind: 'admit',
      release: () => {
        if (released) return;
        released = true;
        for (const s of taken) s.open--;
        if (taken.length > 0) for (const w of [...this.waiters]) w();
      },
    };
  }

  /**
   * A connection limited by a Queue rule: waits for tokens and slots, at most `maxWaitMs` from now, then admits or
   * gives the last limited verdict (counted with its reason). Admitted after a wait counts as reason `queued`.
   */
  async waitConnection(f: ConnectionFacts, maxWaitMs: number, gone: () => boolean = () => false): Promise<ConnectionVerdict> {
    const deadline = this.now() + maxWaitMs;
    for (;;) {
      const v = this.admitConnection(f, false);
      if (v.kind === 'admit') {
        this.count(f, undefined, 'queued');
        return v;
      }
      const remaining = deadline - this.now();
      if (remaining <= 0 || gone()) {
        const svc = this.applicable(f).find((a) => a.rule.name === v.rule)?.service;
        this.count(f, svc, v.reason);
        return { kind: 'limited', reason: v.reason, rule: v.rule, detail: `${v.detail}; waited ${maxWaitMs}ms` };
      }
      const tokenWait = v.reason === 'connection_rate' ? this.tokenWait(f, v.rule) : remaining;
      await new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(timer);
          this.waiters.delete(done);
          resolve();
        };
        const timer = setTimeout(done, Math.max(1, Math.min(remaining, tokenWait)));
        timer.unref?.();
        this.waiters.add(done);
      });
    }
  }

  private tokenWait(f: ConnectionFacts, rule: string): number {
    const a = this.applicable(f).find((x) => x.rule.name === rule);
    return a?.rule.connectionRate ? this.bucket(a, 'conn').msUntilToken() : 50;
  }

  /** An HTTP request: undefined when every applicable requestRate had a token (taken), else the 429 to send (counted). */
  admitRequest(f: RequestFacts): RequestLimited | undefined {
    const applied = this.applicable(f).filter((a) => a.rule.requestRate && (a.rule.requestMatch.length === 0 || a.rule.requestMatch.some((m) => matchHolds(m, f, f.port ?? 0))));
    if (applied.length === 0) return undefined;
    for (const a of applied) {
      const b = this.bucket(a, 'req');
      const wait = b.msUntilToken();
      if (wait > 0) {
        this.count(f, a.service, 'request_rate');
        const body = `local_rate_limited: TrafficShaping rule ${a.rule.name}\n`;
        return { status: 429, rule: a.rule.name, headers: rateLimitHeaders(a.rule.name, b.state(), wait), body };
      }
    }
    for (const a of applied) this.bucket(a, 'req').tryTake();
    return undefined;
  }

  /**
   * The accept-queue class of a new connection (agent/qos/accept-queue.ts): the flow is the source workload (else
   * its address), priority and weight the resource-level QoS of the workload whose rules apply — the source outbound,
   * the destination inbound. Per-rule QoS needs the decided service, which is the work the queue orders, so it
   * applies to the relay (streamQos), not here.
   */
  acceptClass(direction: RateLimitDirection, source: Workload | undefined, sourceIp: string | undefined, destination?: Workload): AcceptClass {
    const base = defaultAcceptClass(source, sourceIp);
    const owner = direction === 'outbound' ? source : destination;
    const qos = owner ? this.shaping()?.get(owner.uid)?.qos : undefined;
    return { flow: base.flow, priority: qos?.priority ?? base.priority, weight: qos?.weight ?? base.weight };
  }

  /**
   * The class an HTTP request's handling waits in (the accept queue, on the per-request HTTP path): the first
   * applicable rule whose `match` holds for the request and sets priority / weight (classification by method, path
   * or header), else the rules without a match, else the resource level; the flow is the source workload.
   */
  requestClass(f: RequestFacts): AcceptClass {
    const base = this.acceptClass(f.direction, f.source, f.sourceIp, f.destination);
    const applied = this.applicable(f);
    const pick = <K extends 'priority' | 'weight'>(k: K): QosSettings[K] | undefined => {
      for (const a of applied) if (a.rule.requestMatch.length > 0 && a.rule.qos?.[k] !== undefined && a.rule.requestMatch.some((m) => matchHolds(m, f, f.port ?? 0))) return a.rule.qos[k];
      for (const a of applied) if (a.rule.requestMatch.length === 0 && a.rule.qos?.[k] !== undefined) return a.rule.qos[k];
      return undefined;
    };
    return { flow: base.flow, priority: pick('priority') ?? base.priority, weight: pick('weight') ?? base.weight };
  }

  /**
   * The relay QoS of a connection handed to the native engine: the fair-share flow (the source workload), priority,
   * weight and DSCP (the first applicable rule that sets each, else the resource level of the workload whose rules
   * apply: the source outbound, the destination inbound), and bytes/s limits (every applicable rule's bucket each
   * way, tightest first — one object when one rule applies; one engine bucket per rule and scope, shared by the
   * connections of that scope). upload = client → server: the
   * engine's `send` (socket → tunnel) outbound, its `receive` inbound.
   */
  streamQos(f: ConnectionFacts): HboneStreamQos {
    const source = f.source ?? (f.sourceIp ? this.opts.state.workloadByIp(f.sourceIp) : undefined);
    const flow = source?.uid ?? (f.sourceIdentity ? `id:${f.sourceIdentity}` : `ip:${f.sourceIp ?? 'unknown'}`);
    const owner = f.direction === 'outbound' ? f.source : f.destination;
    const ws = owner ? this.shaping()?.get(owner.uid) : undefined;
    if (!ws) return { flow };
    const applied = this.applicable(f);
    // Rules with a request match classify requests (requestClass), not whole connections.
    const pick = <K extends keyof QosSettings>(k: K): QosSettings[K] | undefined => {
      for (const a of applied) if (a.rule.requestMatch.length === 0 && a.rule.qos?.[k] !== undefined) return a.rule.qos[k];
      return ws.qos?.[k];
    };
    // Every applicable rule that limits a way gets its bucket enforced (tightest first): a per-service limit and a
    // workload-wide one both hold, each for all the connections that share it.
    const limit = (way: 'upload' | 'download'): HboneByteLimit | readonly HboneByteLimit[] | undefined => {
      const out: HboneByteLimit[] = [];
      for (const a of applied) {
        const bps = a.rule.bytesPerSecond?.[way];
        if (bps === undefined) continue;
        const key = `${a.rule.name}|${a.scope}|${way}`;
        if (out.some((l) => l.key === key)) continue;
        if (!this.engineBuckets.has(key)) {
          this.engineBuckets.set(key, {
            direction: f.direction,
            source_workload: source?.workloadName ?? 'unknown',
            destination_service: a.rule.service !== undefined ? this.serviceHost(a.service) : 'any',
            way,
            rule: a.rule.name,
            scope: a.scope,
          });
        }
        out.push({ key, bytesPerSecond: Math.max(1, Math.floor(bps / BITS_PER_BYTE)) });
      }
      out.sort((x, y) => x.bytesPerSecond - y.bytesPerSecond);
      return out.length === 0 ? undefined : out.length === 1 ? out[0] : out;
    };
    const upload = limit('upload');
    const download = limit('download');
    const send = f.direction === 'outbound' ? upload : download;
    const receive = f.direction === 'outbound' ? download : upload;
    const priority = pick('priority');
    const weight = pick('weight');
    const dscp = pick('dscp');
    return {
      flow,
      ...(priority !== undefined ? { priority } : {}),
      ...(weight !== undefined ? { weight } : {}),
      ...(dscp !== undefined ? { dscp } : {}),
      ...(send ? { send } : {}),
      ...(receive ? { receive } : {}),
    };
  }

  /**
   * The bytes/s limits of a connection by way — upload (client → server) and download — for relays outside the
   * engine (same-node connections, where this node is both source and destination, take the outbound facts and the
   * destination's inbound facts together). Same buckets (keys) as streamQos gives the engine.
   */
  byteLimits(facts: readonly ConnectionFacts[]): { upload: HboneByteLimit[]; download: HboneByteLimit[] } {
    const out = { upload: [] as HboneByteLimit[], download: [] as HboneByteLimit[] };
    const list = (l: HboneByteLimit | readonly HboneByteLimit[] | undefined): readonly HboneByteLimit[] => (l === undefined ? [] : Array.isArray(l) ? l : [l as HboneByteLimit]);
    for (const f of facts) {
      const q = this.streamQos(f);
      // The engine's send is fd → tunnel: the client's upload outbound, the pod's download inbound.
      const [up, down] = f.direction === 'outbound' ? [q.send, q.receive] : [q.receive, q.send];
      for (const l of list(up)) if (!out.upload.some((x) => x.key === l.key)) out.upload.push(l);
      for (const l of list(down)) if (!out.download.some((x) => x.key === l.key)) out.download.push(l);
    }
    return out;
  }

  /**
   * The native engine whose bytes/s buckets and fair-share flows this shaper reports: every ENGINE_QOS_SYNC_MS the
   * pauses and delayed bytes of each bucket are added to smesh_rate_limited_total / smesh_rate_limited_bytes_total.
   * Returns the stop function.
   */
  attachEngine(qosState: () => HboneQosState): () => void {
    this.engineQos = qosState;
    const timer = setInterval(() => this.syncEngineCounters(), ENGINE_QOS_SYNC_MS);
    timer.unref?.();
    return () => {
      clearInterval(timer);
      this.syncEngineCounters();
    };
  }

  /** Copies what the engine's buckets counted since the last call into the metrics. */
  syncEngineCounters(): void {
    if (!this.engineQos) return;
    for (const b of this.engineQos().buckets) {
      const labels = this.engineBuckets.get(b.key);
      if (!labels) continue;
      let seen = this.engineSeen.get(b.key) ?? { throttles: 0, delayedBytes: 0 };
      // A bucket the engine forgot and made anew counts from 0 again.
      if (b.throttles < seen.throttles || b.delayedBytes < seen.delayedBytes) seen = { throttles: 0, delayedBytes: 0 };
      const common = { direction: labels.direction, source_workload: labels.source_workload, destination_service: labels.destination_service };
      if (b.throttles > seen.throttles) this.opts.rateLimited?.inc({ ...common, reason: 'bytes_per_second' }, b.throttles - seen.throttles);
      if (b.delayedBytes > seen.delayedBytes) this.opts.rateLimitedBytes?.inc({ ...common, reason: `bytes_per_second_${labels.way}` }, b.delayedBytes - seen.delayedBytes);
      this.engineSeen.set(b.key, { throttles: b.throttles, delayedBytes: b.delayedBytes });
    }
  }

  /** For /config_dump: the rules in force per workload and every bucket's and slot's state. */
  dump(): unknown {
    const shaping = this.shaping();
    const buckets: Array<{ rule: string; scope: string; kind: string } & BucketState> = [];
    for (const [k, b] of this.buckets) {
      const [rule, scope, kind] = k.split('|') as [string, string, string];
      buckets.push({ rule, scope, kind: kind === 'conn' ? 'connectionRate' : 'requestRate', ...b.state() });
    }
    const connections = [...this.slots].map(([k, s]) => {
      const [rule, scope] = k.split('|') as [string, string];
      return { rule, scope, open: s.open };
    });
    const engine = this.engineQos?.();
    const relay = engine
      ? {
          fairShare: engine.fairShare,
          // bytes/s buckets with the rule and scope they belong to (key: `<rule>|<scope>|<way>`)
          buckets: engine.buckets.map((b) => ({ ...b, ...(this.engineBuckets.get(b.key) ?? {}) })),
          flows: engine.flows,
        }
      : undefined;
    return { workloads: [...(shaping?.values() ?? [])], buckets, connections, queued: this.waiters.size, ...(relay ? { relay } : {}) };
  }
}
