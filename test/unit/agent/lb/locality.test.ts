// Locality preference with failover: tiers, Envoy's priority-load arithmetic, and pick distributions.
import { describe, expect, it } from 'vitest';
import { MaglevPicker } from '../../../../agent/lb/maglev';
import { LocalityFailoverPicker, localityTier, tierLoads, type LocalityPreference, type LocalOrigin } from '../../../../agent/lb/locality';
import { WeightedRoundRobinPicker } from '../../../../agent/lb/round-robin';
import { counts, ep, loc, picks, seeded, type TestEndpoint } from '../../fixtures/lb';

const here: LocalOrigin = { locality: loc('us-east', 'us-east-1a', 'rack1'), node: 'node1' };

describe('localityTier', () => {
  it.each<{ name: string; origin: LocalOrigin | undefined; endpoint: TestEndpoint; pref?: LocalityPreference; want: number }>([
    { name: 'same subzone', origin: here, endpoint: ep('x', { locality: loc('us-east', 'us-east-1a', 'rack1') }), want: 0 },
    { name: 'same zone, other subzone', origin: here, endpoint: ep('x', { locality: loc('us-east', 'us-east-1a', 'rack2') }), want: 1 },
    { name: 'same region, other zone', origin: here, endpoint: ep('x', { locality: loc('us-east', 'us-east-1b', 'rack1') }), want: 2 },
    { name: 'other region', origin: here, endpoint: ep('x', { locality: loc('eu-west', 'us-east-1a', 'rack1') }), want: 4 },
    { name: 'no locality: last resort', origin: here, endpoint: ep('x'), want: 4 },
    { name: 'no origin: no preference', origin: undefined, endpoint: ep('x', { locality: loc('eu-west') }), want: 0 },
    { name: 'nobody sets subzones: same zone is tier 0', origin: { locality: loc('r', 'z') }, endpoint: ep('x', { locality: loc('r', 'z') }), want: 0 },
    {
      name: 'failover target region comes before other regions',
      origin: here,
      endpoint: ep('x', { locality: loc('us-west', 'us-west-2a') }),
      pref: { failover: [{ from: 'us-east', to: 'us-west' }] },
      want: 3,
    },
    {
      name: 'failover applies only from its own region',
      origin: here,
      endpoint: ep('x', { locality: loc('us-west') }),
      pref: { failover: [{ from: 'eu-west', to: 'us-west' }] },
      want: 4,
    },
    { name: 'NODE scope: same node', origin: here, endpoint: ep('x', { node: 'node1', locality: here.locality }), pref: { prefer: ['REGION', 'ZONE', 'NODE'] }, want: 0 },
    { name: 'NODE scope: other node, same zone', origin: here, endpoint: ep('x', { node: 'node2', locality: here.locality }), pref: { prefer: ['REGION', 'ZONE', 'NODE'] }, want: 1 },
    { name: 'only NODE', origin: here, endpoint: ep('x', { node: 'node2' }), pref: { prefer: ['NODE'] }, want: 2 },
  ])('$name → $want', ({ origin, endpoint, pref, want }) => {
    expect(localityTier(origin, endpoint, pref)).toBe(want);
  });
});

describe('tierLoads (Envoy priority levels, overprovisioning 1.4)', () => {
  it.each([
    {
      name: 'healthy first tier takes everything',
      tiers: [
        [10, 10],
        [10, 10],
      ],
      want: [1, 0],
    },
    {
      name: 'at 1/1.4 healthy the first tier still takes everything',
      tiers: [
        [5, 7],
        [10, 10],
      ],
      want: [1, 0],
    },
    {
      name: '50% healthy: 70% stays, 30% spills over',
      tiers: [
        [5, 10],
        [10, 10],
      ],
      want: [0.7, 0.3],
    },
    {
      name: 'empty first tier',
      tiers: [
        [0, 0],
        [4, 4],
      ],
      want: [0, 1],
    },
    {
      name: 'all ejected in the first tier',
      tiers: [
        [0, 3],
        [2, 2],
        [9, 9],
      ],
      want: [0, 1, 0],
    },
    {
      name: 'spill passes over an empty middle tier',
      tiers: [
        [1, 4],
        [0, 0],
        [5, 5],
      ],
      want: [0.35, 0, 0.65],
    },
    {
      name: 'too little health overall: scaled up to sum to 1',
      tiers: [
        [2, 10],
        [1, 10],
      ],
      want: [0.28 / 0.42, 0.14 / 0.42],
    },
    {
      name: 'nothing usable',
      tiers: [
        [0, 3],
        [0, 0],
      ],
      want: [0, 0],
    },
  ])('$name', ({ tiers, want }) => {
    const got = tierLoads(tiers.map(([usable, total]) => ({ usable: usable!, total: total! })));
    expect(got).toHaveLength(want.length);
    got.forEach((g, i) => expect(g).toBeCloseTo(want[i]!, 9));
  });
  it('factor 1 means health is taken literally', () => {
    expect(
      tierLoads(
        [
          { usable: 5, total: 10 },
          { usable: 1, total: 1 },
        ],
        1,
      ),
    ).toEqual([0.5, 0.5]);
  });
});

