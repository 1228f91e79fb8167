// Registry, createPicker, PickerCache and the mapping from service settings: explicit registration, never a throw.
import { describe, expect, it } from 'vitest';
import { EndpointLoadTracker } from '../../../../agent/lb/load';
import { FailingPicker, type PickRequest } from '../../../../agent/lb/picker';
import { lbPolicyFromSettings } from '../../../../agent/lb/policy';
import { createPicker, defaultRegistry, LoadBalancerRegistry, PickerCache, registerBuiltinLoadBalancers, registerLoadBalancer, type LbContext, type LbPolicy } from '../../../../agent/lb/registry';
import { counts, ep, loc, picks, seeded } from '../../fixtures/lb';

const builtins = (): LoadBalancerRegistry => {
  const r = new LoadBalancerRegistry();
  registerBuiltinLoadBalancers(r);
  return r;
};
const ctx = (): LbContext => ({ random: seeded(1), now: () => 0, load: new EndpointLoadTracker({ now: () => 0 }), origin: { locality: loc('r', 'z') } });
const hashOn = [{ type: 'source_ip' as const }];
const allPolicies: LbPolicy[] = [
  { type: 'round_robin' },
  { type: 'random' },
  { type: 'least_request' },
  { type: 'least_request', choiceCount: 3 },
  { type: 'peak_ewma' },
  { type: 'ring_hash', hashOn },
  { type: 'maglev', hashOn, tableSize: 101 },
  { type: 'locality_failover', inner: { type: 'round_robin' } },
  { type: 'locality_failover', inner: { type: 'maglev', hashOn }, strict: true },
];

describe('LoadBalancerRegistry', () => {
  it('starts empty: nothing registers itself on import', () => {
    const r = new LoadBalancerRegistry();
    expect(r.types()).toEqual([]);
    expect(r.create({ type: 'round_robin' }, [ep('a')]).pick()).toEqual({
      kind: 'transient_failure',
      reason: 'load balancer "round_robin" is not registered (registered: none; call registerBuiltinLoadBalancers() at start-up)',
    });
  });

  it('registers the built-in strategies explicitly', () => {
    expect(builtins().types()).toEqual(['least_request', 'locality_failover', 'maglev', 'peak_ewma', 'random', 'ring_hash', 'round_robin']);
  });

  const requests: Array<PickRequest | undefined> = [undefined, {}, { sourceIp: '10.0.0.1' }, { headers: { cookie: ';;=' }, path: '?%' }];
  it.each(allPolicies)('$type never throws on empty, all-ejected or any request; picks when it can (%#)', (policy) => {
    const r = builtins();
    for (const endpoints of [[], [ep('a', { ejected: true })], [ep('a', { weight: 0 })]]) {
      const p = r.create(policy, endpoints, ctx());
      for (const req of requests) expect(p.pick(req).kind).toBe('transient_failure');
    }
    const p = r.create(policy, [ep('a', { locality: loc('r', 'z') }), ep('b')], ctx());
    for (const req of requests) expect(p.pick(req).kind).toBe('complete');
  });

  it.each<{ policy: LbPolicy; ctx: LbContext; reason: RegExp }>([
    { policy: { type: 'nope' }, ctx: {}, reason: /"nope" is not registered \(registered: least_request, .*round_robin\)/ },
    { policy: { type: 'least_request' }, ctx: {}, reason: /least_request needs a load view/ },
    { policy: { type: 'peak_ewma' }, ctx: { load: { activeRequests: () => 0 } }, reason: /peak_ewma needs a load view with rttEstimate/ },
    { policy: { type: 'maglev', hashOn: [] }, ctx: {}, reason: /maglev: hashOn must list at least one/ },
    { policy: { type: 'ring_hash', hashOn: [{ type: 'header', name: '' }] }, ctx: {}, reason: /ring_hash: hashOn\[0\] must be/ },
    { policy: { type: 'locality_failover', inner: { type: 'locality_failover', inner: { type: 'random' } } }, ctx: {}, reason: /inner cannot be locality_failover/ },
    { policy: { type: 'locality_failover', inner: { type: 'nope' } }, ctx: {}, reason: /"nope" is not registered/ },
  ])('rejects $policy.type with a reason instead of throwing', ({ policy, ctx: c, reason }) => {
    const r = builtins()
      .create(policy, [ep('a')], c)
      .pick();
    expect(r.kind).toBe('transient_failure');
    expect(r.kind === 'transient_failure' && r.reason).toMatch(reason);
  });

  it('takes custom strategies; a throwing factory becomes a failing picker', () => {
    const r = builtins();
    r.register<{ type: 'first'; skip?: number }>('first', (policy, endpoints) => {
      const e = endpoints[policy.skip ?? 0];
      return e ? { endpoints, pick: () => ({ kind: 'complete', endpoint: e }) } : new FailingPicker(endpoints, 'none');
    });
    r.register('broken', () => {
      throw new Error('bad option');
    });
    expect(picks(r.create({ type: 'first', skip: 1 }, [ep('a'), ep('b')]), 2)).toEqual(['b', 'b']);
    expect(r.create({ type: 'broken' }, [ep('a')]).pick()).toEqual({ kind: 'transient_failure', reason: 'load balancer "broken" rejected its policy: bad option' });
  });

  it('composes locality with any inner strategy through the registry', () => {
    const endpoints = [ep('near', { locality: loc('r', 'z') }), ep('far', { locality: loc('other') })];
    const p = builtins().create({ type: 'locality_failover', inner: { type: 'least_request' } }, endpoints, ctx());
    expect(counts(picks(p, 100))).toEqual({ near: 100 });
  });
});

