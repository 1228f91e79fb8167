// The idle-time memory reclaim policy (agent/runtime/reclaim.ts) on an injected clock, timer, RSS and activity: reclaims after quiet + above threshold, never under load, rate-limited.
import { describe, expect, it } from 'vitest';
import { DEFAULT_RECLAIM_SETTINGS, MemoryReclaimer, decideReclaim, fullGcFunction, reclaimThreshold, type ActivityReading, type ReclaimPolicyInput } from '../../../../agent/runtime/reclaim';

const MiB = 1048576;
const S = DEFAULT_RECLAIM_SETTINGS;

describe('decideReclaim', () => {
  const base: ReclaimPolicyInput = { quietStreak: 2, rssBytes: 200 * MiB, referenceBytes: 75 * MiB, nowMs: 100_000, lastReclaimMs: undefined };
  const cases: Array<[string, Partial<ReclaimPolicyInput>, string]> = [
    ['quiet long enough, far above the reference', {}, 'reclaim'],
    ['load in this interval', { quietStreak: 0 }, 'busy'],
    ['first quiet interval (tail of the burst)', { quietStreak: 1 }, 'settling'],
    // 10 % of a 75 MiB reference (less than thresholdBytes): 7.5 MiB.
    ['exactly at the threshold', { rssBytes: 75 * MiB + 7.5 * MiB }, 'below_threshold'],
    ['just above the threshold', { rssBytes: 75 * MiB + 7.5 * MiB + 1 }, 'reclaim'],
    ['a large agent: thresholdBytes caps the fraction', { referenceBytes: 400 * MiB, rssBytes: 400 * MiB + S.thresholdBytes + 1 }, 'reclaim'],
    ['a large agent, at thresholdBytes', { referenceBytes: 400 * MiB, rssBytes: 400 * MiB + S.thresholdBytes }, 'below_threshold'],
    ['reclaimed 10 s ago', { lastReclaimMs: 90_000 }, 'rate_limited'],
    ['reclaimed minGap ago', { lastReclaimMs: 100_000 - S.minGapMs }, 'reclaim'],
    ['long quiet streak, below threshold', { quietStreak: 50, rssBytes: 80 * MiB }, 'below_threshold'],
  ];
  for (const [name, over, want] of cases) {
    it(name, () => {
      const d = decideReclaim({ ...base, ...over });
      expect(d.action === 'reclaim' ? 'reclaim' : d.reason).toBe(want);
    });
  }
});

/** A reclaimer over fakes: the test moves the clock, sets RSS and adds activity, and fires the interval itself. */
function rig(settings: Partial<typeof S> = {}) {
  let now = 0;
  let rss = 80 * MiB;
  let activity: ActivityReading = { events: 0, bytes: 0 };
  let tick: (() => void) | undefined;
  const gcs: number[] = [];
  const trims: number[] = [];
  let cleared = false;
  const r = new MemoryReclaimer(
    {
      now: () => now,
      rss: () => rss,
      heapUsed: () => 1,
      activity: () => activity,
      // A reclaim gives the burst's memory back: RSS falls to 85 MiB.
      fullGc: () => void gcs.push(now),
      trim: () => {
        trims.push(now);
        rss = 85 * MiB;
        return true;
      },
      timers: {
        setInterval: (fn, ms) => {
          expect(ms).toBe(r.settings.intervalMs);
          tick = fn;
          return 'handle';
        },
        clearInterval: (h) => {
          expect(h).toBe('handle');
          cleared = true;
        },
      },
      wallClock: () => 'T',
    },
    settings,
  );
  return {
    r,
    gcs,
    trims,
    get cleared() {
      return cleared;
    },
    get scheduled() {
      return tick !== undefined;
    },
    setRss: (mib: number) => void (rss = mib * MiB),
    /** `events` new connections/requests and `bytes` during the next interval, then the check at its end. */
    interval: (events = 0, bytes = 0) => {
      now += r.settings.intervalMs;
      activity = { events: activity.events + events, bytes: activity.bytes + bytes };
      return r.check();
    },
  };
}

const reasonOf = (d: Awaited<ReturnType<MemoryReclaimer['check']>>) => (d.action === 'reclaim' ? 'reclaim' : d.reason);

describe('reclaimThreshold', () => {
  it('is the smaller of thresholdBytes and thresholdFraction of the reference', () => {
    expect(reclaimThreshold(75 * MiB)).toBe(7.5 * MiB);
    expect(reclaimThreshold(400 * MiB)).toBe(S.thresholdBytes);
  });
});