const zoneA = (n: string, extra: Partial<TestEndpoint> = {}) => ep(n, { locality: loc('us-east', 'us-east-1a', 'rack1'), ...extra });
const zoneB = (n: string, extra: Partial<TestEndpoint> = {}) => ep(n, { locality: loc('us-east', 'us-east-1b'), ...extra });
const west = (n: string, extra: Partial<TestEndpoint> = {}) => ep(n, { locality: loc('us-west', 'us-west-2a'), ...extra });
const rr = (e: readonly TestEndpoint[]) => new WeightedRoundRobinPicker(e, () => 0);

describe('LocalityFailoverPicker', () => {
  const build = (endpoints: TestEndpoint[], pref: LocalityPreference = {}, seed = 1) => new LocalityFailoverPicker(endpoints, { local: here, random: seeded(seed), inner: rr, ...pref });

  it('prefers the same zone while it is healthy', () => {
    const c = counts(picks(build([zoneA('a1'), zoneA('a2'), zoneB('b1'), west('w1')]), 10_000));
    expect(c).toEqual({ a1: 5000, a2: 5000 });
  });

  it('fails over to the same region when the zone is all ejected, not further', () => {
    const c = counts(picks(build([zoneA('a1', { ejected: true }), zoneA('a2', { ejected: true }), zoneB('b1'), zoneB('b2'), west('w1')]), 1000));
    expect(c).toEqual({ b1: 500, b2: 500 });
  });

  it('fails over to another region when the region is empty', () => {
    expect(counts(picks(build([west('w1'), ep('nowhere')], { failover: [{ from: 'us-east', to: 'us-west' }] }), 100))).toEqual({ w1: 100 });
    // Without the failover rule us-west and "nowhere" are the same last tier.
    expect(counts(picks(build([west('w1'), ep('nowhere')]), 100))).toEqual({ w1: 50, nowhere: 50 });
  });

  it('spills the unhealthy share: 1 of 3 healthy in the zone keeps 1.4/3 ≈ 46.7% of the traffic', () => {
    const p = build([zoneA('a1'), zoneA('a2', { ejected: true }), zoneA('a3', { healthy: false }), zoneB('b1'), zoneB('b2')], {}, 7);
    expect(p.loads[0]).toBeCloseTo(1.4 / 3, 9);
    const c = counts(picks(p, 10_000));
    expect(c.a1! / 10_000).toBeGreaterThan(1.4 / 3 - 0.02);
    expect(c.a1! / 10_000).toBeLessThan(1.4 / 3 + 0.02);
    expect(c.a2 ?? 0).toBe(0);
    expect((c.b1! + c.b2!) / 10_000).toBeGreaterThan(1 - 1.4 / 3 - 0.02);
  });

  it('strict: no failover, a transient failure when the best tier is gone', () => {
    const endpoints = [zoneA('a1', { ejected: true }), zoneB('b1')];
    expect(build(endpoints, { strict: true }).pick().kind).toBe('transient_failure');
    expect(counts(picks(build([zoneA('a1'), zoneA('a2', { ejected: true }), zoneB('b1')], { strict: true }), 100))).toEqual({ a1: 100 });
  });

  it('node-local first with prefer [REGION, ZONE, NODE]', () => {
    const endpoints = [zoneA('n1', { node: 'node1' }), zoneA('n2', { node: 'node2' })];
    expect(counts(picks(build(endpoints, { prefer: ['REGION', 'ZONE', 'NODE'] }), 100))).toEqual({ n1: 100 });
  });

  it('without an origin every endpoint is equal', () => {
    const p = new LocalityFailoverPicker([zoneA('a1'), west('w1')], { local: undefined, inner: rr });
    expect(counts(picks(p, 100))).toEqual({ a1: 50, w1: 50 });
  });

  it('keeps affinity across tiers: the key, not a random draw, chooses the tier', () => {
    const endpoints = [zoneA('a1'), zoneA('a2', { ejected: true }), zoneB('b1'), zoneB('b2')];
    const hashOn = [{ type: 'header' as const, name: 'x-user' }];
    const p = new LocalityFailoverPicker(endpoints, { local: here, random: seeded(3), inner: (e) => new MaglevPicker(e, { hashOn }) });
    const req = (i: number) => ({ headers: { 'x-user': `user-${i % 500}` } });
    const first = picks(p, 500, req);
    expect(picks(p, 500, req)).toEqual(first);
    const share = (counts(first).a1 ?? 0) / 500;
    expect(share).toBeGreaterThan(0.7 - 0.08);
    expect(share).toBeLessThan(0.7 + 0.08);
  });

  it('never throws on empty input', () => {
    expect(build([]).pick()).toEqual({ kind: 'transient_failure', reason: 'no endpoints' });
    expect(build([zoneA('a', { ejected: true }), west('w', { healthy: false })]).pick().kind).toBe('transient_failure');
  });
});
