// Load-balancer registry: strategies register by name explicitly (no import side effects); createPicker builds one from a policy.
import type { LbEndpoint } from './endpoint';
import { RingHashPicker, type HashSource } from './consistent-hash';
import { LeastRequestPicker } from './least-request';
import { monotonicClock, type Clock, type EndpointLoadView } from './load';
import { LocalityFailoverPicker, type LocalOrigin, type LocalityPreference } from './locality';
import { MaglevPicker } from './maglev';
import { PeakEwmaPicker } from './peak-ewma';
import { FailingPicker, type Picker } from './picker';
import { RandomPicker } from './random';
import { WeightedRoundRobinPicker } from './round-robin';
import type { RandomSource } from './sampling';

/** What a factory may use besides the policy and the endpoints; all injectable for tests. */
export interface LbContext {
  /** Uniform [0, 1); default Math.random. */
  readonly random?: RandomSource;
  /** Monotonic ms; default performance.now. */
  readonly now?: Clock;
  /** In-flight counts and latency estimates; required by least_request and peak_ewma. */
  readonly load?: EndpointLoadView;
  /** Where this proxy runs; used by locality_failover. */
  readonly origin?: LocalOrigin;
}

export interface RoundRobinPolicy {
  readonly type: 'round_robin';
}
export interface RandomPolicy {
  readonly type: 'random';
}
export interface LeastRequestPolicy {
  readonly type: 'least_request';
  /** Default 2. */
  readonly choiceCount?: number;
}
export interface PeakEwmaPolicy {
  readonly type: 'peak_ewma';
  /** Estimate for endpoints never sampled; default 30 ms. (The decay time belongs to the load tracker.) */
  readonly defaultRttMs?: number;
}
export interface RingHashPolicy {
  readonly type: 'ring_hash';
  readonly hashOn: readonly HashSource[];
  readonly entriesPerWeight?: number;
  readonly maxRingSize?: number;
}
export interface MaglevPolicy {
  readonly type: 'maglev';
  readonly hashOn: readonly HashSource[];
  readonly tableSize?: number;
}
/** Wraps another policy: choose a locality tier (with failover), then the inner policy within it. */
export interface LocalityFailoverPolicy extends LocalityPreference {
  readonly type: 'locality_failover';
  readonly inner: LbPolicy;
}
/** A strategy registered by someone else; its factory validates its own options. */
export interface CustomLbPolicy {
  readonly type: string;
  readonly [option: string]: unknown;
}

export type BuiltinLbPolicy = RoundRobinPolicy | RandomPolicy | LeastRequestPolicy | PeakEwmaPolicy | RingHashPolicy | MaglevPolicy | LocalityFailoverPolicy;
export type LbPolicy = BuiltinLbPolicy | CustomLbPolicy;

/**
 * Builds an immutable picker. May return a FailingPicker for options it cannot accept (with a
 * reason naming the field); a factory that throws is caught by the registry and treated the same.
 */
export type LoadBalancerFactory<P extends { readonly type: string } = CustomLbPolicy> = <E extends LbEndpoint>(
  policy: P,
  endpoints: readonly E[],
  ctx: LbContext,
  registry: LoadBalancerRegistry,
) => Picker<E>;

export class LoadBalancerRegistry {
  private readonly factories = new Map<string, LoadBalancerFactory<{ readonly type: string }>>();

  /** Registers (or replaces) the factory for `type`. */
  register<P extends { readonly type: string }>(type: P['type'], factory: LoadBalancerFactory<P>): void {
    this.factories.set(type, factory as unknown as LoadBalancerFactory<{ readonly type: string }>);
  }

  has(type: string): boolean {
    return this.factories.has(type);
  }

  types(): string[] {
    return [...this.factories.keys()].sort();
  }

