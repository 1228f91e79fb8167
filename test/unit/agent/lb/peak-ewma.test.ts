// Peak-EWMA: the estimate's definition (peak, decay), the cost, the p2c choice, and traffic leaving and returning to a slow endpoint.
import { describe, expect, it } from 'vitest';
import type { LbEndpoint } from '../../../../agent/lb/endpoint';
import { EndpointLoadTracker, peakEwmaAt, peakEwmaObserve } from '../../../../agent/lb/load';
import { PeakEwmaPicker, peakEwmaCost } from '../../../../agent/lb/peak-ewma';
import { counts, ep, picks, seeded, sequence } from '../../fixtures/lb';

const TAU = 10_000;

describe('peak-EWMA estimate', () => {
  const e1 = Math.exp(-1);
  it.each([
    { name: 'first sample is the estimate', prev: undefined, sample: 40, at: 5, want: 40 },
    { name: 'a slower sample replaces it at once (peak)', prev: { rttMs: 10, at: 0 }, sample: 250, at: 1, want: 250 },
    { name: 'a faster sample after τ moves it 1 − 1/e of the way', prev: { rttMs: 100, at: 0 }, sample: 10, at: TAU, want: 100 * e1 + 10 * (1 - e1) },
    { name: 'a faster sample at the same instant barely moves it', prev: { rttMs: 100, at: 7 }, sample: 10, at: 7, want: 100 },
    { name: 'a sample from the past counts as elapsed 0', prev: { rttMs: 100, at: 50 }, sample: 10, at: 40, want: 100 },
    { name: 'a negative or NaN sample counts as 0', prev: { rttMs: 100, at: 0 }, sample: Number.NaN, at: TAU, want: 100 * e1 },
  ])('$name', ({ prev, sample, at, want }) => {
    const next = peakEwmaObserve(prev, sample, at, TAU);
    expect(next.rttMs).toBeCloseTo(want, 9);
    expect(next.at).toBe(at);
  });

  it('decays toward zero while unsampled', () => {
    expect(peakEwmaAt({ rttMs: 200, at: 1000 }, 1000, TAU)).toBe(200);
    expect(peakEwmaAt({ rttMs: 200, at: 1000 }, 1000 + TAU, TAU)).toBeCloseTo(200 * Math.exp(-1), 9);
    expect(peakEwmaAt({ rttMs: 200, at: 1000 }, 500, TAU)).toBe(200);
  });

  it('cost = estimate × (active + 1)', () => {
    expect(peakEwmaCost(20, 0)).toBe(20);
    expect(peakEwmaCost(20, 3)).toBe(80);
  });
});

describe('PeakEwmaPicker', () => {
  const fake = (rtt: Record<string, number | undefined>, active: Record<string, number | undefined> = {}) => ({
    activeRequests: (e: LbEndpoint) => active[e.key.split(':')[0]!] ?? 0,
    rttEstimate: (e: LbEndpoint) => rtt[e.key.split(':')[0]!],
  });
  const ab = [ep('a'), ep('b')];
  // Two distinct draws: the first u picks among all, the second among the rest.
  it.each([
    { name: 'lower latency wins', rtt: { a: 50, b: 10 }, active: {}, want: 'b' },
    { name: 'in-flight requests multiply the cost', rtt: { a: 10, b: 15 }, active: { a: 2 }, want: 'b' },
    { name: 'a tie keeps the first draw', rtt: { a: 10, b: 10 }, active: {}, want: 'a' },
    { name: 'never sampled counts as the default (30 ms)', rtt: { a: 31, b: undefined }, active: {}, want: 'b' },
    { name: 'never sampled with requests in flight', rtt: { a: 50, b: undefined }, active: { b: 1 }, want: 'a' },
  ])('$name', ({ rtt, active, want }) => {
    const p = new PeakEwmaPicker(ab, fake(rtt, active), { now: () => 0, random: sequence(0.2, 0.7) });
    expect(picks(p, 1)).toEqual([want]);
  });

  it('draws two distinct endpoints', () => {
    // Both u = 0 would draw a twice with replacement; the second draw excludes the first.
    const p = new PeakEwmaPicker(ab, fake({ a: 100, b: 1 }), { now: () => 0, random: () => 0 });
    expect(picks(p, 3)).toEqual(['b', 'b', 'b']);
  });

  it('single endpoint, ejected endpoints, empty input', () => {
    const v = fake({});
    expect(picks(new PeakEwmaPicker([ep('a')], v, { now: () => 0 }), 2)).toEqual(['a', 'a']);
    expect(new Set(picks(new PeakEwmaPicker([ep('a', { ejected: true }), ep('b'), ep('c')], v, { now: () => 0, random: seeded(1) }), 100))).toEqual(new Set(['b', 'c']));
    expect(new PeakEwmaPicker([], v, { now: () => 0 }).pick().kind).toBe('transient_failure');
  });

  it('moves traffic away from an endpoint that turns slow and back after it recovers', () => {
    let now = 0;
    const clock = () => now;
    const tracker = new EndpointLoadTracker({ now: clock, decayMs: TAU });
    const endpoints = [ep('a'), ep('b'), ep('c')];
    const p = new PeakEwmaPicker(endpoints, tracker, { now: clock, random: seeded(5) });
    const latency = (name: string, t: number) => (name === 'b' && t >= 20_000 && t < 60_000 ? 200 : 10);
    const pending: Array<{ done: number; endpoint: (typeof endpoints)[number]; startedAt: number }> = [];
    const windows: Record<string, string[]> = { before: [], slow: [], recovered: [] };
    for (now = 0; now < 120_000; now += 2) {
      // Finish everything due by now (each at its own completion time, so samples are exact).
      pending.sort((x, y) => x.done - y.done);
      while (pending.length > 0 && pending[0]!.done <= now) {
        const r = pending.shift()!;
        const t = now;
        now = r.done;
        tracker.end(r.endpoint, r.startedAt);
        now = t;
      }
      const r = p.pick();
      if (r.kind !== 'complete') throw new Error('no pick');
      const startedAt = tracker.begin(r.endpoint);
      pending.push({ done: now + latency(r.endpoint.name, now), endpoint: r.endpoint, startedAt });
      if (now >= 5_000 && now < 20_000) windows.before!.push(r.endpoint.name);
      else if (now >= 25_000 && now < 60_000) windows.slow!.push(r.endpoint.name);
      else if (now >= 90_000) windows.recovered!.push(r.endpoint.name);
    }
    const share = (w: string) => (counts(windows[w]!).b ?? 0) / windows[w]!.length;
    expect(share('before')).toBeGreaterThan(0.25);
    expect(share('slow')).toBeLessThan(0.03);
    expect(share('recovered')).toBeGreaterThan(0.25);
  });
});
