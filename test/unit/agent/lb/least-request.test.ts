// Least request by power of two choices: table of draws, then distributions with fixed loads and weights.
import { describe, expect, it } from 'vitest';
import type { LbEndpoint } from '../../../../agent/lb/endpoint';
import { LeastRequestPicker } from '../../../../agent/lb/least-request';
import { counts, ep, picks, seeded, sequence } from '../../fixtures/lb';

const view = (active: Record<string, number | undefined>) => ({ activeRequests: (e: LbEndpoint) => active[e.key.split(':')[0]!] ?? 0 });
const abc = [ep('a'), ep('b'), ep('c')];

describe('LeastRequestPicker', () => {
  // With three equal weights a draw u selects a for u < 1/3, b for u < 2/3, else c.
  const cases = [
    { name: 'fewer active wins', active: { a: 5, b: 1 }, draws: [0.1, 0.5], want: 'b' },
    { name: 'fewer active wins (other order)', active: { a: 1, b: 5 }, draws: [0.1, 0.5], want: 'a' },
    { name: 'a tie keeps the first draw', active: { a: 2, c: 2 }, draws: [0.9, 0.1], want: 'c' },
    { name: 'drawn twice: no real choice (with replacement, as Envoy)', active: { b: 100 }, draws: [0.4, 0.6], want: 'b' },
    { name: 'the least loaded is not drawn: it is not picked', active: { a: 0, b: 3, c: 9 }, draws: [0.5, 0.9], want: 'b' },
  ];
  it.each(cases)('$name', ({ active, draws, want }) => {
    expect(picks(new LeastRequestPicker(abc, view(active), { random: sequence(...draws) }), 1)).toEqual([want]);
  });

  it('choiceCount 3 compares three draws', () => {
    const p = new LeastRequestPicker(abc, view({ a: 3, b: 2, c: 1 }), { choiceCount: 3, random: sequence(0.1, 0.5, 0.9) });
    expect(picks(p, 1)).toEqual(['c']);
  });

  it('skips ejected endpoints and fails when none is left', () => {
    const p = new LeastRequestPicker([ep('a', { ejected: true }), ep('b')], view({ b: 50 }), { random: seeded(1) });
    expect(new Set(picks(p, 50))).toEqual(new Set(['b']));
    expect(new LeastRequestPicker([], view({})).pick().kind).toBe('transient_failure');
    expect(new LeastRequestPicker([ep('a', { ejected: true })], view({})).pick().kind).toBe('transient_failure');
  });

  it('favours the less loaded endpoint: P(pick) = 1 − P(both draws are busier)', () => {
    // Loads a < b < c: a wins unless neither draw is a (4/9 → 5/9); c only when both draws are c (1/9).
    const c = counts(picks(new LeastRequestPicker(abc, view({ a: 0, b: 5, c: 10 }), { random: seeded(42) }), 10_000));
    expect(c.a).toBeGreaterThan(5556 - 250);
    expect(c.a).toBeLessThan(5556 + 250);
    expect(c.b).toBeGreaterThan(3333 - 250);
    expect(c.b).toBeLessThan(3333 + 250);
    expect(c.c).toBeGreaterThan(1111 - 150);
    expect(c.c).toBeLessThan(1111 + 150);
  });

  it('draws by weight: equal load → shares follow weights', () => {
    const c = counts(picks(new LeastRequestPicker([ep('a', { weight: 3 }), ep('b')], view({}), { random: seeded(3) }), 10_000));
    expect(c.a).toBeGreaterThan(7500 - 250);
    expect(c.a).toBeLessThan(7500 + 250);
  });

  it('keeps in-flight requests balanced when one endpoint holds requests longer', () => {
    // Requests arrive one per tick; a and b finish in 1 tick, slow in 20. Active counts steer traffic away from slow.
    const active: Record<string, number> = { a: 0, b: 0, slow: 0 };
    const endpoints = [ep('a'), ep('b'), ep('slow')];
    const p = new LeastRequestPicker(endpoints, view(active), { random: seeded(9) });
    const finishing = new Map<number, string[]>();
    const c: Record<string, number> = { a: 0, b: 0, slow: 0 };
    for (let t = 0; t < 10_000; t++) {
      for (const name of finishing.get(t) ?? []) active[name]!--;
      finishing.delete(t);
      const r = p.pick();
      if (r.kind !== 'complete') throw new Error('no pick');
      const name = r.endpoint.name;
      c[name]!++;
      active[name]!++;
      const done = t + (name === 'slow' ? 20 : 1);
      finishing.set(done, [...(finishing.get(done) ?? []), name]);
    }
    expect(c.slow!).toBeLessThan(c.a! / 3);
    expect(active.slow!).toBeLessThanOrEqual(3);
  });
});
