// LogRateLimiter with an injected monotonic clock: N lines per interval, the rest suppressed and reported with the next logged line.
import { describe, expect, it } from 'vitest';
import { LogRateLimiter } from '../../../../agent/telemetry/log-limiter';

describe('LogRateLimiter', () => {
  it('lets N lines through per interval and reports how many it dropped', () => {
    let now = 1_000;
    const limiter = new LogRateLimiter(3, 10_000, () => now);
    expect([limiter.take(), limiter.take(), limiter.take()]).toEqual([0, 0, 0]);
    expect(limiter.take()).toBeUndefined();
    expect(limiter.take()).toBeUndefined();
    now += 9_999;
    expect(limiter.take()).toBeUndefined(); // same window
    now += 1;
    expect(limiter.take()).toBe(3); // new window: three were dropped since the last logged line
    expect(limiter.take()).toBe(0);
    expect(limiter.take()).toBe(0);
    expect(limiter.take()).toBeUndefined();
    now += 50_000;
    expect(limiter.take()).toBe(1);
  });

  it('with a limit of 0 drops everything', () => {
    const limiter = new LogRateLimiter(0, 1_000, () => 0);
    expect(limiter.take()).toBeUndefined();
  });
});