describe('default registry', () => {
  it('registerLoadBalancer / createPicker work on the process-wide registry', () => {
    registerBuiltinLoadBalancers();
    registerLoadBalancer('always-b', (_p, endpoints) => ({ endpoints, pick: () => ({ kind: 'complete', endpoint: endpoints[1]! }) }));
    expect(defaultRegistry.has('round_robin')).toBe(true);
    expect(picks(createPicker({ type: 'round_robin' }, [ep('a'), ep('b')], { random: () => 0 }), 3)).toEqual(['a', 'b', 'a']);
    expect(picks(createPicker({ type: 'always-b' }, [ep('a'), ep('b')]), 1)).toEqual(['b']);
  });
});

describe('PickerCache', () => {
  it('reuses a picker while the endpoint array and policy objects are the same, rebuilds on change', () => {
    const cache = new PickerCache(builtins(), { random: () => 0 });
    const policy: LbPolicy = { type: 'round_robin' };
    const v1 = [ep('a'), ep('b')];
    const p1 = cache.picker('svc', policy, v1);
    expect(cache.picker('svc', policy, v1)).toBe(p1);
    expect(cache.picker('svc', policy, [...v1])).not.toBe(p1);
    expect(cache.picker('svc', { type: 'round_robin' }, v1)).not.toBe(p1);
    const other = cache.picker('other', policy, v1);
    cache.retain(['svc']);
    expect(cache.picker('other', policy, v1)).not.toBe(other);
  });
});

describe('lbPolicyFromSettings', () => {
  it.each<{ name: string; settings: Parameters<typeof lbPolicyFromSettings>[0]; want: LbPolicy }>([
    { name: 'absent → least_request', settings: undefined, want: { type: 'least_request' } },
    { name: 'ROUND_ROBIN', settings: { algorithm: 'ROUND_ROBIN' }, want: { type: 'round_robin' } },
    { name: 'RANDOM', settings: { algorithm: 'RANDOM' }, want: { type: 'random' } },
    { name: 'PEAK_EWMA', settings: { algorithm: 'PEAK_EWMA', ewmaDecayMs: 5000 }, want: { type: 'peak_ewma' } },
    { name: 'LEAST_REQUEST with choices', settings: { algorithm: 'LEAST_REQUEST', choiceCount: 3 }, want: { type: 'least_request', choiceCount: 3 } },
    {
      name: 'consistent hash on a cookie → maglev',
      settings: { consistentHash: { key: { kind: 'cookie', name: 'sid', ttlMs: 1000 }, tableSize: 101 } },
      want: { type: 'maglev', hashOn: [{ type: 'cookie', name: 'sid' }], tableSize: 101 },
    },
    { name: 'source IP', settings: { consistentHash: { key: { kind: 'sourceIp' } } }, want: { type: 'maglev', hashOn: [{ type: 'source_ip' }], tableSize: undefined } },
    {
      name: 'locality wraps the algorithm',
      settings: { algorithm: 'ROUND_ROBIN', locality: { prefer: ['REGION', 'ZONE'], failover: [{ from: 'a', to: 'b' }], strict: false } },
      want: { type: 'locality_failover', prefer: ['REGION', 'ZONE'], failover: [{ from: 'a', to: 'b' }], strict: false, inner: { type: 'round_robin' } },
    },
  ])('$name', ({ settings, want }) => {
    expect(lbPolicyFromSettings(settings)).toEqual(want);
  });
});
