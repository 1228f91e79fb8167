// Smooth weighted round robin: nginx's sequences, exact proportions, skipping of unusable endpoints.
import { describe, expect, it } from 'vitest';
import { WeightedRoundRobinPicker } from '../../../../agent/lb/round-robin';
import { counts, ep, picks, seeded, type TestEndpoint } from '../../fixtures/lb';

describe('WeightedRoundRobinPicker', () => {
  const cases: Array<{ name: string; endpoints: TestEndpoint[]; start?: number; want: string[] }> = [
    { name: 'equal weights are plain round robin', endpoints: [ep('a'), ep('b'), ep('c')], want: ['a', 'b', 'c', 'a', 'b', 'c'] },
    { name: 'random start rotates the order', endpoints: [ep('a'), ep('b'), ep('c')], start: 0.5, want: ['b', 'c', 'a', 'b'] },
    {
      name: "nginx's example: weights 5,1,1 interleave as a a b a c a a",
      endpoints: [ep('a', { weight: 5 }), ep('b', { weight: 1 }), ep('c', { weight: 1 })],
      want: ['a', 'a', 'b', 'a', 'c', 'a', 'a', 'a', 'a', 'b'],
    },
    { name: 'weights 2,1', endpoints: [ep('a', { weight: 2 }), ep('b')], want: ['a', 'b', 'a', 'a', 'b', 'a'] },
    { name: 'ejected endpoints are skipped', endpoints: [ep('a'), ep('b', { ejected: true }), ep('c')], want: ['a', 'c', 'a', 'c'] },
    { name: 'unhealthy endpoints are skipped', endpoints: [ep('a', { healthy: false }), ep('b'), ep('c')], want: ['b', 'c', 'b'] },
    { name: 'weight 0 gets nothing', endpoints: [ep('a', { weight: 0 }), ep('b')], want: ['b', 'b'] },
    { name: 'invalid weights count as 1', endpoints: [ep('a', { weight: Number.NaN }), ep('b', { weight: -3 })], want: ['a', 'b', 'a', 'b'] },
    { name: 'empty', endpoints: [], want: ['<transient_failure>', '<transient_failure>'] },
    { name: 'all ejected', endpoints: [ep('a', { ejected: true })], want: ['<transient_failure>'] },
  ];
  it.each(cases)('$name', ({ endpoints, start, want }) => {
    const p = new WeightedRoundRobinPicker(endpoints, () => start ?? 0);
    expect(picks(p, want.length)).toEqual(want);
  });

  it('says why nothing is usable', () => {
    const r = new WeightedRoundRobinPicker([ep('a', { ejected: true }), ep('b', { healthy: false }), ep('c', { weight: 0 })]).pick();
    expect(r).toEqual({ kind: 'transient_failure', reason: 'no usable endpoints (3 total: 1 ejected, 1 unhealthy, 1 weight 0)' });
    expect(new WeightedRoundRobinPicker([]).pick()).toEqual({ kind: 'transient_failure', reason: 'no endpoints' });
  });

  it('gives exact weight proportions over every whole cycle, whatever the start', () => {
    const endpoints = [ep('a', { weight: 1 }), ep('b', { weight: 2 }), ep('c', { weight: 3 }), ep('d', { weight: 4 })];
    const r = seeded(1);
    for (let run = 0; run < 5; run++) {
      expect(counts(picks(new WeightedRoundRobinPicker(endpoints, r), 10_000))).toEqual({ a: 1000, b: 2000, c: 3000, d: 4000 });
    }
  });

  it('never sends a weight-1 endpoint two in a row when another has weight ≥ 1 (smoothness)', () => {
    const seq = picks(new WeightedRoundRobinPicker([ep('a', { weight: 3 }), ep('b'), ep('c')], () => 0), 500);
    for (let i = 1; i < seq.length; i++) if (seq[i] !== 'a') expect(seq[i - 1]).not.toBe(seq[i]);
  });
});