  /** Never throws: an unknown type or a rejected policy gives a picker that always fails with the reason. */
  create<E extends LbEndpoint>(policy: LbPolicy, endpoints: readonly E[], ctx: LbContext = {}): Picker<E> {
    const factory = this.factories.get(policy.type);
    if (!factory) {
      const known = this.types();
      return new FailingPicker(
        endpoints,
        `load balancer "${policy.type}" is not registered (registered: ${known.length > 0 ? known.join(', ') : 'none; call registerBuiltinLoadBalancers() at start-up'})`,
      );
    }
    try {
      return factory(policy, endpoints, ctx, this);
    } catch (err) {
      return new FailingPicker(endpoints, `load balancer "${policy.type}" rejected its policy: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
}

function hashSourcesProblem(type: string, hashOn: readonly HashSource[] | undefined): string | undefined {
  if (!Array.isArray(hashOn) || hashOn.length === 0) return `${type}: hashOn must list at least one of header, cookie, source_ip, query_parameter`;
  for (const [i, s] of hashOn.entries()) {
    if (s.type === 'source_ip') continue;
    if ((s.type === 'header' || s.type === 'cookie' || s.type === 'query_parameter') && typeof s.name === 'string' && s.name !== '') continue;
    return `${type}: hashOn[${i}] must be {type: header|cookie|query_parameter, name: non-empty} or {type: source_ip}, got ${JSON.stringify(s)}`;
  }
  return undefined;
}

/** Registers round_robin, random, least_request, peak_ewma, ring_hash, maglev and locality_failover. */
export function registerBuiltinLoadBalancers(registry: LoadBalancerRegistry = defaultRegistry): void {
  registry.register<RoundRobinPolicy>('round_robin', (_policy, endpoints, ctx) => new WeightedRoundRobinPicker(endpoints, ctx.random));
  registry.register<RandomPolicy>('random', (_policy, endpoints, ctx) => new RandomPicker(endpoints, ctx.random));
  registry.register<LeastRequestPolicy>('least_request', (policy, endpoints, ctx) => {
    if (!ctx.load) return new FailingPicker(endpoints, 'least_request needs a load view (LbContext.load with activeRequests)');
    return new LeastRequestPicker(endpoints, ctx.load, { choiceCount: policy.choiceCount, random: ctx.random });
  });
  registry.register<PeakEwmaPolicy>('peak_ewma', (policy, endpoints, ctx) => {
    if (!ctx.load?.rttEstimate) return new FailingPicker(endpoints, 'peak_ewma needs a load view with rttEstimate (LbContext.load, e.g. an EndpointLoadTracker)');
    return new PeakEwmaPicker(endpoints, ctx.load, { defaultRttMs: policy.defaultRttMs, random: ctx.random, now: ctx.now ?? monotonicClock });
  });
  registry.register<RingHashPolicy>('ring_hash', (policy, endpoints, ctx) => {
    const problem = hashSourcesProblem('ring_hash', policy.hashOn);
    if (problem) return new FailingPicker(endpoints, problem);
    return new RingHashPicker(endpoints, { hashOn: policy.hashOn, entriesPerWeight: policy.entriesPerWeight, maxRingSize: policy.maxRingSize, random: ctx.random });
  });
  registry.register<MaglevPolicy>('maglev', (policy, endpoints, ctx) => {
    const problem = hashSourcesProblem('maglev', policy.hashOn);
    if (problem) return new FailingPicker(endpoints, problem);
    return new MaglevPicker(endpoints, { hashOn: policy.hashOn, tableSize: policy.tableSize, random: ctx.random });
  });
  registry.register<LocalityFailoverPolicy>('locality_failover', (policy, endpoints, ctx, reg) => {
    if (!policy.inner || typeof policy.inner.type !== 'string') return new FailingPicker(endpoints, 'locality_failover: inner must be a load-balancer policy');
    if (policy.inner.type === 'locality_failover') return new FailingPicker(endpoints, 'locality_failover: inner cannot be locality_failover');
    return new LocalityFailoverPicker(endpoints, {
      local: ctx.origin,
      prefer: policy.prefer,
      failover: policy.failover,
      strict: policy.strict,
      overprovisioningFactor: policy.overprovisioningFactor,
      random: ctx.random,
      inner: (tier) => reg.create(policy.inner, tier, ctx),
    });
  });
}

/** The process-wide registry behind registerLoadBalancer / createPicker; empty until registration. */
export const defaultRegistry = new LoadBalancerRegistry();

export function registerLoadBalancer<P extends { readonly type: string }>(type: P['type'], factory: LoadBalancerFactory<P>): void {
  defaultRegistry.register(type, factory);
}

export function createPicker<E extends LbEndpoint>(policy: LbPolicy, endpoints: readonly E[], ctx: LbContext = {}): Picker<E> {
  return defaultRegistry.create(policy, endpoints, ctx);
}

/**
 * One picker per key (a service, or service+port), rebuilt when the key's endpoint array or
 * policy object changes (snapshots publish new objects on change), so per-picker state (the
 * round-robin weights) lives exactly as long as the endpoint set it was built for.
 */
export class PickerCache<E extends LbEndpoint> {
  private readonly entries = new Map<string, { policy: LbPolicy; endpoints: readonly E[]; picker: Picker<E> }>();

  constructor(
    private readonly registry: LoadBalancerRegistry,
    private readonly ctx: LbContext = {},
  ) {}

  picker(key: string, policy: LbPolicy, endpoints: readonly E[]): Picker<E> {
    const cached = this.entries.get(key);
    if (cached && cached.policy === policy && cached.endpoints === endpoints) return cached.picker;
    const picker = this.registry.create(policy, endpoints, this.ctx);
    this.entries.set(key, { policy, endpoints, picker });
    return picker;
  }

  /** Drops pickers for keys no longer present. */
  retain(keys: Iterable<string>): void {
    const keep = new Set(keys);
    for (const k of this.entries.keys()) if (!keep.has(k)) this.entries.delete(k);
  }
}