describe('MemoryReclaimer', () => {
  it('reclaims once after the burst has been quiet for two intervals and RSS is above its baseline + threshold', async () => {
    const t = rig();
    await t.r.start(); // baseline 80 MiB
    expect(t.scheduled).toBe(true);
    // The burst: 2,000 connections per second, RSS climbs to 180 MiB.
    t.setRss(180);
    for (let i = 0; i < 4; i++) expect(reasonOf(await t.interval(10_000, 50 * MiB))).toBe('busy');
    expect(t.gcs).toEqual([]);
    expect(reasonOf(await t.interval(2))).toBe('settling'); // first quiet interval
    expect(reasonOf(await t.interval())).toBe('reclaim');
    expect(t.gcs).toEqual([30_000]);
    expect(t.trims).toEqual([30_000]); // malloc_trim after the GC, same check
    const st = t.r.status();
    expect(st.reclaims).toBe(1);
    expect(st.last).toMatchObject({ rssBefore: 180 * MiB, rssAfter: 85 * MiB, trimmed: true, at: 'T' });
    expect(st.baselineRss).toBe(80 * MiB);
    expect(st.referenceRss).toBe(85 * MiB); // what the reclaim left
    // Still quiet, RSS where the reclaim left it: nothing more to do, ever.
    for (let i = 0; i < 20; i++) expect(reasonOf(await t.interval())).toBe('below_threshold');
    expect(t.gcs.length).toBe(1);
    t.r.stop();
    expect(t.cleared).toBe(true);
  });

  it('never reclaims while traffic flows, however high RSS is (new connections, requests or bytes)', async () => {
    const t = rig();
    await t.r.start();
    t.setRss(400);
    for (let i = 0; i < 30; i++) {
      // Alternate the kind of load: connections/requests only, then bytes only (one long bulk stream).
      const d = i % 2 === 0 ? await t.interval(S.quietEventsPerSecond * 5 + 1, 0) : await t.interval(0, S.quietBytesPerSecond * 5 + 1);
      expect(reasonOf(d)).toBe('busy');
    }
    expect(t.gcs).toEqual([]);
  });

  it('a trickle at or below the quiet rate counts as quiet', async () => {
    const t = rig();
    await t.r.start();
    t.setRss(200);
    expect(reasonOf(await t.interval(S.quietEventsPerSecond * 5, S.quietBytesPerSecond * 5))).toBe('settling');
    expect(reasonOf(await t.interval(S.quietEventsPerSecond * 5, 0))).toBe('reclaim');
  });

  it('is rate-limited: a second burst right after a reclaim waits for minGap', async () => {
    const t = rig({ minGapMs: 60_000 });
    await t.r.start();
    t.setRss(200);
    await t.interval(5000);
    await t.interval();
    expect(reasonOf(await t.interval())).toBe('reclaim'); // at 15 s
    // Another burst at once; quiet again 10 s after the reclaim, well above where it left RSS.
    t.setRss(300);
    expect(reasonOf(await t.interval(5000))).toBe('busy');
    expect(reasonOf(await t.interval())).toBe('settling');
    expect(reasonOf(await t.interval())).toBe('rate_limited'); // 30 s: 15 s after the reclaim
    for (let i = 0; i < 8; i++) await t.interval(); // up to 70 s
    expect(t.gcs).toEqual([15_000]);
    expect(reasonOf(await t.interval())).toBe('reclaim'); // 75 s = 60 s after the first
    expect(t.gcs).toEqual([15_000, 75_000]);
  });

  it('a load interval resets the quiet streak', async () => {
    const t = rig();
    await t.r.start();
    t.setRss(200);
    expect(reasonOf(await t.interval())).toBe('settling');
    expect(reasonOf(await t.interval(1000))).toBe('busy');
    expect(reasonOf(await t.interval())).toBe('settling');
    expect(reasonOf(await t.interval())).toBe('reclaim');
  });

  it('rejects a setting that is not a finite number', () => {
    expect(() => new MemoryReclaimer({ now: () => 0, rss: () => 0, activity: () => ({ events: 0, bytes: 0 }), fullGc: () => undefined }, { thresholdBytes: Number.NaN })).toThrow(/thresholdBytes/);
    expect(() => new MemoryReclaimer({ now: () => 0, rss: () => 0, activity: () => ({ events: 0, bytes: 0 }), fullGc: () => undefined }, { intervalMs: 0 })).toThrow(/intervalMs/);
  });
});

describe('fullGcFunction', () => {
  it('exposes a working full GC without --expose-gc on the command line, and leaves no global gc behind', () => {
    const gc = fullGcFunction();
    expect(typeof gc).toBe('function');
    expect((globalThis as { gc?: unknown }).gc).toBeUndefined();
    let garbage: unknown[] | undefined = Array.from({ length: 200_000 }, (_, i) => ({ i, s: `x${i}` }));
    const withGarbage = process.memoryUsage().heapUsed;
    garbage = undefined;
    gc();
    expect(garbage).toBeUndefined();
    expect(process.memoryUsage().heapUsed).toBeLessThan(withGarbage);
  });
});
